//! The demo server: log in, call a protected route, log out (here or everywhere).
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! - `ADDR`: where to listen (default `127.0.0.1:3000`).
//! - `JWT_SECRET`: the HS256 key, at least 32 bytes; unset, a random key per start (tokens
//!   die with the process).
//! - `REDIS_URL`: with `--features redis`, sessions live in Redis and several demo processes
//!   with the same `JWT_SECRET` share them; otherwise they live in this process's memory.
//! - `NEAR_CACHE=1` (with `REDIS_URL`): answers of Redis kept in this process until an
//!   ending event says otherwise (`store::NearCache`).
//!
//! Users: `alice` / `wonderland` (scope `profile`), `bob` / `builder` (scope `profile admin`).
//!
//! | route                   | answer |
//! |-------------------------|--------|
//! | `POST /login`           | `{"username","password"}` -> 200 `{"access_token","token_type","expires_in","refresh_token","refresh_expires_in","scope"}` (no-store), 401 bad credentials, 400 bad JSON |
//! | `POST /refresh`         | `{"refresh_token"}` -> 200 with a new pair; 401 for a retired (the session ends), unknown or expired one; the RFC 6749 form -> 200 or 400 `invalid_grant` |
//! | `GET /me`               | 200 `{"sub","sid"}`, or the middleware's 400/401/503 |
//! | `GET /greeting`         | 200 `{"user":null}` without credentials, `{"user":"<sub>"}` with a valid token; 401 for a bad one |
//! | `GET /admin`            | 200 `{"admin":"<sub>"}` with scope `admin`; 403 `insufficient_scope` otherwise |
//! | `GET /sessions`         | 200 `{"sessions":[{"id","created_at","last_used_at","expires_at","user_agent","address","current"}]}` |
//! | `DELETE /sessions/{id}` | 204: that session of the caller ends; 404 for an unknown id or someone else's |
//! | `POST /logout`          | 204: this session ends |
//! | `POST /logout/all`      | 204: every session of the user ends |
//! | `GET /events`           | `text/event-stream`, an event a second, ending within 1 s of the session's end |
//! | `GET /health`           | 200 `ok` |
//!
//! A user has at most 10 live sessions; an 11th login ends the oldest.

use std::future::{Future, ready};
use std::net::SocketAddr;
use std::task::Poll;
use std::time::Duration;

use aws_lc_rs::{constant_time, digest};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, post_service};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tower_jwt_auth::cookies::CookieConfig;
use tower_jwt_auth::devices::Devices;
use tower_jwt_auth::store::{AnyStore, MemoryStore, SessionStore, WhenFull};
use tower_jwt_auth::{
    AuthError, Claims, Keys, Login, ResolveError, SessionId, Sessions, SessionsBuilder, resolve_fn,
};

/// Any error that ends the demo.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The demo's sessions, whichever store holds them.
pub type DemoSessions = Sessions<AnyStore>;

/// The seeded users, their passwords and their scopes.
const USERS: &[(&str, &str, &str)] = &[
    ("alice", "wonderland", "profile"),
    ("bob", "builder", "profile admin"),
];

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("demo: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), BoxError> {
    let addr: SocketAddr = std::env::var("ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()
        .map_err(|e| format!("ADDR is not a socket address: {e}"))?;
    let keys = keys_from_env()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let store = store_from_env().await?;
    serve(listener, policy(Sessions::builder(keys, store)).build()?).await
}

/// The store `REDIS_URL` names, or memory.
async fn store_from_env() -> Result<AnyStore, BoxError> {
    if let Ok(url) = std::env::var("REDIS_URL") {
        #[cfg(feature = "redis")]
        {
            let store = tower_jwt_auth::store::RedisStore::connect(&url).await?;
            if std::env::var("NEAR_CACHE").is_ok_and(|value| value == "1") {
                let feed = tower_jwt_auth::store::redis::redis::Client::open(url.as_str())?;
                let config = tower_jwt_auth::store::NearCacheConfig::default();
                println!("sessions: Redis at {url}, with a near-cache");
                return Ok(store.near_cache(feed, config).into());
            }
            println!("sessions: Redis at {url}");
            return Ok(store.into());
        }
        #[cfg(not(feature = "redis"))]
        eprintln!(
            "demo: REDIS_URL ({url}) is ignored: this build has no Redis support \
             (run with --features redis); sessions stay in this process's memory"
        );
    }
    println!("sessions: in memory");
    Ok(MemoryStore::new().into())
}

/// The demo's session policy, the same on every store. It serves plain HTTP, so its
/// cookies cannot be `Secure` (nor carry the `__Host-` prefix).
pub fn policy<St: SessionStore>(builder: SessionsBuilder<St>) -> SessionsBuilder<St> {
    builder
        .session_limit(10, WhenFull::EndOldest)
        .cookies(CookieConfig::new().secure(false))
}

/// The HS256 key from `JWT_SECRET`, or a random one.
fn keys_from_env() -> Result<Keys, BoxError> {
    match std::env::var("JWT_SECRET") {
        Ok(secret) if secret.len() >= 32 => Ok(Keys::hs256(secret)?),
        Ok(secret) => Err(format!(
            "JWT_SECRET must be at least 32 bytes long (it has {}); \
             generate one with: openssl rand -base64 32",
            secret.len()
        )
        .into()),
        Err(_) => {
            let mut secret = [0; 32];
            aws_lc_rs::rand::fill(&mut secret).map_err(|_| "no randomness for the key")?;
            println!("JWT_SECRET is unset: using a random key, so tokens die with this process");
            Ok(Keys::hs256(secret)?)
        }
    }
}

/// Serves the demo on `listener` until the process ends.
pub async fn serve(listener: TcpListener, sessions: DemoSessions) -> Result<(), BoxError> {
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    println!("try:");
    println!(
        "  TOKEN=$(curl -s http://{addr}/login -H 'content-type: application/json' \
         -d '{{\"username\":\"alice\",\"password\":\"wonderland\"}}' | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')"
    );
    println!("  curl -i http://{addr}/me -H \"Authorization: Bearer $TOKEN\"");
    println!("  curl -i http://{addr}/sessions -H \"Authorization: Bearer $TOKEN\"");
    println!("  curl -i -X POST http://{addr}/logout -H \"Authorization: Bearer $TOKEN\"");
    println!("  curl -i http://{addr}/me -H \"Authorization: Bearer $TOKEN\"   # 401 now");
    println!("  curl -i -X POST http://{addr}/logout/all -H \"Authorization: Bearer $TOKEN\"");
    axum::serve(
        listener,
        app(sessions).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// The demo's routes.
pub fn app(sessions: DemoSessions) -> Router {
    // A session outlives nothing: a user removed from `USERS` is refused at once.
    let user_exists = resolve_fn(|claims: &Claims| {
        let known = USERS.iter().any(|(user, ..)| *user == claims.sub);
        ready(Ok::<_, ResolveError>(known.then_some(())))
    });
    let authenticated = sessions.layer().resolve_user(user_exists);
    Router::new()
        .route("/me", get(me))
        .route("/sessions", get(devices))
        .route("/sessions/{id}", delete(end_session))
        .route("/events", get(events))
        .route_layer(authenticated.clone())
        .merge(
            Router::new()
                .route("/admin", get(admin))
                .route_layer(authenticated.clone().require_scope("admin")),
        )
        .merge(
            Router::new()
                .route("/greeting", get(greeting))
                .route_layer(authenticated.optional()),
        )
        .route("/login", post(login))
        .route("/refresh", post_service(sessions.refresh_service()))
        // The logout services authenticate the token themselves.
        .route("/logout", post_service(sessions.logout_service()))
        .route("/logout/all", post_service(sessions.logout_all_service()))
        .route("/health", get(|| async { "ok" }))
        .with_state(sessions)
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn login(
    State(sessions): State<DemoSessions>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(credentials) = serde_json::from_slice::<Credentials>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be JSON {\"username\": \"...\", \"password\": \"...\"}",
        );
    };
    let Some(scope) = password_matches(&credentials.username, &credentials.password) else {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "unknown user or wrong password",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    let mut login = Login::new(credentials.username)
        .scope(scope)
        .address(peer.ip());
    if let Some(agent) = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        login = login.user_agent(agent);
    }
    match sessions.issue(login).await {
        // Tokens as cookies when the page asks for them (`Token-Delivery: cookie`).
        Ok(issued) => sessions.login_response(&issued, &headers).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn devices(
    State(sessions): State<DemoSessions>,
    claims: Claims,
) -> Result<Devices, AuthError> {
    sessions.devices(&claims).await
}

async fn end_session(
    State(sessions): State<DemoSessions>,
    claims: Claims,
    Path(id): Path<String>,
) -> Result<Response, AuthError> {
    let ended = match id.parse::<SessionId>() {
        Ok(id) => sessions.revoke(&claims.sub, &id).await?,
        Err(_) => false,
    };
    Ok(if ended {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such session of yours",
        )
    })
}

/// An event every second for as long as the session lives: the stream ends within a
/// second of a logout on any instance (at once on this one).
async fn events(
    State(sessions): State<DemoSessions>,
    claims: Claims,
) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    let ended = Box::pin(async move { sessions.ended(&claims).await });
    let ticks = tokio::time::interval(Duration::from_secs(1));
    let stream = futures_util::stream::unfold(
        (ended, ticks, 0u64),
        |(mut ended, mut ticks, count)| async move {
            // The next tick, unless the session ends first.
            let tick = std::future::poll_fn(|cx| {
                if ended.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
                ticks.poll_tick(cx).map(|_| true)
            })
            .await;
            tick.then(|| {
                let event = Event::default().event("alive").data(count.to_string());
                (Ok(event), (ended, ticks, count + 1))
            })
        },
    );
    Sse::new(stream)
}

async fn me(claims: Claims) -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "sub": claims.sub, "sid": claims.sid }))
}

async fn greeting(claims: Option<Claims>) -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "user": claims.map(|claims| claims.sub) }))
}

async fn admin(claims: Claims) -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "admin": claims.sub }))
}

/// The user's scope when the password is theirs. Compares digests in constant time, and
/// spends the same work on unknown users, so the answer's timing tells nothing about which
/// part was wrong.
fn password_matches(username: &str, password: &str) -> Option<&'static str> {
    let given = digest::digest(&digest::SHA256, password.as_bytes());
    let mut matched = None;
    for (user, expected, scope) in USERS {
        let expected = digest::digest(&digest::SHA256, expected.as_bytes());
        let password_ok =
            constant_time::verify_slices_are_equal(given.as_ref(), expected.as_ref()).is_ok();
        if password_ok && *user == username {
            matched = Some(*scope);
        }
    }
    matched
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}
