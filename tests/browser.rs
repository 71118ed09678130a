//! The demo's "your devices" page in a real Chromium, driven over WebDriver.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`apt-get install -y chromium
//! chromium-driver`), or `CHROME_BIN` and `CHROMEDRIVER` naming other builds. Each browser
//! profile (its own `--user-data-dir`) is one device. With `UPDATE_SCREENSHOTS=1` the
//! screenshot test writes `docs/devices-laptop.png` and `docs/devices-phone.png`.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/demo.rs"]
mod demo;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower_jwt_auth::store::{AnyStore, MemoryStore};
use tower_jwt_auth::{Keys, Login, Sessions, SessionsBuilder};

const SECRET: &[u8] = b"a browser test secret of 32+ bytes!!";
/// How long the page may take to show what a step expects.
const PATIENCE: Duration = Duration::from_secs(15);
const LAPTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);

/// One test's browsers at a time: a few Chromiums are plenty for a small machine.
static BROWSERS: Semaphore = Semaphore::const_new(1);

// ===== the demo and the browser =====

/// The demo on a free port of 127.0.0.1, sessions in memory.
async fn start_demo(
    configure: impl FnOnce(SessionsBuilder<AnyStore>) -> SessionsBuilder<AnyStore>,
) -> (String, Sessions<AnyStore>) {
    let builder = Sessions::builder(Keys::hs256(SECRET).unwrap(), MemoryStore::new().into());
    let sessions = configure(demo::policy(builder)).build().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(demo::serve(listener, sessions.clone()));
    (format!("http://{addr}"), sessions)
}

/// A program from `variable`, or the first of `names` on `PATH`.
fn program(variable: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn missing(what: &str) -> ! {
    panic!(
        "{what} not found: the browser tests need Chromium and its WebDriver. Install them \
         with `sudo apt-get install -y chromium chromium-driver` (Debian/Ubuntu), or set \
         CHROME_BIN and CHROMEDRIVER to their paths"
    )
}

/// A chromedriver of our own, on a free port; killed with its browsers when dropped.
struct Driver {
    child: Child,
    url: String,
    chrome: PathBuf,
    profiles: Vec<PathBuf>,
    _turn: tokio::sync::SemaphorePermit<'static>,
}

impl Driver {
    async fn start() -> Self {
        let chrome = program("CHROME_BIN", &["chromium", "chromium-browser"])
            .unwrap_or_else(|| missing("chromium"));
        let chromedriver =
            program("CHROMEDRIVER", &["chromedriver"]).unwrap_or_else(|| missing("chromedriver"));
        let turn = BROWSERS.acquire().await.unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so that its browsers go with it.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()))
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while TcpStream::connect(addr).await.is_err() {
            assert!(
                started.elapsed() < PATIENCE,
                "chromedriver did not listen on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            url: format!("http://{addr}"),
            chrome,
            profiles: Vec::new(),
            _turn: turn,
        }
    }

    /// A new browser with a fresh profile: one device. `phone` emulates a phone's screen
    /// and user agent; otherwise the window is `size`.
    async fn device(&mut self, size: (u32, u32), phone: bool) -> Device {
        static PROFILES: AtomicUsize = AtomicUsize::new(0);
        let profile = std::env::temp_dir().join(format!(
            "tower-jwt-auth-browser-{}-{}",
            std::process::id(),
            PROFILES.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        self.profiles.push(profile.clone());
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--hide-scrollbars".into(),
            format!("--user-data-dir={}", profile.display()),
            format!("--window-size={},{}", size.0, size.1),
        ];
        let mut options = json!({ "binary": self.chrome });
        if phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": size.0, "height": size.1, "pixelRatio": 1.0, "touch": true, "mobile": true },
                "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 \
                              (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
            });
        } else {
            // What a desktop Chromium says, rather than "HeadlessChrome".
            args.push(
                "--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
                 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
                    .into(),
            );
        }
        options["args"] = json!(args);
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start chromium: {e}"));
        Device { client }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and every browser it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
        for profile in &self.profiles {
            let _ = std::fs::remove_dir_all(profile);
        }
    }
}

/// One browser profile.
struct Device {
    client: Client,
}

impl Device {
    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, Vec::new()).await.unwrap()
    }

    /// Waits until `expression` (JavaScript) is true on the page.
    async fn wait_until(&self, expression: &str, what: &str) {
        let script = format!("return Boolean({expression});");
        let started = Instant::now();
        loop {
            if self.eval(&script).await == json!(true) {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{what}: `{expression}` still false after {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn displayed(&self, selector: &str) -> bool {
        match self.client.find(Locator::Css(selector)).await {
            Ok(element) => element.is_displayed().await.unwrap(),
            Err(_) => false,
        }
    }

    async fn wait_for_login_form(&self) {
        self.wait_until(
            "!document.querySelector('#signed-out').hidden",
            "the sign-in form",
        )
        .await;
        assert!(self.displayed("form#login").await);
        assert!(!self.displayed("table#sessions").await);
    }

    async fn wait_for_rows(&self, rows: usize) {
        self.wait_until(
            &format!(
                "!document.querySelector('#signed-in').hidden && \
                 document.querySelectorAll('table#sessions tbody tr').length === {rows}"
            ),
            &format!("{rows} sessions listed"),
        )
        .await;
        assert!(self.displayed("table#sessions").await);
        assert!(!self.displayed("form#login").await);
    }

    async fn type_into(&self, selector: &str, text: &str) {
        let input = self.client.find(Locator::Css(selector)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    async fn submit_login(&self, username: &str, password: &str) {
        self.wait_for_login_form().await;
        self.type_into("form#login input[name=username]", username)
            .await;
        self.type_into("form#login input[name=password]", password)
            .await;
        self.click("form#login button[type=submit]").await;
    }

    /// Opens the page and signs in as alice.
    async fn log_in(&self, base: &str) {
        self.goto(base).await;
        self.submit_login("alice", "wonderland").await;
        self.wait_until("!document.querySelector('#signed-in').hidden", "signed in")
            .await;
        let user = self.client.find(Locator::Css("#user")).await.unwrap();
        assert_eq!(user.text().await.unwrap(), "alice");
    }

    async fn click(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// The row classes and whether each has an end button, in page order.
    async fn rows(&self) -> Vec<(bool, bool)> {
        let rows = self
            .eval(
                "return [...document.querySelectorAll('table#sessions tbody tr')]
                   .map(tr => [tr.classList.contains('current'), !!tr.querySelector('button.end')]);",
            )
            .await;
        serde_json::from_value(rows).unwrap()
    }

    /// The value of the access cookie, as the browser holds it (scripts cannot read it).
    async fn access_cookie(&self) -> Option<String> {
        self.client
            .get_all_cookies()
            .await
            .unwrap()
            .into_iter()
            .find(|cookie| cookie.name() == "access_token")
            .map(|cookie| {
                assert_eq!(cookie.http_only(), Some(true));
                cookie.value().to_owned()
            })
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// Each device lists both sessions: its own marked current and without an end button, the
/// other with one.
async fn assert_sees_two(device: &Device) {
    device.wait_for_rows(2).await;
    let mut rows = device.rows().await;
    rows.sort();
    assert_eq!(rows, [(false, true), (true, false)]);
}

// ===== the tests =====

#[tokio::test(flavor = "multi_thread")]
async fn two_devices_list_each_other_and_one_ends_the_other() {
    let (base, sessions) = start_demo(|b| b).await;
    let mut driver = Driver::start().await;
    let laptop = driver.device(LAPTOP, false).await;
    let phone = driver.device(PHONE, true).await;
    laptop.log_in(&base).await;
    phone.log_in(&base).await;
    laptop.goto(&base).await;
    assert_sees_two(&laptop).await;
    assert_sees_two(&phone).await;

    // The device column is the user agent, shortened; times are the viewer's local time.
    let devices = laptop
        .eval(
            "return [...document.querySelectorAll('table#sessions tbody tr')]
               .map(tr => tr.cells[0].querySelector('.device').textContent);",
        )
        .await;
    let devices: Vec<String> = serde_json::from_value(devices).unwrap();
    assert!(
        devices.contains(&"Chrome 131 on Linux".to_owned()),
        "{devices:?}"
    );
    assert!(
        devices.contains(&"Chrome 131 on Android".to_owned()),
        "{devices:?}"
    );
    let cells = laptop
        .eval("return [...document.querySelectorAll('table#sessions tbody tr.current td')].map(td => td.textContent);")
        .await;
    let cells: Vec<String> = serde_json::from_value(cells).unwrap();
    assert_eq!(cells[1], "127.0.0.1");
    assert!(!cells[2].is_empty() && !cells[2].contains('T'), "{cells:?}");

    // The laptop ends the phone's session.
    laptop
        .click("table#sessions tbody tr:not(.current) button.end")
        .await;
    laptop.wait_for_rows(1).await;
    assert_eq!(laptop.rows().await, [(true, false)]);
    assert_eq!(sessions.list("alice").await.unwrap().len(), 1);

    // The phone's next action (ending the laptop from its stale list) lands on the form,
    // and ends nothing.
    phone
        .click("table#sessions tbody tr:not(.current) button.end")
        .await;
    phone.wait_for_login_form().await;
    assert_eq!(phone.access_cookie().await, None);
    laptop.goto(&base).await;
    laptop.wait_for_rows(1).await;

    laptop.close().await;
    phone.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_all_from_one_device_logs_out_both() {
    let (base, sessions) = start_demo(|b| b).await;
    let mut driver = Driver::start().await;
    let first = driver.device(LAPTOP, false).await;
    let second = driver.device(LAPTOP, false).await;
    first.log_in(&base).await;
    second.log_in(&base).await;
    assert_sees_two(&second).await;

    first.click("button#logout-all").await;
    first.wait_for_login_form().await;
    assert_eq!(
        first.access_cookie().await,
        None,
        "logout clears the cookie"
    );
    assert!(sessions.list("alice").await.unwrap().is_empty());

    second.goto(&base).await;
    second.wait_for_login_form().await;

    // Signing in again works, and "Sign out" ends this device only.
    first.log_in(&base).await;
    second.log_in(&base).await;
    first.goto(&base).await;
    assert_sees_two(&first).await;
    second.click("button#logout").await;
    second.wait_for_login_form().await;
    first.goto(&base).await;
    first.wait_for_rows(1).await;

    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_posted_from_another_port_of_the_host_does_not_log_out() {
    let (base, sessions) = start_demo(|b| b).await;
    // Another port of the same host is the same *site*: SameSite cookies go along.
    let attacker = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let attacker_url = format!("http://{}", attacker.local_addr().unwrap());
    let page = format!(
        "<!doctype html><form method=post action=\"{base}/logout/all\">\
         <input type=hidden name=x value=1></form>\
         <script>document.forms[0].submit()</script>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(page) }),
    );
    tokio::spawn(async move { axum::serve(attacker, app).await });

    let mut driver = Driver::start().await;
    let device = driver.device(LAPTOP, false).await;
    device.log_in(&base).await;
    device.wait_for_rows(1).await;
    let cookie = device.access_cookie().await;
    assert!(cookie.is_some());

    device.goto(&attacker_url).await;
    // The form was sent: the browser is on the refused answer.
    let target = format!("{base}/logout/all");
    let started = Instant::now();
    while device.client.current_url().await.unwrap().as_str() != target {
        assert!(started.elapsed() < PATIENCE, "the form was never submitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sessions.list("alice").await.unwrap().len(), 1);
    assert_eq!(device.access_cookie().await, cookie, "the cookie is kept");

    device.goto(&base).await;
    device.wait_for_rows(1).await;
    device.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_login_shows_an_error_and_no_token_reaches_scripts() {
    let (base, sessions) = start_demo(|b| b).await;
    let mut driver = Driver::start().await;
    let device = driver.device(LAPTOP, false).await;
    device.goto(&base).await;
    assert!(!device.displayed("#error").await);
    device.submit_login("alice", "not her password").await;
    device
        .wait_until("!document.querySelector('#error').hidden", "the error")
        .await;
    let error = device.client.find(Locator::Css("#error")).await.unwrap();
    assert!(!error.text().await.unwrap().is_empty());
    assert!(device.displayed("form#login").await);
    assert_eq!(device.access_cookie().await, None);

    device.submit_login("alice", "wonderland").await;
    device.wait_for_rows(1).await;
    let token = device.access_cookie().await.expect("an access cookie");
    let reachable = device
        .eval("return JSON.stringify([document.cookie, {...localStorage}, {...sessionStorage}]);")
        .await;
    let reachable = reachable.as_str().unwrap();
    assert!(!reachable.contains(&token), "{reachable}");
    // No JWT of any kind (their header always starts so).
    assert!(!reachable.contains("eyJ"), "{reachable}");

    // A user agent is text, never markup.
    let hostile = "<img id=injected src=/nothing>";
    sessions
        .issue(Login::new("alice").user_agent(hostile))
        .await
        .unwrap();
    device.goto(&base).await;
    device.wait_for_rows(2).await;
    assert_eq!(
        device
            .eval("return document.querySelector('#injected') === null;")
            .await,
        json!(true)
    );
    let shown = device
        .eval("return document.querySelector('table#sessions').textContent;")
        .await;
    assert!(shown.as_str().unwrap().contains(hostile), "{shown}");
    device.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_refreshes_its_access_cookie_before_it_expires() {
    let (base, _sessions) = start_demo(|b| b.access_ttl(Duration::from_secs(3))).await;
    let mut driver = Driver::start().await;
    let device = driver.device(LAPTOP, false).await;
    device.log_in(&base).await;
    let first = device.access_cookie().await.expect("an access cookie");
    // Twice the access token's life, without a click: the cookie (Max-Age=3) would be gone
    // had the page not replaced it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let now = device.access_cookie().await.expect("a fresh access cookie");
    assert_ne!(now, first);
    device.click("button#logout").await;
    device.wait_for_login_form().await;
    device.close().await;
}

/// Both widths fit without sideways scrolling; `UPDATE_SCREENSHOTS=1` writes them to docs/.
#[tokio::test(flavor = "multi_thread")]
async fn the_page_fits_a_laptop_and_a_phone() {
    let (base, _sessions) = start_demo(|b| b).await;
    let mut driver = Driver::start().await;
    let laptop = driver.device(LAPTOP, false).await;
    let phone = driver.device(PHONE, true).await;
    phone.log_in(&base).await;
    laptop.log_in(&base).await;
    phone.goto(&base).await;
    assert_sees_two(&laptop).await;
    assert_sees_two(&phone).await;

    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    for (device, name, width) in [(&laptop, "laptop", LAPTOP.0), (&phone, "phone", PHONE.0)] {
        let fits = device
            .eval("return document.documentElement.scrollWidth <= window.innerWidth;")
            .await;
        assert_eq!(fits, json!(true), "the {name} page scrolls sideways");
        let inner = device.eval("return window.innerWidth;").await;
        assert_eq!(inner, json!(width), "the {name} viewport");
        let png = device.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(format!("devices-{name}.png")), png).unwrap();
        }
    }
    laptop.close().await;
    phone.close().await;
}

/// The page, its style and its script come with a policy that allows nothing else.
#[tokio::test]
async fn the_page_is_served_with_a_strict_content_security_policy() {
    let (base, _sessions) = start_demo(|b| b).await;
    let addr = base.trim_start_matches("http://");
    for path in ["/", "/devices.css", "/devices.js"] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let head = answer
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains(
                "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'; \
                 connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; \
                 frame-ancestors 'none'"
            ),
            "{path}: {head}"
        );
        assert!(head.contains("x-content-type-options: nosniff"), "{path}");
    }
}
