//! A kit for testing an application that uses this crate (feature `testing`).
//!
//! - [`sessions`]: a [`Sessions`] on a memory store, with a fixed key and a
//!   [`ManualClock`], in one line;
//! - [`login`]: a user logged in, as the `Authorization` header value to send;
//! - [`RequestBuilderExt::bearer`]: `.bearer(&token)` on an `http` request builder.
//!
//! ```
//! use http::{Request, StatusCode};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_jwt_auth::testing::{self, RequestBuilderExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (sessions, clock) = testing::sessions();
//! let app = ServiceBuilder::new()
//!     .layer(sessions.layer())
//!     .service_fn(|_: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
//!     });
//!
//! let token = testing::login(&sessions, "alice").await?;
//! let request = Request::get("/me").bearer(&token).body(Full::default())?;
//! assert_eq!(app.clone().oneshot(request).await?.status(), StatusCode::OK);
//!
//! clock.advance(std::time::Duration::from_secs(3600)); // the access token expired
//! let request = Request::get("/me").bearer(&token).body(Full::default())?;
//! assert_eq!(app.oneshot(request).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! A store of your own proves the [store contract](crate::store) with the crate's own
//! conformance suite: [`store_conformance!`](crate::store_conformance) and the
//! [`conformance`] module.

use std::time::Duration;

use http::header::AUTHORIZATION;
use http::request::Builder;

use crate::store::{MemoryStore, SessionStore};

pub mod conformance;
use crate::{IssueError, Keys, Login, ManualClock, Sessions};

/// The time the kit's clock starts at: 2026-01-01T00:00:00Z.
pub const START: u64 = 1_767_225_600;

/// The kit's fixed HS256 key (test use only: it is public).
pub const KEY: &[u8; 32] = b"tower-jwt-auth test key, public!";

/// A [`Sessions`] on a fresh memory store, signing with [`KEY`], on a [`ManualClock`]
/// standing at [`START`] (the store's sweep reads it too); otherwise the defaults.
pub fn sessions() -> (Sessions<MemoryStore>, ManualClock) {
    let clock = ManualClock::new(START);
    let store = MemoryStore::with_sweep(Duration::from_secs(60), clock.clone());
    // The key is 32 bytes and the defaults are valid: neither can fail.
    let keys = Keys::hs256(KEY).unwrap_or_else(|_| unreachable!("a 32-byte HS256 key"));
    let sessions = Sessions::builder(keys, store)
        .clock(clock.clone())
        .build()
        .unwrap_or_else(|_| unreachable!("the default configuration is valid"));
    (sessions, clock)
}

/// Logs `sub` in and answers its access token, for [`RequestBuilderExt::bearer`].
pub async fn login<St: SessionStore>(
    sessions: &Sessions<St>,
    sub: &str,
) -> Result<String, IssueError> {
    Ok(sessions.issue(Login::new(sub)).await?.access_token)
}

/// `.bearer(token)` on an `http` request builder.
pub trait RequestBuilderExt {
    /// Adds `Authorization: Bearer <token>`.
    fn bearer(self, token: &str) -> Self;
}

impl RequestBuilderExt for Builder {
    fn bearer(self, token: &str) -> Self {
        self.header(AUTHORIZATION, format!("Bearer {token}"))
    }
}
