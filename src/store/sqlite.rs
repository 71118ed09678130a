//! The SQLite session store (feature `sqlite`): one instance keeps its sessions across
//! restarts, with no server to run.
//!
//! ```
//! use tower_jwt_auth::store::SqliteStore;
//! use tower_jwt_auth::{Keys, Sessions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("tja-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let path = dir.join("sessions.db");
//! // The file is created if missing.
//! let store = SqliteStore::open(&path).await?;
//! store.migrate().await?; // creates the tables on the first start; a no-op afterwards
//! let sessions = Sessions::builder(Keys::hs256([7; 32])?, store).build()?;
//! # drop(sessions);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! # On disk
//! The database runs in WAL mode (readers never wait for the writer) with
//! `synchronous = FULL`, so that a logout, once answered, survives a crash or a power cut:
//! a session ended before a restart stays ended. The file holds session ids, digests and
//! metadata, never a token.
//!
//! # Writes and timeouts
//! Reads use a pool of connections; writes go through one connection and each write
//! transaction starts with `BEGIN IMMEDIATE`, so writes are serialised, counting and adding
//! a session is one step, and two processes on one file wait for each other (up to the
//! busy timeout) instead of failing. Every call is bounded by one timeout (1 s by default,
//! see [`timeout`](SqliteStoreBuilder::timeout)), which is also the busy timeout: a locked
//! or slow database is a [`StoreError`] (503 with `Retry-After`), never a hang.
//!
//! The request path is one statement by primary key that checks the user and the expiry;
//! recording the use is a conditional `UPDATE`, at most once per session and touch
//! interval. Statements are prepared once per connection and reused.
//!
//! # Schema
//! [`migrate`](SqliteStore::migrate) applies the migrations embedded in the crate (with
//! sqlx's migrator, recorded in `_sqlx_migrations`); nothing is created unless it is
//! called. Teams that run their own migrations copy this SQL instead:
//!
//! ```sql
#![doc = include_str!("../../migrations/sqlite/20261129000001_jwt_sessions.sql")]
//! ```
//!
//! SQLite cannot add a foreign key to an existing table: to end a user's sessions with the
//! user, create `jwt_sessions` with one (`foreign_keys` is on for every connection):
//!
//! ```sql
//! CREATE TABLE jwt_sessions (
//!     id  BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
//!     sub TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
//!     -- the other columns as above
//! ) WITHOUT ROWID;
//! ```
//!
//! # Sweeping
//! Expired rows are refused at once and deleted by a background sweep (every minute by
//! default, from the first `create` inside a Tokio runtime, stopping when the store is
//! dropped), in batches of at most 1,000 rows, each its own short write;
//! [`sweep`](SqliteStore::sweep) does it by hand.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, Transaction};

use super::StoreError;
use super::sql::{self, Settings, bounded};
use super::sql_tables::{Dialect, Tables};
use crate::{Clock, SessionId};

/// The session store on an SQLite file.
///
/// Clones share the same connections. See the [module docs](crate::store::sqlite).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Reads on a pool, every write on one connection.
    inner: Arc<Tables<Lite>>,
}

/// Builds a [`SqliteStore`]: timeout, readers, sweeping.
///
/// See the [module docs](crate::store::sqlite).
#[derive(Debug, Clone)]
#[must_use]
pub struct SqliteStoreBuilder {
    settings: Settings,
}

impl SqliteStore {
    /// A store on the file at `path`, created if missing, with the defaults (1 s timeout,
    /// 4 readers, swept every minute).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::builder().open(path).await
    }

    /// A store on the database at `url` (`sqlite://path/to/file.db`), created if missing.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder().connect(url).await
    }

    /// A builder, to set the timeout, the readers or the sweep.
    pub fn builder() -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            settings: Settings::new(4),
        }
    }

    /// Applies the embedded migrations (creating `jwt_sessions` and `jwt_session_marks`).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("migrations/sqlite");
        // The application's own migrations may share `_sqlx_migrations`.
        migrator.set_ignore_missing(true);
        migrator
            .run(&self.inner.writer)
            .await
            .map_err(|error| match error {
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

    /// Closes every connection, waiting for those in use; calls made afterwards fail.
    pub async fn close(&self) {
        self.inner.writer.close().await;
        self.inner.readers.close().await;
    }
}

impl SqliteStoreBuilder {
    /// The bound on every call (default 1 s), and the busy timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The most reading connections (default 4); writes use one more.
    pub fn max_readers(mut self, max: u32) -> Self {
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

    /// Opens the file at `path`, created if missing.
    pub async fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        self.connect_with(SqliteConnectOptions::new().filename(path))
            .await
    }

    /// Opens the database at `url` (`sqlite://path/to/file.db`), created if missing.
    pub async fn connect(self, url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url).map_err(store_error)?;
        self.connect_with(options).await
    }

    /// Opens the database with sqlx's options; the store sets the journal mode, the
    /// synchronous level, the busy timeout and foreign keys over them.
    pub async fn connect_with(
        self,
        options: SqliteConnectOptions,
    ) -> Result<SqliteStore, StoreError> {
        let timeout = self.settings.timeout;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(timeout)
            .foreign_keys(true);
        let pool = |max| {
            SqlitePoolOptions::new()
                .max_connections(max)
                .acquire_timeout(timeout)
                .test_before_acquire(false)
        };
        // The writer first: it creates the file and turns WAL on.
        let writer = bounded(timeout, async {
            pool(1)
                .connect_with(options.clone())
                .await
                .map_err(store_error)
        })
        .await?;
        let readers = pool(self.settings.max_connections).connect_lazy_with(options);
        Ok(SqliteStore {
            inner: Tables::new(readers, writer, &self.settings),
        })
    }
}

/// A driver error as a store error: a database still locked after the busy timeout is
/// [`StoreError::Timeout`].
fn store_error(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(database) = &error
        && let Some(code) = database.code()
        && let Ok(code) = code.parse::<u32>()
        // SQLITE_BUSY and SQLITE_LOCKED, with their extended codes.
        && matches!(code & 0xff, 5 | 6)
    {
        return StoreError::Timeout;
    }
    sql::driver_error(error)
}

/// SQLite's ways: every write transaction holds the write lock from its first statement
/// (`BEGIN IMMEDIATE`) on the one writer, which serialises them; nothing is announced.
#[derive(Debug)]
pub(super) enum Lite {}

impl Dialect for Lite {
    type Db = Sqlite;

    const SESSION_COLUMNS: &'static str = "id, sub, created_at, authenticated_at, expires_at, \
        last_used_at, user_agent, address, refresh_generation, refresh_digest, \
        refresh_rotated_at";

    const INSERT: &'static str = "INSERT INTO jwt_sessions (id, sub, seq, created_at, \
        authenticated_at, expires_at, last_used_at, user_agent, address, refresh_generation, \
        refresh_digest, refresh_rotated_at) VALUES ($1, $2, \
        (SELECT coalesce(max(seq), 0) + 1 FROM jwt_sessions WHERE sub = $2), \
        $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING";

    const LOCK_ROW: &'static str = "";

    const SKIP_LOCKED: &'static str = "";

    fn store_error(error: sqlx::Error) -> StoreError {
        store_error(error)
    }

    fn ending(delete: &str) -> String {
        format!("{delete} RETURNING id")
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn begin(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, StoreError> {
        pool.begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store_error)
    }

    async fn lock_user(_: &mut SqliteConnection, _: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn announce_sooner_end(
        _: &mut SqliteConnection,
        _: &SessionId,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

super::sql_tables::session_store_on_tables!(SqliteStore);
