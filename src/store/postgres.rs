//! The PostgreSQL session store (feature `postgres`): several instances share one allowlist
//! in the database they already run.
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_jwt_auth::store::PostgresStore;
//! use tower_jwt_auth::{Keys, Sessions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::builder()
//!     .timeout(Duration::from_millis(500))
//!     .connect("postgres://app@127.0.0.1/app")
//!     .await?;
//! store.migrate().await?; // creates the tables on the first start; a no-op afterwards
//! let sessions = Sessions::builder(Keys::hs256([7; 32])?, store).build()?;
//! # Ok(()) }
//! ```
//!
//! # The request path
//! [`is_active`](SessionStore::is_active), on every request, is one statement by primary
//! key that checks the user and the expiry. Recording the use is a second, conditional
//! `UPDATE`, sent at most once per session and touch interval, never once per request.
//! Statements are prepared once per connection and reused.
//!
//! # Timeouts and outages
//! Every call is bounded by one timeout (1 s by default, see
//! [`timeout`](PostgresStoreBuilder::timeout)): waiting for a pooled connection, and each
//! statement, whose `statement_timeout` is set on every connection the store opens. When the
//! database is down, slow or the pool is exhausted, the call fails with a [`StoreError`]
//! within that time (the middleware answers 503 with `Retry-After`), never a pass and never
//! a hang. Broken connections are dropped and new ones opened on demand, so the store
//! recovers by itself once the database is back.
//!
//! The statement timeout travels in the connection's `options` startup parameter: behind
//! PgBouncer, list `options` in its `ignore_startup_parameters` and set `statement_timeout`
//! on the role instead (the client-side bound holds either way).
//!
//! # Atomicity
//! Writes that count or bar a user's sessions (`create`, `revoke_authenticated_before`)
//! run in a transaction holding a per-user advisory lock, so counting and adding are one
//! step and a "not before" mark is a true barrier. A rotation locks its row (`SELECT ... FOR
//! UPDATE`): of two rotations with one token, one rotates and the other sees the result.
//! Creation order is the `seq` identity column, drawn under the user's lock.
//!
//! # Schema
//! [`migrate`](PostgresStore::migrate) applies the migrations embedded in the crate (with
//! sqlx's migrator, recorded in `_sqlx_migrations`); nothing is created unless it is
//! called. Teams that run their own migrations copy this SQL instead:
//!
//! ```sql
#![doc = include_str!("../../migrations/postgres/20261129000001_jwt_sessions.sql")]
//! ```
//!
//! If the application also runs sqlx migrations of its own on the same database, its
//! migrator sees this crate's version as one it does not know: either copy the SQL above
//! into the application's migrations and do not call `migrate`, or call
//! `set_ignore_missing(true)` on the application's migrator.
//!
//! ## Ending sessions with their user
//! To end every session of a user when the user is deleted, as a foreign key to the
//! application's own `users` table:
//!
//! ```sql
//! -- `sub` holds the users' key as text:
//! ALTER TABLE jwt_sessions
//!     ADD FOREIGN KEY (sub) REFERENCES users (username) ON DELETE CASCADE;
//!
//! -- or, for a uuid (or bigint) key, a generated column of that type:
//! ALTER TABLE jwt_sessions
//!     ADD COLUMN user_id uuid GENERATED ALWAYS AS (sub::uuid) STORED
//!     REFERENCES users (id) ON DELETE CASCADE;
//! ```
//!
//! A deleted user's tokens are then refused at their next request. A login of a user the
//! table does not hold then fails (as [`StoreError::Backend`]).
//!
//! # Ending events and the near-cache
//! Every way this store ends a session (a revoke, a user's sessions ended at once or
//! before a time, the oldest session ended by the session limit, a refresh token reused)
//! sends `pg_notify('jwt_sessions_ended', 'S' || <base64url session id>)` for each ended
//! session, in the same statement as the deletion, and a rotation that brings a session's
//! end closer sends the same in its transaction. `NOTIFY` is transactional: the events
//! leave at commit, and never for a change rolled back. The channel is [`ENDED_CHANNEL`],
//! one per database: stores in other schemas of the same database share it, which only
//! makes a cache forget answers it could have kept (session ids are random).
//!
//! [`near_cache`](PostgresStore::near_cache) listens on that channel and forgets each
//! ended session at once. It also understands `U<sub>` (every session of the user) and
//! treats any other payload (`*`, say) as "forget everything". Payloads starting with `H`
//! are heartbeats. Rows deleted outside the store (by hand, or by a foreign key cascade
//! from the application's users table) are announced too: the second migration adds an
//! `AFTER DELETE` trigger that sends the same event for every live session deleted,
//! whoever deletes it (PostgreSQL merges it with the store's own within a transaction).
//!
//! # Sweeping
//! Expired rows are refused at once and deleted by a background sweep (every minute by
//! default, from the first `create` inside a Tokio runtime, stopping when the store is
//! dropped) in batches of at most 1,000 rows, so it never holds locks for long;
//! [`sweep`](PostgresStore::sweep) does it by hand. Every instance sweeps; the batches skip
//! rows another transaction holds.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres, Transaction};

use super::sql::{self, Existing, Row, Settings, Step, bounded, int, micros};
use super::{
    Created, Liveness, RefreshState, Rotated, Rotation, Session, SessionLimit, SessionStore,
    StoreError, WhenFull,
};
use crate::clock::unix_seconds;
use crate::{Clock, SessionId};

/// The first key of the per-user advisory locks (`pg_advisory_xact_lock(class, hash)`),
/// so that they stay apart from the application's own: "tja" in ASCII.
const LOCK_CLASS: i32 = 0x74_6a_61;

/// The session store on PostgreSQL.
///
/// Clones share the same pool. See the [module docs](crate::store::postgres).
#[derive(Clone, Debug)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    timeout: Duration,
    sweep_every: Duration,
    clock: Clock,
    sweeper_started: AtomicBool,
}

/// Builds a [`PostgresStore`]: timeouts, pool size, sweeping.
///
/// See the [module docs](crate::store::postgres).
#[derive(Debug, Clone)]
#[must_use]
pub struct PostgresStoreBuilder {
    settings: Settings,
}

impl PostgresStore {
    /// A store on the database at `url`, with the defaults (1 s timeout, 10 connections,
    /// swept every minute); fails if the database cannot be reached within the timeout.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder().connect(url).await
    }

    /// A builder, to set the timeout, the pool size or the sweep.
    pub fn builder() -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            settings: Settings::new(10),
        }
    }

    /// Applies the embedded migrations (creating `jwt_sessions` and `jwt_session_marks`),
    /// on a connection of its own with no statement timeout. Several instances may call it
    /// at once: sqlx's migrator takes a lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("migrations/postgres");
        // The application's own migrations may share `_sqlx_migrations`.
        migrator.set_ignore_missing(true);
        let options = self
            .inner
            .pool
            .connect_options()
            .as_ref()
            .clone()
            .options([("statement_timeout", "0")]);
        let mut connection = PgConnection::connect_with(&options)
            .await
            .map_err(store_error)?;
        let applied = migrator.run(&mut connection).await;
        // The connection is spent either way; a failure to close it says nothing new.
        let _ = connection.close().await;
        applied.map_err(|error| match error {
            sqlx::migrate::MigrateError::Execute(error) => store_error(error),
            other => StoreError::Backend(Box::new(other)),
        })
    }

    /// Deletes the sessions expired at `now` (Unix seconds), and the "not before" marks kept
    /// long enough, in batches of at most 1,000 rows (each within the timeout); how many
    /// sessions were deleted.
    pub async fn sweep(&self, now: u64) -> Result<u64, StoreError> {
        self.inner.sweep(now).await
    }

    /// The pool, for the application's own queries (a `SELECT 1` health check, say).
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    fn start_sweeper(&self) {
        sql::start_sweeper(
            &self.inner,
            &self.inner.sweeper_started,
            self.inner.sweep_every,
            |inner: Arc<Inner>| async move {
                let now = inner.clock.now();
                if let Err(error) = inner.sweep(now).await {
                    tracing::warn!(%error, "sweeping expired sessions failed");
                }
            },
        );
    }
}

impl PostgresStoreBuilder {
    /// The bound on every call (default 1 s): waiting for a connection, and each statement
    /// (the connections' `statement_timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The most connections the pool opens (default 10).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.settings.max_connections = max.max(1);
        self
    }

    /// How often the background sweep runs (default every minute).
    pub fn sweep_every(mut self, every: Duration) -> Self {
        self.settings.sweep_every = every;
        self
    }

    /// The clock the background sweep reads (a [`ManualClock`](crate::ManualClock) in
    /// tests); calls take their time from their arguments.
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.settings.clock = clock.into();
        self
    }

    /// Connects to the database at `url` (`postgres://user:password@host:port/database`);
    /// fails if it cannot be reached within the timeout.
    pub async fn connect(self, url: &str) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(store_error)?;
        self.connect_with(options).await
    }

    /// Connects with sqlx's options (a `search_path`, TLS, a socket...); fails if the
    /// database cannot be reached within the timeout.
    pub async fn connect_with(
        self,
        options: PgConnectOptions,
    ) -> Result<PostgresStore, StoreError> {
        let timeout = self.settings.timeout;
        let pool = bounded(timeout, async {
            self.pool_options()
                .connect_with(self.with_timeouts(options))
                .await
                .map_err(store_error)
        })
        .await?;
        Ok(self.build(pool))
    }

    /// A store on the database at `url` that connects on first use, so that an instance
    /// starts while the database is down (and answers 503 until it is up).
    pub fn connect_lazy(self, url: &str) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(store_error)?;
        Ok(self.connect_lazy_with(options))
    }

    /// [`connect_lazy`](Self::connect_lazy) with sqlx's options.
    pub fn connect_lazy_with(self, options: PgConnectOptions) -> PostgresStore {
        let pool = self
            .pool_options()
            .connect_lazy_with(self.with_timeouts(options));
        self.build(pool)
    }

    fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.settings.max_connections)
            .acquire_timeout(self.settings.timeout)
            // Connections are checked when they go back to the pool; checking them again
            // on the way out would cost every request a round trip.
            .test_before_acquire(false)
    }

    fn with_timeouts(&self, options: PgConnectOptions) -> PgConnectOptions {
        let millis = self.settings.timeout.as_millis().max(1);
        options.options([("statement_timeout", format!("{millis}ms"))])
    }

    fn build(self, pool: PgPool) -> PostgresStore {
        PostgresStore {
            inner: Arc::new(Inner {
                pool,
                timeout: self.settings.timeout,
                sweep_every: self.settings.sweep_every,
                clock: self.settings.clock,
                sweeper_started: AtomicBool::new(false),
            }),
        }
    }
}

/// A driver error as a store error: statement and lock timeouts are
/// [`StoreError::Timeout`]; a refused, closed or shutting-down server is
/// [`StoreError::Unavailable`].
fn store_error(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(database) = &error
        && let Some(code) = database.code()
    {
        match &*code {
            // query_canceled (statement_timeout), lock_not_available
            "57014" | "55P03" => return StoreError::Timeout,
            // connection exceptions, operator intervention (shutdown, starting up),
            // too many connections
            code if code.starts_with("08") || code.starts_with("57P") || code == "53300" => {
                return StoreError::Unavailable(Box::new(error));
            }
            _ => {}
        }
    }
    sql::driver_error(error)
}

/// The channel on which every ending is announced (see the [module docs](self)).
pub const ENDED_CHANNEL: &str = "jwt_sessions_ended";

/// `delete` (a `DELETE` on `jwt_sessions` whose parameters start at `$2`) as one statement
/// that also announces each ended session on the channel `$1`, and answers how many ended.
/// The notifications leave with the transaction's commit, never without it.
fn ending(delete: &str) -> String {
    format!(
        "WITH ended AS ({delete} RETURNING id) \
         SELECT count(pg_notify($1, 'S' || translate(encode(id, 'base64'), '+/=', '-_'))::text) \
         FROM ended"
    )
}

/// `SELECT` list of a whole session, the address as text.
const SESSION_COLUMNS: &str = "id, sub, created_at, authenticated_at, expires_at, last_used_at, \
     user_agent, host(address) AS address, refresh_generation, refresh_digest, \
     refresh_rotated_at";

impl Inner {
    async fn liveness(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> Result<Option<Liveness>, StoreError> {
        let now = int(now);
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT expires_at, last_used_at FROM jwt_sessions \
             WHERE id = $1 AND sub = $2 AND expires_at > $3",
        )
        .bind(&sid.as_bytes()[..])
        .bind(sub)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        let Some((expires_at, mut last_used)) = row else {
            return Ok(None);
        };
        let due = now.saturating_sub(int(touch_interval));
        if last_used <= due && last_used < now {
            // Conditional, so that concurrent requests write once.
            sqlx::query(
                "UPDATE jwt_sessions SET last_used_at = $2 \
                 WHERE id = $1 AND last_used_at <= $3 AND last_used_at < $2",
            )
            .bind(&sid.as_bytes()[..])
            .bind(now)
            .bind(due)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
            last_used = now;
        }
        Ok(Some(Liveness {
            until: sql::unsigned(expires_at)?,
            last_used: sql::unsigned(last_used)?,
        }))
    }

    async fn create(
        &self,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> Result<Created, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let created = create_in(&mut tx, session, limit).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(created)
    }

    async fn rotate(
        &self,
        sub: &str,
        sid: &SessionId,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        let id = &sid.as_bytes()[..];
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let row: Option<(i64, i64, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT expires_at, refresh_generation, refresh_digest, refresh_rotated_at \
             FROM jwt_sessions WHERE id = $1 AND sub = $2 FOR UPDATE",
        )
        .bind(id)
        .bind(sub)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some((expires_at, generation, digest, rotated_at)) = row else {
            return Ok(Rotated::Unknown);
        };
        if int(rotation.now) >= expires_at {
            return Ok(Rotated::Unknown);
        }
        let state = RefreshState {
            generation: sql::from_generation(generation),
            digest: sql::digest(digest)?,
            rotated_at: sql::unsigned(rotated_at)?,
        };
        let rotated = match sql::step(&state, rotation) {
            Step::Advance => {
                if int(rotation.expires_at) < expires_at {
                    // The end comes closer: caches must not keep the later one.
                    sqlx::query("SELECT pg_notify($1, $2)::text")
                        .bind(ENDED_CHANNEL)
                        .bind(format!("S{sid}"))
                        .execute(&mut *tx)
                        .await
                        .map_err(store_error)?;
                }
                sqlx::query(
                    "UPDATE jwt_sessions SET refresh_generation = $2, refresh_digest = $3, \
                     refresh_rotated_at = $4, expires_at = $5, \
                     last_used_at = GREATEST(last_used_at, $4) WHERE id = $1",
                )
                .bind(id)
                .bind(sql::generation(state.generation.saturating_add(1)))
                .bind(&rotation.next_digest[..])
                .bind(int(rotation.now))
                .bind(int(rotation.expires_at))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
                Rotated::Rotated
            }
            Step::Repeated => Rotated::Rotated,
            Step::Forgiven => Rotated::Forgiven,
            Step::Reused => {
                let _: i64 = sqlx::query_scalar(&ending("DELETE FROM jwt_sessions WHERE id = $2"))
                    .bind(ENDED_CHANNEL)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(store_error)?;
                Rotated::Reused
            }
        };
        tx.commit().await.map_err(store_error)?;
        Ok(rotated)
    }

    async fn revoke(&self, sub: &str, sid: &SessionId) -> Result<bool, StoreError> {
        let ended: i64 = sqlx::query_scalar(&ending(
            "DELETE FROM jwt_sessions WHERE id = $2 AND sub = $3",
        ))
        .bind(ENDED_CHANNEL)
        .bind(&sid.as_bytes()[..])
        .bind(sub)
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(ended > 0)
    }

    async fn revoke_all(&self, sub: &str) -> Result<u64, StoreError> {
        let ended: i64 = sqlx::query_scalar(&ending("DELETE FROM jwt_sessions WHERE sub = $2"))
            .bind(ENDED_CHANNEL)
            .bind(sub)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        sql::unsigned(ended)
    }

    async fn revoke_authenticated_before(
        &self,
        sub: &str,
        before: SystemTime,
        keep_until: SystemTime,
    ) -> Result<u64, StoreError> {
        let before = micros(before);
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        lock_user(&mut tx, sub).await?;
        sqlx::query(
            "INSERT INTO jwt_session_marks (sub, not_before, keep_until) VALUES ($1, $2, $3) \
             ON CONFLICT (sub) DO UPDATE SET \
             not_before = GREATEST(jwt_session_marks.not_before, EXCLUDED.not_before), \
             keep_until = GREATEST(jwt_session_marks.keep_until, EXCLUDED.keep_until)",
        )
        .bind(sub)
        .bind(before)
        .bind(micros(keep_until))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        let ended: i64 = sqlx::query_scalar(&ending(
            "DELETE FROM jwt_sessions WHERE sub = $2 AND authenticated_at < $3",
        ))
        .bind(ENDED_CHANNEL)
        .bind(sub)
        .bind(before)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        sql::unsigned(ended)
    }

    async fn list(&self, sub: &str, now: u64, max: usize) -> Result<Vec<Session>, StoreError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM jwt_sessions \
             WHERE sub = $1 AND expires_at > $2 ORDER BY seq DESC LIMIT $3"
        ))
        .bind(sub)
        .bind(int(now))
        .bind(max)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let mut sessions = rows
            .into_iter()
            .map(Row::into_session)
            .collect::<Result<Vec<_>, _>>()?;
        sessions.reverse();
        Ok(sessions)
    }

    async fn sweep(&self, now: u64) -> Result<u64, StoreError> {
        let now_micros = int(now.saturating_mul(1_000_000));
        let now = int(now);
        let mut swept = 0;
        loop {
            let done = bounded(self.timeout, async {
                sqlx::query(
                    "DELETE FROM jwt_sessions WHERE id IN (SELECT id FROM jwt_sessions \
                     WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                )
                .bind(now)
                .bind(sql::SWEEP_BATCH)
                .execute(&self.pool)
                .await
                .map_err(store_error)
            })
            .await?;
            swept += done.rows_affected();
            if done.rows_affected() < sql::SWEEP_BATCH as u64 {
                break;
            }
        }
        loop {
            let done = bounded(self.timeout, async {
                sqlx::query(
                    "DELETE FROM jwt_session_marks WHERE sub IN (SELECT sub \
                     FROM jwt_session_marks WHERE keep_until <= $1 LIMIT $2 \
                     FOR UPDATE SKIP LOCKED)",
                )
                .bind(now_micros)
                .bind(sql::SWEEP_BATCH)
                .execute(&self.pool)
                .await
                .map_err(store_error)
            })
            .await?;
            if done.rows_affected() < sql::SWEEP_BATCH as u64 {
                break;
            }
        }
        Ok(swept)
    }
}

/// Holds the per-user lock until the transaction ends.
async fn lock_user(tx: &mut Transaction<'_, Postgres>, sub: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(LOCK_CLASS)
        .bind(sub)
        .execute(&mut **tx)
        .await
        .map_err(store_error)?;
    Ok(())
}

/// `create`'s steps, inside its transaction.
async fn create_in(
    tx: &mut Transaction<'_, Postgres>,
    session: &Session,
    limit: Option<SessionLimit>,
) -> Result<Created, StoreError> {
    let sub = session.sub.as_str();
    let id = &session.id.as_bytes()[..];
    let now = int(unix_seconds(session.created_at));
    lock_user(tx, sub).await?;
    sqlx::query("DELETE FROM jwt_sessions WHERE sub = $1 AND expires_at <= $2")
        .bind(sub)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(store_error)?;
    let existing: Option<Existing> = sqlx::query_as(
        "SELECT sub, created_at, authenticated_at, refresh_generation, refresh_digest \
         FROM jwt_sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(store_error)?;
    if let Some(existing) = existing {
        return if existing.is_creation_of(session) {
            Ok(Created::Live { ended: 0 })
        } else {
            Err(StoreError::Conflict)
        };
    }
    let barred: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jwt_session_marks \
         WHERE sub = $1 AND keep_until > $2 AND not_before > $3)",
    )
    .bind(sub)
    .bind(micros(session.created_at))
    .bind(micros(session.authenticated_at))
    .fetch_one(&mut **tx)
    .await
    .map_err(store_error)?;
    if barred {
        return Ok(Created::Barred);
    }
    let mut ended = 0;
    if let Some(limit) = limit {
        let max = i64::from(limit.max.max(1));
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM jwt_sessions WHERE sub = $1")
            .bind(sub)
            .fetch_one(&mut **tx)
            .await
            .map_err(store_error)?;
        if count >= max {
            if limit.when_full == WhenFull::RefuseNew {
                return Ok(Created::LimitReached);
            }
            let done: i64 = sqlx::query_scalar(&ending(
                "DELETE FROM jwt_sessions WHERE id IN \
                 (SELECT id FROM jwt_sessions WHERE sub = $2 ORDER BY seq LIMIT $3)",
            ))
            .bind(ENDED_CHANNEL)
            .bind(sub)
            .bind(count + 1 - max)
            .fetch_one(&mut **tx)
            .await
            .map_err(store_error)?;
            ended = u32::try_from(done).unwrap_or(u32::MAX);
        }
    }
    let inserted = sqlx::query(
        "INSERT INTO jwt_sessions (id, sub, created_at, authenticated_at, expires_at, \
         last_used_at, user_agent, address, refresh_generation, refresh_digest, \
         refresh_rotated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::inet, $9, $10, $11) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(sub)
    .bind(micros(session.created_at))
    .bind(micros(session.authenticated_at))
    .bind(int(unix_seconds(session.expires_at)))
    .bind(int(unix_seconds(session.last_used_at)))
    .bind(session.user_agent.as_deref())
    .bind(session.address.map(|address| address.to_string()))
    .bind(sql::generation(session.refresh.generation))
    .bind(&session.refresh.digest[..])
    .bind(int(session.refresh.rotated_at))
    .execute(&mut **tx)
    .await
    .map_err(store_error)?;
    if inserted.rows_affected() == 0 {
        // Another user's session took the id meanwhile.
        return Err(StoreError::Conflict);
    }
    Ok(Created::Live { ended })
}

impl SessionStore for PostgresStore {
    type IsActive = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>>;

    async fn create(
        &self,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> Result<Created, StoreError> {
        self.start_sweeper();
        bounded(self.inner.timeout, self.inner.create(session, limit)).await
    }

    fn is_active(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> Self::IsActive {
        let inner = Arc::clone(&self.inner);
        let sub = sub.to_owned();
        let sid = *sid;
        Box::pin(async move {
            let liveness = bounded(
                inner.timeout,
                inner.liveness(&sub, &sid, now, touch_interval),
            )
            .await?;
            Ok(liveness.is_some())
        })
    }

    async fn liveness(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> Result<Option<Liveness>, StoreError> {
        bounded(
            self.inner.timeout,
            self.inner.liveness(sub, sid, now, touch_interval),
        )
        .await
    }

    async fn rotate(
        &self,
        sub: &str,
        sid: &SessionId,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        bounded(self.inner.timeout, self.inner.rotate(sub, sid, rotation)).await
    }

    async fn revoke(&self, sub: &str, sid: &SessionId) -> Result<bool, StoreError> {
        bounded(self.inner.timeout, self.inner.revoke(sub, sid)).await
    }

    async fn revoke_all(&self, sub: &str) -> Result<u64, StoreError> {
        bounded(self.inner.timeout, self.inner.revoke_all(sub)).await
    }

    async fn revoke_authenticated_before(
        &self,
        sub: &str,
        before: SystemTime,
        keep_until: SystemTime,
    ) -> Result<u64, StoreError> {
        bounded(
            self.inner.timeout,
            self.inner
                .revoke_authenticated_before(sub, before, keep_until),
        )
        .await
    }

    async fn list(&self, sub: &str, now: u64, max: usize) -> Result<Vec<Session>, StoreError> {
        bounded(self.inner.timeout, self.inner.list(sub, now, max)).await
    }
}
