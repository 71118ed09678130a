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

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::sql::{self, Existing, Row, Settings, Step, bounded, int, micros};
use super::{
    Created, RefreshState, Rotated, Rotation, Session, SessionLimit, SessionStore, StoreError,
    WhenFull,
};
use crate::clock::unix_seconds;
use crate::{Clock, SessionId};

/// The session store on an SQLite file.
///
/// Clones share the same connections. See the [module docs](crate::store::sqlite).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Checks and listings.
    readers: SqlitePool,
    /// Every write, one at a time.
    writer: SqlitePool,
    timeout: Duration,
    sweep_every: Duration,
    clock: Clock,
    sweeper_started: AtomicBool,
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
            inner: Arc::new(Inner {
                readers,
                writer,
                timeout,
                sweep_every: self.settings.sweep_every,
                clock: self.settings.clock,
                sweeper_started: AtomicBool::new(false),
            }),
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

/// Starts a write transaction that holds the write lock from its first statement.
async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, StoreError> {
    pool.begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(store_error)
}

impl Inner {
    async fn is_active(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> Result<bool, StoreError> {
        let now = int(now);
        let last_used: Option<i64> = sqlx::query_scalar(
            "SELECT last_used_at FROM jwt_sessions \
             WHERE id = $1 AND sub = $2 AND expires_at > $3",
        )
        .bind(&sid.as_bytes()[..])
        .bind(sub)
        .bind(now)
        .fetch_optional(&self.readers)
        .await
        .map_err(store_error)?;
        let Some(last_used) = last_used else {
            return Ok(false);
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
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        }
        Ok(true)
    }

    async fn create(
        &self,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> Result<Created, StoreError> {
        let mut tx = begin_write(&self.writer).await?;
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
        let mut tx = begin_write(&self.writer).await?;
        let row: Option<(i64, i64, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT expires_at, refresh_generation, refresh_digest, refresh_rotated_at \
             FROM jwt_sessions WHERE id = $1 AND sub = $2",
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
                sqlx::query(
                    "UPDATE jwt_sessions SET refresh_generation = $2, refresh_digest = $3, \
                     refresh_rotated_at = $4, expires_at = $5, \
                     last_used_at = max(last_used_at, $4) WHERE id = $1",
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
                sqlx::query("DELETE FROM jwt_sessions WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
                Rotated::Reused
            }
        };
        tx.commit().await.map_err(store_error)?;
        Ok(rotated)
    }

    async fn revoke(&self, sub: &str, sid: &SessionId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM jwt_sessions WHERE id = $1 AND sub = $2")
            .bind(&sid.as_bytes()[..])
            .bind(sub)
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_all(&self, sub: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM jwt_sessions WHERE sub = $1")
            .bind(sub)
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }

    async fn revoke_authenticated_before(
        &self,
        sub: &str,
        before: SystemTime,
        keep_until: SystemTime,
    ) -> Result<u64, StoreError> {
        let before = micros(before);
        let mut tx = begin_write(&self.writer).await?;
        sqlx::query(
            "INSERT INTO jwt_session_marks (sub, not_before, keep_until) VALUES ($1, $2, $3) \
             ON CONFLICT (sub) DO UPDATE SET \
             not_before = max(jwt_session_marks.not_before, excluded.not_before), \
             keep_until = max(jwt_session_marks.keep_until, excluded.keep_until)",
        )
        .bind(sub)
        .bind(before)
        .bind(micros(keep_until))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        let done = sqlx::query("DELETE FROM jwt_sessions WHERE sub = $1 AND authenticated_at < $2")
            .bind(sub)
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(done.rows_affected())
    }

    async fn list(&self, sub: &str, now: u64, max: usize) -> Result<Vec<Session>, StoreError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, sub, created_at, authenticated_at, expires_at, last_used_at, \
             user_agent, address, refresh_generation, refresh_digest, refresh_rotated_at \
             FROM jwt_sessions WHERE sub = $1 AND expires_at > $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(sub)
        .bind(int(now))
        .bind(max)
        .fetch_all(&self.readers)
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
        // Sessions end in seconds, marks in microseconds.
        for (statement, until, counted) in [
            (
                "DELETE FROM jwt_sessions WHERE id IN \
                 (SELECT id FROM jwt_sessions WHERE expires_at <= $1 LIMIT $2)",
                now,
                true,
            ),
            (
                "DELETE FROM jwt_session_marks WHERE sub IN \
                 (SELECT sub FROM jwt_session_marks WHERE keep_until <= $1 LIMIT $2)",
                now_micros,
                false,
            ),
        ] {
            loop {
                let done = bounded(self.timeout, async {
                    sqlx::query(statement)
                        .bind(until)
                        .bind(sql::SWEEP_BATCH)
                        .execute(&self.writer)
                        .await
                        .map_err(store_error)
                })
                .await?;
                if counted {
                    swept += done.rows_affected();
                }
                if done.rows_affected() < sql::SWEEP_BATCH as u64 {
                    break;
                }
            }
        }
        Ok(swept)
    }
}

/// `create`'s steps, inside its write transaction (which serialises them).
async fn create_in(
    tx: &mut Transaction<'_, Sqlite>,
    session: &Session,
    limit: Option<SessionLimit>,
) -> Result<Created, StoreError> {
    let sub = session.sub.as_str();
    let id = &session.id.as_bytes()[..];
    let now = int(unix_seconds(session.created_at));
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
            let done = sqlx::query(
                "DELETE FROM jwt_sessions WHERE id IN \
                 (SELECT id FROM jwt_sessions WHERE sub = $1 ORDER BY seq LIMIT $2)",
            )
            .bind(sub)
            .bind(count + 1 - max)
            .execute(&mut **tx)
            .await
            .map_err(store_error)?;
            ended = u32::try_from(done.rows_affected()).unwrap_or(u32::MAX);
        }
    }
    sqlx::query(
        "INSERT INTO jwt_sessions (id, sub, seq, created_at, authenticated_at, expires_at, \
         last_used_at, user_agent, address, refresh_generation, refresh_digest, \
         refresh_rotated_at) VALUES ($1, $2, \
         (SELECT coalesce(max(seq), 0) + 1 FROM jwt_sessions WHERE sub = $2), \
         $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
    Ok(Created::Live { ended })
}

impl SessionStore for SqliteStore {
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
            bounded(
                inner.timeout,
                inner.is_active(&sub, &sid, now, touch_interval),
            )
            .await
        })
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
