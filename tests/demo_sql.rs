//! The demo on the SQL stores, over real sockets: on SQLite its sessions outlive a restart
//! (and a logout stays a logout); on PostgreSQL two demo instances with one key accept each
//! other's logins and logouts.

#![cfg(any(feature = "postgres", feature = "sqlite"))]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/demo.rs"]
mod demo;
mod sql_support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tower_jwt_auth::store::AnyStore;
use tower_jwt_auth::{Keys, Sessions};

const SECRET: &[u8] = b"an end-to-end test secret, 32+ bytes";

/// The demo on a free port, on `store`.
async fn serve(store: AnyStore) -> SocketAddr {
    let sessions = demo::policy(Sessions::builder(Keys::hs256(SECRET).unwrap(), store))
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(demo::serve(listener, sessions));
    addr
}

async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    let body = if path == "/login" {
        request = request.header(header::CONTENT_TYPE, "application/json");
        r#"{"username":"alice","password":"wonderland"}"#
    } else {
        ""
    };
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = client
        .request(request.body(Full::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn login(addr: SocketAddr) -> String {
    let (status, body) = send(addr, Method::POST, "/login", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn on_sqlite_sessions_outlive_a_restart() {
    let dir = sql_support::TempDir::new("demo");
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let first = serve(demo::sql_store(&url).await.unwrap().unwrap()).await;
    let kept = login(first).await;
    let ended = login(first).await;
    assert_eq!(
        send(first, Method::POST, "/logout", Some(&ended)).await.0,
        StatusCode::NO_CONTENT
    );

    // Another instance on the same file, as after a restart.
    let second = serve(demo::sql_store(&url).await.unwrap().unwrap()).await;
    let (status, body) = send(second, Method::GET, "/me", Some(&kept)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["sub"], "alice");
    assert_eq!(
        send(second, Method::GET, "/me", Some(&ended)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, listed) = send(second, Method::GET, "/sessions", Some(&kept)).await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres_two_instances_share_logins_and_logouts() {
    let schema = sql_support::PgSchema::new("demo").await;
    let one = serve(schema.store().await.into()).await;
    let two = serve(schema.store().await.into()).await;
    let token = login(one).await;
    assert_eq!(
        send(two, Method::GET, "/me", Some(&token)).await.0,
        StatusCode::OK
    );
    let other = login(two).await;
    assert_eq!(
        send(one, Method::GET, "/me", Some(&other)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(two, Method::POST, "/logout", Some(&token)).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(one, Method::GET, "/me", Some(&token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(one, Method::POST, "/logout/all", Some(&other)).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(two, Method::GET, "/me", Some(&other)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_demo_reads_a_postgres_url() {
    let schema = sql_support::PgSchema::new("demo_url").await;
    // The schema through libpq's `options`, as a DATABASE_URL may carry it.
    let url = format!(
        "{}?options=-c%20search_path%3D{}",
        sql_support::pg_url(),
        schema.name()
    );
    let addr = serve(demo::sql_store(&url).await.unwrap().unwrap()).await;
    let token = login(addr).await;
    assert_eq!(
        send(addr, Method::GET, "/me", Some(&token)).await.0,
        StatusCode::OK
    );
}
