//! What the layer asks beyond a live session: whether credentials are optional, and which
//! scope or rule the claims must satisfy (403 otherwise).

use std::fmt;
use std::sync::Arc;

use crate::Claims;
use crate::error::AuthError;

/// A layer's demands, shared by its services (one `Arc` clone per request at most).
pub(crate) struct Policy<C> {
    /// No credentials at all lets the request through, without claims.
    pub(crate) optional: bool,
    pub(crate) requirement: Option<Arc<Requirement<C>>>,
}

/// A rule of the application's over the claims.
pub(crate) type Rule<C> = Box<dyn Fn(&Claims<C>) -> bool + Send + Sync>;

pub(crate) enum Requirement<C> {
    /// A scope name the token's `scope` must list.
    Scope(Arc<str>),
    /// Any rule of the application's.
    Rule(Rule<C>),
}

impl<C> Policy<C> {
    pub(crate) const fn new() -> Self {
        Self {
            optional: false,
            requirement: None,
        }
    }

    /// `Ok` when `claims` satisfy the requirement, the 403 refusal otherwise.
    pub(crate) fn check(requirement: &Requirement<C>, claims: &Claims<C>) -> Result<(), AuthError> {
        let satisfied = match requirement {
            Requirement::Scope(scope) => claims.has_scope(scope),
            Requirement::Rule(rule) => rule(claims),
        };
        if satisfied {
            return Ok(());
        }
        Err(AuthError::InsufficientScope(match requirement {
            Requirement::Scope(scope) => Some(Arc::clone(scope)),
            Requirement::Rule(_) => None,
        }))
    }
}

impl<C> Clone for Policy<C> {
    fn clone(&self) -> Self {
        Self {
            optional: self.optional,
            requirement: self.requirement.clone(),
        }
    }
}

impl<C> fmt::Debug for Policy<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let requirement = self
            .requirement
            .as_deref()
            .map(|requirement| match requirement {
                Requirement::Scope(scope) => format!("scope {scope}"),
                Requirement::Rule(_) => "a rule".to_owned(),
            });
        f.debug_struct("Policy")
            .field("optional", &self.optional)
            .field("requirement", &requirement)
            .finish()
    }
}

/// Whether `scope` is a scope-token (RFC 6749 §3.3): printable ASCII but space, `"` and `\`.
pub(crate) fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// What the layer tells the extractors about a request it let through: which claims type
/// it verified (so a handler asking for another is told both), and whether the request came
/// without credentials (optional authentication). Only the layer makes one; only the axum
/// extractors read it.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) struct Authentication {
    pub(crate) claims_type: &'static str,
    pub(crate) anonymous: bool,
}
