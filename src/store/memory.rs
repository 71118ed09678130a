//! The in-memory allowlist, on `dashmap`.

use std::future::{Ready, ready};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use aws_lc_rs::constant_time;
use dashmap::DashMap;

use super::{
    Created, Liveness, RefreshState, Rotated, Rotation, Session, SessionLimit, SessionStore,
    StoreError, WhenFull,
};
use crate::clock::{from_unix_micros, from_unix_seconds, unix_micros, unix_seconds};
use crate::{Clock, SessionId};

/// The in-memory session store: one process, no set-up.
///
/// Sessions sit in a map keyed by session id, so the check on every request is one hash
/// lookup under a shard read lock (no global lock). Beside it, an index from user to their
/// session ids in the order they were created, and the user's "not before" mark: every write
/// of a user (login, logout, logout-all, sweeping) holds that user's index entry first, so a
/// logout-all and a concurrent login serialise and never leave a session that the index does
/// not reach. A call reads at most the user's sessions, and the oldest is the first in the
/// index.
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

/// What the request path hashes: session ids, and users compared by hash. `foldhash` is
/// seeded per map and a fraction of SipHash's cost (several hundred instructions per request
/// here). Neither input can be chosen by a client: session ids come from the operating
/// system's random number generator, and only ids and users of tokens whose signature
/// verified reach a lookup. The map of users, whose names users do choose, keeps SipHash.
type FastHash = foldhash::fast::RandomState;

#[derive(Debug)]
struct Inner {
    sessions: DashMap<SessionId, Record, FastHash>,
    // Lock order: a `users` entry, then `sessions`; never the other way round.
    users: DashMap<Arc<str>, User>,
    sub_hasher: FastHash,
    clock: Clock,
    sweep_every: Duration,
    sweeper_started: AtomicBool,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            sessions: DashMap::with_hasher(FastHash::default()),
            users: DashMap::new(),
            sub_hasher: FastHash::default(),
            clock: Clock::system(),
            sweep_every: Duration::from_secs(60),
            sweeper_started: AtomicBool::new(false),
        }
    }
}

/// One user's index entry.
#[derive(Debug, Default)]
struct User {
    /// The user's session ids, first created first.
    ids: Vec<SessionId>,
    not_before: Option<Mark>,
}

/// A user's "not before" mark: no session authenticated before `before` is created; kept
/// until `keep_until`. Both in Unix microseconds, so that the mark bars to the very end it
/// was given (a whole second would end it up to a second early).
#[derive(Debug, Clone, Copy)]
struct Mark {
    before: u64,
    keep_until: u64,
}

impl User {
    /// Whether the entry holds nothing worth keeping at `now` (Unix microseconds).
    fn is_spent(&self, now: u64) -> bool {
        self.ids.is_empty() && self.not_before.is_none_or(|mark| mark.keep_until <= now)
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
    /// Unix microseconds, as `authenticated_at`.
    created_at: u64,
    authenticated_at: u64,
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
            created_at: from_unix_micros(details.created_at),
            authenticated_at: from_unix_micros(details.authenticated_at),
            expires_at: from_unix_seconds(self.expires_at),
            last_used_at: from_unix_seconds(self.last_used_at.load(Ordering::Relaxed)),
            user_agent: details.user_agent.as_deref().map(str::to_owned),
            address: details.address,
            refresh: details.refresh,
        }
    }

    /// Whether it records `session` as it was created (a retried create).
    fn is_creation_of(&self, session: &Session) -> bool {
        let details = &*self.details;
        *details.sub == *session.sub
            && details.created_at == unix_micros(session.created_at)
            && details.authenticated_at == unix_micros(session.authenticated_at)
            && details.refresh.generation == session.refresh.generation
            && details.refresh.digest == session.refresh.digest
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

    /// Drops every session expired at `now` (Unix seconds), and the "not before" marks kept
    /// long enough; returns how many sessions were dropped.
    pub fn sweep(&self, now: u64) -> usize {
        let mut dropped = 0;
        self.inner.users.retain(|_, user| {
            let before = user.ids.len();
            self.inner.drop_expired(&mut user.ids, now);
            dropped += before - user.ids.len();
            !user.is_spent(now.saturating_mul(1_000_000))
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
    /// any the index holds without a record; returns how many were dropped. The others keep
    /// their order.
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

    /// Forgets user `sub` if its entry (just released) holds nothing worth keeping; under
    /// the lock again, as a login may have come in between.
    /// Marks stay until the sweep, which knows the time.
    fn forget_if_spent(&self, sub: &str) {
        self.users.remove_if(sub, |_, user| {
            user.ids.is_empty() && user.not_before.is_none()
        });
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
        let now = unix_seconds(session.created_at);
        let mut user = inner.users.entry(Arc::clone(&sub)).or_default();
        inner.drop_expired(&mut user.ids, now);
        if let Some(existing) = inner.sessions.get(&session.id) {
            return if existing.is_creation_of(session) && user.ids.contains(&session.id) {
                Ok(Created::Live { ended: 0 })
            } else {
                Err(StoreError::Conflict)
            };
        }
        if let Some(mark) = user.not_before
            && mark.keep_until > unix_micros(session.created_at)
            && unix_micros(session.authenticated_at) < mark.before
        {
            return Ok(Created::Barred);
        }
        let mut ended = 0;
        if let Some(limit) = limit {
            let max = limit.max.max(1) as usize;
            if user.ids.len() >= max {
                if limit.when_full == WhenFull::RefuseNew {
                    return Ok(Created::LimitReached);
                }
                // The index is in creation order: the oldest are at its front.
                let over = user.ids.len() + 1 - max;
                for id in user.ids.drain(..over) {
                    inner.sessions.remove(&id);
                }
                ended = over as u32;
            }
        }
        match inner.sessions.entry(session.id) {
            dashmap::Entry::Occupied(_) => return Err(StoreError::Conflict),
            dashmap::Entry::Vacant(vacant) => {
                vacant.insert(Record {
                    expires_at: unix_seconds(session.expires_at),
                    sub_hash: inner.sub_hasher.hash_one(&*sub),
                    last_used_at: AtomicU64::new(unix_seconds(session.last_used_at)),
                    details: Box::new(Details {
                        sub,
                        created_at: unix_micros(session.created_at),
                        authenticated_at: unix_micros(session.authenticated_at),
                        user_agent: session.user_agent.as_deref().map(Box::from),
                        address: session.address,
                        refresh: session.refresh,
                    }),
                });
            }
        }
        user.ids.push(session.id);
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

    async fn liveness(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> Result<Option<Liveness>, StoreError> {
        if !self.is_active(sub, sid, now, touch_interval).await? {
            return Ok(None);
        }
        let inner = &*self.inner;
        Ok(inner.sessions.get(sid).map(|record| Liveness {
            until: record.expires_at,
            last_used: record.last_used_at.load(Ordering::Relaxed),
        }))
    }

    async fn rotate(
        &self,
        sub: &str,
        sid: &SessionId,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        let inner = &*self.inner;
        // Under the user's lock, as ending a reused session changes the index.
        let Some(mut user) = inner.users.get_mut(sub) else {
            return Ok(Rotated::Unknown);
        };
        if !user.ids.contains(sid) {
            return Ok(Rotated::Unknown);
        }
        let outcome = match inner.sessions.get_mut(sid) {
            None => Rotated::Unknown,
            Some(record) if rotation.now >= record.expires_at => Rotated::Unknown,
            Some(mut record) => {
                let record = &mut *record;
                let state = &mut record.details.refresh;
                let is = |generation: u64, digest: &[u8; 32]| {
                    state.generation == generation
                        && constant_time::verify_slices_are_equal(digest, &state.digest).is_ok()
                };
                if is(rotation.generation, &rotation.digest) {
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
                } else if rotation
                    .generation
                    .checked_add(1)
                    .is_some_and(|next| is(next, &rotation.next_digest))
                {
                    // This very rotation took effect already: a retry.
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
            user.ids.retain(|id| id != sid);
            drop(user);
            inner.forget_if_spent(sub);
        }
        Ok(outcome)
    }

    async fn revoke(&self, sub: &str, sid: &SessionId) -> Result<bool, StoreError> {
        let inner = &*self.inner;
        let Some(mut user) = inner.users.get_mut(sub) else {
            return Ok(false);
        };
        let Some(index) = user.ids.iter().position(|id| id == sid) else {
            return Ok(false);
        };
        user.ids.remove(index);
        inner.sessions.remove(sid);
        drop(user);
        inner.forget_if_spent(sub);
        Ok(true)
    }

    async fn revoke_all(&self, sub: &str) -> Result<u64, StoreError> {
        let inner = &*self.inner;
        // Under the user's lock: no login slips in between.
        let Some(mut user) = inner.users.get_mut(sub) else {
            return Ok(0);
        };
        let ids = std::mem::take(&mut user.ids);
        for id in &ids {
            inner.sessions.remove(id);
        }
        drop(user);
        inner.forget_if_spent(sub);
        Ok(ids.len() as u64)
    }

    async fn revoke_authenticated_before(
        &self,
        sub: &str,
        before: SystemTime,
        keep_until: SystemTime,
    ) -> Result<u64, StoreError> {
        let inner = &*self.inner;
        let before = unix_micros(before);
        let keep_until = unix_micros(keep_until);
        let mut user = inner.users.entry(Arc::from(sub)).or_default();
        let mark = user.not_before.get_or_insert(Mark { before, keep_until });
        mark.before = mark.before.max(before);
        mark.keep_until = mark.keep_until.max(keep_until);
        let ended = inner.drop_where(&mut user.ids, |record| {
            record.details.authenticated_at < before
        });
        drop(user);
        inner.forget_if_spent(sub);
        Ok(ended)
    }

    async fn list(&self, sub: &str, now: u64, max: usize) -> Result<Vec<Session>, StoreError> {
        let inner = &*self.inner;
        let Some(user) = inner.users.get(sub) else {
            return Ok(Vec::new());
        };
        let mut sessions: Vec<Session> = user
            .ids
            .iter()
            .rev()
            .filter_map(|id| {
                let record = inner.sessions.get(id)?;
                (now < record.expires_at).then(|| record.to_session(*id))
            })
            .take(max)
            .collect();
        sessions.reverse();
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

    fn t(unix_seconds: u64) -> SystemTime {
        from_unix_seconds(unix_seconds)
    }

    #[tokio::test]
    async fn revoking_the_last_session_removes_the_user() {
        let store = MemoryStore::new();
        store
            .create(&Session::new(id(1), "alice", t(0), t(10)), None)
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
            .create(&Session::new(id(1), "alice", t(0), t(10)), None)
            .await
            .unwrap();
        store
            .create(&Session::new(id(2), "alice", t(20), t(30)), None)
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
                .create(&Session::new(id(n), user, t(0), t(10 + u64::from(n))), None)
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
            .create(&Session::new(id(1), "alice", t(0), t(30)), None)
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
    async fn list_is_first_created_first_and_hides_expired() {
        let store = MemoryStore::new();
        store
            .create(&Session::new(id(2), "alice", t(5), t(100)), None)
            .await
            .unwrap();
        store
            .create(&Session::new(id(1), "alice", t(1), t(100)), None)
            .await
            .unwrap();
        store
            .create(&Session::new(id(3), "alice", t(6), t(7)), None)
            .await
            .unwrap();
        let ids: Vec<_> = store
            .list("alice", 8, usize::MAX)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        // Created in that order, whatever their clocks said.
        assert_eq!(ids, [id(2), id(1)]);
    }

    #[tokio::test]
    async fn the_sweep_keeps_a_mark_until_its_end() {
        let store = MemoryStore::new();
        let keep_until = from_unix_micros(10_500_000);
        store
            .revoke_authenticated_before("alice", t(5), keep_until)
            .await
            .unwrap();
        let mut barred = Session::new(id(1), "alice", t(10), t(100));
        barred.authenticated_at = t(4);
        store.sweep(10);
        assert_eq!(store.create(&barred, None).await.unwrap(), Created::Barred);
        store.sweep(11);
        assert!(store.inner.users.is_empty(), "the mark ended at 10.5 s");
    }
}
