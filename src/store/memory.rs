//! The in-memory allowlist, on `dashmap`.

use std::future::{Ready, ready};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;

use aws_lc_rs::constant_time;

use super::{
    Created, RefreshState, Rotated, Rotation, Session, SessionLimit, SessionStore, StoreError,
    WhenFull,
};
use crate::{Clock, SessionId};

/// The in-memory session store: one process, no set-up.
///
/// Sessions sit in a map keyed by session id, so the check on every request is one hash
/// lookup under a shard read lock (no global lock). Beside it, an index from user to session
/// ids: every write of a user (login, logout, logout-all, sweeping) holds that user's index
/// entry first, so a logout-all and a concurrent login serialise and never leave a session
/// that the index does not reach.
///
/// Expired sessions are dropped whenever their user is written to, and by a background
/// sweep (every minute by default) that starts with the first session created inside a
/// Tokio runtime and stops when the store is dropped; [`sweep`](Self::sweep) does it by hand.
///
/// Clones share the same sessions. See the [store docs](crate::store) for an example.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sessions: DashMap<SessionId, Record, FastHash>,
    // Lock order: a `users` entry, then `sessions`; never the other way round.
    users: DashMap<Arc<str>, Vec<SessionId>>,
    sub_hasher: FastHash,
    clock: Clock,
    sweep_every: Duration,
    sweeper_started: AtomicBool,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            sessions: DashMap::with_hasher(FastHash::new()),
            users: DashMap::new(),
            sub_hasher: FastHash::new(),
            clock: Clock::system(),
            sweep_every: Duration::from_secs(60),
            sweeper_started: AtomicBool::new(false),
        }
    }
}

/// A quick keyed multiply-rotate hash (in the manner of FxHash) for what the request path
/// hashes: session ids, and users compared by hash.
///
/// SipHash, the standard map's, resists inputs chosen to collide, and costs several hundred
/// instructions per request here. Neither input can be chosen: session ids come from the
/// operating system's random number generator, and only ids and users of tokens whose
/// signature verified reach a lookup. The map of users, whose names users do choose, keeps
/// SipHash.
#[derive(Clone, Debug)]
struct FastHash {
    seed: u64,
}

impl FastHash {
    fn new() -> Self {
        Self {
            // A per-store seed, from the standard library's random keys.
            seed: RandomState::new().hash_one(0u8),
        }
    }
}

impl BuildHasher for FastHash {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.seed)
    }
}

#[derive(Debug)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        // The map takes its bucket from the low bits and its tag from the top ones.
        self.0 ^ (self.0 >> 29)
    }
}

/// A session as the store keeps it. What every request reads sits inline in the map (one
/// cache line); the rest, read on writes and listings, sits behind a pointer.
#[derive(Debug)]
struct Record {
    expires_at: u64,
    /// A hash of the user, compared instead of the user itself to spare a pointer chase on
    /// every request. Session ids are random and only signed tokens reach the check, so a
    /// hash match of another user's name never happens by accident or by choice.
    sub_hash: u64,
    /// Written under the shard's read lock by `is_active`, at most once per touch interval.
    last_used_at: AtomicU64,
    details: Box<Details>,
}

#[derive(Debug)]
struct Details {
    sub: Arc<str>,
    created_at: u64,
    user_agent: Option<Box<str>>,
    address: Option<IpAddr>,
    refresh: RefreshState,
}

impl Record {
    fn to_session(&self, id: SessionId) -> Session {
        let details = &*self.details;
        Session {
            id,
            sub: details.sub.as_ref().to_owned(),
            created_at: details.created_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at.load(Ordering::Relaxed),
            user_agent: details.user_agent.as_deref().map(str::to_owned),
            address: details.address,
            refresh: details.refresh,
        }
    }
}

impl MemoryStore {
    /// An empty store on the system clock, swept every minute.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose background sweep runs every `every` on `clock` (a
    /// [`ManualClock`](crate::ManualClock) in tests).
    pub fn with_sweep(every: Duration, clock: impl Into<Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock: clock.into(),
                sweep_every: every.max(Duration::from_millis(1)),
                ..Inner::default()
            }),
        }
    }

    /// Drops every session expired at `now`; returns how many were dropped.
    pub fn sweep(&self, now: u64) -> usize {
        let mut dropped = 0;
        self.inner.users.retain(|_, ids| {
            let before = ids.len();
            self.inner.drop_expired(ids, now);
            dropped += before - ids.len();
            !ids.is_empty()
        });
        dropped
    }

    /// How many sessions the store holds, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Whether the store holds no session at all.
    pub fn is_empty(&self) -> bool {
        self.inner.sessions.is_empty()
    }

    fn start_sweeper(&self) {
        if self.inner.sweeper_started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.sweeper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = Arc::downgrade(&self.inner);
        let every = self.inner.sweep_every;
        runtime.spawn(sweep_until_dropped(store, every));
    }
}

impl Inner {
    /// Drops the expired sessions among `ids`, which the caller holds locked.
    fn drop_expired(&self, ids: &mut Vec<SessionId>, now: u64) {
        self.drop_where(ids, |record| now >= record.expires_at);
    }

    /// Drops the sessions among `ids` (held locked by the caller) that `condition` picks, and
    /// any the index holds without a record; returns how many were dropped.
    fn drop_where(&self, ids: &mut Vec<SessionId>, condition: impl Fn(&Record) -> bool) -> u64 {
        let before = ids.len();
        ids.retain(|id| {
            let keep = self
                .sessions
                .get(id)
                .is_some_and(|record| !condition(&record));
            if !keep {
                self.sessions.remove(id);
            }
            keep
        });
        (before - ids.len()) as u64
    }

    /// Ends the oldest of `ids` (held locked by the caller).
    fn end_oldest(&self, ids: &mut Vec<SessionId>) {
        let oldest = ids
            .iter()
            .enumerate()
            .filter_map(|(index, id)| {
                let record = self.sessions.get(id)?;
                Some(((record.details.created_at, *id), index))
            })
            .min()
            .map(|(_, index)| index);
        if let Some(index) = oldest {
            let id = ids.swap_remove(index);
            self.sessions.remove(&id);
        }
    }

    /// Forgets user `sub` if `ids` (just released) left it with no session; under the
    /// lock again, as a login may have come in between.
    fn forget_if_empty(&self, sub: &str, empty: bool) {
        if empty {
            self.users.remove_if(sub, |_, ids| ids.is_empty());
        }
    }
}

async fn sweep_until_dropped(store: Weak<Inner>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    loop {
        ticks.tick().await;
        let Some(inner) = store.upgrade() else { return };
        let now = inner.clock.now();
        MemoryStore { inner }.sweep(now);
    }
}

impl SessionStore for MemoryStore {
    type IsActive = Ready<Result<bool, StoreError>>;

    async fn create(
        &self,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> Result<Created, StoreError> {
        self.start_sweeper();
        let inner = &*self.inner;
        let sub: Arc<str> = session.sub.as_str().into();
        let mut ids = inner.users.entry(Arc::clone(&sub)).or_default();
        inner.drop_expired(&mut ids, session.created_at);
        if inner.sessions.contains_key(&session.id) {
            return Err(StoreError::Conflict);
        }
        let mut ended = 0;
        if let Some(limit) = limit {
            while ids.len() >= limit.max.max(1) as usize {
                match limit.when_full {
                    WhenFull::RefuseNew => return Ok(Created::LimitReached),
                    WhenFull::EndOldest => inner.end_oldest(&mut ids),
                }
                ended += 1;
            }
        }
        match inner.sessions.entry(session.id) {
            dashmap::Entry::Occupied(_) => return Err(StoreError::Conflict),
            dashmap::Entry::Vacant(vacant) => {
                vacant.insert(Record {
                    expires_at: session.expires_at,
                    sub_hash: inner.sub_hasher.hash_one(&*sub),
                    last_used_at: AtomicU64::new(session.last_used_at),
                    details: Box::new(Details {
                        sub,
                        created_at: session.created_at,
                        user_agent: session.user_agent.as_deref().map(Box::from),
                        address: session.address,
                        refresh: session.refresh,
                    }),
                });
            }
        }
        ids.push(session.id);
        Ok(Created::Live { ended })
    }

    fn is_active(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> Self::IsActive {
        let inner = &*self.inner;
        let active = inner.sessions.get(sid).is_some_and(|record| {
            let live = now < record.expires_at && record.sub_hash == inner.sub_hasher.hash_one(sub);
            if live
                && now.saturating_sub(record.last_used_at.load(Ordering::Relaxed)) >= touch_interval
            {
                record.last_used_at.fetch_max(now, Ordering::Relaxed);
            }
            live
        });
        ready(Ok(active))
    }

    async fn rotate(
        &self,
        sub: &str,
        sid: &SessionId,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        let inner = &*self.inner;
        // Under the user's lock, as ending a reused session changes the index.
        let Some(mut ids) = inner.users.get_mut(sub) else {
            return Ok(Rotated::Unknown);
        };
        if !ids.contains(sid) {
            return Ok(Rotated::Unknown);
        }
        let outcome = match inner.sessions.get_mut(sid) {
            None => Rotated::Unknown,
            Some(record) if rotation.now >= record.expires_at => Rotated::Unknown,
            Some(mut record) => {
                let record = &mut *record;
                let state = &mut record.details.refresh;
                let current = rotation.generation == state.generation
                    && constant_time::verify_slices_are_equal(&rotation.digest, &state.digest)
                        .is_ok();
                if current {
                    *state = RefreshState {
                        generation: state.generation.saturating_add(1),
                        digest: rotation.next_digest,
                        rotated_at: rotation.now,
                    };
                    record.expires_at = rotation.expires_at;
                    record
                        .last_used_at
                        .fetch_max(rotation.now, Ordering::Relaxed);
                    Rotated::Rotated
                } else if rotation.generation.checked_add(1) == Some(state.generation)
                    && rotation.now < state.rotated_at.saturating_add(rotation.grace)
                {
                    Rotated::Forgiven
                } else {
                    Rotated::Reused
                }
            }
        };
        if outcome == Rotated::Reused {
            inner.sessions.remove(sid);
            ids.retain(|id| id != sid);
            let empty = ids.is_empty();
            drop(ids);
            inner.forget_if_empty(sub, empty);
        }
        Ok(outcome)
    }

    async fn revoke(&self, sub: &str, sid: &SessionId) -> Result<bool, StoreError> {
        let inner = &*self.inner;
        let Some(mut ids) = inner.users.get_mut(sub) else {
            return Ok(false);
        };
        let Some(index) = ids.iter().position(|id| id == sid) else {
            return Ok(false);
        };
        ids.swap_remove(index);
        inner.sessions.remove(sid);
        let empty = ids.is_empty();
        drop(ids);
        inner.forget_if_empty(sub, empty);
        Ok(true)
    }

    async fn revoke_all(&self, sub: &str) -> Result<u64, StoreError> {
        let inner = &*self.inner;
        // `remove_if` runs its closure under the user's lock: no login slips in between.
        let removed = inner.users.remove_if(sub, |_, ids| {
            for id in ids {
                inner.sessions.remove(id);
            }
            true
        });
        Ok(removed.map_or(0, |(_, ids)| ids.len() as u64))
    }

    async fn revoke_created_before(&self, sub: &str, before: u64) -> Result<u64, StoreError> {
        let inner = &*self.inner;
        let Some(mut ids) = inner.users.get_mut(sub) else {
            return Ok(0);
        };
        let ended = inner.drop_where(&mut ids, |record| record.details.created_at < before);
        let empty = ids.is_empty();
        drop(ids);
        inner.forget_if_empty(sub, empty);
        Ok(ended)
    }

    async fn list(&self, sub: &str, now: u64) -> Result<Vec<Session>, StoreError> {
        let inner = &*self.inner;
        let mut sessions: Vec<Session> = match inner.users.get(sub) {
            Some(ids) => ids
                .iter()
                .filter_map(|id| {
                    let record = inner.sessions.get(id)?;
                    (now < record.expires_at).then(|| record.to_session(*id))
                })
                .collect(),
            None => Vec::new(),
        };
        sessions.sort_by_key(|session| (session.created_at, session.id));
        Ok(sessions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn id(n: u8) -> SessionId {
        SessionId::from_bytes([n; 16])
    }

    #[tokio::test]
    async fn revoking_the_last_session_removes_the_user() {
        let store = MemoryStore::new();
        store
            .create(&Session::new(id(1), "alice", 0, 10), None)
            .await
            .unwrap();
        assert!(store.revoke("alice", &id(1)).await.unwrap());
        assert!(store.is_empty());
        assert!(!store.revoke("alice", &id(1)).await.unwrap());
    }

    #[tokio::test]
    async fn writes_drop_the_users_expired_sessions() {
        let store = MemoryStore::new();
        store
            .create(&Session::new(id(1), "alice", 0, 10), None)
            .await
            .unwrap();
        store
            .create(&Session::new(id(2), "alice", 20, 30), None)
            .await
            .unwrap();
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn sweep_drops_expired_sessions_of_every_user() {
        let store = MemoryStore::new();
        for n in 0..10 {
            let user = format!("user{n}");
            store
                .create(&Session::new(id(n), user, 0, 10 + u64::from(n)), None)
                .await
                .unwrap();
        }
        // Expiring at 10..=19: those at or before 15 are gone.
        assert_eq!(store.sweep(15), 6);
        assert_eq!(store.len(), 4);
        assert_eq!(store.sweep(100), 4);
        assert!(store.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_background_sweep_runs_and_stops_with_the_store() {
        let clock = ManualClock::new(0);
        let store = MemoryStore::with_sweep(Duration::from_secs(60), clock.clone());
        store
            .create(&Session::new(id(1), "alice", 0, 30), None)
            .await
            .unwrap();
        clock.set(31);
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert!(store.is_empty(), "swept by the background task");

        let weak = Arc::downgrade(&store.inner);
        drop(store);
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert!(
            weak.upgrade().is_none(),
            "the sweeper holds no strong reference"
        );
    }

    #[tokio::test]
    async fn list_is_oldest_first_and_hides_expired() {
        let store = MemoryStore::new();
        store
            .create(&Session::new(id(2), "alice", 5, 100), None)
            .await
            .unwrap();
        store
            .create(&Session::new(id(1), "alice", 1, 100), None)
            .await
            .unwrap();
        store
            .create(&Session::new(id(3), "alice", 6, 7), None)
            .await
            .unwrap();
        let ids: Vec<_> = store
            .list("alice", 8)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, [id(1), id(2)]);
    }
}
