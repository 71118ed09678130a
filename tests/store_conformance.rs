//! The `SessionStore` contract, written once and run against every store: the memory store
//! always, the Redis store with the `redis` feature (against `REDIS_URL`, or a
//! `redis-server` the tests start).
//!
//! Times are real Unix seconds, because Redis expires keys by its own clock; "now" is passed
//! explicitly, so expiry is tested without waiting.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tower_jwt_auth::SessionId;
use tower_jwt_auth::store::{
    Created, RefreshState, Rotated, Rotation, Session, SessionLimit, SessionStore, StoreError,
    WhenFull,
};

use support::unix_now;

fn id(n: u128) -> SessionId {
    SessionId::from_bytes(n.to_be_bytes())
}

fn session(n: u128, sub: &str, created_at: u64, expires_at: u64) -> Session {
    Session::new(id(n), sub, created_at, expires_at)
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

/// The ids of the live sessions of `sub` at `now`, oldest first.
async fn listed_ids<St: SessionStore>(store: &St, sub: &str, now: u64) -> Vec<SessionId> {
    let sessions = store.list(sub, now).await.unwrap();
    sessions.iter().map(|session| session.id).collect()
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod memory {
            use tower_jwt_auth::store::MemoryStore;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(MemoryStore::new()).await;
                }
            )*
        }

        #[cfg(feature = "redis")]
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let redis = crate::support::TestRedis::get();
                    super::$test(crate::redis_store(&redis, stringify!($test)).await).await;
                }
            )*
        }
    };
}

conformance!(
    a_created_session_is_active_until_it_expires,
    create_refuses_an_existing_id,
    create_drops_expired_sessions,
    revoke_ends_one_session,
    revoke_all_ends_every_session_of_the_user,
    list_returns_live_sessions_oldest_first_with_metadata,
    users_are_kept_apart_whatever_their_ids,
    logout_all_racing_logins_leaves_nothing_behind,
    refuse_new_at_the_limit_stores_nothing,
    end_oldest_at_the_limit_ends_the_oldest_first,
    a_check_records_use_at_most_once_per_interval,
    rotate_advances_the_refresh_state,
    a_token_retired_within_the_grace_period_is_forgiven,
    a_retired_or_foreign_token_ends_the_session,
    rotating_a_missing_or_expired_session_is_unknown,
    concurrent_rotations_with_one_token_rotate_once,
    revoke_created_before_ends_the_older_sessions,
    list_round_trips_the_refresh_state,
);

#[cfg(feature = "redis")]
async fn redis_store(redis: &support::TestRedis, test: &str) -> tower_jwt_auth::store::RedisStore {
    tower_jwt_auth::store::RedisStore::connect(redis.url())
        .await
        .unwrap()
        .prefix(support::unique_prefix(test))
}

async fn a_created_session_is_active_until_it_expires<St: SessionStore>(store: St) {
    let now = unix_now();
    store
        .create(&session(1, "alice", now, now + 100), None)
        .await
        .unwrap();

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

async fn create_refuses_an_existing_id<St: SessionStore>(store: St) {
    let now = unix_now();
    let first = session(1, "alice", now, now + 100);
    store.create(&first, None).await.unwrap();

    let again = session(1, "alice", now + 1, now + 500);
    assert!(matches!(
        store.create(&again, None).await,
        Err(StoreError::Conflict)
    ));
    // Never an overwrite: the first session is unchanged.
    assert_eq!(store.list("alice", now).await.unwrap(), [first]);
    assert!(
        !store
            .is_active("alice", &id(1), now + 100, u64::MAX)
            .await
            .unwrap()
    );
}

async fn create_drops_expired_sessions<St: SessionStore>(store: St) {
    let now = unix_now();
    store
        .create(&session(1, "alice", now, now + 10), None)
        .await
        .unwrap();
    store
        .create(&session(2, "alice", now, now + 100), None)
        .await
        .unwrap();

    // At now + 20 the first has expired: it is dropped, and its id may be used again.
    let reused = session(1, "alice", now + 20, now + 200);
    store.create(&reused, None).await.unwrap();
    store
        .create(&session(3, "alice", now + 20, now + 200), None)
        .await
        .unwrap();
    assert!(
        store
            .is_active("alice", &id(1), now + 150, u64::MAX)
            .await
            .unwrap()
    );
    assert_eq!(store.list("alice", now + 20).await.unwrap().len(), 3);
    assert_eq!(
        store.revoke_all("alice").await.unwrap(),
        3,
        "only live sessions were left"
    );
}

async fn revoke_ends_one_session<St: SessionStore>(store: St) {
    let now = unix_now();
    store
        .create(&session(1, "alice", now, now + 100), None)
        .await
        .unwrap();
    store
        .create(&session(2, "alice", now, now + 100), None)
        .await
        .unwrap();
    store
        .create(&session(3, "bob", now, now + 100), None)
        .await
        .unwrap();

    // A session is revoked by its own user only.
    assert!(!store.revoke("bob", &id(1)).await.unwrap());
    assert!(
        store
            .is_active("alice", &id(1), now, u64::MAX)
            .await
            .unwrap()
    );

    assert!(store.revoke("alice", &id(1)).await.unwrap());
    assert!(
        !store
            .is_active("alice", &id(1), now, u64::MAX)
            .await
            .unwrap()
    );
    assert!(
        store
            .is_active("alice", &id(2), now, u64::MAX)
            .await
            .unwrap(),
        "other sessions stay"
    );
    assert!(
        store.is_active("bob", &id(3), now, u64::MAX).await.unwrap(),
        "other users stay"
    );

    // Idempotent.
    assert!(!store.revoke("alice", &id(1)).await.unwrap());
    assert!(!store.revoke("alice", &id(9)).await.unwrap());
    assert!(!store.revoke("nobody", &id(1)).await.unwrap());

    assert!(store.revoke("alice", &id(2)).await.unwrap());
    assert!(store.list("alice", now).await.unwrap().is_empty());
    // The user can log in again once they have no session left.
    store
        .create(&session(4, "alice", now, now + 100), None)
        .await
        .unwrap();
    assert!(
        store
            .is_active("alice", &id(4), now, u64::MAX)
            .await
            .unwrap()
    );
}

async fn revoke_all_ends_every_session_of_the_user<St: SessionStore>(store: St) {
    let now = unix_now();
    for n in 1..=3 {
        store
            .create(&session(n, "alice", now, now + 100), None)
            .await
            .unwrap();
    }
    store
        .create(&session(4, "bob", now, now + 100), None)
        .await
        .unwrap();

    assert_eq!(store.revoke_all("alice").await.unwrap(), 3);
    for n in 1..=3 {
        assert!(
            !store
                .is_active("alice", &id(n), now, u64::MAX)
                .await
                .unwrap()
        );
    }
    assert!(store.list("alice", now).await.unwrap().is_empty());
    assert!(
        store.is_active("bob", &id(4), now, u64::MAX).await.unwrap(),
        "other users stay"
    );

    // Idempotent.
    assert_eq!(store.revoke_all("alice").await.unwrap(), 0);
    assert_eq!(store.revoke_all("nobody").await.unwrap(), 0);

    store
        .create(&session(5, "alice", now, now + 100), None)
        .await
        .unwrap();
    assert!(
        store
            .is_active("alice", &id(5), now, u64::MAX)
            .await
            .unwrap()
    );
}

async fn list_returns_live_sessions_oldest_first_with_metadata<St: SessionStore>(store: St) {
    let now = unix_now();
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    // The longest user agent a login keeps, with characters beyond ASCII.
    let long: String = "Ünïcødé ".repeat(40).chars().take(200).collect();

    let mut laptop = session(3, "alice", now - 50, now + 100);
    laptop.last_used_at = now - 5;
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

    let listed = store.list("alice", now).await.unwrap();
    assert_eq!(listed, [laptop.clone(), bare.clone(), phone.clone()]);
    // Later, only what is still live.
    assert_eq!(
        store.list("alice", now + 150).await.unwrap(),
        [bare, phone.clone()]
    );
    assert_eq!(store.list("alice", now + 250).await.unwrap(), [phone]);
    assert!(store.list("alice", now + 300).await.unwrap().is_empty());
    assert!(store.list("nobody", now).await.unwrap().is_empty());
}

async fn users_are_kept_apart_whatever_their_ids<St: SessionStore>(store: St) {
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
        let listed = store.list(sub, now).await.unwrap();
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

async fn logout_all_racing_logins_leaves_nothing_behind<St: SessionStore + Clone>(store: St) {
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
                    store
                        .create(&session(n, "alice", now, now + 600), None)
                        .await
                        .unwrap();
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
            assert!(
                !store
                    .is_active("alice", &id(n), now, u64::MAX)
                    .await
                    .unwrap(),
                "round {round}"
            );
        }
        assert!(
            store.list("alice", now).await.unwrap().is_empty(),
            "round {round}"
        );
    }
}

async fn refuse_new_at_the_limit_stores_nothing<St: SessionStore>(store: St) {
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
    assert!(
        !store
            .is_active("alice", &id(3), now, u64::MAX)
            .await
            .unwrap()
    );
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
    store
        .create(&session(7, "carol", now, now + 100), None)
        .await
        .unwrap();
    store
        .create(&session(8, "carol", now, now + 1000), None)
        .await
        .unwrap();
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

async fn end_oldest_at_the_limit_ends_the_oldest_first<St: SessionStore>(store: St) {
    let now = unix_now();
    // Oldest first by creation, then by id (its bytes, unsigned): 5, high, 1, 3.
    let high = 1 << 127;
    for (n, created_at) in [
        (high, now - 30),
        (3, now - 10),
        (5, now - 30),
        (1, now - 20),
    ] {
        store
            .create(&session(n, "alice", created_at, now + 1000), None)
            .await
            .unwrap();
    }
    store
        .create(&session(20, "bob", now - 100, now + 1000), None)
        .await
        .unwrap();

    let created = store
        .create(
            &session(9, "alice", now, now + 1000),
            limit(4, WhenFull::EndOldest),
        )
        .await
        .unwrap();
    assert_eq!(created, Created::Live { ended: 1 });
    assert!(
        !store
            .is_active("alice", &id(5), now, u64::MAX)
            .await
            .unwrap()
    );
    assert_eq!(
        listed_ids(&store, "alice", now).await,
        [id(high), id(1), id(3), id(9)]
    );

    // A lower limit ends as many as it takes to make room.
    let created = store
        .create(
            &session(8, "alice", now, now + 1000),
            limit(3, WhenFull::EndOldest),
        )
        .await
        .unwrap();
    assert_eq!(created, Created::Live { ended: 2 });
    assert_eq!(
        listed_ids(&store, "alice", now).await,
        [id(3), id(8), id(9)]
    );

    // An id the user has is a conflict, and nothing ends.
    let again = store
        .create(
            &session(8, "alice", now, now + 1000),
            limit(1, WhenFull::EndOldest),
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    assert_eq!(
        listed_ids(&store, "alice", now).await,
        [id(3), id(8), id(9)]
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

async fn a_check_records_use_at_most_once_per_interval<St: SessionStore>(store: St) {
    let now = unix_now();
    store
        .create(&session(1, "alice", now, now + 1000), None)
        .await
        .unwrap();
    store
        .create(&session(2, "alice", now, now + 1000), None)
        .await
        .unwrap();
    let last_used = async |n: u128| {
        let sessions = store.list("alice", now).await.unwrap();
        let session = sessions.iter().find(|session| session.id == id(n)).unwrap();
        session.last_used_at
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

async fn rotate_advances_the_refresh_state<St: SessionStore>(store: St) {
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
    expected.expires_at = now + 900;
    expected.last_used_at = now + 10;
    assert_eq!(
        store.list("alice", now).await.unwrap(),
        [expected.clone(), other.clone()]
    );
    assert!(
        store
            .is_active("alice", &id(1), now + 899, u64::MAX)
            .await
            .unwrap(),
        "extended"
    );

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
    expected.expires_at = now + 700;
    expected.last_used_at = now + 20;
    assert_eq!(
        store.list("alice", now).await.unwrap(),
        [expected, other.clone()]
    );
    assert!(
        !store
            .is_active("alice", &id(1), now + 700, u64::MAX)
            .await
            .unwrap()
    );

    // A session created at a later generation rotates from it.
    let answer = store
        .rotate("alice", &id(2), &rotation(5, 9, 10, now + 30, now + 800, 0))
        .await
        .unwrap();
    assert_eq!(answer, Rotated::Rotated);
    let listed = store.list("alice", now).await.unwrap();
    assert_eq!(listed[1].refresh.generation, 6);
    assert_eq!(listed[1].refresh.digest, [10; 32]);
}

async fn a_token_retired_within_the_grace_period_is_forgiven<St: SessionStore>(store: St) {
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
    let session = &store.list("alice", now).await.unwrap()[0];
    let unchanged = RefreshState {
        generation: 1,
        digest: [2; 32],
        rotated_at: now + 10,
    };
    assert_eq!(
        (session.refresh, session.expires_at, session.last_used_at),
        (unchanged, now + 900, now + 10)
    );
    // Once the grace period is over, it is reuse.
    assert_eq!(
        rotate(1, rotation(0, 1, 3, now + 40, now + 900, 30)).await,
        Rotated::Reused
    );
    assert!(
        !store
            .is_active("alice", &id(1), now + 41, u64::MAX)
            .await
            .unwrap()
    );

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
    assert!(store.list("alice", now).await.unwrap().is_empty());
}

async fn a_retired_or_foreign_token_ends_the_session<St: SessionStore>(store: St) {
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
    assert!(
        !store
            .is_active("alice", &id(1), now + 11, u64::MAX)
            .await
            .unwrap()
    );
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
    assert!(store.list("alice", now).await.unwrap().is_empty());
    assert!(
        store.is_active("bob", &id(4), now, u64::MAX).await.unwrap(),
        "other users stay"
    );
}

async fn rotating_a_missing_or_expired_session_is_unknown<St: SessionStore>(store: St) {
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
    assert_eq!(store.list("alice", now).await.unwrap(), [created]);

    assert!(store.revoke("alice", &id(1)).await.unwrap());
    assert_eq!(
        rotate("alice", 1, rotation(0, 1, 2, now, now + 900, 0)).await,
        Rotated::Unknown
    );
}

async fn concurrent_rotations_with_one_token_rotate_once<St: SessionStore + Clone>(store: St) {
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
            assert!(
                !store
                    .is_active("alice", &id(n), now + 10, u64::MAX)
                    .await
                    .unwrap()
            );
        } else {
            assert!(
                losers.clone().all(|&answer| answer == Rotated::Forgiven),
                "{answers:?}"
            );
            // One live branch: the winner's token.
            let listed = store.list("alice", now).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].refresh.generation, 1);
            assert_eq!(listed[0].refresh.digest, [100 + winners[0]; 32]);
        }
    }
}

async fn revoke_created_before_ends_the_older_sessions<St: SessionStore>(store: St) {
    let now = unix_now();
    for (n, created_at) in [(1, now - 100), (2, now - 50), (3, now - 10)] {
        store
            .create(&session(n, "alice", created_at, now + 1000), None)
            .await
            .unwrap();
    }
    store
        .create(&session(4, "bob", now - 100, now + 1000), None)
        .await
        .unwrap();

    assert_eq!(
        store
            .revoke_created_before("alice", now - 100)
            .await
            .unwrap(),
        0,
        "strictly before"
    );
    assert_eq!(
        store
            .revoke_created_before("alice", now - 50)
            .await
            .unwrap(),
        1
    );
    assert!(
        !store
            .is_active("alice", &id(1), now, u64::MAX)
            .await
            .unwrap()
    );
    assert_eq!(listed_ids(&store, "alice", now).await, [id(2), id(3)]);
    assert_eq!(store.revoke_created_before("alice", now).await.unwrap(), 2);
    assert!(store.list("alice", now).await.unwrap().is_empty());

    // Idempotent, and per user.
    assert_eq!(store.revoke_created_before("alice", now).await.unwrap(), 0);
    assert_eq!(store.revoke_created_before("nobody", now).await.unwrap(), 0);
    assert!(store.is_active("bob", &id(4), now, u64::MAX).await.unwrap());

    // Logins after the point stay.
    store
        .create(&session(5, "alice", now, now + 1000), None)
        .await
        .unwrap();
    assert_eq!(store.revoke_created_before("alice", now).await.unwrap(), 0);
    assert!(
        store
            .is_active("alice", &id(5), now, u64::MAX)
            .await
            .unwrap()
    );
}

async fn list_round_trips_the_refresh_state<St: SessionStore>(store: St) {
    let now = unix_now();
    let mut first = session(1, "alice", now - 20, now + 600);
    // Every byte value, zeros included.
    first.refresh = RefreshState {
        generation: 7,
        digest: std::array::from_fn(|i| (i * 37) as u8),
        rotated_at: now - 5,
    };
    first.last_used_at = now - 2;
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
        store.list("alice", now).await.unwrap(),
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
    let listed = store.list("alice", now).await.unwrap();
    assert_eq!(listed[0], first, "other sessions stay");
    assert_eq!(
        listed[1].refresh,
        RefreshState {
            generation: u64::MAX,
            digest: [0; 32],
            rotated_at: now,
        }
    );
    // The token just retired, within the grace period; then the one before it.
    assert_eq!(
        store.rotate("alice", &id(2), &next).await.unwrap(),
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

#[cfg(feature = "redis")]
mod redis_data_model {
    //! What only the Redis store has: its keys, their expiry, and bad data in them.

    use tower_jwt_auth::store::redis::redis;
    use tower_jwt_auth::store::{
        Created, RedisStore, RefreshState, Rotated, Rotation, SessionLimit, SessionStore,
        StoreError, WhenFull,
    };

    use super::{id, session};
    use crate::support::{TestRedis, unix_now};

    async fn store(redis: &TestRedis, test: &str) -> RedisStore {
        crate::redis_store(redis, test).await
    }

    async fn query<T: redis::FromRedisValue>(store: &RedisStore, command: &redis::Cmd) -> T {
        command
            .query_async(&mut store.connection().clone())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_user_has_two_keys_that_expire_with_the_last_session() {
        let redis = TestRedis::get();
        let store = store(&redis, "keys").await;
        let prefix = store.key_prefix().to_owned();
        let now = unix_now();
        store
            .create(&session(1, "a{b}:c", now, now + 100), None)
            .await
            .unwrap();
        store
            .create(&session(2, "a{b}:c", now, now + 300), None)
            .await
            .unwrap();
        store
            .create(&session(3, "a{b}:c", now, now + 200), None)
            .await
            .unwrap();

        let mut keys: Vec<String> =
            query(&store, redis::cmd("KEYS").arg(format!("{prefix}*"))).await;
        keys.sort();
        let sessions = format!("{prefix}{{a%7Bb%7D:c}}:s");
        let metadata = format!("{prefix}{{a%7Bb%7D:c}}:m");
        assert_eq!(keys, [metadata.clone(), sessions.clone()]);
        for key in [&sessions, &metadata] {
            let ttl: i64 = query(&store, redis::cmd("TTL").arg(key)).await;
            assert!((290..=300).contains(&ttl), "{key}: {ttl}");
        }

        // Two fields per session: its record and its last use.
        let fields: i64 = query(&store, redis::cmd("HLEN").arg(&metadata)).await;
        assert_eq!(fields, 6);

        // A rotation that moves the last end moves the keys' expiry with it.
        let later = Rotation {
            generation: 0,
            digest: [0; 32],
            next_digest: [1; 32],
            now,
            expires_at: now + 400,
            grace: 0,
        };
        assert_eq!(
            store.rotate("a{b}:c", &id(1), &later).await.unwrap(),
            Rotated::Rotated
        );
        for key in [&sessions, &metadata] {
            let ttl: i64 = query(&store, redis::cmd("TTL").arg(key)).await;
            assert!((390..=400).contains(&ttl), "{key}: {ttl}");
        }

        assert_eq!(store.revoke_all("a{b}:c").await.unwrap(), 3);
        let left: i64 = query(&store, redis::cmd("EXISTS").arg(&sessions).arg(&metadata)).await;
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn revoking_the_last_session_leaves_no_key() {
        let redis = TestRedis::get();
        let store = store(&redis, "last").await;
        let prefix = store.key_prefix().to_owned();
        let now = unix_now();
        store
            .create(&session(1, "alice", now, now + 100), None)
            .await
            .unwrap();
        assert!(store.revoke("alice", &id(1)).await.unwrap());
        let keys: Vec<String> = query(&store, redis::cmd("KEYS").arg(format!("{prefix}*"))).await;
        assert!(keys.is_empty(), "{keys:?}");
    }

    #[tokio::test]
    async fn every_way_of_ending_a_session_removes_both_its_fields() {
        let redis = TestRedis::get();
        let store = store(&redis, "fields").await;
        let prefix = store.key_prefix().to_owned();
        let now = unix_now();
        store
            .create(&session(1, "alice", now, now + 10), None)
            .await
            .unwrap();
        for (n, created_at) in [(2, now - 100), (3, now - 90), (4, now - 80), (5, now - 10)] {
            store
                .create(&session(n, "alice", created_at, now + 1000), None)
                .await
                .unwrap();
        }
        // 1 expires, 2 is reused, 3 is the oldest at the limit, 4 is older than a password
        // change, 5 is revoked: 6 and 7 are left.
        store
            .create(&session(6, "alice", now + 20, now + 1000), None)
            .await
            .unwrap();
        let foreign = Rotation {
            generation: 0,
            digest: [9; 32],
            next_digest: [1; 32],
            now,
            expires_at: now + 1000,
            grace: 0,
        };
        assert_eq!(
            store.rotate("alice", &id(2), &foreign).await.unwrap(),
            Rotated::Reused
        );
        let limit = SessionLimit {
            max: 4,
            when_full: WhenFull::EndOldest,
        };
        let created = store
            .create(&session(7, "alice", now + 20, now + 1000), Some(limit))
            .await
            .unwrap();
        assert_eq!(created, Created::Live { ended: 1 });
        assert_eq!(
            store
                .revoke_created_before("alice", now - 50)
                .await
                .unwrap(),
            1
        );
        assert!(store.revoke("alice", &id(5)).await.unwrap());

        let mut fields: Vec<Vec<u8>> = query(
            &store,
            redis::cmd("HKEYS").arg(format!("{prefix}{{alice}}:m")),
        )
        .await;
        fields.sort();
        let mut expected = Vec::new();
        for n in [6, 7] {
            let record = id(n).as_bytes().to_vec();
            let mut last_use = record.clone();
            last_use.push(b'u');
            expected.extend([record, last_use]);
        }
        assert_eq!(fields, expected);
    }

    #[tokio::test]
    async fn bad_data_is_a_backend_error() {
        let redis = TestRedis::get();
        let store = store(&redis, "bad").await;
        let prefix = store.key_prefix().to_owned();
        let now = unix_now();
        store
            .create(&session(1, "alice", now, now + 100), None)
            .await
            .unwrap();
        let _: () = query(
            &store,
            redis::cmd("HSET")
                .arg(format!("{prefix}{{alice}}:m"))
                .arg(&id(1).as_bytes()[..])
                .arg("garbage"),
        )
        .await;
        let error = store.list("alice", now).await.unwrap_err();
        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
        let rotation = Rotation {
            generation: 0,
            digest: [1; 32],
            next_digest: [2; 32],
            now,
            expires_at: now + 100,
            grace: 0,
        };
        let error = store.rotate("alice", &id(1), &rotation).await.unwrap_err();
        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
        assert!(
            store.is_active("alice", &id(1), now, 0).await.unwrap(),
            "a request needs no record"
        );

        store
            .create(&session(2, "carol", now, now + 100), None)
            .await
            .unwrap();
        let mut last_use = id(2).as_bytes().to_vec();
        last_use.push(b'u');
        let _: () = query(
            &store,
            redis::cmd("HSET")
                .arg(format!("{prefix}{{carol}}:m"))
                .arg(last_use)
                .arg("yesterday"),
        )
        .await;
        let error = store.list("carol", now).await.unwrap_err();
        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");

        let _: () = query(
            &store,
            redis::cmd("SET")
                .arg(format!("{prefix}{{bob}}:s"))
                .arg("not a sorted set"),
        )
        .await;
        for touch in [u64::MAX, 0] {
            let error = store
                .is_active("bob", &id(1), now, touch)
                .await
                .unwrap_err();
            assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
        }
        let _: () = query(&store, redis::cmd("DEL").arg(format!("{prefix}{{bob}}:s"))).await;
    }

    #[tokio::test]
    async fn a_check_never_creates_a_key_or_field() {
        let redis = TestRedis::get();
        let store = store(&redis, "no-key").await;
        let prefix = store.key_prefix().to_owned();
        let now = unix_now();
        // A session id without a record (as after a partial fail-over): its use is not
        // recorded, as that would leave a metadata key without expiry.
        let sessions = format!("{prefix}{{alice}}:s");
        let _: () = query(
            &store,
            redis::cmd("ZADD")
                .arg(&sessions)
                .arg(now + 100)
                .arg(&id(1).as_bytes()[..]),
        )
        .await;
        assert!(store.is_active("alice", &id(1), now, 0).await.unwrap());
        assert!(!store.is_active("bob", &id(1), now, 0).await.unwrap());
        let keys: Vec<String> = query(&store, redis::cmd("KEYS").arg(format!("{prefix}*"))).await;
        assert_eq!(keys, std::slice::from_ref(&sessions));
        let _: () = query(&store, redis::cmd("DEL").arg(&sessions)).await;
    }

    /// A record as version 1 of the store wrote it: no refresh state, the last use inside.
    fn version_1_record(created_at: u64, last_used_at: u64) -> Vec<u8> {
        let mut record = vec![1];
        record.extend_from_slice(&created_at.to_be_bytes());
        record.extend_from_slice(&last_used_at.to_be_bytes());
        record.extend_from_slice(&[4, 203, 0, 113, 7, 1]);
        record.extend_from_slice(b"curl/8.5.0");
        record
    }

    #[tokio::test]
    async fn version_1_records_are_read_and_rotate_to_version_2() {
        let redis = TestRedis::get();
        let store = store(&redis, "version-1").await;
        let prefix = store.key_prefix().to_owned();
        let now = unix_now();
        let (sessions, metadata) = (
            format!("{prefix}{{alice}}:s"),
            format!("{prefix}{{alice}}:m"),
        );
        for n in [1, 2] {
            let _: () = query(
                &store,
                redis::cmd("ZADD")
                    .arg(&sessions)
                    .arg(now + 100)
                    .arg(&id(n).as_bytes()[..]),
            )
            .await;
            let _: () = query(
                &store,
                redis::cmd("HSET")
                    .arg(&metadata)
                    .arg(&id(n).as_bytes()[..])
                    .arg(version_1_record(now - 50, now - 20)),
            )
            .await;
        }

        let mut expected = session(1, "alice", now - 50, now + 100);
        expected.last_used_at = now - 20;
        expected.address = Some("203.0.113.7".parse().unwrap());
        expected.user_agent = Some("curl/8.5.0".to_owned());
        expected.refresh = RefreshState {
            generation: 0,
            digest: [0; 32],
            rotated_at: now - 50,
        };
        assert_eq!(store.list("alice", now).await.unwrap()[0], expected);

        // Its first check that may record a use records it.
        assert!(store.is_active("alice", &id(1), now, 60).await.unwrap());
        expected.last_used_at = now;
        assert_eq!(store.list("alice", now).await.unwrap()[0], expected);

        // Generation 0 with the all-zero digest is its current refresh state; any real
        // refresh token is foreign to it.
        let rotation = Rotation {
            generation: 0,
            digest: [0; 32],
            next_digest: [5; 32],
            now: now + 1,
            expires_at: now + 200,
            grace: 0,
        };
        assert_eq!(
            store.rotate("alice", &id(1), &rotation).await.unwrap(),
            Rotated::Rotated
        );
        let record: Vec<u8> = query(
            &store,
            redis::cmd("HGET").arg(&metadata).arg(&id(1).as_bytes()[..]),
        )
        .await;
        assert_eq!(record[0], 2, "rewritten as version 2");
        expected.refresh = RefreshState {
            generation: 1,
            digest: [5; 32],
            rotated_at: now + 1,
        };
        expected.expires_at = now + 200;
        expected.last_used_at = now + 1;
        assert_eq!(store.list("alice", now).await.unwrap()[0], expected);

        let foreign = Rotation {
            digest: [9; 32],
            ..rotation
        };
        assert_eq!(
            store.rotate("alice", &id(2), &foreign).await.unwrap(),
            Rotated::Reused
        );
        assert_eq!(store.list("alice", now).await.unwrap(), [expected]);
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = std::time::Instant::now();
        let error = RedisStore::connect(&format!("redis://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(15));

        let error = RedisStore::connect("not a url").await.unwrap_err();
        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    }
}
