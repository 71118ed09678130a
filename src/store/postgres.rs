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

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{Connection, PgConnection, Postgres, Transaction};

use super::StoreError;
use super::sql::{self, Settings, bounded};
use super::sql_tables::{Dialect, Tables};
use crate::{Clock, SessionId};

/// The first key of the per-user advisory locks (`pg_advisory_xact_lock(class, hash)`),
/// so that they stay apart from the application's own: "tja" in ASCII.
const LOCK_CLASS: i32 = 0x74_6a_61;

/// The session store on PostgreSQL.
///
/// Clones share the same pool. See the [module docs](crate::store::postgres).
#[derive(Clone, Debug)]
pub struct PostgresStore {
    inner: Arc<Tables<Pg>>,
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
            .readers
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
        &self.inner.readers
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
            inner: Tables::new(pool.clone(), pool, &self.settings),
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

/// PostgreSQL's ways: a per-user advisory lock, row locks, and every ending announced on
/// [`ENDED_CHANNEL`] in the statement that ends it (notifications leave with the commit).
#[derive(Debug)]
pub(super) enum Pg {}

impl Dialect for Pg {
    type Db = Postgres;

    const SESSION_COLUMNS: &'static str = "id, sub, created_at, authenticated_at, expires_at, \
        last_used_at, user_agent, host(address) AS address, refresh_generation, refresh_digest, \
        refresh_rotated_at";

    // `seq` is an identity column, drawn under the user's lock.
    const INSERT: &'static str = "INSERT INTO jwt_sessions (id, sub, created_at, \
        authenticated_at, expires_at, last_used_at, user_agent, address, refresh_generation, \
        refresh_digest, refresh_rotated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::inet, $9, $10, $11) ON CONFLICT (id) DO NOTHING";

    const LOCK_ROW: &'static str = " FOR UPDATE";

    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    fn store_error(error: sqlx::Error) -> StoreError {
        store_error(error)
    }

    fn ending(delete: &str) -> String {
        format!(
            "WITH ended AS ({delete} RETURNING id) \
             SELECT pg_notify('{ENDED_CHANNEL}', \
             'S' || translate(encode(id, 'base64'), '+/=', '-_'))::text FROM ended"
        )
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, StoreError> {
        pool.begin().await.map_err(store_error)
    }

    async fn lock_user(connection: &mut PgConnection, sub: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(LOCK_CLASS)
            .bind(sub)
            .execute(connection)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn announce_sooner_end(
        connection: &mut PgConnection,
        sid: &SessionId,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)::text")
            .bind(ENDED_CHANNEL)
            .bind(format!("S{sid}"))
            .execute(connection)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

super::sql_tables::session_store_on_tables!(PostgresStore);
