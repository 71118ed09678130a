//! The near-cache over a real PostgreSQL: a logout on one instance reaches the others
//! through `LISTEN`/`NOTIFY`, cached answers cost the database nothing, and the cache never
//! answers when it cannot be kept true (the database stopped). Runs against `DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`) in a schema of each test's own, and
//! against a server of the tests' own for the outage.

mod sql_support;

use std::time::{Duration, Instant};

use tower_jwt_auth::store::{NearCache, NearCacheConfig, PostgresStore, WhenFull};
use tower_jwt_auth::{AuthError, Keys, Login, Sessions};

use sql_support::{PgSchema, PgServer};

const TIMEOUT: Duration = Duration::from_millis(300);
const MAX_SILENCE: Duration = Duration::from_millis(400);

fn instance(store: PostgresStore, max_silence: Duration) -> Sessions<NearCache<PostgresStore>> {
    let store = store.near_cache(NearCacheConfig::default().max_silence(max_silence));
    Sessions::builder(Keys::hs256([7; 32]).unwrap(), store)
        .session_limit(2, WhenFull::EndOldest)
        .build()
        .unwrap()
}

/// Waits until the instance's cache answers (its feed listening and heard from).
async fn until_trusted(sessions: &Sessions<NearCache<PostgresStore>>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sessions.store().is_trusted() {
        assert!(Instant::now() < deadline, "the feed never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `b` refuses `token`, at most 50 ms; how long it took, and whether the
/// first request was refused.
async fn refused_within_50ms(
    b: &Sessions<NearCache<PostgresStore>>,
    token: &str,
) -> (Duration, bool) {
    let ended = Instant::now();
    let mut first = true;
    loop {
        match b.authenticate_token(token).await {
            Err(AuthError::InvalidToken(_)) => return (ended.elapsed(), first),
            Ok(_) => assert!(
                ended.elapsed() < Duration::from_millis(50),
                "still accepted {:?} after the ending",
                ended.elapsed()
            ),
            Err(other) => panic!("{other:?}"),
        }
        first = false;
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ending_on_one_instance_is_refused_by_the_others_cache() {
    let schema = PgSchema::new("pg-near-logout").await;
    let a = instance(schema.store().await, MAX_SILENCE);
    let b = instance(schema.store().await, MAX_SILENCE);
    until_trusted(&b).await;
    let (mut slowest, mut first_request, trials) = (Duration::ZERO, 0, 30);
    for _ in 0..trials {
        let issued = a.issue(Login::new("alice")).await.unwrap();
        // B has the session in its cache.
        b.authenticate_token(&issued.access_token).await.unwrap();
        b.authenticate_token(&issued.access_token).await.unwrap();
        assert!(!b.store().is_empty());
        a.revoke("alice", &issued.session_id).await.unwrap();
        let (took, first) = refused_within_50ms(&b, &issued.access_token).await;
        slowest = slowest.max(took);
        first_request += usize::from(first);
    }
    println!(
        "refused on the first request after the logout: {first_request}/{trials}, \
         slowest {slowest:?}"
    );
    // The logout answers once its event went through the channel (`NearCache` waits for
    // its own heartbeat sent after it): the next request finds the session ended.
    assert!(first_request * 10 >= trials * 9, "{first_request}/{trials}");

    // Logout everywhere.
    let issued = a.issue(Login::new("bob")).await.unwrap();
    b.authenticate_token(&issued.access_token).await.unwrap();
    a.revoke_all("bob").await.unwrap();
    refused_within_50ms(&b, &issued.access_token).await;

    // The limit ends the oldest session.
    let first = a.issue(Login::new("carol")).await.unwrap();
    b.authenticate_token(&first.access_token).await.unwrap();
    a.issue(Login::new("carol")).await.unwrap();
    b.authenticate_token(&first.access_token).await.unwrap();
    a.issue(Login::new("carol")).await.unwrap();
    refused_within_50ms(&b, &first.access_token).await;

    // A refresh token used twice ends its session.
    let issued = a.issue(Login::new("dave")).await.unwrap();
    b.authenticate_token(&issued.access_token).await.unwrap();
    let second = a.refresh(&issued.refresh_token).await.unwrap();
    a.refresh(&second.refresh_token).await.unwrap();
    b.authenticate_token(&issued.access_token).await.unwrap();
    assert!(a.refresh(&issued.refresh_token).await.is_err());
    refused_within_50ms(&b, &issued.access_token).await;

    // Rows deleted outside the store (by hand, or by a cascade from the users table) are
    // announced by the table's trigger.
    let issued = a.issue(Login::new("erin")).await.unwrap();
    b.authenticate_token(&issued.access_token).await.unwrap();
    sqlx::query("DELETE FROM jwt_sessions WHERE sub = 'erin'")
        .execute(a.store().inner().pool())
        .await
        .unwrap();
    refused_within_50ms(&b, &issued.access_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_a_cached_session_do_not_reach_the_database() {
    let schema = PgSchema::new("pg-near-quiet").await;
    let store = schema
        .store_with(PostgresStore::builder().timeout(TIMEOUT).max_connections(1))
        .await;
    let pool = store.pool().clone();
    // A long silence allowed: the heartbeats wait for the pool held below.
    let sessions = instance(store, Duration::from_secs(5));
    until_trusted(&sessions).await;
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    sessions
        .authenticate_token(&issued.access_token)
        .await
        .unwrap();
    assert_eq!(sessions.store().len(), 1);

    // The pool's only connection is held: any statement would wait for it and fail.
    let held = pool.acquire().await.unwrap();
    let started = Instant::now();
    for _ in 0..1_000 {
        sessions
            .authenticate_token(&issued.access_token)
            .await
            .unwrap();
    }
    let took = started.elapsed();
    assert!(took < TIMEOUT, "1,000 cached requests took {took:?}");
    drop(held);
    println!("1,000 cached requests, no connection available: {took:?}");

    // A session the cache does not hold still goes to the database.
    let other = sessions.issue(Login::new("bob")).await.unwrap();
    let held = pool.acquire().await.unwrap();
    let result = sessions.authenticate_token(&other.access_token).await;
    assert!(
        matches!(result, Err(AuthError::StoreUnavailable(_))),
        "{result:?}"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_distrusts_the_cache_and_calls_fail() {
    let server = PgServer::start("pg-near-outage");
    let store = server.store(TIMEOUT).await;
    let sessions = instance(store, MAX_SILENCE);
    until_trusted(&sessions).await;
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    sessions
        .authenticate_token(&issued.access_token)
        .await
        .unwrap();
    assert!(!sessions.store().is_empty());

    server.stop();
    let stopped = Instant::now();
    while sessions.store().is_trusted() {
        assert!(
            stopped.elapsed() < MAX_SILENCE + Duration::from_millis(200),
            "still trusted {:?} after the stop",
            stopped.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(sessions.store().is_empty());
    for _ in 0..3 {
        let started = Instant::now();
        let result = sessions.authenticate_token(&issued.access_token).await;
        assert!(
            matches!(result, Err(AuthError::StoreUnavailable(_))),
            "{result:?}"
        );
        assert!(started.elapsed() < TIMEOUT + Duration::from_millis(400));
    }

    // Back, with the same data: the session answers again and the cache listens again.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match sessions.authenticate_token(&issued.access_token).await {
            Ok(_) => break,
            Err(AuthError::StoreUnavailable(_)) => {}
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_trusted(&sessions).await;
}
