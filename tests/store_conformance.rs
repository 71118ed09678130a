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
use tower_jwt_auth::store::{Session, SessionStore, StoreError};

use support::unix_now;

fn id(n: u128) -> SessionId {
    SessionId::from_bytes(n.to_be_bytes())
}

fn session(n: u128, sub: &str, created_at: u64, expires_at: u64) -> Session {
    Session::new(id(n), sub, created_at, expires_at)
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
        .create(&session(1, "alice", now, now + 100))
        .await
        .unwrap();

    assert!(store.is_active("alice", &id(1), now).await.unwrap());
    assert!(store.is_active("alice", &id(1), now + 99).await.unwrap());
    assert!(
        !store.is_active("alice", &id(1), now + 100).await.unwrap(),
        "expired"
    );
    assert!(
        !store
            .is_active("alice", &id(1), now + 10_000)
            .await
            .unwrap()
    );
    assert!(
        !store.is_active("alice", &id(2), now).await.unwrap(),
        "unknown id"
    );
    assert!(
        !store.is_active("bob", &id(1), now).await.unwrap(),
        "another user's id"
    );
    assert!(!store.is_active("nobody", &id(1), now).await.unwrap());
}

async fn create_refuses_an_existing_id<St: SessionStore>(store: St) {
    let now = unix_now();
    let first = session(1, "alice", now, now + 100);
    store.create(&first).await.unwrap();

    let again = session(1, "alice", now + 1, now + 500);
    assert!(matches!(
        store.create(&again).await,
        Err(StoreError::Conflict)
    ));
    // Never an overwrite: the first session is unchanged.
    assert_eq!(store.list("alice", now).await.unwrap(), [first]);
    assert!(!store.is_active("alice", &id(1), now + 100).await.unwrap());
}

async fn create_drops_expired_sessions<St: SessionStore>(store: St) {
    let now = unix_now();
    store
        .create(&session(1, "alice", now, now + 10))
        .await
        .unwrap();
    store
        .create(&session(2, "alice", now, now + 100))
        .await
        .unwrap();

    // At now + 20 the first has expired: it is dropped, and its id may be used again.
    let reused = session(1, "alice", now + 20, now + 200);
    store.create(&reused).await.unwrap();
    store
        .create(&session(3, "alice", now + 20, now + 200))
        .await
        .unwrap();
    assert!(store.is_active("alice", &id(1), now + 150).await.unwrap());
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
        .create(&session(1, "alice", now, now + 100))
        .await
        .unwrap();
    store
        .create(&session(2, "alice", now, now + 100))
        .await
        .unwrap();
    store
        .create(&session(3, "bob", now, now + 100))
        .await
        .unwrap();

    // A session is revoked by its own user only.
    assert!(!store.revoke("bob", &id(1)).await.unwrap());
    assert!(store.is_active("alice", &id(1), now).await.unwrap());

    assert!(store.revoke("alice", &id(1)).await.unwrap());
    assert!(!store.is_active("alice", &id(1), now).await.unwrap());
    assert!(
        store.is_active("alice", &id(2), now).await.unwrap(),
        "other sessions stay"
    );
    assert!(
        store.is_active("bob", &id(3), now).await.unwrap(),
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
        .create(&session(4, "alice", now, now + 100))
        .await
        .unwrap();
    assert!(store.is_active("alice", &id(4), now).await.unwrap());
}

async fn revoke_all_ends_every_session_of_the_user<St: SessionStore>(store: St) {
    let now = unix_now();
    for n in 1..=3 {
        store
            .create(&session(n, "alice", now, now + 100))
            .await
            .unwrap();
    }
    store
        .create(&session(4, "bob", now, now + 100))
        .await
        .unwrap();

    assert_eq!(store.revoke_all("alice").await.unwrap(), 3);
    for n in 1..=3 {
        assert!(!store.is_active("alice", &id(n), now).await.unwrap());
    }
    assert!(store.list("alice", now).await.unwrap().is_empty());
    assert!(
        store.is_active("bob", &id(4), now).await.unwrap(),
        "other users stay"
    );

    // Idempotent.
    assert_eq!(store.revoke_all("alice").await.unwrap(), 0);
    assert_eq!(store.revoke_all("nobody").await.unwrap(), 0);

    store
        .create(&session(5, "alice", now, now + 100))
        .await
        .unwrap();
    assert!(store.is_active("alice", &id(5), now).await.unwrap());
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
        store.create(session).await.unwrap();
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
            .create(&session(n, sub, now, now + 100))
            .await
            .unwrap();
    }
    for (n, sub) in (0..).zip(subs) {
        // Each user sees their own session and nobody else's.
        for (m, other) in (0..).zip(subs) {
            let active = store.is_active(other, &id(n), now).await.unwrap();
            assert_eq!(active, n == m, "session of {sub:?} checked as {other:?}");
        }
        let listed = store.list(sub, now).await.unwrap();
        assert_eq!(listed, [session(n, sub, now, now + 100)], "{sub:?}");
    }
    for (revoked, sub) in (0..).zip(subs) {
        assert_eq!(store.revoke_all(sub).await.unwrap(), 1, "{sub:?}");
        for (n, other) in (0..).zip(subs) {
            let active = store.is_active(other, &id(n), now).await.unwrap();
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
                        .create(&session(n, "alice", now, now + 600))
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
                !store.is_active("alice", &id(n), now).await.unwrap(),
                "round {round}"
            );
        }
        assert!(
            store.list("alice", now).await.unwrap().is_empty(),
            "round {round}"
        );
    }
}

#[cfg(feature = "redis")]
mod redis_data_model {
    //! What only the Redis store has: its keys, their expiry, and bad data in them.

    use tower_jwt_auth::store::redis::redis;
    use tower_jwt_auth::store::{RedisStore, SessionStore, StoreError};

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
            .create(&session(1, "a{b}:c", now, now + 100))
            .await
            .unwrap();
        store
            .create(&session(2, "a{b}:c", now, now + 300))
            .await
            .unwrap();
        store
            .create(&session(3, "a{b}:c", now, now + 200))
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
            .create(&session(1, "alice", now, now + 100))
            .await
            .unwrap();
        assert!(store.revoke("alice", &id(1)).await.unwrap());
        let keys: Vec<String> = query(&store, redis::cmd("KEYS").arg(format!("{prefix}*"))).await;
        assert!(keys.is_empty(), "{keys:?}");
    }

    #[tokio::test]
    async fn bad_data_is_a_backend_error() {
        let redis = TestRedis::get();
        let store = store(&redis, "bad").await;
        let prefix = store.key_prefix().to_owned();
        let now = unix_now();
        store
            .create(&session(1, "alice", now, now + 100))
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

        let _: () = query(
            &store,
            redis::cmd("SET")
                .arg(format!("{prefix}{{bob}}:s"))
                .arg("not a sorted set"),
        )
        .await;
        let error = store.is_active("bob", &id(1), now).await.unwrap_err();
        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
        let _: () = query(&store, redis::cmd("DEL").arg(format!("{prefix}{{bob}}:s"))).await;
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
