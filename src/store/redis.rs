//! The Redis session store: one allowlist shared by every instance of a service.
//!
//! [`RedisStore`] keeps the sessions in Redis, so a logout handled by one instance ends the
//! session on all of them from the very next request, and instances can come and go without
//! logging anyone in or out. It works with a single Redis server (through a
//! [`ConnectionManager`], which reconnects by itself) and with Redis Cluster (through a
//! [`ClusterConnection`](redis::cluster_async::ClusterConnection)); the `redis` crate is
//! re-exported as [`redis`] for building either.
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_jwt_auth::store::redis::RedisStore;
//! use tower_jwt_auth::{Keys, Login, Sessions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379/")
//!     .await?
//!     .prefix("myapp:sessions:")
//!     .timeout(Duration::from_millis(300));
//! let sessions = Sessions::builder(Keys::hs256(b"a secret of at least thirty-two bytes!")?, store)
//!     .build()?;
//!
//! // Every instance built on the same Redis and prefix shares these sessions.
//! let issued = sessions.issue(Login::new("alice")).await?;
//! assert_eq!(sessions.list("alice").await?.len(), 1);
//! sessions.revoke_all("alice").await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Data model
//!
//! Each user has four keys under one [hash tag], so that every operation touches a single
//! cluster slot:
//!
//! - `<prefix>{<user>}:s`, a sorted set: member = the session id (its 16 raw bytes), score =
//!   its expiry (Unix seconds). Every check compares the expiry with the time it is given,
//!   so a session ends on time even before Redis removes it.
//! - `<prefix>{<user>}:o`, a sorted set: the same members, scored in the order they were
//!   created (each login one more than the newest): the oldest session is the first
//!   created, whatever the clocks of the instances say, and listings read the newest first
//!   without sorting.
//! - `<prefix>{<user>}:m`, a hash with two fields per session:
//!   - the session id → its record, in a compact binary form: creation time, refresh state
//!     (generation, the SHA-256 digest of the current refresh token, when it was issued),
//!     authentication time, address and user agent. Records written by earlier versions
//!     (creation in seconds; before that, no refresh state) are still read.
//!   - the session id followed by `u` → its last use (Unix seconds, in decimal), apart from
//!     the record so that the check on every request reads ten bytes, not the whole record.
//! - `<prefix>{<user>}:n`, a string: the user's "not before" mark (Unix microseconds), set
//!   by [`revoke_authenticated_before`](SessionStore::revoke_authenticated_before) and
//!   expiring when it is no longer needed.
//!
//! [`is_active`](SessionStore::is_active), on every request, is one round trip. With a
//! touch interval longer than the time since the epoch (`u64::MAX`, say: no use is ever
//! recorded) it is a plain `ZSCORE`. Otherwise it is a script that reads the expiry and the
//! last use (`ZSCORE`, `HGET`) and writes the last use (`HSET`) only when the interval has
//! passed.
//!
//! The user id is escaped (`%` → `%25`, `{` → `%7B`, `}` → `%7D`; the empty id is written
//! `%`), so ids holding any characters can neither break the hash tag nor share keys with
//! another user. Keep braces out of the prefix: they would put every user in one slot.
//!
//! Every change is a single Lua script (run by `EVALSHA`, loaded on first use), so it is
//! atomic:
//! - creating a session also drops the user's expired sessions, checks the "not before"
//!   mark, refuses an id the user has already for another session (the very same session
//!   again, a retry whose answer was lost, is answered as the first time), and applies the
//!   [`SessionLimit`]: counting the live sessions, refusing the login or ending the first
//!   created are the same step as adding the session;
//! - rotating a refresh token compares the presented generation and digest with the stored
//!   ones and, in the same step, installs the next ones, answers a retry of a rotation that
//!   took effect as it did the first time, forgives a token retired within the grace
//!   period, or ends the session; of concurrent rotations with one token, exactly one
//!   rotates;
//! - recording a use, revoking one session, all of a user's, or those authenticated before
//!   a time (raising the mark in the same step).
//!
//! Ids are checked for uniqueness per user only, as a check across users would touch other
//! slots; session ids are 128 random bits, so two users never draw the same one in practice.
//! The keys expire at the latest expiry of their sessions, so a user's keys disappear with
//! their last session. Key expiry follows the Redis server's clock while session expiry
//! follows the time the store is given: run both on real, synchronised time. Only session
//! ids, their metadata and refresh-token digests reach Redis, never a token. Redis 7.0 or
//! later is required ([`connect`](RedisStore::connect) checks it).
//!
//! # What a call costs
//!
//! With `n` the user's sessions (at most the session limit: 100 unless configured), `e`
//! the expired ones not yet removed and `k` the sessions a call ends. Every call is one
//! round trip and one command or script (the first login or refresh of a store also reads
//! `TIME` once); each ending publishes one event (O(subscribers)).
//!
//! | call | Redis work | reads at most |
//! |---|---|---|
//! | `is_active` (every request) | O(1): `ZSCORE`, or `ZSCORE` + `HGET` (+ `HSET` once per touch interval) | one session |
//! | `create` (login) | O(log n + e + k): drops the expired, ends the oldest at the limit | the expired and the ended |
//! | `rotate` (refresh) | O(log n) | one session |
//! | `revoke` (logout) | O(log n) | one session |
//! | `revoke_all` | O(n), one `DEL` | nothing |
//! | `revoke_authenticated_before` | O(n): authentication times are in the records | n records |
//! | `list(max)` | O(log n + max + e) | `max` records, skipping the expired |
//!
//! # Events
//!
//! Every script that ends sessions publishes on the channel `<prefix>ended`
//! ([`RedisStore::events_channel`]), in the same atomic step, one message per ending:
//!
//! | payload | published when |
//! |---|---|
//! | `S`, the 16 bytes of the session id, then the user id (UTF-8) | one session ended: logout, the session limit ending the oldest, refresh-token reuse, a rotation that brings its end closer |
//! | `U`, then the user id (UTF-8) | some or all of the user's sessions ended: logout-all, revocation by authentication time |
//! | `H`, then a tag | a heartbeat of a near-cache's feed (not published by the store's scripts) |
//!
//! Expiry publishes nothing: a session's end is known in advance.
//! [`Ended::parse`] reads them; a [`NearCache`](super::NearCache) fed by
//! [`RedisStore::near_cache`] lives on them.
//!
//! # Failures
//!
//! Every call is bounded by a timeout (300 ms by default, see
//! [`timeout`](RedisStore::timeout)); a call that does not finish in time is
//! [`StoreError::Timeout`], a lost connection [`StoreError::Unavailable`], and an error
//! answer or malformed data [`StoreError::Backend`] (while Redis is down, calls mostly wait
//! for the reconnection and end as `Timeout`). The middleware answers all of them with
//! `503 Service Unavailable` and `Retry-After`: requests fail closed, they neither hang nor
//! get in. The [`ConnectionManager`] built by [`connect`](RedisStore::connect) reconnects in
//! the background, so the store recovers by itself once Redis is back. The timeout uses
//! Tokio's timer: the runtime needs its time driver enabled (`#[tokio::main]` does that).
//!
//! A timeout does not cancel a command that Redis has not run yet (a paused or overloaded
//! server runs it once it can). Logouts may land late, which does no harm; logins and
//! refresh-token rotations must not, so their scripts carry a deadline, half the timeout
//! after they are sent, and do nothing when Redis runs them past it. The deadline is
//! expressed in Redis' own time: the store measures Redis' clock against its own with
//! `TIME` at [`connect`](RedisStore::connect) (or before its first login), and again from every login and refresh answer (each
//! carries Redis' time; an answer that took longer than half the timeout is not trusted
//! for it), reading Redis' time against the middle of the round trip, so a skew between
//! the clocks neither fails logins nor disables the check, and a reconnection to another
//! server (a fail-over) is measured again by its first answer. A login or refresh answered 503 has therefore left nothing behind, and the
//! client can retry it with the same credentials or refresh token.
//!
//! # Persistence
//!
//! The sessions live in Redis' memory. Whether they survive a restart of Redis is Redis'
//! persistence setting: with the append-only file (`appendonly yes`, and `appendfsync
//! everysec` or `always`) a restarted Redis knows every session it knew before, up to the
//! last second or write. Without persistence a restart ends every session (users log in
//! again); with RDB snapshots only, it brings back the sessions of the last snapshot,
//! revoked ones included, until they expire, and with them refresh tokens rotated since
//! (which then rotate once more instead of counting as reuse). Replicas and Redis Cluster
//! fail-over can lose the last writes in the same way.
//!
//! # Memory
//!
//! Measured on Redis 7.0.15 at 100,000 sessions with a browser's user agent and an address
//! each (`cargo test --features redis --test redis_failover -- --ignored --nocapture
//! memory_per_session_report`, which reports both the growth of `used_memory` and the sum
//! of `MEMORY USAGE <key> SAMPLES 0` over the `:s`, `:o` and `:m` keys of 100 users):
//!
//! | sessions per user | `hash-max-listpack-value` | `MEMORY USAGE` per session | `used_memory` per session |
//! |---|---|---|---|
//! | 1 | 64 (default) | 736 bytes | 994 bytes |
//! | 4 | 64 (default) | 473 bytes | 542 bytes |
//! | 1 | 512 | 595 bytes | 819 bytes |
//! | 4 | 512 | 363 bytes | 414 bytes |
//!
//! `MEMORY USAGE` counts the keys' own values; `used_memory` adds Redis' key space (its
//! dictionary entries and expiry records), which is what a capacity plan needs. A user
//! agent makes the metadata hash outgrow Redis' compact encoding (`hash-max-listpack-value`,
//! 64 bytes by default); raising that setting to 512 keeps it a listpack. A user's "not
//! before" mark, while it lasts, adds one small string key.
//!
//! [hash tag]: https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

pub use ::redis;
use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::io::tcp::TcpSettings;
use ::redis::io::tcp::socket2::TcpKeepalive;
use ::redis::{ErrorKind, IntoConnectionInfo, RedisError, RedisResult, Script, ServerErrorKind};

use super::{
    Created, Liveness, RefreshState, Rotated, Rotation, Session, SessionLimit, SessionStore,
    StoreError, WhenFull,
};
use crate::SessionId;
use crate::clock::{from_unix_micros, from_unix_seconds, unix_micros, unix_seconds};

/// The key prefix when none is set.
const DEFAULT_PREFIX: &str = "tja:";

/// The per-call timeout when none is set: long enough for a loaded Redis across a network,
/// short enough that a request fails fast when Redis is gone.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(300);

/// Scores are doubles: integers above 2^53 would not come back as written.
const MAX_EXPIRY: u64 = 1 << 53;

/// The oldest Redis the scripts run on: they use `PEXPIREAT … GT` (7.0).
pub const MINIMUM_REDIS_VERSION: (u32, u32) = (7, 0);

/// Not yet measured: see [`RedisStore::clock_offset`].
const OFFSET_UNKNOWN: i64 = i64::MIN;

/// The session store on Redis, shared by every instance that uses the same Redis and
/// prefix.
///
/// `C` is the connection: a [`ConnectionManager`] (from [`connect`](Self::connect), or
/// built yourself with [`new`](Self::new)), a Redis Cluster connection, or any other
/// cloneable [`ConnectionLike`]. Clones share the connection. See the
/// [module docs](crate::store::redis) for the data model and the failure behaviour.
pub struct RedisStore<C = ConnectionManager> {
    connection: C,
    prefix: Arc<str>,
    timeout: Duration,
    /// Redis' clock minus this machine's, in milliseconds, as last measured (or
    /// [`OFFSET_UNKNOWN`]); shared by clones.
    offset: Arc<AtomicI64>,
    /// Added to this machine's clock: a test's way to simulate skew.
    skew: i64,
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` with a TLS feature of the `redis` crate) through a [`ConnectionManager`]
    /// that reconnects by itself, retrying with backoff capped at one second, and checks
    /// that the server is Redis 7.0 or later.
    ///
    /// The socket is set up for failing fast: no Nagle delay, keepalive probes, and on
    /// Linux a 5 s `TCP_USER_TIMEOUT`, so a connection into a network black hole is dropped
    /// (and replaced) instead of waiting for the kernel's retransmissions for many minutes.
    ///
    /// Fails with [`StoreError::Unavailable`] when Redis cannot be reached within a few
    /// seconds, [`StoreError::UnsupportedVersion`] on a Redis older than 7.0, and
    /// [`StoreError::Backend`] when the URL is invalid. To configure the connection
    /// otherwise, build the [`ConnectionManager`] yourself and use [`new`](Self::new).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let info = url.into_connection_info().map_err(classify)?;
        let tcp = TcpSettings::default()
            .set_nodelay(true)
            .set_keepalive(TcpKeepalive::new().with_time(Duration::from_secs(15)));
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        let tcp = tcp.set_user_timeout(Duration::from_secs(5));
        let client = ::redis::Client::open(info.set_tcp_settings(tcp)).map_err(classify)?;
        let config = ConnectionManagerConfig::new()
            // Once Redis is back, the next attempt comes within a second or two (with jitter).
            .set_max_delay(Duration::from_secs(1))
            // The store bounds each call itself; the manager's own 500 ms default would cap
            // a longer `timeout`.
            .set_response_timeout(None);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(classify)?;
        let store = Self::new(connection);
        store.check_version().await?;
        // Measured now, the first login does not wait for it.
        store.clock_offset().await?;
        Ok(store)
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A store on an existing connection, with the default prefix (`tja:`) and timeout
    /// (300 ms). Call [`check_version`](Self::check_version) to check the server.
    ///
    /// The connection should reconnect by itself, as a [`ConnectionManager`] or a cluster
    /// connection does; a plain multiplexed connection stays broken once Redis drops it.
    pub fn new(connection: C) -> Self {
        Self {
            connection,
            prefix: Arc::from(DEFAULT_PREFIX),
            timeout: DEFAULT_TIMEOUT,
            offset: Arc::new(AtomicI64::new(OFFSET_UNKNOWN)),
            skew: 0,
        }
    }

    /// Puts every key under `prefix` (default `tja:`), to share a Redis with other data or
    /// other applications. Instances sharing sessions must use the same prefix. Keep `{` and
    /// `}` out of it: see the [module docs](crate::store::redis#data-model).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// How long one call may take before it fails with [`StoreError::Timeout`] (default
    /// 300 ms). A request waits at most this long per store call when Redis is slow or gone
    /// (the middleware makes one; a handler that lists sessions after it, one more).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The channel every ending of a session is published on: `<prefix>ended`. See the
    /// [module docs](crate::store::redis#events).
    pub fn events_channel(&self) -> String {
        format!("{}ended", self.prefix)
    }

    /// The connection, for running your own commands on it.
    pub fn connection(&self) -> &C {
        &self.connection
    }

    /// Checks that the server is Redis 7.0 or later ([`StoreError::UnsupportedVersion`]
    /// otherwise). [`connect`](RedisStore::connect) does it.
    pub async fn check_version(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let info: String = bounded(
            self.timeout,
            ::redis::cmd("INFO")
                .arg("server")
                .query_async(&mut connection),
        )
        .await?;
        supported(&info)
    }

    /// Makes this machine's clock look `skew` ahead (positive) or behind (negative) to the
    /// store, as a Redis clock that far behind or ahead would: for testing that logins do
    /// not depend on synchronised clocks.
    #[doc(hidden)]
    pub fn simulate_clock_skew(mut self, skew_millis: i64) -> Self {
        self.skew = skew_millis;
        // What was measured against the true clock no longer holds.
        self.offset = Arc::new(AtomicI64::new(OFFSET_UNKNOWN));
        self
    }

    fn keys(&self, sub: &str) -> UserKeys {
        UserKeys::new(&self.prefix, sub)
    }

    /// This machine's time, in Unix milliseconds.
    fn local_millis(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(now.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_add(self.skew)
    }

    /// Redis' clock minus this machine's, measured with `TIME` the first time (at
    /// `connect`, or before the first login) and then from every login and refresh answer
    /// (each carries Redis' time).
    async fn clock_offset(&self) -> Result<i64, StoreError> {
        let offset = self.offset.load(Ordering::Relaxed);
        if offset != OFFSET_UNKNOWN {
            return Ok(offset);
        }
        let mut connection = self.connection.clone();
        let sent = self.local_millis();
        let (seconds, micros): (i64, i64) = bounded(
            self.timeout,
            ::redis::cmd("TIME").query_async(&mut connection),
        )
        .await?;
        self.learn_time(
            seconds.saturating_mul(1000).saturating_add(micros / 1000),
            sent,
        );
        Ok(self.offset.load(Ordering::Relaxed))
    }

    /// Records Redis' time (Unix milliseconds) as read by a command sent at `sent` (this
    /// machine's Unix milliseconds) and answered just now.
    fn learn_time(&self, redis_millis: i64, sent: i64) {
        let known = self.offset.load(Ordering::Relaxed) != OFFSET_UNKNOWN;
        let half = i64::try_from((self.timeout / 2).as_millis()).unwrap_or(i64::MAX);
        if let Some(offset) = estimate_offset(redis_millis, sent, self.local_millis(), half, known)
        {
            self.offset
                .store(offset.max(OFFSET_UNKNOWN + 1), Ordering::Relaxed);
        }
    }

    /// The instant, on Redis' clock (Unix milliseconds), after which a login or a rotation
    /// sent now must not be applied: half the timeout from now, so that an answer sent just
    /// before it still has the other half to arrive before the caller gives up.
    ///
    /// A command Redis could not run in time (paused, overloaded) is not cancelled by the
    /// caller's timeout: Redis runs it once it can. A late login would leave a session
    /// nobody holds a token for; a late rotation would retire the refresh token a client is
    /// about to retry with, and the retry would look like theft. Both scripts check this
    /// deadline against Redis' own clock and do nothing when late. The deadline is in
    /// Redis' time (this machine's plus the measured offset), so it holds whatever the skew
    /// between the two clocks.
    ///
    /// Answers the deadline and this machine's time it was set at (the `sent` of
    /// [`learn_time`](Self::learn_time)).
    async fn deadline(&self) -> Result<(i64, i64), StoreError> {
        let offset = self.clock_offset().await?;
        let half = i64::try_from((self.timeout / 2).as_millis()).unwrap_or(i64::MAX);
        let sent = self.local_millis();
        Ok((sent.saturating_add(offset).saturating_add(half), sent))
    }
}

impl<C: Clone> Clone for RedisStore<C> {
    fn clone(&self) -> Self {
        Self {
            connection: self.connection.clone(),
            prefix: Arc::clone(&self.prefix),
            timeout: self.timeout,
            offset: Arc::clone(&self.offset),
            skew: self.skew,
        }
    }
}

impl<C> fmt::Debug for RedisStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

// ===== events =====

/// One message on the [events channel](RedisStore::events_channel).
///
/// ```
/// use tower_jwt_auth::SessionId;
/// use tower_jwt_auth::store::redis::Ended;
///
/// // What a logout of alice's session [7; 16] publishes.
/// let mut payload = b"S".to_vec();
/// payload.extend_from_slice(&[7; 16]);
/// payload.extend_from_slice(b"alice");
/// assert_eq!(
///     Ended::parse(&payload),
///     Some(Ended::Session { id: SessionId::from_bytes([7; 16]), sub: "alice" })
/// );
/// assert_eq!(Ended::parse(b"Ualice"), Some(Ended::User("alice")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended<'a> {
    /// `S`, the 16 bytes of a session id, then its user: that session ended.
    Session {
        /// The session.
        id: SessionId,
        /// Its user.
        sub: &'a str,
    },
    /// `U` and a user id: some or all of that user's sessions ended.
    User(&'a str),
    /// `H` and a tag: a heartbeat, published by a near-cache's feed to prove its
    /// subscription.
    Heartbeat(&'a [u8]),
}

impl<'a> Ended<'a> {
    /// Reads a message; `None` when it is none of the above.
    pub fn parse(payload: &'a [u8]) -> Option<Self> {
        match payload.split_first()? {
            (b'S', rest) => {
                let (id, sub) = rest.split_first_chunk::<16>()?;
                Some(Self::Session {
                    id: SessionId::from_bytes(*id),
                    sub: std::str::from_utf8(sub).ok()?,
                })
            }
            (b'U', sub) => Some(Self::User(std::str::from_utf8(sub).ok()?)),
            (b'H', tag) => Some(Self::Heartbeat(tag)),
            _ => None,
        }
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Publishes a heartbeat with `tag` on the events channel.
    pub(crate) async fn publish_heartbeat(&self, tag: &[u8]) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let mut message = Vec::with_capacity(tag.len() + 1);
        message.push(b'H');
        message.extend_from_slice(tag);
        let _receivers: i64 = bounded(
            self.timeout,
            ::redis::cmd("PUBLISH")
                .arg(self.events_channel())
                .arg(message)
                .query_async(&mut connection),
        )
        .await?;
        Ok(())
    }
}

// ===== impl SessionStore =====

// Per user (see the module docs): KEYS[1] the expiries, KEYS[2] the records and last uses,
// KEYS[3] the creation order, KEYS[4] the "not before" mark; the events channel is the last
// ARGV of every script that ends sessions.

/// Lua shared by the scripts that read records or change expiries. Kept out of the script
/// `is_active` runs on every request, which would otherwise build these closures each time.
const RECORD_LUA: &str = r"
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

local function u64(bytes, at)
  local n = 0
  for i = at, at + 7 do
    n = n * 256 + string.byte(bytes, i)
  end
  return n
end

-- The parts of a record: its version, creation time, refresh generation, digest and
-- rotation time (as bytes), and what follows them; nothing when it is not a record.
-- Version 3 keeps creation in microseconds (then authentication, address, user agent),
-- version 2 in seconds; version 1 had no refresh state: generation 0, an all-zero digest,
-- rotated when created.
local function parts(record)
  if not record then
    return nil
  end
  local version = string.byte(record, 1)
  if (version == 3 and #record >= 65) or (version == 2 and #record >= 57) then
    return version, string.sub(record, 2, 9), string.sub(record, 10, 17),
      string.sub(record, 18, 49), string.sub(record, 50, 57), string.sub(record, 58)
  elseif version == 1 and #record >= 17 then
    local created = string.sub(record, 2, 9)
    return 2, created, string.rep('\0', 8), string.rep('\0', 32), created, string.sub(record, 18)
  end
  return nil
end

-- When a record was created and authenticated (Unix microseconds); -1 when it is not one.
local function times(record)
  local version, created, _, _, _, rest = parts(record)
  if not version then
    return -1, -1
  end
  if version == 3 then
    return u64(created, 1), u64(rest, 1)
  end
  local micros = u64(created, 1) * 1000000
  return micros, micros
end

local function forget(id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[2], id, id .. 'u')
end

local function ended(channel, id, sub)
  redis.call('PUBLISH', channel, 'S' .. id .. sub)
end

-- Sessions written before the creation order was kept join it, once.
local function ensure_order()
  if redis.call('ZCARD', KEYS[3]) < redis.call('ZCARD', KEYS[1]) then
    local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
    for i = 1, #ids do
      local created = times(redis.call('HGET', KEYS[2], ids[i]))
      redis.call('ZADD', KEYS[3], 'NX', created, ids[i])
    end
  end
end

-- The keys live as long as the user's last session.
local function expire_with_last_session()
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('EXPIREAT', KEYS[1], last[2])
    redis.call('EXPIREAT', KEYS[2], last[2])
    redis.call('EXPIREAT', KEYS[3], last[2])
  end
end
";

/// ARGV: id, expiry, now, record, last use, limit (0 for none), `1` to end the oldest
/// sessions at the limit (otherwise the new one is refused), the deadline (Redis' Unix
/// milliseconds), created (unused: the order is the order of logins) and authenticated
/// (Unix microseconds), the events channel, the user.
/// Answers `{CREATED, ended, time}`, `{CONFLICT, 0, time}` when the user has the id for
/// another session, `{LIMIT_REACHED, 0, time}`, `{BARRED, 0, time}` or `{LATE, 0, time}`,
/// the last having stored nothing; `time` is Redis' (Unix milliseconds).
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        &[
            RECORD_LUA,
            r"
local time = now_ms()
if time > tonumber(ARGV[8]) then
  return {3, 0, time}
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
for i = 1, #expired do
  forget(expired[i])
end
local existing = redis.call('ZSCORE', KEYS[1], ARGV[1])
if existing then
  -- The very same session again is a retry whose answer was lost.
  if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[4] then
    return {1, 0, time}
  end
  return {0, 0, time}
end
local mark = redis.call('GET', KEYS[4])
if mark and tonumber(ARGV[10]) < tonumber(mark) then
  return {4, 0, time}
end
ensure_order()
local count = 0
local limit = tonumber(ARGV[6])
if limit > 0 then
  local over = redis.call('ZCARD', KEYS[1]) - limit + 1
  if over > 0 then
    if ARGV[7] ~= '1' then
      return {2, 0, time}
    end
    local oldest = redis.call('ZRANGE', KEYS[3], 0, over - 1)
    for i = 1, #oldest do
      forget(oldest[i])
      ended(ARGV[11], oldest[i], ARGV[12])
    end
    count = #oldest
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
-- Creation order is the order of logins: after the newest, whatever the clocks say.
local newest = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
redis.call('ZADD', KEYS[3], newest[2] and (tonumber(newest[2]) + 1) or 0, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4], ARGV[1] .. 'u', ARGV[5])
expire_with_last_session()
return {1, count, time}
",
        ]
        .concat(),
    )
});

/// [`CREATE`]'s answers.
const CREATED: i64 = 1;
const CONFLICT: i64 = 0;
const LIMIT_REACHED: i64 = 2;
const CREATE_LATE: i64 = 3;
const BARRED: i64 = 4;

/// ARGV: id, now, touch interval. Answers `{expiry, last use}` when the session is live at
/// `now` (`{0, 0}` otherwise), having recorded `now` as its last use when the last recorded
/// one is `touch interval` or more before it. No use can be due (no write happens) unless
/// the interval is at most `now`: below that, `is_active` sends a plain `ZSCORE` instead.
///
/// The common case, a live session used recently, is two reads (`ZSCORE`, `HGET` of ten
/// bytes) and no closure, table or write. The expiry is answered as an integer (Redis
/// would truncate a Lua number anyway; expiries are whole seconds).
static IS_ACTIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local expiry = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
local now = tonumber(ARGV[2])
if not expiry or expiry <= now then
  return {0, 0}
end
local field = ARGV[1] .. 'u'
local used = tonumber(redis.call('HGET', KEYS[2], field))
if used then
  if now - used < tonumber(ARGV[3]) then
    return {expiry, used}
  end
elseif redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  -- No record to go with it: a new field could outlive the session.
  return {expiry, now}
end
redis.call('HSET', KEYS[2], field, ARGV[2])
return {expiry, now}
",
    )
});

/// ARGV: id, now, the new expiry, the presented generation (8 bytes, big-endian) and
/// digest, the next generation (8 bytes) and digest, now (8 bytes), the grace period, the
/// deadline, the events channel, the user. Generations and digests are compared as bytes. Answers
/// `{code, time}`: one of the `ROTATE_*` codes and Redis' time (Unix milliseconds).
static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        &[
            RECORD_LUA,
            r"
local time = now_ms()
if time > tonumber(ARGV[10]) then
  return {4, time}
end
local now = tonumber(ARGV[2])
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expiry or tonumber(expiry) <= now then
  return {0, time}
end
local version, created, generation, digest, rotated_at, rest =
  parts(redis.call('HGET', KEYS[2], ARGV[1]))
if not version then
  return {-1, time}
end
if generation == ARGV[4] and digest == ARGV[5] then
  redis.call('HSET', KEYS[2], ARGV[1],
    string.char(version) .. created .. ARGV[6] .. ARGV[7] .. ARGV[8] .. rest)
  local field = ARGV[1] .. 'u'
  local used = tonumber(redis.call('HGET', KEYS[2], field))
  if not used or used < now then
    redis.call('HSET', KEYS[2], field, ARGV[2])
  end
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  expire_with_last_session()
  if tonumber(ARGV[3]) < tonumber(expiry) then
    -- It ends sooner now: what others remember of it no longer holds.
    ended(ARGV[11], ARGV[1], ARGV[12])
  end
  return {1, time}
end
if generation == ARGV[6] and digest == ARGV[7] then
  -- This very rotation took effect already: a retry whose answer was lost.
  return {1, time}
end
if generation == ARGV[6] and now < u64(rotated_at, 1) + tonumber(ARGV[9]) then
  return {2, time}
end
forget(ARGV[1])
ended(ARGV[11], ARGV[1], ARGV[12])
return {3, time}
",
        ]
        .concat(),
    )
});

/// [`ROTATE`]'s answers.
const ROTATE_UNKNOWN: i64 = 0;
const ROTATE_ROTATED: i64 = 1;
const ROTATE_FORGIVEN: i64 = 2;
const ROTATE_REUSED: i64 = 3;
const ROTATE_LATE: i64 = 4;
const ROTATE_MALFORMED: i64 = -1;

/// ARGV: id, the events channel, the user. Returns 1 when the session existed.
static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1], ARGV[1] .. 'u')
if removed > 0 then
  redis.call('PUBLISH', ARGV[2], 'S' .. ARGV[1] .. ARGV[3])
end
return removed
",
    )
});

/// ARGV: the events channel, the user. Returns how many sessions there were.
static REVOKE_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local count = redis.call('ZCARD', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if count > 0 then
  redis.call('PUBLISH', ARGV[1], 'U' .. ARGV[2])
end
return count
",
    )
});

/// ARGV: a time (Unix microseconds), when the mark may go (Unix milliseconds), the events
/// channel, the user. Raises the user's "not before" mark to the time (it never goes
/// down; it is kept at least until the given instant), and ends the sessions authenticated
/// before it and any without a readable record (as `revoke_all` would); returns how many.
static REVOKE_AUTHENTICATED_BEFORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        &[
            RECORD_LUA,
            r"
local before = tonumber(ARGV[1])
local mark = tonumber(redis.call('GET', KEYS[4]))
if not mark then
  redis.call('SET', KEYS[4], ARGV[1])
  redis.call('PEXPIREAT', KEYS[4], ARGV[2])
else
  if mark < before then
    redis.call('SET', KEYS[4], ARGV[1], 'KEEPTTL')
  end
  redis.call('PEXPIREAT', KEYS[4], ARGV[2], 'GT')
end
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local count = 0
for i = 1, #ids do
  local _, authenticated = times(redis.call('HGET', KEYS[2], ids[i]))
  if authenticated < before then
    forget(ids[i])
    count = count + 1
  end
end
if count > 0 then
  redis.call('PUBLISH', ARGV[3], 'U' .. ARGV[4])
end
return count
",
        ]
        .concat(),
    )
});

/// ARGV: now, max. Returns `{id, expiry, record, last use}` for at most the `max` newest
/// sessions unexpired at `now`, newest first, read at one point in time.
static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        &[
            RECORD_LUA,
            r"
ensure_order()
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local sessions = {}
local chunk = math.min(max, 128)
local from = 0
while #sessions < max do
  local ids = redis.call('ZREVRANGE', KEYS[3], from, from + chunk - 1)
  if #ids == 0 then
    break
  end
  for i = 1, #ids do
    local expiry = redis.call('ZSCORE', KEYS[1], ids[i])
    if expiry and tonumber(expiry) > now and #sessions < max then
      local metadata = redis.call('HMGET', KEYS[2], ids[i], ids[i] .. 'u')
      sessions[#sessions + 1] = {ids[i], expiry, metadata[1], metadata[2]}
    end
  end
  from = from + chunk
end
return sessions
",
        ]
        .concat(),
    )
});

/// One session as [`LIST`] answers it: id, expiry, record, last use.
type ListedRow = (Vec<u8>, f64, Option<Vec<u8>>, Option<Vec<u8>>);

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// [`IS_ACTIVE`]: the session's end and last use when it is live at `now`.
    fn expiry(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> impl Future<Output = Result<Option<Liveness>, StoreError>> + Send + 'static {
        // The future outlives `&self`: it owns a clone of the connection (a cheap handle).
        let mut connection = self.connection.clone();
        let keys = self.keys(sub);
        let member = *sid.as_bytes();
        let timeout = self.timeout;
        // A last use is never before 0, so with an interval beyond `now` no use can be due:
        // one `ZSCORE` answers, without running a script.
        let may_touch = touch_interval <= now;
        async move {
            let (until, last_used): (u64, u64) = if may_touch {
                bounded(
                    timeout,
                    IS_ACTIVE
                        .key(&keys.sessions)
                        .key(&keys.metadata)
                        .arg(&member[..])
                        .arg(now)
                        .arg(touch_interval)
                        .invoke_async(&mut connection),
                )
                .await?
            } else {
                let expiry: Option<f64> = bounded(
                    timeout,
                    ::redis::cmd("ZSCORE")
                        .arg(&keys.sessions)
                        .arg(&member[..])
                        .query_async(&mut connection),
                )
                .await?;
                // No touch can be due: the last use does not matter.
                (expiry.map_or(0, |expiry| expiry as u64), 0)
            };
            Ok((now < until).then_some(Liveness { until, last_used }))
        }
    }
}

impl<C> SessionStore for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    type IsActive = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>>;

    async fn create(
        &self,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> Result<Created, StoreError> {
        let keys = self.keys(&session.sub);
        let (max, end_oldest) = match limit {
            None => (0, false),
            Some(limit) => (limit.max.max(1), limit.when_full == WhenFull::EndOldest),
        };
        let (deadline, sent) = self.deadline().await?;
        let mut connection = self.connection.clone();
        let (outcome, ended, time): (i64, i64, i64) = bounded(
            self.timeout,
            CREATE
                .key(&keys.sessions)
                .key(&keys.metadata)
                .key(&keys.order)
                .key(&keys.mark)
                .arg(&session.id.as_bytes()[..])
                .arg(unix_seconds(session.expires_at).min(MAX_EXPIRY))
                .arg(unix_seconds(session.created_at))
                .arg(encode_record(session))
                .arg(unix_seconds(session.last_used_at))
                .arg(max)
                .arg(u8::from(end_oldest))
                .arg(deadline)
                .arg(unix_micros(session.created_at).min(MAX_EXPIRY))
                .arg(unix_micros(session.authenticated_at).min(MAX_EXPIRY))
                .arg(self.events_channel())
                .arg(&session.sub)
                .invoke_async(&mut connection),
        )
        .await?;
        self.learn_time(time, sent);
        match outcome {
            CREATED => Ok(Created::Live {
                ended: u32::try_from(ended).map_err(|_| unexpected("create"))?,
            }),
            CONFLICT => Err(StoreError::Conflict),
            LIMIT_REACHED => Ok(Created::LimitReached),
            BARRED => Ok(Created::Barred),
            CREATE_LATE => Err(StoreError::Timeout),
            _ => Err(unexpected("create")),
        }
    }

    fn is_active(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> Self::IsActive {
        let expiry = self.expiry(sub, sid, now, touch_interval);
        Box::pin(async move { Ok(expiry.await?.is_some()) })
    }

    fn liveness(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> impl Future<Output = Result<Option<Liveness>, StoreError>> + Send {
        self.expiry(sub, sid, now, touch_interval)
    }

    async fn rotate(
        &self,
        sub: &str,
        sid: &SessionId,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        // Only a session created at generation `u64::MAX` could be current there, and it has
        // no next generation to rotate to.
        let next_generation = rotation
            .generation
            .checked_add(1)
            .ok_or_else(|| StoreError::Backend(Box::new(GenerationOverflow)))?;
        let keys = self.keys(sub);
        let (deadline, sent) = self.deadline().await?;
        let mut connection = self.connection.clone();
        let (outcome, time): (i64, i64) = bounded(
            self.timeout,
            ROTATE
                .key(&keys.sessions)
                .key(&keys.metadata)
                .key(&keys.order)
                .key(&keys.mark)
                .arg(&sid.as_bytes()[..])
                .arg(rotation.now)
                .arg(rotation.expires_at.min(MAX_EXPIRY))
                .arg(&rotation.generation.to_be_bytes()[..])
                .arg(&rotation.digest[..])
                .arg(&next_generation.to_be_bytes()[..])
                .arg(&rotation.next_digest[..])
                .arg(&rotation.now.to_be_bytes()[..])
                .arg(rotation.grace)
                .arg(deadline)
                .arg(self.events_channel())
                .arg(sub)
                .invoke_async(&mut connection),
        )
        .await?;
        self.learn_time(time, sent);
        match outcome {
            ROTATE_ROTATED => Ok(Rotated::Rotated),
            ROTATE_FORGIVEN => Ok(Rotated::Forgiven),
            ROTATE_REUSED => Ok(Rotated::Reused),
            ROTATE_UNKNOWN => Ok(Rotated::Unknown),
            ROTATE_LATE => Err(StoreError::Timeout),
            ROTATE_MALFORMED => Err(StoreError::Backend(Box::new(MalformedSession(
                "unreadable record",
            )))),
            _ => Err(unexpected("rotate")),
        }
    }

    async fn revoke(&self, sub: &str, sid: &SessionId) -> Result<bool, StoreError> {
        let keys = self.keys(sub);
        let mut connection = self.connection.clone();
        let removed: i64 = bounded(
            self.timeout,
            REVOKE
                .key(&keys.sessions)
                .key(&keys.metadata)
                .key(&keys.order)
                .arg(&sid.as_bytes()[..])
                .arg(self.events_channel())
                .arg(sub)
                .invoke_async(&mut connection),
        )
        .await?;
        Ok(removed > 0)
    }

    async fn revoke_all(&self, sub: &str) -> Result<u64, StoreError> {
        let keys = self.keys(sub);
        let mut connection = self.connection.clone();
        bounded(
            self.timeout,
            REVOKE_ALL
                .key(&keys.sessions)
                .key(&keys.metadata)
                .key(&keys.order)
                .arg(self.events_channel())
                .arg(sub)
                .invoke_async(&mut connection),
        )
        .await
    }

    async fn revoke_authenticated_before(
        &self,
        sub: &str,
        before: SystemTime,
        keep_until: SystemTime,
    ) -> Result<u64, StoreError> {
        let keys = self.keys(sub);
        let keep_until = keep_until
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
            })
            .max(1);
        let mut connection = self.connection.clone();
        bounded(
            self.timeout,
            REVOKE_AUTHENTICATED_BEFORE
                .key(&keys.sessions)
                .key(&keys.metadata)
                .key(&keys.order)
                .key(&keys.mark)
                .arg(unix_micros(before).min(MAX_EXPIRY))
                .arg(keep_until)
                .arg(self.events_channel())
                .arg(sub)
                .invoke_async(&mut connection),
        )
        .await
    }

    async fn list(&self, sub: &str, now: u64, max: usize) -> Result<Vec<Session>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let keys = self.keys(sub);
        let mut connection = self.connection.clone();
        let rows: Vec<ListedRow> = bounded(
            self.timeout,
            LIST.key(&keys.sessions)
                .key(&keys.metadata)
                .key(&keys.order)
                .key(&keys.mark)
                .arg(now)
                // "All of them": more than a user can have.
                .arg(max.min(1 << 40))
                .invoke_async(&mut connection),
        )
        .await?;
        let mut sessions = rows
            .into_iter()
            .map(|(id, expires_at, record, last_use)| {
                decode_session(sub, &id, expires_at, record.as_deref(), last_use.as_deref())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| StoreError::Backend(Box::new(error)))?;
        sessions.reverse();
        Ok(sessions)
    }
}

/// Redis' clock minus this machine's (milliseconds), from Redis' time `redis` read by a
/// command sent at `sent` and answered at `received` (this machine's times): Redis read its
/// clock somewhere in between, so the middle is the best guess, off by at most half the
/// round trip. A round trip longer than `max_round_trip` (Redis paused, a queue, a slow
/// network) says too little once an estimate is `known`: `None`, keep that one.
fn estimate_offset(
    redis: i64,
    sent: i64,
    received: i64,
    max_round_trip: i64,
    known: bool,
) -> Option<i64> {
    let round_trip = received.saturating_sub(sent).max(0);
    if known && round_trip > max_round_trip {
        return None;
    }
    Some(redis.saturating_sub(sent.saturating_add(round_trip / 2)))
}

/// Whether `INFO server` names a version the scripts run on.
fn supported(info: &str) -> Result<(), StoreError> {
    let found = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(str::trim)
        .unwrap_or("unknown");
    let mut numbers = found.split('.').map(|part| part.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) if (major, minor) >= MINIMUM_REDIS_VERSION => Ok(()),
        _ => Err(StoreError::UnsupportedVersion {
            found: found.to_owned(),
            minimum: "7.0",
        }),
    }
}

/// Runs one call within `timeout`, sorting its failure into a [`StoreError`].
async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(classify(error)),
        Err(_elapsed) => Err(StoreError::Timeout),
    }
}

/// Whether Redis could not be reached (a later call may succeed) or answered wrongly.
fn classify(error: RedisError) -> StoreError {
    if error.is_timeout() {
        return StoreError::Timeout;
    }
    let unreachable = error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(
            error.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    // Loading its data after a restart, or a cluster or fail-over in progress.
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        );
    if unreachable {
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Backend(Box::new(error))
    }
}

// ===== keys =====

/// The keys of one user, sharing a hash tag.
#[derive(Debug, PartialEq, Eq)]
struct UserKeys {
    sessions: String,
    metadata: String,
    order: String,
    mark: String,
}

impl UserKeys {
    fn new(prefix: &str, sub: &str) -> Self {
        let mut tagged = String::with_capacity(prefix.len() + sub.len() + 6);
        tagged.push_str(prefix);
        tagged.push('{');
        if sub.is_empty() {
            // An empty hash tag would not be one: Redis would hash the whole key instead.
            tagged.push('%');
        }
        for c in sub.chars() {
            match c {
                '%' => tagged.push_str("%25"),
                '{' => tagged.push_str("%7B"),
                '}' => tagged.push_str("%7D"),
                c => tagged.push(c),
            }
        }
        tagged.push('}');
        let key = |suffix: &str| format!("{tagged}{suffix}");
        Self {
            sessions: key(":s"),
            metadata: key(":m"),
            order: key(":o"),
            mark: key(":n"),
        }
    }
}

// ===== records =====

/// The layout of a record, its first byte, so the format can change. The scripts read the
/// fixed part of versions 1 to 3 (`RECORD_LUA`) and keep a record's version when they
/// rewrite it (`ROTATE`).
const RECORD_VERSION: u8 = 3;
/// Creation in seconds, no authentication time.
const RECORD_VERSION_2: u8 = 2;
/// The layout before refresh tokens: no refresh state, and the last use inside the record.
const RECORD_VERSION_1: u8 = 1;

const NO_ADDRESS: u8 = 0;
const IPV4: u8 = 4;
const IPV6: u8 = 6;

/// A session's record as Redis holds it: the version, `created_at` (Unix microseconds),
/// then the refresh state (generation, digest, `rotated_at` in seconds: 8, 32 and 8 bytes,
/// integers big-endian) and `authenticated_at` (microseconds), all at fixed offsets that
/// the scripts read; then the address (a tag, then 0, 4 or 16 bytes) and the user agent (a
/// presence byte, then its UTF-8 to the end). The last use is kept apart.
fn encode_record(session: &Session) -> Vec<u8> {
    let user_agent = session.user_agent.as_deref().unwrap_or_default();
    let mut record = Vec::with_capacity(65 + 17 + 1 + user_agent.len());
    record.push(RECORD_VERSION);
    record.extend_from_slice(&unix_micros(session.created_at).to_be_bytes());
    record.extend_from_slice(&session.refresh.generation.to_be_bytes());
    record.extend_from_slice(&session.refresh.digest);
    record.extend_from_slice(&session.refresh.rotated_at.to_be_bytes());
    record.extend_from_slice(&unix_micros(session.authenticated_at).to_be_bytes());
    match session.address {
        None => record.push(NO_ADDRESS),
        Some(IpAddr::V4(address)) => {
            record.push(IPV4);
            record.extend_from_slice(&address.octets());
        }
        Some(IpAddr::V6(address)) => {
            record.push(IPV6);
            record.extend_from_slice(&address.octets());
        }
    }
    match &session.user_agent {
        None => record.push(0),
        Some(user_agent) => {
            record.push(1);
            record.extend_from_slice(user_agent.as_bytes());
        }
    }
    record
}

/// What Redis held for a session could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("malformed session in Redis: {0}")]
struct MalformedSession(&'static str);

/// A script answered what it never answers.
fn unexpected(script: &'static str) -> StoreError {
    #[derive(Debug, thiserror::Error)]
    #[error("unexpected answer of the {0} script")]
    struct UnexpectedAnswer(&'static str);
    StoreError::Backend(Box::new(UnexpectedAnswer(script)))
}

/// A refresh token at generation `u64::MAX` cannot be rotated.
#[derive(Debug, thiserror::Error)]
#[error("the refresh generation cannot advance past u64::MAX")]
struct GenerationOverflow;

/// A session from its id, expiry, record and last-use field (decimal Unix seconds). Without
/// that field, the last use is the one a version-1 record holds, or the last rotation.
fn decode_session(
    sub: &str,
    id: &[u8],
    expires_at: f64,
    record: Option<&[u8]>,
    last_use: Option<&[u8]>,
) -> Result<Session, MalformedSession> {
    let id = <[u8; 16]>::try_from(id).map_err(|_| MalformedSession("session id"))?;
    if !(expires_at.is_finite() && expires_at >= 0.0) {
        return Err(MalformedSession("expiry"));
    }
    let record = record.ok_or(MalformedSession("record missing"))?;
    let expires_at = from_unix_seconds(expires_at as u64);
    let mut session = Session::new(SessionId::from_bytes(id), sub, expires_at, expires_at);
    let mut reader = Reader(record);
    let [version] = reader.take::<1>()?;
    let created = u64::from_be_bytes(reader.take()?);
    let recorded_use = match version {
        RECORD_VERSION | RECORD_VERSION_2 => {
            session.refresh = RefreshState {
                generation: u64::from_be_bytes(reader.take()?),
                digest: reader.take()?,
                rotated_at: u64::from_be_bytes(reader.take()?),
            };
            if version == RECORD_VERSION {
                session.created_at = from_unix_micros(created);
                session.authenticated_at = from_unix_micros(u64::from_be_bytes(reader.take()?));
            } else {
                session.created_at = from_unix_seconds(created);
                session.authenticated_at = session.created_at;
            }
            session.refresh.rotated_at
        }
        RECORD_VERSION_1 => {
            session.created_at = from_unix_seconds(created);
            session.authenticated_at = session.created_at;
            session.refresh = RefreshState {
                generation: 0,
                digest: [0; 32],
                rotated_at: created,
            };
            u64::from_be_bytes(reader.take()?)
        }
        _ => return Err(MalformedSession("unknown record version")),
    };
    session.address = match reader.take::<1>()? {
        [NO_ADDRESS] => None,
        [IPV4] => Some(Ipv4Addr::from(reader.take::<4>()?).into()),
        [IPV6] => Some(Ipv6Addr::from(reader.take::<16>()?).into()),
        _ => return Err(MalformedSession("address")),
    };
    session.user_agent = match reader.take::<1>()? {
        [0] if reader.0.is_empty() => None,
        [1] => {
            Some(String::from_utf8(reader.0.to_vec()).map_err(|_| MalformedSession("user agent"))?)
        }
        _ => return Err(MalformedSession("user agent")),
    };
    let last_used_at = match last_use {
        None => recorded_use,
        Some(digits) => std::str::from_utf8(digits)
            .ok()
            .and_then(|digits| digits.parse().ok())
            .ok_or(MalformedSession("last use"))?,
    };
    session.last_used_at = from_unix_seconds(last_used_at);
    Ok(session)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], MalformedSession> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(MalformedSession("truncated record"))?;
        self.0 = rest;
        Ok(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = open + key[open..].find('}').unwrap();
        &key[open + 1..close]
    }

    fn session(created: u64, expires: u64) -> Session {
        Session::new(
            SessionId::from_bytes([9; 16]),
            "bob",
            from_unix_seconds(created),
            from_unix_seconds(expires),
        )
    }

    #[test]
    fn keys_of_a_user_share_one_non_empty_hash_tag() {
        for sub in ["alice", "", "{", "}", "a}b{c", "%7B", "}{", "ä:{x}:y"] {
            let keys = UserKeys::new("tja:", sub);
            let tag = hash_tag(&keys.sessions);
            assert!(!tag.is_empty(), "{sub:?}");
            for key in [&keys.metadata, &keys.order, &keys.mark] {
                assert_eq!(tag, hash_tag(key), "{sub:?}");
                assert_ne!(&keys.sessions, key);
            }
        }
    }

    #[test]
    fn users_never_share_keys() {
        let subs = [
            "", "%", "%25", "{", "%7B", "%7b", "}", "%7D", "a", "a}", "a}:s", "a:s", "{a}",
            "%7Ba%7D", ":", "::",
        ];
        let mut seen = std::collections::HashSet::new();
        for sub in subs {
            let keys = UserKeys::new("tja:", sub);
            for key in [keys.sessions, keys.metadata, keys.order, keys.mark] {
                assert!(seen.insert(key), "{sub:?}");
            }
        }
    }

    #[test]
    fn keys_are_readable() {
        let keys = UserKeys::new("tja:", "alice");
        assert_eq!(keys.sessions, "tja:{alice}:s");
        assert_eq!(keys.metadata, "tja:{alice}:m");
        assert_eq!(keys.order, "tja:{alice}:o");
        assert_eq!(keys.mark, "tja:{alice}:n");
        assert_eq!(UserKeys::new("p:", "{a%}").sessions, "p:{%7Ba%25%7D}:s");
    }

    fn round_trip(session: &Session) -> Session {
        let record = encode_record(session);
        let last_use = unix_seconds(session.last_used_at).to_string();
        let id = session.id.as_bytes();
        let expiry = unix_seconds(session.expires_at) as f64;
        decode_session(
            &session.sub,
            id,
            expiry,
            Some(&record),
            Some(last_use.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn records_round_trip() {
        let mut session = session(100, 200);
        assert_eq!(round_trip(&session), session);
        session.created_at = from_unix_micros(100_000_017);
        session.authenticated_at = from_unix_micros(99_999_999);
        session.last_used_at = from_unix_seconds(150);
        session.user_agent = Some(String::new());
        session.address = Some("2001:db8::1".parse().unwrap());
        session.refresh = RefreshState {
            generation: u64::MAX,
            digest: [0xA5; 32],
            rotated_at: 140,
        };
        assert_eq!(round_trip(&session), session);
        session.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64) é".into());
        session.address = Some("203.0.113.7".parse().unwrap());
        assert_eq!(round_trip(&session), session);
    }

    /// The offsets `RECORD_LUA` reads (1-based there).
    #[test]
    fn the_fixed_part_sits_where_the_scripts_read_it() {
        let mut session = session(100, 200);
        session.authenticated_at = from_unix_seconds(90);
        session.refresh = RefreshState {
            generation: 7,
            digest: [0xA5; 32],
            rotated_at: 140,
        };
        session.user_agent = Some("curl/8.5.0".into());
        let record = encode_record(&session);
        assert_eq!(record[0], RECORD_VERSION);
        assert_eq!(record[1..9], 100_000_000u64.to_be_bytes());
        assert_eq!(record[9..17], 7u64.to_be_bytes());
        assert_eq!(record[17..49], [0xA5; 32]);
        assert_eq!(record[49..57], 140u64.to_be_bytes());
        assert_eq!(record[57..65], 90_000_000u64.to_be_bytes());
        assert_eq!(record[65], NO_ADDRESS);
    }

    #[test]
    fn version_2_records_read_with_second_times() {
        let mut record = vec![RECORD_VERSION_2];
        record.extend_from_slice(&100u64.to_be_bytes());
        record.extend_from_slice(&3u64.to_be_bytes());
        record.extend_from_slice(&[0xA5; 32]);
        record.extend_from_slice(&140u64.to_be_bytes());
        record.extend_from_slice(&[NO_ADDRESS, 0]);
        let decoded = decode_session("bob", &[9; 16], 200.0, Some(&record), None).unwrap();
        let mut expected = session(100, 200);
        expected.refresh = RefreshState {
            generation: 3,
            digest: [0xA5; 32],
            rotated_at: 140,
        };
        expected.last_used_at = from_unix_seconds(140);
        assert_eq!(decoded, expected);
    }

    #[test]
    fn version_1_records_read_as_generation_0() {
        // Version 1: version, created_at, last_used_at, address, user agent.
        let mut record = vec![RECORD_VERSION_1];
        record.extend_from_slice(&100u64.to_be_bytes());
        record.extend_from_slice(&150u64.to_be_bytes());
        record.extend_from_slice(&[IPV4, 203, 0, 113, 7, 1]);
        record.extend_from_slice(b"curl/8.5.0");
        let mut expected = session(100, 200);
        expected.last_used_at = from_unix_seconds(150);
        expected.address = Some("203.0.113.7".parse().unwrap());
        expected.user_agent = Some("curl/8.5.0".into());
        let decode = |last_use: Option<&[u8]>| {
            decode_session("bob", &[9; 16], 200.0, Some(&record), last_use).unwrap()
        };
        assert_eq!(decode(None), expected);
        expected.last_used_at = from_unix_seconds(170);
        assert_eq!(decode(Some(b"170")), expected, "a last-use field wins");
    }

    #[test]
    fn without_a_last_use_field_a_record_was_last_used_when_rotated() {
        let mut session = session(100, 200);
        session.refresh.rotated_at = 160;
        let record = encode_record(&session);
        let decoded = decode_session("bob", &[9; 16], 200.0, Some(&record), None).unwrap();
        assert_eq!(decoded.last_used_at, from_unix_seconds(160));
    }

    #[test]
    fn malformed_records_are_an_error() {
        let record = encode_record(&session(100, 200));
        let decode = |id: &[u8], expiry: f64, record: Option<&[u8]>, last_use: Option<&[u8]>| {
            decode_session("bob", id, expiry, record, last_use).unwrap_err()
        };
        decode(&[1; 15], 200.0, Some(&record), None);
        decode(&[1; 16], f64::NAN, Some(&record), None);
        decode(&[1; 16], 200.0, None, None);
        decode(&[1; 16], 200.0, Some(&record[..10]), None);
        decode(&[1; 16], 200.0, Some(&record[..64]), None);
        decode(&[1; 16], 200.0, Some(&[4]), None);
        decode(&[1; 16], 200.0, Some(&[RECORD_VERSION_1]), None);
        for last_use in [&b""[..], b"-1", b"1.5", b"18446744073709551616", b"\xff"] {
            decode(&[1; 16], 200.0, Some(&record), Some(last_use));
        }
        let mut trailing = record.clone();
        trailing.push(b'x');
        decode(&[1; 16], 200.0, Some(&trailing), None);
        let mut bad_address = record;
        bad_address[65] = 5;
        decode(&[1; 16], 200.0, Some(&bad_address), None);
    }

    #[test]
    fn events_read_back() {
        assert_eq!(
            Ended::parse(b"S0123456789abcdefalice"),
            Some(Ended::Session {
                id: SessionId::from_bytes(*b"0123456789abcdef"),
                sub: "alice"
            })
        );
        assert_eq!(
            Ended::parse(b"S0123456789abcdef"),
            Some(Ended::Session {
                id: SessionId::from_bytes(*b"0123456789abcdef"),
                sub: ""
            })
        );
        assert_eq!(Ended::parse(b"Ualice"), Some(Ended::User("alice")));
        assert_eq!(Ended::parse(b"Hx"), Some(Ended::Heartbeat(b"x")));
        for bad in [&b""[..], b"S123", b"S0123456789abcdef\xff", b"U\xff", b"X"] {
            assert_eq!(Ended::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_offset_is_read_at_the_middle_of_the_round_trip() {
        // Redis 1 s ahead; 40 ms there and back.
        assert_eq!(
            estimate_offset(11_020, 10_000, 10_040, 150, true),
            Some(1_000)
        );
        // Redis 1 s behind.
        assert_eq!(
            estimate_offset(9_020, 10_000, 10_040, 150, true),
            Some(-1_000)
        );
        // A reply held up for two seconds (Redis paused) would put Redis a second ahead of
        // where it is: ignored once an estimate is known, taken for want of one.
        assert_eq!(estimate_offset(12_000, 10_000, 12_000, 150, true), None);
        assert_eq!(
            estimate_offset(12_000, 10_000, 12_000, 150, false),
            Some(1_000)
        );
        // A clock stepping back between send and answer does not make a negative trip.
        assert_eq!(estimate_offset(10_000, 10_000, 9_000, 150, true), Some(0));
    }

    #[test]
    fn redis_7_or_later_is_required() {
        for info in [
            "redis_version:7.0.15\r\n",
            "# Server\r\nredis_version:8.2.1\r\n",
        ] {
            assert!(supported(info).is_ok(), "{info}");
        }
        for (info, found) in [
            ("redis_version:6.2.14\r\n", "6.2.14"),
            ("redis_version:garbage\r\n", "garbage"),
            ("", "unknown"),
        ] {
            let error = supported(info).unwrap_err();
            assert!(
                matches!(&error, StoreError::UnsupportedVersion { found: f, minimum: "7.0" } if f == found),
                "{info}"
            );
            assert!(error.to_string().contains("7.0"), "{error}");
        }
    }

    #[test]
    fn errors_say_what_failed() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(classify(refused), StoreError::Unavailable(_)));
        let timed_out = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(classify(timed_out), StoreError::Timeout));
        let loading =
            RedisError::from((ErrorKind::Server(ServerErrorKind::BusyLoading), "loading"));
        assert!(matches!(classify(loading), StoreError::Unavailable(_)));
        let wrong_type = RedisError::from((ErrorKind::UnexpectedReturnType, "wrong type"));
        assert!(matches!(classify(wrong_type), StoreError::Backend(_)));
    }

    #[test]
    fn a_cluster_connection_makes_a_store() {
        fn assert_store<St: SessionStore + Clone>() {}
        assert_store::<RedisStore>();
        assert_store::<RedisStore<::redis::cluster_async::ClusterConnection>>();
    }
}
