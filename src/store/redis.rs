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
//! Each user has two keys under one [hash tag], so that every operation touches a single
//! cluster slot:
//!
//! - `<prefix>{<user>}:s`, a sorted set: member = the session id (its 16 raw bytes), score =
//!   its expiry (Unix seconds). [`is_active`](SessionStore::is_active) is one `ZSCORE`, and
//!   compares the expiry with the time it is given, so a session ends on time even before
//!   Redis removes it.
//! - `<prefix>{<user>}:m`, a hash: field = the session id, value = the session's metadata
//!   (creation and last-use time, user agent, address) in a compact binary form.
//!
//! The user id is escaped (`%` → `%25`, `{` → `%7B`, `}` → `%7D`; the empty id is written
//! `%`), so ids holding any characters can neither break the hash tag nor share keys with
//! another user. Keep braces out of the prefix: they would put every user in one slot.
//!
//! Every change is a single Lua script (run by `EVALSHA`, loaded on first use), so it is
//! atomic: creating a session (which also drops the user's expired sessions and refuses an
//! id the user has already), revoking one, revoking all. Ids are checked for uniqueness per
//! user only, as a check across users would touch other slots; session ids are 128 random
//! bits, so two users never draw the same one in practice. Both keys expire at the latest expiry of their
//! sessions, so a user's keys disappear with their last session. Key expiry follows the
//! Redis server's clock while session expiry follows the time the store is given: run both
//! on real, synchronised time. Only session ids and their metadata reach Redis, never a
//! token.
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
//! # Persistence
//!
//! The sessions live in Redis' memory. Whether they survive a restart of Redis is Redis'
//! persistence setting: with the append-only file (`appendonly yes`, and `appendfsync
//! everysec` or `always`) a restarted Redis knows every session it knew before, up to the
//! last second or write. Without persistence a restart ends every session (users log in
//! again); with RDB snapshots only, it brings back the sessions of the last snapshot,
//! revoked ones included, until they expire. Replicas and Redis Cluster fail-over can lose
//! the last writes in the same way.
//!
//! # Memory
//!
//! Measured on Redis 7 at 100,000 sessions with a browser's user agent and an address each:
//! about 650 bytes per session when every user has one session (two keys per user), about
//! 350 bytes with four sessions per user. A user agent makes the metadata hash outgrow
//! Redis' compact encoding (`hash-max-listpack-value`, 64 bytes by default); raising that
//! setting to 512 brings the figures to about 510 and 270 bytes.
//!
//! [hash tag]: https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

pub use ::redis;
use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::io::tcp::TcpSettings;
use ::redis::io::tcp::socket2::TcpKeepalive;
use ::redis::{ErrorKind, IntoConnectionInfo, RedisError, RedisResult, Script, ServerErrorKind};

use super::{Session, SessionStore, StoreError};
use crate::SessionId;

/// The key prefix when none is set.
const DEFAULT_PREFIX: &str = "tja:";

/// The per-call timeout when none is set: long enough for a loaded Redis across a network,
/// short enough that a request fails fast when Redis is gone.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(300);

/// Scores are doubles: integers above 2^53 would not come back as written.
const MAX_EXPIRY: u64 = 1 << 53;

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
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` with a TLS feature of the `redis` crate) through a [`ConnectionManager`]
    /// that reconnects by itself, retrying with backoff capped at one second.
    ///
    /// The socket is set up for failing fast: no Nagle delay, keepalive probes, and on
    /// Linux a 5 s `TCP_USER_TIMEOUT`, so a connection into a network black hole is dropped
    /// (and replaced) instead of waiting for the kernel's retransmissions for many minutes.
    ///
    /// Fails with [`StoreError::Unavailable`] when Redis cannot be reached within a few
    /// seconds, and [`StoreError::Backend`] when the URL is invalid. To configure the
    /// connection otherwise, build the [`ConnectionManager`] yourself and use
    /// [`new`](Self::new).
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
        Ok(Self::new(connection))
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A store on an existing connection, with the default prefix (`tja:`) and timeout
    /// (300 ms).
    ///
    /// The connection should reconnect by itself, as a [`ConnectionManager`] or a cluster
    /// connection does; a plain multiplexed connection stays broken once Redis drops it.
    pub fn new(connection: C) -> Self {
        Self {
            connection,
            prefix: Arc::from(DEFAULT_PREFIX),
            timeout: DEFAULT_TIMEOUT,
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
    /// 300 ms). This bounds how long a request waits when Redis is slow or gone.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The connection, for running your own commands on it.
    pub fn connection(&self) -> &C {
        &self.connection
    }

    fn keys(&self, sub: &str) -> UserKeys {
        UserKeys::new(&self.prefix, sub)
    }
}

impl<C: Clone> Clone for RedisStore<C> {
    fn clone(&self) -> Self {
        Self {
            connection: self.connection.clone(),
            prefix: Arc::clone(&self.prefix),
            timeout: self.timeout,
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

// ===== impl SessionStore =====

/// KEYS: the sessions, the metadata. ARGV: id, expiry, now, metadata.
/// Returns 1 when created, 0 when the id exists (and is unexpired at `now`).
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if #expired > 0 then
  for i = 1, #expired do
    redis.call('HDEL', KEYS[2], expired[i])
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
end
if redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], last[2])
redis.call('EXPIREAT', KEYS[2], last[2])
return 1
",
    )
});

/// KEYS: the sessions, the metadata. ARGV: id. Returns 1 when the session existed.
static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return removed
",
    )
});

/// KEYS: the sessions, the metadata. Returns how many sessions there were.
static REVOKE_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local count = redis.call('ZCARD', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return count
",
    )
});

/// KEYS: the sessions, the metadata. ARGV: now. Returns `{id, expiry, metadata}` for each
/// session unexpired at `now`, read at one point in time.
static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES')
local sessions = {}
for i = 1, #live, 2 do
  sessions[#sessions + 1] = {live[i], live[i + 1], redis.call('HGET', KEYS[2], live[i])}
end
return sessions
",
    )
});

impl<C> SessionStore for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    type IsActive = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>>;

    async fn create(&self, session: &Session) -> Result<(), StoreError> {
        let keys = self.keys(&session.sub);
        let entry = encode_entry(session);
        let mut connection = self.connection.clone();
        let created: i64 = bounded(
            self.timeout,
            CREATE
                .key(&keys.sessions)
                .key(&keys.metadata)
                .arg(&session.id.as_bytes()[..])
                .arg(session.expires_at.min(MAX_EXPIRY))
                .arg(session.created_at)
                .arg(entry)
                .invoke_async(&mut connection),
        )
        .await?;
        match created {
            1 => Ok(()),
            _ => Err(StoreError::Conflict),
        }
    }

    fn is_active(&self, sub: &str, sid: &SessionId, now: u64) -> Self::IsActive {
        // The future outlives `&self`: it owns a clone of the connection (a cheap handle).
        let mut connection = self.connection.clone();
        let key = self.keys(sub).sessions;
        let member = *sid.as_bytes();
        let timeout = self.timeout;
        Box::pin(async move {
            let expires_at: Option<f64> = bounded(
                timeout,
                ::redis::cmd("ZSCORE")
                    .arg(key)
                    .arg(&member[..])
                    .query_async(&mut connection),
            )
            .await?;
            Ok(expires_at.is_some_and(|expires_at| (now as f64) < expires_at))
        })
    }

    async fn revoke(&self, sub: &str, sid: &SessionId) -> Result<bool, StoreError> {
        let keys = self.keys(sub);
        let mut connection = self.connection.clone();
        let removed: i64 = bounded(
            self.timeout,
            REVOKE
                .key(&keys.sessions)
                .key(&keys.metadata)
                .arg(&sid.as_bytes()[..])
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
                .invoke_async(&mut connection),
        )
        .await
    }

    async fn list(&self, sub: &str, now: u64) -> Result<Vec<Session>, StoreError> {
        let keys = self.keys(sub);
        let mut connection = self.connection.clone();
        let rows: Vec<(Vec<u8>, f64, Option<Vec<u8>>)> = bounded(
            self.timeout,
            LIST.key(&keys.sessions)
                .key(&keys.metadata)
                .arg(now)
                .invoke_async(&mut connection),
        )
        .await?;
        let mut sessions = rows
            .into_iter()
            .map(|(id, expires_at, entry)| decode_session(sub, &id, expires_at, entry.as_deref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| StoreError::Backend(Box::new(error)))?;
        sessions.sort_by_key(|session| (session.created_at, session.id));
        Ok(sessions)
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

/// The two keys of one user, sharing a hash tag.
#[derive(Debug, PartialEq, Eq)]
struct UserKeys {
    sessions: String,
    metadata: String,
}

impl UserKeys {
    fn new(prefix: &str, sub: &str) -> Self {
        let mut sessions = String::with_capacity(prefix.len() + sub.len() + 6);
        sessions.push_str(prefix);
        sessions.push('{');
        if sub.is_empty() {
            // An empty hash tag would not be one: Redis would hash the whole key instead.
            sessions.push('%');
        }
        for c in sub.chars() {
            match c {
                '%' => sessions.push_str("%25"),
                '{' => sessions.push_str("%7B"),
                '}' => sessions.push_str("%7D"),
                c => sessions.push(c),
            }
        }
        sessions.push('}');
        let mut metadata = sessions.clone();
        sessions.push_str(":s");
        metadata.push_str(":m");
        Self { sessions, metadata }
    }
}

// ===== metadata =====

/// The layout of a metadata value; the first byte, so the format can change later.
const ENTRY_VERSION: u8 = 1;

const NO_ADDRESS: u8 = 0;
const IPV4: u8 = 4;
const IPV6: u8 = 6;

/// A session's metadata as Redis holds it: version, `created_at` and `last_used_at` (8 bytes
/// each, big-endian), the address (a tag, then 0, 4 or 16 bytes), and the user agent (a
/// presence byte, then its UTF-8 to the end).
fn encode_entry(session: &Session) -> Vec<u8> {
    let user_agent = session.user_agent.as_deref().unwrap_or_default();
    let mut entry = Vec::with_capacity(1 + 16 + 17 + 1 + user_agent.len());
    entry.push(ENTRY_VERSION);
    entry.extend_from_slice(&session.created_at.to_be_bytes());
    entry.extend_from_slice(&session.last_used_at.to_be_bytes());
    match session.address {
        None => entry.push(NO_ADDRESS),
        Some(IpAddr::V4(address)) => {
            entry.push(IPV4);
            entry.extend_from_slice(&address.octets());
        }
        Some(IpAddr::V6(address)) => {
            entry.push(IPV6);
            entry.extend_from_slice(&address.octets());
        }
    }
    match &session.user_agent {
        None => entry.push(0),
        Some(user_agent) => {
            entry.push(1);
            entry.extend_from_slice(user_agent.as_bytes());
        }
    }
    entry
}

/// What Redis held for a session could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("malformed session in Redis: {0}")]
struct MalformedSession(&'static str);

fn decode_session(
    sub: &str,
    id: &[u8],
    expires_at: f64,
    entry: Option<&[u8]>,
) -> Result<Session, MalformedSession> {
    let id = <[u8; 16]>::try_from(id).map_err(|_| MalformedSession("session id"))?;
    if !(expires_at.is_finite() && expires_at >= 0.0) {
        return Err(MalformedSession("expiry"));
    }
    let entry = entry.ok_or(MalformedSession("metadata missing"))?;
    let mut session = Session::new(SessionId::from_bytes(id), sub, 0, expires_at as u64);
    let mut reader = Reader(entry);
    if reader.take::<1>()? != [ENTRY_VERSION] {
        return Err(MalformedSession("unknown metadata version"));
    }
    session.created_at = u64::from_be_bytes(reader.take()?);
    session.last_used_at = u64::from_be_bytes(reader.take()?);
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
    Ok(session)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], MalformedSession> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(MalformedSession("truncated metadata"))?;
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

    #[test]
    fn keys_of_a_user_share_one_non_empty_hash_tag() {
        for sub in ["alice", "", "{", "}", "a}b{c", "%7B", "}{", "ä:{x}:y"] {
            let keys = UserKeys::new("tja:", sub);
            let tag = hash_tag(&keys.sessions);
            assert!(!tag.is_empty(), "{sub:?}");
            assert_eq!(tag, hash_tag(&keys.metadata), "{sub:?}");
            assert_ne!(keys.sessions, keys.metadata);
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
            assert!(seen.insert(keys.sessions), "{sub:?}");
            assert!(seen.insert(keys.metadata), "{sub:?}");
        }
    }

    #[test]
    fn keys_are_readable() {
        let keys = UserKeys::new("tja:", "alice");
        assert_eq!(keys.sessions, "tja:{alice}:s");
        assert_eq!(keys.metadata, "tja:{alice}:m");
        assert_eq!(UserKeys::new("p:", "{a%}").sessions, "p:{%7Ba%25%7D}:s");
    }

    fn round_trip(session: &Session) -> Session {
        let entry = encode_entry(session);
        let id = session.id.as_bytes();
        decode_session(&session.sub, id, session.expires_at as f64, Some(&entry)).unwrap()
    }

    #[test]
    fn metadata_round_trips() {
        let mut session = Session::new(SessionId::from_bytes([9; 16]), "bob", 100, 200);
        assert_eq!(round_trip(&session), session);
        session.last_used_at = 150;
        session.user_agent = Some(String::new());
        session.address = Some("2001:db8::1".parse().unwrap());
        assert_eq!(round_trip(&session), session);
        session.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64) é".into());
        session.address = Some("203.0.113.7".parse().unwrap());
        assert_eq!(round_trip(&session), session);
    }

    #[test]
    fn malformed_metadata_is_an_error() {
        let session = Session::new(SessionId::from_bytes([9; 16]), "bob", 100, 200);
        let entry = encode_entry(&session);
        let decode = |id: &[u8], expiry: f64, entry: Option<&[u8]>| {
            decode_session("bob", id, expiry, entry).unwrap_err()
        };
        decode(&[1; 15], 200.0, Some(&entry));
        decode(&[1; 16], f64::NAN, Some(&entry));
        decode(&[1; 16], 200.0, None);
        decode(&[1; 16], 200.0, Some(&entry[..10]));
        decode(&[1; 16], 200.0, Some(&[2]));
        let mut trailing = entry.clone();
        trailing.push(b'x');
        decode(&[1; 16], 200.0, Some(&trailing));
        let mut bad_address = entry;
        bad_address[17] = 5;
        decode(&[1; 16], 200.0, Some(&bad_address));
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
