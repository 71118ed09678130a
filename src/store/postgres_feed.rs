//! The event feed of a [`NearCache`] over PostgreSQL: `LISTEN` on the store's ending
//! channel, with heartbeats that travel the same way.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};

use super::near_cache::{Invalidations, NearCache, NearCacheConfig};
use super::postgres::{ENDED_CHANNEL, PostgresStore};
use crate::SessionId;

/// The shortest pause between two attempts to listen again.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// The longest.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl PostgresStore {
    /// This store behind a [`NearCache`], fed by its ending events: `LISTEN` on
    /// [`ENDED_CHANNEL`] on a connection of its own, outside the pool (opened with the
    /// pool's options), and a
    /// heartbeat sent on that channel every quarter of
    /// [`max_silence`](NearCacheConfig::max_silence).
    ///
    /// The feed runs as a task on the current Tokio runtime until the cache is dropped. It
    /// listens again by itself after a loss; meanwhile every request goes to the database.
    ///
    /// ```no_run
    /// use tower_jwt_auth::store::{NearCacheConfig, PostgresStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = PostgresStore::connect("postgres://app@127.0.0.1/app").await?;
    /// let store = store.near_cache(NearCacheConfig::default());
    /// # let _ = store;
    /// # Ok(()) }
    /// ```
    pub fn near_cache(self, config: NearCacheConfig) -> NearCache<Self> {
        let publisher = self.clone();
        let (cache, invalidations) = NearCache::new(self, config);
        let beat = (config.max_silence / 4).max(Duration::from_millis(5));
        tokio::spawn(feed(publisher, invalidations, beat));
        cache
    }
}

/// What one notification on the channel says.
#[derive(Debug, PartialEq, Eq)]
enum Event<'a> {
    Heartbeat(&'a str),
    Session(SessionId),
    User(&'a str),
    /// Anything else, `*` included: every cached answer is dropped.
    Unknown,
}

fn parse(payload: &str) -> Event<'_> {
    if let Some(nonce) = payload.strip_prefix('H') {
        Event::Heartbeat(nonce)
    } else if let Some(sid) = payload.strip_prefix('S') {
        SessionId::from_str(sid).map_or(Event::Unknown, Event::Session)
    } else if let Some(sub) = payload.strip_prefix('U') {
        Event::User(sub)
    } else {
        Event::Unknown
    }
}

/// Listens, relays events and heartbeats until the connection fails, then listens again,
/// until the cache is gone.
async fn feed(store: PostgresStore, invalidations: Invalidations, beat: Duration) {
    let nonce = heartbeat_nonce();
    let mut backoff = FIRST_BACKOFF;
    while invalidations.is_alive() {
        let listening = tokio::time::timeout(beat * 4, async {
            // A pool of one connection of its own, opened like the store's: listening
            // never takes a connection from the requests.
            let options = store.pool().connect_options().as_ref().clone();
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options);
            let mut listener = PgListener::connect_with(&pool).await?;
            // A lost connection ends this listener: the next one is opened here, after
            // the cache is told.
            listener.eager_reconnect(false);
            listener.listen(ENDED_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        })
        .await;
        if let Ok(Ok(listener)) = listening {
            invalidations.connected();
            backoff = FIRST_BACKOFF;
            relay(listener, &store, &invalidations, beat, &nonce).await;
            invalidations.lost();
            tracing::warn!("listening to session endings failed: near-cache bypassed");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Relays one listener's notifications until it fails or the cache is gone.
async fn relay(
    mut listener: PgListener,
    store: &PostgresStore,
    invalidations: &Invalidations,
    beat: Duration,
    nonce: &str,
) {
    let heartbeat = format!("H{nonce}");
    let mut next_beat = tokio::time::Instant::now();
    while invalidations.is_alive() {
        if tokio::time::Instant::now() >= next_beat {
            next_beat += beat;
            // A failed send is a missed heartbeat: the silence distrusts the cache.
            let send = sqlx::query("SELECT pg_notify($1, $2)::text")
                .bind(ENDED_CHANNEL)
                .bind(&heartbeat)
                .execute(store.pool());
            let _ = tokio::time::timeout(beat, send).await;
        }
        let notification = match tokio::time::timeout_at(next_beat, listener.try_recv()).await {
            Err(_elapsed) => continue,
            // The connection is lost (`None`): events may have been missed.
            Ok(Err(_) | Ok(None)) => return,
            Ok(Ok(Some(notification))) => notification,
        };
        match parse(notification.payload()) {
            Event::Heartbeat(sent) if sent == nonce => invalidations.heartbeat(),
            Event::Heartbeat(_) => {}
            Event::Session(sid) => invalidations.session_ended(&sid),
            Event::User(sub) => invalidations.user_ended(sub),
            // Not ours to understand: distrust rather than guess.
            Event::Unknown => {
                invalidations.lost();
                invalidations.connected();
            }
        }
    }
}

/// A random tag for this feed's heartbeats, so that only its own prove it listens.
fn heartbeat_nonce() -> String {
    let mut bytes = [0; 8];
    // Without randomness, a fixed tag still works: heartbeats of other feeds would then
    // count as ours, and they travel the same channel.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_read() {
        let sid = SessionId::from_bytes([7; 16]);
        assert_eq!(parse(&format!("S{sid}")), Event::Session(sid));
        assert_eq!(parse("Ualice"), Event::User("alice"));
        assert_eq!(parse("Habc"), Event::Heartbeat("abc"));
        assert_eq!(parse("*"), Event::Unknown);
        assert_eq!(parse("Snot-an-id"), Event::Unknown);
        assert_eq!(parse(""), Event::Unknown);
    }
}
