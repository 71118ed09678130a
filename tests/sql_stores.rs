//! The SQL stores on a real database: the PostgreSQL at `DATABASE_URL` (a schema per test)
//! and SQLite files, beyond the conformance suite: atomic counting under concurrency,
//! touches, microsecond order, sweeping in batches, restarts, the file's bytes, and the
//! documented foreign key.

#![cfg(any(feature = "postgres", feature = "sqlite"))]

mod sql_support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tower_jwt_auth::SessionId;
use tower_jwt_auth::clock::{from_unix_micros, from_unix_seconds};
use tower_jwt_auth::store::{
    Created, Rotated, Rotation, Session, SessionLimit, SessionStore, StoreError, WhenFull,
};

use sql_support::unix_now;

fn id(n: u128) -> SessionId {
    SessionId::from_bytes(n.to_be_bytes())
}

fn at(unix_seconds: u64) -> SystemTime {
    from_unix_seconds(unix_seconds)
}

fn session(n: u128, sub: &str, created_at: u64, expires_at: u64) -> Session {
    Session::new(id(n), sub, at(created_at), at(expires_at))
}

fn limit(max: u32, when_full: WhenFull) -> Option<SessionLimit> {
    Some(SessionLimit { max, when_full })
}

async fn ids<St: SessionStore>(store: &St, sub: &str, now: u64) -> Vec<SessionId> {
    let sessions = store.list(sub, now, usize::MAX).await.unwrap();
    sessions.iter().map(|session| session.id).collect()
}

macro_rules! on_each_store {
    ($($test:ident),* $(,)?) => {
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let schema = crate::sql_support::PgSchema::new(stringify!($test)).await;
                    super::$test(schema.store().await).await;
                }
            )*
        }

        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let dir = crate::sql_support::TempDir::new(stringify!($test));
                    let store = tower_jwt_auth::store::SqliteStore::open(
                        dir.path().join("sessions.db"),
                    )
                    .await
                    .unwrap();
                    store.migrate().await.unwrap();
                    super::$test(store).await;
                }
            )*
        }
    };
}

on_each_store!(
    a_session_lives_until_it_expires_or_ends,
    create_is_retry_safe_and_never_overwrites,
    use_is_recorded_at_most_once_per_interval,
    the_limit_is_counted_atomically,
    end_oldest_under_concurrency_keeps_exactly_the_limit,
    creation_order_is_the_order_of_creation,
    authentication_order_is_kept_to_the_microsecond,
    the_not_before_mark_bars_late_logins,
    rotations_with_one_token_rotate_once,
    a_retired_token_ends_the_session,
    listings_are_bounded,
    the_sweep_deletes_expired_rows_in_batches,
    logout_everywhere_racing_logins_leaves_nothing_reachable,
    metadata_round_trips,
);

async fn a_session_lives_until_it_expires_or_ends<St: SessionStore>(store: St) {
    let now = unix_now();
    store
        .create(&session(1, "alice", now, now + 100), None)
        .await
        .unwrap();
    assert!(store.is_active("alice", &id(1), now, 60).await.unwrap());
    assert!(!store.is_active("bob", &id(1), now, 60).await.unwrap());
    assert!(!store.is_active("alice", &id(2), now, 60).await.unwrap());
    assert!(
        !store
            .is_active("alice", &id(1), now + 100, 60)
            .await
            .unwrap()
    );
    assert!(store.revoke("alice", &id(1)).await.unwrap());
    assert!(!store.is_active("alice", &id(1), now, 60).await.unwrap());
    assert!(!store.revoke("alice", &id(1)).await.unwrap());
    assert_eq!(store.revoke_all("alice").await.unwrap(), 0);
}

async fn last_used<St: SessionStore>(store: &St, now: u64) -> SystemTime {
    store.list("alice", now, 1).await.unwrap()[0].last_used_at
}

async fn create_is_retry_safe_and_never_overwrites<St: SessionStore>(store: St) {
    let now = unix_now();
    let first = session(1, "alice", now, now + 100);
    assert_eq!(
        store.create(&first, None).await.unwrap(),
        Created::Live { ended: 0 }
    );
    // The same session again (a retry after a lost answer).
    assert_eq!(
        store
            .create(&first, limit(1, WhenFull::RefuseNew))
            .await
            .unwrap(),
        Created::Live { ended: 0 }
    );
    let mut other = first.clone();
    other.refresh.digest = [9; 32];
    assert!(matches!(
        store.create(&other, None).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.create(&session(1, "bob", now, now + 100), None).await,
        Err(StoreError::Conflict)
    ));
    assert!(!store.is_active("bob", &id(1), now, 60).await.unwrap());
    let listed = store.list("alice", now, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].refresh, first.refresh);
}

async fn use_is_recorded_at_most_once_per_interval<St: SessionStore>(store: St) {
    let now = unix_now();
    store
        .create(&session(1, "alice", now, now + 1_000), None)
        .await
        .unwrap();
    assert!(
        store
            .is_active("alice", &id(1), now + 59, 60)
            .await
            .unwrap()
    );
    assert_eq!(last_used(&store, now).await, at(now));
    assert!(
        store
            .is_active("alice", &id(1), now + 60, 60)
            .await
            .unwrap()
    );
    assert_eq!(last_used(&store, now).await, at(now + 60));
    assert!(
        store
            .is_active("alice", &id(1), now + 100, 60)
            .await
            .unwrap()
    );
    assert_eq!(last_used(&store, now).await, at(now + 60));
    // An older clock never moves it back.
    assert!(store.is_active("alice", &id(1), now + 30, 0).await.unwrap());
    assert_eq!(last_used(&store, now).await, at(now + 60));
}

async fn the_limit_is_counted_atomically<St: SessionStore + Clone>(store: St) {
    let now = unix_now();
    let tasks: Vec<_> = (0..20u128)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create(
                        &session(n, "alice", now, now + 100),
                        limit(5, WhenFull::RefuseNew),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut live = 0;
    for task in tasks {
        match task.await.unwrap() {
            Created::Live { ended: 0 } => live += 1,
            Created::LimitReached => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(live, 5);
    assert_eq!(ids(&store, "alice", now).await.len(), 5);
}

async fn end_oldest_under_concurrency_keeps_exactly_the_limit<St: SessionStore + Clone>(store: St) {
    let now = unix_now();
    let tasks: Vec<_> = (0..20u128)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create(
                        &session(n, "alice", now, now + 100),
                        limit(3, WhenFull::EndOldest),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ended = 0;
    for task in tasks {
        match task.await.unwrap() {
            Created::Live { ended: n } => ended += n,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ended, 17);
    assert_eq!(ids(&store, "alice", now).await.len(), 3);
}

async fn creation_order_is_the_order_of_creation<St: SessionStore>(store: St) {
    let now = unix_now();
    // Created in this order, whatever their clocks said.
    for (n, created) in [(3, now), (1, now - 10), (2, now - 5)] {
        store
            .create(&session(n, "alice", created, now + 100), None)
            .await
            .unwrap();
    }
    assert_eq!(ids(&store, "alice", now).await, [id(3), id(1), id(2)]);
    assert_eq!(
        store
            .create(
                &session(4, "alice", now, now + 100),
                limit(3, WhenFull::EndOldest)
            )
            .await
            .unwrap(),
        Created::Live { ended: 1 }
    );
    assert_eq!(ids(&store, "alice", now).await, [id(1), id(2), id(4)]);
}

async fn authentication_order_is_kept_to_the_microsecond<St: SessionStore>(store: St) {
    let micros = unix_now() * 1_000_000 + 123_456;
    let now = micros / 1_000_000;
    for (n, offset) in [(1, 0), (2, 2)] {
        let mut login = Session::new(
            id(n),
            "alice",
            from_unix_micros(micros + offset),
            at(now + 100),
        );
        login.authenticated_at = from_unix_micros(micros + offset);
        store.create(&login, None).await.unwrap();
    }
    let ended = store
        .revoke_authenticated_before("alice", from_unix_micros(micros + 1), at(now + 100))
        .await
        .unwrap();
    assert_eq!(ended, 1);
    assert_eq!(ids(&store, "alice", now).await, [id(2)]);
    let listed = store.list("alice", now, 10).await.unwrap();
    assert_eq!(listed[0].created_at, from_unix_micros(micros + 2));
    assert_eq!(listed[0].authenticated_at, from_unix_micros(micros + 2));
}

async fn the_not_before_mark_bars_late_logins<St: SessionStore>(store: St) {
    let now = unix_now();
    store
        .create(&session(1, "alice", now - 10, now + 100), None)
        .await
        .unwrap();
    assert_eq!(
        store
            .revoke_authenticated_before("alice", at(now - 5), at(now + 50))
            .await
            .unwrap(),
        1
    );
    // A lower mark later never lowers it.
    store
        .revoke_authenticated_before("alice", at(now - 20), at(now + 10))
        .await
        .unwrap();
    // A login whose password was checked before the mark, stored after it.
    let mut late = session(2, "alice", now, now + 100);
    late.authenticated_at = at(now - 6);
    assert_eq!(store.create(&late, None).await.unwrap(), Created::Barred);
    assert!(!store.is_active("alice", &id(2), now, 60).await.unwrap());
    let mut fresh = session(3, "alice", now, now + 100);
    fresh.authenticated_at = at(now - 5);
    assert_eq!(
        store.create(&fresh, None).await.unwrap(),
        Created::Live { ended: 0 }
    );
    // Other users are not barred.
    assert_eq!(
        store
            .create(
                &{
                    let mut bob = session(4, "bob", now, now + 100);
                    bob.authenticated_at = at(now - 60);
                    bob
                },
                None
            )
            .await
            .unwrap(),
        Created::Live { ended: 0 }
    );
    // Once the mark is no longer kept, it bars nothing.
    let mut after = session(5, "alice", now + 50, now + 100);
    after.authenticated_at = at(now - 60);
    assert_eq!(
        store.create(&after, None).await.unwrap(),
        Created::Live { ended: 0 }
    );
}

fn rotation(generation: u64, digest: u8, next: u8, now: u64, grace: u64) -> Rotation {
    Rotation {
        generation,
        digest: [digest; 32],
        next_digest: [next; 32],
        now,
        expires_at: now + 200,
        grace,
    }
}

async fn rotations_with_one_token_rotate_once<St: SessionStore + Clone>(store: St) {
    let now = unix_now();
    let mut first = session(1, "alice", now, now + 100);
    first.refresh.digest = [1; 32];
    store.create(&first, None).await.unwrap();
    let tasks: Vec<_> = (0..10u8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .rotate("alice", &id(1), &rotation(0, 1, 100 + n, now + 1, 60))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let rotated = outcomes.iter().filter(|o| **o == Rotated::Rotated).count();
    let forgiven = outcomes.iter().filter(|o| **o == Rotated::Forgiven).count();
    assert_eq!((rotated, forgiven), (1, 9), "{outcomes:?}");
    let listed = store.list("alice", now, 1).await.unwrap();
    assert_eq!(listed[0].refresh.generation, 1);
    assert_eq!(listed[0].expires_at, at(now + 201));
    assert_eq!(listed[0].last_used_at, at(now + 1));
    // The winner's retry answers as the first time and changes nothing.
    let winner = listed[0].refresh.digest[0];
    assert_eq!(
        store
            .rotate("alice", &id(1), &rotation(0, 1, winner, now + 2, 0))
            .await
            .unwrap(),
        Rotated::Rotated
    );
    assert_eq!(
        store.list("alice", now, 1).await.unwrap()[0]
            .refresh
            .generation,
        1
    );
}

async fn a_retired_token_ends_the_session<St: SessionStore>(store: St) {
    let now = unix_now();
    let mut first = session(1, "alice", now, now + 100);
    first.refresh.digest = [1; 32];
    store.create(&first, None).await.unwrap();
    assert_eq!(
        store
            .rotate("alice", &id(1), &rotation(0, 1, 2, now, 0))
            .await
            .unwrap(),
        Rotated::Rotated
    );
    assert_eq!(
        store
            .rotate("bob", &id(1), &rotation(1, 2, 3, now, 0))
            .await
            .unwrap(),
        Rotated::Unknown
    );
    assert_eq!(
        store
            .rotate("alice", &id(1), &rotation(0, 1, 9, now + 1, 0))
            .await
            .unwrap(),
        Rotated::Reused
    );
    assert!(!store.is_active("alice", &id(1), now, 60).await.unwrap());
    assert_eq!(
        store
            .rotate("alice", &id(1), &rotation(1, 2, 3, now, 0))
            .await
            .unwrap(),
        Rotated::Unknown
    );
    // An expired session does not rotate.
    let mut short = session(2, "alice", now, now + 10);
    short.refresh.digest = [5; 32];
    store.create(&short, None).await.unwrap();
    assert_eq!(
        store
            .rotate("alice", &id(2), &rotation(0, 5, 6, now + 10, 0))
            .await
            .unwrap(),
        Rotated::Unknown
    );
}

async fn listings_are_bounded<St: SessionStore>(store: St) {
    let now = unix_now();
    for n in 1..=5 {
        store
            .create(&session(n, "alice", now, now + 100), None)
            .await
            .unwrap();
    }
    store
        .create(&session(6, "alice", now - 50, now - 1), None)
        .await
        .unwrap();
    let newest: Vec<_> = store
        .list("alice", now, 2)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(newest, [id(4), id(5)]);
    assert!(store.list("alice", now, 0).await.unwrap().is_empty());
    assert!(store.list("nobody", now, 10).await.unwrap().is_empty());
}

/// Sweeping goes through the stores' own `sweep`; the store's type says which.
trait Sweep {
    async fn sweep_now(&self, now: u64) -> u64;
}

#[cfg(feature = "postgres")]
impl Sweep for tower_jwt_auth::store::PostgresStore {
    async fn sweep_now(&self, now: u64) -> u64 {
        self.sweep(now).await.unwrap()
    }
}

#[cfg(feature = "sqlite")]
impl Sweep for tower_jwt_auth::store::SqliteStore {
    async fn sweep_now(&self, now: u64) -> u64 {
        self.sweep(now).await.unwrap()
    }
}

async fn the_sweep_deletes_expired_rows_in_batches<St: SessionStore + Sweep>(store: St) {
    let now = unix_now();
    // More than one batch of 1,000, across many users; half expire at `now - 1`.
    for n in 0..2_500u128 {
        let user = format!("user{}", n % 50);
        let expires_at = if n % 2 == 0 { now - 1 } else { now + 99 };
        store
            .create(&session(n, &user, now - 100, expires_at), None)
            .await
            .unwrap();
    }
    assert_eq!(store.sweep_now(now).await, 1_250);
    let mut live = 0;
    for user in 0..50 {
        live += ids(&store, &format!("user{user}"), now).await.len();
    }
    assert_eq!(live, 1_250);
    assert_eq!(store.sweep_now(now).await, 0);
    assert_eq!(store.sweep_now(now + 100).await, 1_250);
}

async fn logout_everywhere_racing_logins_leaves_nothing_reachable<St: SessionStore + Clone>(
    store: St,
) {
    let now = unix_now();
    let store = Arc::new(store);
    let logins: Vec<_> = (0..20u128)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .create(&session(n, "alice", now, now + 100), None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let logout = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.revoke_all("alice").await.unwrap() })
    };
    for login in logins {
        login.await.unwrap();
    }
    logout.await.unwrap();
    store.revoke_all("alice").await.unwrap();
    for n in 0..20 {
        assert!(!store.is_active("alice", &id(n), now, 60).await.unwrap());
    }
}

async fn metadata_round_trips<St: SessionStore>(store: St) {
    let now = unix_now();
    let mut full = session(1, "alice", now, now + 100);
    full.user_agent = Some("curl/8 ünïcode".into());
    full.address = Some("2001:db8::1".parse().unwrap());
    full.refresh.digest = [0xab; 32];
    full.refresh.generation = 7;
    full.refresh.rotated_at = now - 3;
    full.created_at += Duration::from_micros(42);
    full.authenticated_at = full.created_at - Duration::from_micros(17);
    store.create(&full, None).await.unwrap();
    let mut v4 = session(2, "alice", now, now + 100);
    v4.address = Some("192.0.2.7".parse().unwrap());
    store.create(&v4, None).await.unwrap();
    let listed = store.list("alice", now, 10).await.unwrap();
    assert_eq!(listed, [full, v4]);
}
