//! The refresh endpoint as a leaf service, and the hook that decides what refreshed tokens
//! grant.
//!
//! [`RefreshService`] (from [`Sessions::refresh_service`]) takes a refresh token and answers
//! a new pair ([`Issued::response`](crate::Issued::response)), in either of two forms:
//!
//! - JSON, `{"refresh_token": "…"}`: a refused token is `401` `invalid_grant` with
//!   `WWW-Authenticate: Bearer`; a body that is not such JSON `400` `invalid_request`;
//! - the OAuth 2.0 form (RFC 6749 §6), `grant_type=refresh_token&refresh_token=…` as
//!   `application/x-www-form-urlencoded`, so standard OAuth clients refresh against it: a
//!   refused token is `400 {"error":"invalid_grant"}`, another `grant_type`
//!   `unsupported_grant_type`, a missing or repeated parameter `invalid_request` (RFC 6749
//!   §5.2).
//!
//! A store that cannot answer is `503` with `Retry-After` in both. Bodies over 16 KiB are
//! `413`. Every answer carries `Cache-Control: no-store` and `Pragma: no-cache`.
//!
//! In [cookie mode](crate::cookies), a request with the refresh cookie and an empty body,
//! from the server's own origin, rotates both cookies (a refused one clears them), and a
//! request with `Token-Delivery: cookie` gets its new tokens as cookies.
//!
//! ```
//! use http::{Request, StatusCode, header};
//! use http_body_util::Full;
//! use tower::ServiceExt;
//! use tower_jwt_auth::{Keys, Login, Sessions, store::MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = Sessions::builder(Keys::hs256([7; 32])?, MemoryStore::new()).build()?;
//! let issued = sessions.issue(Login::new("alice")).await?;
//!
//! let form = format!("grant_type=refresh_token&refresh_token={}", issued.refresh_token);
//! let request = Request::post("/refresh")
//!     .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
//!     .body(Full::<bytes::Bytes>::from(form.clone()))?;
//! let response = sessions.refresh_service().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // The same refresh token again: it was rotated, so it is refused (and the session ends).
//! let request = Request::post("/refresh")
//!     .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
//!     .body(Full::<bytes::Bytes>::from(form))?;
//! let response = sessions.refresh_service().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::BAD_REQUEST);
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::error::{AuthError, json_response};
use crate::extract::cookie;
use crate::store::{BoxError, SessionStore};
use crate::{ResolveError, Sessions};

/// What a session's tokens grant: its user, scope and your own claims. A
/// [refresh hook](crate::SessionsBuilder::on_refresh) receives the grant of the presented
/// refresh token and answers the one the new tokens carry; `sub` cannot change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant<C = ()> {
    /// The user (read only: the session's user stays its user).
    pub sub: String,
    /// Space-separated scope names, or none.
    pub scope: Option<String>,
    /// Your own claims.
    pub custom: C,
}

type HookFuture<C> = Pin<Box<dyn Future<Output = Result<Option<Grant<C>>, ResolveError>> + Send>>;

/// A refresh hook, boxed: it runs once per refresh, off the request path.
pub(crate) type RefreshHook<C> = Box<dyn Fn(Grant<C>) -> HookFuture<C> + Send + Sync>;

/// The largest body a refresh request may have.
const MAX_BODY: usize = 16 * 1024;

/// The refresh endpoint. See the [module docs](crate::refresh).
pub struct RefreshService<St, C = ()> {
    sessions: Sessions<St, C>,
}

impl<St, C> RefreshService<St, C> {
    /// The refresh service of `sessions`.
    pub fn new(sessions: Sessions<St, C>) -> Self {
        Self { sessions }
    }
}

impl<St, C> Clone for RefreshService<St, C> {
    fn clone(&self) -> Self {
        Self {
            sessions: self.sessions.clone(),
        }
    }
}

impl<St, C> fmt::Debug for RefreshService<St, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshService")
            .field("sessions", &self.sessions)
            .finish()
    }
}

/// The response future of [`RefreshService`].
pub struct RefreshFuture {
    inner: Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>,
}

impl Future for RefreshFuture {
    type Output = Result<Response<Full<Bytes>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx).map(Ok)
    }
}

impl fmt::Debug for RefreshFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshFuture").finish_non_exhaustive()
    }
}

impl<St, C, B> Service<Request<B>> for RefreshService<St, C>
where
    St: SessionStore,
    C: Serialize + DeserializeOwned + Send + Sync + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = RefreshFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let sessions = self.sessions.clone();
        RefreshFuture {
            inner: Box::pin(async move { refresh(&sessions, request).await }),
        }
    }
}

/// How the client asked: JSON, or the OAuth 2.0 form.
#[derive(Clone, Copy)]
enum Form {
    Json,
    OAuth,
}

async fn refresh<St, C, B>(sessions: &Sessions<St, C>, request: Request<B>) -> Response<Full<Bytes>>
where
    St: SessionStore,
    C: Serialize + DeserializeOwned,
    B: Body,
    B::Error: Into<BoxError>,
{
    let form = if is_form(request.headers()) {
        Form::OAuth
    } else {
        Form::Json
    };
    let (parts, body) = request.into_parts();
    let cookies = sessions.cookie_config();
    let cookie_token = match cookies {
        Some(cookies) => match cookie(&parts.headers, cookies.refresh_name()) {
            Ok(token) => token.map(|token| String::from_utf8_lossy(token).into_owned()),
            Err(_) => {
                return bad_request(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "two refresh cookies",
                );
            }
        },
        None => None,
    };
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            let status = if error.is::<http_body_util::LengthLimitError>() {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return bad_request(status, "invalid_request", "unreadable body");
        }
    };
    // Cookie mode: the refresh cookie and an empty body, from the server's own pages.
    if let (Some(cookies), Some(token)) = (cookies, &cookie_token) {
        if !body.is_empty() {
            return bad_request(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "more than one credential",
            );
        }
        if !cookies.is_same_origin(&parts.method, &parts.headers) {
            let error = AuthError::CrossSiteRequest;
            return json_response(error.status(), error.code(), error.description());
        }
        return match sessions.refresh(token).await {
            Ok(issued) => issued.cookie_response(cookies),
            Err(error) => {
                let mut response = error.response();
                // A refresh cookie that no longer works is of no use to the browser.
                if error.status() == StatusCode::UNAUTHORIZED {
                    cookies.clear(&mut response);
                }
                response
            }
        };
    }
    let token = match form {
        Form::Json => json_token(&body),
        Form::OAuth => form_token(&body),
    };
    let token = match token {
        Ok(token) => token,
        Err((code, description)) => {
            return bad_request(StatusCode::BAD_REQUEST, code, description);
        }
    };
    match (sessions.refresh(&token).await, form) {
        (Ok(issued), _) => sessions.login_response(&issued, &parts.headers),
        (Err(error), Form::Json) => error.response(),
        (Err(error), Form::OAuth) => error.oauth_response(),
    }
}

fn is_form(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

type Refusal = (&'static str, &'static str);

fn json_token(body: &[u8]) -> Result<String, Refusal> {
    #[derive(serde::Deserialize)]
    struct RefreshRequest {
        refresh_token: String,
    }
    serde_json::from_slice::<RefreshRequest>(body)
        .map(|request| request.refresh_token)
        .map_err(|_| {
            (
                "invalid_request",
                "the body must be JSON {\"refresh_token\": \"...\"}",
            )
        })
}

/// The refresh token of an RFC 6749 §6 request; each parameter at most once (§3.2).
fn form_token(body: &[u8]) -> Result<String, Refusal> {
    let (mut grant_type, mut token) = (None, None);
    for (name, value) in form_urlencoded::parse(body) {
        let slot = match name.as_ref() {
            "grant_type" => &mut grant_type,
            "refresh_token" => &mut token,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(("invalid_request", "repeated parameter"));
        }
    }
    match grant_type.as_deref() {
        None => Err(("invalid_request", "missing grant_type")),
        Some("refresh_token") => token
            .map(|token| token.into_owned())
            .ok_or(("invalid_request", "missing refresh_token")),
        Some(_) => Err((
            "unsupported_grant_type",
            "only the refresh_token grant is supported",
        )),
    }
}

fn bad_request(status: StatusCode, code: &str, description: &str) -> Response<Full<Bytes>> {
    let mut response = json_response(status, code, description);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;
    use crate::store::MemoryStore;
    use crate::{Keys, Login};

    async fn answer(
        sessions: &Sessions<MemoryStore>,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> (StatusCode, serde_json::Value, http::HeaderMap) {
        let request = Request::post("/refresh")
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(body.into()))
            .unwrap();
        let response = sessions.refresh_service().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&body).unwrap();
        (parts.status, json, parts.headers)
    }

    fn sessions() -> Sessions<MemoryStore> {
        Sessions::builder(Keys::hs256([7; 32]).unwrap(), MemoryStore::new())
            .build()
            .unwrap()
    }

    const FORM: &str = "application/x-www-form-urlencoded";

    #[tokio::test]
    async fn json_and_form_refresh_rotate_and_answer_rfc_6749() {
        let sessions = sessions();
        let issued = sessions
            .issue(Login::new("alice").scope("profile"))
            .await
            .unwrap();
        let body = format!(r#"{{"refresh_token":"{}"}}"#, issued.refresh_token);
        let (status, json, headers) = answer(&sessions, "application/json", body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json["token_type"], "Bearer");
        assert_eq!(json["scope"], "profile");
        assert!(json["expires_in"].as_u64().unwrap() > 0);
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers[header::PRAGMA], "no-cache");

        let next = json["refresh_token"].as_str().unwrap();
        let form = format!("grant_type=refresh_token&refresh_token={next}");
        let (status, json, _) = answer(&sessions, FORM, form.clone()).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        // Reused: the form's refusal is RFC 6749's.
        let (status, json, _) = answer(
            &sessions,
            "application/x-www-form-urlencoded; charset=utf-8",
            form,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json["error"], "invalid_grant");
    }

    #[tokio::test]
    async fn malformed_requests_get_the_precise_rfc_6749_error() {
        let sessions = sessions();
        for (content_type, body, status, code) in [
            (FORM, "refresh_token=x", 400, "invalid_request"),
            (
                FORM,
                "grant_type=password&username=a",
                400,
                "unsupported_grant_type",
            ),
            (FORM, "grant_type=refresh_token", 400, "invalid_request"),
            (
                FORM,
                "grant_type=refresh_token&refresh_token=a&refresh_token=b",
                400,
                "invalid_request",
            ),
            (
                FORM,
                "grant_type=refresh_token&refresh_token=not.a.token",
                400,
                "invalid_grant",
            ),
            ("application/json", "{", 400, "invalid_request"),
            (
                "application/json",
                r#"{"refresh_token":"not.a.token"}"#,
                401,
                "invalid_grant",
            ),
        ] {
            let (got, json, _) = answer(&sessions, content_type, body).await;
            assert_eq!(
                (got.as_u16(), json["error"].as_str()),
                (status, Some(code)),
                "{body}"
            );
        }
        let (status, _, _) = answer(&sessions, FORM, vec![b'a'; MAX_BODY + 1]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
