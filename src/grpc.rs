//! Refusals that gRPC clients understand: [`GrpcErrors`].
//!
//! A gRPC client reads the outcome of a call from `grpc-status`, not from the HTTP status:
//! a plain `401` with a JSON body reaches it as an opaque "unknown" error. With
//! [`GrpcErrors`] as the [error handler](crate::SessionsBuilder::error_handler), a refused
//! gRPC request (`content-type: application/grpc…`) gets a *trailers-only* answer, as the
//! gRPC over HTTP/2 protocol defines it: one header block that ends the stream, with
//!
//! | refusal | `grpc-status` |
//! |---------|---------------|
//! | 401 (no, bad, expired or revoked token) and 400 (malformed credentials) | 16 `UNAUTHENTICATED` |
//! | 403 (insufficient scope, cross-site) | 7 `PERMISSION_DENIED` |
//! | 503 (the store or user lookup could not answer) | 14 `UNAVAILABLE` |
//!
//! and `grpc-message` (the refusal's fixed description, percent-encoded as the protocol
//! asks) and `content-type: application/grpc`. The `WWW-Authenticate` challenge and
//! `Retry-After` are sent as well, where tonic shows them as the status's metadata.
//!
//! **Its HTTP status is 200.** Every other [`ErrorHandler`] has its status replaced with the
//! refusal's, so that no refusal can pass for a success. gRPC is the one exception, and
//! this renderer the one handler allowed it: the protocol carries the outcome in
//! `grpc-status`, and a gRPC client that gets an HTTP status other than 200 reports a
//! transport failure (`UNKNOWN` or `UNAVAILABLE`, by its own mapping) instead of the
//! refusal. No other handler, nor a wrapper around this one, can answer 200.
//!
//! Requests that are not gRPC (no `application/grpc` content type: a browser, a health
//! probe over plain HTTP) get the [`JsonErrors`] answer with its usual status, so one
//! [`Sessions`](crate::Sessions) can serve a gRPC and a JSON API side by side.
//!
//! ```
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_jwt_auth::{GrpcErrors, Keys, Sessions, store::MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = Sessions::builder(Keys::hs256([7; 32])?, MemoryStore::new())
//!     .error_handler(GrpcErrors)
//!     .build()?;
//! // With tonic: `Server::builder().layer(sessions.layer()).add_service(..)`.
//! let service = tower::ServiceBuilder::new()
//!     .layer(sessions.layer())
//!     .service_fn(|_: Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
//!
//! let call = Request::post("/grpc.health.v1.Health/Check")
//!     .header("content-type", "application/grpc")
//!     .body(())?;
//! let refused = service.oneshot(call).await?;
//! assert_eq!(refused.status(), StatusCode::OK);
//! assert_eq!(refused.headers()["grpc-status"], "16");
//! assert_eq!(refused.headers()["grpc-message"], "missing bearer token");
//! # Ok(())
//! # }
//! ```

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::error::{AuthError, ErrorHandler, JsonErrors, RefusedRequest};

/// `grpc-status` and `grpc-message`, the headers of a trailers-only answer.
const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";

/// What gRPC percent-encodes in `grpc-message`: all but visible ASCII and space, and `%`.
const MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

/// Writes refusals of gRPC requests as trailers-only gRPC answers (status 200 with
/// `grpc-status`), and of other requests as [`JsonErrors`] does. See the
/// [module docs](crate::grpc), which say why its HTTP status is 200.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcErrors;

impl GrpcErrors {
    /// The gRPC status code `error` is answered with: 16 `UNAUTHENTICATED`, 7
    /// `PERMISSION_DENIED` or 14 `UNAVAILABLE`.
    pub fn code(error: &AuthError) -> i32 {
        match error {
            AuthError::Missing | AuthError::InvalidRequest(_) | AuthError::InvalidToken(_) => 16,
            AuthError::InsufficientScope(_) | AuthError::CrossSiteRequest => 7,
            AuthError::StoreUnavailable(_) | AuthError::ResolverUnavailable(_) => 14,
        }
    }
}

impl ErrorHandler for GrpcErrors {
    fn render(&self, error: &AuthError, request: &RefusedRequest<'_>) -> Response<Full<Bytes>> {
        if !is_grpc(request.headers) {
            return JsonErrors.render(error, request);
        }
        let mut response = Response::new(Full::new(Bytes::new()));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(GRPC_STATUS, HeaderValue::from(Self::code(error)));
        let message = utf8_percent_encode(error.description(), MESSAGE).to_string();
        if let Ok(message) = HeaderValue::try_from(message) {
            headers.insert(GRPC_MESSAGE, message);
        }
        response
    }
}

/// Whether the request is a gRPC call: `content-type` `application/grpc`, alone or followed
/// by `+format` or parameters.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let bytes = content_type.as_bytes();
    const GRPC: &[u8] = b"application/grpc";
    bytes.len() >= GRPC.len()
        && bytes[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(bytes.get(GRPC.len()), None | Some(b'+' | b';'))
}

/// The HTTP status of a refusal written by `handler`: the refusal's own, except for the
/// sealed exception of [`GrpcErrors`] answering a gRPC request (200).
pub(crate) fn refusal_status(
    handler: &dyn ErrorHandler,
    error: &AuthError,
    request: &RefusedRequest<'_>,
) -> StatusCode {
    let any: &dyn std::any::Any = handler;
    if any.is::<GrpcErrors>() && is_grpc(request.headers) {
        StatusCode::OK
    } else {
        error.status()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::{RequestError, TokenError};
    use crate::store::StoreError;

    fn grpc_request() -> http::request::Parts {
        let (parts, ()) = http::Request::post("/pkg.Service/Method")
            .header(header::CONTENT_TYPE, "application/grpc+proto")
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn codes_follow_the_refusal() {
        let cases: [(AuthError, i32); 7] = [
            (AuthError::Missing, 16),
            (RequestError::MalformedHeader.into(), 16),
            (TokenError::Revoked.into(), 16),
            (AuthError::InsufficientScope(Some(Arc::from("admin"))), 7),
            (AuthError::CrossSiteRequest, 7),
            (AuthError::StoreUnavailable(StoreError::Timeout), 14),
            (
                AuthError::ResolverUnavailable(crate::ResolveError::new(std::io::Error::other(
                    "down",
                ))),
                14,
            ),
        ];
        let parts = grpc_request();
        for (error, code) in cases {
            let response = GrpcErrors.render(&error, &RefusedRequest::new(&parts));
            assert_eq!(response.headers()[GRPC_STATUS], code.to_string().as_str());
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/grpc");
            assert_eq!(response.headers()[GRPC_MESSAGE], error.description());
        }
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(
            utf8_percent_encode("100% zoë\n", MESSAGE).to_string(),
            "100%25 zo%C3%AB%0A"
        );
    }

    #[test]
    fn only_grpc_content_types_are_grpc() {
        for (content_type, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("Application/GRPC;charset=utf-8", true),
            ("application/grpcx", false),
            ("application/json", false),
            ("application/grp", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            assert_eq!(is_grpc(&headers), grpc, "{content_type}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn other_requests_get_json_with_the_refusal_status() {
        let response = GrpcErrors.render(&AuthError::Missing, &RefusedRequest::unknown());
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            refusal_status(&GrpcErrors, &AuthError::Missing, &RefusedRequest::unknown()),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn only_the_built_in_renderer_may_answer_200() {
        let parts = grpc_request();
        let request = RefusedRequest::new(&parts);
        let error = AuthError::Missing;
        assert_eq!(
            refusal_status(&GrpcErrors, &error, &request),
            StatusCode::OK
        );
        // A handler of the application's that writes the same answer keeps the 401.
        let imitation =
            |error: &AuthError, request: &RefusedRequest<'_>| GrpcErrors.render(error, request);
        assert_eq!(
            refusal_status(&imitation, &error, &request),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            refusal_status(&JsonErrors, &error, &request),
            StatusCode::UNAUTHORIZED
        );
    }
}
