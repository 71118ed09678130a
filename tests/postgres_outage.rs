//! The PostgreSQL store when the database fails: a server of the tests' own (a cluster in a
//! temporary directory, on a free port, run as the `postgres` system user) is stopped and
//! started again; a table lock makes it slow; the pool runs dry. Every call fails with a
//! store error within the timeout (the middleware answers 503 with `Retry-After`), never a
//! pass and never a hang, and the store recovers by itself.

mod sql_support;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use sqlx::Connection;
use tower::{ServiceBuilder, ServiceExt};
use tower_jwt_auth::store::{PostgresStore, SessionStore, StoreError};
use tower_jwt_auth::{Keys, Login, Sessions};

use sql_support::{PgSchema, PgServer, unix_now};

const TIMEOUT: Duration = Duration::from_millis(500);
/// What a failing call may take beyond the timeout (scheduling on a busy machine).
const SLACK: Duration = Duration::from_millis(400);

/// The status and `Retry-After` the middleware answers `token` with.
async fn answer(sessions: &Sessions<PostgresStore>, token: &str) -> (StatusCode, Option<String>) {
    let app =
        ServiceBuilder::new()
            .layer(sessions.layer())
            .service_fn(|_: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
            });
    let request = Request::get("/me")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap().to_owned());
    (response.status(), retry_after)
}

/// Runs `call`, asserting it fails with a store error within the timeout.
async fn fails_in_time<T: std::fmt::Debug, E>(
    what: &str,
    call: impl Future<Output = Result<T, E>>,
) -> E {
    let started = Instant::now();
    let result = call.await;
    let took = started.elapsed();
    assert!(
        took <= TIMEOUT + SLACK,
        "{what} took {took:?}, beyond the {TIMEOUT:?} timeout"
    );
    match result {
        Err(error) => error,
        Ok(value) => panic!("{what} answered {value:?} with the database down"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_is_a_503_in_time_and_the_store_recovers() {
    let server = PgServer::start("outage");
    let store = server.store(TIMEOUT).await;
    let sessions = Sessions::builder(Keys::hs256([7; 32]).unwrap(), store.clone())
        .build()
        .unwrap();
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    assert_eq!(
        answer(&sessions, &issued.access_token).await.0,
        StatusCode::OK
    );

    server.stop();
    let now = unix_now();
    for round in 0..3 {
        let (status, retry_after) = answer(&sessions, &issued.access_token).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "round {round}");
        assert!(retry_after.is_some(), "503 without Retry-After");
        fails_in_time(
            "is_active",
            store.is_active("alice", &issued.session_id, now, 60),
        )
        .await;
        fails_in_time("login", sessions.issue(Login::new("alice"))).await;
        fails_in_time("revoke_all", store.revoke_all("alice")).await;
        fails_in_time("list", store.list("alice", now, 10)).await;
    }
    // Not a single call let the token through, and a 503 came within the timeout.
    let started = Instant::now();
    assert_eq!(
        answer(&sessions, &issued.access_token).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(started.elapsed() <= TIMEOUT + SLACK);

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match answer(&sessions, &issued.access_token).await.0 {
            StatusCode::OK => break,
            StatusCode::SERVICE_UNAVAILABLE if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("after the restart: {other}"),
        }
    }
    // Everything works again, on the same data.
    let second = sessions.issue(Login::new("alice")).await.unwrap();
    assert_eq!(sessions.revoke_all("alice").await.unwrap(), 2);
    assert_eq!(
        answer(&sessions, &second.access_token).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_never_answered_is_a_503_until_it_does() {
    let server = PgServer::start("lazy");
    server.stop();
    // An instance starting while its database is down.
    let store = PostgresStore::builder()
        .timeout(TIMEOUT)
        .connect_lazy(&server.url())
        .unwrap();
    let sessions = Sessions::builder(Keys::hs256([7; 32]).unwrap(), store.clone())
        .build()
        .unwrap();
    fails_in_time("login", sessions.issue(Login::new("alice"))).await;
    server.restart();
    store.migrate().await.unwrap();
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    assert_eq!(
        answer(&sessions, &issued.access_token).await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_is_an_error_within_the_acquire_timeout() {
    let schema = PgSchema::new("exhausted").await;
    let store = schema
        .store_with(PostgresStore::builder().timeout(TIMEOUT).max_connections(2))
        .await;
    let now = unix_now();
    let sessions = Sessions::builder(Keys::hs256([7; 32]).unwrap(), store.clone())
        .build()
        .unwrap();
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    // Something else holds every connection.
    let held = [
        store.pool().acquire().await.unwrap(),
        store.pool().acquire().await.unwrap(),
    ];
    let error = fails_in_time(
        "is_active",
        store.is_active("alice", &issued.session_id, now, 60),
    )
    .await;
    assert!(matches!(error, StoreError::Timeout), "{error:?}");
    let (status, retry_after) = answer(&sessions, &issued.access_token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after.is_some());
    drop(held);
    assert_eq!(
        answer(&sessions, &issued.access_token).await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_database_is_a_timeout_not_a_hang() {
    let schema = PgSchema::new("slow").await;
    let store = schema
        .store_with(PostgresStore::builder().timeout(TIMEOUT))
        .await;
    let now = unix_now();
    let sessions = Sessions::builder(Keys::hs256([7; 32]).unwrap(), store.clone())
        .build()
        .unwrap();
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    // Another client locks the table: every statement on it waits.
    let mut locker = sqlx::PgConnection::connect_with(&schema.options())
        .await
        .unwrap();
    let mut lock = locker.begin().await.unwrap();
    sqlx::query("LOCK TABLE jwt_sessions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let error = fails_in_time(
        "is_active",
        store.is_active("alice", &issued.session_id, now, 60),
    )
    .await;
    assert!(matches!(error, StoreError::Timeout), "{error:?}");
    fails_in_time("login", sessions.issue(Login::new("alice"))).await;
    assert_eq!(
        answer(&sessions, &issued.access_token).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    lock.rollback().await.unwrap();
    assert_eq!(
        answer(&sessions, &issued.access_token).await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_is_a_timeout_and_the_store_recovers_when_it_thaws() {
    let server = PgServer::start("frozen");
    let store = PostgresStore::builder()
        .timeout(TIMEOUT)
        .connect(&server.url())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let sessions = Sessions::builder(Keys::hs256([7; 32]).unwrap(), store.clone())
        .build()
        .unwrap();
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    assert_eq!(
        answer(&sessions, &issued.access_token).await.0,
        StatusCode::OK
    );

    // Connections stay open but nothing answers: only the client's bound can end a call.
    server.signal("-STOP");
    let now = unix_now();
    let error = fails_in_time(
        "is_active",
        store.is_active("alice", &issued.session_id, now, 60),
    )
    .await;
    assert!(matches!(error, StoreError::Timeout), "{error:?}");
    fails_in_time("login", sessions.issue(Login::new("alice"))).await;
    assert_eq!(
        answer(&sessions, &issued.access_token).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    server.signal("-CONT");

    let deadline = Instant::now() + Duration::from_secs(10);
    while answer(&sessions, &issued.access_token).await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "no recovery after the thaw");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
