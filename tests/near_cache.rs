//! The near-cache over a real Redis: a logout on one instance reaches the others through
//! the events channel, and the cache never answers when it cannot be kept true (Redis
//! killed, frozen, or only the subscription gone silent).

#![cfg(feature = "redis")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_jwt_auth::store::redis::redis;
use tower_jwt_auth::store::{NearCache, NearCacheConfig, RedisStore, SessionStore};
use tower_jwt_auth::{AuthError, Keys, Login, Sessions};

use support::{RedisServer, TestRedis, unique_prefix};

const TIMEOUT: Duration = Duration::from_millis(300);
const MAX_SILENCE: Duration = Duration::from_millis(400);

/// One instance: a near-cache over its own connection to Redis, its feed subscribed
/// through `feed_url` (Redis itself, or a proxy to it).
async fn instance(url: &str, feed_url: &str, prefix: &str) -> Sessions<NearCache<RedisStore>> {
    let store = RedisStore::connect(url)
        .await
        .unwrap()
        .prefix(prefix)
        .timeout(TIMEOUT)
        .near_cache(
            redis::Client::open(feed_url).unwrap(),
            NearCacheConfig::default().max_silence(MAX_SILENCE),
        );
    Sessions::builder(Keys::hs256([7; 32]).unwrap(), store)
        .build()
        .unwrap()
}

/// Waits until the instance's cache answers (its feed subscribed and heard from).
async fn until_trusted(sessions: &Sessions<NearCache<RedisStore>>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sessions.store().is_trusted() {
        assert!(Instant::now() < deadline, "the feed never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_is_refused_by_the_others_cache() {
    let redis = TestRedis::get();
    let prefix = unique_prefix("near-logout");
    let a = instance(redis.url(), redis.url(), &prefix).await;
    let b = instance(redis.url(), redis.url(), &prefix).await;
    until_trusted(&b).await;
    let (mut first_request, mut revokes) = (0, Vec::new());
    // NEAR_CACHE_TRIALS=1000 for the figure in BENCHMARKS.md.
    let trials: usize = std::env::var("NEAR_CACHE_TRIALS")
        .ok()
        .and_then(|trials| trials.parse().ok())
        .unwrap_or(100);
    for _ in 0..trials {
        let issued = a.issue(Login::new("alice")).await.unwrap();
        // B has the session in its cache.
        b.authenticate_token(&issued.access_token).await.unwrap();
        b.authenticate_token(&issued.access_token).await.unwrap();
        assert!(!b.store().is_empty());
        let revoking = Instant::now();
        a.revoke("alice", &issued.session_id).await.unwrap();
        let logged_out = Instant::now();
        revokes.push(logged_out - revoking);
        let mut requests = 0;
        loop {
            requests += 1;
            match b.authenticate_token(&issued.access_token).await {
                Err(AuthError::InvalidToken(_)) => break,
                Ok(_) => assert!(
                    logged_out.elapsed() < Duration::from_millis(50),
                    "still accepted {:?} after the logout",
                    logged_out.elapsed()
                ),
                Err(other) => panic!("{other:?}"),
            }
            tokio::task::yield_now().await;
        }
        if requests == 1 {
            first_request += 1;
        }
    }
    revokes.sort();
    println!(
        "refused on the first request after the logout: {first_request}/{trials}; \
         the logout took {:?} (median), {:?} (slowest)",
        revokes[revokes.len() / 2],
        revokes[revokes.len() - 1]
    );
    // The logout answers once its event went through the channel (`NearCache` waits for
    // its own heartbeat sent after it): the next request finds the session ended.
    assert!(first_request * 10 >= trials * 9, "{first_request}/{trials}");
    // Logout-all reaches it too.
    let issued = a.issue(Login::new("bob")).await.unwrap();
    b.authenticate_token(&issued.access_token).await.unwrap();
    a.revoke_all("bob").await.unwrap();
    let deadline = Instant::now() + Duration::from_millis(50);
    while b.authenticate_token(&issued.access_token).await.is_ok() {
        assert!(Instant::now() < deadline, "logout-all not seen in 50 ms");
        tokio::task::yield_now().await;
    }
}

/// The answer of instance `sessions` to `token`, and how long it took.
async fn answer(
    sessions: &Sessions<NearCache<RedisStore>>,
    token: &str,
) -> (Result<(), AuthError>, Duration) {
    let started = Instant::now();
    let result = sessions.authenticate_token(token).await.map(|_| ());
    (result, started.elapsed())
}

#[tokio::test]
async fn a_killed_redis_means_503_not_cached_answers_and_the_cache_comes_back() {
    let mut server = RedisServer::start();
    let url = server.url();
    let sessions = instance(&url, &url, &unique_prefix("near-kill")).await;
    until_trusted(&sessions).await;
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    sessions
        .authenticate_token(&issued.access_token)
        .await
        .unwrap();
    assert!(!sessions.store().is_empty());

    server.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (result, took) = answer(&sessions, &issued.access_token).await;
    assert!(
        matches!(result, Err(AuthError::StoreUnavailable(_))),
        "{result:?}"
    );
    assert!(took < TIMEOUT + Duration::from_millis(300), "{took:?}");
    assert!(sessions.store().is_empty());

    // Back (empty, as it persists nothing): the session is gone, and the cache trusts
    // its feed again once it resubscribed.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match answer(&sessions, &issued.access_token).await.0 {
            Err(AuthError::InvalidToken(_)) => break,
            Err(AuthError::StoreUnavailable(_)) => {}
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_trusted(&sessions).await;
}

#[tokio::test]
async fn a_frozen_redis_means_503_within_the_silence_and_timeout() {
    let mut server = RedisServer::start();
    let url = server.url();
    let sessions = instance(&url, &url, &unique_prefix("near-pause")).await;
    until_trusted(&sessions).await;
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    sessions
        .authenticate_token(&issued.access_token)
        .await
        .unwrap();

    server.pause();
    let paused = Instant::now();
    // Answers from memory may go on until the silence is noticed, never longer.
    loop {
        let (result, _) = answer(&sessions, &issued.access_token).await;
        match result {
            Ok(()) => assert!(
                paused.elapsed() < MAX_SILENCE + Duration::from_millis(100),
                "served from memory {:?} into the freeze",
                paused.elapsed()
            ),
            Err(AuthError::StoreUnavailable(_)) => break,
            Err(other) => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!sessions.store().is_trusted());
    server.resume();
    until_trusted(&sessions).await;
    sessions
        .authenticate_token(&issued.access_token)
        .await
        .unwrap();
}

/// A TCP proxy that can be frozen: it keeps its connections open but passes nothing, as a
/// silent network partition does.
async fn freezable_proxy(target: String) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let frozen = Arc::new(AtomicBool::new(false));
    let switch = Arc::clone(&frozen);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&target).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pipe(client_read, server_write, Arc::clone(&switch)));
            tokio::spawn(pipe(server_read, client_write, Arc::clone(&switch)));
        }
    });
    (format!("redis://{address}/"), frozen)
}

async fn pipe(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    frozen: Arc<AtomicBool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
        }
        while frozen.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_subscription_gone_silent_is_distrusted_and_the_store_decides() {
    let redis = TestRedis::get();
    let direct = redis
        .url()
        .trim_start_matches("redis://")
        .trim_end_matches('/');
    let (proxied, frozen) = freezable_proxy(direct.to_owned()).await;
    let prefix = unique_prefix("near-silent");
    let sessions = instance(redis.url(), &proxied, &prefix).await;
    let other = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .prefix(&prefix);
    until_trusted(&sessions).await;
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    sessions
        .authenticate_token(&issued.access_token)
        .await
        .unwrap();

    // The subscription goes silent; Redis itself is fine. A logout elsewhere publishes an
    // event that never arrives.
    frozen.store(true, Ordering::Relaxed);
    other.revoke_all("alice").await.unwrap();
    let frozen_at = Instant::now();
    loop {
        match answer(&sessions, &issued.access_token).await.0 {
            Ok(()) => assert!(
                frozen_at.elapsed() < MAX_SILENCE + Duration::from_millis(100),
                "served from memory {:?} into the silence",
                frozen_at.elapsed()
            ),
            Err(AuthError::InvalidToken(_)) => break,
            Err(other) => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!sessions.store().is_trusted());
    // While silent, every answer comes from Redis: a new login works, uncached.
    let again = sessions.issue(Login::new("alice")).await.unwrap();
    sessions
        .authenticate_token(&again.access_token)
        .await
        .unwrap();
    assert!(sessions.store().is_empty());
    frozen.store(false, Ordering::Relaxed);
    until_trusted(&sessions).await;
}

/// Commands Redis has processed so far (the `INFO` asking counts as one).
async fn commands_processed(connection: &mut redis::aio::ConnectionManager) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(connection)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("total_commands_processed:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn requests_on_a_cached_session_cost_redis_almost_nothing() {
    let server = RedisServer::start();
    let url = server.url();
    let sessions = instance(&url, &url, &unique_prefix("near-commands")).await;
    until_trusted(&sessions).await;
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    sessions
        .authenticate_token(&issued.access_token)
        .await
        .unwrap();
    let mut probe = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let before = commands_processed(&mut probe).await;
    for _ in 0..1_000 {
        sessions
            .authenticate_token(&issued.access_token)
            .await
            .unwrap();
    }
    let after = commands_processed(&mut probe).await;
    // Heartbeats (a PUBLISH every 100 ms here) and the second INFO are all there is.
    let commands = after - before;
    println!("Redis commands for 1,000 authenticated requests: {commands}");
    assert!(commands <= 10, "{commands} commands");
}
