//! A complete axum app: login with a password check, refresh, logout, logout everywhere,
//! the user's devices, a public route, an optional-auth route, an admin-only route and a
//! protected one. The README shows this file as it is.
//!
//! `cargo run --example app`, then `curl -d '{"username":"bob","password":"builder"}' -H
//! 'content-type: application/json' http://127.0.0.1:3000/login`.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHashString, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use axum::Router;
use axum::extract::{Json, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, post_service};
use serde::Deserialize;
use tower_jwt_auth::store::{AnyStore, MemoryStore};
use tower_jwt_auth::{AuthError, Claims, Keys, Login, SessionId, Sessions, devices::Devices};

/// The one type handlers name, whichever store the configuration picks.
type AppSessions = Sessions<AnyStore>;

/// Users, their Argon2id password hashes and their scopes (your database, in a real app).
static USERS: LazyLock<Vec<(&str, PasswordHashString, &str)>> = LazyLock::new(|| {
    let hash = |password: &str| {
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default().hash_password(password.as_bytes(), &salt);
        hash.expect("hashing a password").serialize()
    };
    vec![
        ("alice", hash("wonderland"), "profile"),
        ("bob", hash("builder"), "profile admin"),
    ]
});

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn login(State(sessions): State<AppSessions>, Json(given): Json<Credentials>) -> Response {
    let user = USERS.iter().find(|(name, ..)| *name == given.username);
    // An unknown user is checked against another hash: the time taken reveals no user.
    let (name, hash, scope) = user.unwrap_or(&USERS[0]);
    let password = given.password.as_bytes();
    let verified = Argon2::default().verify_password(password, &hash.password_hash());
    if user.is_none() || verified.is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    sessions
        .issue(Login::new(*name).scope(scope))
        .await
        .into_response()
}

async fn me(claims: Claims) -> String {
    format!("{} on session {}", claims.sub, claims.sid)
}

async fn greeting(claims: Option<Claims>) -> String {
    format!(
        "hello, {}",
        claims.map_or("stranger".into(), |claims| claims.sub)
    )
}

async fn admin(claims: Claims) -> String {
    format!("welcome to the admin room, {}", claims.sub)
}

async fn devices(
    State(sessions): State<AppSessions>,
    claims: Claims,
) -> Result<Devices, AuthError> {
    sessions.devices(&claims).await
}

async fn end_device(
    State(sessions): State<AppSessions>,
    claims: Claims,
    Path(id): Path<SessionId>,
) -> Result<StatusCode, AuthError> {
    let ended = sessions.revoke(&claims.sub, &id).await?;
    Ok(if ended {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    })
}

fn app(sessions: AppSessions) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/sessions", get(devices))
        .route("/sessions/{id}", delete(end_device))
        .route_layer(sessions.layer())
        .merge(
            Router::new()
                .route("/admin", get(admin))
                .route_layer(sessions.layer().require_scope("admin")),
        )
        .merge(
            Router::new()
                .route("/greeting", get(greeting))
                .route_layer(sessions.layer().optional()),
        )
        .route("/health", get(|| async { "ok" }))
        .route("/login", post(login))
        .route("/refresh", post_service(sessions.refresh_service()))
        .route("/logout", post_service(sessions.logout_service()))
        .route("/logout/all", post_service(sessions.logout_all_service()))
        .with_state(sessions)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret =
        std::env::var("JWT_SECRET").unwrap_or_else(|_| "change me: 32 bytes or more!!!!!".into());
    let sessions =
        Sessions::builder(Keys::hs256(secret)?, AnyStore::from(MemoryStore::new())).build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app(sessions)).await?;
    Ok(())
}
