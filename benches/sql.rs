//! What the layer costs on the SQL stores, beside the database round trip it cannot avoid.
//!
//! - `auth/layer_hs256_memory`: a request through the layer, memory store of 10,000
//!   sessions (the same case as in the `auth` bench, measured again for ratios in one run);
//! - `auth/select_1_postgres`: a bare `SELECT 1` on the PostgreSQL store's own pool;
//! - `auth/layer_hs256_postgres`: a request through the layer, PostgreSQL store holding
//!   10,000 sessions;
//! - `auth/select_1_sqlite`: a bare `SELECT 1` on a pool like the store's readers, on the
//!   same SQLite file;
//! - `auth/layer_hs256_sqlite`: a request through the layer, SQLite store of 10,000 sessions.
//!
//! Each iteration presents the token of another live session (1,000 of them spread over the
//! store). PostgreSQL is the one at `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), in a schema of the run's own, dropped after.
//!
//! After the timings, the run fills a fresh schema with 100,000 sessions and prints the
//! growth of `pg_total_relation_size` (table, indexes and TOAST) per session.
//!
//! `cargo bench --bench sql --features postgres,sqlite`

use std::str::FromStr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Connection, PgConnection};
use tower_jwt_auth::clock::from_unix_seconds;
use tower_jwt_auth::store::{MemoryStore, PostgresStore, Session, SessionStore, SqliteStore};
use tower_jwt_auth::{Keys, Login, SessionId, Sessions};

mod traffic;
use traffic::bench_layer;

const SECRET: &[u8] = b"a benchmark secret of 32 bytes!!";
const TOTAL: usize = 10_000;
const SAMPLED: usize = 1_000;
const SIZED: usize = 100_000;

fn database_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => url,
        _ => "postgres://postgres@127.0.0.1:5432/test".into(),
    }
}

/// A schema of the run's own; dropped by [`drop_schema`].
async fn schema(name: &str) -> PgConnectOptions {
    let url = database_url();
    let mut connection = PgConnection::connect(&url)
        .await
        .expect("the SQL bench needs PostgreSQL: set DATABASE_URL");
    for statement in [
        format!("DROP SCHEMA IF EXISTS {name} CASCADE"),
        format!("CREATE SCHEMA {name}"),
    ] {
        sqlx::query(&statement)
            .execute(&mut connection)
            .await
            .unwrap();
    }
    PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", name)])
}

async fn drop_schema(name: &str) {
    let mut connection = PgConnection::connect(&database_url()).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
        .execute(&mut connection)
        .await
        .unwrap();
}

/// A session like a browser login's: a user agent, an address, a refresh digest.
fn session(n: usize, expires_at: u64) -> Session {
    let mut id = [0; 16];
    id[..8].copy_from_slice(&(n as u64).to_le_bytes());
    id[8..].copy_from_slice(&0x5eed_u64.to_le_bytes());
    let now = expires_at - 3_600;
    let mut session = Session::new(
        SessionId::from_bytes(id),
        format!("user{n}"),
        from_unix_seconds(now),
        from_unix_seconds(expires_at),
    );
    session.user_agent = Some(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/120.0 Safari/537.36"
            .into(),
    );
    session.address = Some(std::net::Ipv4Addr::new(192, 0, 2, (n % 250) as u8).into());
    session.refresh.digest = [n as u8; 32];
    session
}

/// Fills `store` with `TOTAL` sessions: every `TOTAL / SAMPLED`-th issued with a token, the
/// others written to the store directly.
async fn populate<St: SessionStore>(store: St) -> (Sessions<St>, Vec<String>) {
    let sessions = Sessions::builder(Keys::hs256(SECRET).unwrap(), store)
        .build()
        .unwrap();
    let every = TOTAL / SAMPLED;
    let expires = jsonwebtoken::get_current_timestamp() + 3_600;
    let mut tokens = Vec::with_capacity(SAMPLED);
    for n in 0..TOTAL {
        if n % every == 0 {
            let issued = sessions
                .issue(Login::new(format!("user{n}")))
                .await
                .unwrap();
            tokens.push(issued.access_token);
        } else {
            sessions
                .store()
                .create(&session(n, expires), None)
                .await
                .unwrap();
        }
    }
    (sessions, tokens)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let name = format!("tja_bench_{}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();

    let (memory, memory_tokens) = runtime.block_on(populate(MemoryStore::new()));
    let (postgres, postgres_tokens) = runtime.block_on(async {
        let store = PostgresStore::builder()
            .connect_with(schema(&name).await)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        populate(store).await
    });
    let (sqlite, sqlite_tokens) = runtime.block_on(async {
        let store = SqliteStore::open(dir.join("sessions.db")).await.unwrap();
        store.migrate().await.unwrap();
        populate(store).await
    });
    let sqlite_pool = runtime.block_on(
        SqlitePoolOptions::new()
            // As the store's readers: four connections, no ping before each use.
            .max_connections(4)
            .test_before_acquire(false)
            .connect(&format!("sqlite://{}", dir.join("sessions.db").display())),
    );
    let sqlite_pool = sqlite_pool.unwrap();

    let mut group = c.benchmark_group("auth");
    bench_layer(
        &mut group,
        &runtime,
        "layer_hs256_memory",
        &memory,
        &memory_tokens,
    );
    let pool = postgres.store().pool().clone();
    group.bench_function("select_1_postgres", |b| {
        b.to_async(&runtime).iter(|| async {
            sqlx::query("SELECT 1").execute(&pool).await.unwrap();
        })
    });
    bench_layer(
        &mut group,
        &runtime,
        "layer_hs256_postgres",
        &postgres,
        &postgres_tokens,
    );
    group.bench_function("select_1_sqlite", |b| {
        b.to_async(&runtime).iter(|| async {
            sqlx::query("SELECT 1").execute(&sqlite_pool).await.unwrap();
        })
    });
    bench_layer(
        &mut group,
        &runtime,
        "layer_hs256_sqlite",
        &sqlite,
        &sqlite_tokens,
    );
    group.finish();

    runtime.block_on(async {
        drop_schema(&name).await;
        bytes_per_session(&format!("{name}_size")).await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fills a fresh schema with `SIZED` sessions (one per user, as logins would) and prints
/// how much `pg_total_relation_size` grew per session.
async fn bytes_per_session(name: &str) {
    let options = schema(name).await;
    let store = PostgresStore::builder()
        .timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let size = || async {
        let bytes: i64 = sqlx::query_scalar(
            "SELECT pg_total_relation_size('jwt_sessions') \
             + pg_total_relation_size('jwt_session_marks')",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        bytes
    };
    let before = size().await;
    let expires = jsonwebtoken::get_current_timestamp() + 3_600;
    let started = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in (worker..SIZED).step_by(8) {
                    store.create(&session(n, expires), None).await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let took = started.elapsed();
    let after = size().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM jwt_sessions")
        .fetch_one(store.pool())
        .await
        .unwrap();
    println!(
        "postgres: {rows} sessions, pg_total_relation_size {before} -> {after} bytes: \
         {:.0} bytes per session (created in {took:.1?}, {:.0} creates/s)",
        (after - before) as f64 / rows as f64,
        rows as f64 / took.as_secs_f64()
    );
    drop(store);
    drop_schema(name).await;
}

criterion_group!(benches, bench);
criterion_main!(benches);
