//! The allowlist of live sessions: the [`SessionStore`] trait and its stores.
//!
//! A token is accepted only while its session is in the store and unexpired, so the store,
//! not the signature alone, decides. [`MemoryStore`] serves one process with no set-up; the
//! Redis store (feature `redis`) shares one allowlist between many instances.
//!
//! What every store guarantees:
//! - `create` refuses an id the user has already ([`StoreError::Conflict`]), never
//!   overwrites (the memory store refuses an id any user has);
//! - `is_active` honours expiry even before the entry is physically removed;
//! - `revoke` and `revoke_all` are idempotent;
//! - a `revoke_all` racing a `create` of the same user never leaves a live session that a
//!   later `revoke_all` cannot reach;
//! - expired sessions are removed, so memory is bounded by the live sessions;
//! - no token is ever stored: only session ids and their metadata.
//!
//! ```
//! use tower_jwt_auth::store::{MemoryStore, Session, SessionStore};
//! use tower_jwt_auth::SessionId;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_jwt_auth::store::StoreError> {
//! let store = MemoryStore::new();
//! let id = SessionId::from_bytes([1; 16]);
//! store.create(&Session::new(id, "alice", 1_000, 2_000)).await?;
//! assert!(store.is_active("alice", &id, 1_500).await?);
//! assert!(!store.is_active("alice", &id, 2_000).await?); // expired
//! assert_eq!(store.revoke_all("alice").await?, 1);
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::net::IpAddr;

use crate::SessionId;

mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
pub use memory::MemoryStore;

/// A boxed error from a store backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One login: a live entry of the allowlist, and what a user sees in a list of their devices.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Session {
    /// The random session id (the `sid` claim).
    pub id: SessionId,
    /// The user (the `sub` claim).
    pub sub: String,
    /// When it was created (seconds since the Unix epoch).
    pub created_at: u64,
    /// When it ends, however it is used (seconds since the Unix epoch).
    pub expires_at: u64,
    /// When it was last used (seconds since the Unix epoch).
    pub last_used_at: u64,
    /// The `User-Agent` it was created from, if known.
    pub user_agent: Option<String>,
    /// The client address it was created from, if known.
    pub address: Option<IpAddr>,
}

impl Session {
    /// A session of `sub` from `created_at` to `expires_at`, without metadata.
    pub fn new(id: SessionId, sub: impl Into<String>, created_at: u64, expires_at: u64) -> Self {
        Self {
            id,
            sub: sub.into(),
            created_at,
            expires_at,
            last_used_at: created_at,
            user_agent: None,
            address: None,
        }
    }

    /// Whether it is still live at `now`.
    pub fn is_live(&self, now: u64) -> bool {
        now < self.expires_at
    }
}

/// Why a store could not answer. The source error is kept, so a timeout can be told from a
/// refused connection or bad data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached (connection refused, reset, not yet reconnected).
    #[error("the session store is unavailable")]
    Unavailable(#[source] BoxError),
    /// The backend did not answer within the configured time.
    #[error("the session store did not answer in time")]
    Timeout,
    /// A session with this id exists already.
    #[error("a session with this id exists already")]
    Conflict,
    /// The backend answered with an error or with data it should not hold.
    #[error("the session store failed")]
    Backend(#[source] BoxError),
}

/// The allowlist of live sessions, keyed by session id and indexed by user.
///
/// `is_active` is on every request's path, so its future is a named associated type: the
/// middleware's response future holds it without boxing (as `tower::Service::Future` does).
/// The other methods are plain `async` (`impl Future + Send`). See the
/// [module docs](crate::store) for the contract.
pub trait SessionStore: Send + Sync + 'static {
    /// The future of [`is_active`](Self::is_active).
    type IsActive: Future<Output = Result<bool, StoreError>> + Send + 'static;

    /// Adds a new session; an id the user has already is [`StoreError::Conflict`].
    fn create(&self, session: &Session) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether session `sid` of `sub` exists and is unexpired at `now`.
    fn is_active(&self, sub: &str, sid: &SessionId, now: u64) -> Self::IsActive;

    /// Ends one session; `true` when it existed.
    fn revoke(
        &self,
        sub: &str,
        sid: &SessionId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ends every session of `sub`; how many there were.
    fn revoke_all(&self, sub: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The live sessions of `sub` at `now`, oldest first.
    fn list(
        &self,
        sub: &str,
        now: u64,
    ) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send;
}
