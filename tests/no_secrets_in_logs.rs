//! A full login / request / refresh / logout cycle through the demo, with every tracing event
//! of the process captured at the most verbose level: no token, no part of one, no password
//! and no key may appear in it.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/demo.rs"]
mod demo;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tower_jwt_auth::store::{AnyStore, MemoryStore};
use tower_jwt_auth::{Keys, Sessions};

const SECRET: &str = "a logging test secret of 32 bytes+";

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cycle_logs_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let sessions = demo::policy(Sessions::builder(
        Keys::hs256(SECRET).unwrap(),
        AnyStore::from(MemoryStore::new()),
    ))
    .build()
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(demo::serve(listener, sessions));
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let call = |method: Method, path: &str, token: Option<&str>, body: String| {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::from(body)).unwrap();
        let client = client.clone();
        async move {
            let response = client.request(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, body)
        }
    };
    let credentials = json!({ "username": "alice", "password": "wonderland" }).to_string();

    let mut secrets = vec![SECRET.to_owned(), "wonderland".to_owned()];
    let mut remember = |body: &Value| {
        for field in ["access_token", "refresh_token"] {
            let token = body[field].as_str().unwrap().to_owned();
            // The whole token, and each of its parts.
            secrets.extend(token.split('.').map(str::to_owned));
            secrets.push(token);
        }
    };

    let (status, first) = call(Method::POST, "/login", None, credentials.clone()).await;
    assert_eq!(status, StatusCode::OK);
    remember(&first);
    let (_, second) = call(Method::POST, "/login", None, credentials).await;
    remember(&second);
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(
        call(Method::GET, "/me", Some(access), String::new())
            .await
            .0,
        StatusCode::OK
    );

    let refresh = |token: &Value| json!({ "refresh_token": token }).to_string();
    let (status, rotated) = call(
        Method::POST,
        "/refresh",
        None,
        refresh(&first["refresh_token"]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    remember(&rotated);
    let access = rotated["access_token"].as_str().unwrap();
    let (_, listed) = call(Method::GET, "/sessions", Some(access), String::new()).await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 2);

    // Failures log too: bad tokens, a reused refresh token, a dead session.
    let (status, _) = call(Method::GET, "/me", Some("abc.def.ghi"), String::new()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        Method::POST,
        "/refresh",
        None,
        refresh(&first["refresh_token"]),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(Method::GET, "/me", Some(access), String::new()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let other = second["access_token"].as_str().unwrap();
    assert_eq!(
        call(Method::POST, "/logout", Some(other), String::new())
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (_, third) = call(
        Method::POST,
        "/login",
        None,
        json!({ "username": "alice", "password": "wonderland" }).to_string(),
    )
    .await;
    remember(&third);
    let third_access = third["access_token"].as_str().unwrap();
    assert_eq!(
        call(
            Method::POST,
            "/logout/all",
            Some(third_access),
            String::new()
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: the crate's own events are in it.
    for event in [
        "session created",
        "refused",
        "retired refresh token presented",
        "session revoked",
        "all sessions revoked",
    ] {
        assert!(logs.contains(event), "no {event:?} event in:\n{logs}");
    }
    for secret in secrets.iter().filter(|secret| secret.len() >= 8) {
        assert!(
            !logs.contains(secret.as_str()),
            "{secret:?} appears in the logs"
        );
    }
}
