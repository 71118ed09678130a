//! The allowlist of live sessions: the [`SessionStore`] trait and its stores.
//!
//! A token is accepted only while its session is in the store and unexpired, so the store,
//! not the signature alone, decides. [`MemoryStore`] serves one process with no set-up; the
//! Redis store (feature `redis`) and the PostgreSQL store (feature `postgres`) share one
//! allowlist between many instances; the SQLite store (feature `sqlite`) keeps one
//! instance's sessions across restarts.
//!
//! What every store guarantees:
//! - `create` refuses an id the user has already for another session
//!   ([`StoreError::Conflict`]) and never overwrites; the same session created twice (a
//!   retry after a lost answer) answers [`Created::Live`] again;
//! - `create` refuses a session authenticated before the user's "not before" mark
//!   ([`Created::Barred`]), in the same step as it adds it, so that
//!   [`revoke_authenticated_before`](SessionStore::revoke_authenticated_before) is a barrier
//!   no login in flight slips through;
//! - `is_active` honours expiry even before the entry is physically removed, and records use
//!   at most once per touch interval;
//! - `rotate` is atomic: one refresh token rotates once, and a retired one ends its session;
//!   the same rotation made twice (a retry) answers [`Rotated::Rotated`] again;
//! - with a [`SessionLimit`], counting a user's sessions and adding one are one step, and
//!   the oldest session is the first created, whatever the clock's resolution;
//! - `revoke` and `revoke_all` are idempotent;
//! - a `revoke_all` racing a `create` of the same user never leaves a live session that a
//!   later `revoke_all` cannot reach;
//! - expired sessions are removed, so memory is bounded by the live sessions;
//! - no call reads more of one user's sessions than it must: `list` returns at most the
//!   `max` it is given, and with a session limit every call is bounded by it;
//! - no token is ever stored: only session ids, digests and their metadata.
//!
//! ```
//! use tower_jwt_auth::clock::from_unix_seconds;
//! use tower_jwt_auth::store::{MemoryStore, Session, SessionStore};
//! use tower_jwt_auth::SessionId;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_jwt_auth::store::StoreError> {
//! let store = MemoryStore::new();
//! let id = SessionId::from_bytes([1; 16]);
//! let session = Session::new(id, "alice", from_unix_seconds(1_000), from_unix_seconds(2_000));
//! store.create(&session, None).await?;
//! assert!(store.is_active("alice", &id, 1_500, u64::MAX).await?);
//! assert!(!store.is_active("alice", &id, 2_000, u64::MAX).await?); // expired
//! assert_eq!(store.revoke_all("alice").await?, 1);
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::net::IpAddr;
use std::time::SystemTime;

use crate::SessionId;
use crate::clock::unix_seconds;

mod any;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod feed;
mod memory;
pub mod near_cache;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(feature = "postgres")]
mod postgres_feed;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
#[cfg(feature = "redis")]
mod redis_feed;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql_tables;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
#[cfg(feature = "sqlite")]
pub use self::sqlite::{SqliteStore, SqliteStoreBuilder};
pub use any::{AnyIsActive, AnyStore};
pub use memory::MemoryStore;
pub use near_cache::{Invalidations, NearCache, NearCacheConfig};

/// A boxed error from a store backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One login: a live entry of the allowlist, and what a user sees in a list of their devices.
///
/// Stores keep creation and authentication times to the microsecond, and the others (which
/// tokens carry as whole seconds) to the second.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Session {
    /// The random session id (the `sid` claim).
    pub id: SessionId,
    /// The user (the `sub` claim).
    pub sub: String,
    /// When it was created.
    pub created_at: SystemTime,
    /// When the user proved who they are for it (the password check): its creation time
    /// unless the login said otherwise. A session authenticated before the user's "not
    /// before" mark is never created.
    pub authenticated_at: SystemTime,
    /// When it ends, however it is used.
    pub expires_at: SystemTime,
    /// When it was last used (recorded at most once per touch interval).
    pub last_used_at: SystemTime,
    /// The `User-Agent` it was created from, if known.
    pub user_agent: Option<String>,
    /// The client address it was created from, if known.
    pub address: Option<IpAddr>,
    /// Where its refresh-token rotation stands.
    pub refresh: RefreshState,
}

/// The rotation state of a session's refresh token: which generation is current, and the
/// SHA-256 digest of that one token (the token itself is never stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RefreshState {
    /// How many times the refresh token was rotated.
    pub generation: u64,
    /// SHA-256 of the current refresh token.
    pub digest: [u8; 32],
    /// When the current generation was issued (seconds since the Unix epoch).
    pub rotated_at: u64,
}

impl Session {
    /// A session of `sub` from `created_at` (also its authentication and last use) to
    /// `expires_at`, without metadata, at refresh generation 0 with an all-zero digest.
    pub fn new(
        id: SessionId,
        sub: impl Into<String>,
        created_at: SystemTime,
        expires_at: SystemTime,
    ) -> Self {
        Self {
            id,
            sub: sub.into(),
            created_at,
            authenticated_at: created_at,
            expires_at,
            last_used_at: created_at,
            user_agent: None,
            address: None,
            refresh: RefreshState {
                generation: 0,
                digest: [0; 32],
                rotated_at: unix_seconds(created_at),
            },
        }
    }

    /// Whether it is still live at `now`.
    pub fn is_live(&self, now: SystemTime) -> bool {
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
    /// The backend is older than the store supports.
    #[error("the session store needs version {minimum} or later of its server, found {found}")]
    UnsupportedVersion {
        /// The version the server reported.
        found: String,
        /// The oldest version supported.
        minimum: &'static str,
    },
}

/// A cap on the live sessions of one user, and what a login beyond it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    /// The most live sessions a user may have (at least 1).
    pub max: u32,
    /// What happens to a login when the user has `max` already.
    pub when_full: WhenFull,
}

/// What a login does when its user is at the [`SessionLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// The new login is refused; the existing sessions stay.
    RefuseNew,
    /// The oldest sessions (by creation) end to make room.
    EndOldest,
}

/// What [`SessionStore::liveness`] knows of a live session (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// When it ends, unless revoked or rotated.
    pub until: u64,
    /// Its last recorded use.
    pub last_used: u64,
}

/// What [`SessionStore::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The session is live; `ended` older sessions ended to make room for it.
    Live {
        /// How many sessions [`WhenFull::EndOldest`] ended.
        ended: u32,
    },
    /// The user is at the limit and [`WhenFull::RefuseNew`] holds: nothing was stored.
    LimitReached,
    /// The session was authenticated before the user's "not before" mark (set by
    /// [`revoke_authenticated_before`](SessionStore::revoke_authenticated_before) while the
    /// login was in flight): nothing was stored.
    Barred,
}

/// A refresh, as the store sees it: the generation and digest of the presented refresh token,
/// and what the session becomes when they are the current ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The generation the presented token carries.
    pub generation: u64,
    /// SHA-256 of the presented token.
    pub digest: [u8; 32],
    /// SHA-256 of the token that replaces it.
    pub next_digest: [u8; 32],
    /// Now (seconds since the Unix epoch).
    pub now: u64,
    /// The session's new end (its idle deadline, never past its absolute one).
    pub expires_at: u64,
    /// Seconds after a rotation during which the token it retired is answered
    /// [`Rotated::Forgiven`] instead of ending the session (0: never).
    pub grace: u64,
}

/// What [`SessionStore::rotate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotated {
    /// The presented token was the current one: the next one is current now.
    Rotated,
    /// The presented token was retired within the grace period (two tabs racing): refused,
    /// but the session goes on.
    Forgiven,
    /// The presented token was retired (or never current): a sign of theft, so the whole
    /// session ended.
    Reused,
    /// No such live session.
    Unknown,
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

    /// Adds a new session, dropping the user's expired ones. An id the user has already for
    /// another session is [`StoreError::Conflict`]; the very same session again (a retry)
    /// is [`Created::Live`] with nothing ended. A session authenticated before the user's
    /// "not before" mark is [`Created::Barred`]. With a `limit`, counting and adding are one
    /// atomic step, and [`WhenFull::EndOldest`] ends the first created.
    fn create(
        &self,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// Whether session `sid` of `sub` exists and is unexpired at `now` (Unix seconds). When
    /// it is and its last recorded use is `touch_interval` seconds or more before `now`,
    /// `now` becomes its last use: at most one write per session and interval, never one
    /// per request.
    fn is_active(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> Self::IsActive;

    /// Rotates the refresh token of session `sid` of `sub`, atomically: of two rotations
    /// presenting the same token, exactly one is [`Rotated::Rotated`]. On
    /// [`Rotated::Rotated`] the session takes `rotation.next_digest` at the next generation,
    /// `rotation.expires_at` as its end, and `rotation.now` as its last use and rotation
    /// time. On [`Rotated::Reused`] it is removed. The same rotation presented again once it
    /// took effect (its `next_digest` is current at the next generation: a retry after a
    /// lost answer) is [`Rotated::Rotated`] again and changes nothing.
    fn rotate(
        &self,
        sub: &str,
        sid: &SessionId,
        rotation: &Rotation,
    ) -> impl Future<Output = Result<Rotated, StoreError>> + Send;

    /// Ends one session; `true` when it existed.
    fn revoke(
        &self,
        sub: &str,
        sid: &SessionId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ends every session of `sub`; how many there were.
    fn revoke_all(&self, sub: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Ends every session of `sub` authenticated before `before` (after a password change,
    /// say), and in the same step raises the user's "not before" mark to `before` (it never
    /// goes down), so that a login authenticated earlier but stored later is
    /// [`Created::Barred`]. The mark is kept at least until `keep_until`; how many sessions
    /// ended.
    fn revoke_authenticated_before(
        &self,
        sub: &str,
        before: SystemTime,
        keep_until: SystemTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The live sessions of `sub` at `now` (Unix seconds), oldest (first created) first: at
    /// most the `max` newest of them.
    fn list(
        &self,
        sub: &str,
        now: u64,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send;

    /// [`is_active`](Self::is_active), telling also until when and since when: the
    /// session's end and its last recorded use (after this call's touch), or `None` when it
    /// is not live. A [`NearCache`] keeps the answer until the end, or until the next touch
    /// is due.
    ///
    /// The default answers `until: now` for a live session ("live now, no promise
    /// beyond"), which a near-cache never serves from memory; stores that know the end
    /// override it.
    fn liveness(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> impl Future<Output = Result<Option<Liveness>, StoreError>> + Send {
        let active = self.is_active(sub, sid, now, touch_interval);
        async move {
            Ok(active.await?.then_some(Liveness {
                until: now,
                last_used: now,
            }))
        }
    }
}
