//! A reference model of the `SessionStore` contract as `MemoryStore` keeps it, and a harness
//! that runs one sequence of operations on both and compares every answer.
//!
//! Shared by the property tests (`tests/properties.rs`) and the `store_model` fuzz target
//! (`fuzz/fuzz_targets/store_model.rs`, through `#[path]`), so the model is written once.
//!
//! The model is a `BTreeMap` from session id to session, each numbered in the order it was
//! created, and a map from user to their "not before" mark. Expired sessions stay in it until
//! one of the removal points the store documents drops them (a `create` of the same user, a
//! `sweep`, a revoke), because some answers count them: `revoke_all`, `revoke` and
//! `revoke_authenticated_before` answer for what was there, expired or not, and `len` counts
//! what is held.
//!
//! What it pins down of the contract:
//! - "oldest" is the first created, by the order of the calls, whatever the creation times
//!   say (the harness's clock moves in microseconds, often not at all between two logins,
//!   and a login may be backdated);
//! - the "not before" mark: raised (never lowered) by `revoke_authenticated_before`, checked
//!   by `create` against the authentication time to the microsecond, forgotten by `sweep`
//!   once kept long enough and the user holds no session;
//! - a `create` or `rotate` repeated with the same arguments ([`Op::Repeat`]) answers as it
//!   did the first time, as long as nothing changed the session in between;
//! - `list` returns at most the `max` newest live sessions, oldest first.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use tower_jwt_auth::SessionId;
use tower_jwt_auth::clock::{from_unix_micros, from_unix_seconds, unix_micros, unix_seconds};
use tower_jwt_auth::store::{
    Created, MemoryStore, RefreshState, Rotated, Rotation, Session, SessionLimit, SessionStore,
    WhenFull,
};

/// The users operations pick from.
pub const USERS: [&str; 3] = ["alice", "bob", "carol"];

/// How many session ids operations pick from (shared by all users, so that ids collide).
pub const IDS: u8 = 6;

/// When every sequence starts (seconds since the Unix epoch).
pub const START: u64 = 1_000;

const MICROS: u64 = 1_000_000;

/// The session id numbered `n`.
pub fn session_id(n: u8) -> SessionId {
    // Ids whose byte order differs from their numbering, so "oldest" is not "smallest id".
    let mut bytes = [n.wrapping_mul(0x9d); 16];
    bytes[15] = n;
    SessionId::from_bytes(bytes)
}

/// The refresh-token digest numbered `n`.
pub fn digest(n: u8) -> [u8; 32] {
    [n; 32]
}

/// One call on a store. Users, ids and digests are small numbers (taken modulo their
/// range), times are offsets from the sequence's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `create` of a session starting `backdate` seconds ago, authenticated `auth_lag`
    /// microseconds before it starts, and lasting `ttl` whole seconds from the second it
    /// starts in.
    Create {
        user: u8,
        id: u8,
        backdate: u64,
        auth_lag: u64,
        ttl: u64,
        /// A session limit: the most sessions, and whether the oldest end (or the new one is
        /// refused).
        limit: Option<(u32, bool)>,
        /// The refresh digest the session starts with.
        digest: u8,
        /// Whether it carries a user agent and an address.
        metadata: bool,
    },
    /// `is_active`, `lag` seconds in the past.
    IsActive {
        user: u8,
        id: u8,
        touch_interval: u64,
        lag: u64,
    },
    /// `rotate`, `lag` seconds in the past, presenting generation `generation` and digest
    /// `digest`.
    Rotate {
        user: u8,
        id: u8,
        generation: u64,
        digest: u8,
        next_digest: u8,
        ttl: u64,
        grace: u64,
        lag: u64,
    },
    /// The last `create` or `rotate` again, with the very same arguments: a retry after a
    /// lost answer (nothing when there was none).
    Repeat,
    /// `revoke`.
    Revoke { user: u8, id: u8 },
    /// `revoke_all`.
    RevokeAll { user: u8 },
    /// `revoke_authenticated_before` a time `offset` microseconds from now (negative: in
    /// the past), the mark kept until `keep` seconds from now.
    RevokeAuthenticatedBefore { user: u8, offset: i64, keep: u64 },
    /// `list` of at most `max` sessions, `lag` seconds in the past.
    List { user: u8, lag: u64, max: usize },
    /// `MemoryStore::sweep` at the sequence's clock.
    Sweep,
    /// The sequence's clock moves on, by microseconds (often less than a second).
    Advance { micros: u64 },
}

/// What a store answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// From `create`: the outcome, or the error's name.
    Created(Result<Created, String>),
    /// From `is_active`.
    Active(bool),
    /// From `rotate`.
    Rotated(Rotated),
    /// From `revoke`.
    Revoked(bool),
    /// From `revoke_all` and `revoke_authenticated_before`.
    Ended(u64),
    /// From `list`.
    Listed(Vec<Session>),
    /// From `sweep`.
    Swept(usize),
    /// From `Advance`, or a `Repeat` with nothing to repeat.
    Nothing,
}

/// Runs a future of the memory store, which answers without waiting.
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a memory store future did not complete at once"),
    }
}

/// A session held by the model, numbered in creation order.
#[derive(Debug, Clone)]
struct Held {
    session: Session,
    order: u64,
}

impl Held {
    fn expires_at(&self) -> u64 {
        unix_seconds(self.session.expires_at)
    }
}

/// A user's "not before" mark: `before` in microseconds, `keep_until` in seconds.
#[derive(Debug, Clone, Copy)]
struct Mark {
    before: u64,
    keep_until: u64,
}

/// The reference: every session held, by id, and every user's mark.
#[derive(Debug, Default, Clone)]
pub struct Model {
    sessions: BTreeMap<SessionId, Held>,
    marks: BTreeMap<String, Mark>,
    created: u64,
}

/// `session` as a store gives it back: creation and authentication to the microsecond, the
/// other times to the second.
fn as_stored(session: &Session) -> Session {
    let mut stored = session.clone();
    stored.created_at = from_unix_micros(unix_micros(session.created_at));
    stored.authenticated_at = from_unix_micros(unix_micros(session.authenticated_at));
    stored.expires_at = from_unix_seconds(unix_seconds(session.expires_at));
    stored.last_used_at = from_unix_seconds(unix_seconds(session.last_used_at));
    stored
}

impl Model {
    /// Sessions of `sub` held, expired or not.
    fn of<'a>(&'a self, sub: &'a str) -> impl Iterator<Item = &'a Held> + 'a {
        self.sessions.values().filter(move |s| s.session.sub == sub)
    }

    fn create(
        &mut self,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> Result<Created, String> {
        let now = unix_seconds(session.created_at);
        // A write of a user first drops that user's expired sessions.
        self.sessions
            .retain(|_, s| s.session.sub != session.sub || now < s.expires_at());
        // The memory store refuses an id that any user has, unless it is this very session
        // created before (as long as its refresh token did not rotate since).
        if let Some(held) = self.sessions.get(&session.id) {
            let was = &held.session;
            let same = was.sub == session.sub
                && unix_micros(was.created_at) == unix_micros(session.created_at)
                && unix_micros(was.authenticated_at) == unix_micros(session.authenticated_at)
                && was.refresh.generation == session.refresh.generation
                && was.refresh.digest == session.refresh.digest;
            return if same {
                Ok(Created::Live { ended: 0 })
            } else {
                Err("Conflict".to_owned())
            };
        }
        if let Some(mark) = self.marks.get(&session.sub)
            && mark.keep_until > now
            && unix_micros(session.authenticated_at) < mark.before
        {
            return Ok(Created::Barred);
        }
        let mut ended = 0;
        if let Some(limit) = limit {
            while self.of(&session.sub).count() >= limit.max.max(1) as usize {
                match limit.when_full {
                    WhenFull::RefuseNew => return Ok(Created::LimitReached),
                    WhenFull::EndOldest => {
                        // The first created, whatever its creation time says.
                        let oldest = self
                            .of(&session.sub)
                            .min_by_key(|s| s.order)
                            .map(|s| s.session.id);
                        if let Some(id) = oldest {
                            self.sessions.remove(&id);
                        }
                    }
                }
                ended += 1;
            }
        }
        self.created += 1;
        let held = Held {
            session: as_stored(session),
            order: self.created,
        };
        self.sessions.insert(session.id, held);
        Ok(Created::Live { ended })
    }

    fn is_active(&mut self, sub: &str, id: &SessionId, now: u64, touch_interval: u64) -> bool {
        match self.sessions.get_mut(id) {
            Some(s) if s.session.sub == sub && now < s.expires_at() => {
                let last_used = unix_seconds(s.session.last_used_at);
                if now.saturating_sub(last_used) >= touch_interval {
                    s.session.last_used_at = from_unix_seconds(last_used.max(now));
                }
                true
            }
            _ => false,
        }
    }

    fn rotate(&mut self, sub: &str, id: &SessionId, rotation: &Rotation) -> Rotated {
        let Some(s) = self.sessions.get_mut(id).filter(|s| s.session.sub == sub) else {
            return Rotated::Unknown;
        };
        if rotation.now >= s.expires_at() {
            return Rotated::Unknown;
        }
        let state = s.session.refresh;
        let next = rotation.generation.checked_add(1);
        if rotation.generation == state.generation && rotation.digest == state.digest {
            s.session.refresh = RefreshState {
                generation: state.generation.saturating_add(1),
                digest: rotation.next_digest,
                rotated_at: rotation.now,
            };
            s.session.expires_at = from_unix_seconds(rotation.expires_at);
            let last_used = unix_seconds(s.session.last_used_at);
            s.session.last_used_at = from_unix_seconds(last_used.max(rotation.now));
            Rotated::Rotated
        } else if next == Some(state.generation) && rotation.next_digest == state.digest {
            // This very rotation took effect already: a retry changes nothing.
            Rotated::Rotated
        } else if next == Some(state.generation)
            && rotation.now < state.rotated_at.saturating_add(rotation.grace)
        {
            Rotated::Forgiven
        } else {
            self.sessions.remove(id);
            Rotated::Reused
        }
    }

    fn revoke(&mut self, sub: &str, id: &SessionId) -> bool {
        if self.sessions.get(id).is_some_and(|s| s.session.sub == sub) {
            self.sessions.remove(id);
            true
        } else {
            false
        }
    }

    fn revoke_where(&mut self, sub: &str, condition: impl Fn(&Session) -> bool) -> u64 {
        let before = self.sessions.len();
        self.sessions
            .retain(|_, s| s.session.sub != sub || !condition(&s.session));
        (before - self.sessions.len()) as u64
    }

    fn revoke_authenticated_before(&mut self, sub: &str, before: u64, keep_until: u64) -> u64 {
        let mark = self
            .marks
            .entry(sub.to_owned())
            .or_insert(Mark { before, keep_until });
        // The mark never goes down, nor does how long it is kept.
        mark.before = mark.before.max(before);
        mark.keep_until = mark.keep_until.max(keep_until);
        self.revoke_where(sub, |s| unix_micros(s.authenticated_at) < before)
    }

    fn list(&self, sub: &str, now: u64, max: usize) -> Vec<Session> {
        let mut live: Vec<&Held> = self.of(sub).filter(|s| now < s.expires_at()).collect();
        live.sort_by_key(|s| s.order);
        let skip = live.len().saturating_sub(max);
        live[skip..].iter().map(|s| s.session.clone()).collect()
    }

    fn sweep(&mut self, now: u64) -> usize {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| now < s.expires_at());
        // A mark is forgotten once kept long enough, when its user holds no session.
        let sessions = &self.sessions;
        self.marks.retain(|sub, mark| {
            mark.keep_until > now || sessions.values().any(|s| s.session.sub == *sub)
        });
        before - self.sessions.len()
    }
}

/// The last call that a retry may repeat, with its arguments as sent.
#[derive(Debug, Clone)]
enum Last {
    Create(Session, Option<SessionLimit>),
    Rotate(&'static str, SessionId, Rotation),
}

/// A `MemoryStore` and the model, fed the same operations.
#[derive(Debug)]
pub struct Harness {
    /// The store under test.
    pub store: MemoryStore,
    /// The reference.
    pub model: Model,
    /// The sequence's clock, in microseconds since the Unix epoch.
    pub now_micros: u64,
    last: Option<Last>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// An empty store and model at [`START`]. Used outside a Tokio runtime, the store starts
    /// no background sweep: sessions go only where the operations take them.
    pub fn new() -> Self {
        Self {
            store: MemoryStore::new(),
            model: Model::default(),
            now_micros: START * MICROS,
            last: None,
        }
    }

    /// The sequence's clock in whole seconds.
    pub fn now(&self) -> u64 {
        self.now_micros / MICROS
    }

    /// Runs `op` on both, then compares their answers and every user's live sessions.
    pub fn step(&mut self, op: &Op) -> Result<(), String> {
        let (expected, got) = self.answers(op);
        if expected != got {
            return Err(format!(
                "{op:?} at {}us: model answered {expected:?}, store {got:?}",
                self.now_micros
            ));
        }
        let now = self.now();
        for sub in USERS {
            let expected = self.model.list(sub, now, usize::MAX);
            let got = ready(self.store.list(sub, now, usize::MAX)).map_err(|e| format!("{e:?}"))?;
            if expected != got {
                return Err(format!(
                    "after {op:?} at {}us: {sub}'s sessions: model {expected:?}, store {got:?}",
                    self.now_micros
                ));
            }
        }
        if self.model.sessions.len() != self.store.len() {
            return Err(format!(
                "after {op:?} at {}us: model holds {} sessions, store {}",
                self.now_micros,
                self.model.sessions.len(),
                self.store.len()
            ));
        }
        Ok(())
    }

    /// Runs every operation, stopping at the first difference.
    pub fn run(&mut self, ops: &[Op]) -> Result<(), String> {
        ops.iter().try_for_each(|op| self.step(op))
    }

    /// The model's answer and the store's.
    fn answers(&mut self, op: &Op) -> (Answer, Answer) {
        let now_micros = self.now_micros;
        let now = self.now();
        let user = |n: u8| USERS[usize::from(n) % USERS.len()];
        let id = |n: u8| session_id(n % IDS);
        match *op {
            Op::Create {
                user: u,
                id: i,
                backdate,
                auth_lag,
                ttl,
                limit,
                digest: d,
                metadata,
            } => {
                let created_at = now_micros.saturating_sub(backdate.saturating_mul(MICROS));
                let expires_at = (created_at / MICROS).saturating_add(ttl);
                let mut session = Session::new(
                    id(i),
                    user(u),
                    from_unix_micros(created_at),
                    from_unix_seconds(expires_at),
                );
                session.authenticated_at = from_unix_micros(created_at.saturating_sub(auth_lag));
                session.refresh.digest = digest(d);
                if metadata {
                    session.user_agent = Some(format!("agent {d}"));
                    session.address = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, d)));
                }
                let limit = limit.map(|(max, end_oldest)| SessionLimit {
                    max,
                    when_full: if end_oldest {
                        WhenFull::EndOldest
                    } else {
                        WhenFull::RefuseNew
                    },
                });
                self.last = Some(Last::Create(session, limit));
                self.repeat()
            }
            Op::IsActive {
                user: u,
                id: i,
                touch_interval,
                lag,
            } => {
                let at = now.saturating_sub(lag);
                (
                    Answer::Active(self.model.is_active(user(u), &id(i), at, touch_interval)),
                    Answer::Active(
                        ready(self.store.is_active(user(u), &id(i), at, touch_interval))
                            .unwrap_or_else(|e| panic!("{e:?}")),
                    ),
                )
            }
            Op::Rotate {
                user: u,
                id: i,
                generation,
                digest: d,
                next_digest,
                ttl,
                grace,
                lag,
            } => {
                let at = now.saturating_sub(lag);
                let rotation = Rotation {
                    generation,
                    digest: digest(d),
                    next_digest: digest(next_digest),
                    now: at,
                    expires_at: at.saturating_add(ttl),
                    grace,
                };
                self.last = Some(Last::Rotate(user(u), id(i), rotation));
                self.repeat()
            }
            Op::Repeat => self.repeat(),
            Op::Revoke { user: u, id: i } => (
                Answer::Revoked(self.model.revoke(user(u), &id(i))),
                Answer::Revoked(
                    ready(self.store.revoke(user(u), &id(i))).unwrap_or_else(|e| panic!("{e:?}")),
                ),
            ),
            Op::RevokeAll { user: u } => (
                Answer::Ended(self.model.revoke_where(user(u), |_| true)),
                Answer::Ended(
                    ready(self.store.revoke_all(user(u))).unwrap_or_else(|e| panic!("{e:?}")),
                ),
            ),
            Op::RevokeAuthenticatedBefore {
                user: u,
                offset,
                keep,
            } => {
                let before = now_micros.saturating_add_signed(offset);
                let keep_until = now.saturating_add(keep);
                (
                    Answer::Ended(self.model.revoke_authenticated_before(
                        user(u),
                        before,
                        keep_until,
                    )),
                    Answer::Ended(
                        ready(self.store.revoke_authenticated_before(
                            user(u),
                            from_unix_micros(before),
                            from_unix_seconds(keep_until),
                        ))
                        .unwrap_or_else(|e| panic!("{e:?}")),
                    ),
                )
            }
            Op::List { user: u, lag, max } => {
                let at = now.saturating_sub(lag);
                (
                    Answer::Listed(self.model.list(user(u), at, max)),
                    Answer::Listed(
                        ready(self.store.list(user(u), at, max))
                            .unwrap_or_else(|e| panic!("{e:?}")),
                    ),
                )
            }
            Op::Sweep => (
                Answer::Swept(self.model.sweep(now)),
                Answer::Swept(self.store.sweep(now)),
            ),
            Op::Advance { micros } => {
                self.now_micros = now_micros.saturating_add(micros);
                (Answer::Nothing, Answer::Nothing)
            }
        }
    }

    /// Sends the last `create` or `rotate` (again) to both.
    fn repeat(&mut self) -> (Answer, Answer) {
        let (model, store) = (&mut self.model, &self.store);
        match &self.last {
            None => (Answer::Nothing, Answer::Nothing),
            Some(Last::Create(session, limit)) => (
                Answer::Created(model.create(session, *limit)),
                Answer::Created(ready(store.create(session, *limit)).map_err(|e| format!("{e:?}"))),
            ),
            Some(Last::Rotate(sub, id, rotation)) => (
                Answer::Rotated(model.rotate(sub, id, rotation)),
                Answer::Rotated(
                    ready(store.rotate(sub, id, rotation)).unwrap_or_else(|e| panic!("{e:?}")),
                ),
            ),
        }
    }
}
