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
//! - `NEAR_CACHE=1` (with `REDIS_URL` or a `postgres://` `DATABASE_URL`): answers of the
//!   store kept in this process until an ending event says otherwise (`store::NearCache`).
//! - `DATABASE_URL`: `postgres://…` with `--features postgres` (demo processes with the same
//!   `JWT_SECRET` share the sessions) or `sqlite://path/to/file.db` with `--features sqlite`
//!   (sessions survive a restart); the tables are created at start.
//! - `LOGIN_RATE_PER_SEC`: the steady rate of `/login` and `/refresh` calls one client address
//!   may make after a burst of 50 (default 20; `0` turns the limit off). Beyond it: 429 with
//!   `Retry-After`.
//!
//! Users: `alice` / `wonderland` (scope `profile`), `bob` / `builder` (scope `profile admin`).
//! Their passwords are kept only as Argon2id hashes (PHC strings), made at start-up.
//!
//! | route                   | answer |
//! |-------------------------|--------|
//! | `POST /login`           | `{"username","password"}` -> 200 `{"access_token","token_type","expires_in","refresh_token","refresh_expires_in","scope"}` (no-store), 401 bad credentials, 400 bad JSON, 429 beyond the login rate |
//! | `POST /refresh`         | `{"refresh_token"}` -> 200 with a new pair; 401 for a retired (the session ends), unknown or expired one; the RFC 6749 form -> 200 or 400 `invalid_grant`; 429 beyond the login rate |
//! | `GET /me`               | 200 `{"sub","sid"}`, or the middleware's 400/401/503 |
//! | `GET /greeting`         | 200 `{"user":null}` without credentials, `{"user":"<sub>"}` with a valid token; 401 for a bad one |
//! | `GET /admin`            | 200 `{"admin":"<sub>"}` with scope `admin`; 403 `insufficient_scope` otherwise |
//! | `GET /sessions`         | 200 `{"sessions":[{"id","created_at","last_used_at","expires_at","user_agent","address","current"}]}` |
//! | `DELETE /sessions/{id}` | 204: that session of the caller ends; 404 for an unknown id or someone else's |
//! | `POST /logout`          | 204: this session ends |
//! | `POST /logout/all`      | 204: every session of the user ends |
//! | `GET /events`           | `text/event-stream`, an event a second, ending within 1 s of the session's end |
//! | `GET /health`           | 200 `ok` |
//! | `GET /`                 | the "your devices" page (tokens in `HttpOnly` cookies) |
//!
//! A user has at most 10 live sessions; an 11th login ends the oldest.

use std::future::{Future, ready};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock};
use std::task::Poll;
use std::time::Duration;

use argon2::password_hash::{PasswordHashString, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
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
use tokio::sync::Semaphore;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::{GovernorError, GovernorLayer};
use tower_jwt_auth::cookies::CookieConfig;
use tower_jwt_auth::devices::Devices;
use tower_jwt_auth::store::{AnyStore, MemoryStore, SessionStore, WhenFull};
use tower_jwt_auth::{
    AuthError, Claims, Keys, Login, ResolveError, SessionId, Sessions, SessionsBuilder, resolve_fn,
};

#[path = "demo_page/mod.rs"]
mod page;

/// Any error that ends the demo.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The demo's sessions, whichever store holds them.
pub type DemoSessions = Sessions<AnyStore>;

/// The seeded users, their passwords and their scopes. The passwords are hashed once at
/// start-up ([`USERS`]); nothing else reads them.
const SEED: &[(&str, &str, &str)] = &[
    ("alice", "wonderland", "profile"),
    ("bob", "builder", "profile admin"),
];

/// A user the demo knows.
pub struct User {
    /// The login name.
    pub name: &'static str,
    /// The password as an Argon2id PHC string (`$argon2id$v=19$m=...`), salted per user.
    pub password_hash: PasswordHashString,
    /// The scope their tokens carry.
    pub scope: &'static str,
}

/// The users, their passwords hashed with Argon2id (your database, in a real app).
pub static USERS: LazyLock<Vec<User>> = LazyLock::new(|| {
    SEED.iter()
        .map(|&(name, password, scope)| User {
            name,
            password_hash: hash_password(password),
            scope,
        })
        .collect()
});

/// What an unknown user's password is checked against, so that a login for a user who
/// does not exist costs what a wrong password costs. (Its answer is never used.)
static DUMMY_HASH: LazyLock<PasswordHashString> =
    LazyLock::new(|| hash_password("the password of nobody"));

/// Argon2id with its default (OWASP) parameters, salted from the OS: 19 MiB and about
/// 10 ms of one core per check, optimised.
fn hash_password(password: &str) -> PasswordHashString {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters hashes any seeded password")
        .serialize()
}

/// Password checks run one per core at most: each holds 19 MiB, so a flood of logins
/// waits here instead of exhausting memory or the async workers.
static PASSWORD_CHECKS: LazyLock<Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Semaphore::new(cores)
});

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
    let login_rate = match std::env::var("LOGIN_RATE_PER_SEC") {
        Err(std::env::VarError::NotPresent) => parse_login_rate(None)?,
        value => parse_login_rate(Some(
            &value.map_err(|e| format!("LOGIN_RATE_PER_SEC: {e}"))?,
        ))?,
    };
    let store = store_from_env().await?;
    // Hashed now, not on the first login.
    LazyLock::force(&USERS);
    LazyLock::force(&DUMMY_HASH);
    let sessions = policy(Sessions::builder(keys, store)).build()?;
    serve_with_login_rate(listener, sessions, login_rate).await
}

/// The login rate `LOGIN_RATE_PER_SEC` asks for: unset, the default; `0`, none.
pub fn parse_login_rate(value: Option<&str>) -> Result<Option<LoginRate>, BoxError> {
    let Some(value) = value else {
        return Ok(Some(LoginRate::DEFAULT));
    };
    let per_second: u32 = value.trim().parse().map_err(|_| {
        format!("LOGIN_RATE_PER_SEC must be a whole number of calls a second (0: no limit), not {value:?}")
    })?;
    Ok(NonZeroU32::new(per_second).map(LoginRate::per_second))
}

/// The store `REDIS_URL` or `DATABASE_URL` names, or memory.
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
    if let Ok(url) = std::env::var("DATABASE_URL") {
        match sql_store(&url).await? {
            Some(store) => return Ok(store),
            None => eprintln!(
                "demo: DATABASE_URL is ignored: this build has no store for it (run with \
                 --features postgres for postgres://, --features sqlite for sqlite://); \
                 sessions stay in this process's memory"
            ),
        }
    }
    println!("sessions: in memory");
    Ok(MemoryStore::new().into())
}

/// The SQL store `url` names (`postgres://…`, `sqlite://…`), its tables created; `None`
/// when this build has no store for it. The URL is never printed: it may hold a password.
pub async fn sql_store(url: &str) -> Result<Option<AnyStore>, BoxError> {
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = tower_jwt_auth::store::PostgresStore::connect(url).await?;
        store.migrate().await?;
        if std::env::var("NEAR_CACHE").is_ok_and(|value| value == "1") {
            let config = tower_jwt_auth::store::NearCacheConfig::default();
            println!("sessions: PostgreSQL, with a near-cache");
            return Ok(Some(store.near_cache(config).into()));
        }
        println!("sessions: PostgreSQL");
        return Ok(Some(store.into()));
    }
    #[cfg(feature = "sqlite")]
    if url.starts_with("sqlite:") {
        let store = tower_jwt_auth::store::SqliteStore::connect(url).await?;
        store.migrate().await?;
        println!("sessions: SQLite");
        return Ok(Some(store.into()));
    }
    let _ = url;
    Ok(None)
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

/// Serves the demo on `listener` until the process ends, with the default login rate.
pub async fn serve(listener: TcpListener, sessions: DemoSessions) -> Result<(), BoxError> {
    serve_with_login_rate(listener, sessions, Some(LoginRate::DEFAULT)).await
}

/// Serves the demo on `listener` until the process ends; `None`: no login rate limit.
pub async fn serve_with_login_rate(
    listener: TcpListener,
    sessions: DemoSessions,
    login_rate: Option<LoginRate>,
) -> Result<(), BoxError> {
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
    // The peer address keys the login rate limit and is kept with each session.
    let app = app_with_login_rate(sessions, login_rate);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// How often one client address may call `/login` and `/refresh`: a burst, then a steady
/// rate (a token bucket, `tower_governor`). Both routes draw on the same bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginRate {
    burst: NonZeroU32,
    refill_every: Duration,
}

impl LoginRate {
    /// A burst of 50, then 20 a second: more than a person needs, far too slow for guessing
    /// passwords.
    pub const DEFAULT: Self = Self::per_second(NonZeroU32::new(20).unwrap());

    /// A burst of 50, then `calls` a second.
    pub const fn per_second(calls: NonZeroU32) -> Self {
        Self::new(
            NonZeroU32::new(50).unwrap(),
            Duration::from_nanos(1_000_000_000 / calls.get() as u64),
        )
    }

    /// `burst` calls at once, then one more each `refill_every` (at least a nanosecond).
    pub const fn new(burst: NonZeroU32, refill_every: Duration) -> Self {
        let refill_every = if refill_every.is_zero() {
            Duration::from_nanos(1)
        } else {
            refill_every
        };
        Self {
            burst,
            refill_every,
        }
    }

    /// `routes` refusing calls beyond the rate with 429 and `Retry-After`. It keys on the
    /// peer address, so the app must be served with `ConnectInfo<SocketAddr>`. Behind a
    /// reverse proxy every client has the proxy's address: key on the header the proxy sets
    /// (`SmartIpKeyExtractor`) only when nothing else can reach the app.
    fn limit(self, routes: Router<DemoSessions>) -> Router<DemoSessions> {
        let config = GovernorConfigBuilder::default()
            .period(self.refill_every)
            .burst_size(self.burst.get())
            .finish()
            .expect("the burst and the period are not zero");
        // Forget addresses whose bucket is full again, for as long as the app lives.
        let limiter = Arc::downgrade(config.limiter());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut every_minute = tokio::time::interval(Duration::from_secs(60));
                loop {
                    every_minute.tick().await;
                    let Some(limiter) = limiter.upgrade() else {
                        break;
                    };
                    limiter.retain_recent();
                }
            });
        }
        routes.route_layer(GovernorLayer::new(config).error_handler(too_many_requests))
    }
}

/// The refusal beyond the login rate, in the demo's error shape.
fn too_many_requests(refusal: GovernorError) -> Response {
    match refusal {
        GovernorError::TooManyRequests { wait_time, .. } => {
            // `wait_time` is rounded down: one second more is never too early, never 0.
            let retry_after = wait_time.saturating_add(1);
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many login or refresh calls from this address; retry later",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        // No peer address: the app was served without `ConnectInfo`.
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the client address is unknown",
        ),
    }
}

/// The demo's routes, with the default login rate.
pub fn app(sessions: DemoSessions) -> Router {
    app_with_login_rate(sessions, Some(LoginRate::DEFAULT))
}

/// The demo's routes; `None`: no login rate limit.
pub fn app_with_login_rate(sessions: DemoSessions, login_rate: Option<LoginRate>) -> Router {
    // A session outlives nothing: a user removed from `USERS` is refused at once.
    let user_exists = resolve_fn(|claims: &Claims| {
        let known = USERS.iter().any(|user| user.name == claims.sub);
        ready(Ok::<_, ResolveError>(known.then_some(())))
    });
    let mut credentials = Router::new()
        .route("/login", post(login))
        .route("/refresh", post_service(sessions.refresh_service()));
    if let Some(rate) = login_rate {
        credentials = rate.limit(credentials);
    }
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
        .merge(credentials)
        // The logout services authenticate the token themselves.
        .route("/logout", post_service(sessions.logout_service()))
        .route("/logout/all", post_service(sessions.logout_all_service()))
        .route("/health", get(|| async { "ok" }))
        .merge(page::routes())
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
    let Some(scope) = password_matches(&credentials.username, credentials.password).await else {
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

/// The user's scope when the password is theirs. Argon2 compares in constant time, and an
/// unknown user is checked against a dummy hash, so the answer's timing tells nothing about
/// which users exist. The check runs off the async workers.
async fn password_matches(username: &str, password: String) -> Option<&'static str> {
    let user = USERS.iter().find(|user| user.name == username);
    let hash = user.map_or(&*DUMMY_HASH, |user| &user.password_hash);
    let _permit = PASSWORD_CHECKS.acquire().await.ok()?;
    let verified = tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash.password_hash())
            .is_ok()
    })
    .await;
    match (user, verified) {
        (Some(user), Ok(true)) => Some(user.scope),
        _ => None,
    }
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}
