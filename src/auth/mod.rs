//! The middleware: [`JwtAuthLayer`] and the [`JwtAuth`] service it builds.
//!
//! For each request, in order:
//! 1. take the bearer token (exactly one `Authorization: Bearer` header, bounded length);
//! 2. verify it: signature with the configured algorithm only, `typ`, `exp`/`nbf` with
//!    leeway, `iss`/`aud` when configured;
//! 3. check that its session is live in the store (a store failure refuses with 503);
//! 4. look the user up, when a [`UserResolver`](crate::UserResolver) is set;
//! 5. put the verified [`Claims<C>`](crate::Claims) (and the user) into the request
//!    extensions and call the inner service, the one `poll_ready` readied.
//!
//! A refusal is an `Ok` response (see [`error`](crate::error)); the inner service's error
//! type passes through unchanged. Any request and response body types work: the response
//! body becomes [`AuthBody<B>`], the inner body or a refusal's.
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
//! let sessions = Sessions::builder(Keys::hs256([7; 32])?, MemoryStore::new()).build()?;
//! let service = ServiceBuilder::new()
//!     .layer(sessions.layer())
//!     .service_fn(|request: Request<Full<Bytes>>| async move {
//!         let claims = request.extensions().get::<Claims>().expect("set by the layer");
//!         Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(format!("hello {}", claims.sub))))
//!     });
//!
//! let issued = sessions.issue(Login::new("alice")).await?;
//! let request = Request::get("/")
//!     .header(header::AUTHORIZATION, format!("Bearer {}", issued.access_token))
//!     .body(Full::default())?;
//! assert_eq!(service.clone().oneshot(request).await?.status(), StatusCode::OK);
//!
//! sessions.revoke("alice", &issued.session.id).await?;
//! let request = Request::get("/")
//!     .header(header::AUTHORIZATION, format!("Bearer {}", issued.access_token))
//!     .body(Full::default())?;
//! assert_eq!(service.oneshot(request).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

mod body;
mod future;
mod layer;
mod service;

pub use body::AuthBody;
pub use future::ResponseFuture;
pub use layer::JwtAuthLayer;
pub use service::JwtAuth;
