//! End to end: the demo router on a real socket, driven by a hyper client.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/demo.rs"]
mod demo;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower_jwt_auth::store::{AnyStore, MemoryStore};
use tower_jwt_auth::{Keys, Login, Sessions};

const SECRET: &[u8] = b"an end-to-end test secret, 32+ bytes";
const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "demo-api";
const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa_private.pem");

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    sessions: Sessions<AnyStore>,
}

struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    headers: http::HeaderMap,
    body: Value,
}

impl Server {
    /// The demo router on a free port, with an issuer and audience configured.
    async fn start() -> Self {
        Self::serve(configured(MemoryStore::new())).await
    }
}

/// The demo's policy with an issuer and audience, on `store`.
fn configured(store: impl Into<AnyStore>) -> Sessions<AnyStore> {
    demo::policy(Sessions::builder(
        Keys::hs256(SECRET).unwrap(),
        store.into(),
    ))
    .issuer(ISSUER)
    .audience(AUDIENCE)
    .build()
    .unwrap()
}

impl Server {
    /// The demo router of `sessions` on a free port.
    async fn serve(sessions: Sessions<AnyStore>) -> Self {
        Self::serve_with_login_rate(sessions, Some(demo::LoginRate::DEFAULT)).await
    }

    /// The demo router of `sessions` on a free port, with `rate` on `/login` and `/refresh`.
    async fn serve_with_login_rate(
        sessions: Sessions<AnyStore>,
        rate: Option<demo::LoginRate>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(demo::serve_with_login_rate(
            listener,
            sessions.clone(),
            rate,
        ));
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            addr,
            client,
            sessions,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &[u8])],
        body: &str,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_bytes(value).unwrap());
        }
        let request = request.body(Full::from(body.to_owned())).unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            // JSON, or the text itself (`/health`).
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            challenge,
            headers,
            body,
        }
    }

    async fn login(&self, username: &str, password: &str) -> Reply {
        let body = json!({ "username": username, "password": password }).to_string();
        self.send(
            Method::POST,
            "/login",
            &[("content-type", b"application/json")],
            &body,
        )
        .await
    }

    async fn token(&self, username: &str, password: &str) -> String {
        let reply = self.login(username, password).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body["access_token"].as_str().unwrap().to_owned()
    }

    async fn with_token(&self, method: Method, path: &str, token: &str) -> Reply {
        let value = format!("Bearer {token}");
        self.send(method, path, &[("authorization", value.as_bytes())], "")
            .await
    }
}

// ===== the happy paths =====

#[tokio::test]
async fn login_me_logout() {
    let server = Server::start().await;
    let reply = server.login("alice", "wonderland").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 900);
    let token = reply.body["access_token"].as_str().unwrap();

    let me = server.with_token(Method::GET, "/me", token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["sub"], "alice");
    let sid = me.body["sid"].as_str().unwrap();
    assert_eq!(sid.len(), 22);

    let listed = server.sessions.list("alice").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id.to_string(), sid);
    assert!(listed[0].address.unwrap().is_loopback());

    let logout = server.with_token(Method::POST, "/logout", token).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(logout.body, Value::Null);

    let me = server.with_token(Method::GET, "/me", token).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me.challenge.as_deref(),
        Some(r#"Bearer error="invalid_token", error_description="revoked""#)
    );
    assert_eq!(me.body["error"], "invalid_token");

    // Logging out twice is refused like any dead token.
    let again = server.with_token(Method::POST, "/logout", token).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_all_ends_every_device_and_a_new_login_works() {
    let server = Server::start().await;
    let laptop = server.token("alice", "wonderland").await;
    let phone = server.token("alice", "wonderland").await;
    let bob = server.token("bob", "builder").await;

    let reply = server.with_token(Method::POST, "/logout/all", &phone).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    for token in [&laptop, &phone] {
        let me = server.with_token(Method::GET, "/me", token).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        server.with_token(Method::GET, "/me", &bob).await.status,
        StatusCode::OK,
        "other users keep their sessions"
    );
    let again = server.with_token(Method::POST, "/logout/all", &phone).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);

    let fresh = server.token("alice", "wonderland").await;
    assert_eq!(
        server.with_token(Method::GET, "/me", &fresh).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn login_refuses_bad_credentials_and_bad_json() {
    let server = Server::start().await;
    for (user, password) in [("alice", "builder"), ("mallory", "wonderland"), ("", "")] {
        let reply = server.login(user, password).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{user}/{password}");
        assert_eq!(reply.body["error"], "invalid_credentials");
        assert_eq!(reply.challenge.as_deref(), Some("Bearer"));
    }
    for body in [
        "",
        "{",
        "[]",
        r#"{"username":"alice"}"#,
        r#"{"username":1,"password":2}"#,
    ] {
        let reply = server.send(Method::POST, "/login", &[], body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(reply.body["error"], "invalid_request");
    }
}

// ===== passwords and the login rate limit =====

#[test]
fn passwords_are_stored_as_salted_argon2id_phc_strings() {
    use argon2::{Argon2, PasswordHash, PasswordVerifier};
    let seeded = [("alice", "wonderland"), ("bob", "builder")];
    let mut salts = Vec::new();
    for (name, password) in seeded {
        let user = demo::USERS.iter().find(|user| user.name == name).unwrap();
        let stored = user.password_hash.as_str();
        assert!(stored.starts_with("$argon2id$v=19$"), "{stored}");
        assert!(!stored.contains(password), "{stored}");
        let parsed = PasswordHash::new(stored).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let salt = parsed.salt.unwrap().as_str().to_owned();
        assert!(salt.len() >= 22, "a 16-byte salt at least: {salt}");
        salts.push(salt);
        let argon2 = Argon2::default();
        assert!(argon2.verify_password(password.as_bytes(), &parsed).is_ok());
        assert!(argon2.verify_password(b"not it", &parsed).is_err());
    }
    assert_ne!(salts[0], salts[1], "each password has its own salt");
    assert_eq!(demo::USERS.len(), seeded.len());
}

#[tokio::test]
async fn login_checks_the_password_and_an_unknown_user_costs_a_password_check() {
    let server = Server::serve_with_login_rate(configured(MemoryStore::new()), None).await;
    assert_eq!(
        server.login("alice", "wonderland").await.status,
        StatusCode::OK
    );
    assert_eq!(server.login("bob", "builder").await.status, StatusCode::OK);
    for (user, password) in [
        ("alice", "builder"),
        ("alice", "Wonderland"),
        ("carol", "x"),
    ] {
        let reply = server.login(user, password).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{user}/{password}");
        assert_eq!(reply.body["error"], "invalid_credentials");
    }

    // Timing: an unknown user must not answer much faster than a wrong password (an early
    // return would be 10x faster). Medians, alternating, to ride out a busy machine.
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..9 {
        for (user, times) in [("alice", &mut wrong), ("mallory", &mut unknown)] {
            let started = std::time::Instant::now();
            let reply = server.login(user, "guess").await;
            times.push(started.elapsed());
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        }
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (wrong, unknown) = (median(&mut wrong), median(&mut unknown));
    assert!(
        unknown * 3 >= wrong,
        "unknown user {unknown:?}, wrong password {wrong:?}"
    );
}

/// `Retry-After` of a 429 from the login rate limit, after checking the refusal's shape.
fn retry_after(reply: &Reply) -> u64 {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["error"], "too_many_requests");
    assert!(reply.body["error_description"].is_string());
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    let seconds: u64 = reply.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(seconds >= 1, "Retry-After {seconds}");
    seconds
}

#[tokio::test]
async fn the_51st_rapid_login_from_one_address_is_refused_with_retry_after() {
    // A burst of 50 that refills once an hour: exactly 50 calls pass.
    let rate = demo::LoginRate::new(NonZeroU32::new(50).unwrap(), Duration::from_secs(3600));
    let server = Server::serve_with_login_rate(configured(MemoryStore::new()), Some(rate)).await;
    let token = server.token("bob", "builder").await;
    // Every call counts: successes, wrong passwords, unknown users, bad JSON.
    for n in 2..=50 {
        let reply = match n % 4 {
            0 => server.login("alice", "wonderland").await,
            1 => server.login("alice", "wrong").await,
            2 => server.login("mallory", "wonderland").await,
            _ => server.send(Method::POST, "/login", &[], "{").await,
        };
        assert_ne!(reply.status, StatusCode::TOO_MANY_REQUESTS, "call {n}");
    }
    for _ in 51..=53 {
        let reply = server.login("alice", "wonderland").await;
        let seconds = retry_after(&reply);
        assert!((3500..=3601).contains(&seconds), "Retry-After {seconds}");
    }
    // The same address on other routes: not limited.
    let health = server.send(Method::GET, "/health", &[], "").await;
    assert_eq!(health.status, StatusCode::OK);
    for _ in 0..3 {
        let me = server.with_token(Method::GET, "/me", &token).await;
        assert_eq!(me.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn the_default_limit_lets_a_burst_of_50_through_then_answers_429() {
    let server = Server::start().await;
    // Sent at once: the limit is checked as each call arrives, before its password check.
    let replies =
        futures_util::future::join_all((0..70).map(|_| server.login("alice", "wonderland"))).await;
    let passed = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let refused: Vec<_> = replies
        .iter()
        .filter(|r| r.status != StatusCode::OK)
        .collect();
    // 50, plus one for each 50 ms the calls took to arrive.
    assert!((50..=56).contains(&passed), "{passed} passed");
    for reply in refused {
        assert_eq!(
            retry_after(reply),
            1,
            "20 a second: a wait well under a second"
        );
    }
    let health = server.send(Method::GET, "/health", &[], "").await;
    assert_eq!(health.status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_draws_on_the_same_limit() {
    let rate = demo::LoginRate::new(NonZeroU32::new(5).unwrap(), Duration::from_secs(3600));
    let server = Server::serve_with_login_rate(configured(MemoryStore::new()), Some(rate)).await;
    let login = server.login("alice", "wonderland").await;
    let refresh_token = login.body["refresh_token"].as_str().unwrap();
    let body = json!({ "refresh_token": refresh_token }).to_string();
    let refreshed = server.send(Method::POST, "/refresh", &[], &body).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let refresh_token = refreshed.body["refresh_token"].as_str().unwrap();
    let body = json!({ "refresh_token": refresh_token }).to_string();
    for _ in 3..=5 {
        let garbage = json!({ "refresh_token": "x.y.z" }).to_string();
        let reply = server.send(Method::POST, "/refresh", &[], &garbage).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    // The sixth call, with a good refresh token: refused before it is looked at.
    retry_after(&server.send(Method::POST, "/refresh", &[], &body).await);
    retry_after(&server.login("alice", "wonderland").await);
    let access = refreshed.body["access_token"].as_str().unwrap();
    let me = server.with_token(Method::GET, "/me", access).await;
    assert_eq!(me.status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_login_rate_nothing_is_refused() {
    let server = Server::serve_with_login_rate(configured(MemoryStore::new()), None).await;
    let replies = futures_util::future::join_all(
        (0..120).map(|_| server.send(Method::POST, "/login", &[], "{")),
    )
    .await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        server.login("alice", "wonderland").await.status,
        StatusCode::OK
    );
    let garbage = json!({ "refresh_token": "x.y.z" }).to_string();
    for _ in 0..60 {
        let reply = server.send(Method::POST, "/refresh", &[], &garbage).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
}

#[test]
fn login_rate_per_sec_sets_the_rate_and_0_turns_it_off() {
    use demo::{LoginRate, parse_login_rate};
    assert_eq!(parse_login_rate(None).unwrap(), Some(LoginRate::DEFAULT));
    assert_eq!(
        LoginRate::DEFAULT,
        LoginRate::new(NonZeroU32::new(50).unwrap(), Duration::from_millis(50))
    );
    assert_eq!(parse_login_rate(Some("0")).unwrap(), None);
    assert_eq!(
        parse_login_rate(Some("4")).unwrap(),
        Some(LoginRate::new(
            NonZeroU32::new(50).unwrap(),
            Duration::from_millis(250)
        ))
    );
    for bad in ["", "-1", "1.5", "many", "99999999999"] {
        assert!(parse_login_rate(Some(bad)).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_ends_the_session() {
    let server = Server::start().await;
    let login = server.login("alice", "wonderland").await;
    assert_eq!(login.body["refresh_expires_in"], 7 * 24 * 3600);
    let first_refresh = login.body["refresh_token"].as_str().unwrap().to_owned();

    let server = &server;
    let refresh = |token: &str| {
        let body = json!({ "refresh_token": token }).to_string();
        async move { server.send(Method::POST, "/refresh", &[], &body).await }
    };
    let rotated = refresh(&first_refresh).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    for field in [
        "access_token",
        "refresh_token",
        "expires_in",
        "refresh_expires_in",
    ] {
        assert!(!rotated.body[field].is_null(), "{field}");
    }
    assert_eq!(rotated.body["token_type"], "Bearer");
    let access = rotated.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        server.with_token(Method::GET, "/me", &access).await.status,
        StatusCode::OK
    );

    // The retired token again: refused, and the whole session ends with it.
    let reused = refresh(&first_refresh).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reused.body["error"], "invalid_grant");
    assert_eq!(reused.body["error_description"], "refresh token reused");
    assert_eq!(
        server.with_token(Method::GET, "/me", &access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let newest = rotated.body["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(newest).await.status, StatusCode::UNAUTHORIZED);

    for bad in ["garbage", access.as_str()] {
        assert_eq!(refresh(bad).await.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
    for body in ["", "{", r#"{"token":"x"}"#] {
        let reply = server.send(Method::POST, "/refresh", &[], body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:?}");
    }
}

#[tokio::test]
async fn users_list_their_devices_and_end_one() {
    let server = Server::start().await;
    let laptop = server.token("alice", "wonderland").await;
    let phone = server.token("alice", "wonderland").await;
    let bob = server.token("bob", "builder").await;

    let listed = server.with_token(Method::GET, "/sessions", &laptop).await;
    assert_eq!(listed.status, StatusCode::OK);
    let list = listed.body["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let laptop_id = current[0]["id"].as_str().unwrap().to_owned();
    let phone_id = list.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for session in list {
        for field in ["created_at", "last_used_at", "expires_at"] {
            let time = session[field].as_str().unwrap();
            assert!(time.len() == 20 && time.ends_with('Z'), "{field}: {time}");
        }
        assert_eq!(session["address"], "127.0.0.1");
        assert!(session.get("user_agent").is_some());
    }

    // Bob cannot end Alice's session, nor can anyone end an unknown one.
    let bobs_try = server
        .with_token(Method::DELETE, &format!("/sessions/{phone_id}"), &bob)
        .await;
    assert_eq!(bobs_try.status, StatusCode::NOT_FOUND);
    assert_eq!(
        server.with_token(Method::GET, "/me", &phone).await.status,
        StatusCode::OK
    );
    for unknown in ["AAAAAAAAAAAAAAAAAAAAAA", "not-an-id"] {
        let reply = server
            .with_token(Method::DELETE, &format!("/sessions/{unknown}"), &laptop)
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{unknown}");
    }

    let ended = server
        .with_token(Method::DELETE, &format!("/sessions/{phone_id}"), &laptop)
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.with_token(Method::GET, "/me", &phone).await.status,
        StatusCode::UNAUTHORIZED
    );
    let listed = server.with_token(Method::GET, "/sessions", &laptop).await;
    let ids: Vec<_> = listed.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [laptop_id]);
    assert_eq!(
        server
            .with_token(Method::GET, "/sessions", "bad")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_eleventh_login_ends_one_of_the_ten() {
    // Which one is the oldest is decided by creation time (tested on a manual clock in
    // tests/refresh.rs); these eleven logins may share one second.
    let server = Server::start().await;
    let mut tokens = Vec::new();
    for _ in 0..11 {
        tokens.push(server.token("alice", "wonderland").await);
    }
    let mut refused = 0;
    for token in &tokens {
        if server.with_token(Method::GET, "/me", token).await.status == StatusCode::UNAUTHORIZED {
            refused += 1;
        }
    }
    assert_eq!(refused, 1);
    assert_eq!(server.sessions.list("alice").await.unwrap().len(), 10);
}

#[cfg(feature = "redis")]
mod support;

/// Two demo processes (here two servers) with the same key on one Redis share sessions.
#[cfg(feature = "redis")]
#[tokio::test]
async fn two_demo_instances_on_one_redis_share_sessions() {
    use tower_jwt_auth::store::RedisStore;

    let redis = support::TestRedis::get();
    let prefix = support::unique_prefix("two_demos");
    let store = || async {
        RedisStore::connect(redis.url())
            .await
            .unwrap()
            .prefix(prefix.clone())
    };
    let a = Server::serve(configured(store().await)).await;
    let b = Server::serve(configured(store().await)).await;
    share_sessions(&a, &b, Duration::ZERO).await;
}

/// The same with a near-cache on each instance (`NEAR_CACHE=1`): a logout on one is
/// refused by the other's cache at the next request.
#[cfg(feature = "redis")]
#[tokio::test]
async fn two_demo_instances_with_near_caches_share_sessions() {
    use tower_jwt_auth::store::redis::redis::Client;
    use tower_jwt_auth::store::{NearCacheConfig, RedisStore};

    let redis = support::TestRedis::get();
    let prefix = support::unique_prefix("two_near_caches");
    let store = || async {
        let store = RedisStore::connect(redis.url())
            .await
            .unwrap()
            .prefix(prefix.clone());
        let feed = Client::open(redis.url()).unwrap();
        let store = store.near_cache(feed, NearCacheConfig::default());
        while !store.is_trusted() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        store
    };
    let a = Server::serve(configured(store().await)).await;
    let b = Server::serve(configured(store().await)).await;
    share_sessions(&a, &b, Duration::from_millis(50)).await;
}

#[cfg(feature = "redis")]
async fn share_sessions(a: &Server, b: &Server, event_travel: Duration) {
    let token = a.token("alice", "wonderland").await;
    assert_eq!(
        b.with_token(Method::GET, "/me", &token).await.status,
        StatusCode::OK
    );
    let other = b.token("alice", "wonderland").await;
    let listed = a.with_token(Method::GET, "/sessions", &token).await;
    assert_eq!(listed.body["sessions"].as_array().unwrap().len(), 2);

    // A logout on B ends the session on A at the very next request (with near-caches, once
    // the ending event has reached A).
    let logout = b.with_token(Method::POST, "/logout", &token).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    refused_within(a, &token, event_travel).await;
    assert_eq!(
        a.with_token(Method::GET, "/me", &other).await.status,
        StatusCode::OK
    );
    let all = a.with_token(Method::POST, "/logout/all", &other).await;
    assert_eq!(all.status, StatusCode::NO_CONTENT);
    refused_within(b, &other, event_travel).await;
}

/// `GET /me` with `token` on `server` is refused at once, or after at most `window`.
#[cfg(feature = "redis")]
async fn refused_within(server: &Server, token: &str, window: Duration) {
    let started = std::time::Instant::now();
    loop {
        match server.with_token(Method::GET, "/me", token).await.status {
            StatusCode::UNAUTHORIZED => return,
            StatusCode::OK if started.elapsed() < window => {}
            other => panic!("{other} {:?} after the logout", started.elapsed()),
        }
    }
}

// ===== every bad input, with its status and challenge =====

/// Signs `claims` with the server's key under `header`.
fn sign(header: &Header, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

fn access_header(alg: Algorithm) -> Header {
    Header {
        typ: Some("at+jwt".into()),
        ..Header::new(alg)
    }
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Claims of a real session, which the test can then bend.
fn claims_of(sub: &str, sid: &str) -> Value {
    json!({
        "sub": sub, "sid": sid, "jti": "test", "iat": now(), "exp": now() + 600,
        "iss": ISSUER, "aud": AUDIENCE,
    })
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A name, the `Authorization` header values sent, and the expected status, challenge
/// prefix and `error_description`.
type Case<'a> = (&'a str, Vec<Vec<u8>>, StatusCode, Option<&'a str>, &'a str);

const INVALID_TOKEN: &str = r#"Bearer error="invalid_token", error_description="#;

#[tokio::test]
async fn bad_inputs_get_their_exact_status_and_challenge() {
    let server = Server::start().await;
    let issued = server.sessions.issue(Login::new("alice")).await.unwrap();
    let valid = issued.access_token.clone();
    let sid = issued.session_id.to_string();
    let claims = claims_of("alice", &sid);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut bent = claims.clone();
        change(&mut bent);
        sign(&access_header(Algorithm::HS256), &bent)
    };
    let [head, payload, signature]: [&str; 3] =
        valid.split('.').collect::<Vec<_>>().try_into().unwrap();

    let revoked = server.sessions.issue(Login::new("alice")).await.unwrap();
    server
        .sessions
        .revoke("alice", &revoked.session_id)
        .await
        .unwrap();
    let deleted_user = server.sessions.issue(Login::new("carol")).await.unwrap();

    let rsa_token = jsonwebtoken::encode(
        &access_header(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap();
    let other_payload = b64(
        &json!({ "sub": "bob", "sid": sid, "jti": "x", "iat": now(), "exp": now() + 600, "iss": ISSUER, "aud": AUDIENCE }),
    );

    let bearer = |token: &str| format!("Bearer {token}").into_bytes();
    let missing_bearer: Option<&str> = Some("Bearer");
    let invalid_request = Some(r#"Bearer error="invalid_request", error_description="#);
    let invalid_token = Some(INVALID_TOKEN);

    #[rustfmt::skip]
    let cases: Vec<Case<'_>> = vec![
        ("missing header", vec![], StatusCode::UNAUTHORIZED, missing_bearer, ""),
        ("empty header", vec![b"".to_vec()], StatusCode::BAD_REQUEST, invalid_request, "malformed Authorization header"),
        ("Bearer alone", vec![b"Bearer".to_vec()], StatusCode::BAD_REQUEST, invalid_request, "malformed Authorization header"),
        ("Bearer a b", vec![b"Bearer a b".to_vec()], StatusCode::BAD_REQUEST, invalid_request, "malformed Authorization header"),
        ("wrong scheme", vec![format!("Basic {}", URL_SAFE_NO_PAD.encode("alice:wonderland")).into_bytes()], StatusCode::UNAUTHORIZED, missing_bearer, ""),
        ("lowercase scheme", vec![format!("bearer {valid}").into_bytes()], StatusCode::OK, None, ""),
        ("two headers", vec![bearer(&valid), bearer(&valid)], StatusCode::BAD_REQUEST, invalid_request, "more than one Authorization header"),
        ("non-UTF-8 bytes", vec![b"Bearer \xff\xfe".to_vec()], StatusCode::BAD_REQUEST, invalid_request, "malformed Authorization header"),
        ("oversize token", vec![bearer(&"a".repeat(8 * 1024 + 1))], StatusCode::UNAUTHORIZED, invalid_token, "token too long"),
        ("garbage", vec![bearer("abc.def.ghi")], StatusCode::UNAUTHORIZED, invalid_token, "malformed token"),
        ("not three parts", vec![bearer("abcdef")], StatusCode::UNAUTHORIZED, invalid_token, "malformed token"),
        ("alg none", vec![bearer(&format!("{}.{payload}.", b64(&json!({"alg": "none", "typ": "at+jwt"}))))], StatusCode::UNAUTHORIZED, invalid_token, "malformed token"),
        ("alg not configured (HS512)", vec![bearer(&sign(&access_header(Algorithm::HS512), &claims))], StatusCode::UNAUTHORIZED, invalid_token, "algorithm not allowed"),
        ("RS256 token against HS256", vec![bearer(&rsa_token)], StatusCode::UNAUTHORIZED, invalid_token, "algorithm not allowed"),
        ("payload swapped under a valid signature", vec![bearer(&format!("{head}.{other_payload}.{signature}"))], StatusCode::UNAUTHORIZED, invalid_token, "invalid signature"),
        ("truncated signature", vec![bearer(&valid[..valid.len() - 3])], StatusCode::UNAUTHORIZED, invalid_token, "invalid signature"),
        ("no signature", vec![bearer(&format!("{head}.{payload}."))], StatusCode::UNAUTHORIZED, invalid_token, "invalid signature"),
        ("expired", vec![bearer(&with(&|c| { c["exp"] = json!(now() - 120); }))], StatusCode::UNAUTHORIZED, invalid_token, "expired"),
        ("nbf in the future", vec![bearer(&with(&|c| { c["nbf"] = json!(now() + 120); }))], StatusCode::UNAUTHORIZED, invalid_token, "not yet valid"),
        ("wrong iss", vec![bearer(&with(&|c| { c["iss"] = json!("https://evil.test"); }))], StatusCode::UNAUTHORIZED, invalid_token, "wrong issuer"),
        ("missing iss", vec![bearer(&with(&|c| { c.as_object_mut().unwrap().remove("iss"); }))], StatusCode::UNAUTHORIZED, invalid_token, "missing required claim"),
        ("wrong aud", vec![bearer(&with(&|c| { c["aud"] = json!("other-api"); }))], StatusCode::UNAUTHORIZED, invalid_token, "wrong audience"),
        ("missing exp", vec![bearer(&with(&|c| { c.as_object_mut().unwrap().remove("exp"); }))], StatusCode::UNAUTHORIZED, invalid_token, "missing required claim"),
        ("missing sub", vec![bearer(&with(&|c| { c.as_object_mut().unwrap().remove("sub"); }))], StatusCode::UNAUTHORIZED, invalid_token, "missing required claim"),
        ("missing sid", vec![bearer(&with(&|c| { c.as_object_mut().unwrap().remove("sid"); }))], StatusCode::UNAUTHORIZED, invalid_token, "missing required claim"),
        ("malformed sid", vec![bearer(&with(&|c| { c["sid"] = json!("not-a-session-id"); }))], StatusCode::UNAUTHORIZED, invalid_token, "malformed token"),
        ("exp as a string", vec![bearer(&with(&|c| { c["exp"] = json!("tomorrow"); }))], StatusCode::UNAUTHORIZED, invalid_token, "malformed token"),
        ("typ of another kind of JWT", vec![bearer(&sign(&Header::new(Algorithm::HS256), &claims))], StatusCode::UNAUTHORIZED, invalid_token, "wrong token type"),
        ("unknown crit header", vec![bearer(&sign(&Header { crit: Some(vec!["exp".into()]), ..access_header(Algorithm::HS256) }, &claims))], StatusCode::UNAUTHORIZED, invalid_token, "unsupported critical header"),
        ("valid signature, session never created", vec![bearer(&with(&|c| { c["sid"] = json!("AAAAAAAAAAAAAAAAAAAAAA"); }))], StatusCode::UNAUTHORIZED, invalid_token, "revoked"),
        ("session of another user", vec![bearer(&with(&|c| { c["sub"] = json!("bob"); }))], StatusCode::UNAUTHORIZED, invalid_token, "revoked"),
        ("revoked session", vec![bearer(&revoked.access_token)], StatusCode::UNAUTHORIZED, invalid_token, "revoked"),
        ("deleted user", vec![bearer(&deleted_user.access_token)], StatusCode::UNAUTHORIZED, invalid_token, "unknown user"),
        ("valid", vec![bearer(&valid)], StatusCode::OK, None, ""),
    ];

    for (name, values, status, challenge, description) in cases {
        let headers: Vec<(&str, &[u8])> = values
            .iter()
            .map(|value| ("authorization", value.as_slice()))
            .collect();
        let reply = server.send(Method::GET, "/me", &headers, "").await;
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        match challenge {
            Some("Bearer") => assert_eq!(reply.challenge.as_deref(), Some("Bearer"), "{name}"),
            Some(prefix) => {
                let expected = format!("{prefix}\"{description}\"");
                assert_eq!(
                    reply.challenge.as_deref(),
                    Some(expected.as_str()),
                    "{name}"
                );
                assert_eq!(reply.body["error_description"], description, "{name}");
            }
            None => assert_eq!(reply.challenge, None, "{name}"),
        }
        if status != StatusCode::OK {
            let body = reply.body.to_string();
            assert!(
                !body.contains(&valid) && !body.contains(payload),
                "{name}: token echoed"
            );
        }
    }
}

// ===== concurrency =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_logout_returned_no_request_with_the_token_is_accepted() {
    let server = Arc::new(Server::start().await);
    let token = Arc::new(server.token("alice", "wonderland").await);
    let revoked = Arc::new(AtomicBool::new(false));
    let accepted_before = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (server, token, revoked, accepted_before) = (
            server.clone(),
            token.clone(),
            revoked.clone(),
            accepted_before.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut after = 0;
            // Bounded: stop after 20 requests sent once the revocation is known.
            while after < 20 {
                let sent_after_revoke = revoked.load(Ordering::SeqCst);
                let reply = server.with_token(Method::GET, "/me", &token).await;
                if sent_after_revoke {
                    assert_eq!(
                        reply.status,
                        StatusCode::UNAUTHORIZED,
                        "accepted after revoke"
                    );
                    after += 1;
                } else if reply.status == StatusCode::OK {
                    accepted_before.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let logout = server.with_token(Method::POST, "/logout", &token).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    revoked.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        accepted_before.load(Ordering::SeqCst) > 0,
        "the load ran before the logout"
    );
}

// ===== the ready-made surface: health, optional auth, scopes, the OAuth refresh form =====

#[tokio::test]
async fn health_answers_ok_without_authentication() {
    let server = Server::start().await;
    let reply = server.send(Method::GET, "/health", &[], "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "ok");
    assert!(
        reply.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
}

#[tokio::test]
async fn login_and_refresh_answers_carry_scope_and_are_never_cached() {
    let server = Server::start().await;
    let reply = server.login("bob", "builder").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["scope"], "profile admin");
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(reply.headers[header::PRAGMA], "no-cache");
    let refresh_token = reply.body["refresh_token"].as_str().unwrap();
    let body = json!({ "refresh_token": refresh_token }).to_string();
    let json = [("content-type", &b"application/json"[..])];
    let refreshed = server.send(Method::POST, "/refresh", &json, &body).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_eq!(refreshed.body["scope"], "profile admin");
    assert_eq!(refreshed.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(refreshed.headers[header::PRAGMA], "no-cache");
    // Presented again: retired, and the JSON form's refusal is 401.
    let again = server.send(Method::POST, "/refresh", &json, &body).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(again.body["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_takes_the_rfc_6749_form() {
    let server = Server::start().await;
    let reply = server.login("alice", "wonderland").await;
    let refresh_token = reply.body["refresh_token"].as_str().unwrap();
    let form = [("content-type", &b"application/x-www-form-urlencoded"[..])];
    let body = format!("grant_type=refresh_token&refresh_token={refresh_token}");
    let refreshed = server.send(Method::POST, "/refresh", &form, &body).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert!(refreshed.body["access_token"].is_string());
    assert_eq!(refreshed.body["scope"], "profile");

    for (body, code) in [
        (body.as_str(), "invalid_grant"), // retired now
        (
            "grant_type=refresh_token&refresh_token=x.y.z",
            "invalid_grant",
        ),
        (
            "grant_type=password&username=alice",
            "unsupported_grant_type",
        ),
        ("refresh_token=x.y.z", "invalid_request"),
    ] {
        let reply = server.send(Method::POST, "/refresh", &form, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.body["error"], code, "{body}");
    }
}

#[tokio::test]
async fn greeting_is_optional_but_never_lets_a_bad_token_pass() {
    let server = Server::start().await;
    let anonymous = server.send(Method::GET, "/greeting", &[], "").await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert_eq!(anonymous.body, json!({ "user": null }));

    let token = server.token("alice", "wonderland").await;
    let greeted = server.with_token(Method::GET, "/greeting", &token).await;
    assert_eq!(greeted.body, json!({ "user": "alice" }));

    let bad = server.with_token(Method::GET, "/greeting", "x.y.z").await;
    let me = server.with_token(Method::GET, "/me", "x.y.z").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!((bad.challenge, bad.body), (me.challenge, me.body));

    server.with_token(Method::POST, "/logout", &token).await;
    let revoked = server.with_token(Method::GET, "/greeting", &token).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    assert!(revoked.challenge.unwrap().contains("revoked"));
}

#[tokio::test]
async fn admin_needs_the_admin_scope() {
    let server = Server::start().await;
    let bob = server.token("bob", "builder").await;
    let reply = server.with_token(Method::GET, "/admin", &bob).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({ "admin": "bob" }));

    let alice = server.token("alice", "wonderland").await;
    let reply = server.with_token(Method::GET, "/admin", &alice).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.body["error"], "insufficient_scope");
    assert_eq!(
        reply.challenge.as_deref(),
        Some(
            r#"Bearer error="insufficient_scope", error_description="insufficient scope", scope="admin""#
        )
    );

    let none = server.send(Method::GET, "/admin", &[], "").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.challenge.as_deref(), Some("Bearer"));
    let bad = server.with_token(Method::GET, "/admin", "x.y.z").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
}

// ===== cookie mode: the browser's tokens never reach its scripts =====

/// The `Set-Cookie` values of `reply`, by cookie name.
fn set_cookies(reply: &Reply) -> Vec<(String, String)> {
    reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| {
            let value = value.to_str().unwrap();
            let name = value.split('=').next().unwrap().to_owned();
            (name, value.to_owned())
        })
        .collect()
}

/// The value of cookie `name` among `reply`'s `Set-Cookie` headers.
fn cookie_value(reply: &Reply, name: &str) -> String {
    let (_, set) = set_cookies(reply)
        .into_iter()
        .find(|(found, _)| found == name)
        .unwrap_or_else(|| panic!("no {name} cookie set"));
    set.split(';').next().unwrap()[name.len() + 1..].to_owned()
}

impl Server {
    async fn cookie_login(&self) -> Reply {
        let body = json!({ "username": "alice", "password": "wonderland" }).to_string();
        self.send(
            Method::POST,
            "/login",
            &[
                ("content-type", b"application/json"),
                ("token-delivery", b"cookie"),
            ],
            &body,
        )
        .await
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[tokio::test]
async fn cookie_login_sets_httponly_cookies_and_answers_no_token() {
    let server = Server::start().await;
    let reply = server.cookie_login().await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.get("access_token").is_none(), "{}", reply.body);
    assert!(reply.body.get("refresh_token").is_none(), "{}", reply.body);
    assert_eq!(reply.body["expires_in"], 900);
    let cookies = set_cookies(&reply);
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let (access, refresh) = (&cookies[0].1, &cookies[1].1);
    assert!(access.starts_with("access_token="), "{access}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=900"] {
        assert!(
            access.split("; ").any(|a| a == attribute),
            "{access}: {attribute}"
        );
    }
    assert!(refresh.starts_with("refresh_token="), "{refresh}");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/refresh",
        "Max-Age=604800",
    ] {
        assert!(
            refresh.split("; ").any(|a| a == attribute),
            "{refresh}: {attribute}"
        );
    }

    // The access cookie authenticates a safe request.
    let cookie = format!("access_token={}", cookie_value(&reply, "access_token"));
    let me = server
        .send(Method::GET, "/me", &[("cookie", cookie.as_bytes())], "")
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["sub"], "alice");

    // An API client that does not ask gets today's JSON and no cookie.
    let api = server.login("alice", "wonderland").await;
    assert!(api.body["access_token"].is_string());
    assert!(set_cookies(&api).is_empty());
}

#[tokio::test]
async fn cookie_refresh_rotates_both_cookies_and_a_replay_clears_them() {
    let server = Server::start().await;
    let login = server.cookie_login().await;
    let refresh = format!("refresh_token={}", cookie_value(&login, "refresh_token"));
    let origin = server.origin();
    let headers = [
        ("cookie", refresh.as_bytes()),
        ("origin", origin.as_bytes()),
    ];
    let rotated = server.send(Method::POST, "/refresh", &headers, "").await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert!(rotated.body.get("access_token").is_none());
    assert_ne!(
        cookie_value(&rotated, "refresh_token"),
        cookie_value(&login, "refresh_token")
    );
    assert_ne!(
        cookie_value(&rotated, "access_token"),
        cookie_value(&login, "access_token")
    );

    // The retired cookie again: refused (the session ends) and the cookies are cleared.
    let replay = server.send(Method::POST, "/refresh", &headers, "").await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(
        set_cookies(&replay)
            .iter()
            .all(|(_, set)| set.contains("Max-Age=0"))
    );
    assert_eq!(set_cookies(&replay).len(), 2);

    // From another origin, the refresh cookie is not honoured.
    let fresh = server.cookie_login().await;
    let refresh = format!("refresh_token={}", cookie_value(&fresh, "refresh_token"));
    let elsewhere = [
        ("cookie", refresh.as_bytes()),
        ("origin", &b"http://127.0.0.1:1"[..]),
    ];
    let refused = server.send(Method::POST, "/refresh", &elsewhere, "").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn cookie_logout_needs_the_same_origin_and_clears_the_cookies() {
    let server = Server::start().await;
    let login = server.cookie_login().await;
    let cookie = format!("access_token={}", cookie_value(&login, "access_token"));
    let cookie = cookie.as_bytes();

    // Another port of the same host is the same site, not the same origin.
    for headers in [
        vec![("cookie", cookie)],
        vec![("cookie", cookie), ("origin", &b"http://127.0.0.1:1"[..])],
        vec![("cookie", cookie), ("sec-fetch-site", &b"same-site"[..])],
    ] {
        let reply = server.send(Method::POST, "/logout/all", &headers, "").await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(reply.body["error"], "cross_site_request");
    }
    let me = server
        .send(Method::GET, "/me", &[("cookie", cookie)], "")
        .await;
    assert_eq!(me.status, StatusCode::OK, "the session is still alive");

    let same = [("cookie", cookie), ("sec-fetch-site", &b"same-origin"[..])];
    let reply = server.send(Method::POST, "/logout", &same, "").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let cleared = set_cookies(&reply);
    assert_eq!(cleared.len(), 2);
    assert!(cleared.iter().all(|(_, set)| set.contains("Max-Age=0")));
    let me = server
        .send(Method::GET, "/me", &[("cookie", cookie)], "")
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);

    // A bearer header is never subject to the origin check.
    let token = server.token("alice", "wonderland").await;
    let reply = server.with_token(Method::POST, "/logout", &token).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(set_cookies(&reply).is_empty());
}

// ===== live connections end with their session =====

impl Server {
    /// Opens `/events` with `token`; the response's body streams the events.
    async fn events(&self, token: &str) -> hyper::Response<hyper::body::Incoming> {
        let request = Request::get(format!("http://{}/events", self.addr))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::default())
            .unwrap();
        self.client.request(request).await.unwrap()
    }
}

/// Reads `body` until it ends; how many events it carried and how long it took after
/// `since`.
async fn read_to_end(
    mut body: hyper::body::Incoming,
    since: &std::sync::Mutex<Option<std::time::Instant>>,
) -> (usize, Duration) {
    let mut events = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            events += String::from_utf8_lossy(data)
                .matches("event: alive")
                .count();
        }
    }
    let since = since.lock().unwrap().expect("the session was ended");
    (events, since.elapsed())
}

#[tokio::test]
async fn an_event_stream_ends_within_a_second_of_a_logout_on_another_instance() {
    // Two instances sharing one allowlist (clones of a memory store share their sessions).
    let store = MemoryStore::new();
    let a = Server::serve(configured(store.clone())).await;
    let b = Server::serve(configured(store)).await;
    let token = a.token("alice", "wonderland").await;

    let for_a = a.events(&token).await;
    let for_b = b.events(&token).await;
    assert_eq!(for_b.status(), StatusCode::OK);
    assert_eq!(for_b.headers()[header::CONTENT_TYPE], "text/event-stream");
    let ended_at = Arc::new(std::sync::Mutex::new(None));
    let (on_a, on_b) = (Arc::clone(&ended_at), Arc::clone(&ended_at));
    let on_a = tokio::spawn(async move { read_to_end(for_a.into_body(), &on_a).await });
    let on_b = tokio::spawn(async move { read_to_end(for_b.into_body(), &on_b).await });
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // Timed from just before the logout is sent.
    *ended_at.lock().unwrap() = Some(std::time::Instant::now());
    let logout = a.with_token(Method::POST, "/logout", &token).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let (events, after) = tokio::time::timeout(Duration::from_secs(5), on_b)
        .await
        .expect("the stream on the other instance ended")
        .unwrap();
    assert!(events >= 2, "{events} events before the logout");
    assert!(
        after < Duration::from_millis(1100),
        "ended {after:?} after the logout"
    );
    // On the instance that handled the logout it ends at once.
    let (_, after) = on_a.await.unwrap();
    assert!(after < Duration::from_millis(1100), "{after:?}");

    // A logged-out token opens no stream.
    let refused = a.events(&token).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}
