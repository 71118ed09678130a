//! The Redis store's keys, their expiry, and bad data in them. The
//! contract itself is checked by the conformance suite (`tests/store_conformance.rs`).

#![cfg(feature = "redis")]

mod support;

use tower_jwt_auth::SessionId;
use tower_jwt_auth::clock::from_unix_seconds;
use tower_jwt_auth::store::redis::redis;
use tower_jwt_auth::store::{
    Created, RedisStore, RefreshState, Rotated, Rotation, Session, SessionLimit, SessionStore,
    StoreError, WhenFull,
};

use support::{TestRedis, rotation, unix_now};

fn id(n: u128) -> SessionId {
    SessionId::from_bytes(n.to_be_bytes())
}

fn session(n: u128, sub: &str, created_at: u64, expires_at: u64) -> Session {
    Session::new(
        id(n),
        sub,
        from_unix_seconds(created_at),
        from_unix_seconds(expires_at),
    )
}

async fn store(redis: &TestRedis, test: &str) -> RedisStore {
    RedisStore::connect(redis.url())
        .await
        .unwrap()
        .prefix(support::unique_prefix(test))
}

async fn query<T: redis::FromRedisValue>(store: &RedisStore, command: &redis::Cmd) -> T {
    command
        .query_async(&mut store.connection().clone())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_user_has_three_keys_that_expire_with_the_last_session() {
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

    let mut keys: Vec<String> = query(&store, redis::cmd("KEYS").arg(format!("{prefix}*"))).await;
    keys.sort();
    let sessions = format!("{prefix}{{a%7Bb%7D:c}}:s");
    let metadata = format!("{prefix}{{a%7Bb%7D:c}}:m");
    let order = format!("{prefix}{{a%7Bb%7D:c}}:o");
    assert_eq!(keys, [metadata.clone(), order.clone(), sessions.clone()]);
    for key in [&sessions, &metadata, &order] {
        let ttl: i64 = query(&store, redis::cmd("TTL").arg(key)).await;
        assert!((290..=300).contains(&ttl), "{key}: {ttl}");
    }

    // Two fields per session: its record and its last use.
    let fields: i64 = query(&store, redis::cmd("HLEN").arg(&metadata)).await;
    assert_eq!(fields, 6);

    // A rotation that moves the last end moves the keys' expiry with it.
    let later = rotation(0, 0, 1, now, now + 400);
    assert_eq!(
        store.rotate("a{b}:c", &id(1), &later).await.unwrap(),
        Rotated::Rotated
    );
    for key in [&sessions, &metadata, &order] {
        let ttl: i64 = query(&store, redis::cmd("TTL").arg(key)).await;
        assert!((390..=400).contains(&ttl), "{key}: {ttl}");
    }

    // The "not before" mark is a fourth key, living until the time it is kept for.
    store
        .revoke_authenticated_before(
            "a{b}:c",
            from_unix_seconds(now - 1_000),
            from_unix_seconds(now + 50),
        )
        .await
        .unwrap();
    let mark = format!("{prefix}{{a%7Bb%7D:c}}:n");
    let ttl: i64 = query(&store, redis::cmd("TTL").arg(&mark)).await;
    assert!((40..=50).contains(&ttl), "{mark}: {ttl}");

    assert_eq!(store.revoke_all("a{b}:c").await.unwrap(), 3);
    let left: i64 = query(
        &store,
        redis::cmd("EXISTS")
            .arg(&sessions)
            .arg(&metadata)
            .arg(&order),
    )
    .await;
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
    let foreign = rotation(0, 9, 1, now, now + 1000);
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
            .revoke_authenticated_before(
                "alice",
                from_unix_seconds(now - 50),
                from_unix_seconds(now + 600),
            )
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
    let error = store.list("alice", now, usize::MAX).await.unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    let rotation = rotation(0, 1, 2, now, now + 100);
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
    let error = store.list("carol", now, usize::MAX).await.unwrap_err();
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
    expected.last_used_at = from_unix_seconds(now - 20);
    expected.address = Some("203.0.113.7".parse().unwrap());
    expected.user_agent = Some("curl/8.5.0".to_owned());
    expected.refresh = RefreshState {
        generation: 0,
        digest: [0; 32],
        rotated_at: now - 50,
    };
    assert_eq!(
        store.list("alice", now, usize::MAX).await.unwrap()[0],
        expected
    );

    // Its first check that may record a use records it.
    assert!(store.is_active("alice", &id(1), now, 60).await.unwrap());
    expected.last_used_at = from_unix_seconds(now);
    assert_eq!(
        store.list("alice", now, usize::MAX).await.unwrap()[0],
        expected
    );

    // Generation 0 with the all-zero digest is its current refresh state; any real
    // refresh token is foreign to it.
    let rotation = rotation(0, 0, 5, now + 1, now + 200);
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
    expected.expires_at = from_unix_seconds(now + 200);
    expected.last_used_at = from_unix_seconds(now + 1);
    assert_eq!(
        store.list("alice", now, usize::MAX).await.unwrap()[0],
        expected
    );

    let foreign = Rotation {
        digest: [9; 32],
        ..rotation
    };
    assert_eq!(
        store.rotate("alice", &id(2), &foreign).await.unwrap(),
        Rotated::Reused
    );
    assert_eq!(
        store.list("alice", now, usize::MAX).await.unwrap(),
        [expected]
    );
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
