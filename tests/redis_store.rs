//! What only the Redis store must prove beyond the shared contract: its scripts are safe
//! to run twice, its deadline holds whatever the skew between clocks, it refuses a Redis
//! older than it supports, and every ending of a session is published on its events
//! channel.

#![cfg(feature = "redis")]

mod support;

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tower_jwt_auth::SessionId;
use tower_jwt_auth::clock::{from_unix_micros, from_unix_seconds};
use tower_jwt_auth::store::redis::{Ended, redis};
use tower_jwt_auth::store::{
    Created, RedisStore, Rotated, Rotation, Session, SessionLimit, SessionStore, WhenFull,
};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tower_jwt_auth::store::StoreError;

use support::{RedisServer, TestRedis, rotation, unique_prefix, unix_now};

async fn store(redis: &TestRedis, test: &str) -> RedisStore {
    RedisStore::connect(redis.url())
        .await
        .unwrap()
        .prefix(unique_prefix(test))
}

fn id(n: u128) -> SessionId {
    SessionId::from_bytes(n.to_be_bytes())
}

/// Session `n` of `sub`, created `micros` microseconds into the current second.
fn session(n: u128, sub: &str, second: u64, micros: u64) -> Session {
    let mut session = Session::new(
        id(n),
        sub,
        from_unix_micros(second * 1_000_000 + micros),
        from_unix_seconds(second + 3_600),
    );
    session.refresh.digest = [n as u8; 32];
    session
}

#[tokio::test]
async fn the_same_login_twice_is_live_twice_and_another_with_its_id_conflicts() {
    let redis = TestRedis::get();
    let store = store(&redis, "create-twice").await;
    let now = unix_now();
    let mut login = session(1, "alice", now, 5);
    login.last_used_at = from_unix_seconds(now); // uses are kept to the second
    assert_eq!(
        store.create(&login, None).await.unwrap(),
        Created::Live { ended: 0 }
    );
    assert_eq!(
        store.create(&login, None).await.unwrap(),
        Created::Live { ended: 0 }
    );
    let mut other = login.clone();
    other.user_agent = Some("another device".into());
    assert!(store.create(&other, None).await.is_err());
    assert_eq!(store.list("alice", now, 10).await.unwrap(), vec![login]);
}

#[tokio::test]
async fn the_same_rotation_twice_rotates_twice_and_the_retired_token_ends_the_session() {
    let redis = TestRedis::get();
    let store = store(&redis, "rotate-twice").await;
    let now = unix_now();
    store
        .create(&session(1, "alice", now, 0), None)
        .await
        .unwrap();
    let rotation = rotation(0, 1, 2, now, now + 7_200);
    assert_eq!(
        store.rotate("alice", &id(1), &rotation).await.unwrap(),
        Rotated::Rotated
    );
    assert_eq!(
        store.rotate("alice", &id(1), &rotation).await.unwrap(),
        Rotated::Rotated,
        "a retry of the same rotation"
    );
    let listed = store.list("alice", now, 10).await.unwrap();
    assert_eq!(listed[0].refresh.generation, 1);
    assert_eq!(listed[0].expires_at, from_unix_seconds(now + 7_200));
    let stolen = Rotation {
        next_digest: [3; 32],
        ..rotation
    };
    assert_eq!(
        store.rotate("alice", &id(1), &stolen).await.unwrap(),
        Rotated::Reused
    );
    assert!(
        !store
            .is_active("alice", &id(1), now, u64::MAX)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn the_oldest_is_the_first_created_within_one_second() {
    let redis = TestRedis::get();
    let store = store(&redis, "oldest").await;
    let limit = SessionLimit {
        max: 3,
        when_full: WhenFull::EndOldest,
    };
    for round in 0..20u128 {
        let sub = format!("user{round}");
        let now = unix_now();
        // Ids in descending order, so neither id nor second decides.
        for n in 0..5u128 {
            store
                .create(&session(100 - n, &sub, now, n as u64), Some(limit))
                .await
                .unwrap();
        }
        let left: Vec<SessionId> = store
            .list(&sub, now, 10)
            .await
            .unwrap()
            .iter()
            .map(|session| session.id)
            .collect();
        assert_eq!(left, vec![id(98), id(97), id(96)], "round {round}");
    }
}

#[tokio::test]
async fn a_mark_bars_logins_authenticated_before_it_to_the_microsecond() {
    let redis = TestRedis::get();
    let store = store(&redis, "mark").await;
    let now = unix_now();
    let before = from_unix_micros(now * 1_000_000 + 500);
    let keep = SystemTime::now() + Duration::from_secs(60);
    store
        .create(&session(1, "alice", now, 100), None)
        .await
        .unwrap();
    assert_eq!(
        store
            .revoke_authenticated_before("alice", before, keep)
            .await
            .unwrap(),
        1
    );
    // A login authenticated a microsecond before the mark, stored after it.
    let mut late = session(2, "alice", now, 900);
    late.authenticated_at = from_unix_micros(now * 1_000_000 + 499);
    assert_eq!(store.create(&late, None).await.unwrap(), Created::Barred);
    let mut fresh = session(3, "alice", now, 900);
    fresh.authenticated_at = before;
    assert_eq!(
        store.create(&fresh, None).await.unwrap(),
        Created::Live { ended: 0 }
    );
    // The mark never goes down.
    store
        .revoke_authenticated_before("alice", from_unix_micros(1), keep)
        .await
        .unwrap();
    assert_eq!(store.create(&late, None).await.unwrap(), Created::Barred);
}

#[tokio::test]
async fn list_reads_at_most_max_newest_first_created_first() {
    let redis = TestRedis::get();
    let store = store(&redis, "list").await;
    let now = unix_now();
    for n in 0..30u128 {
        store
            .create(&session(n, "alice", now, n as u64), None)
            .await
            .unwrap();
    }
    // An expired one among the newest is skipped.
    let mut expired = session(99, "alice", now, 99);
    expired.expires_at = from_unix_seconds(now + 1);
    store.create(&expired, None).await.unwrap();
    let listed = store.list("alice", now + 2, 4).await.unwrap();
    let ids: Vec<SessionId> = listed.iter().map(|session| session.id).collect();
    assert_eq!(ids, vec![id(26), id(27), id(28), id(29)]);
    assert_eq!(listed[3].created_at, from_unix_micros(now * 1_000_000 + 29));
}

#[tokio::test]
async fn logins_work_whatever_the_skew_between_clocks() {
    let redis = TestRedis::get();
    let prefix = unique_prefix("skew");
    // Redis 150 ms ahead of this machine (half the default timeout), then 150 ms and an
    // hour behind: the deadline follows Redis' own clock.
    for skew in [-150, 150, 3_600_000] {
        let store = RedisStore::connect(redis.url())
            .await
            .unwrap()
            .prefix(&prefix)
            .simulate_clock_skew(skew);
        let now = unix_now();
        let sub = format!("skew{skew}");
        assert_eq!(
            store.create(&session(1, &sub, now, 0), None).await.unwrap(),
            Created::Live { ended: 0 },
            "skew {skew} ms"
        );
        let rotation = rotation(0, 1, 2, now, now + 60);
        assert_eq!(
            store.rotate(&sub, &id(1), &rotation).await.unwrap(),
            Rotated::Rotated,
            "skew {skew} ms"
        );
    }
}

#[tokio::test]
async fn every_ending_is_published() {
    let redis = TestRedis::get();
    let store = store(&redis, "events").await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(store.events_channel()).await.unwrap();
    let mut messages = pubsub.into_on_message();
    let mut next = async || {
        let message = tokio::time::timeout(Duration::from_secs(2), messages.next())
            .await
            .expect("an event within two seconds")
            .unwrap();
        message.get_payload_bytes().to_vec()
    };
    let now = unix_now();
    let limit = Some(SessionLimit {
        max: 1,
        when_full: WhenFull::EndOldest,
    });

    store
        .create(&session(1, "alice", now, 0), limit)
        .await
        .unwrap();
    store
        .create(&session(2, "alice", now, 1), limit)
        .await
        .unwrap();
    assert_eq!(
        Ended::parse(&next().await),
        Some(Ended::Session {
            id: id(1),
            sub: "alice"
        })
    );

    store.revoke("alice", &id(2)).await.unwrap();
    assert_eq!(
        Ended::parse(&next().await),
        Some(Ended::Session {
            id: id(2),
            sub: "alice"
        })
    );

    store
        .create(&session(3, "alice", now, 2), None)
        .await
        .unwrap();
    store.revoke_all("alice").await.unwrap();
    assert_eq!(Ended::parse(&next().await), Some(Ended::User("alice")));

    store
        .create(&session(4, "alice", now, 3), None)
        .await
        .unwrap();
    store
        .revoke_authenticated_before(
            "alice",
            SystemTime::now() + Duration::from_secs(1),
            SystemTime::now() + Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(Ended::parse(&next().await), Some(Ended::User("alice")));

    // (alice's logins are barred now: the reuse is bob's.)
    store
        .create(&session(5, "bob", now, 4), None)
        .await
        .unwrap();
    let reused = rotation(3, 9, 8, now, now + 60);
    assert_eq!(
        store.rotate("bob", &id(5), &reused).await.unwrap(),
        Rotated::Reused
    );
    assert_eq!(
        Ended::parse(&next().await),
        Some(Ended::Session {
            id: id(5),
            sub: "bob"
        })
    );
}

/// The deadline still protects under skew: a login or rotation that Redis runs only after
/// its caller gave up does nothing, whether Redis' clock is ahead of this machine's or
/// behind it (behind, a deadline in this machine's time would be met by every late
/// command; ahead, it would fail every login).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_login_or_rotation_does_nothing_whatever_the_skew() {
    let mut server = RedisServer::start();
    for skew in [3_600_000, 150, -150, -3_600_000] {
        let store = RedisStore::connect(&server.url())
            .await
            .unwrap()
            .prefix(unique_prefix("late-skew"))
            .timeout(Duration::from_millis(200))
            .simulate_clock_skew(skew);
        let now = unix_now();
        // The scripts are loaded and the offset measured before Redis freezes.
        store
            .create(&session(1, "alice", now, 0), None)
            .await
            .unwrap();
        let rotation = rotation(0, 1, 2, now, now + 60);

        server.pause();
        let late_login = store.create(&session(2, "alice", now, 1), None).await;
        assert!(
            matches!(late_login, Err(StoreError::Timeout)),
            "skew {skew} ms: {late_login:?}"
        );
        let late_rotation = store.rotate("alice", &id(1), &rotation).await;
        assert!(
            matches!(late_rotation, Err(StoreError::Timeout)),
            "skew {skew} ms: {late_rotation:?}"
        );
        server.resume();
        // Redis now runs what was queued; give it the time to.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let listed = store.list("alice", now, 10).await.unwrap();
        let ids: Vec<SessionId> = listed.iter().map(|session| session.id).collect();
        assert_eq!(ids, vec![id(1)], "skew {skew} ms: a late login was stored");
        assert_eq!(
            listed[0].refresh.generation, 0,
            "skew {skew} ms: a late rotation took effect"
        );
        // The retry the client makes goes through.
        assert_eq!(
            store.rotate("alice", &id(1), &rotation).await.unwrap(),
            Rotated::Rotated,
            "skew {skew} ms"
        );
    }
}

/// A server that speaks enough of the Redis protocol to connect, and reports `version`.
async fn fake_redis(version: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut read = BufReader::new(read);
                while let Some(command) = read_command(&mut read).await {
                    let reply = match command.first().map(|name| name.to_ascii_uppercase()) {
                        Some(name) if name == "INFO" => {
                            let info = format!("# Server\r\nredis_version:{version}\r\n");
                            format!("${}\r\n{info}\r\n", info.len())
                        }
                        Some(name) if name == "PING" => "+PONG\r\n".to_owned(),
                        Some(name) if name == "TIME" => {
                            let now = SystemTime::now()
                                .duration_since(SystemTime::UNIX_EPOCH)
                                .unwrap();
                            let seconds = now.as_secs().to_string();
                            let micros = now.subsec_micros().to_string();
                            format!(
                                "*2\r\n${}\r\n{seconds}\r\n${}\r\n{micros}\r\n",
                                seconds.len(),
                                micros.len()
                            )
                        }
                        _ => "+OK\r\n".to_owned(),
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("redis://{address}/")
}

/// One command (an array of bulk strings), or `None` at the end of the stream.
async fn read_command(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Vec<String>> {
    let mut line = String::new();
    read.read_line(&mut line).await.ok()?;
    let count: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        line.clear();
        read.read_line(&mut line).await.ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut bytes = vec![0; len + 2];
        read.read_exact(&mut bytes).await.ok()?;
        bytes.truncate(len);
        parts.push(String::from_utf8(bytes).ok()?);
    }
    Some(parts)
}

#[tokio::test]
async fn a_redis_older_than_7_0_is_refused_at_connect_naming_both_versions() {
    let url = fake_redis("6.2.14").await;
    let error = RedisStore::connect(&url).await.unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError::UnsupportedVersion { found, minimum: "7.0" } if found == "6.2.14"
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("7.0") && message.contains("6.2.14"),
        "{message}"
    );
    // The same fake server reporting a supported version is accepted: the refusal above
    // is the version's doing.
    let url = fake_redis("7.2.4").await;
    assert!(RedisStore::connect(&url).await.is_ok());
}

/// A connection that sends every command twice and answers the second reply: what Redis
/// sees when a client re-sends a command whose answer was lost after it ran.
#[derive(Clone)]
struct Twice(ConnectionManager);

impl ConnectionLike for Twice {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let _first = self.0.req_packed_command(cmd).await;
            self.0.req_packed_command(cmd).await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let _first = self.0.req_packed_commands(pipeline, offset, count).await;
            self.0.req_packed_commands(pipeline, offset, count).await
        })
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

/// Each script run twice with the very same arguments (deadline included) answers as the
/// first run did.
#[tokio::test]
async fn every_script_sent_twice_answers_as_the_first_time() {
    let redis = TestRedis::get();
    let client = redis::Client::open(redis.url()).unwrap();
    let store = RedisStore::new(Twice(ConnectionManager::new(client).await.unwrap()))
        .prefix(unique_prefix("twice"));
    let now = unix_now();
    let limit = Some(SessionLimit {
        max: 2,
        when_full: WhenFull::EndOldest,
    });
    for n in 1..=2 {
        assert_eq!(
            store
                .create(&session(n, "alice", now, n as u64), limit)
                .await
                .unwrap(),
            Created::Live { ended: 0 },
            "login {n}"
        );
    }
    // At the limit: the first run ends the oldest, the second finds the session there.
    assert!(matches!(
        store.create(&session(3, "alice", now, 3), limit).await,
        Ok(Created::Live { .. })
    ));
    let ids: Vec<SessionId> = store
        .list("alice", now, 10)
        .await
        .unwrap()
        .iter()
        .map(|session| session.id)
        .collect();
    assert_eq!(ids, vec![id(2), id(3)], "the retry ended no other session");

    let rotation = rotation(0, 3, 4, now, now + 600);
    assert_eq!(
        store.rotate("alice", &id(3), &rotation).await.unwrap(),
        Rotated::Rotated
    );
    let listed = store.list("alice", now, 10).await.unwrap();
    assert_eq!(listed[1].refresh.generation, 1);
    assert_eq!(listed[1].refresh.digest, [4; 32]);

    // A logout sent twice: the session ends (the second run finds it gone already).
    store.revoke("alice", &id(3)).await.unwrap();
    assert!(
        !store
            .is_active("alice", &id(3), now, u64::MAX)
            .await
            .unwrap()
    );
}
