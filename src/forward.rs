//! Identity headers for the service behind a gateway: [`ForwardIdentityLayer`].
//!
//! A gateway authenticates each request and forwards it to an upstream that does not check
//! tokens itself. The upstream must learn who is calling, and must not be fooled by a client
//! that sends those headers itself. [`ForwardIdentityLayer`] authenticates the request
//! exactly as [`JwtAuth`] does (the same 400/401/403/503 refusals), and then, before the
//! inner service (the proxy) sees the request:
//!
//! 1. removes every incoming header whose name starts with `x-auth-`, and `Authorization`
//!    (the upstream never sees the token);
//! 2. sets, from the verified token:
//!    - `x-auth-sub`: the user (`sub`),
//!    - `x-auth-sid`: the session id (`sid`),
//!    - `x-auth-scope`: the scope names, space-separated (empty when the token has none).
//!
//! The values are written as the token has them, except that `%`, spaces inside a name and
//! any byte outside visible ASCII are percent-encoded (`alice` stays `alice`, `zoë`
//! becomes `zo%C3%AB`), so any `sub` fits in a header and decodes back exactly.
//!
//! With [optional authentication](JwtAuthLayer::optional), a request without credentials
//! goes on with its `x-auth-*` headers removed and none set: an upstream tells "anonymous"
//! by the absence of `x-auth-sub`.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode, header};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_jwt_auth::{Keys, Login, Sessions, store::MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = Sessions::builder(Keys::hs256([7; 32])?, MemoryStore::new()).build()?;
//! // The proxy to the upstream; here, a service that shows what it would forward.
//! let gateway = ServiceBuilder::new()
//!     .layer(sessions.forward_identity())
//!     .service_fn(|request: Request<Full<Bytes>>| async move {
//!         let headers = request.headers();
//!         assert!(headers.get(header::AUTHORIZATION).is_none());
//!         let sub = headers["x-auth-sub"].to_str().unwrap_or_default().to_owned();
//!         Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(sub)))
//!     });
//!
//! let issued = sessions.issue(Login::new("alice")).await?;
//! let request = Request::get("/orders")
//!     .header(header::AUTHORIZATION, format!("Bearer {}", issued.access_token))
//!     .header("x-auth-sub", "bob") // forged: removed before the proxy sees it
//!     .body(Full::default())?;
//! let response = gateway.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! # use http_body_util::BodyExt;
//! # assert_eq!(response.into_body().collect().await?.to_bytes(), "alice");
//! # Ok(())
//! # }
//! ```
//!
//! What the upstream can trust: these three headers, on requests that can only reach it
//! through the gateway. What it must not: anything when it can be reached directly; keep it
//! on a private network or behind mutual TLS, since headers prove nothing on their own.

use std::fmt;
use std::marker::PhantomData;
use std::task::{Context, Poll};

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Claims, JwtAuth, JwtAuthLayer, Sessions};

/// The user (`sub`) of the verified token.
pub const X_AUTH_SUB: HeaderName = HeaderName::from_static("x-auth-sub");
/// The session id (`sid`) of the verified token.
pub const X_AUTH_SID: HeaderName = HeaderName::from_static("x-auth-sid");
/// The scope names of the verified token, space-separated.
pub const X_AUTH_SCOPE: HeaderName = HeaderName::from_static("x-auth-scope");

/// The prefix of the headers the gateway owns: every incoming one is removed.
const PREFIX: &str = "x-auth-";

/// Bytes percent-encoded in identity values: controls, space, `%`, and (always) non-ASCII.
const ENCODED: &AsciiSet = &CONTROLS.add(b' ').add(b'%');

/// Authenticates requests and hands the inner service the caller's identity as `x-auth-*`
/// headers, with the client's own `x-auth-*` and `Authorization` headers removed. From
/// [`Sessions::forward_identity`] or [`JwtAuthLayer::forward_identity`]. See the
/// [module docs](crate::forward).
pub struct ForwardIdentityLayer<St, C = (), R = ()> {
    auth: JwtAuthLayer<St, C, R>,
}

impl<St, C> ForwardIdentityLayer<St, C> {
    /// The layer for `sessions`, authenticating as [`Sessions::layer`] does.
    pub fn new(sessions: &Sessions<St, C>) -> Self {
        Self {
            auth: JwtAuthLayer::new(sessions.clone()),
        }
    }
}

impl<St, C, R> ForwardIdentityLayer<St, C, R> {
    /// The layer authenticating with `auth` (a scope requirement, a user lookup, optional
    /// authentication), then forwarding the identity.
    pub fn from_auth(auth: JwtAuthLayer<St, C, R>) -> Self {
        Self { auth }
    }
}

impl<S, St, C, R: Clone> Layer<S> for ForwardIdentityLayer<St, C, R> {
    type Service = JwtAuth<ForwardIdentity<S, C>, St, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        self.auth.layer(ForwardIdentity {
            inner,
            _claims: PhantomData,
        })
    }
}

impl<St, C, R: Clone> Clone for ForwardIdentityLayer<St, C, R> {
    fn clone(&self) -> Self {
        Self {
            auth: self.auth.clone(),
        }
    }
}

impl<St, C, R> fmt::Debug for ForwardIdentityLayer<St, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardIdentityLayer")
            .field("auth", &self.auth)
            .finish()
    }
}

/// The service inside [`JwtAuth`] that rewrites the identity headers before calling
/// `inner`; built by [`ForwardIdentityLayer`] only, so that it always sits behind the
/// authentication.
pub struct ForwardIdentity<S, C = ()> {
    inner: S,
    _claims: PhantomData<fn() -> C>,
}

impl<S, C> ForwardIdentity<S, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, B> Service<Request<B>> for ForwardIdentity<S, C>
where
    S: Service<Request<B>>,
    C: Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        set_identity(&mut parts.headers, parts.extensions.get::<Claims<C>>());
        self.inner.call(Request::from_parts(parts, body))
    }
}

/// Removes the client's `x-auth-*` and `Authorization` headers and sets the identity of
/// `claims`, when there are any.
fn set_identity<C>(headers: &mut HeaderMap, claims: Option<&Claims<C>>) {
    headers.remove(header::AUTHORIZATION);
    // Collected first: a map cannot lose entries while it is walked. Rarely any.
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(PREFIX))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    let Some(claims) = claims else {
        return;
    };
    headers.insert(X_AUTH_SUB, encode(&claims.sub));
    headers.insert(X_AUTH_SID, encode(&claims.sid.to_string()));
    let scope = claims
        .scopes()
        .map(|name| utf8_percent_encode(name, ENCODED).to_string())
        .collect::<Vec<_>>()
        .join(" ");
    headers.insert(X_AUTH_SCOPE, value(scope));
}

fn encode(text: &str) -> HeaderValue {
    value(utf8_percent_encode(text, ENCODED).to_string())
}

/// Percent-encoded text is visible ASCII (and single spaces between scope names), which
/// every header value may hold.
fn value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl<S: Clone, C> Clone for ForwardIdentity<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _claims: PhantomData,
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for ForwardIdentity<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardIdentity")
            .field("inner", &self.inner)
            .finish()
    }
}

// ===== constructors on the types users already hold =====

impl<St, C> Sessions<St, C> {
    /// The gateway's layer: authenticates like [`layer`](Self::layer), then replaces the
    /// client's `x-auth-*` and `Authorization` headers with the verified identity. See
    /// [`forward`](crate::forward).
    pub fn forward_identity(&self) -> ForwardIdentityLayer<St, C> {
        ForwardIdentityLayer::new(self)
    }
}

impl<St, C, R> JwtAuthLayer<St, C, R> {
    /// This layer's authentication, then the identity forwarded as `x-auth-*` headers; see
    /// [`forward`](crate::forward).
    pub fn forward_identity(self) -> ForwardIdentityLayer<St, C, R> {
        ForwardIdentityLayer::from_auth(self)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::{Response, StatusCode};
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::store::MemoryStore;
    use crate::{Keys, Login};

    fn sessions() -> Sessions<MemoryStore> {
        Sessions::builder(Keys::hs256([7; 32]).unwrap(), MemoryStore::new())
            .build()
            .unwrap()
    }

    /// Answers with the headers it received, one `name: value` a line, sorted.
    async fn headers_seen(
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let mut lines: Vec<String> = request
            .headers()
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
            .collect();
        lines.sort();
        Ok(Response::new(Full::from(lines.join("\n"))))
    }

    async fn seen<B>(response: Response<B>) -> String
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: fmt::Debug,
    {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn forged_identity_headers_are_replaced_by_the_verified_one() {
        let sessions = sessions();
        let issued = sessions
            .issue(Login::new("alice").scope("profile orders:read"))
            .await
            .unwrap();
        let gateway = ServiceBuilder::new()
            .layer(sessions.forward_identity())
            .service_fn(headers_seen);
        let request = Request::get("/")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", issued.access_token),
            )
            .header("x-auth-sub", "bob")
            .header("X-Auth-Sub", "mallory")
            .header("x-auth-scope", "admin")
            .header("x-auth-admin", "true")
            .header("x-authority", "kept")
            .header("accept", "text/plain")
            .body(Full::default())
            .unwrap();
        let response = gateway.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            seen(response).await,
            format!(
                "accept: text/plain\nx-auth-scope: profile orders:read\nx-auth-sid: {}\n\
                 x-auth-sub: alice\nx-authority: kept",
                issued.session_id
            )
        );
    }

    #[tokio::test]
    async fn values_outside_visible_ascii_are_percent_encoded() {
        let sessions = sessions();
        let issued = sessions
            .issue(Login::new("zoë 100%").scope("a%b"))
            .await
            .unwrap();
        let gateway = ServiceBuilder::new()
            .layer(sessions.forward_identity())
            .service_fn(headers_seen);
        let request = Request::get("/")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", issued.access_token),
            )
            .body(Full::default())
            .unwrap();
        let seen = seen(gateway.oneshot(request).await.unwrap()).await;
        let lines: Vec<&str> = seen.lines().collect();
        assert!(lines.contains(&"x-auth-sub: zo%C3%AB%20100%25"), "{seen}");
        assert!(lines.contains(&"x-auth-scope: a%25b"), "{seen}");
    }

    #[tokio::test]
    async fn refusals_never_reach_the_proxy() {
        let sessions = sessions();
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        sessions.revoke("alice", &issued.session_id).await.unwrap();
        let gateway = ServiceBuilder::new()
            .layer(sessions.forward_identity())
            .service_fn(|_: Request<Full<Bytes>>| async {
                panic!("a refused request must not be forwarded");
                #[allow(unreachable_code)]
                Ok::<Response<Full<Bytes>>, Infallible>(Response::default())
            });
        for authorization in [
            None,
            Some("Bearer not.a.token".to_owned()),
            Some("Bearer a b".to_owned()),
            Some(format!("Bearer {}", issued.access_token)),
        ] {
            let mut request = Request::get("/").header("x-auth-sub", "alice");
            if let Some(value) = &authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            let response = gateway
                .clone()
                .oneshot(request.body(Full::default()).unwrap())
                .await
                .unwrap();
            assert!(
                response.status().is_client_error(),
                "{authorization:?}: {}",
                response.status()
            );
        }
    }

    #[tokio::test]
    async fn an_anonymous_request_carries_no_identity_at_all() {
        let sessions = sessions();
        let gateway = ServiceBuilder::new()
            .layer(sessions.layer().optional().forward_identity())
            .service_fn(headers_seen);
        let request = Request::get("/")
            .header("x-auth-sub", "bob")
            .header("x-auth-sid", "AAAAAAAAAAAAAAAAAAAAAA")
            .header(header::AUTHORIZATION, "Basic Ym9iOmJ1aWxkZXI=")
            .body(Full::default())
            .unwrap();
        let response = gateway.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(seen(response).await, "");
    }

    #[tokio::test]
    async fn a_required_scope_is_checked_before_forwarding() {
        let sessions = sessions();
        let issued = sessions
            .issue(Login::new("alice").scope("profile"))
            .await
            .unwrap();
        let gateway = ServiceBuilder::new()
            .layer(sessions.layer().require_scope("admin").forward_identity())
            .service_fn(headers_seen);
        let request = Request::get("/")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", issued.access_token),
            )
            .body(Full::default())
            .unwrap();
        let response = gateway.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
}
