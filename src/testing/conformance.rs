//! The [store contract](crate::store), as tests any store can run (feature `testing`).
//!
//! Each item of the contract is an `async fn` taking a fresh store, which panics (with the
//! item's name in the test's name) when the store breaks it. [`store_conformance!`](crate::store_conformance) makes one
//! `#[test]` per item; [`run`] and the functions themselves serve other harnesses.
//!
//! Every item works under its own random user names and session ids, so the items can run in
//! parallel against one shared backend (a Redis or a database that other tests use too).
//! Times are real (around now), as a backend may expire keys by its own clock.
//!
//! A store of your own, in its crate's tests (`tests/conformance.rs`, with this crate as a
//! dev-dependency with feature `testing`; nothing else is needed, not even Tokio's macros):
//!
//! ```
//! use tower_jwt_auth::store::MemoryStore;
//!
//! // One test per item of the contract, in a module `memory`:
//! // `memory::create_is_retry_safe_and_refuses_another_session_with_its_id`, ...
//! // The expression is a future that gives a store; it is evaluated once per test, on the
//! // test's own multi-threaded Tokio runtime (so it may connect to a server).
//! tower_jwt_auth::store_conformance!(memory, async { MemoryStore::new() });
//!
//! # fn main() {
//! // An item on its own, from any harness:
//! use tower_jwt_auth::testing::conformance;
//! conformance::run(async {
//!     conformance::list_returns_at_most_the_newest_max(MemoryStore::new()).await;
//! });
//! # }
//! ```

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::SessionId;
use crate::clock::{from_unix_micros, from_unix_seconds};
use crate::store::{
    Created, RefreshState, Rotated, Rotation, Session, SessionLimit, SessionStore, StoreError,
    WhenFull,
};

/// Runs `test` to completion on a fresh multi-threaded Tokio runtime (two workers, every
/// driver enabled), as each test of [`store_conformance!`](crate::store_conformance) does. A panic in `test` is the
/// test's failure.
///
/// # Panics
///
/// When the runtime cannot be built (the operating system refused a thread).
pub fn run<F: Future<Output = ()>>(test: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime for the conformance test");
    runtime.block_on(test);
}

/// One `#[test]` per item of the [store contract](crate::store), in a module of the given
/// name, each on a store from the given future (evaluated anew for each test). See
/// [`testing::conformance`](crate::testing::conformance).
///
/// ```
/// use tower_jwt_auth::store::{AnyStore, MemoryStore};
///
/// tower_jwt_auth::store_conformance!(any_memory, async { AnyStore::from(MemoryStore::new()) });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($name:ident, $store:expr $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $crate::__store_conformance_items!(
                $store;
                a_created_session_is_active_until_it_expires,
                create_is_retry_safe_and_refuses_another_session_with_its_id,
                create_drops_expired_sessions,
                revoke_ends_one_session,
                revoke_all_ends_every_session_of_the_user,
                list_returns_live_sessions_in_creation_order_with_metadata,
                list_returns_at_most_the_newest_max,
                users_are_kept_apart_whatever_their_ids,
                logout_all_racing_logins_leaves_nothing_behind,
                refuse_new_at_the_limit_stores_nothing,
                end_oldest_at_the_limit_ends_the_first_created,
                the_limit_keeps_the_newest_of_logins_within_one_second,
                the_limit_is_counted_atomically_under_concurrent_logins,
                the_default_limit_keeps_the_newest_hundred,
                a_check_records_use_at_most_once_per_interval,
                rotate_advances_the_refresh_state,
                rotate_is_retry_safe,
                a_token_retired_within_the_grace_period_is_forgiven,
                a_retired_or_foreign_token_ends_the_session,
                rotating_a_missing_or_expired_session_is_unknown,
                concurrent_rotations_with_one_token_rotate_once,
                revoke_authenticated_before_ends_the_older_sessions,
                the_not_before_mark_is_a_barrier,
                a_revoke_racing_logins_leaves_no_earlier_session,
                the_not_before_mark_is_kept_until_its_end_to_the_microsecond,
                list_round_trips_the_refresh_state,
            );
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_items {
    ($store:expr; $($item:ident),* $(,)?) => {
        $(
            #[test]
            fn $item() {
                $crate::testing::conformance::run(async {
                    let store = $store.await;
                    $crate::testing::conformance::$item(store).await;
                });
            }
        )*
    };
}

/// All the sessions of a user, for `list`.
const ALL: usize = usize::MAX;

/// A store seen through names of one test's own: users get a random prefix and session ids
/// a random mask on the way in, which `list` takes off on the way out. Tests then speak of
/// `"alice"` and `id(1)` while sharing a backend with any other test.
struct Scoped<St> {
    inner: Arc<St>,
    prefix: String,
    mask: u128,
}

impl<St> Clone for Scoped<St> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            prefix: self.prefix.clone(),
            mask: self.mask,
        }
    }
}

impl<St: SessionStore> Scoped<St> {
    fn new(store: St) -> Self {
        let random = |what| {
            let id = SessionId::random().expect(what);
            u128::from_be_bytes(*id.as_bytes())
        };
        Self {
            inner: Arc::new(store),
            prefix: format!("conformance-{:032x}:", random("a random prefix")),
            mask: random("a random mask"),
        }
    }

    fn sub(&self, sub: &str) -> String {
        format!("{}{sub}", self.prefix)
    }

    fn sid(&self, sid: &SessionId) -> SessionId {
        SessionId::from_bytes((u128::from_be_bytes(*sid.as_bytes()) ^ self.mask).to_be_bytes())
    }

    fn scoped(&self, session: &Session) -> Session {
        let mut session = session.clone();
        session.sub = self.sub(&session.sub);
        session.id = self.sid(&session.id);
        session
    }

    /// Creates session `n` of `sub`, from `created_at` until `expires_at` (Unix seconds).
    async fn login(&self, n: u128, sub: &str, created_at: u64, expires_at: u64) {
        let session = session(n, sub, created_at, expires_at);
        self.create(&session, None).await.unwrap();
    }

    /// Whether session `n` of `sub` is live at `now` (a check that records no use).
    async fn live(&self, sub: &str, n: u128, now: u64) -> bool {
        self.is_active(sub, &id(n), now, u64::MAX).await.unwrap()
    }

    fn unscoped(&self, mut session: Session) -> Session {
        // A foreign user stays as it is, so that an assertion shows it.
        if let Some(sub) = session.sub.strip_prefix(&self.prefix) {
            session.sub = sub.to_owned();
        }
        session.id = self.sid(&session.id);
        session
    }
}

impl<St: SessionStore> SessionStore for Scoped<St> {
    type IsActive = St::IsActive;

    async fn create(
        &self,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> Result<Created, StoreError> {
        self.inner.create(&self.scoped(session), limit).await
    }

    fn is_active(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> Self::IsActive {
        self.inner
            .is_active(&self.sub(sub), &self.sid(sid), now, touch_interval)
    }

    async fn rotate(
        &self,
        sub: &str,
        sid: &SessionId,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        self.inner
            .rotate(&self.sub(sub), &self.sid(sid), rotation)
            .await
    }

    async fn revoke(&self, sub: &str, sid: &SessionId) -> Result<bool, StoreError> {
        self.inner.revoke(&self.sub(sub), &self.sid(sid)).await
    }

    async fn revoke_all(&self, sub: &str) -> Result<u64, StoreError> {
        self.inner.revoke_all(&self.sub(sub)).await
    }

    async fn revoke_authenticated_before(
        &self,
        sub: &str,
        before: SystemTime,
        keep_until: SystemTime,
    ) -> Result<u64, StoreError> {
        self.inner
            .revoke_authenticated_before(&self.sub(sub), before, keep_until)
            .await
    }

    async fn list(&self, sub: &str, now: u64, max: usize) -> Result<Vec<Session>, StoreError> {
        let sessions = self.inner.list(&self.sub(sub), now, max).await?;
        Ok(sessions
            .into_iter()
            .map(|session| self.unscoped(session))
            .collect())
    }
}

/// Unix seconds now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `unix_seconds` as a time.
fn secs(unix_seconds: u64) -> SystemTime {
    from_unix_seconds(unix_seconds)
}

/// `unix_micros` as a time.
fn micros(unix_micros: u64) -> SystemTime {
    from_unix_micros(unix_micros)
}

fn id(n: u128) -> SessionId {
    SessionId::from_bytes(n.to_be_bytes())
}

fn session(n: u128, sub: &str, created_at: u64, expires_at: u64) -> Session {
    Session::new(id(n), sub, secs(created_at), secs(expires_at))
}

/// A session of `sub` created at `created_at` (Unix microseconds).
fn session_at(n: u128, sub: &str, created_at: u64, expires_at: u64) -> Session {
    Session::new(id(n), sub, micros(created_at), secs(expires_at))
}

/// A session whose refresh token (generation 0) has the digest `[digest; 32]`.
fn refreshable(n: u128, sub: &str, created_at: u64, expires_at: u64, digest: u8) -> Session {
    let mut session = session(n, sub, created_at, expires_at);
    session.refresh.digest = [digest; 32];
    session
}

/// Presenting the token of `generation` with digest `[digest; 32]` at `now`, to replace it
/// with `[next; 32]` and end the session at `expires_at`.
fn rotation(
    generation: u64,
    digest: u8,
    next: u8,
    now: u64,
    expires_at: u64,
    grace: u64,
) -> Rotation {
    Rotation {
        generation,
        digest: [digest; 32],
        next_digest: [next; 32],
        now,
        expires_at,
        grace,
    }
}

fn limit(max: u32, when_full: WhenFull) -> Option<SessionLimit> {
    Some(SessionLimit { max, when_full })
}

/// The ids of the live sessions of `sub` at `now`, first created first.
async fn listed_ids<St: SessionStore>(store: &St, sub: &str, now: u64) -> Vec<SessionId> {
    let sessions = store.list(sub, now, ALL).await.unwrap();
    sessions.iter().map(|session| session.id).collect()
}

/// A created session is active until its end, before any sweep, for its own user and id only.
pub async fn a_created_session_is_active_until_it_expires<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    store.login(1, "alice", now, now + 100).await;

    // The same answers whether the check may record a use or not.
    for touch in [u64::MAX, 60, 0] {
        let active = |sub: &'static str, n: u128, at: u64| store.is_active(sub, &id(n), at, touch);
        assert!(active("alice", 1, now).await.unwrap(), "{touch}");
        assert!(active("alice", 1, now + 99).await.unwrap(), "{touch}");
        assert!(!active("alice", 1, now + 100).await.unwrap(), "expired");
        assert!(!active("alice", 1, now + 10_000).await.unwrap(), "{touch}");
        assert!(!active("alice", 2, now).await.unwrap(), "unknown id");
        assert!(!active("bob", 1, now).await.unwrap(), "another user's id");
        assert!(!active("nobody", 1, now).await.unwrap(), "{touch}");
    }
}

/// `create` is safe to retry: the very same session again is `Live` with nothing ended; a
/// different session with an id the user has is a conflict and changes nothing.
pub async fn create_is_retry_safe_and_refuses_another_session_with_its_id<St: SessionStore>(
    store: St,
) {
    let store = Scoped::new(store);
    let now = unix_now();
    let first = refreshable(1, "alice", now, now + 100, 1);
    let live = Created::Live { ended: 0 };
    assert_eq!(store.create(&first, None).await.unwrap(), live);
    // A retry after a lost answer, with or without a limit: the same answer, nothing ended.
    assert_eq!(store.create(&first, None).await.unwrap(), live);
    assert_eq!(
        store
            .create(&first, limit(1, WhenFull::EndOldest))
            .await
            .unwrap(),
        live
    );
    assert_eq!(
        store
            .create(&first, limit(1, WhenFull::RefuseNew))
            .await
            .unwrap(),
        live
    );
    assert_eq!(
        store.list("alice", now, ALL).await.unwrap(),
        std::slice::from_ref(&first)
    );

    // Another session with the same id: later, or only another refresh token.
    let later = session(1, "alice", now + 1, now + 500);
    let other_token = refreshable(1, "alice", now, now + 100, 2);
    for again in [later, other_token] {
        assert!(
            matches!(store.create(&again, None).await, Err(StoreError::Conflict)),
            "{again:?}"
        );
        assert!(matches!(
            store.create(&again, limit(1, WhenFull::EndOldest)).await,
            Err(StoreError::Conflict)
        ));
    }
    // Never an overwrite: the first session is unchanged.
    assert_eq!(store.list("alice", now, ALL).await.unwrap(), [first]);
    assert!(!store.live("alice", 1, now + 100).await);
}

/// `create` drops the user's expired sessions: they no longer count, and their ids may be used again.
pub async fn create_drops_expired_sessions<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    store.login(1, "alice", now, now + 10).await;
    store.login(2, "alice", now, now + 100).await;

    // At now + 20 the first has expired: it is dropped, and its id may be used again.
    let reused = session(1, "alice", now + 20, now + 200);
    store.create(&reused, None).await.unwrap();
    store.login(3, "alice", now + 20, now + 200).await;
    assert!(store.live("alice", 1, now + 150).await);
    assert_eq!(store.list("alice", now + 20, ALL).await.unwrap().len(), 3);
    assert_eq!(
        store.revoke_all("alice").await.unwrap(),
        3,
        "only live sessions were left"
    );
}

/// `revoke` ends one session of its own user, and is idempotent.
pub async fn revoke_ends_one_session<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    store.login(1, "alice", now, now + 100).await;
    store.login(2, "alice", now, now + 100).await;
    store.login(3, "bob", now, now + 100).await;

    // A session is revoked by its own user only.
    assert!(!store.revoke("bob", &id(1)).await.unwrap());
    assert!(store.live("alice", 1, now).await);

    assert!(store.revoke("alice", &id(1)).await.unwrap());
    assert!(!store.live("alice", 1, now).await);
    assert!(store.live("alice", 2, now).await, "other sessions stay");
    assert!(store.live("bob", 3, now).await, "other users stay");

    // Idempotent.
    assert!(!store.revoke("alice", &id(1)).await.unwrap());
    assert!(!store.revoke("alice", &id(9)).await.unwrap());
    assert!(!store.revoke("nobody", &id(1)).await.unwrap());

    assert!(store.revoke("alice", &id(2)).await.unwrap());
    assert!(store.list("alice", now, ALL).await.unwrap().is_empty());
    // The user can log in again once they have no session left.
    store.login(4, "alice", now, now + 100).await;
    assert!(store.live("alice", 4, now).await);
}

/// `revoke_all` ends every session of the user and no other, and is idempotent.
pub async fn revoke_all_ends_every_session_of_the_user<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    for n in 1..=3 {
        store.login(n, "alice", now, now + 100).await;
    }
    store.login(4, "bob", now, now + 100).await;

    assert_eq!(store.revoke_all("alice").await.unwrap(), 3);
    for n in 1..=3 {
        assert!(!store.live("alice", n, now).await);
    }
    assert!(store.list("alice", now, ALL).await.unwrap().is_empty());
    assert!(store.live("bob", 4, now).await, "other users stay");

    // Idempotent.
    assert_eq!(store.revoke_all("alice").await.unwrap(), 0);
    assert_eq!(store.revoke_all("nobody").await.unwrap(), 0);

    store.login(5, "alice", now, now + 100).await;
    assert!(store.live("alice", 5, now).await);
}

/// `list` returns the live sessions only, first created first, with everything they were
/// created with.
pub async fn list_returns_live_sessions_in_creation_order_with_metadata<St: SessionStore>(
    store: St,
) {
    let store = Scoped::new(store);
    let now = unix_now();
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    // The longest user agent a login keeps, with characters beyond ASCII.
    let long: String = "Ünïcødé ".repeat(40).chars().take(200).collect();

    let mut laptop = session(3, "alice", now - 50, now + 100);
    laptop.last_used_at = secs(now - 5);
    laptop.user_agent = Some(firefox.to_owned());
    laptop.address = Some("203.0.113.7".parse::<IpAddr>().unwrap());
    let mut phone = session(1, "alice", now - 10, now + 300);
    phone.user_agent = Some(long);
    phone.address = Some("2001:db8::42".parse::<IpAddr>().unwrap());
    let bare = session(2, "alice", now - 30, now + 200);
    let mut expired = session(4, "alice", now - 60, now - 1);
    expired.user_agent = Some("curl/8.5.0".to_owned());

    // Created in no particular order.
    for session in [&phone, &laptop, &expired, &bare] {
        store.create(session, None).await.unwrap();
    }

    // In the order they were created, whatever their clocks said.
    let listed = store.list("alice", now, ALL).await.unwrap();
    assert_eq!(listed, [phone.clone(), laptop.clone(), bare.clone()]);
    // Later, only what is still live.
    assert_eq!(
        store.list("alice", now + 150, ALL).await.unwrap(),
        [phone.clone(), bare]
    );
    assert_eq!(store.list("alice", now + 250, ALL).await.unwrap(), [phone]);
    assert!(
        store
            .list("alice", now + 300, ALL)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list("nobody", now, ALL).await.unwrap().is_empty());
}

/// Users are kept apart whatever their names (characters a backend might escape or take for
/// a key's hash tag).
pub async fn users_are_kept_apart_whatever_their_ids<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    // User ids that could collide once escaped, or break a Redis hash tag.
    let subs = [
        "alice",
        "alice:",
        "{alice}",
        "a}l{ice",
        "{",
        "}",
        "}{",
        "%",
        "%7B",
        "%7b",
        "%25",
        "",
        ":s",
        "a}:s",
        "ümlaut",
        "with space",
    ];
    for (n, sub) in (0..).zip(subs) {
        store
            .create(&session(n, sub, now, now + 100), None)
            .await
            .unwrap();
    }
    for (n, sub) in (0..).zip(subs) {
        // Each user sees their own session and nobody else's; a check that may record a
        // use records it for its own user only.
        for (m, other) in (0..).zip(subs) {
            let active = store.is_active(other, &id(n), now, 0).await.unwrap();
            assert_eq!(active, n == m, "session of {sub:?} checked as {other:?}");
        }
        let listed = store.list(sub, now, ALL).await.unwrap();
        assert_eq!(listed, [session(n, sub, now, now + 100)], "{sub:?}");
    }
    for (revoked, sub) in (0..).zip(subs) {
        assert_eq!(store.revoke_all(sub).await.unwrap(), 1, "{sub:?}");
        for (n, other) in (0..).zip(subs) {
            let active = store.is_active(other, &id(n), now, u64::MAX).await.unwrap();
            assert_eq!(active, n > revoked, "{other:?} after revoking {sub:?}");
        }
    }
}

/// A `revoke_all` racing `create`s of the same user (concurrent tasks) never leaves a session
/// that a later `revoke_all` misses: every session created is counted by exactly one.
pub async fn logout_all_racing_logins_leaves_nothing_behind<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    const ROUNDS: u128 = 40;
    const LOGINS: u128 = 25;
    let now = unix_now();
    for round in 0..ROUNDS {
        let ids: Vec<u128> = (0..LOGINS).map(|n| round * 1_000 + n).collect();
        let created = Arc::new(AtomicU64::new(0));
        let logins = tokio::spawn({
            let (store, ids, created) = (store.clone(), ids.clone(), Arc::clone(&created));
            async move {
                for n in ids {
                    store.login(n, "alice", now, now + 600).await;
                    created.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let logouts = tokio::spawn({
            let store = store.clone();
            async move {
                let mut revoked = 0;
                for _ in 0..8 {
                    revoked += store.revoke_all("alice").await.unwrap();
                    tokio::task::yield_now().await;
                }
                revoked
            }
        });
        logins.await.unwrap();
        let revoked = logouts.await.unwrap() + store.revoke_all("alice").await.unwrap();

        // Every session created was counted by exactly one logout-all, and none survived.
        assert_eq!(revoked, created.load(Ordering::Relaxed), "round {round}");
        for n in ids {
            assert!(!store.live("alice", n, now).await, "round {round}");
        }
        assert!(
            store.list("alice", now, ALL).await.unwrap().is_empty(),
            "round {round}"
        );
    }
}

/// At the limit, [`WhenFull::RefuseNew`] refuses the login, stores nothing and ends nothing;
/// the limit is per user and expired sessions do not count.
pub async fn refuse_new_at_the_limit_stores_nothing<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    let two = limit(2, WhenFull::RefuseNew);
    let live = Created::Live { ended: 0 };
    assert_eq!(
        store
            .create(&session(1, "alice", now - 10, now + 1000), two)
            .await
            .unwrap(),
        live
    );
    assert_eq!(
        store
            .create(&session(2, "alice", now - 5, now + 1000), two)
            .await
            .unwrap(),
        live
    );

    let refused = store
        .create(&session(3, "alice", now, now + 1000), two)
        .await
        .unwrap();
    assert_eq!(refused, Created::LimitReached);
    assert!(!store.live("alice", 3, now).await);
    assert_eq!(
        listed_ids(&store, "alice", now).await,
        [id(1), id(2)],
        "nothing ended"
    );
    // An id the user has is a conflict, at the limit as below it.
    assert!(matches!(
        store
            .create(&session(1, "alice", now, now + 1000), two)
            .await,
        Err(StoreError::Conflict)
    ));

    // The limit is per user, and a login without one is not limited.
    assert_eq!(
        store
            .create(&session(4, "bob", now, now + 1000), two)
            .await
            .unwrap(),
        live
    );
    assert_eq!(
        store
            .create(&session(5, "alice", now, now + 1000), None)
            .await
            .unwrap(),
        live
    );
    assert_eq!(
        store
            .create(&session(6, "alice", now, now + 1000), two)
            .await
            .unwrap(),
        Created::LimitReached,
        "over the limit already"
    );

    // Ending sessions makes room.
    assert!(store.revoke("alice", &id(1)).await.unwrap());
    assert!(store.revoke("alice", &id(2)).await.unwrap());
    assert_eq!(
        store
            .create(&session(6, "alice", now, now + 1000), two)
            .await
            .unwrap(),
        live
    );
    assert_eq!(listed_ids(&store, "alice", now).await, [id(5), id(6)]);

    // Expired sessions do not count: at now + 200, carol's first session has ended.
    store.login(7, "carol", now, now + 100).await;
    store.login(8, "carol", now, now + 1000).await;
    let later = session(9, "carol", now + 200, now + 1000);
    assert_eq!(store.create(&later, two).await.unwrap(), live);
    assert_eq!(listed_ids(&store, "carol", now + 200).await, [id(8), id(9)]);

    // A limit of 0 is taken as 1.
    let zero = limit(0, WhenFull::RefuseNew);
    assert_eq!(
        store
            .create(&session(10, "dave", now, now + 1000), zero)
            .await
            .unwrap(),
        live
    );
    assert_eq!(
        store
            .create(&session(11, "dave", now, now + 1000), zero)
            .await
            .unwrap(),
        Created::LimitReached
    );
}

/// At the limit, [`WhenFull::EndOldest`] ends the first created sessions (whatever their
/// `created_at` and ids say), as many as it takes.
pub async fn end_oldest_at_the_limit_ends_the_first_created<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    // Created in this order, with clocks and ids that say otherwise.
    let high = 1 << 127;
    for (n, created_at) in [
        (3, now - 10),
        (high, now - 30),
        (5, now - 40),
        (1, now - 20),
    ] {
        store.login(n, "alice", created_at, now + 1000).await;
    }
    store.login(20, "bob", now - 100, now + 1000).await;

    let created = store
        .create(
            &session(9, "alice", now, now + 1000),
            limit(4, WhenFull::EndOldest),
        )
        .await
        .unwrap();
    assert_eq!(created, Created::Live { ended: 1 });
    assert!(!store.live("alice", 3, now).await);
    assert_eq!(
        listed_ids(&store, "alice", now).await,
        [id(high), id(5), id(1), id(9)]
    );

    // A lower limit ends as many as it takes to make room.
    let created = store
        .create(
            &session(8, "alice", now - 50, now + 1000),
            limit(3, WhenFull::EndOldest),
        )
        .await
        .unwrap();
    assert_eq!(created, Created::Live { ended: 2 });
    assert_eq!(
        listed_ids(&store, "alice", now).await,
        [id(1), id(9), id(8)]
    );

    // An id the user has for another session is a conflict, and nothing ends.
    let again = store
        .create(
            &session(8, "alice", now, now + 1000),
            limit(1, WhenFull::EndOldest),
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    assert_eq!(
        listed_ids(&store, "alice", now).await,
        [id(1), id(9), id(8)]
    );

    // A limit of 0 is taken as 1: the new session stays alone.
    let created = store
        .create(
            &session(7, "alice", now + 1, now + 1000),
            limit(0, WhenFull::EndOldest),
        )
        .await
        .unwrap();
    assert_eq!(created, Created::Live { ended: 3 });
    assert_eq!(listed_ids(&store, "alice", now).await, [id(7)]);
    assert_eq!(
        listed_ids(&store, "bob", now).await,
        [id(20)],
        "other users stay"
    );
}

/// `is_active` records a use at most once per touch interval, never back in time, and never
/// for an expired session or another user.
pub async fn a_check_records_use_at_most_once_per_interval<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    store.login(1, "alice", now, now + 1000).await;
    store.login(2, "alice", now, now + 1000).await;
    let last_used = async |n: u128| {
        let sessions = store.list("alice", now, ALL).await.unwrap();
        let session = sessions.iter().find(|session| session.id == id(n)).unwrap();
        crate::clock::unix_seconds(session.last_used_at)
    };
    let check = async |sub: &str, at: u64, interval: u64| {
        store.is_active(sub, &id(1), at, interval).await.unwrap()
    };

    assert!(check("alice", now + 10, 60).await);
    assert!(check("alice", now + 59, 60).await);
    assert_eq!(last_used(1).await, now, "not within the interval");
    assert!(check("alice", now + 60, 60).await);
    assert_eq!(last_used(1).await, now + 60);
    assert!(check("alice", now + 100, 60).await);
    assert!(check("alice", now + 119, 60).await);
    assert_eq!(last_used(1).await, now + 60);
    assert!(check("alice", now + 120, 60).await);
    assert_eq!(last_used(1).await, now + 120);

    assert!(check("alice", now + 500, u64::MAX).await);
    assert_eq!(last_used(1).await, now + 120, "u64::MAX: never");
    assert!(check("alice", now + 130, 0).await);
    assert_eq!(last_used(1).await, now + 130, "0: every check");
    assert!(check("alice", now + 50, 0).await);
    assert_eq!(last_used(1).await, now + 130, "never back in time");

    // Neither a check of an expired session nor one as another user records anything.
    assert!(!check("alice", now + 1000, 0).await);
    assert!(!check("bob", now + 900, 0).await);
    assert_eq!(last_used(1).await, now + 130);
    assert_eq!(last_used(2).await, now, "other sessions stay");
}

/// `rotate` with the current token moves to the next generation, digest, end and last use.
pub async fn rotate_advances_the_refresh_state<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    let created = refreshable(1, "alice", now, now + 600, 1);
    store.create(&created, None).await.unwrap();
    let mut other = refreshable(2, "alice", now, now + 600, 9);
    other.refresh.generation = 5;
    store.create(&other, None).await.unwrap();

    let answer = store
        .rotate("alice", &id(1), &rotation(0, 1, 2, now + 10, now + 900, 0))
        .await
        .unwrap();
    assert_eq!(answer, Rotated::Rotated);
    let mut expected = created.clone();
    expected.refresh = RefreshState {
        generation: 1,
        digest: [2; 32],
        rotated_at: now + 10,
    };
    expected.expires_at = secs(now + 900);
    expected.last_used_at = secs(now + 10);
    assert_eq!(
        store.list("alice", now, ALL).await.unwrap(),
        [expected.clone(), other.clone()]
    );
    assert!(store.live("alice", 1, now + 899).await, "extended");

    // The new token rotates in turn; the end may also come closer (the absolute lifetime).
    let answer = store
        .rotate("alice", &id(1), &rotation(1, 2, 3, now + 20, now + 700, 0))
        .await
        .unwrap();
    assert_eq!(answer, Rotated::Rotated);
    expected.refresh = RefreshState {
        generation: 2,
        digest: [3; 32],
        rotated_at: now + 20,
    };
    expected.expires_at = secs(now + 700);
    expected.last_used_at = secs(now + 20);
    assert_eq!(
        store.list("alice", now, ALL).await.unwrap(),
        [expected, other.clone()]
    );
    assert!(!store.live("alice", 1, now + 700).await);

    // A session created at a later generation rotates from it.
    let answer = store
        .rotate("alice", &id(2), &rotation(5, 9, 10, now + 30, now + 800, 0))
        .await
        .unwrap();
    assert_eq!(answer, Rotated::Rotated);
    let listed = store.list("alice", now, ALL).await.unwrap();
    assert_eq!(listed[1].refresh.generation, 6);
    assert_eq!(listed[1].refresh.digest, [10; 32]);
}

/// A token retired last, presented within the grace period, is `Forgiven` and changes
/// nothing; after it, or an older one, is reuse.
pub async fn a_token_retired_within_the_grace_period_is_forgiven<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    for n in 1..=3 {
        store
            .create(&refreshable(n, "alice", now, now + 600, 1), None)
            .await
            .unwrap();
    }
    let rotate =
        async |n: u128, rotation: Rotation| store.rotate("alice", &id(n), &rotation).await.unwrap();

    assert_eq!(
        rotate(1, rotation(0, 1, 2, now + 10, now + 900, 30)).await,
        Rotated::Rotated
    );
    // The other tab presents the retired token within the grace period: refused, no harm.
    assert_eq!(
        rotate(1, rotation(0, 1, 3, now + 20, now + 900, 30)).await,
        Rotated::Forgiven
    );
    assert_eq!(
        rotate(1, rotation(0, 1, 3, now + 39, now + 900, 30)).await,
        Rotated::Forgiven
    );
    let session = &store.list("alice", now, ALL).await.unwrap()[0];
    let unchanged = RefreshState {
        generation: 1,
        digest: [2; 32],
        rotated_at: now + 10,
    };
    assert_eq!(
        (session.refresh, session.expires_at, session.last_used_at),
        (unchanged, secs(now + 900), secs(now + 10))
    );
    // Once the grace period is over, it is reuse.
    assert_eq!(
        rotate(1, rotation(0, 1, 3, now + 40, now + 900, 30)).await,
        Rotated::Reused
    );
    assert!(!store.live("alice", 1, now + 41).await);

    // Only the token retired last is forgiven, not an older one.
    assert_eq!(
        rotate(2, rotation(0, 1, 2, now + 10, now + 900, 30)).await,
        Rotated::Rotated
    );
    assert_eq!(
        rotate(2, rotation(1, 2, 3, now + 12, now + 900, 30)).await,
        Rotated::Rotated
    );
    assert_eq!(
        rotate(2, rotation(0, 1, 4, now + 15, now + 900, 30)).await,
        Rotated::Reused
    );

    // Without a grace period, at once.
    assert_eq!(
        rotate(3, rotation(0, 1, 2, now + 10, now + 900, 30)).await,
        Rotated::Rotated
    );
    assert_eq!(
        rotate(3, rotation(0, 1, 4, now + 10, now + 900, 0)).await,
        Rotated::Reused
    );
    assert!(store.list("alice", now, ALL).await.unwrap().is_empty());
}

/// A retired or foreign token ends the session (`Reused`), and that session only.
pub async fn a_retired_or_foreign_token_ends_the_session<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    for n in 1..=3 {
        store
            .create(&refreshable(n, "alice", now, now + 600, 1), None)
            .await
            .unwrap();
    }
    store
        .create(&refreshable(4, "bob", now, now + 600, 1), None)
        .await
        .unwrap();
    let rotate =
        async |n: u128, rotation: Rotation| store.rotate("alice", &id(n), &rotation).await.unwrap();

    assert_eq!(
        rotate(1, rotation(0, 1, 2, now + 10, now + 900, 0)).await,
        Rotated::Rotated
    );
    // The retired token again: the whole session ends, its newest token with it.
    assert_eq!(
        rotate(1, rotation(0, 1, 5, now + 11, now + 900, 0)).await,
        Rotated::Reused
    );
    assert!(!store.live("alice", 1, now + 11).await);
    assert_eq!(
        rotate(1, rotation(1, 2, 3, now + 12, now + 900, 0)).await,
        Rotated::Unknown
    );
    assert_eq!(
        listed_ids(&store, "alice", now).await,
        [id(2), id(3)],
        "other sessions stay"
    );

    // The current generation with another digest, and a generation never issued.
    assert_eq!(
        rotate(2, rotation(0, 7, 8, now + 10, now + 900, 60)).await,
        Rotated::Reused
    );
    assert_eq!(
        rotate(3, rotation(4, 1, 8, now + 10, now + 900, 60)).await,
        Rotated::Reused
    );
    assert!(store.list("alice", now, ALL).await.unwrap().is_empty());
    assert!(store.live("bob", 4, now).await, "other users stay");
}

/// Rotating a missing, expired or other user's session is `Unknown` and changes nothing.
pub async fn rotating_a_missing_or_expired_session_is_unknown<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    let created = refreshable(1, "alice", now, now + 100, 1);
    store.create(&created, None).await.unwrap();
    let rotate = async |sub: &str, n: u128, rotation: Rotation| {
        store.rotate(sub, &id(n), &rotation).await.unwrap()
    };

    assert_eq!(
        rotate("alice", 9, rotation(0, 1, 2, now, now + 900, 0)).await,
        Rotated::Unknown
    );
    assert_eq!(
        rotate("nobody", 1, rotation(0, 1, 2, now, now + 900, 0)).await,
        Rotated::Unknown
    );
    // Another user's session is neither rotated nor ended, whatever is presented.
    assert_eq!(
        rotate("bob", 1, rotation(0, 1, 2, now, now + 900, 0)).await,
        Rotated::Unknown
    );
    assert_eq!(
        rotate("bob", 1, rotation(0, 7, 2, now, now + 900, 0)).await,
        Rotated::Unknown
    );
    // Expired: not revived, and not counted as reuse.
    assert_eq!(
        rotate("alice", 1, rotation(0, 1, 2, now + 100, now + 900, 0)).await,
        Rotated::Unknown
    );
    assert_eq!(
        rotate("alice", 1, rotation(0, 7, 2, now + 150, now + 900, 0)).await,
        Rotated::Unknown
    );
    assert_eq!(store.list("alice", now, ALL).await.unwrap(), [created]);

    assert!(store.revoke("alice", &id(1)).await.unwrap());
    assert_eq!(
        rotate("alice", 1, rotation(0, 1, 2, now, now + 900, 0)).await,
        Rotated::Unknown
    );
}

/// Of concurrent rotations presenting one token, exactly one rotates.
pub async fn concurrent_rotations_with_one_token_rotate_once<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    const TASKS: u8 = 32;
    let now = unix_now();
    for (n, grace) in [(1, 0), (2, 60)] {
        store
            .create(&refreshable(n, "alice", now, now + 600, 1), None)
            .await
            .unwrap();
        let start = Arc::new(tokio::sync::Barrier::new(usize::from(TASKS)));
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let (store, start) = (store.clone(), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    let rotation = rotation(0, 1, 100 + task, now + 10, now + 900, grace);
                    store.rotate("alice", &id(n), &rotation).await.unwrap()
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }

        let winners: Vec<u8> = (0..TASKS)
            .filter(|&task| answers[usize::from(task)] == Rotated::Rotated)
            .collect();
        assert_eq!(winners.len(), 1, "grace {grace}: {answers:?}");
        let losers = answers.iter().filter(|&&answer| answer != Rotated::Rotated);
        if grace == 0 {
            // The first loser ends the session; any later one finds it gone.
            assert!(
                losers
                    .clone()
                    .all(|answer| matches!(answer, Rotated::Reused | Rotated::Unknown)),
                "{answers:?}"
            );
            assert!(answers.contains(&Rotated::Reused), "{answers:?}");
            assert!(!store.live("alice", n, now + 10).await);
        } else {
            assert!(
                losers.clone().all(|&answer| answer == Rotated::Forgiven),
                "{answers:?}"
            );
            // One live branch: the winner's token.
            let listed = store.list("alice", now, ALL).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].refresh.generation, 1);
            assert_eq!(listed[0].refresh.digest, [100 + winners[0]; 32]);
        }
    }
}

/// `revoke_authenticated_before` ends the sessions authenticated strictly before the point,
/// of that user only, and is idempotent.
pub async fn revoke_authenticated_before_ends_the_older_sessions<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    let keep = secs(now + 600);
    // Authenticated at 100, 50 and 10 seconds ago, and created in another order.
    for (n, authenticated_at) in [(2, now - 50), (1, now - 100), (3, now - 10)] {
        let mut login = session(n, "alice", now - 5, now + 1000);
        login.authenticated_at = secs(authenticated_at);
        store.create(&login, None).await.unwrap();
    }
    store.login(4, "bob", now - 100, now + 1000).await;
    let revoke = async |sub: &str, before: u64| {
        store
            .revoke_authenticated_before(sub, secs(before), keep)
            .await
            .unwrap()
    };

    assert_eq!(revoke("alice", now - 100).await, 0, "strictly before");
    assert_eq!(revoke("alice", now - 50).await, 1);
    assert!(!store.live("alice", 1, now).await);
    assert_eq!(listed_ids(&store, "alice", now).await, [id(2), id(3)]);
    // To the microsecond.
    assert_eq!(
        store
            .revoke_authenticated_before("alice", micros((now - 10) * 1_000_000), keep)
            .await
            .unwrap(),
        1
    );
    assert_eq!(listed_ids(&store, "alice", now).await, [id(3)]);
    assert_eq!(
        store
            .revoke_authenticated_before("alice", micros((now - 10) * 1_000_000 + 1), keep)
            .await
            .unwrap(),
        1
    );
    assert!(store.list("alice", now, ALL).await.unwrap().is_empty());

    // Idempotent, and per user.
    assert_eq!(revoke("alice", now).await, 0);
    assert_eq!(revoke("nobody", now).await, 0);
    assert!(store.live("bob", 4, now).await);

    // Logins authenticated at or after the point stay.
    store.login(5, "alice", now, now + 1000).await;
    assert_eq!(revoke("alice", now).await, 0);
    assert!(store.live("alice", 5, now).await);
}

/// `list` gives back the refresh state exactly (every digest byte, generations beyond 2^53).
pub async fn list_round_trips_the_refresh_state<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    let mut first = session(1, "alice", now - 20, now + 600);
    // Every byte value, zeros included.
    first.refresh = RefreshState {
        generation: 7,
        digest: std::array::from_fn(|i| (i * 37) as u8),
        rotated_at: now - 5,
    };
    first.last_used_at = secs(now - 2);
    first.user_agent = Some("curl/8.5.0".to_owned());
    // Generations beyond 2^53, where a double could not tell them apart.
    let mut second = session(2, "alice", now - 10, now + 600);
    second.refresh = RefreshState {
        generation: u64::MAX - 1,
        digest: [0xFF; 32],
        rotated_at: now - 10,
    };
    for session in [&first, &second] {
        store.create(session, None).await.unwrap();
    }
    assert_eq!(
        store.list("alice", now, ALL).await.unwrap(),
        [first.clone(), second.clone()]
    );

    let next = Rotation {
        generation: u64::MAX - 1,
        digest: [0xFF; 32],
        next_digest: [0; 32],
        now,
        expires_at: now + 700,
        grace: 60,
    };
    assert_eq!(
        store.rotate("alice", &id(2), &next).await.unwrap(),
        Rotated::Rotated
    );
    let listed = store.list("alice", now, ALL).await.unwrap();
    assert_eq!(listed[0], first, "other sessions stay");
    assert_eq!(
        listed[1].refresh,
        RefreshState {
            generation: u64::MAX,
            digest: [0; 32],
            rotated_at: now,
        }
    );
    // The same rotation again is a retry: the same answer.
    assert_eq!(
        store.rotate("alice", &id(2), &next).await.unwrap(),
        Rotated::Rotated
    );
    // The token just retired, within the grace period; then the one before it.
    let other_tab = Rotation {
        next_digest: [1; 32],
        ..next
    };
    assert_eq!(
        store.rotate("alice", &id(2), &other_tab).await.unwrap(),
        Rotated::Forgiven
    );
    let older = Rotation {
        generation: u64::MAX - 2,
        ..next
    };
    assert_eq!(
        store.rotate("alice", &id(2), &older).await.unwrap(),
        Rotated::Reused
    );
}

/// `list` returns at most `max` sessions: the newest live ones, first created first.
pub async fn list_returns_at_most_the_newest_max<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    // Created in the order 1..=5; 4 ends early.
    for (n, created_at, expires_at) in [
        (1, now - 10, now + 1000),
        (2, now - 40, now + 1000),
        (3, now - 20, now + 1000),
        (4, now - 30, now + 100),
        (5, now - 50, now + 1000),
    ] {
        store.login(n, "alice", created_at, expires_at).await;
    }
    let listed = async |at: u64, max: usize| -> Vec<SessionId> {
        let sessions = store.list("alice", at, max).await.unwrap();
        sessions.iter().map(|session| session.id).collect()
    };
    assert_eq!(listed(now, 3).await, [id(3), id(4), id(5)]);
    assert_eq!(listed(now, 1).await, [id(5)]);
    assert!(listed(now, 0).await.is_empty());
    assert_eq!(listed(now, 5).await, [id(1), id(2), id(3), id(4), id(5)]);
    assert_eq!(listed(now, 6).await, [id(1), id(2), id(3), id(4), id(5)]);
    // Expired sessions neither show nor take a place.
    assert_eq!(listed(now + 200, 3).await, [id(2), id(3), id(5)]);
    assert_eq!(listed(now + 200, ALL).await, [id(1), id(2), id(3), id(5)]);
}

/// With a limit of `max` ending the oldest, `max + 2` logins within one second (at distinct
/// microseconds, or all at the same one) leave exactly the `max` last created, whatever
/// their ids; many times over.
pub async fn the_limit_keeps_the_newest_of_logins_within_one_second<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    for round in 0..60_u32 {
        let user = format!("user{round}");
        let max = 1 + round % 6;
        let logins = u128::from(max) + 2;
        // Ids in an order unrelated to the order of creation.
        let ids: Vec<u128> = (0..logins)
            .map(|k| u128::from(round) * 1_000 + (k * 37 + u128::from(round) * 11) % 997)
            .collect();
        for (k, &n) in (0_u64..).zip(&ids) {
            // Half the rounds at distinct microseconds of one second, half at the very same.
            let offset = if round % 2 == 0 { 1 + k } else { 0 };
            let login = session_at(n, &user, now * 1_000_000 + 500_000 + offset, now + 600);
            let created = store
                .create(&login, limit(max, WhenFull::EndOldest))
                .await
                .unwrap();
            let ended = u32::from(k >= u64::from(max));
            assert_eq!(created, Created::Live { ended }, "round {round}, login {k}");
        }
        let newest: Vec<SessionId> = ids[ids.len() - max as usize..]
            .iter()
            .map(|&n| id(n))
            .collect();
        assert_eq!(
            listed_ids(&store, &user, now).await,
            newest,
            "round {round}"
        );
        for &n in &ids[..2] {
            assert!(
                !store.is_active(&user, &id(n), now, u64::MAX).await.unwrap(),
                "round {round}: the oldest ended"
            );
        }
    }
}

/// With a limit, counting and adding are one step: concurrent logins never leave more than
/// the limit, and exactly as many end (or are refused) as it takes.
pub async fn the_limit_is_counted_atomically_under_concurrent_logins<St: SessionStore>(store: St) {
    const LOGINS: u128 = 8;
    const MAX: u32 = 3;
    let store = Scoped::new(store);
    let now = unix_now();
    for round in 0..20_u128 {
        for (variant, when_full) in [(0, WhenFull::EndOldest), (1, WhenFull::RefuseNew)] {
            let user = format!("user{round}-{when_full:?}");
            let start = Arc::new(tokio::sync::Barrier::new(LOGINS as usize));
            let tasks: Vec<_> = (0..LOGINS)
                .map(|k| {
                    let (store, start, user) = (store.clone(), Arc::clone(&start), user.clone());
                    tokio::spawn(async move {
                        let login = session(round * 100 + variant * 50 + k, &user, now, now + 600);
                        start.wait().await;
                        store.create(&login, limit(MAX, when_full)).await.unwrap()
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.unwrap());
            }
            let listed = store.list(&user, now, ALL).await.unwrap();
            assert_eq!(listed.len(), MAX as usize, "{when_full:?}: {answers:?}");
            match when_full {
                WhenFull::EndOldest => {
                    let ended: u32 = answers
                        .iter()
                        .map(|answer| match answer {
                            Created::Live { ended } => *ended,
                            other => panic!("{other:?} in {answers:?}"),
                        })
                        .sum();
                    assert_eq!(ended, LOGINS as u32 - MAX, "{answers:?}");
                }
                _ => {
                    let live = answers
                        .iter()
                        .filter(|&&answer| answer == Created::Live { ended: 0 })
                        .count();
                    let refused = answers
                        .iter()
                        .filter(|&&answer| answer == Created::LimitReached)
                        .count();
                    assert_eq!(
                        (live, refused),
                        (MAX as usize, (LOGINS as u32 - MAX) as usize),
                        "{answers:?}"
                    );
                }
            }
        }
    }
}

/// Under the [default limit](crate::DEFAULT_SESSION_LIMIT), logins within one second beyond
/// it leave the newest hundred, and `list` with that limit reads no more.
pub async fn the_default_limit_keeps_the_newest_hundred<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    let default = crate::DEFAULT_SESSION_LIMIT;
    let max = u128::from(default.max);
    for n in 0..max + 2 {
        let created_at = now * 1_000_000 + 100 + n as u64;
        let created = store
            .create(
                &session_at(n, "alice", created_at, now + 600),
                Some(default),
            )
            .await
            .unwrap();
        assert_eq!(
            created,
            Created::Live {
                ended: u32::from(n >= max)
            },
            "{n}"
        );
    }
    let expected: Vec<SessionId> = (2..max + 2).map(id).collect();
    assert_eq!(listed_ids(&store, "alice", now).await, expected);
    let listed = store.list("alice", now, max as usize).await.unwrap();
    assert_eq!(listed.len(), max as usize);
    assert_eq!(listed[0].id, id(2));
}

/// The same rotation made twice (a retry after a lost answer) is `Rotated` both times and
/// the second changes nothing; a token retired since then still ends the session.
pub async fn rotate_is_retry_safe<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    for n in 1..=2 {
        store
            .create(&refreshable(n, "alice", now, now + 600, 1), None)
            .await
            .unwrap();
    }
    let first = rotation(0, 1, 2, now + 10, now + 900, 0);
    assert_eq!(
        store.rotate("alice", &id(1), &first).await.unwrap(),
        Rotated::Rotated
    );
    let after = store.list("alice", now, ALL).await.unwrap();
    assert_eq!(
        store.rotate("alice", &id(1), &first).await.unwrap(),
        Rotated::Rotated,
        "a retry"
    );
    // Retried later still: the same answer, and nothing changes.
    let late = Rotation {
        now: now + 20,
        expires_at: now + 950,
        ..first
    };
    assert_eq!(
        store.rotate("alice", &id(1), &late).await.unwrap(),
        Rotated::Rotated,
        "a late retry"
    );
    assert_eq!(store.list("alice", now, ALL).await.unwrap(), after);
    assert_eq!(
        after[0].refresh,
        RefreshState {
            generation: 1,
            digest: [2; 32],
            rotated_at: now + 10,
        }
    );

    // The token retired by it, with another replacement: reuse, and the session ends.
    assert_eq!(
        store
            .rotate("alice", &id(1), &rotation(0, 1, 3, now + 30, now + 900, 0))
            .await
            .unwrap(),
        Rotated::Reused
    );
    assert_eq!(
        store.rotate("alice", &id(1), &first).await.unwrap(),
        Rotated::Unknown,
        "gone"
    );
    assert!(!store.live("alice", 1, now + 30).await);

    // Once the next rotation took effect, the first is no retry but a retired token.
    let first = rotation(0, 1, 2, now + 10, now + 900, 0);
    let second = rotation(1, 2, 3, now + 20, now + 900, 0);
    for rotation in [first, second, second] {
        assert_eq!(
            store.rotate("alice", &id(2), &rotation).await.unwrap(),
            Rotated::Rotated
        );
    }
    assert_eq!(
        store.rotate("alice", &id(2), &first).await.unwrap(),
        Rotated::Reused
    );
    assert!(store.list("alice", now, ALL).await.unwrap().is_empty());
}

/// The "not before" mark set by `revoke_authenticated_before` is a barrier: a session
/// authenticated before it (even by a microsecond) is `Barred` and nothing is stored or
/// ended, one authenticated at or after it is created; the mark never goes down and is per
/// user, and a user without sessions gets one too.
pub async fn the_not_before_mark_is_a_barrier<St: SessionStore>(store: St) {
    let store = Scoped::new(store);
    let now = unix_now();
    let keep = secs(now + 600);
    let mark = now * 1_000_000 + 500_000;
    // Authenticated at `authenticated_at`, stored 10 µs after the mark (the password check
    // ran before the revoke, the write lands after it).
    let login = |n: u128, sub: &str, authenticated_at: u64| {
        let mut login = session_at(n, sub, mark + 10, now + 600);
        login.authenticated_at = micros(authenticated_at);
        login
    };

    store
        .create(&login(1, "alice", mark - 1), None)
        .await
        .unwrap();
    assert_eq!(
        store
            .revoke_authenticated_before("alice", micros(mark), keep)
            .await
            .unwrap(),
        1
    );

    for (n, authenticated_at) in [(2, mark - 1), (3, mark - 1_000_000), (4, now - 100)] {
        let created = store
            .create(&login(n, "alice", authenticated_at), None)
            .await
            .unwrap();
        assert_eq!(
            created,
            Created::Barred,
            "authenticated at {authenticated_at}"
        );
    }
    assert!(store.list("alice", now, ALL).await.unwrap().is_empty());
    assert!(!store.live("alice", 2, now).await);

    let live = Created::Live { ended: 0 };
    for (n, authenticated_at) in [(5, mark), (6, mark + 1)] {
        let created = store
            .create(&login(n, "alice", authenticated_at), None)
            .await
            .unwrap();
        assert_eq!(created, live, "authenticated at {authenticated_at}");
    }
    // A barred login ends nothing, even at the limit.
    for when_full in [WhenFull::EndOldest, WhenFull::RefuseNew] {
        assert_eq!(
            store
                .create(&login(7, "alice", mark - 1), limit(1, when_full))
                .await
                .unwrap(),
            Created::Barred
        );
    }
    assert_eq!(listed_ids(&store, "alice", now).await, [id(5), id(6)]);

    // The mark never goes down.
    assert_eq!(
        store
            .revoke_authenticated_before("alice", micros(mark - 1_000_000), keep)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .create(&login(8, "alice", mark - 1), None)
            .await
            .unwrap(),
        Created::Barred
    );
    // It goes up.
    assert_eq!(
        store
            .revoke_authenticated_before("alice", micros(mark + 2), keep)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .create(&login(9, "alice", mark + 1), None)
            .await
            .unwrap(),
        Created::Barred
    );
    assert_eq!(
        store
            .create(&login(10, "alice", mark + 2), None)
            .await
            .unwrap(),
        live
    );

    // Per user; and a user with no session gets a mark too.
    assert_eq!(
        store
            .create(&login(11, "bob", mark - 1), None)
            .await
            .unwrap(),
        live
    );
    assert_eq!(
        store
            .revoke_authenticated_before("carol", micros(mark), keep)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .create(&login(12, "carol", mark - 1), None)
            .await
            .unwrap(),
        Created::Barred
    );
}

/// A `revoke_authenticated_before` racing logins authenticated before its point (concurrent
/// tasks) leaves none of them: each is either ended by it or barred.
pub async fn a_revoke_racing_logins_leaves_no_earlier_session<St: SessionStore>(store: St) {
    const ROUNDS: u128 = 20;
    const LOGINS: u128 = 20;
    let store = Scoped::new(store);
    let now = unix_now();
    let keep = secs(now + 600);
    for round in 0..ROUNDS {
        let user = format!("user{round}");
        let mark = now * 1_000_000 + 1_000 * round as u64 + 500;
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let logins = tokio::spawn({
            let (store, start, user) = (store.clone(), Arc::clone(&start), user.clone());
            async move {
                start.wait().await;
                let mut live = 0;
                for k in 0..LOGINS {
                    let mut login = session_at(round * 1_000 + k, &user, mark, now + 600);
                    login.authenticated_at = micros(mark - 1);
                    match store.create(&login, None).await.unwrap() {
                        Created::Live { ended: 0 } => live += 1,
                        Created::Barred => {}
                        other => panic!("{other:?}"),
                    }
                    tokio::task::yield_now().await;
                }
                live
            }
        });
        let revoke = tokio::spawn({
            let (store, start, user) = (store.clone(), Arc::clone(&start), user.clone());
            async move {
                start.wait().await;
                tokio::task::yield_now().await;
                store
                    .revoke_authenticated_before(&user, micros(mark), keep)
                    .await
                    .unwrap()
            }
        });
        let live = logins.await.unwrap();
        let ended = revoke.await.unwrap();
        assert_eq!(ended, live, "round {round}");
        assert!(
            store.list(&user, now, ALL).await.unwrap().is_empty(),
            "round {round}"
        );
    }
}

/// The mark bars logins until the `keep_until` it was given, to the microsecond (not to the
/// second before it).
pub async fn the_not_before_mark_is_kept_until_its_end_to_the_microsecond<St: SessionStore>(
    store: St,
) {
    let store = Scoped::new(store);
    let now = unix_now();
    let mark = now * 1_000_000;
    // Kept until half a second into the second after next.
    let keep_until = (now + 2) * 1_000_000 + 500_000;
    assert_eq!(
        store
            .revoke_authenticated_before("alice", micros(mark), micros(keep_until))
            .await
            .unwrap(),
        0
    );
    for (n, created_at) in [
        mark + 1,
        (now + 2) * 1_000_000,
        (now + 2) * 1_000_000 + 1,
        keep_until - 250_000,
        keep_until - 1,
    ]
    .into_iter()
    .enumerate()
    {
        let mut login = session_at(n as u128, "alice", created_at, now + 600);
        login.authenticated_at = micros(mark - 1);
        let answer = store.create(&login, None).await.unwrap();
        assert_eq!(answer, Created::Barred, "created at {created_at}");
    }
    assert!(store.list("alice", now, ALL).await.unwrap().is_empty());
}
