// The "your devices" page. Tokens live in HttpOnly cookies this script cannot read; it
// only knows when the access cookie expires (a time, kept in localStorage so that tabs
// share it) and refreshes it before then.
"use strict";

const EXPIRY = "access-expires-at";
const $ = (selector) => document.querySelector(selector);
let refreshTimer;

// ===== talking to the server =====

/** A request of this page; the tokens ride in their cookies. */
function send(method, path, body) {
  const headers = { "Token-Delivery": "cookie" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
}

/** Notes when the new access cookie expires, and when to refresh it. */
function remember(answer) {
  const lifetime = answer.expires_in * 1000;
  const expiry = { at: Date.now() + lifetime, lifetime };
  localStorage.setItem(EXPIRY, JSON.stringify(expiry));
  schedule();
}

function expiry() {
  try {
    const value = JSON.parse(localStorage.getItem(EXPIRY));
    return value && Number.isFinite(value.at) && Number.isFinite(value.lifetime) ? value : null;
  } catch {
    return null;
  }
}

/** When to refresh: a fifth of the lifetime (at most a minute) before it ends. */
function refreshAt(value) {
  return value.at - Math.min(value.lifetime / 5, 60000);
}

/**
 * A new access cookie (and refresh cookie). One tab at a time: a refresh token is good
 * once, and the tab that waited finds the work done. Resolves to whether the session lives.
 */
function refresh(force) {
  const run = async () => {
    const known = expiry();
    if (!force && known && refreshAt(known) > Date.now()) return true;
    let response;
    try {
      response = await send("POST", "/refresh");
    } catch {
      return false;
    }
    if (!response.ok) {
      localStorage.removeItem(EXPIRY);
      return false;
    }
    remember(await response.json());
    return true;
  };
  return navigator.locks ? navigator.locks.request("devices-refresh", run) : run();
}

function schedule() {
  clearTimeout(refreshTimer);
  const known = expiry();
  if (!known) return;
  const wait = Math.max(refreshAt(known) - Date.now(), 1000);
  refreshTimer = setTimeout(async () => {
    if (await refresh(false)) schedule();
    else signedOut("Your session has ended. Sign in again.");
  }, wait);
}

/**
 * An authenticated request. On a 401 the access cookie may just have expired: refresh once
 * and try again; a session that has ended shows the sign-in form.
 */
async function authed(method, path) {
  let response;
  try {
    response = await send(method, path);
    if (response.status === 401 && (await refresh(true))) {
      response = await send(method, path);
    }
  } catch {
    trouble("The server cannot be reached. Try again in a moment.");
    return null;
  }
  if (response.status === 401) {
    signedOut("This device was signed out. Sign in again.");
    return null;
  }
  return response;
}

// ===== what the page shows =====

function signedOut(notice) {
  clearTimeout(refreshTimer);
  localStorage.removeItem(EXPIRY);
  $("#signed-in").hidden = true;
  $("#signed-out").hidden = false;
  $("#notice").textContent = notice || "";
  $("#notice").hidden = !notice;
  $("#sessions tbody").replaceChildren();
  $("#user").textContent = "";
}

/** A passing problem (server down, store unavailable): said where the user is looking. */
function trouble(message) {
  if ($("#signed-in").hidden) {
    signedOut(message);
  } else {
    $("#status").textContent = message;
    $("#status").hidden = false;
  }
}

function showError(message) {
  $("#error").textContent = message;
  $("#error").hidden = false;
}

/** "Chrome 131 on Linux" from a user agent string. */
function device(agent) {
  if (!agent) return "Unknown device";
  const browsers = [
    [/Edg(?:e|A|iOS)?\/(\d+)/, "Edge"],
    [/OPR\/(\d+)/, "Opera"],
    [/(?:Firefox|FxiOS)\/(\d+)/, "Firefox"],
    [/HeadlessChrome\/(\d+)/, "Headless Chrome"],
    [/(?:Chrome|CriOS)\/(\d+)/, "Chrome"],
    [/Version\/(\d+)[^ ]* (?:Mobile\/\S+ )?Safari\//, "Safari"],
    [/^curl\/([\d.]+)/, "curl"],
  ];
  const systems = [
    [/Android/, "Android"],
    [/iPhone|iPad|iPod/, "iOS"],
    [/Windows/, "Windows"],
    [/CrOS/, "ChromeOS"],
    [/Mac OS X|Macintosh/, "macOS"],
    [/Linux/, "Linux"],
  ];
  const browser = browsers.find(([pattern]) => pattern.test(agent));
  const system = systems.find(([pattern]) => pattern.test(agent));
  if (!browser) return agent.length > 40 ? agent.slice(0, 39) + "\u2026" : agent;
  const name = `${browser[1]} ${agent.match(browser[0])[1]}`;
  return system ? `${name} on ${system[1]}` : name;
}

const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function cell(label, text) {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (text !== undefined) td.textContent = text;
  return td;
}

function timeCell(label, iso) {
  const td = cell(label);
  const time = document.createElement("time");
  time.dateTime = iso;
  time.textContent = when.format(new Date(iso));
  td.append(time);
  return td;
}

function row(session) {
  const tr = document.createElement("tr");
  tr.dataset.id = session.id;
  const name = cell("Device");
  const who = document.createElement("div");
  who.className = "who";
  name.append(who);
  const label = document.createElement("span");
  label.className = "device";
  label.textContent = device(session.user_agent);
  label.title = session.user_agent || "";
  who.append(label);
  const action = cell("");
  if (session.current) {
    tr.className = "current";
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = "This device";
    who.append(tag);
  } else {
    const end = document.createElement("button");
    end.type = "button";
    end.className = "end";
    end.textContent = "End";
    end.setAttribute("aria-label", `End the session on ${label.textContent}`);
    end.addEventListener("click", () => endSession(session.id, end));
    action.append(end);
  }
  tr.append(
    name,
    cell("Address", session.address || "unknown"),
    timeCell("Signed in", session.created_at),
    timeCell("Last used", session.last_used_at),
    action,
  );
  return tr;
}

/** Who is signed in and their sessions, or the sign-in form. */
async function load() {
  const me = await authed("GET", "/me");
  if (!me) return;
  const list = await authed("GET", "/sessions");
  if (!list) return;
  if (!me.ok || !list.ok) {
    trouble(`The server answered ${me.ok ? list.status : me.status}. Try again in a moment.`);
    return;
  }
  const user = (await me.json()).sub;
  const { sessions } = await list.json();
  $("#user").textContent = user;
  $("#sessions tbody").replaceChildren(...sessions.map(row));
  $("#status").hidden = true;
  $("#signed-out").hidden = true;
  $("#signed-in").hidden = false;
}

async function endSession(id, button) {
  button.disabled = true;
  const response = await authed("DELETE", `/sessions/${encodeURIComponent(id)}`);
  if (response) await load();
}

async function logout(path) {
  const response = await authed("POST", path);
  if (!response) return;
  if (response.ok) signedOut("You are signed out.");
  else trouble(`The server answered ${response.status}. Try again in a moment.`);
}

async function login(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = form.querySelector("button");
  $("#error").hidden = true;
  button.disabled = true;
  try {
    const response = await send("POST", "/login", {
      username: form.username.value,
      password: form.password.value,
    });
    if (response.ok) {
      form.reset();
      remember(await response.json());
      $("#notice").hidden = true;
      await load();
    } else if (response.status === 401) {
      showError("Wrong username or password.");
    } else if (response.status === 429) {
      showError("Too many attempts. Wait a moment and try again.");
    } else {
      showError(`Sign-in failed (the server answered ${response.status}).`);
    }
  } catch {
    showError("The server cannot be reached.");
  } finally {
    button.disabled = false;
  }
}

// ===== start =====

$("#login").addEventListener("submit", login);
$("#logout").addEventListener("click", () => logout("/logout"));
$("#logout-all").addEventListener("click", () => logout("/logout/all"));
// Back on the page (another tab, the phone unlocked): show the sessions as they are now.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && !$("#signed-in").hidden) load();
});

(async () => {
  if (await refresh(false)) {
    schedule();
    await load();
  } else {
    signedOut();
  }
})();
