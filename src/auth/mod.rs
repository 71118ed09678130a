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
//! sessions.revoke("alice", &issued.session_id).await?;
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
mod policy;
mod service;

pub use body::AuthBody;
pub use future::ResponseFuture;
pub use layer::JwtAuthLayer;
pub use service::JwtAuth;

#[cfg(feature = "axum")]
pub(crate) use policy::Authentication;

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Pending, Ready, pending, ready};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use bytes::Bytes;
    use http::{Request, Response, StatusCode, header};
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceBuilder, ServiceExt, service_fn};
    use tower_service::Service;

    use super::*;
    use crate::error::{AuthError, RefusedRequest};
    use crate::store::{
        Created, MemoryStore, Rotated, Rotation, Session, SessionLimit, SessionStore, StoreError,
    };
    use crate::{Claims, Keys, Login, ResolveError, SessionId, Sessions, resolve_fn};

    fn sessions<St: SessionStore>(store: St) -> Sessions<St> {
        Sessions::builder(Keys::hs256([7; 32]).unwrap(), store)
            .realm("tests")
            .retry_after(Duration::from_secs(4))
            .build()
            .unwrap()
    }

    fn request(token: &str) -> Request<Full<Bytes>> {
        Request::get("/")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::default())
            .unwrap()
    }

    async fn body<B: http_body::Body<Data = Bytes>>(response: Response<B>) -> String
    where
        B::Error: std::fmt::Debug,
    {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Echoes the user the layer put into the extensions.
    async fn echo(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
        let claims = request.extensions().get::<Claims>().unwrap();
        Ok(Response::new(Full::from(format!(
            "{} {}",
            claims.sub, claims.sid
        ))))
    }

    #[tokio::test]
    async fn verified_claims_reach_the_inner_service() {
        let sessions = sessions(MemoryStore::new());
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        let service = ServiceBuilder::new()
            .layer(sessions.layer())
            .service_fn(echo);
        let response = service
            .oneshot(request(&issued.access_token))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, format!("alice {}", issued.session_id));
    }

    #[tokio::test]
    async fn the_inner_error_passes_through_unchanged() {
        #[derive(Debug, PartialEq)]
        struct Boom;
        let sessions = sessions(MemoryStore::new());
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        let service = ServiceBuilder::new()
            .layer(sessions.layer())
            .service_fn(|_: Request<Full<Bytes>>| ready(Err::<Response<Full<Bytes>>, _>(Boom)));
        let error = service
            .oneshot(request(&issued.access_token))
            .await
            .unwrap_err();
        assert_eq!(error, Boom);
    }

    #[tokio::test]
    async fn refusals_are_ok_responses_and_the_inner_service_is_not_called() {
        let sessions = sessions(MemoryStore::new());
        let service = ServiceBuilder::new().layer(sessions.layer()).service_fn(
            |_: Request<Full<Bytes>>| async {
                panic!("the inner service must not be called");
                #[allow(unreachable_code)]
                Ok::<Response<Full<Bytes>>, Infallible>(Response::default())
            },
        );
        let response = service.oneshot(request("not.a.token")).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="tests", error="invalid_token", error_description="malformed token""#
        );
        assert_eq!(
            body(response).await,
            r#"{"error":"invalid_token","error_description":"malformed token"}"#
        );
    }

    /// A store that cannot answer: down, or hanging.
    struct BrokenStore<F>(fn() -> F);

    impl<F> SessionStore for BrokenStore<F>
    where
        F: std::future::Future<Output = Result<bool, StoreError>> + Send + 'static,
    {
        type IsActive = F;

        async fn create(
            &self,
            _: &Session,
            _: Option<SessionLimit>,
        ) -> Result<Created, StoreError> {
            Ok(Created::Live { ended: 0 })
        }
        fn is_active(&self, _: &str, _: &SessionId, _: u64, _: u64) -> F {
            (self.0)()
        }
        async fn rotate(
            &self,
            _: &str,
            _: &SessionId,
            _: &Rotation,
        ) -> Result<Rotated, StoreError> {
            Err(StoreError::Timeout)
        }
        async fn revoke_authenticated_before(
            &self,
            _: &str,
            _: std::time::SystemTime,
            _: std::time::SystemTime,
        ) -> Result<u64, StoreError> {
            Err(StoreError::Timeout)
        }
        async fn revoke(&self, _: &str, _: &SessionId) -> Result<bool, StoreError> {
            Err(StoreError::Timeout)
        }
        async fn revoke_all(&self, _: &str) -> Result<u64, StoreError> {
            Err(StoreError::Timeout)
        }
        async fn list(&self, _: &str, _: u64, _: usize) -> Result<Vec<Session>, StoreError> {
            Err(StoreError::Timeout)
        }
    }

    fn down() -> Ready<Result<bool, StoreError>> {
        ready(Err(StoreError::Unavailable("connection refused".into())))
    }

    #[tokio::test]
    async fn a_failing_store_fails_closed_with_503() {
        let sessions = sessions(BrokenStore(down));
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        let service = ServiceBuilder::new()
            .layer(sessions.layer())
            .service_fn(echo);
        let response = service
            .oneshot(request(&issued.access_token))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "4");
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(
            body(response).await,
            r#"{"error":"temporarily_unavailable","error_description":"session store unavailable"}"#
        );

        let logout = sessions
            .logout_service()
            .oneshot(request(&issued.access_token));
        assert_eq!(
            logout.await.unwrap().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_never_answers_never_lets_the_request_in() {
        fn hang() -> Pending<Result<bool, StoreError>> {
            pending()
        }
        let sessions = sessions(BrokenStore(hang));
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        let service = ServiceBuilder::new()
            .layer(sessions.layer())
            .service_fn(echo);
        let call = service.oneshot(request(&issued.access_token));
        assert!(
            tokio::time::timeout(Duration::from_secs(60), call)
                .await
                .is_err(),
            "a store without a timeout of its own keeps the request waiting, never passes it"
        );
    }

    #[derive(Clone, Debug, PartialEq)]
    struct User(&'static str);

    #[tokio::test]
    async fn the_resolved_user_reaches_the_inner_service() {
        let sessions = sessions(MemoryStore::new());
        let resolver = resolve_fn(|claims: &Claims| {
            ready(Ok(match claims.sub.as_str() {
                "alice" => Some(User("Alice Liddell")),
                _ => None,
            }))
        });
        let service = ServiceBuilder::new()
            .layer(sessions.layer().resolve_user(resolver))
            .service_fn(|request: Request<Full<Bytes>>| async move {
                let user = request
                    .extensions()
                    .get::<crate::ResolvedUser<User>>()
                    .unwrap();
                let user = user.get();
                Ok::<_, Infallible>(Response::new(Full::from(user.0)))
            });

        let alice = sessions.issue(Login::new("alice")).await.unwrap();
        let response = service
            .clone()
            .oneshot(request(&alice.access_token))
            .await
            .unwrap();
        assert_eq!(body(response).await, "Alice Liddell");

        let gone = sessions.issue(Login::new("carol")).await.unwrap();
        let response = service.oneshot(request(&gone.access_token)).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="tests", error="invalid_token", error_description="unknown user""#
        );
    }

    #[tokio::test]
    async fn a_failing_resolver_fails_closed_with_503() {
        let sessions = sessions(MemoryStore::new());
        let resolver = resolve_fn(|_: &Claims| {
            ready(Err::<Option<User>, _>(ResolveError::new("database down")))
        });
        let service = ServiceBuilder::new()
            .layer(sessions.layer().resolve_user(resolver))
            .service_fn(echo);
        let alice = sessions.issue(Login::new("alice")).await.unwrap();
        let response = service.oneshot(request(&alice.access_token)).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "4");
    }

    /// A service that knows whether this very instance was readied.
    #[derive(Default)]
    struct MustBeReady {
        ready: bool,
    }

    impl Clone for MustBeReady {
        fn clone(&self) -> Self {
            Self::default() // a clone has not been readied
        }
    }

    impl Service<Request<Full<Bytes>>> for MustBeReady {
        type Response = Response<Full<Bytes>>;
        type Error = &'static str;
        type Future = Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.ready = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<Full<Bytes>>) -> Self::Future {
            let was_ready = std::mem::take(&mut self.ready);
            ready(if was_ready {
                Ok(Response::default())
            } else {
                Err("called without being readied")
            })
        }
    }

    #[tokio::test]
    async fn the_readied_inner_service_is_the_one_called() {
        let sessions = sessions(MemoryStore::new());
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        let mut service = JwtAuth::new(MustBeReady::default(), sessions);
        for _ in 0..3 {
            let response = service
                .ready()
                .await
                .unwrap()
                .call(request(&issued.access_token))
                .await;
            assert_eq!(response.unwrap().status(), StatusCode::OK);
        }
    }

    #[tokio::test]
    async fn any_response_body_type_works() {
        let sessions = sessions(MemoryStore::new());
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        let service = ServiceBuilder::new()
            .layer(sessions.layer())
            .service(service_fn(|_: Request<()>| {
                ready(Ok::<_, Infallible>(Response::new(String::from(
                    "a String body",
                ))))
            }));
        let request = Request::get("/")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", issued.access_token),
            )
            .body(())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(body(response).await, "a String body");
    }

    /// Answers who the request is from, or "anonymous".
    async fn who(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
        let who = request
            .extensions()
            .get::<Claims>()
            .map_or("anonymous".to_owned(), |claims| claims.sub.clone());
        Ok(Response::new(Full::from(who)))
    }

    #[tokio::test]
    async fn optional_lets_only_requests_without_credentials_through_anonymously() {
        let sessions = sessions(MemoryStore::new());
        let service = ServiceBuilder::new()
            .layer(sessions.layer().optional())
            .service_fn(who);
        let anonymous = Request::get("/").body(Full::default()).unwrap();
        let response = service.clone().oneshot(anonymous).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, "anonymous");

        let alice = sessions.issue(Login::new("alice")).await.unwrap();
        let response = service
            .clone()
            .oneshot(request(&alice.access_token))
            .await
            .unwrap();
        assert_eq!(body(response).await, "alice");

        // Present but bad, or revoked: refused as always.
        let response = service
            .clone()
            .oneshot(request("not.a.token"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        sessions.revoke_all("alice").await.unwrap();
        let response = service
            .clone()
            .oneshot(request(&alice.access_token))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let malformed = Request::get("/")
            .header(header::AUTHORIZATION, "Bearer")
            .body(Full::default())
            .unwrap();
        let response = service.oneshot(malformed).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn optional_never_means_anonymous_when_the_store_fails() {
        let sessions = sessions(BrokenStore(down));
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        let service = ServiceBuilder::new()
            .layer(sessions.layer().optional())
            .service_fn(who);
        let response = service
            .oneshot(request(&issued.access_token))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn require_scope_answers_403_with_the_scope_in_the_challenge() {
        let sessions = sessions(MemoryStore::new());
        let service = ServiceBuilder::new()
            .layer(sessions.layer().require_scope("admin"))
            .service_fn(who);
        let bob = sessions
            .issue(Login::new("bob").scope("profile admin"))
            .await
            .unwrap();
        let response = service
            .clone()
            .oneshot(request(&bob.access_token))
            .await
            .unwrap();
        assert_eq!(body(response).await, "bob");

        let alice = sessions
            .issue(Login::new("alice").scope("profile administrator"))
            .await
            .unwrap();
        let response = service
            .clone()
            .oneshot(request(&alice.access_token))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="tests", error="insufficient_scope", error_description="insufficient scope", scope="admin""#
        );
        assert_eq!(
            body(response).await,
            r#"{"error":"insufficient_scope","error_description":"insufficient scope"}"#
        );
        // No token at all is still 401, not 403.
        let anonymous = Request::get("/").body(Full::default()).unwrap();
        let response = service.oneshot(anonymous).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_rule_of_the_applications_answers_403_without_a_scope() {
        let sessions = sessions(MemoryStore::new());
        let service = ServiceBuilder::new()
            .layer(
                sessions
                    .layer()
                    .require(|claims| claims.sub.starts_with('a')),
            )
            .service_fn(who);
        let alice = sessions.issue(Login::new("alice")).await.unwrap();
        let bob = sessions.issue(Login::new("bob")).await.unwrap();
        let response = service
            .clone()
            .oneshot(request(&alice.access_token))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let response = service.oneshot(request(&bob.access_token)).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="tests", error="insufficient_scope", error_description="insufficient scope""#
        );
    }

    #[test]
    #[should_panic(expected = "not a scope name")]
    fn a_scope_with_a_quote_is_refused_when_the_layer_is_built() {
        let sessions = sessions(MemoryStore::new());
        let _ = sessions.layer().require_scope("ad\"min");
    }

    #[tokio::test]
    async fn the_error_handler_sees_the_request_and_keeps_the_status() {
        let handler = |error: &AuthError, request: &RefusedRequest<'_>| {
            let browser = request
                .headers
                .get(header::ACCEPT)
                .is_some_and(|accept| accept.as_bytes().starts_with(b"text/html"));
            let body = if browser {
                "<p>please log in</p>"
            } else {
                error.code()
            };
            // Asks for 200: a refusal keeps its own status all the same.
            Response::new(Full::from(format!("{} {body}", request.uri.path())))
        };
        let sessions = Sessions::builder(Keys::hs256([7; 32]).unwrap(), MemoryStore::new())
            .error_handler(handler)
            .build()
            .unwrap();
        let service = ServiceBuilder::new()
            .layer(sessions.layer())
            .service_fn(who);
        let browser = Request::get("/account")
            .header(header::ACCEPT, "text/html")
            .body(Full::default())
            .unwrap();
        let response = service.clone().oneshot(browser).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body(response).await, "/account <p>please log in</p>");
        let response = service.oneshot(request("not.a.token")).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body(response).await, "/ invalid_token");
    }
}
