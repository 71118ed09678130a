use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use std::sync::Arc;

use super::AuthBody;
use super::policy::{Authentication, Policy, Requirement};
use crate::error::{AuthError, RefusedRequest, TokenError};
use crate::store::SessionStore;
use crate::{Claims, ResolvedUser, Sessions, UserResolver};

pin_project! {
    /// The response future of [`JwtAuth`](super::JwtAuth): the allowlist check, the user
    /// lookup, then the inner service, without boxing.
    pub struct ResponseFuture<S, ReqBody, St, C, R>
    where
        S: Service<Request<ReqBody>>,
        St: SessionStore,
        R: UserResolver<C>,
    {
        #[pin]
        state: State<St::IsActive, R::Future, S::Future>,
        pending: Option<Pending<S, ReqBody, St, C, R>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<A, U, F> {
        Checking { #[pin] fut: A },
        Resolving { #[pin] fut: U },
        Inner { #[pin] fut: F },
        Rejected { response: Option<Response<Full<Bytes>>> },
    }
}

/// What waits while the session is checked: the readied inner service and the request.
struct Pending<S, ReqBody, St, C, R> {
    sessions: Sessions<St, C>,
    resolver: R,
    requirement: Option<Arc<Requirement<C>>>,
    inner: S,
    request: Request<ReqBody>,
    claims: Claims<C>,
}

const POLLED_AFTER_COMPLETION: &str = "ResponseFuture polled after completion";

impl<S, ReqBody, St, C, R> ResponseFuture<S, ReqBody, St, C, R>
where
    S: Service<Request<ReqBody>>,
    St: SessionStore,
    R: UserResolver<C>,
{
    pub(super) fn checking(
        sessions: Sessions<St, C>,
        resolver: R,
        requirement: Option<Arc<Requirement<C>>>,
        inner: S,
        request: Request<ReqBody>,
        claims: Claims<C>,
        now: u64,
    ) -> Self {
        Self {
            state: State::Checking {
                fut: sessions.is_active(&claims, now),
            },
            pending: Some(Pending {
                sessions,
                resolver,
                requirement,
                inner,
                request,
                claims,
            }),
        }
    }

    /// The inner service was called without a check (optional authentication, no
    /// credentials).
    pub(super) fn passed(fut: S::Future) -> Self {
        Self {
            state: State::Inner { fut },
            pending: None,
        }
    }

    pub(super) fn rejected(response: Response<Full<Bytes>>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
            pending: None,
        }
    }
}

impl<S, ReqBody, ResBody, St, C, R> Future for ResponseFuture<S, ReqBody, St, C, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: SessionStore,
    C: Clone + Send + Sync + 'static,
    R: UserResolver<C>,
{
    type Output = Result<Response<AuthBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Checking { fut } => {
                    let active = ready!(fut.poll(cx));
                    let pending = this.pending.as_ref().expect(POLLED_AFTER_COMPLETION);
                    match active {
                        Ok(true) => State::Resolving {
                            fut: pending.resolver.resolve(&pending.claims),
                        },
                        Ok(false) => rejection(
                            &pending.sessions,
                            TokenError::Revoked.into(),
                            &pending.request,
                        ),
                        Err(error) => rejection(
                            &pending.sessions,
                            AuthError::StoreUnavailable(error),
                            &pending.request,
                        ),
                    }
                }
                StateProj::Resolving { fut } => {
                    let user = ready!(fut.poll(cx));
                    let Pending {
                        sessions,
                        mut inner,
                        mut request,
                        claims,
                        requirement,
                        ..
                    } = this.pending.take().expect(POLLED_AFTER_COMPLETION);
                    let allowed = match &requirement {
                        Some(requirement) => Policy::check(requirement, &claims),
                        None => Ok(()),
                    };
                    match user {
                        Ok(Some(_)) if let Err(refusal) = allowed => {
                            rejection(&sessions, refusal, &request)
                        }
                        Ok(Some(user)) => {
                            let extensions = request.extensions_mut();
                            extensions.insert(claims);
                            extensions.insert(Authentication {
                                claims_type: std::any::type_name::<C>(),
                                anonymous: false,
                            });
                            // `()` looks nothing up: no user to insert (the check folds away).
                            if TypeId::of::<R::User>() != TypeId::of::<()>() {
                                extensions.insert(ResolvedUser::new(user));
                            }
                            State::Inner {
                                fut: inner.call(request),
                            }
                        }
                        Ok(None) => rejection(&sessions, TokenError::UnknownUser.into(), &request),
                        Err(error) => {
                            rejection(&sessions, AuthError::ResolverUnavailable(error), &request)
                        }
                    }
                }
                StateProj::Inner { fut } => {
                    let response = ready!(fut.poll(cx))?;
                    return Poll::Ready(Ok(response.map(AuthBody::inner)));
                }
                StateProj::Rejected { response } => {
                    let response = response.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Ok(response.map(AuthBody::rejection)));
                }
            };
            this.state.set(next);
        }
    }
}

fn rejection<St: SessionStore, C, A, U, F, B>(
    sessions: &Sessions<St, C>,
    error: AuthError,
    request: &Request<B>,
) -> State<A, U, F> {
    State::Rejected {
        response: Some(sessions.reject(&error, &RefusedRequest::of(request))),
    }
}
