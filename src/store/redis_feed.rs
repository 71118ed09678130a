//! The event feed of a [`NearCache`] over Redis: a subscription to the store's ending
//! events, with heartbeats that travel the same way.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::StoreError;
use super::feed::{self, Event};
use super::near_cache::{Invalidations, NearCache, NearCacheConfig};
use super::redis::{Ended, RedisStore};

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
        let beat = feed::heartbeat_every(&config);
        tokio::spawn(run(client, publisher, invalidations, beat));
        cache
    }
}

/// Subscribes, relays events and heartbeats until the subscription fails, then subscribes
/// again, until the cache is gone.
async fn run(
    client: redis::Client,
    store: RedisStore<ConnectionManager>,
    invalidations: Invalidations,
    beat: Duration,
) {
    let nonce = feed::heartbeat_nonce();
    let (client, store, invalidations, nonce) = (&client, &store, &invalidations, &nonce);
    feed::keep_listening(
        invalidations,
        beat,
        move || async move {
            let mut pubsub = client.get_async_pubsub().await.ok()?;
            pubsub.subscribe(store.events_channel()).await.ok()?;
            Some(pubsub)
        },
        move |pubsub| relay(pubsub, store, invalidations, beat, nonce),
    )
    .await;
}

/// Relays one subscription's messages until it ends or the cache is gone.
async fn relay(
    pubsub: redis::aio::PubSub,
    store: &RedisStore<ConnectionManager>,
    invalidations: &Invalidations,
    beat: Duration,
    nonce: &str,
) {
    feed::relay(
        invalidations,
        beat,
        nonce,
        pubsub.into_on_message(),
        |message| {
            Ended::parse(message.get_payload_bytes()).map(|ended| match ended {
                Ended::Heartbeat(tag) => Event::Heartbeat(tag),
                Ended::Session { id, .. } => Event::Session(id),
                Ended::User(sub) => Event::User(sub),
            })
        },
        |tag| async move {
            let _: Result<(), StoreError> = store.publish_heartbeat(tag.as_bytes()).await;
        },
    )
    .await;
}
