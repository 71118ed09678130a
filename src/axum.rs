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

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::{Claims, ResolvedUser};

/// The user a [`UserResolver`](crate::UserResolver) resolved for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentUser<U>(pub U);

/// The request did not pass through [`JwtAuthLayer`](crate::JwtAuthLayer): the server is
/// misconfigured. Answered with 500.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{what} missing from the request extensions: is the route behind JwtAuthLayer{hint}?")]
pub struct MissingAuthLayer {
    what: &'static str,
    hint: &'static str,
}

impl IntoResponse for MissingAuthLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S, C> FromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(MissingAuthLayer {
                what: "verified claims",
                hint: " (with the same claims type)",
            })
    }
}

impl<S, U> FromRequestParts<S> for CurrentUser<U>
where
    S: Send + Sync,
    U: Clone + Send + Sync + 'static,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ResolvedUser<U>>()
            .map(|user| CurrentUser(user.get().clone()))
            .ok_or(MissingAuthLayer {
                what: "the resolved user",
                hint: " with resolve_user",
            })
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
}
