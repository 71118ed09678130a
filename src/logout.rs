//! Logout as leaf services: [`LogoutService`] ends the session of the token it is called
//! with, [`LogoutAllService`] every session of that token's user.
//!
//! Both authenticate the token exactly as [`JwtAuth`](crate::JwtAuth) does, answer `204 No
//! Content` once the store has removed the session(s), and refuse like the middleware
//! otherwise: a revoked or invalid token gets 401, a store failure 503. In
//! [cookie mode](crate::cookies), a logout authenticated by cookie also clears both
//! cookies, and one from another origin is refused (403).
//!
//! ```
//! use http::{Request, StatusCode, header};
//! use tower::ServiceExt;
//! use tower_jwt_auth::{Keys, Login, Sessions, store::MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = Sessions::builder(Keys::hs256([7; 32])?, MemoryStore::new()).build()?;
//! let issued = sessions.issue(Login::new("alice")).await?;
//! let logout = || {
//!     Request::post("/logout")
//!         .header(header::AUTHORIZATION, format!("Bearer {}", issued.access_token))
//!         .body(())
//! };
//!
//! let response = sessions.logout_service().oneshot(logout()?).await?;
//! assert_eq!(response.status(), StatusCode::NO_CONTENT);
//! // The token is dead now, for logout too.
//! let response = sessions.logout_service().oneshot(logout()?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::Sessions;
use crate::error::{AuthError, RefusedRequest, TokenError};
use crate::store::SessionStore;

/// Ends the session of the presented token. See the [module docs](crate::logout).
pub type LogoutService<St, C = ()> = Logout<St, C, false>;

/// Ends every session of the presented token's user. See the [module docs](crate::logout).
pub type LogoutAllService<St, C = ()> = Logout<St, C, true>;

/// The logout service; `ALL` chooses between [`LogoutService`] and [`LogoutAllService`].
pub struct Logout<St, C, const ALL: bool> {
    sessions: Sessions<St, C>,
}

impl<St, C, const ALL: bool> Logout<St, C, ALL> {
    /// The logout service of `sessions`.
    pub fn new(sessions: Sessions<St, C>) -> Self {
        Self { sessions }
    }
}

impl<St, C, const ALL: bool> Clone for Logout<St, C, ALL> {
    fn clone(&self) -> Self {
        Self {
            sessions: self.sessions.clone(),
        }
    }
}

impl<St, C, const ALL: bool> fmt::Debug for Logout<St, C, ALL> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(if ALL {
            "LogoutAllService"
        } else {
            "LogoutService"
        })
        .field("sessions", &self.sessions)
        .finish()
    }
}

/// The response future of the logout services.
pub struct LogoutFuture {
    inner: Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>,
}

impl Future for LogoutFuture {
    type Output = Result<Response<Full<Bytes>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx).map(Ok)
    }
}

impl fmt::Debug for LogoutFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogoutFuture").finish_non_exhaustive()
    }
}

impl<St, C, B, const ALL: bool> Service<Request<B>> for Logout<St, C, ALL>
where
    St: SessionStore,
    C: DeserializeOwned + Send + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = LogoutFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let sessions = self.sessions.clone();
        let parts = request.into_parts().0;
        LogoutFuture {
            inner: Box::pin(async move {
                match end(&sessions, &parts, ALL).await {
                    Ok(from_cookie) => {
                        let mut response = Response::new(Full::default());
                        *response.status_mut() = StatusCode::NO_CONTENT;
                        if from_cookie && let Some(cookies) = sessions.cookie_config() {
                            cookies.clear(&mut response);
                        }
                        response
                    }
                    Err(error) => sessions.reject(&error, &RefusedRequest::new(&parts)),
                }
            }),
        }
    }
}

/// Ends the session (or all of the user's) of the request's token; whether the token came
/// from the cookie.
async fn end<St, C>(
    sessions: &Sessions<St, C>,
    request: &http::request::Parts,
    all: bool,
) -> Result<bool, AuthError>
where
    St: SessionStore,
    C: DeserializeOwned,
{
    let now = sessions.now();
    let (claims, from_cookie) = sessions.verify_request(&request.method, &request.headers, now)?;
    if all {
        let claims = sessions.require_live(claims, now).await?;
        sessions.revoke_all(&claims.sub).await?;
    } else if !sessions.revoke(&claims.sub, &claims.sid).await? {
        return Err(TokenError::Revoked.into());
    }
    Ok(from_cookie)
}
