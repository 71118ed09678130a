//! A reference model of the `SessionStore` contract as `MemoryStore` keeps it, and a harness
//! that runs one sequence of operations on both and compares every answer.
//!
//! Shared by the property tests (`tests/properties.rs`) and the `store_model` fuzz target
//! (`fuzz/fuzz_targets/store_model.rs`, through `#[path]`), so the model is written once.
//!
//! The model is a `BTreeMap` from session id to session. Expired sessions stay in it until
//! one of the removal points the store documents drops them (a `create` of the same user, a
//! `sweep`, a revoke), because some answers count them: `revoke_all` and `revoke` answer for
//! what was there, expired or not, and `len` counts what is held.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use tower_jwt_auth::SessionId;
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
    /// `create` of a session starting `backdate` seconds ago and lasting `ttl` from then.
    Create {
        user: u8,
        id: u8,
        backdate: u64,
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
    /// `revoke`.
    Revoke { user: u8, id: u8 },
    /// `revoke_all`.
    RevokeAll { user: u8 },
    /// `revoke_created_before` a time `offset` seconds from now (negative: in the past).
    RevokeCreatedBefore { user: u8, offset: i64 },
    /// `list`, `lag` seconds in the past.
    List { user: u8, lag: u64 },
    /// `MemoryStore::sweep` at the sequence's clock.
    Sweep,
    /// The sequence's clock moves on.
    Advance { seconds: u64 },
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
    /// From `revoke_all` and `revoke_created_before`.
    Ended(u64),
    /// From `list`.
    Listed(Vec<Session>),
    /// From `sweep`.
    Swept(usize),
    /// From `Advance`.
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

/// The reference: every session held, by id.
#[derive(Debug, Default, Clone)]
pub struct Model {
    sessions: BTreeMap<SessionId, Session>,
}

impl Model {
    /// Sessions of `sub` held, expired or not.
    fn of<'a>(&'a self, sub: &'a str) -> impl Iterator<Item = &'a Session> + 'a {
        self.sessions.values().filter(move |s| s.sub == sub)
    }

    fn create(
        &mut self,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> Result<Created, String> {
        let now = session.created_at;
        // A write of a user first drops that user's expired sessions.
        self.sessions
            .retain(|_, s| s.sub != session.sub || now < s.expires_at);
        // The memory store refuses an id that any user has.
        if self.sessions.contains_key(&session.id) {
            return Err("Conflict".to_owned());
        }
        let mut ended = 0;
        if let Some(limit) = limit {
            while self.of(&session.sub).count() >= limit.max.max(1) as usize {
                match limit.when_full {
                    WhenFull::RefuseNew => return Ok(Created::LimitReached),
                    WhenFull::EndOldest => {
                        let oldest = self
                            .of(&session.sub)
                            .map(|s| (s.created_at, s.id))
                            .min()
                            .map(|(_, id)| id);
                        if let Some(id) = oldest {
                            self.sessions.remove(&id);
                        }
                    }
                }
                ended += 1;
            }
        }
        self.sessions.insert(session.id, session.clone());
        Ok(Created::Live { ended })
    }

    fn is_active(&mut self, sub: &str, id: &SessionId, now: u64, touch_interval: u64) -> bool {
        match self.sessions.get_mut(id) {
            Some(s) if s.sub == sub && now < s.expires_at => {
                if now.saturating_sub(s.last_used_at) >= touch_interval {
                    s.last_used_at = s.last_used_at.max(now);
                }
                true
            }
            _ => false,
        }
    }

    fn rotate(&mut self, sub: &str, id: &SessionId, rotation: &Rotation) -> Rotated {
        let Some(s) = self.sessions.get_mut(id).filter(|s| s.sub == sub) else {
            return Rotated::Unknown;
        };
        if rotation.now >= s.expires_at {
            return Rotated::Unknown;
        }
        let state = s.refresh;
        if rotation.generation == state.generation && rotation.digest == state.digest {
            s.refresh = RefreshState {
                generation: state.generation.saturating_add(1),
                digest: rotation.next_digest,
                rotated_at: rotation.now,
            };
            s.expires_at = rotation.expires_at;
            s.last_used_at = s.last_used_at.max(rotation.now);
            Rotated::Rotated
        } else if rotation.generation.checked_add(1) == Some(state.generation)
            && rotation.now < state.rotated_at.saturating_add(rotation.grace)
        {
            Rotated::Forgiven
        } else {
            self.sessions.remove(id);
            Rotated::Reused
        }
    }

    fn revoke(&mut self, sub: &str, id: &SessionId) -> bool {
        if self.sessions.get(id).is_some_and(|s| s.sub == sub) {
            self.sessions.remove(id);
            true
        } else {
            false
        }
    }

    fn revoke_where(&mut self, sub: &str, condition: impl Fn(&Session) -> bool) -> u64 {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| s.sub != sub || !condition(s));
        (before - self.sessions.len()) as u64
    }

    fn list(&self, sub: &str, now: u64) -> Vec<Session> {
        let mut live: Vec<Session> = self
            .of(sub)
            .filter(|s| now < s.expires_at)
            .cloned()
            .collect();
        live.sort_by_key(|s| (s.created_at, s.id));
        live
    }

    fn sweep(&mut self, now: u64) -> usize {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| now < s.expires_at);
        before - self.sessions.len()
    }
}

/// A `MemoryStore` and the model, fed the same operations.
#[derive(Debug)]
pub struct Harness {
    /// The store under test.
    pub store: MemoryStore,
    /// The reference.
    pub model: Model,
    /// The sequence's clock.
    pub now: u64,
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
            now: START,
        }
    }

    /// Runs `op` on both, then compares their answers and every user's live sessions.
    pub fn step(&mut self, op: &Op) -> Result<(), String> {
        let (expected, got) = self.answers(op);
        if expected != got {
            return Err(format!(
                "{op:?} at {}: model answered {expected:?}, store {got:?}",
                self.now
            ));
        }
        for sub in USERS {
            let expected = self.model.list(sub, self.now);
            let got = ready(self.store.list(sub, self.now)).map_err(|e| format!("{e:?}"))?;
            if expected != got {
                return Err(format!(
                    "after {op:?} at {}: {sub}'s sessions: model {expected:?}, store {got:?}",
                    self.now
                ));
            }
        }
        if self.model.sessions.len() != self.store.len() {
            return Err(format!(
                "after {op:?} at {}: model holds {} sessions, store {}",
                self.now,
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
        let (model, store, now) = (&mut self.model, &self.store, self.now);
        let user = |n: u8| USERS[usize::from(n) % USERS.len()];
        let id = |n: u8| session_id(n % IDS);
        match *op {
            Op::Create {
                user: u,
                id: i,
                backdate,
                ttl,
                limit,
                digest: d,
                metadata,
            } => {
                let created_at = now.saturating_sub(backdate);
                let mut session =
                    Session::new(id(i), user(u), created_at, created_at.saturating_add(ttl));
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
                (
                    Answer::Created(model.create(&session, limit)),
                    Answer::Created(
                        ready(store.create(&session, limit)).map_err(|e| format!("{e:?}")),
                    ),
                )
            }
            Op::IsActive {
                user: u,
                id: i,
                touch_interval,
                lag,
            } => {
                let at = now.saturating_sub(lag);
                (
                    Answer::Active(model.is_active(user(u), &id(i), at, touch_interval)),
                    Answer::Active(
                        ready(store.is_active(user(u), &id(i), at, touch_interval))
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
                (
                    Answer::Rotated(model.rotate(user(u), &id(i), &rotation)),
                    Answer::Rotated(
                        ready(store.rotate(user(u), &id(i), &rotation))
                            .unwrap_or_else(|e| panic!("{e:?}")),
                    ),
                )
            }
            Op::Revoke { user: u, id: i } => (
                Answer::Revoked(model.revoke(user(u), &id(i))),
                Answer::Revoked(
                    ready(store.revoke(user(u), &id(i))).unwrap_or_else(|e| panic!("{e:?}")),
                ),
            ),
            Op::RevokeAll { user: u } => (
                Answer::Ended(model.revoke_where(user(u), |_| true)),
                Answer::Ended(ready(store.revoke_all(user(u))).unwrap_or_else(|e| panic!("{e:?}"))),
            ),
            Op::RevokeCreatedBefore { user: u, offset } => {
                let before = now.saturating_add_signed(offset);
                (
                    Answer::Ended(model.revoke_where(user(u), |s| s.created_at < before)),
                    Answer::Ended(
                        ready(store.revoke_created_before(user(u), before))
                            .unwrap_or_else(|e| panic!("{e:?}")),
                    ),
                )
            }
            Op::List { user: u, lag } => {
                let at = now.saturating_sub(lag);
                (
                    Answer::Listed(model.list(user(u), at)),
                    Answer::Listed(
                        ready(store.list(user(u), at)).unwrap_or_else(|e| panic!("{e:?}")),
                    ),
                )
            }
            Op::Sweep => (
                Answer::Swept(model.sweep(now)),
                Answer::Swept(store.sweep(now)),
            ),
            Op::Advance { seconds } => {
                self.now = now.saturating_add(seconds);
                (Answer::Nothing, Answer::Nothing)
            }
        }
    }
}
