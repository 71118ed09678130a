use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::JwtAuth;
use super::policy::{Policy, Requirement, is_scope_token};
use crate::{Claims, Sessions};

/// Wraps services in [`JwtAuth`]; from [`Sessions::layer`]. See the
/// [module docs](crate::auth).
pub struct JwtAuthLayer<St, C = (), R = ()> {
    sessions: Sessions<St, C>,
    resolver: R,
    policy: Policy<C>,
}

impl<St, C> JwtAuthLayer<St, C> {
    /// The layer of `sessions`, with no user lookup.
    pub fn new(sessions: Sessions<St, C>) -> Self {
        Self {
            sessions,
            resolver: (),
            policy: Policy::new(),
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
            policy: self.policy,
        }
    }

    /// Optional authentication: a request with no credentials at all goes on without
    /// claims (extract `Option<Claims>` in axum). Credentials that are present are checked
    /// as always: a bad, expired or revoked token is still 401, and a store that cannot
    /// answer still 503, never "anonymous".
    pub fn optional(mut self) -> Self {
        self.policy.optional = true;
        self
    }

    /// Only tokens whose `scope` lists `scope` get through; others get `403` with
    /// `WWW-Authenticate: Bearer error="insufficient_scope", …, scope="<scope>"` (RFC 6750
    /// §3.1). Checked after the session and the user.
    ///
    /// # Panics
    ///
    /// When `scope` is not a scope name (RFC 6749 §3.3: printable ASCII without space, `"`
    /// or `\`): a mistake in the program, found when the layer is built.
    pub fn require_scope(mut self, scope: &str) -> Self {
        assert!(
            is_scope_token(scope),
            "{scope:?} is not a scope name (RFC 6749 section 3.3)"
        );
        self.policy.requirement = Some(Arc::new(Requirement::Scope(Arc::from(scope))));
        self
    }

    /// Only requests whose claims satisfy `rule` get through; others get `403
    /// insufficient_scope`. Checked after the session and the user.
    pub fn require<F>(mut self, rule: F) -> Self
    where
        F: Fn(&Claims<C>) -> bool + Send + Sync + 'static,
    {
        self.policy.requirement = Some(Arc::new(Requirement::Rule(Box::new(rule))));
        self
    }
}

impl<S, St, C, R: Clone> Layer<S> for JwtAuthLayer<St, C, R> {
    type Service = JwtAuth<S, St, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth::from_parts(
            inner,
            self.sessions.clone(),
            self.resolver.clone(),
            self.policy.clone(),
        )
    }
}

impl<St, C, R: Clone> Clone for JwtAuthLayer<St, C, R> {
    fn clone(&self) -> Self {
        Self {
            sessions: self.sessions.clone(),
            resolver: self.resolver.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<St, C, R> fmt::Debug for JwtAuthLayer<St, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("sessions", &self.sessions)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
