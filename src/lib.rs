//! JWT authentication for [Tower] and HTTP services, with logout that works.
//!
//! A JWT stays valid until it expires: a server cannot delete it, so "logout" with plain
//! JWTs only forgets the token on the client. This crate keeps an **allowlist of live
//! sessions** on the server. Login creates a session and signs a short-lived access token
//! naming it (`sid`), with a refresh token that is rotated on every use (a retired one
//! presented again ends the session). Each request passes only if the token verifies **and**
//! its session is still in the store. Logout deletes the session, logout-everywhere deletes
//! all of the user's sessions, and from the next request on their tokens are refused.
//! Sessions end when idle or at their absolute lifetime and are then removed, so the store
//! holds only live sessions.
//!
//! - [`Sessions`]: the handle built once (keys, validation, lifetime, store); issues
//!   tokens at login, revokes sessions, and builds everything below.
//! - [`JwtAuthLayer`] / [`JwtAuth`]: the middleware, for any `Service<http::Request<B>>`.
//! - [`LogoutService`] / [`LogoutAllService`] / [`RefreshService`]: leaf services for the
//!   logout and refresh routes; [`token_response`] writes login answers.
//! - [`store`]: the [`SessionStore`](store::SessionStore) trait, the in-memory store, the
//!   Redis (feature `redis`) and PostgreSQL (feature `postgres`) stores for several
//!   instances, the SQLite store (feature `sqlite`) for one that keeps its sessions across
//!   restarts, and [`NearCache`](store::NearCache), which keeps a shared store's answers in
//!   each instance while its events vouch for them.
//! - [`ForwardIdentityLayer`]: for gateways, the verified identity as `x-auth-*` headers
//!   for the upstream, and nothing the client sent under those names.
//! - [`GrpcErrors`]: refusals as gRPC statuses, for tonic and other gRPC servers.
//! - [`axum`](mod@crate::axum): extractors for axum handlers (feature `axum`, on by default).
//!
//! # Quick start
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode, header};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_jwt_auth::{Claims, Keys, Login, Sessions, store::MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = Sessions::builder(Keys::hs256(b"a secret of at least thirty-two bytes!")?, MemoryStore::new())
//!     .build()?;
//! let api = ServiceBuilder::new()
//!     .layer(sessions.layer())
//!     .service_fn(|request: Request<Full<Bytes>>| async move {
//!         let claims = request.extensions().get::<Claims>().expect("set by the layer");
//!         Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(claims.sub.clone())))
//!     });
//!
//! // POST /login, once the password checked out:
//! let issued = sessions.issue(Login::new("alice")).await?;
//! let get_me = || {
//!     Request::get("/me")
//!         .header(header::AUTHORIZATION, format!("Bearer {}", issued.access_token))
//!         .body(Full::default())
//! };
//! assert_eq!(api.clone().oneshot(get_me()?).await?.status(), StatusCode::OK);
//!
//! // POST /logout
//! sessions.logout_service().oneshot(get_me()?).await?;
//! assert_eq!(api.oneshot(get_me()?).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```
//!
//! [Tower]: https://docs.rs/tower

#![deny(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
pub mod claims;
pub mod clock;
pub mod cookies;
pub mod devices;
pub mod error;
mod extract;
pub mod forward;
pub mod grpc;
pub mod keys;
pub mod live;
pub mod logout;
pub mod refresh;
pub mod resolve;
pub mod sessions;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod token_cache;
pub mod token_response;

pub use auth::{AuthBody, JwtAuth, JwtAuthLayer};
pub use claims::{Claims, InvalidSessionId, SessionId};
pub use clock::{Clock, ManualClock};
pub use error::{AuthError, ErrorHandler, JsonErrors, RefusedRequest, RequestError, TokenError};
pub use forward::{ForwardIdentity, ForwardIdentityLayer};
pub use grpc::GrpcErrors;
pub use jsonwebtoken::Algorithm;
pub use keys::{KeyError, Keys};
pub use logout::{LogoutAllService, LogoutService};
pub use refresh::{Grant, RefreshService};
pub use resolve::{ResolveError, ResolvedUser, UserResolver, resolve_fn};
pub use sessions::{
    ConfigError, DEFAULT_SESSION_LIMIT, IssueError, Issued, Login, Sessions, SessionsBuilder,
};

// The README's examples compile as doc tests (they use the axum and Redis features).
#[cfg(all(doctest, feature = "axum", feature = "redis"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
