//! The session store's calls on SQL tables, written once for PostgreSQL and SQLite: each
//! database supplies only what it does its own way (a [`Dialect`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Transaction, Type,
};

use super::sql::{self, Existing, Row, Step, bounded, int, micros};
use super::{
    Created, Liveness, RefreshState, Rotated, Rotation, Session, SessionLimit, StoreError, WhenFull,
};
use crate::clock::unix_seconds;
use crate::{Clock, SessionId};

/// What one database does its own way. Statements number their parameters `$1`, `$2`...
pub(super) trait Dialect: Send + Sync + 'static {
    /// sqlx's driver.
    type Db: Database;

    /// The `SELECT` list of a whole session, the address as text.
    const SESSION_COLUMNS: &'static str;

    /// Inserts a session from `$1` (`id`) to `$11` (`refresh_rotated_at`), in the order of
    /// the columns in the migration, drawing its `seq` above the user's others; inserts
    /// nothing when the id is taken.
    const INSERT: &'static str;

    /// Appended to the rotation's `SELECT` of its row: what keeps a concurrent rotation
    /// waiting (nothing where write transactions are serialised anyway).
    const LOCK_ROW: &'static str;

    /// Appended to the sweep's choice of rows: what lets instances sweep side by side.
    const SKIP_LOCKED: &'static str;

    /// A driver error as a store error, the database's own codes read first.
    fn store_error(error: sqlx::Error) -> StoreError;

    /// `delete` (a `DELETE` on `jwt_sessions`) written to answer one row per ended session,
    /// announcing each where the database can.
    fn ending(delete: &str) -> String;

    /// Rows a statement changed.
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;

    /// Starts a transaction that writes.
    fn begin(
        pool: &Pool<Self::Db>,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, StoreError>> + Send;

    /// Makes writes that count or bar `sub`'s sessions wait for each other until the
    /// transaction ends (nothing where write transactions are serialised anyway).
    fn lock_user(
        connection: &mut <Self::Db as Database>::Connection,
        sub: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Tells caches that a session ends sooner than they may have kept (a rotation that
    /// brings its end closer), with the transaction.
    fn announce_sooner_end(
        connection: &mut <Self::Db as Database>::Connection,
        sid: &SessionId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The sessions tables on one database: the pools, the bound on every call, the sweep.
#[derive(Debug)]
pub(super) struct Tables<D: Dialect> {
    /// Checks and listings.
    pub(super) readers: Pool<D::Db>,
    /// Every write (the same pool where writers do not queue).
    pub(super) writer: Pool<D::Db>,
    pub(super) timeout: Duration,
    pub(super) sweep_every: Duration,
    pub(super) clock: Clock,
    pub(super) sweeper_started: AtomicBool,
}

impl<D: Dialect> Tables<D> {
    pub(super) fn new(
        readers: Pool<D::Db>,
        writer: Pool<D::Db>,
        settings: &sql::Settings,
    ) -> Arc<Self> {
        Arc::new(Self {
            readers,
            writer,
            timeout: settings.timeout,
            sweep_every: settings.sweep_every,
            clock: settings.clock.clone(),
            sweeper_started: AtomicBool::new(false),
        })
    }
}

// ===== the calls, bounded =====

// The bounds say, as sqlx spells it, what the statements below bind and read (integers,
// text, bytes, optional text); both drivers have all of it.
impl<D, DB> Tables<D>
where
    D: Dialect<Db = DB>,
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    /// Starts, once, the background sweep of expired rows (see [`sql::start_sweeper`]).
    pub(super) fn start_sweeper(self: &Arc<Self>) {
        sql::start_sweeper(
            self,
            &self.sweeper_started,
            self.sweep_every,
            |tables: Arc<Self>| async move {
                let now = tables.clock.now();
                if let Err(error) = tables.sweep(now).await {
                    tracing::warn!(%error, "sweeping expired sessions failed");
                }
            },
        );
    }

    pub(super) async fn create(
        &self,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> Result<Created, StoreError> {
        bounded(self.timeout, async {
            let mut tx = D::begin(&self.writer).await?;
            let created = Self::create_in(&mut tx, session, limit).await?;
            tx.commit().await.map_err(D::store_error)?;
            Ok(created)
        })
        .await
    }

    pub(super) async fn liveness(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> Result<Option<Liveness>, StoreError> {
        bounded(self.timeout, async {
            let now = int(now);
            let row: Option<(i64, i64)> = sqlx::query_as(
                "SELECT expires_at, last_used_at FROM jwt_sessions \
                 WHERE id = $1 AND sub = $2 AND expires_at > $3",
            )
            .bind(&sid.as_bytes()[..])
            .bind(sub)
            .bind(now)
            .fetch_optional(&self.readers)
            .await
            .map_err(D::store_error)?;
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
                .execute(&self.writer)
                .await
                .map_err(D::store_error)?;
                last_used = now;
            }
            Ok(Some(Liveness {
                until: sql::unsigned(expires_at)?,
                last_used: sql::unsigned(last_used)?,
            }))
        })
        .await
    }

    pub(super) async fn rotate(
        &self,
        sub: &str,
        sid: &SessionId,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        bounded(self.timeout, async {
            let mut tx = D::begin(&self.writer).await?;
            let rotated = Self::rotate_in(&mut tx, sub, sid, rotation).await?;
            tx.commit().await.map_err(D::store_error)?;
            Ok(rotated)
        })
        .await
    }

    pub(super) async fn revoke(&self, sub: &str, sid: &SessionId) -> Result<bool, StoreError> {
        bounded(self.timeout, async {
            let ended = sqlx::query(&D::ending(
                "DELETE FROM jwt_sessions WHERE id = $1 AND sub = $2",
            ))
            .bind(&sid.as_bytes()[..])
            .bind(sub)
            .fetch_all(&self.writer)
            .await
            .map_err(D::store_error)?;
            Ok(!ended.is_empty())
        })
        .await
    }

    pub(super) async fn revoke_all(&self, sub: &str) -> Result<u64, StoreError> {
        bounded(self.timeout, async {
            let ended = sqlx::query(&D::ending("DELETE FROM jwt_sessions WHERE sub = $1"))
                .bind(sub)
                .fetch_all(&self.writer)
                .await
                .map_err(D::store_error)?;
            Ok(count(ended.len()))
        })
        .await
    }

    pub(super) async fn revoke_authenticated_before(
        &self,
        sub: &str,
        before: SystemTime,
        keep_until: SystemTime,
    ) -> Result<u64, StoreError> {
        bounded(self.timeout, async {
            let before = micros(before);
            let mut tx = D::begin(&self.writer).await?;
            D::lock_user(&mut *tx, sub).await?;
            sqlx::query(
                "INSERT INTO jwt_session_marks (sub, not_before, keep_until) VALUES ($1, $2, $3) \
                 ON CONFLICT (sub) DO UPDATE SET \
                 not_before = CASE WHEN jwt_session_marks.not_before > excluded.not_before \
                 THEN jwt_session_marks.not_before ELSE excluded.not_before END, \
                 keep_until = CASE WHEN jwt_session_marks.keep_until > excluded.keep_until \
                 THEN jwt_session_marks.keep_until ELSE excluded.keep_until END",
            )
            .bind(sub)
            .bind(before)
            .bind(micros(keep_until))
            .execute(&mut *tx)
            .await
            .map_err(D::store_error)?;
            let ended = sqlx::query(&D::ending(
                "DELETE FROM jwt_sessions WHERE sub = $1 AND authenticated_at < $2",
            ))
            .bind(sub)
            .bind(before)
            .fetch_all(&mut *tx)
            .await
            .map_err(D::store_error)?;
            tx.commit().await.map_err(D::store_error)?;
            Ok(count(ended.len()))
        })
        .await
    }

    pub(super) async fn list(
        &self,
        sub: &str,
        now: u64,
        max: usize,
    ) -> Result<Vec<Session>, StoreError> {
        bounded(self.timeout, async {
            let rows: Vec<Row> = sqlx::query_as(&format!(
                "SELECT {} FROM jwt_sessions \
                 WHERE sub = $1 AND expires_at > $2 ORDER BY seq DESC LIMIT $3",
                D::SESSION_COLUMNS
            ))
            .bind(sub)
            .bind(int(now))
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .fetch_all(&self.readers)
            .await
            .map_err(D::store_error)?;
            let mut sessions = rows
                .into_iter()
                .map(Row::into_session)
                .collect::<Result<Vec<_>, _>>()?;
            sessions.reverse();
            Ok(sessions)
        })
        .await
    }

    /// Deletes the sessions expired at `now` (Unix seconds) and the marks kept long
    /// enough, in batches (each within the timeout); how many sessions were deleted.
    pub(super) async fn sweep(&self, now: u64) -> Result<u64, StoreError> {
        let sessions = format!(
            "DELETE FROM jwt_sessions WHERE id IN \
             (SELECT id FROM jwt_sessions WHERE expires_at <= $1 LIMIT $2{})",
            D::SKIP_LOCKED
        );
        let marks = format!(
            "DELETE FROM jwt_session_marks WHERE sub IN \
             (SELECT sub FROM jwt_session_marks WHERE keep_until <= $1 LIMIT $2{})",
            D::SKIP_LOCKED
        );
        // Sessions end in seconds, marks in microseconds.
        let swept = self.sweep_with(&sessions, int(now)).await?;
        self.sweep_with(&marks, int(now.saturating_mul(1_000_000)))
            .await?;
        Ok(swept)
    }

    async fn sweep_with(&self, statement: &str, until: i64) -> Result<u64, StoreError> {
        let mut swept = 0;
        loop {
            let done = bounded(self.timeout, async {
                sqlx::query(statement)
                    .bind(until)
                    .bind(sql::SWEEP_BATCH)
                    .execute(&self.writer)
                    .await
                    .map_err(D::store_error)
            })
            .await?;
            let deleted = D::rows_affected(&done);
            swept += deleted;
            if deleted < sql::SWEEP_BATCH as u64 {
                return Ok(swept);
            }
        }
    }

    /// `create`'s steps, inside its transaction.
    async fn create_in(
        tx: &mut Transaction<'static, DB>,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> Result<Created, StoreError> {
        let sub = session.sub.as_str();
        let id = &session.id.as_bytes()[..];
        D::lock_user(&mut **tx, sub).await?;
        sqlx::query("DELETE FROM jwt_sessions WHERE sub = $1 AND expires_at <= $2")
            .bind(sub)
            .bind(int(unix_seconds(session.created_at)))
            .execute(&mut **tx)
            .await
            .map_err(D::store_error)?;
        let existing: Option<Existing> = sqlx::query_as(
            "SELECT sub, created_at, authenticated_at, refresh_generation, refresh_digest \
             FROM jwt_sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(D::store_error)?;
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
        .map_err(D::store_error)?;
        if barred {
            return Ok(Created::Barred);
        }
        let mut ended = 0;
        if let Some(limit) = limit {
            let max = i64::from(limit.max.max(1));
            let held: i64 = sqlx::query_scalar("SELECT count(*) FROM jwt_sessions WHERE sub = $1")
                .bind(sub)
                .fetch_one(&mut **tx)
                .await
                .map_err(D::store_error)?;
            if held >= max {
                if limit.when_full == WhenFull::RefuseNew {
                    return Ok(Created::LimitReached);
                }
                let oldest = sqlx::query(&D::ending(
                    "DELETE FROM jwt_sessions WHERE id IN \
                     (SELECT id FROM jwt_sessions WHERE sub = $1 ORDER BY seq LIMIT $2)",
                ))
                .bind(sub)
                .bind(held + 1 - max)
                .fetch_all(&mut **tx)
                .await
                .map_err(D::store_error)?;
                ended = u32::try_from(oldest.len()).unwrap_or(u32::MAX);
            }
        }
        let inserted = sqlx::query(D::INSERT)
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
            .map_err(D::store_error)?;
        if D::rows_affected(&inserted) == 0 {
            // Another user's session took the id meanwhile.
            return Err(StoreError::Conflict);
        }
        Ok(Created::Live { ended })
    }

    /// `rotate`'s steps, inside its transaction.
    async fn rotate_in(
        tx: &mut Transaction<'static, DB>,
        sub: &str,
        sid: &SessionId,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        let id = &sid.as_bytes()[..];
        let row: Option<(i64, i64, Vec<u8>, i64)> = sqlx::query_as(&format!(
            "SELECT expires_at, refresh_generation, refresh_digest, refresh_rotated_at \
             FROM jwt_sessions WHERE id = $1 AND sub = $2{}",
            D::LOCK_ROW
        ))
        .bind(id)
        .bind(sub)
        .fetch_optional(&mut **tx)
        .await
        .map_err(D::store_error)?;
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
        Ok(match sql::step(&state, rotation) {
            Step::Advance => {
                if int(rotation.expires_at) < expires_at {
                    // The end comes closer: caches must not keep the later one.
                    D::announce_sooner_end(&mut **tx, sid).await?;
                }
                sqlx::query(
                    "UPDATE jwt_sessions SET refresh_generation = $2, refresh_digest = $3, \
                     refresh_rotated_at = $4, expires_at = $5, last_used_at = \
                     CASE WHEN last_used_at > $4 THEN last_used_at ELSE $4 END WHERE id = $1",
                )
                .bind(id)
                .bind(sql::generation(state.generation.saturating_add(1)))
                .bind(&rotation.next_digest[..])
                .bind(int(rotation.now))
                .bind(int(rotation.expires_at))
                .execute(&mut **tx)
                .await
                .map_err(D::store_error)?;
                Rotated::Rotated
            }
            Step::Repeated => Rotated::Rotated,
            Step::Forgiven => Rotated::Forgiven,
            Step::Reused => {
                sqlx::query(&D::ending("DELETE FROM jwt_sessions WHERE id = $1"))
                    .bind(id)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(D::store_error)?;
                Rotated::Reused
            }
        })
    }
}

/// A number of rows as the store's calls count them.
fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

/// Implements [`SessionStore`](super::SessionStore) for a store whose `inner` field is an
/// `Arc<Tables<_>>`, by handing every call to the tables.
macro_rules! session_store_on_tables {
    ($store:ty) => {
        impl $crate::store::SessionStore for $store {
            type IsActive = ::std::pin::Pin<
                Box<
                    dyn ::std::future::Future<Output = Result<bool, $crate::store::StoreError>>
                        + Send,
                >,
            >;

            async fn create(
                &self,
                session: &$crate::store::Session,
                limit: Option<$crate::store::SessionLimit>,
            ) -> Result<$crate::store::Created, $crate::store::StoreError> {
                self.inner.start_sweeper();
                self.inner.create(session, limit).await
            }

            fn is_active(
                &self,
                sub: &str,
                sid: &$crate::SessionId,
                now: u64,
                touch_interval: u64,
            ) -> Self::IsActive {
                let (inner, sub, sid) =
                    (::std::sync::Arc::clone(&self.inner), sub.to_owned(), *sid);
                Box::pin(async move {
                    let liveness = inner.liveness(&sub, &sid, now, touch_interval).await?;
                    Ok(liveness.is_some())
                })
            }

            async fn liveness(
                &self,
                sub: &str,
                sid: &$crate::SessionId,
                now: u64,
                touch_interval: u64,
            ) -> Result<Option<$crate::store::Liveness>, $crate::store::StoreError> {
                self.inner.liveness(sub, sid, now, touch_interval).await
            }

            async fn rotate(
                &self,
                sub: &str,
                sid: &$crate::SessionId,
                rotation: &$crate::store::Rotation,
            ) -> Result<$crate::store::Rotated, $crate::store::StoreError> {
                self.inner.rotate(sub, sid, rotation).await
            }

            async fn revoke(
                &self,
                sub: &str,
                sid: &$crate::SessionId,
            ) -> Result<bool, $crate::store::StoreError> {
                self.inner.revoke(sub, sid).await
            }

            async fn revoke_all(&self, sub: &str) -> Result<u64, $crate::store::StoreError> {
                self.inner.revoke_all(sub).await
            }

            async fn revoke_authenticated_before(
                &self,
                sub: &str,
                before: ::std::time::SystemTime,
                keep_until: ::std::time::SystemTime,
            ) -> Result<u64, $crate::store::StoreError> {
                self.inner
                    .revoke_authenticated_before(sub, before, keep_until)
                    .await
            }

            async fn list(
                &self,
                sub: &str,
                now: u64,
                max: usize,
            ) -> Result<Vec<$crate::store::Session>, $crate::store::StoreError> {
                self.inner.list(sub, now, max).await
            }
        }
    };
}

pub(super) use session_store_on_tables;
