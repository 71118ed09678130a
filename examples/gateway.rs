//! An authenticating reverse proxy: every request is checked against the shared allowlist,
//! and an accepted one goes on to the upstream with the caller's identity in `x-auth-*`
//! headers.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379/ JWT_SECRET=... cargo run --example demo --features redis
//! REDIS_URL=redis://127.0.0.1:6379/ JWT_SECRET=... UPSTREAM=http://127.0.0.1:8080 \
//!     cargo run --example gateway --features redis
//! ```
//!
//! - `ADDR`: where to listen (default `127.0.0.1:3100`).
//! - `UPSTREAM` (required): the service behind it, `http://host:port` with an optional
//!   base path (`http://127.0.0.1:8080/api` sends `/orders` to `/api/orders`).
//! - `JWT_SECRET` (required): the issuer's HS256 key, at least 32 bytes, as for the demo.
//! - `DATABASE_URL` (instead of `REDIS_URL`, with `--features postgres` or `sqlite`): the
//!   SQL store the issuer writes.
//! - `REDIS_URL` (required, with `--features redis`): the store the issuer writes, so that a
//!   logout there is refused here at the next request.
//! - `UPSTREAM_TIMEOUT_MS`: how long to wait for the upstream's answer (default 30000).
//!
//! Each request is authenticated exactly as the demo's routes are (400, 401, 403, 503 with
//! the same bodies and challenges). An accepted one is forwarded with its method, path,
//! query and body (streamed both ways, never buffered), with:
//! - `x-auth-sub`, `x-auth-sid`, `x-auth-scope` from the verified token, after every
//!   `x-auth-*` header the client sent was removed, and without `Authorization`;
//! - the hop-by-hop headers of RFC 9110 §7.6.1 removed both ways (`Connection` and the
//!   headers it names, `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade`, `Proxy-*`);
//! - the client's address appended to `X-Forwarded-For` and `Forwarded` (RFC 7239), and
//!   `Via` (RFC 9110 §7.6.3).
//!
//! An upstream that cannot be reached is answered with 502; one that has not answered
//! (status and headers) within the timeout, with 504. A body the upstream then streams is
//! passed on as it comes; one that stalls for longer than the timeout between two chunks is
//! cut off (the client sees the connection end before the body did), never left hanging.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::util::MapRequest;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_jwt_auth::store::{AnyStore, SessionStore};
use tower_jwt_auth::{ForwardIdentity, JwtAuth, Keys, Sessions};

/// Any error that stops the gateway.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a forwarded answer: the upstream's, streamed, or the gateway's own.
pub type ProxyBody = Either<IdleTimeout, Full<Bytes>>;

/// The whole gateway: hop-by-hop headers removed, then authentication and the identity
/// headers, then the proxy.
pub type Gateway<St> =
    MapRequest<JwtAuth<ForwardIdentity<Proxy>, St>, fn(Request<Incoming>) -> Request<Incoming>>;

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("gateway: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), BoxError> {
    let addr: SocketAddr = std::env::var("ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3100".into())
        .parse()
        .map_err(|e| format!("ADDR is not a socket address: {e}"))?;
    let upstream: Upstream = std::env::var("UPSTREAM")
        .map_err(|_| "UPSTREAM is required: the service to forward to, e.g. http://127.0.0.1:8080")?
        .parse()?;
    let timeout = match std::env::var("UPSTREAM_TIMEOUT_MS") {
        Ok(ms) => match ms.parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                return Err(format!(
                    "UPSTREAM_TIMEOUT_MS must be a positive number of milliseconds, not {ms:?}"
                )
                .into());
            }
        },
        Err(_) => Duration::from_secs(30),
    };
    let keys = keys_from_env()?;
    let store = store_from_env().await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("forwarding to {upstream} (timeout {timeout:?})");
    let sessions = Sessions::builder(keys, store).build()?;
    serve(listener, gateway(&sessions, Proxy::new(upstream, timeout))).await
}

/// The issuer's HS256 key from `JWT_SECRET`: required, and at least 32 bytes as for the demo.
fn keys_from_env() -> Result<Keys, BoxError> {
    match std::env::var("JWT_SECRET") {
        Ok(secret) if secret.len() >= 32 => Ok(Keys::hs256(secret)?),
        Ok(secret) => Err(format!(
            "JWT_SECRET must be at least 32 bytes long (it has {}): use the issuer's",
            secret.len()
        )
        .into()),
        Err(_) => Err("JWT_SECRET is required: the key the issuer signs tokens with".into()),
    }
}

/// The store named by `REDIS_URL` or `DATABASE_URL`: a gateway only makes sense on the
/// allowlist its issuer writes, so there is no in-memory fallback.
async fn store_from_env() -> Result<AnyStore, BoxError> {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && std::env::var("REDIS_URL").is_err()
    {
        return sql_store(&url).await;
    }
    let Ok(url) = std::env::var("REDIS_URL") else {
        return Err(
            "REDIS_URL (or DATABASE_URL) is required: the gateway checks sessions in the \
             store its issuer writes (run the demo with the same one)"
                .into(),
        );
    };
    #[cfg(feature = "redis")]
    {
        let store = tower_jwt_auth::store::RedisStore::connect(&url).await?;
        println!("sessions: Redis at {url}");
        Ok(store.into())
    }
    #[cfg(not(feature = "redis"))]
    {
        Err(format!(
            "REDIS_URL is set ({url}) but this build has no Redis support: \
             run with --features redis"
        )
        .into())
    }
}

/// The SQL store the issuer writes (`postgres://…` or `sqlite://…`); its tables are the
/// issuer's to create. The URL is never printed: it may hold a password.
async fn sql_store(url: &str) -> Result<AnyStore, BoxError> {
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = tower_jwt_auth::store::PostgresStore::connect(url).await?;
        println!("sessions: PostgreSQL");
        return Ok(store.into());
    }
    #[cfg(feature = "sqlite")]
    if url.starts_with("sqlite:") {
        let store = tower_jwt_auth::store::SqliteStore::connect(url).await?;
        println!("sessions: SQLite");
        return Ok(store.into());
    }
    let _ = url;
    Err(
        "DATABASE_URL names no store this build has: run with --features postgres \
         (postgres://...) or --features sqlite (sqlite://...)"
            .into(),
    )
}

/// The gateway of `sessions` in front of `proxy`.
pub fn gateway<St: SessionStore>(sessions: &Sessions<St>, proxy: Proxy) -> Gateway<St> {
    ServiceBuilder::new()
        // Before authentication, so that `Connection` cannot name the identity headers
        // away once they are set.
        .map_request(remove_hop_by_hop as fn(Request<Incoming>) -> Request<Incoming>)
        .layer(sessions.forward_identity())
        .service(proxy)
}

/// Serves `gateway` on `listener` until the process ends.
pub async fn serve<St>(listener: TcpListener, gateway: Gateway<St>) -> Result<(), BoxError>
where
    St: SessionStore + Send + Sync + 'static,
{
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors, say: wait a little rather than spin or stop.
            Err(error) => {
                eprintln!("gateway: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let gateway = gateway.clone();
        let service = tower::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(Peer(peer));
            gateway.clone().oneshot(request)
        });
        tokio::spawn(async move {
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .await;
            if let Err(error) = served {
                eprintln!("gateway: connection from {peer}: {error}");
            }
        });
    }
}

/// The address of the client a request came from.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

// ===== the upstream =====

/// Where requests go: an `http://` origin and a base path.
#[derive(Debug, Clone)]
pub struct Upstream {
    authority: Authority,
    /// Without a trailing `/`; empty for the root.
    base: String,
}

impl std::str::FromStr for Upstream {
    type Err = BoxError;

    fn from_str(text: &str) -> Result<Self, BoxError> {
        let uri: Uri = text
            .parse()
            .map_err(|e| format!("UPSTREAM is not a URL ({text:?}): {e}"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(format!("UPSTREAM must be an http:// URL, not {text:?}").into());
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("UPSTREAM names no host: {text:?}"))?;
        if uri.query().is_some() {
            return Err(format!("UPSTREAM cannot have a query: {text:?}").into());
        }
        Ok(Self {
            authority,
            base: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.base)
    }
}

impl Upstream {
    /// The upstream URI for a request's `path?query`; `None` for anything else than an
    /// origin-form path (`*`, an authority).
    fn uri_for(&self, uri: &Uri) -> Option<Uri> {
        let path = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        if !path.starts_with('/') {
            return None;
        }
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(format!("{}{path}", self.base))
            .build()
            .ok()
    }
}

// ===== the proxy =====

/// Forwards requests to the [`Upstream`]; the last service of the [`Gateway`].
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<ProxyShared>,
}

struct ProxyShared {
    upstream: Upstream,
    timeout: Duration,
    client: Client<HttpConnector, Incoming>,
}

impl Proxy {
    /// A proxy to `upstream`, waiting at most `timeout` for its answer.
    pub fn new(upstream: Upstream, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self {
            shared: Arc::new(ProxyShared {
                upstream,
                timeout,
                client,
            }),
        }
    }
}

impl Service<Request<Incoming>> for Proxy {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { Ok(shared.forward(request).await) })
    }
}

impl ProxyShared {
    async fn forward(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let (mut parts, body) = request.into_parts();
        let Some(uri) = self.upstream.uri_for(&parts.uri) else {
            let (status, description) = if parts.method == Method::CONNECT {
                (StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not forwarded")
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    "only origin-form request targets are forwarded",
                )
            };
            return answer(status, "invalid_request", description);
        };
        let peer = parts.extensions.get::<Peer>().map(|peer| peer.0.ip());
        // The upstream is told the host the client asked for; its own goes into `Host`.
        let host = parts.headers.remove(header::HOST);
        if let Some(peer) = peer {
            append(
                &mut parts.headers,
                X_FORWARDED_FOR,
                peer.to_string().as_bytes(),
            );
        }
        append(
            &mut parts.headers,
            FORWARDED,
            forwarded(peer, host.as_ref()).as_bytes(),
        );
        append(
            &mut parts.headers,
            header::VIA,
            via(parts.version).as_bytes(),
        );
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        parts.extensions = http::Extensions::new();

        let sent = self.client.request(Request::from_parts(parts, body));
        match tokio::time::timeout(self.timeout, sent).await {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                // The protocol version is this hop's own, whatever the upstream spoke.
                parts.version = Version::HTTP_11;
                Response::from_parts(parts, Either::Left(IdleTimeout::new(body, self.timeout)))
            }
            Ok(Err(error)) => {
                let cause = std::error::Error::source(&error)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                eprintln!("gateway: upstream {}: {error} {cause}", self.upstream);
                answer(
                    StatusCode::BAD_GATEWAY,
                    "bad_gateway",
                    "the upstream could not be reached",
                )
            }
            Err(_) => answer(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway_timeout",
                "the upstream did not answer in time",
            ),
        }
    }
}

/// The upstream's body, ended with an error when no chunk comes for `idle`.
pub struct IdleTimeout {
    body: Incoming,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

/// The upstream's body stopped coming.
#[derive(Debug, thiserror::Error)]
#[error("the upstream's body stalled for {0:?}")]
pub struct Stalled(Duration);

impl IdleTimeout {
    fn new(body: Incoming, idle: Duration) -> Self {
        Self {
            body,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl http_body::Body for IdleTimeout {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.idle;
                this.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|frame| frame.map_err(BoxError::from)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Stalled(this.idle).into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A small JSON answer of the gateway's own, in the shape of the layer's refusals.
fn answer(status: StatusCode, code: &str, description: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "error": code, "error_description": description });
    let mut response = Response::new(Either::Right(Full::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

// ===== headers =====

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// The request with its hop-by-hop headers removed.
fn remove_hop_by_hop(mut request: Request<Incoming>) -> Request<Incoming> {
    strip_hop_by_hop(request.headers_mut());
    request
}

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1): `Connection` and every header it
/// names, `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade` and `Proxy-*`. Framing is the
/// HTTP library's business on each hop, and an upgrade is not forwarded.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        KEEP_ALIVE,
        header::TE,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// Appends `element` to the comma-separated list `name`, folding earlier lines into one.
fn append(headers: &mut HeaderMap, name: HeaderName, element: &[u8]) {
    let mut list = Vec::new();
    for value in headers.get_all(&name) {
        list.extend_from_slice(value.as_bytes());
        list.extend_from_slice(b", ");
    }
    list.extend_from_slice(element);
    // Every part came from a header value, or is visible ASCII of ours.
    if let Ok(value) = HeaderValue::from_bytes(&list) {
        headers.insert(name, value);
    }
}

/// This hop's `Forwarded` element (RFC 7239): the client, the host it asked for, the
/// protocol.
fn forwarded(peer: Option<IpAddr>, host: Option<&HeaderValue>) -> String {
    let mut element = match peer {
        Some(IpAddr::V4(ip)) => format!("for={ip}"),
        Some(IpAddr::V6(ip)) => format!("for=\"[{ip}]\""),
        None => "for=unknown".to_owned(),
    };
    // A host that could break out of the quoted string is left out.
    if let Some(host) = host
        .and_then(|host| host.to_str().ok())
        .filter(|host| !host.is_empty() && !host.contains(['"', '\\']))
    {
        element.push_str(";host=\"");
        element.push_str(host);
        element.push('"');
    }
    element.push_str(";proto=http");
    element
}

/// This hop's `Via` element: the client's protocol version and a pseudonym.
fn via(version: Version) -> &'static str {
    match version {
        Version::HTTP_10 => "1.0 gateway",
        Version::HTTP_2 => "2 gateway",
        _ => "1.1 gateway",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_end_to_end_ones_stay() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("close, X-Hop"));
        headers.append(header::CONNECTION, HeaderValue::from_static("x-other"));
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert("x-other", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            "proxy-authorization",
            HeaderValue::from_static("Basic eA=="),
        );
        headers.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        let left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn forwarded_elements_quote_what_they_must() {
        let host = HeaderValue::from_static("example.com:8080");
        assert_eq!(
            forwarded(Some("192.0.2.1".parse().unwrap()), Some(&host)),
            "for=192.0.2.1;host=\"example.com:8080\";proto=http"
        );
        let evil = HeaderValue::from_static("a\";for=1.2.3.4");
        assert_eq!(
            forwarded(Some("2001:db8::1".parse().unwrap()), Some(&evil)),
            "for=\"[2001:db8::1]\";proto=http"
        );
    }

    #[test]
    fn upstream_paths_join_the_base() {
        let upstream: Upstream = "http://127.0.0.1:8080/api/".parse().unwrap();
        let uri = upstream.uri_for(&"/orders?id=1".parse().unwrap()).unwrap();
        assert_eq!(uri, "http://127.0.0.1:8080/api/orders?id=1");
        assert!(upstream.uri_for(&"*".parse().unwrap()).is_none());
        assert!("https://example.com".parse::<Upstream>().is_err());
        assert!("http://example.com/?a=1".parse::<Upstream>().is_err());
    }
}
