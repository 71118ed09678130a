use std::fmt;

use tower_layer::Layer;

use super::JwtAuth;
use crate::Sessions;

/// Wraps services in [`JwtAuth`]; from [`Sessions::layer`]. See the
/// [module docs](crate::auth).
pub struct JwtAuthLayer<St, C = (), R = ()> {
    sessions: Sessions<St, C>,
    resolver: R,
}

impl<St, C> JwtAuthLayer<St, C> {
    /// The layer of `sessions`, with no user lookup.
    pub fn new(sessions: Sessions<St, C>) -> Self {
        Self {
            sessions,
            resolver: (),
        }
    }
}

impl<St, C, R> JwtAuthLayer<St, C, R> {
    /// Looks each request's user up with `resolver` after its session passed; see
    /// [`UserResolver`](crate::UserResolver).
    pub fn resolve_user<R2>(self, resolver: R2) -> JwtAuthLayer<St, C, R2> {
        JwtAuthLayer {
            sessions: self.sessions,
            resolver,
        }
    }
}

impl<S, St, C, R: Clone> Layer<S> for JwtAuthLayer<St, C, R> {
    type Service = JwtAuth<S, St, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth::from_parts(inner, self.sessions.clone(), self.resolver.clone())
    }
}

impl<St, C, R: Clone> Clone for JwtAuthLayer<St, C, R> {
    fn clone(&self) -> Self {
        Self {
            sessions: self.sessions.clone(),
            resolver: self.resolver.clone(),
        }
    }
}

impl<St, C, R> fmt::Debug for JwtAuthLayer<St, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}
