//! The event feed of a [`NearCache`] over Redis: a subscription to the store's ending
//! events, with heartbeats that travel the same way.

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;

use super::StoreError;
use super::near_cache::{Invalidations, NearCache, NearCacheConfig};
use super::redis::{Ended, RedisStore};

/// The shortest pause between two attempts to subscribe again.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// The longest.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl RedisStore<ConnectionManager> {
    /// This store behind a [`NearCache`], fed by its ending events: one subscription to
    /// the events channel on a connection of its own from `client` (the same Redis), and a
    /// heartbeat published on that channel every quarter of
    /// [`max_silence`](NearCacheConfig::max_silence).
    ///
    /// The feed runs as a task on the current Tokio runtime until the cache is dropped. It
    /// resubscribes by itself after a loss; meanwhile every request goes to Redis.
    ///
    /// ```no_run
    /// use tower_jwt_auth::store::{NearCacheConfig, RedisStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let url = "redis://127.0.0.1:6379";
    /// let store = RedisStore::connect(url).await?;
    /// let store = store.near_cache(redis::Client::open(url)?, NearCacheConfig::default());
    /// # let _ = store;
    /// # Ok(()) }
    /// ```
    pub fn near_cache(self, client: redis::Client, config: NearCacheConfig) -> NearCache<Self> {
        let publisher = self.clone();
        let (cache, invalidations) = NearCache::new(self, config);
        let beat = (config.max_silence / 4).max(Duration::from_millis(5));
        tokio::spawn(feed(client, publisher, invalidations, beat));
        cache
    }
}

/// Subscribes, relays events and heartbeats until the subscription fails, then subscribes
/// again, until the cache is gone.
async fn feed(
    client: redis::Client,
    store: RedisStore<ConnectionManager>,
    invalidations: Invalidations,
    beat: Duration,
) {
    let nonce = heartbeat_nonce();
    let mut backoff = FIRST_BACKOFF;
    while invalidations.is_alive() {
        let subscribed = tokio::time::timeout(beat * 4, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(store.events_channel()).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        if let Ok(Ok(pubsub)) = subscribed {
            invalidations.connected();
            backoff = FIRST_BACKOFF;
            relay(pubsub, &store, &invalidations, beat, &nonce).await;
            invalidations.lost();
            tracing::warn!("the session events subscription was lost: near-cache bypassed");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Relays one subscription's messages until it ends or the cache is gone.
async fn relay(
    pubsub: redis::aio::PubSub,
    store: &RedisStore<ConnectionManager>,
    invalidations: &Invalidations,
    beat: Duration,
    nonce: &[u8],
) {
    let mut messages = pubsub.into_on_message();
    let mut next_beat = tokio::time::Instant::now();
    while invalidations.is_alive() {
        if tokio::time::Instant::now() >= next_beat {
            next_beat += beat;
            // A failed publish is a missed heartbeat: the silence distrusts the cache.
            let publish = store.publish_heartbeat(nonce);
            let _: Result<Result<(), StoreError>, _> = tokio::time::timeout(beat, publish).await;
        }
        let message = match tokio::time::timeout_at(next_beat, messages.next()).await {
            Err(_elapsed) => continue,
            Ok(None) => return,
            Ok(Some(message)) => message,
        };
        match Ended::parse(message.get_payload_bytes()) {
            Some(Ended::Heartbeat(sent)) if sent == nonce => invalidations.heartbeat(),
            Some(Ended::Heartbeat(_)) => {}
            Some(Ended::Session { id, .. }) => invalidations.session_ended(&id),
            Some(Ended::User(sub)) => invalidations.user_ended(sub),
            // Not ours to understand: distrust rather than guess.
            None => {
                invalidations.lost();
                invalidations.connected();
            }
        }
    }
}

/// A random tag for this feed's heartbeats, so that only its own prove its subscription.
fn heartbeat_nonce() -> Vec<u8> {
    let mut bytes = [0; 8];
    // Without randomness, a fixed tag still works: heartbeats of other feeds would then
    // count as ours, and they travel the same channel.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.to_vec()
}
