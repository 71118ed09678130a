//! Extractors for axum handlers (feature `axum`).
//!
//! Behind [`JwtAuthLayer`](crate::JwtAuthLayer), a handler takes the verified
//! [`Claims<C>`](crate::Claims) (the user and the session) or the resolved user,
//! [`CurrentUser<U>`], as arguments. Without the layer (a routing mistake) the extractor
//! answers 500 naming the missing layer; it never panics and never lets the request through
//! unauthenticated.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_jwt_auth::{Claims, Keys, Sessions, store::MemoryStore};
//!
//! async fn me(claims: Claims) -> String {
//!     format!("{} on session {}", claims.sub, claims.sid)
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = Sessions::builder(Keys::hs256([7; 32])?, MemoryStore::new()).build()?;
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route_layer(sessions.layer());
//! # Ok(())
//! # }
//! ```

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::auth::Authentication;
use crate::error::AuthError;
use crate::{Claims, IssueError, Issued, ResolvedUser};

/// The user a [`UserResolver`](crate::UserResolver) resolved for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentUser<U>(pub U);

/// The request did not pass through [`JwtAuthLayer`](crate::JwtAuthLayer) as the handler
/// expects: the server is misconfigured. Answered with 500, naming what is wrong.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[non_exhaustive]
pub enum MissingAuthLayer {
    /// No layer authenticated the request.
    #[error("{what} missing from the request extensions: is the route behind JwtAuthLayer{hint}?")]
    NoLayer {
        /// What the handler asked for.
        what: &'static str,
        /// How to fix it.
        hint: &'static str,
    },
    /// The layer verified claims of another type than the handler asks for.
    #[error(
        "the handler extracts Claims<{wanted}>, but JwtAuthLayer verified Claims<{verified}>: \
         build the layer from Sessions with the same claims type"
    )]
    OtherClaimsType {
        /// The type the handler asked for.
        wanted: &'static str,
        /// The type the layer verified.
        verified: &'static str,
    },
}

impl IntoResponse for MissingAuthLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// The claims the layer put into `parts`; `Ok(None)` when it let the request through
/// without credentials (optional authentication).
fn claims<C: Clone + Send + Sync + 'static>(
    parts: &Parts,
) -> Result<Option<Claims<C>>, MissingAuthLayer> {
    if let Some(claims) = parts.extensions.get::<Claims<C>>() {
        return Ok(Some(claims.clone()));
    }
    match parts.extensions.get::<Authentication>() {
        Some(authentication) if authentication.anonymous => Ok(None),
        Some(authentication) => Err(MissingAuthLayer::OtherClaimsType {
            wanted: std::any::type_name::<C>(),
            verified: authentication.claims_type,
        }),
        None => Err(MissingAuthLayer::NoLayer {
            what: "verified claims",
            hint: "",
        }),
    }
}

fn user<U: Clone + Send + Sync + 'static>(
    parts: &Parts,
) -> Result<Option<CurrentUser<U>>, MissingAuthLayer> {
    if let Some(user) = parts.extensions.get::<ResolvedUser<U>>() {
        return Ok(Some(CurrentUser(user.get().clone())));
    }
    match parts.extensions.get::<Authentication>() {
        Some(authentication) if authentication.anonymous => Ok(None),
        _ => Err(MissingAuthLayer::NoLayer {
            what: "the resolved user",
            hint: " with resolve_user (and the same user type)",
        }),
    }
}

impl<S, C> FromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Anonymous requests reach a handler only behind an optional layer: one that wants
        // claims must take `Option<Claims>`.
        claims(parts)?.ok_or(MissingAuthLayer::NoLayer {
            what: "verified claims",
            hint: " without optional() (or extract Option<Claims>)",
        })
    }
}

/// `Option<Claims<C>>`: `None` only when an [optional](crate::JwtAuthLayer::optional)
/// layer let a request without credentials through. Bad credentials never reach the
/// handler (the layer answered 401), nor do requests when the store failed (503).
impl<S, C> OptionalFromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        claims(parts)
    }
}

impl<S, U> FromRequestParts<S> for CurrentUser<U>
where
    S: Send + Sync,
    U: Clone + Send + Sync + 'static,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        user(parts)?.ok_or(MissingAuthLayer::NoLayer {
            what: "the resolved user",
            hint: " without optional() (or extract Option<CurrentUser>)",
        })
    }
}

/// `Option<CurrentUser<U>>`, as `Option<Claims<C>>`.
impl<S, U> OptionalFromRequestParts<S> for CurrentUser<U>
where
    S: Send + Sync,
    U: Clone + Send + Sync + 'static,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        user(parts)
    }
}

/// The token answer: [`Issued::response`].
impl IntoResponse for Issued {
    fn into_response(self) -> Response {
        self.response().map(Body::new)
    }
}

/// A refused login or refresh: [`IssueError::response`].
impl IntoResponse for IssueError {
    fn into_response(self) -> Response {
        self.response().map(Body::new)
    }
}

/// A refusal without the layer's configuration (no realm, `Retry-After: 1`, the JSON body);
/// [`Sessions::refusal`](crate::Sessions::refusal) writes exactly the layer's.
impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        crate::error::Challenge::default()
            .respond(
                &crate::JsonErrors,
                &self,
                &crate::error::RefusedRequest::unknown(),
            )
            .map(Body::new)
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn without_the_layer_the_extractors_answer_500_naming_it() {
        async fn me(claims: Claims) -> String {
            claims.sub
        }
        async fn user(CurrentUser(user): CurrentUser<String>) -> String {
            user
        }
        // A routing mistake: the layer was never added.
        let app: Router = Router::new()
            .route("/me", get(me))
            .route("/user", get(user));
        for path in ["/me", "/user"] {
            let request = Request::get(path)
                .header("authorization", "Bearer abc")
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{path}"
            );
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let body = String::from_utf8(body.to_vec()).unwrap();
            assert!(body.contains("JwtAuthLayer"), "{path}: {body}");
        }
    }

    #[tokio::test]
    async fn a_value_of_the_users_type_from_another_layer_is_not_the_user() {
        async fn user(CurrentUser(user): CurrentUser<String>) -> String {
            user
        }
        let sessions = crate::Sessions::builder(
            crate::Keys::hs256([7; 32]).unwrap(),
            crate::store::MemoryStore::new(),
        )
        .build()
        .unwrap();
        let issued = sessions.issue(crate::Login::new("alice")).await.unwrap();
        // Some other layer puts a `String` into the extensions; no resolver ran.
        let app: Router = Router::new()
            .route("/user", get(user))
            .route_layer(sessions.layer())
            .layer(axum::middleware::map_request(
                |mut request: Request<Body>| async move {
                    request.extensions_mut().insert(String::from("mallory"));
                    request
                },
            ));
        let request = Request::get("/user")
            .header("authorization", format!("Bearer {}", issued.access_token))
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn option_claims_is_none_only_without_credentials_behind_an_optional_layer() {
        async fn greeting(claims: Option<Claims>) -> String {
            claims.map_or("anonymous".into(), |claims| claims.sub)
        }
        #[derive(Clone, serde::Deserialize)]
        struct Other {}
        async fn other(claims: Claims<Other>) -> String {
            claims.sub
        }
        let sessions = crate::Sessions::builder(
            crate::Keys::hs256([7; 32]).unwrap(),
            crate::store::MemoryStore::new(),
        )
        .build()
        .unwrap();
        let issued = sessions.issue(crate::Login::new("alice")).await.unwrap();
        let app: Router = Router::new()
            .route("/greeting", get(greeting))
            .route("/other", get(other))
            .route_layer(sessions.layer().optional());
        let call = |path: &'static str, token: Option<String>| {
            let app = app.clone();
            async move {
                let mut request = Request::get(path);
                if let Some(token) = token {
                    request = request.header("authorization", format!("Bearer {token}"));
                }
                let response = app
                    .oneshot(request.body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                (status, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        assert_eq!(
            call("/greeting", None).await,
            (StatusCode::OK, "anonymous".into())
        );
        let token = Some(issued.access_token.clone());
        assert_eq!(
            call("/greeting", token.clone()).await,
            (StatusCode::OK, "alice".into())
        );
        assert_eq!(
            call("/greeting", Some("x.y.z".into())).await.0,
            StatusCode::UNAUTHORIZED
        );

        let (status, body) = call("/other", token).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.contains("Claims<()>") && body.contains("Other"),
            "{body}"
        );
    }
}
