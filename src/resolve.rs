//! Turning verified claims into your user: the "does this user still exist" check.
//!
//! A [`UserResolver`] runs after the token and its session passed. `Ok(Some(user))` puts
//! `user` into the request extensions (as a [`ResolvedUser<User>`]); `Ok(None)` refuses the request with 401 (`unknown
//! user`); `Err` refuses it with 503, never letting it in. Any
//! `Fn(&Claims<C>) -> impl Future<Output = Result<Option<User>, ResolveError>>` is a resolver
//! through [`resolve_fn`].
//!
//! ```
//! use std::future::{Ready, ready};
//! use tower_jwt_auth::{Claims, ResolveError, UserResolver, resolve_fn};
//!
//! #[derive(Clone, Debug)]
//! struct User {
//!     name: String,
//! }
//!
//! // A closure: look the user up (here, a fixed list).
//! let resolver = resolve_fn(|claims: &Claims| {
//!     let found = (claims.sub == "alice").then(|| User { name: claims.sub.clone() });
//!     ready(Ok::<_, ResolveError>(found))
//! });
//! # fn is_resolver<R: UserResolver<()>>(_: &R) {}
//! # is_resolver(&resolver);
//! ```

use std::fmt;
use std::future::{Future, Ready, ready};

use crate::Claims;
use crate::store::BoxError;

/// Looks up the user behind verified claims. See the [module docs](crate::resolve).
///
/// The future is a named type so that the middleware holds it without boxing. `()` is the
/// resolver that looks nothing up (its user is `()`).
pub trait UserResolver<C>: Clone + Send + Sync + 'static {
    /// What the request extensions receive.
    type User: Clone + Send + Sync + 'static;
    /// The future of [`resolve`](Self::resolve).
    type Future: Future<Output = Result<Option<Self::User>, ResolveError>> + Send + 'static;

    /// The user behind `claims`, or `None` when there is none (any more).
    fn resolve(&self, claims: &Claims<C>) -> Self::Future;
}

impl<C> UserResolver<C> for () {
    type User = ();
    type Future = Ready<Result<Option<()>, ResolveError>>;

    fn resolve(&self, _: &Claims<C>) -> Self::Future {
        ready(Ok(Some(())))
    }
}

/// The user a [`UserResolver`] resolved, as the request extensions hold it.
///
/// Only the middleware makes one, so another layer inserting a value of the user's type
/// (a `String`, say) is never taken for the resolved user.
///
/// ```
/// # use tower_jwt_auth::ResolvedUser;
/// fn user_of<U: Clone + Send + Sync + 'static>(request: &http::Request<()>) -> Option<&U> {
///     request.extensions().get::<ResolvedUser<U>>().map(ResolvedUser::get)
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedUser<U>(U);

impl<U> ResolvedUser<U> {
    pub(crate) const fn new(user: U) -> Self {
        Self(user)
    }

    /// The user.
    pub const fn get(&self) -> &U {
        &self.0
    }

    /// The user, by value.
    pub fn into_inner(self) -> U {
        self.0
    }
}

/// A [`UserResolver`] from a function; see [`resolve_fn`].
#[derive(Clone, Copy)]
pub struct ResolveFn<F> {
    f: F,
}

/// Makes a [`UserResolver`] of `f`. See the [module docs](crate::resolve).
pub fn resolve_fn<F>(f: F) -> ResolveFn<F> {
    ResolveFn { f }
}

impl<F> fmt::Debug for ResolveFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolveFn").finish_non_exhaustive()
    }
}

impl<C, F, Fut, U> UserResolver<C> for ResolveFn<F>
where
    F: Fn(&Claims<C>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<U>, ResolveError>> + Send + 'static,
    U: Clone + Send + Sync + 'static,
{
    type User = U;
    type Future = Fut;

    fn resolve(&self, claims: &Claims<C>) -> Fut {
        (self.f)(claims)
    }
}

/// The resolver could not answer (its database is down, say). The source is kept.
#[derive(Debug, thiserror::Error)]
#[error("the user resolver failed")]
pub struct ResolveError {
    #[source]
    source: BoxError,
}

impl ResolveError {
    /// Wraps the resolver's own error.
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
        }
    }
}
