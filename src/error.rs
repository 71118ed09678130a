//! Why a request was refused, and how the refusal is written (RFC 6750 §3).
//!
//! | [`AuthError`]                     | status | `WWW-Authenticate`                                              |
//! |-----------------------------------|--------|-----------------------------------------------------------------|
//! | `Missing`                         | 401    | `Bearer` (with `realm="…"` when configured), no error code      |
//! | `InvalidRequest(_)`               | 400    | `Bearer error="invalid_request", error_description="…"`         |
//! | `InvalidToken(_)`                 | 401    | `Bearer error="invalid_token", error_description="…"`           |
//! | `InsufficientScope(_)`            | 403    | `Bearer error="insufficient_scope", error_description="…", scope="…"` |
//! | `CrossSiteRequest`                | 403    | none: an unsafe request authenticated by cookie from another origin |
//! | `StoreUnavailable`, `ResolverUnavailable` | 503 | none; `Retry-After` instead: the request fails closed    |
//!
//! The body is small JSON, `{"error": "…", "error_description": "…"}`, written by an
//! [`ErrorHandler`]: [`JsonErrors`] by default, or your own. Whatever the handler writes, the
//! `WWW-Authenticate` and `Retry-After` headers above are added unless it set them itself, so a
//! custom body cannot break the protocol. gRPC services use [`GrpcErrors`](crate::GrpcErrors)
//! instead: see [`grpc`](crate::grpc).
//!
//! ```
//! use bytes::Bytes;
//! use http::{Response, header};
//! use http_body_util::Full;
//! use tower_jwt_auth::{AuthError, RefusedRequest};
//!
//! // Plain text instead of JSON.
//! let handler = |error: &AuthError, _: &RefusedRequest<'_>| {
//!     Response::builder()
//!         .status(error.status())
//!         .header(header::CONTENT_TYPE, "text/plain")
//!         .body(Full::new(Bytes::from(error.description())))
//!         .unwrap_or_default()
//! };
//! # let _: &dyn tower_jwt_auth::ErrorHandler = &handler;
//! ```

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode, Uri};
use http_body_util::Full;

use crate::resolve::ResolveError;
use crate::store::StoreError;

/// Why a request was not let through. Each maps to one status and challenge; see the
/// [module docs](crate::error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No bearer credentials: no `Authorization` header, or one of another scheme.
    #[error("no bearer token in the request")]
    Missing,
    /// The request itself is malformed (400 `invalid_request`).
    #[error("malformed request: {0}")]
    InvalidRequest(#[from] RequestError),
    /// The token is not (or no longer) acceptable (401 `invalid_token`).
    #[error("invalid token: {0}")]
    InvalidToken(#[from] TokenError),
    /// The session store could not answer; the request is refused, never let in (503).
    #[error("the session store could not answer")]
    StoreUnavailable(#[source] StoreError),
    /// The [`UserResolver`](crate::UserResolver) could not answer (503).
    #[error("the user could not be looked up")]
    ResolverUnavailable(#[source] ResolveError),
    /// The token is good but does not grant what the route requires (403
    /// `insufficient_scope`): the scope it lacks, or none for a rule of the application's.
    #[error("insufficient scope")]
    InsufficientScope(Option<std::sync::Arc<str>>),
    /// An unsafe request authenticated by cookie came from another origin (403): see
    /// [cookie mode](crate::cookies).
    #[error("cross-site request")]
    CrossSiteRequest,
}

/// How the request was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    MultipleHeaders,
    /// A token in more than one place (header and cookie).
    #[error("more than one credential")]
    MultipleCredentials,
    /// The `Authorization` header is not `Bearer <b64token>`.
    #[error("malformed Authorization header")]
    MalformedHeader,
    /// The token cookie does not hold a b64token.
    #[error("malformed token cookie")]
    MalformedCookie,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than the configured maximum.
    #[error("token too long")]
    TooLong,
    /// Not a well-formed JWT, or its claims are not of the expected shape.
    #[error("malformed token")]
    Malformed(#[source] Option<jsonwebtoken::errors::Error>),
    /// Signed with an algorithm other than the configured one (or `none`).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The signature does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// `exp` has passed.
    #[error("expired")]
    Expired,
    /// `nbf` is still ahead.
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not name the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// A claim this crate requires is absent.
    #[error("missing required claim {0}")]
    MissingClaim(String),
    /// The `typ` header is not that of an access token.
    #[error("wrong token type")]
    WrongType,
    /// The header lists a critical extension (`crit`) this crate does not understand.
    #[error("unsupported critical header")]
    UnsupportedCritical,
    /// Its session is not in the allowlist: logged out, expired, or never created here.
    #[error("revoked")]
    Revoked,
    /// The [`UserResolver`](crate::UserResolver) found no such user.
    #[error("unknown user")]
    UnknownUser,
    /// The `kid` header names no key configured here.
    #[error("unknown key")]
    UnknownKey,
    /// A refresh token retired moments ago, presented again within the grace period: refused,
    /// but its session goes on.
    #[error("refresh token already used")]
    RefreshRetired,
    /// A retired refresh token presented again: its session was ended.
    #[error("refresh token reused")]
    RefreshReused,
}

impl TokenError {
    /// The short, fixed text sent as `error_description` (never the token itself).
    pub fn description(&self) -> &'static str {
        match self {
            Self::TooLong => "token too long",
            Self::Malformed(_) => "malformed token",
            Self::AlgorithmNotAllowed => "algorithm not allowed",
            Self::InvalidSignature => "invalid signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not yet valid",
            Self::WrongIssuer => "wrong issuer",
            Self::WrongAudience => "wrong audience",
            Self::MissingClaim(_) => "missing required claim",
            Self::WrongType => "wrong token type",
            Self::UnsupportedCritical => "unsupported critical header",
            Self::Revoked => "revoked",
            Self::UnknownUser => "unknown user",
            Self::UnknownKey => "unknown key",
            Self::RefreshRetired => "refresh token already used",
            Self::RefreshReused => "refresh token reused",
        }
    }
}

impl From<jsonwebtoken::errors::Error> for TokenError {
    fn from(error: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind as Kind;
        match error.kind() {
            Kind::InvalidSignature => Self::InvalidSignature,
            Kind::InvalidAlgorithm | Kind::InvalidAlgorithmName | Kind::MissingAlgorithm => {
                Self::AlgorithmNotAllowed
            }
            Kind::ExpiredSignature => Self::Expired,
            Kind::ImmatureSignature => Self::NotYetValid,
            Kind::InvalidIssuer => Self::WrongIssuer,
            Kind::InvalidAudience => Self::WrongAudience,
            Kind::MissingRequiredClaim(claim) => Self::MissingClaim(claim.clone()),
            // Claims this crate requires are fields of `Claims`, so serde reports their
            // absence first, as "missing field `name`".
            Kind::Json(json) if json.is_data() => match json
                .to_string()
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split_once('`'))
            {
                Some((claim, _)) => Self::MissingClaim(claim.to_owned()),
                None => Self::Malformed(Some(error)),
            },
            _ => Self::Malformed(Some(error)),
        }
    }
}

impl AuthError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Missing | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope(_) | Self::CrossSiteRequest => StatusCode::FORBIDDEN,
            Self::StoreUnavailable(_) | Self::ResolverUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The error code: RFC 6750's `invalid_request` / `invalid_token`, `unauthorized` when no
    /// credentials came (no code goes into the challenge then), and
    /// `temporarily_unavailable` when the request failed closed.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "unauthorized",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::CrossSiteRequest => "cross_site_request",
            Self::StoreUnavailable(_) | Self::ResolverUnavailable(_) => "temporarily_unavailable",
        }
    }

    /// A short, fixed description: only characters RFC 6750 allows in `error_description`,
    /// never any part of the token.
    pub fn description(&self) -> &'static str {
        match self {
            Self::Missing => "missing bearer token",
            Self::InvalidRequest(RequestError::MultipleHeaders) => {
                "more than one Authorization header"
            }
            Self::InvalidRequest(RequestError::MultipleCredentials) => "more than one credential",
            Self::InvalidRequest(RequestError::MalformedHeader) => "malformed Authorization header",
            Self::InvalidRequest(RequestError::MalformedCookie) => "malformed token cookie",
            Self::InvalidToken(error) => error.description(),
            Self::InsufficientScope(_) => "insufficient scope",
            Self::CrossSiteRequest => "cross-site request",
            Self::StoreUnavailable(_) => "session store unavailable",
            Self::ResolverUnavailable(_) => "user lookup unavailable",
        }
    }

    /// The `WWW-Authenticate` challenge for this error (RFC 6750 §3), with the `realm` when
    /// one is given; `None` for the 503 cases, which are not an authentication failure.
    pub fn challenge(&self, realm: Option<&str>) -> Option<HeaderValue> {
        let mut value = String::from("Bearer");
        let mut separator = " ";
        if let Some(realm) = realm {
            value.push_str(separator);
            value.push_str("realm=\"");
            value.push_str(realm);
            value.push('"');
            separator = ", ";
        }
        match self {
            Self::Missing => {}
            Self::InvalidRequest(_) | Self::InvalidToken(_) | Self::InsufficientScope(_) => {
                value.push_str(separator);
                value.push_str("error=\"");
                value.push_str(self.code());
                value.push_str("\", error_description=\"");
                value.push_str(self.description());
                value.push('"');
                if let Self::InsufficientScope(Some(scope)) = self {
                    // A scope-token (checked when the layer was built): no escaping needed.
                    value.push_str(", scope=\"");
                    value.push_str(scope);
                    value.push('"');
                }
            }
            // Not an authentication failure: the credentials may be fine, the origin is not.
            Self::CrossSiteRequest => return None,
            Self::StoreUnavailable(_) | Self::ResolverUnavailable(_) => return None,
        }
        HeaderValue::try_from(value).ok()
    }
}

/// The request being refused, as an [`ErrorHandler`] sees it: to answer a browser
/// (`Accept: text/html`) differently from an API client, say.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RefusedRequest<'a> {
    /// Its method.
    pub method: &'a Method,
    /// Its URI.
    pub uri: &'a Uri,
    /// Its headers (the credentials among them: never log or echo them).
    pub headers: &'a HeaderMap,
}

impl<'a> RefusedRequest<'a> {
    /// The request whose head is `parts`.
    pub fn new(parts: &'a http::request::Parts) -> Self {
        Self {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
        }
    }

    /// The request `request`.
    pub fn of<B>(request: &'a http::Request<B>) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
        }
    }

    /// A request about which nothing is known (`GET /`, no headers), for refusals made
    /// away from any request.
    pub fn unknown() -> RefusedRequest<'static> {
        static METHOD: Method = Method::GET;
        static URI: std::sync::LazyLock<Uri> = std::sync::LazyLock::new(|| Uri::from_static("/"));
        static HEADERS: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(HeaderMap::new);
        RefusedRequest {
            method: &METHOD,
            uri: &URI,
            headers: &HEADERS,
        }
    }
}

/// Writes the response for a refused request.
///
/// The status and the protocol headers are the crate's business: whatever status the
/// handler sets is replaced with the refusal's own (a refusal never looks like a success),
/// and the headers are added unless it set them. The one exception is the built-in
/// [`GrpcErrors`](crate::GrpcErrors), whose answers to gRPC requests keep the status 200
/// the gRPC protocol requires (see [`grpc`](crate::grpc)); no other handler can have it. The handler chooses the body and any other
/// header. Any `Fn(&AuthError, &RefusedRequest<'_>) -> Response<Full<Bytes>>` is one. See
/// the [module docs](crate::error).
pub trait ErrorHandler: std::any::Any + Send + Sync + 'static {
    /// The response for `error`, refusing `request`.
    fn render(&self, error: &AuthError, request: &RefusedRequest<'_>) -> Response<Full<Bytes>>;
}

impl<F> ErrorHandler for F
where
    F: Fn(&AuthError, &RefusedRequest<'_>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    fn render(&self, error: &AuthError, request: &RefusedRequest<'_>) -> Response<Full<Bytes>> {
        self(error, request)
    }
}

/// The default [`ErrorHandler`]: `{"error": "…", "error_description": "…"}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonErrors;

impl ErrorHandler for JsonErrors {
    fn render(&self, error: &AuthError, _: &RefusedRequest<'_>) -> Response<Full<Bytes>> {
        json_response(error.status(), error.code(), error.description())
    }
}

/// A small JSON error response, `{"error", "error_description"}`.
pub(crate) fn json_response(
    status: StatusCode,
    code: &str,
    description: &str,
) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": code, "error_description": description });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The protocol part of a refusal: realm and retry hint, applied around any handler.
#[derive(Debug, Clone)]
pub(crate) struct Challenge {
    pub(crate) realm: Option<String>,
    pub(crate) retry_after: HeaderValue,
}

impl Default for Challenge {
    fn default() -> Self {
        Self {
            realm: None,
            retry_after: HeaderValue::from_static("1"),
        }
    }
}

impl Challenge {
    pub(crate) fn respond(
        &self,
        handler: &dyn ErrorHandler,
        error: &AuthError,
        request: &RefusedRequest<'_>,
    ) -> Response<Full<Bytes>> {
        let mut response = handler.render(error, request);
        // A refusal never passes for a success, whatever the handler wrote (gRPC's
        // trailers-only answers aside, whose outcome is their `grpc-status`).
        *response.status_mut() = crate::grpc::refusal_status(handler, error, request);
        let headers = response.headers_mut();
        if let Some(challenge) = error.challenge(self.realm.as_deref()) {
            headers.entry(header::WWW_AUTHENTICATE).or_insert(challenge);
        } else if error.status() == StatusCode::SERVICE_UNAVAILABLE {
            headers
                .entry(header::RETRY_AFTER)
                .or_insert_with(|| self.retry_after.clone());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(error: &AuthError, realm: Option<&str>) -> String {
        error
            .challenge(realm)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn challenges_follow_rfc_6750_exactly() {
        assert_eq!(challenge(&AuthError::Missing, None), "Bearer");
        assert_eq!(
            challenge(&AuthError::Missing, Some("api")),
            r#"Bearer realm="api""#
        );
        assert_eq!(
            challenge(&TokenError::Expired.into(), Some("api")),
            r#"Bearer realm="api", error="invalid_token", error_description="expired""#
        );
        assert_eq!(
            challenge(&RequestError::MultipleHeaders.into(), None),
            r#"Bearer error="invalid_request", error_description="more than one Authorization header""#
        );
        let store = AuthError::StoreUnavailable(StoreError::Timeout);
        assert_eq!(store.challenge(Some("api")), None);
    }

    #[test]
    fn a_custom_handler_keeps_the_protocol_headers() {
        let handler = |_: &AuthError, _: &RefusedRequest<'_>| {
            Response::new(Full::new(Bytes::from_static(b"no")))
        };
        let challenge = Challenge {
            realm: Some("api".into()),
            retry_after: HeaderValue::from_static("3"),
        };
        let response = challenge.respond(
            &handler,
            &TokenError::Revoked.into(),
            &RefusedRequest::unknown(),
        );
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="api", error="invalid_token", error_description="revoked""#
        );
        let response = challenge.respond(
            &handler,
            &AuthError::StoreUnavailable(StoreError::Timeout),
            &RefusedRequest::unknown(),
        );
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn a_custom_handler_cannot_turn_a_refusal_into_a_success() {
        // `Response::new` is a 200.
        let handler = |_: &AuthError, _: &RefusedRequest<'_>| {
            Response::new(Full::new(Bytes::from_static(b"welcome")))
        };
        let challenge = Challenge {
            realm: None,
            retry_after: HeaderValue::from_static("1"),
        };
        for error in [
            AuthError::Missing,
            RequestError::MalformedHeader.into(),
            TokenError::Revoked.into(),
            AuthError::StoreUnavailable(StoreError::Timeout),
        ] {
            let status = error.status();
            assert_eq!(
                challenge
                    .respond(&handler, &error, &RefusedRequest::unknown())
                    .status(),
                status
            );
        }
    }
}
