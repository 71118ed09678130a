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
//!
//! Users: `alice` / `wonderland`, `bob` / `builder`.
//!
//! | route                   | answer |
//! |-------------------------|--------|
//! | `POST /login`           | `{"username","password"}` -> 200 `{"access_token","token_type","expires_in","refresh_token","refresh_expires_in"}`, 401 bad credentials, 400 bad JSON |
//! | `POST /refresh`         | `{"refresh_token"}` -> 200 with a new pair; 401 for a retired (the session ends), unknown or expired one |
//! | `GET /me`               | 200 `{"sub","sid"}`, or the middleware's 400/401/503 |
//! | `GET /sessions`         | 200 `{"sessions":[{"id","created_at","last_used_at","expires_at","user_agent","address","current"}]}` |
//! | `DELETE /sessions/{id}` | 204: that session of the caller ends; 404 for an unknown id or someone else's |
//! | `POST /logout`          | 204: this session ends |
//! | `POST /logout/all`      | 204: every session of the user ends |
//!
//! A user has at most 10 live sessions; an 11th login ends the oldest.

use std::future::ready;
use std::net::SocketAddr;

use aws_lc_rs::{constant_time, digest};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, post_service};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tower_jwt_auth::clock::rfc3339;
use tower_jwt_auth::store::{MemoryStore, SessionStore, WhenFull};
use tower_jwt_auth::{
    Claims, IssueError, Issued, Keys, Login, ResolveError, SessionId, Sessions, SessionsBuilder,
    resolve_fn,
};

/// Any error that ends the demo.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The seeded users and their passwords.
const USERS: &[(&str, &str)] = &[("alice", "wonderland"), ("bob", "builder")];

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

    if let Ok(url) = std::env::var("REDIS_URL") {
        #[cfg(feature = "redis")]
        {
            let store = tower_jwt_auth::store::redis::RedisStore::connect(&url).await?;
            println!("sessions: Redis at {url}");
            return serve(listener, policy(Sessions::builder(keys, store)).build()?).await;
        }
        #[cfg(not(feature = "redis"))]
        eprintln!(
            "demo: REDIS_URL ({url}) is ignored: this build has no Redis support \
             (run with --features redis); sessions stay in this process's memory"
        );
    }
    println!("sessions: in memory");
    serve(
        listener,
        policy(Sessions::builder(keys, MemoryStore::new())).build()?,
    )
    .await
}

/// The demo's session policy, the same on every store.
pub fn policy<St: SessionStore>(builder: SessionsBuilder<St>) -> SessionsBuilder<St> {
    builder.session_limit(10, WhenFull::EndOldest)
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
pub async fn serve<St: SessionStore>(
    listener: TcpListener,
    sessions: Sessions<St>,
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
    axum::serve(
        listener,
        app(sessions).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// The demo's routes.
pub fn app<St: SessionStore>(sessions: Sessions<St>) -> Router {
    // A session outlives nothing: a user removed from `USERS` is refused at once.
    let user_exists = resolve_fn(|claims: &Claims| {
        let known = USERS.iter().any(|(user, _)| *user == claims.sub);
        ready(Ok::<_, ResolveError>(known.then_some(())))
    });
    let protected = Router::new()
        .route("/me", get(me))
        .route("/sessions", get(list_sessions::<St>))
        .route("/sessions/{id}", delete(end_session::<St>))
        .route_layer(sessions.layer().resolve_user(user_exists));
    Router::new()
        .route("/login", post(login::<St>))
        .route("/refresh", post(refresh::<St>))
        // The logout services authenticate the token themselves.
        .route("/logout", post_service(sessions.logout_service()))
        .route("/logout/all", post_service(sessions.logout_all_service()))
        .merge(protected)
        .with_state(sessions)
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn login<St: SessionStore>(
    State(sessions): State<Sessions<St>>,
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
    if !password_matches(&credentials.username, &credentials.password) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "unknown user or wrong password",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let mut login = Login::new(credentials.username).address(peer.ip());
    if let Some(agent) = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        login = login.user_agent(agent);
    }
    tokens(sessions.issue(login).await)
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

async fn refresh<St: SessionStore>(State(sessions): State<Sessions<St>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<RefreshRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be JSON {\"refresh_token\": \"...\"}",
        );
    };
    tokens(sessions.refresh(&request.refresh_token).await)
}

/// The answer to a login or a refresh.
fn tokens(result: Result<Issued, IssueError>) -> Response {
    match result {
        Ok(issued) => (
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(json!({
                "access_token": issued.access_token,
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "refresh_token": issued.refresh_token,
                "refresh_expires_in": issued.refresh_expires_in,
            })),
        )
            .into_response(),
        Err(IssueError::Refused(reason)) => {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "invalid_grant",
                reason.description(),
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Err(IssueError::TooManySessions) => error(
            StatusCode::FORBIDDEN,
            "too_many_sessions",
            "log out of another device first",
        ),
        Err(_) => unavailable(),
    }
}

fn unavailable() -> Response {
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the session store is unavailable",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

async fn list_sessions<St: SessionStore>(
    State(sessions): State<Sessions<St>>,
    claims: Claims,
) -> Response {
    let Ok(list) = sessions.list(&claims.sub).await else {
        return unavailable();
    };
    let list: Vec<_> = list
        .iter()
        .map(|session| {
            json!({
                "id": session.id,
                "created_at": rfc3339(session.created_at),
                "last_used_at": rfc3339(session.last_used_at),
                "expires_at": rfc3339(session.expires_at),
                "user_agent": session.user_agent,
                "address": session.address,
                "current": session.id == claims.sid,
            })
        })
        .collect();
    axum::Json(json!({ "sessions": list })).into_response()
}

async fn end_session<St: SessionStore>(
    State(sessions): State<Sessions<St>>,
    claims: Claims,
    Path(id): Path<String>,
) -> Response {
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such session of yours",
        )
    };
    let Ok(id) = id.parse::<SessionId>() else {
        return not_found();
    };
    match sessions.revoke(&claims.sub, &id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => not_found(),
        Err(_) => unavailable(),
    }
}

async fn me(claims: Claims) -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "sub": claims.sub, "sid": claims.sid }))
}

/// Compares digests in constant time, and spends the same work on unknown users, so the
/// answer's timing tells nothing about which part was wrong.
fn password_matches(username: &str, password: &str) -> bool {
    let given = digest::digest(&digest::SHA256, password.as_bytes());
    let mut matched = false;
    for (user, expected) in USERS {
        let expected = digest::digest(&digest::SHA256, expected.as_bytes());
        let password_ok =
            constant_time::verify_slices_are_equal(given.as_ref(), expected.as_ref()).is_ok();
        matched |= password_ok && *user == username;
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
