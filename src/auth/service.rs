use std::fmt;
use std::mem;
use std::task::{Context, Poll};

use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::policy::{Authentication, Policy};
use super::{AuthBody, JwtAuthLayer, ResponseFuture};
use crate::error::{AuthError, RefusedRequest};
use crate::store::SessionStore;
use crate::{Sessions, UserResolver};

/// Lets a request through to the inner service only when its bearer token verifies and its
/// session is live; refuses it otherwise. See the [module docs](crate::auth).
pub struct JwtAuth<S, St, C = (), R = ()> {
    inner: S,
    sessions: Sessions<St, C>,
    resolver: R,
    policy: Policy<C>,
}

impl<S, St, C> JwtAuth<S, St, C> {
    /// Wraps `inner`.
    pub fn new(inner: S, sessions: Sessions<St, C>) -> Self {
        Self::from_parts(inner, sessions, (), Policy::new())
    }

    /// The layer that wraps services this way.
    pub fn layer(sessions: Sessions<St, C>) -> JwtAuthLayer<St, C> {
        JwtAuthLayer::new(sessions)
    }
}

impl<S, St, C, R> JwtAuth<S, St, C, R> {
    pub(super) fn from_parts(
        inner: S,
        sessions: Sessions<St, C>,
        resolver: R,
        policy: Policy<C>,
    ) -> Self {
        Self {
            inner,
            sessions,
            resolver,
            policy,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, St, C, R, ReqBody, ResBody> Service<Request<ReqBody>> for JwtAuth<S, St, C, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: SessionStore,
    C: DeserializeOwned + Clone + Send + Sync + 'static,
    R: UserResolver<C>,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, St, C, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let now = self.sessions.now();
        match self
            .sessions
            .verify_request_cached(request.method(), request.headers(), now)
        {
            Ok((claims, _)) => {
                // Call the service that `poll_ready` readied; leave a fresh clone behind.
                let clone = self.inner.clone();
                let inner = mem::replace(&mut self.inner, clone);
                ResponseFuture::checking(
                    self.sessions.clone(),
                    self.resolver.clone(),
                    self.policy.requirement.clone(),
                    inner,
                    request,
                    claims,
                    now,
                )
            }
            Err(AuthError::Missing) if self.policy.optional => {
                let mut request = request;
                request.extensions_mut().insert(Authentication {
                    claims_type: std::any::type_name::<C>(),
                    anonymous: true,
                });
                ResponseFuture::passed(self.inner.call(request))
            }
            Err(error) => ResponseFuture::rejected(
                self.sessions.reject(&error, &RefusedRequest::of(&request)),
            ),
        }
    }
}

impl<S: Clone, St, C, R: Clone> Clone for JwtAuth<S, St, C, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            sessions: self.sessions.clone(),
            resolver: self.resolver.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<S: fmt::Debug, St, C, R> fmt::Debug for JwtAuth<S, St, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("inner", &self.inner)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}
