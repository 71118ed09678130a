//! The answers of a token endpoint: tokens issued at login or refresh (RFC 6749 §5.1), and
//! why they were not (RFC 6749 §5.2).
//!
//! [`Issued::response`] is the `200 OK` JSON a client expects, with `Cache-Control:
//! no-store` and `Pragma: no-cache`, so no cache keeps the tokens. [`IssueError::response`]
//! is the refusal of a login or a JSON refresh; a refresh in the RFC 6749 form is refused
//! as that RFC says instead ([`IssueError::oauth_response`]). With feature `axum`, all of
//! them are `IntoResponse`.
//!
//! ```
//! use http::{StatusCode, header};
//! use tower_jwt_auth::{Keys, Login, Sessions, store::MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = Sessions::builder(Keys::hs256([7; 32])?, MemoryStore::new()).build()?;
//! let issued = sessions.issue(Login::new("alice").scope("profile")).await?;
//! let response = issued.response();
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
//! assert_eq!(response.headers()[header::PRAGMA], "no-cache");
//! # Ok(()) }
//! ```

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::cookies::CookieConfig;
use crate::error::json_response;
use crate::store::StoreError;
use crate::{IssueError, Issued};

/// The body of a token answer (RFC 6749 §5.1, with the refresh token's lifetime beside).
#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: &'a str,
    refresh_expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

impl Issued {
    /// The `200 OK` answer of a token endpoint: `{"access_token", "token_type": "Bearer",
    /// "expires_in", "refresh_token", "refresh_expires_in", "scope"}` (`scope` when the
    /// tokens grant any), with `Cache-Control: no-store` and `Pragma: no-cache`.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let body = TokenBody {
            access_token: &self.access_token,
            token_type: "Bearer",
            expires_in: self.expires_in,
            refresh_token: &self.refresh_token,
            refresh_expires_in: self.refresh_expires_in,
            scope: self.scope.as_deref(),
        };
        // Strings and integers only: serialising cannot fail.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        no_store(headers);
        response
    }
}

/// The body of a token answer in cookie mode: the tokens travel in cookies only.
#[derive(Serialize)]
struct CookieBody<'a> {
    token_type: &'static str,
    expires_in: u64,
    refresh_expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

impl Issued {
    /// The answer of a token endpoint in [cookie mode](crate::cookies): both tokens as
    /// `HttpOnly` cookies, and a JSON body without them.
    pub(crate) fn cookie_response(&self, cookies: &CookieConfig) -> Response<Full<Bytes>> {
        let body = CookieBody {
            token_type: "Bearer",
            expires_in: self.expires_in,
            refresh_expires_in: self.refresh_expires_in,
            scope: self.scope.as_deref(),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        no_store(headers);
        cookies.set(
            &mut response,
            (&self.access_token, self.expires_in),
            (&self.refresh_token, self.refresh_expires_in),
        );
        response
    }
}

/// Token answers and their refusals are never cached (RFC 6749 §5.1).
fn no_store(headers: &mut http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IssueError {
    /// The status of [`response`](Self::response): 401 for a refused refresh token or a
    /// login authenticated before a revocation, 403 at the session limit, 400 for a
    /// malformed login, 503 when the store (or the refresh hook) cannot answer, 500 when
    /// the server cannot sign.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Refused(_) | Self::AuthenticatedBeforeRevocation => StatusCode::UNAUTHORIZED,
            Self::TooManySessions => StatusCode::FORBIDDEN,
            Self::InvalidSubject | Self::InvalidAuthenticationTime => StatusCode::BAD_REQUEST,
            // A retried login can draw another id.
            Self::Store(_) | Self::RefreshHook(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::CannotSign | Self::Signing(_) | Self::Random => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error code of the JSON body: `invalid_grant` for a refused refresh token or a
    /// stale login, `too_many_sessions`, `invalid_request`, `temporarily_unavailable` and
    /// `server_error`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused(_) | Self::AuthenticatedBeforeRevocation => "invalid_grant",
            Self::TooManySessions => "too_many_sessions",
            Self::InvalidSubject | Self::InvalidAuthenticationTime => "invalid_request",
            Self::Store(_) | Self::RefreshHook(_) => "temporarily_unavailable",
            Self::CannotSign | Self::Signing(_) | Self::Random => "server_error",
        }
    }

    /// A short, fixed description (never a token).
    pub fn description(&self) -> &'static str {
        match self {
            Self::Refused(reason) => reason.description(),
            Self::AuthenticatedBeforeRevocation => "sessions revoked after this login",
            Self::TooManySessions => "log out of another device first",
            Self::InvalidSubject => "invalid user",
            Self::InvalidAuthenticationTime => "invalid authentication time",
            Self::Store(StoreError::Conflict) => "try again",
            Self::Store(_) => "session store unavailable",
            Self::RefreshHook(_) => "user lookup unavailable",
            Self::CannotSign | Self::Signing(_) | Self::Random => "cannot issue tokens",
        }
    }

    /// The refusal of a login or a JSON refresh: [`status`](Self::status), the JSON body
    /// `{"error", "error_description"}`, `WWW-Authenticate: Bearer` with a 401 and
    /// `Retry-After: 1` with a 503.
    pub fn response(&self) -> Response<Full<Bytes>> {
        self.render(self.status(), self.code())
    }

    /// The refusal of a refresh in the RFC 6749 §6 form, as RFC 6749 §5.2 says: a refused
    /// refresh token is `400 {"error":"invalid_grant"}`; the store failing is still 503.
    pub fn oauth_response(&self) -> Response<Full<Bytes>> {
        match self.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                self.render(StatusCode::BAD_REQUEST, "invalid_grant")
            }
            status => self.render(status, self.code()),
        }
    }

    fn render(&self, status: StatusCode, code: &str) -> Response<Full<Bytes>> {
        let mut response = json_response(status, code, self.description());
        let headers = response.headers_mut();
        no_store(headers);
        match status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenError;

    #[test]
    fn a_refused_refresh_is_401_in_json_and_400_invalid_grant_in_the_oauth_form() {
        let error = IssueError::Refused(TokenError::RefreshReused);
        let json = error.response();
        assert_eq!(json.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(json.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(json.headers()[header::CACHE_CONTROL], "no-store");
        let oauth = error.oauth_response();
        assert_eq!(oauth.status(), StatusCode::BAD_REQUEST);
        assert!(oauth.headers().get(header::WWW_AUTHENTICATE).is_none());
        let unavailable = IssueError::Store(StoreError::Timeout).oauth_response();
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[header::RETRY_AFTER], "1");
    }
}
