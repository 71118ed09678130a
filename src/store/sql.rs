//! What the PostgreSQL and SQLite stores share: settings, the mapping between rows and
//! sessions, the rotation rule, timeouts and the background sweep.

use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use aws_lc_rs::constant_time;

use super::{BoxError, RefreshState, Rotation, Session, StoreError};
use crate::clock::{from_unix_micros, from_unix_seconds, unix_micros};
use crate::{Clock, SessionId};

/// The per-call bound when none is set: pool acquire, statements and all.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// How often expired sessions are swept when nothing else is said.
pub(super) const DEFAULT_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Rows one sweep statement deletes at most, so that it never holds locks for long.
pub(super) const SWEEP_BATCH: i64 = 1_000;

/// What both stores' builders set.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) timeout: Duration,
    pub(super) max_connections: u32,
    pub(super) sweep_every: Duration,
    pub(super) clock: Clock,
}

impl Settings {
    pub(super) fn new(max_connections: u32) -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            max_connections,
            sweep_every: DEFAULT_SWEEP_EVERY,
            clock: Clock::system(),
        }
    }
}

/// Runs `call` within `timeout`: past it, [`StoreError::Timeout`], never a hang.
pub(super) async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or(Err(StoreError::Timeout))
}

/// A time or count as the databases keep it (a signed 64-bit integer); beyond it, the
/// largest, which every time compares as "later".
pub(super) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A refresh generation as stored: all 64 bits kept (the databases never compare
/// generations, the stores do), so every `u64` round-trips.
pub(super) fn generation(value: u64) -> i64 {
    i64::from_ne_bytes(value.to_ne_bytes())
}

/// A stored refresh generation back.
pub(super) fn from_generation(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

/// A stored integer back as the unsigned value it was written from.
pub(super) fn unsigned(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| bad_data("a negative time or generation"))
}

/// Unix microseconds of `time`, as stored.
pub(super) fn micros(time: std::time::SystemTime) -> i64 {
    int(unix_micros(time))
}

/// The error for a row the store should never have written.
pub(super) fn bad_data(what: &'static str) -> StoreError {
    StoreError::Backend(BoxError::from(BadData(what)))
}

/// A row held a value no store writes.
#[derive(Debug, thiserror::Error)]
#[error("the session table holds {0}")]
struct BadData(&'static str);

/// Maps what the driver reports, apart from the database's own error codes (which the
/// caller reads first), to a store error.
pub(super) fn driver_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::PoolTimedOut => StoreError::Timeout,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(error)),
        other => StoreError::Backend(Box::new(other)),
    }
}

/// A session row as both stores read it.
#[derive(sqlx::FromRow)]
pub(super) struct Row {
    pub(super) id: Vec<u8>,
    pub(super) sub: String,
    pub(super) created_at: i64,
    pub(super) authenticated_at: i64,
    pub(super) expires_at: i64,
    pub(super) last_used_at: i64,
    pub(super) user_agent: Option<String>,
    pub(super) address: Option<String>,
    pub(super) refresh_generation: i64,
    pub(super) refresh_digest: Vec<u8>,
    pub(super) refresh_rotated_at: i64,
}

impl Row {
    pub(super) fn into_session(self) -> Result<Session, StoreError> {
        let id: [u8; 16] = self
            .id
            .try_into()
            .map_err(|_| bad_data("a session id that is not 16 bytes"))?;
        let address = match self.address {
            Some(address) => Some(
                address
                    .parse::<IpAddr>()
                    .map_err(|_| bad_data("an address that is not an IP address"))?,
            ),
            None => None,
        };
        Ok(Session {
            id: SessionId::from_bytes(id),
            sub: self.sub,
            created_at: from_unix_micros(unsigned(self.created_at)?),
            authenticated_at: from_unix_micros(unsigned(self.authenticated_at)?),
            expires_at: from_unix_seconds(unsigned(self.expires_at)?),
            last_used_at: from_unix_seconds(unsigned(self.last_used_at)?),
            user_agent: self.user_agent,
            address,
            refresh: RefreshState {
                generation: from_generation(self.refresh_generation),
                digest: digest(self.refresh_digest)?,
                rotated_at: unsigned(self.refresh_rotated_at)?,
            },
        })
    }
}

/// A stored refresh digest.
pub(super) fn digest(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| bad_data("a refresh digest that is not 32 bytes"))
}

/// What a row already holding a session's id says about a `create` of `session`.
#[derive(sqlx::FromRow)]
pub(super) struct Existing {
    pub(super) sub: String,
    pub(super) created_at: i64,
    pub(super) authenticated_at: i64,
    pub(super) refresh_generation: i64,
    pub(super) refresh_digest: Vec<u8>,
}

impl Existing {
    /// Whether the row records `session` as it was created (a retried create).
    pub(super) fn is_creation_of(&self, session: &Session) -> bool {
        self.sub == session.sub
            && self.created_at == micros(session.created_at)
            && self.authenticated_at == micros(session.authenticated_at)
            && self.refresh_generation == generation(session.refresh.generation)
            && self.refresh_digest == session.refresh.digest
    }
}

/// What a rotation does to a live session in `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// The presented token is the current one: write the next generation.
    Advance,
    /// This very rotation took effect already (a retry): answer it again, write nothing.
    Repeated,
    /// A token retired within the grace period: refuse, keep the session.
    Forgiven,
    /// A retired or foreign token: end the session.
    Reused,
}

/// The rotation rule, as the memory store applies it.
pub(super) fn step(state: &RefreshState, rotation: &Rotation) -> Step {
    let is = |generation: u64, digest: &[u8; 32]| {
        state.generation == generation
            && constant_time::verify_slices_are_equal(digest, &state.digest).is_ok()
    };
    if is(rotation.generation, &rotation.digest) {
        Step::Advance
    } else if rotation
        .generation
        .checked_add(1)
        .is_some_and(|next| is(next, &rotation.next_digest))
    {
        Step::Repeated
    } else if rotation.generation.checked_add(1) == Some(state.generation)
        && rotation.now < state.rotated_at.saturating_add(rotation.grace)
    {
        Step::Forgiven
    } else {
        Step::Reused
    }
}

/// Starts, once, a task that calls `sweep` every `every` while `inner` lives (it holds no
/// strong reference). Outside a Tokio runtime it does nothing, and the next call tries again.
pub(super) fn start_sweeper<T, F, Fut>(
    inner: &Arc<T>,
    started: &AtomicBool,
    every: Duration,
    sweep: F,
) where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    if started.load(Ordering::Relaxed) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if started.swap(true, Ordering::AcqRel) {
        return;
    }
    let weak: Weak<T> = Arc::downgrade(inner);
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate
        loop {
            ticks.tick().await;
            let Some(inner) = weak.upgrade() else { return };
            sweep(inner).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(generation: u64, digest: u8, rotated_at: u64) -> RefreshState {
        RefreshState {
            generation,
            digest: [digest; 32],
            rotated_at,
        }
    }

    fn rotation(generation: u64, digest: u8, next: u8, now: u64, grace: u64) -> Rotation {
        Rotation {
            generation,
            digest: [digest; 32],
            next_digest: [next; 32],
            now,
            expires_at: now + 100,
            grace,
        }
    }

    #[test]
    fn the_rotation_rule() {
        let current = state(3, 7, 1_000);
        assert_eq!(step(&current, &rotation(3, 7, 8, 1_001, 0)), Step::Advance);
        // The rotation that made generation 3 (digest 7), presented again.
        assert_eq!(step(&current, &rotation(2, 6, 7, 1_001, 0)), Step::Repeated);
        // Generation 2's token with another successor: a second tab, within grace or not.
        assert_eq!(step(&current, &rotation(2, 6, 9, 1_004, 5)), Step::Forgiven);
        assert_eq!(step(&current, &rotation(2, 6, 9, 1_005, 5)), Step::Reused);
        assert_eq!(step(&current, &rotation(1, 5, 6, 1_001, 60)), Step::Reused);
        assert_eq!(step(&current, &rotation(3, 8, 9, 1_001, 60)), Step::Reused);
        assert_eq!(
            step(&current, &rotation(u64::MAX, 7, 8, 1_001, 60)),
            Step::Reused
        );
    }

    #[test]
    fn generations_keep_all_their_bits() {
        for value in [0, 1, u64::MAX - 1, u64::MAX, 1 << 63] {
            assert_eq!(from_generation(generation(value)), value);
        }
    }

    #[test]
    fn integers_clamp_and_refuse_negatives() {
        assert_eq!(int(u64::MAX), i64::MAX);
        assert_eq!(int(5), 5);
        assert_eq!(unsigned(5).ok(), Some(5));
        assert!(matches!(unsigned(-1), Err(StoreError::Backend(_))));
    }
}
