//! [`NearCache`]: the answers of a shared store, kept in this process while events say they
//! still hold.
//!
//! On a shared store every request costs a round trip, so a fleet's load on the store grows
//! with its request rate. A near-cache remembers "session `sid` of `sub` is live until `T`"
//! and answers from memory until `T`, until the session's touch is due, or until an event
//! says the session ended. The events come from the store itself: every way of ending a
//! session (logout, logout-all, revocation by time, the session limit, refresh-token reuse)
//! publishes one in the same atomic step as the change, and an event feed hands them to the
//! cache's [`Invalidations`].
//!
//! The cache never trusts itself blindly. It answers only while the feed is connected
//! **and** a heartbeat went through the feed within
//! [`max_silence`](NearCacheConfig::max_silence) (one second by default): a lost channel or
//! a silent network partition empties it, and every request goes to the store until the feed
//! is back and has carried a heartbeat again (it is emptied once more then). A store outage
//! therefore still answers 503 within the store's timeout, never cached 200s.
//!
//! What it costs: a revocation becomes visible to another instance when its event arrives,
//! not at the store write. So that a client never outruns it, an ending through a
//! near-cache answers only once its own feed has carried a heartbeat sent after the change
//! (the event went out before it on the same channel, to every instance): a logout costs one
//! more trip through the channel (about half a millisecond locally), and the next request,
//! to any instance, finds the session ended. Everything else is as without it.
//!
//! ```
//! use std::time::Duration;
//!
//! use tower_jwt_auth::store::{MemoryStore, NearCache, NearCacheConfig, SessionStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // An event feed of your own drives the cache through `invalidations`.
//! let (store, invalidations) = NearCache::new(MemoryStore::new(), NearCacheConfig::default());
//! invalidations.connected();
//! invalidations.heartbeat(); // from then on, at least once per `max_silence`
//! # let _ = store;
//! # }
//! ```

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use pin_project_lite::pin_project;
use tokio::sync::Notify;

use super::{
    Created, Liveness, Rotated, Rotation, Session, SessionLimit, SessionStore, StoreError,
};
use crate::SessionId;

/// How a [`NearCache`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheConfig {
    /// The most sessions kept (about 100 bytes each). Default: 100,000.
    pub capacity: usize,
    /// How long the feed may go without a heartbeat before the cache is emptied and
    /// bypassed. Default: one second.
    pub max_silence: Duration,
}

impl Default for NearCacheConfig {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            max_silence: Duration::from_secs(1),
        }
    }
}

impl NearCacheConfig {
    /// Keeps at most `capacity` sessions.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Distrusts the cache after `max_silence` without a heartbeat.
    pub fn max_silence(mut self, max_silence: Duration) -> Self {
        self.max_silence = max_silence;
        self
    }
}

/// A store that answers `is_active` from memory while its event feed vouches for it; see
/// the [module docs](self).
pub struct NearCache<S> {
    inner: Arc<S>,
    shared: Arc<Shared>,
}

impl<S> Clone for NearCache<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for NearCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("inner", &self.inner)
            .field("entries", &self.shared.entries.len())
            .field("trusted", &self.shared.trusted().is_some())
            .finish()
    }
}

/// The handle an event feed drives a [`NearCache`] with. It holds the cache weakly:
/// [`is_alive`](Self::is_alive) tells a feed when to stop.
#[derive(Debug, Clone)]
pub struct Invalidations {
    shared: Weak<Shared>,
    // Read by the crate's own feeds only.
    #[cfg_attr(
        not(any(test, feature = "redis", feature = "postgres")),
        allow(dead_code)
    )]
    echoes: Arc<Echoes>,
}

/// Heartbeats that endings ask the feed for, and hear back: see [`NearCache::settle`].
#[derive(Debug, Default)]
struct Echoes {
    /// Whether the feed sends them (the crate's own feeds do); otherwise nobody waits.
    answered: AtomicBool,
    /// Asked for so far; a heartbeat carries this count as it was when it was sent.
    asked: AtomicU64,
    /// The highest count an own heartbeat brought back.
    heard: AtomicU64,
    /// Wakes the feed when one is asked for.
    wanted: Notify,
    /// Wakes the endings waiting when one comes back.
    arrived: Notify,
}

/// One cached answer: the session is live until `live_until` (Unix seconds), and its last
/// use recorded in the store is `last_used`.
#[derive(Clone)]
struct Entry {
    sub: Arc<str>,
    live_until: u64,
    last_used: u64,
    epoch: u64,
}

struct Shared {
    entries: quick_cache::sync::Cache<
        SessionId,
        Entry,
        quick_cache::UnitWeighter,
        foldhash::fast::RandomState,
    >,
    /// Bumped by every event: an answer read from the store while one arrived is not kept.
    events: AtomicU64,
    /// Bumped whenever trust is lost or regained: entries of an older epoch are misses.
    epoch: AtomicU64,
    connected: AtomicBool,
    /// Milliseconds since `started` of the last heartbeat, plus one; 0: none since the
    /// feed (re)connected.
    last_heartbeat: AtomicU64,
    started: Instant,
    max_silence: u64,
    echoes: Arc<Echoes>,
}

impl Shared {
    fn millis(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// The current epoch when the cache may answer: connected, with a recent heartbeat.
    fn trusted(&self) -> Option<u64> {
        if !self.connected.load(SeqCst) {
            return None;
        }
        let last = self.last_heartbeat.load(SeqCst);
        if last == 0 || self.millis().saturating_sub(last) > self.max_silence {
            return None;
        }
        Some(self.epoch.load(SeqCst))
    }

    fn distrust(&self) {
        self.epoch.fetch_add(1, SeqCst);
        self.entries.clear();
    }

    fn forget(&self, sid: &SessionId) {
        self.events.fetch_add(1, SeqCst);
        self.entries.remove(sid);
    }

    fn forget_user(&self, sub: &str) {
        self.events.fetch_add(1, SeqCst);
        self.entries.retain(|_, entry| &*entry.sub != sub);
    }
}

impl Invalidations {
    fn with(&self, f: impl FnOnce(&Shared)) {
        if let Some(shared) = self.shared.upgrade() {
            f(&shared);
        }
    }

    /// Whether the cache still exists; a feed stops when it does not.
    pub fn is_alive(&self) -> bool {
        self.shared.strong_count() > 0
    }

    /// Session `sid` ended.
    pub fn session_ended(&self, sid: &SessionId) {
        self.with(|shared| shared.forget(sid));
    }

    /// Some or all sessions of `sub` ended.
    pub fn user_ended(&self, sub: &str) {
        self.with(|shared| shared.forget_user(sub));
    }

    /// The feed is subscribed (again). The cache is emptied, and answers again after the
    /// next [`heartbeat`](Self::heartbeat).
    pub fn connected(&self) {
        self.with(|shared| {
            shared.last_heartbeat.store(0, SeqCst);
            shared.connected.store(true, SeqCst);
            shared.distrust();
        });
    }

    /// The feed lost its channel: events may be missed, so the cache is emptied and
    /// bypassed until [`connected`](Self::connected).
    pub fn lost(&self) {
        self.with(|shared| {
            shared.connected.store(false, SeqCst);
            shared.distrust();
        });
    }

    /// A heartbeat went through the feed. After a silence longer than `max_silence`
    /// (events may have been missed meanwhile) the cache is emptied first.
    pub fn heartbeat(&self) {
        self.with(|shared| {
            let now = shared.millis();
            let last = shared.last_heartbeat.swap(now, SeqCst);
            if last == 0 || now.saturating_sub(last) > shared.max_silence {
                shared.distrust();
            }
        });
    }
}

/// What the crate's own feeds do besides: heartbeats on request (see [`NearCache::settle`]).
#[cfg(any(test, feature = "redis", feature = "postgres"))]
impl Invalidations {
    /// The feed sends a heartbeat whenever an ending asks for one, tagged with
    /// [`echoes_asked`](Self::echoes_asked), and reports it back with
    /// [`echoed`](Self::echoed): endings then wait for it.
    pub(crate) fn answer_echoes(&self) {
        self.echoes.answered.store(true, SeqCst);
    }

    /// How many heartbeats endings have asked for so far.
    pub(crate) fn echoes_asked(&self) -> u64 {
        self.echoes.asked.load(SeqCst)
    }

    /// Resolves when an ending asks for a heartbeat (at once if one asked meanwhile).
    pub(crate) async fn echo_wanted(&self) {
        self.echoes.wanted.notified().await;
    }

    /// An own heartbeat sent when `asked` heartbeats had been asked for came back.
    pub(crate) fn echoed(&self, asked: u64) {
        if self.echoes.heard.fetch_max(asked, SeqCst) < asked {
            self.echoes.arrived.notify_waiters();
        }
    }
}

impl<S: SessionStore> NearCache<S> {
    /// A near-cache over `inner`, and the handle its event feed drives it with. Until the
    /// feed reports [`connected`](Invalidations::connected) and a
    /// [`heartbeat`](Invalidations::heartbeat), every request goes to `inner`.
    pub fn new(inner: S, config: NearCacheConfig) -> (Self, Invalidations) {
        let echoes = Arc::new(Echoes::default());
        let shared = Arc::new(Shared {
            entries: quick_cache::sync::Cache::with(
                config.capacity.max(1),
                config.capacity.max(1) as u64,
                quick_cache::UnitWeighter,
                foldhash::fast::RandomState::default(),
                Default::default(),
            ),
            events: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            last_heartbeat: AtomicU64::new(0),
            started: Instant::now(),
            max_silence: u64::try_from(config.max_silence.as_millis()).unwrap_or(u64::MAX),
            echoes: Arc::clone(&echoes),
        });
        let invalidations = Invalidations {
            shared: Arc::downgrade(&shared),
            echoes,
        };
        let store = Self {
            inner: Arc::new(inner),
            shared,
        };
        (store, invalidations)
    }

    /// The store it caches.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Whether it answers from memory now (its feed is connected and heard from).
    pub fn is_trusted(&self) -> bool {
        self.shared.trusted().is_some()
    }

    /// How many sessions it holds.
    pub fn len(&self) -> usize {
        self.shared.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// After an ending, waits until this instance's own feed has carried a heartbeat sent
    /// after it: the store sent the ending's event before, on the same channel, so every
    /// other instance's feed has been sent it too. A logout then answers only once it has
    /// reached the fleet, and the next request to another instance finds the session
    /// ended. The wait is bounded by `max_silence` (past it the caches distrust their
    /// feeds anyway); feeds that do not answer such requests are not waited for.
    async fn settle(&self) {
        let echoes = &self.shared.echoes;
        if !echoes.answered.load(SeqCst) || self.shared.trusted().is_none() {
            return;
        }
        let ticket = echoes.asked.fetch_add(1, SeqCst) + 1;
        echoes.wanted.notify_one();
        let heard = async {
            loop {
                let arrived = echoes.arrived.notified();
                if echoes.heard.load(SeqCst) >= ticket {
                    return;
                }
                arrived.await;
            }
        };
        let max_silence = Duration::from_millis(self.shared.max_silence);
        let _ = tokio::time::timeout(max_silence, heard).await;
    }
}

pin_project! {
    /// The future of [`NearCache::is_active`](SessionStore::is_active): ready at once on a
    /// hit, a store round trip on a miss.
    pub struct NearCacheIsActive {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Hit { #[pin] fut: Ready<Result<bool, StoreError>> },
        Miss { fut: Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>> },
    }
}

impl Future for NearCacheIsActive {
    type Output = Result<bool, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Hit { fut } => fut.poll(cx),
            StateProj::Miss { fut } => fut.as_mut().poll(cx),
        }
    }
}

impl<S: SessionStore> SessionStore for NearCache<S> {
    type IsActive = NearCacheIsActive;

    async fn create(
        &self,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> Result<Created, StoreError> {
        let created = self.inner.create(session, limit).await;
        if let Ok(Created::Live { ended }) = created
            && ended > 0
        {
            self.shared.forget_user(&session.sub);
            self.settle().await;
        }
        created
    }

    fn is_active(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> Self::IsActive {
        let shared = &self.shared;
        let epoch = shared.trusted();
        if let Some(epoch) = epoch
            && let Some(entry) = shared.entries.get(sid)
            && entry.epoch == epoch
            && *entry.sub == *sub
            && now < entry.live_until
            // The store's touch is not due yet.
            && now.saturating_sub(entry.last_used) < touch_interval
        {
            return NearCacheIsActive {
                state: State::Hit {
                    fut: ready(Ok(true)),
                },
            };
        }
        let events = shared.events.load(SeqCst);
        let inner = Arc::clone(&self.inner);
        let shared = Arc::clone(&self.shared);
        let sub: Arc<str> = sub.into();
        let sid = *sid;
        let fut = async move {
            let liveness = inner.liveness(&sub, &sid, now, touch_interval).await?;
            match liveness {
                Some(Liveness { until, last_used }) if now < until => {
                    if let Some(epoch) = epoch {
                        let entry = Entry {
                            sub,
                            live_until: until,
                            last_used,
                            epoch,
                        };
                        shared.entries.insert(sid, entry);
                        // An event that arrived while the store answered may be about this
                        // session: the answer is not kept (checked after the insert, so an
                        // event arriving later removes it).
                        if shared.events.load(SeqCst) != events {
                            shared.entries.remove(&sid);
                        }
                    }
                    Ok(true)
                }
                _ => {
                    shared.entries.remove(&sid);
                    Ok(false)
                }
            }
        };
        NearCacheIsActive {
            state: State::Miss { fut: Box::pin(fut) },
        }
    }

    async fn rotate(
        &self,
        sub: &str,
        sid: &SessionId,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        // Its end changes: forgotten before and after, so no answer read meanwhile stays.
        self.shared.forget(sid);
        let rotated = self.inner.rotate(sub, sid, rotation).await;
        self.shared.forget(sid);
        if let Ok(Rotated::Reused) = rotated {
            self.settle().await;
        }
        rotated
    }

    async fn revoke(&self, sub: &str, sid: &SessionId) -> Result<bool, StoreError> {
        // Forgotten before and after: no answer read meanwhile is kept.
        self.shared.forget(sid);
        let revoked = self.inner.revoke(sub, sid).await;
        self.shared.forget(sid);
        if let Ok(true) = revoked {
            self.settle().await;
        }
        revoked
    }

    async fn revoke_all(&self, sub: &str) -> Result<u64, StoreError> {
        self.shared.forget_user(sub);
        let revoked = self.inner.revoke_all(sub).await;
        self.shared.forget_user(sub);
        if let Ok(1..) = revoked {
            self.settle().await;
        }
        revoked
    }

    async fn revoke_authenticated_before(
        &self,
        sub: &str,
        before: SystemTime,
        keep_until: SystemTime,
    ) -> Result<u64, StoreError> {
        self.shared.forget_user(sub);
        let revoked = self
            .inner
            .revoke_authenticated_before(sub, before, keep_until)
            .await;
        self.shared.forget_user(sub);
        if let Ok(1..) = revoked {
            self.settle().await;
        }
        revoked
    }

    async fn list(&self, sub: &str, now: u64, max: usize) -> Result<Vec<Session>, StoreError> {
        self.inner.list(sub, now, max).await
    }

    async fn liveness(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> Result<Option<Liveness>, StoreError> {
        self.inner.liveness(sub, sid, now, touch_interval).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_unix_seconds;
    use crate::store::MemoryStore;

    const TOUCH: u64 = 60;

    fn id(n: u8) -> SessionId {
        SessionId::from_bytes([n; 16])
    }

    /// A near-cache over a memory store, with its feed connected and heard from, and one
    /// live session (id 1 of alice, from 1,000 to 2,000).
    async fn cache() -> (NearCache<MemoryStore>, Invalidations) {
        cache_with(NearCacheConfig::default(), true).await
    }

    /// The same with `config`, its feed heard from or not.
    async fn cache_with(
        config: NearCacheConfig,
        heard: bool,
    ) -> (NearCache<MemoryStore>, Invalidations) {
        let (cache, feed) = NearCache::new(MemoryStore::new(), config);
        if heard {
            feed.connected();
            feed.heartbeat();
        }
        let session = Session::new(
            id(1),
            "alice",
            from_unix_seconds(1_000),
            from_unix_seconds(2_000),
        );
        cache.create(&session, None).await.unwrap();
        (cache, feed)
    }

    /// Whether the answer came from memory: the session is removed from the store behind
    /// the cache's back first, so only a cached answer can still say "live".
    async fn served_from_memory(cache: &NearCache<MemoryStore>, now: u64) -> bool {
        let behind = cache.inner().clone();
        let restore = behind.list("alice", now, 10).await.unwrap();
        behind.revoke_all("alice").await.unwrap();
        let served = live(cache, now).await;
        for session in restore {
            behind.create(&session, None).await.unwrap();
        }
        served
    }

    /// Whether the cache answers that alice's session is live at `now`.
    async fn live(cache: &NearCache<MemoryStore>, now: u64) -> bool {
        cache.is_active("alice", &id(1), now, TOUCH).await.unwrap()
    }

    #[tokio::test]
    async fn a_checked_session_is_answered_from_memory() {
        let (cache, _feed) = cache().await;
        assert!(live(&cache, 1_100).await);
        assert_eq!(cache.len(), 1);
        assert!(served_from_memory(&cache, 1_101).await);
    }

    #[tokio::test]
    async fn another_user_with_the_same_id_is_not_served() {
        let (cache, _feed) = cache().await;
        assert!(live(&cache, 1_100).await);
        assert!(!cache.is_active("bob", &id(1), 1_101, TOUCH).await.unwrap());
    }

    #[tokio::test]
    async fn the_cached_end_is_honoured() {
        let (cache, _feed) = cache().await;
        assert!(live(&cache, 1_990).await);
        assert!(served_from_memory(&cache, 1_999).await);
        assert!(!live(&cache, 2_000).await);
    }

    #[tokio::test]
    async fn the_touch_still_reaches_the_store_once_per_interval() {
        let (cache, _feed) = cache().await;
        assert!(live(&cache, 1_100).await);
        assert!(served_from_memory(&cache, 1_100 + TOUCH - 1).await);
        // Due for a touch: asked of the store (which no longer has it).
        assert!(!served_from_memory(&cache, 1_100 + TOUCH).await);
        assert!(live(&cache, 1_100 + TOUCH).await);
        let listed = cache.list("alice", 1_100 + TOUCH, 10).await.unwrap();
        assert_eq!(listed[0].last_used_at, from_unix_seconds(1_100 + TOUCH));
    }

    #[tokio::test]
    async fn an_event_ends_the_cached_answer() {
        let (cache, feed) = cache().await;
        assert!(live(&cache, 1_100).await);
        feed.session_ended(&id(1));
        assert!(!served_from_memory(&cache, 1_101).await);

        assert!(live(&cache, 1_102).await);
        feed.user_ended("alice");
        assert!(!served_from_memory(&cache, 1_103).await);
    }

    #[tokio::test]
    async fn nothing_is_served_before_the_feed_is_heard_from() {
        let (cache, _feed) = cache_with(NearCacheConfig::default(), false).await;
        assert!(live(&cache, 1_100).await);
        assert!(!cache.is_trusted());
        assert!(cache.is_empty());
        assert!(!served_from_memory(&cache, 1_101).await);
    }

    #[tokio::test]
    async fn a_lost_feed_empties_and_bypasses_the_cache_until_it_is_back() {
        let (cache, feed) = cache().await;
        assert!(live(&cache, 1_100).await);
        feed.lost();
        assert!(cache.is_empty());
        assert!(!served_from_memory(&cache, 1_101).await);
        // Reconnected: still bypassed until a heartbeat went through.
        assert!(live(&cache, 1_102).await);
        feed.connected();
        assert!(!served_from_memory(&cache, 1_103).await);
        feed.heartbeat();
        assert!(live(&cache, 1_104).await);
        assert!(served_from_memory(&cache, 1_105).await);
    }

    #[tokio::test]
    async fn a_silent_feed_is_distrusted_and_emptied_when_heard_again() {
        let config = NearCacheConfig::default().max_silence(Duration::from_millis(50));
        let (cache, feed) = cache_with(config, true).await;
        assert!(live(&cache, 1_100).await);
        assert!(served_from_memory(&cache, 1_101).await);
        std::thread::sleep(Duration::from_millis(80));
        assert!(!cache.is_trusted());
        assert!(!served_from_memory(&cache, 1_102).await);
        // Heard again: what was cached before the silence is gone.
        feed.heartbeat();
        assert!(cache.is_empty());
        assert!(cache.is_trusted());
    }

    #[tokio::test]
    async fn an_answer_read_while_an_event_arrived_is_not_kept() {
        let (cache, feed) = cache().await;
        let pending = cache.is_active("alice", &id(1), 1_100, TOUCH);
        // The event lands between the request to the store and its answer.
        feed.session_ended(&id(2));
        assert!(pending.await.unwrap());
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn local_endings_are_forgotten_at_once() {
        let (cache, _feed) = cache().await;
        assert!(live(&cache, 1_100).await);
        cache.revoke("alice", &id(1)).await.unwrap();
        assert!(!live(&cache, 1_101).await);
    }

    #[tokio::test]
    async fn the_feed_stops_with_the_cache() {
        let (cache, feed) = cache().await;
        assert!(feed.is_alive());
        drop(cache);
        assert!(!feed.is_alive());
        feed.heartbeat(); // a no-op, not a panic
    }

    #[tokio::test]
    async fn an_ending_answers_once_the_feed_carried_a_heartbeat_sent_after_it() {
        let (cache, feed) = cache().await;
        feed.answer_echoes();
        let sid = id(1);
        let revoke = cache.revoke("alice", &sid);
        tokio::pin!(revoke);
        let pending = Duration::from_millis(50);
        assert!(tokio::time::timeout(pending, &mut revoke).await.is_err());
        assert_eq!(feed.echoes_asked(), 1);
        feed.echo_wanted().await; // the feed was woken
        // A heartbeat sent before the ending asked proves nothing.
        feed.echoed(0);
        assert!(tokio::time::timeout(pending, &mut revoke).await.is_err());
        feed.echoed(1);
        assert!(revoke.await.unwrap());
    }

    #[tokio::test]
    async fn nothing_waits_for_a_feed_that_sends_no_echoes_or_when_nothing_ended() {
        let (cache, feed) = cache().await;
        let quick = Duration::from_millis(200);
        let revoked = tokio::time::timeout(quick, cache.revoke("alice", &id(1))).await;
        assert!(revoked.expect("not waited for").unwrap());
        feed.answer_echoes();
        let revoked = tokio::time::timeout(quick, cache.revoke("alice", &id(1))).await;
        assert!(!revoked.expect("nothing ended").unwrap());
        assert_eq!(feed.echoes_asked(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_echo_is_waited_for_at_most_max_silence() {
        let (cache, feed) = cache().await;
        feed.answer_echoes();
        let started = tokio::time::Instant::now();
        assert_eq!(cache.revoke_all("alice").await.unwrap(), 1);
        assert_eq!(started.elapsed(), NearCacheConfig::default().max_silence);
    }
}
