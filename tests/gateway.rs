//! End to end: the demo issues tokens, the gateway example checks them against the same
//! allowlist and forwards to a real upstream that answers with what it received.
//!
//! The issuer and the gateway share a memory store in this process here; with feature
//! `redis` they share a real Redis as two deployments would.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/demo.rs"]
mod demo;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/gateway.rs"]
mod gateway;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower_jwt_auth::store::{AnyStore, MemoryStore, SessionStore};
use tower_jwt_auth::{Keys, Sessions};

const SECRET: &[u8] = b"the issuer's and the gateway's key, 32+ bytes";

// ===== the upstream: tells what it received =====

/// A real HTTP/1 server: `/slow` answers after 10 s, `/stream` echoes its body as it comes,
/// `/hop` answers with hop-by-hop headers, anything else with JSON `{"method", "uri",
/// "headers": [[name, value]], "body"}`.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(echo)),
            );
        }
    });
    addr
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type EchoBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

fn boxed<B>(body: B) -> EchoBody
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

async fn echo(request: Request<Incoming>) -> Result<Response<EchoBody>, Infallible> {
    match request.uri().path() {
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(Response::new(boxed(Full::from("late"))))
        }
        "/stream" => Ok(Response::new(boxed(request.into_body()))),
        "/stall" => {
            // The head and one chunk, then nothing for a minute.
            let (sender, body) = mpsc::channel(1);
            tokio::spawn(async move {
                let _ = sender.send(Bytes::from_static(b"begun")).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(sender);
            });
            Ok(Response::new(boxed(Chunks(body))))
        }
        "/hop" => Ok(Response::builder()
            .header(header::CONNECTION, "x-upstream-hop")
            .header("x-upstream-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic")
            .header("x-kept", "1")
            .body(boxed(Full::from("hop")))
            .unwrap()),
        _ => {
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            let headers: Vec<(String, String)> = request
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into(),
                    )
                })
                .collect();
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let reply = json!({
                "method": method,
                "uri": uri,
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            });
            Ok(Response::new(boxed(Full::from(reply.to_string()))))
        }
    }
}

/// What the upstream received.
struct Received(Value);

impl Received {
    /// Every value of header `name`, in order.
    fn all(&self, name: &str) -> Vec<&str> {
        self.0["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str().unwrap())
            .collect()
    }

    fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} more than once: {all:?}");
        all.first().copied()
    }
}

// ===== the issuer and the gateway =====

struct Setup {
    demo: SocketAddr,
    gateway: SocketAddr,
    upstream: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Setup {
    /// The demo and a gateway on one memory store, in front of a fresh upstream.
    async fn start(timeout: Duration) -> Self {
        let store = MemoryStore::new();
        let upstream = upstream().await;
        Self::on(store.clone().into(), store, upstream, timeout).await
    }

    /// The demo on `issuer_store` and a gateway on `gateway_store`, forwarding to
    /// `upstream`.
    async fn on<St>(
        issuer_store: AnyStore,
        gateway_store: St,
        upstream: SocketAddr,
        timeout: Duration,
    ) -> Self
    where
        St: SessionStore + Send + Sync + 'static,
    {
        let issuer = demo::policy(Sessions::builder(
            Keys::hs256(SECRET).unwrap(),
            issuer_store,
        ))
        .build()
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let demo = listener.local_addr().unwrap();
        tokio::spawn(demo::serve(listener, issuer));

        let sessions = Sessions::builder(Keys::hs256(SECRET).unwrap(), gateway_store)
            .build()
            .unwrap();
        let proxy = gateway::Proxy::new(format!("http://{upstream}").parse().unwrap(), timeout);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = listener.local_addr().unwrap();
        tokio::spawn(gateway::serve(listener, gateway::gateway(&sessions, proxy)));

        Self {
            demo,
            gateway,
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn send(
        &self,
        to: SocketAddr,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{to}{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::from(body.to_owned())).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body)
    }

    /// Logs `username` in on the demo: its access token and session id.
    async fn login(&self, username: &str, password: &str) -> (String, String) {
        let body = json!({ "username": username, "password": password }).to_string();
        let (status, _, body) = self
            .send(
                self.demo,
                Method::POST,
                "/login",
                &[("content-type", "application/json")],
                &body,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let token = serde_json::from_slice::<Value>(&body).unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let bearer = format!("Bearer {token}");
        let (_, _, me) = self
            .send(
                self.demo,
                Method::GET,
                "/me",
                &[("authorization", &bearer)],
                "",
            )
            .await;
        let sid = serde_json::from_slice::<Value>(&me).unwrap()["sid"]
            .as_str()
            .unwrap()
            .to_owned();
        (token, sid)
    }

    /// A request through the gateway; what the upstream received when it got through.
    async fn through(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, HeaderMap, Result<Received, Bytes>) {
        let (status, response_headers, body) =
            self.send(self.gateway, method, path, headers, body).await;
        let received = match serde_json::from_slice::<Value>(&body) {
            Ok(value) if value.get("headers").is_some() => Ok(Received(value)),
            _ => Err(body),
        };
        (status, response_headers, received)
    }
}

// ===== identity =====

#[tokio::test]
async fn the_upstream_gets_the_verified_identity_and_never_the_token() {
    let setup = Setup::start(Duration::from_secs(5)).await;
    let (token, sid) = setup.login("alice", "wonderland").await;
    let bearer = format!("Bearer {token}");
    let (status, _, received) = setup
        .through(
            Method::POST,
            "/orders/7?expand=items&x=%20",
            &[
                ("authorization", &bearer),
                ("content-type", "text/plain"),
                ("accept", "application/json"),
            ],
            "two apples",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let received = received.unwrap();
    assert_eq!(received.0["method"], "POST");
    assert_eq!(received.0["uri"], "/orders/7?expand=items&x=%20");
    assert_eq!(received.0["body"], "two apples");
    assert_eq!(received.one("x-auth-sub"), Some("alice"));
    assert_eq!(received.one("x-auth-sid"), Some(sid.as_str()));
    assert_eq!(received.one("x-auth-scope"), Some("profile"));
    assert_eq!(received.one("authorization"), None);
    assert_eq!(received.one("content-type"), Some("text/plain"));
    assert_eq!(received.one("accept"), Some("application/json"));
    assert_eq!(
        received.one("host"),
        Some(setup.upstream.to_string().as_str())
    );
    assert!(!received.0.to_string().contains(&token), "the token leaked");
}

#[tokio::test]
async fn a_forged_identity_arrives_as_the_token_s_owner() {
    let setup = Setup::start(Duration::from_secs(5)).await;
    let (token, sid) = setup.login("alice", "wonderland").await;
    let bearer = format!("Bearer {token}");
    let (status, _, received) = setup
        .through(
            Method::GET,
            "/admin",
            &[
                ("authorization", &bearer),
                ("x-auth-sub", "bob"),
                ("X-Auth-Scope", "profile admin"),
                ("x-auth-sid", "AAAAAAAAAAAAAAAAAAAAAA"),
                ("x-auth-role", "root"),
                // Naming the gateway's own headers hop-by-hop removes nothing of them.
                ("connection", "x-auth-sub, x-auth-sid"),
            ],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let received = received.unwrap();
    assert_eq!(received.all("x-auth-sub"), ["alice"]);
    assert_eq!(received.all("x-auth-scope"), ["profile"]);
    assert_eq!(received.all("x-auth-sid"), [sid.as_str()]);
    assert!(received.all("x-auth-role").is_empty());
}

// ===== refusals: the demo's =====

#[tokio::test]
async fn refusals_are_the_demo_s_and_never_reach_the_upstream() {
    let setup = Setup::start(Duration::from_secs(5)).await;
    for (headers, status) in [
        (vec![], StatusCode::UNAUTHORIZED),
        (
            vec![("authorization", "Bearer not.a.token")],
            StatusCode::UNAUTHORIZED,
        ),
        (
            vec![("authorization", "Bearer a b")],
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let through = setup.through(Method::GET, "/me", &headers, "").await;
        let direct = setup
            .send(setup.demo, Method::GET, "/me", &headers, "")
            .await;
        assert_eq!(through.0, status, "{headers:?}");
        assert_eq!(direct.0, status, "{headers:?}");
        assert_eq!(
            through.1.get(header::WWW_AUTHENTICATE),
            direct.1.get(header::WWW_AUTHENTICATE)
        );
        assert_eq!(through.2.err().unwrap(), direct.2);
    }
}

#[tokio::test]
async fn after_logout_on_the_issuer_the_gateway_refuses_the_token() {
    let setup = Setup::start(Duration::from_secs(5)).await;
    let (token, _) = setup.login("alice", "wonderland").await;
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    let (status, ..) = setup.through(Method::GET, "/", &auth, "").await;
    assert_eq!(status, StatusCode::OK);

    let (status, ..) = setup
        .send(setup.demo, Method::POST, "/logout", &auth, "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, headers, received) = setup.through(Method::GET, "/", &auth, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers[header::WWW_AUTHENTICATE],
        r#"Bearer error="invalid_token", error_description="revoked""#
    );
    assert!(received.is_err());
}

#[tokio::test]
async fn a_store_that_cannot_answer_fails_closed_with_503() {
    let upstream = upstream().await;
    let setup = Setup::on(
        MemoryStore::new().into(),
        Down,
        upstream,
        Duration::from_secs(5),
    )
    .await;
    let (token, _) = setup.login("alice", "wonderland").await;
    let bearer = format!("Bearer {token}");
    let (status, headers, received) = setup
        .through(Method::GET, "/", &[("authorization", &bearer)], "")
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert!(received.is_err());
}

/// A store whose every check fails.
struct Down;

impl SessionStore for Down {
    type IsActive = std::future::Ready<Result<bool, tower_jwt_auth::store::StoreError>>;

    async fn create(
        &self,
        _: &tower_jwt_auth::store::Session,
        _: Option<tower_jwt_auth::store::SessionLimit>,
    ) -> Result<tower_jwt_auth::store::Created, tower_jwt_auth::store::StoreError> {
        Err(tower_jwt_auth::store::StoreError::Timeout)
    }
    fn is_active(&self, _: &str, _: &tower_jwt_auth::SessionId, _: u64, _: u64) -> Self::IsActive {
        std::future::ready(Err(tower_jwt_auth::store::StoreError::Unavailable(
            "connection refused".into(),
        )))
    }
    async fn rotate(
        &self,
        _: &str,
        _: &tower_jwt_auth::SessionId,
        _: &tower_jwt_auth::store::Rotation,
    ) -> Result<tower_jwt_auth::store::Rotated, tower_jwt_auth::store::StoreError> {
        Err(tower_jwt_auth::store::StoreError::Timeout)
    }
    async fn revoke_authenticated_before(
        &self,
        _: &str,
        _: std::time::SystemTime,
        _: std::time::SystemTime,
    ) -> Result<u64, tower_jwt_auth::store::StoreError> {
        Err(tower_jwt_auth::store::StoreError::Timeout)
    }
    async fn revoke(
        &self,
        _: &str,
        _: &tower_jwt_auth::SessionId,
    ) -> Result<bool, tower_jwt_auth::store::StoreError> {
        Err(tower_jwt_auth::store::StoreError::Timeout)
    }
    async fn revoke_all(&self, _: &str) -> Result<u64, tower_jwt_auth::store::StoreError> {
        Err(tower_jwt_auth::store::StoreError::Timeout)
    }
    async fn list(
        &self,
        _: &str,
        _: u64,
        _: usize,
    ) -> Result<Vec<tower_jwt_auth::store::Session>, tower_jwt_auth::store::StoreError> {
        Err(tower_jwt_auth::store::StoreError::Timeout)
    }
}

// ===== proxying =====

#[tokio::test]
async fn hop_by_hop_headers_stop_at_the_gateway_both_ways() {
    let setup = Setup::start(Duration::from_secs(5)).await;
    let (token, _) = setup.login("alice", "wonderland").await;
    let bearer = format!("Bearer {token}");
    let (status, _, received) = setup
        .through(
            Method::GET,
            "/",
            &[
                ("authorization", &bearer),
                ("connection", "x-hop-a, X-Hop-B"),
                ("x-hop-a", "1"),
                ("x-hop-b", "1"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("upgrade", "websocket"),
                ("proxy-authorization", "Basic eDp5"),
                ("proxy-connection", "keep-alive"),
                ("x-end-to-end", "1"),
            ],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let received = received.unwrap();
    for name in [
        "x-hop-a",
        "x-hop-b",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "transfer-encoding",
    ] {
        assert_eq!(received.one(name), None, "{name} was forwarded");
    }
    assert_eq!(received.one("x-end-to-end"), Some("1"));
    assert_eq!(received.one("via"), Some("1.1 gateway"));

    let (status, headers, _) = setup
        .through(Method::GET, "/hop", &[("authorization", &bearer)], "")
        .await;
    assert_eq!(status, StatusCode::OK);
    for name in ["x-upstream-hop", "keep-alive", "proxy-authenticate"] {
        assert!(headers.get(name).is_none(), "{name} came back");
    }
    assert_eq!(headers["x-kept"], "1");
}

#[tokio::test]
async fn forwarded_for_lists_grow_by_this_hop() {
    let setup = Setup::start(Duration::from_secs(5)).await;
    let (token, _) = setup.login("alice", "wonderland").await;
    let bearer = format!("Bearer {token}");
    let host = setup.gateway.to_string();
    let (_, _, received) = setup
        .through(Method::GET, "/", &[("authorization", &bearer)], "")
        .await;
    let received = received.unwrap();
    assert_eq!(received.one("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        received.one("forwarded"),
        Some(format!("for=127.0.0.1;host=\"{host}\";proto=http").as_str())
    );

    let (_, _, received) = setup
        .through(
            Method::GET,
            "/",
            &[
                ("authorization", &bearer),
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-for", "198.51.100.2"),
                ("forwarded", "for=203.0.113.7"),
            ],
            "",
        )
        .await;
    let received = received.unwrap();
    assert_eq!(
        received.one("x-forwarded-for"),
        Some("203.0.113.7, 198.51.100.2, 127.0.0.1")
    );
    assert_eq!(
        received.one("forwarded"),
        Some(format!("for=203.0.113.7, for=127.0.0.1;host=\"{host}\";proto=http").as_str())
    );
}

/// A request body fed by the test, one chunk at a time.
struct Chunks(mpsc::Receiver<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

#[tokio::test]
async fn bodies_stream_through_both_ways() {
    let setup = Setup::start(Duration::from_secs(5)).await;
    let (token, _) = setup.login("alice", "wonderland").await;
    let client: Client<HttpConnector, Chunks> = Client::builder(TokioExecutor::new()).build_http();
    let (chunks, body) = mpsc::channel(1);
    let request = Request::post(format!("http://{}/stream", setup.gateway))
        .header("authorization", format!("Bearer {token}"))
        .body(Chunks(body))
        .unwrap();
    chunks.send(Bytes::from_static(b"first")).await.unwrap();
    // The answer starts, and its first chunk comes back, while the request is unfinished:
    // a gateway that buffered either body would wait here forever.
    let within = Duration::from_secs(5);
    let response = tokio::time::timeout(within, client.request(request))
        .await
        .expect("the response head before the request body ended")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = tokio::time::timeout(within, body.frame())
        .await
        .expect("the first chunk echoed before the request body ended")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(first, "first");
    chunks.send(Bytes::from_static(b"second")).await.unwrap();
    drop(chunks);
    let rest = tokio::time::timeout(within, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "second");
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_off_not_left_hanging() {
    let setup = Setup::start(Duration::from_millis(300)).await;
    let (token, _) = setup.login("alice", "wonderland").await;
    let request = Request::get(format!("http://{}/stall", setup.gateway))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    let response = setup.client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "begun");
    let started = Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("the stalled body ends within the timeout");
    assert!(
        rest.is_err(),
        "a cut-off body must not pass for a complete one"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn the_gateway_answers_in_its_own_protocol_version() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An HTTP/1.0 upstream, written by hand.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let old = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream
                .write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nold")
                .await;
        }
    });
    let store = MemoryStore::new();
    let setup = Setup::on(store.clone().into(), store, old, Duration::from_secs(5)).await;
    let (token, _) = setup.login("alice", "wonderland").await;
    let request = Request::get(format!("http://{}/", setup.gateway))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    let response = setup.client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "old"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_502() {
    // A port that was free a moment ago: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let store = MemoryStore::new();
    let setup = Setup::on(store.clone().into(), store, closed, Duration::from_secs(5)).await;
    let (token, _) = setup.login("alice", "wonderland").await;
    let bearer = format!("Bearer {token}");
    let (status, _, body) = setup
        .through(Method::GET, "/", &[("authorization", &bearer)], "")
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let body: Value = serde_json::from_slice(&body.err().unwrap()).unwrap();
    assert_eq!(body["error"], "bad_gateway");
}

#[tokio::test]
async fn a_slow_upstream_is_504_within_the_timeout() {
    let setup = Setup::start(Duration::from_millis(300)).await;
    let (token, _) = setup.login("alice", "wonderland").await;
    let bearer = format!("Bearer {token}");
    let started = Instant::now();
    let (status, _, body) = setup
        .through(Method::GET, "/slow", &[("authorization", &bearer)], "")
        .await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let body: Value = serde_json::from_slice(&body.err().unwrap()).unwrap();
    assert_eq!(body["error"], "gateway_timeout");
    // The gateway still serves after a timeout.
    let (status, ..) = setup
        .through(Method::GET, "/", &[("authorization", &bearer)], "")
        .await;
    assert_eq!(status, StatusCode::OK);
}

// ===== the issuer and the gateway on a real Redis =====

#[cfg(feature = "redis")]
mod support;

#[cfg(feature = "redis")]
mod on_redis {
    use super::*;
    use tower_jwt_auth::store::RedisStore;

    /// Two stores on one Redis under one fresh prefix: the issuer's and the gateway's.
    async fn stores() -> (support::TestRedis, RedisStore, RedisStore) {
        let redis = support::TestRedis::get();
        let prefix = support::unique_prefix("gateway");
        let issuer = RedisStore::connect(redis.url())
            .await
            .unwrap()
            .prefix(prefix.clone());
        let gateway = RedisStore::connect(redis.url())
            .await
            .unwrap()
            .prefix(prefix);
        (redis, issuer, gateway)
    }

    #[tokio::test]
    async fn logout_on_the_issuer_is_refused_by_the_gateway_at_the_next_request() {
        let (_redis, issuer, gateway_store) = stores().await;
        let upstream = upstream().await;
        let setup = Setup::on(
            issuer.into(),
            gateway_store,
            upstream,
            Duration::from_secs(5),
        )
        .await;
        let (token, sid) = setup.login("alice", "wonderland").await;
        let bearer = format!("Bearer {token}");
        let (status, _, received) = setup
            .through(
                Method::GET,
                "/",
                &[("authorization", &bearer), ("x-auth-sub", "bob")],
                "",
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let received = received.unwrap();
        assert_eq!(received.all("x-auth-sub"), ["alice"]);
        assert_eq!(received.all("x-auth-sid"), [sid.as_str()]);
        assert!(received.all("authorization").is_empty());

        let (status, ..) = setup
            .send(
                setup.demo,
                Method::POST,
                "/logout",
                &[("authorization", &bearer)],
                "",
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, ..) = setup
            .through(Method::GET, "/", &[("authorization", &bearer)], "")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn upstream_down_and_slow_on_redis() {
        let (_redis, issuer, gateway_store) = stores().await;
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let setup = Setup::on(
            issuer.clone().into(),
            gateway_store.clone(),
            closed,
            Duration::from_secs(5),
        )
        .await;
        let (token, _) = setup.login("alice", "wonderland").await;
        let bearer = format!("Bearer {token}");
        let (status, ..) = setup
            .through(Method::GET, "/", &[("authorization", &bearer)], "")
            .await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);

        let slow = Setup::on(
            issuer.into(),
            gateway_store,
            upstream().await,
            Duration::from_millis(300),
        )
        .await;
        let (status, ..) = slow
            .through(Method::GET, "/slow", &[("authorization", &bearer)], "")
            .await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        // Leave the shared Redis as it was.
        let (status, ..) = setup
            .send(
                setup.demo,
                Method::POST,
                "/logout/all",
                &[("authorization", &bearer)],
                "",
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
}
