//! The event feed of a [`NearCache`] over PostgreSQL: `LISTEN` on the store's ending
//! channel, with heartbeats that travel the same way.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};

use super::feed::{self, Event};
use super::near_cache::{Invalidations, NearCache, NearCacheConfig};
use super::postgres::{ENDED_CHANNEL, PostgresStore};
use crate::SessionId;

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
        let beat = feed::heartbeat_every(&config);
        tokio::spawn(run(publisher, invalidations, beat));
        cache
    }
}

/// What one notification on the channel says; `None` for anything else, `*` included
/// (every cached answer is dropped then).
fn parse(payload: &str) -> Option<Event<'_>> {
    if let Some(nonce) = payload.strip_prefix('H') {
        Some(Event::Heartbeat(nonce.as_bytes()))
    } else if let Some(sid) = payload.strip_prefix('S') {
        SessionId::from_str(sid).ok().map(Event::Session)
    } else {
        payload.strip_prefix('U').map(Event::User)
    }
}

/// Listens, relays events and heartbeats until the connection fails, then listens again,
/// until the cache is gone.
async fn run(store: PostgresStore, invalidations: Invalidations, beat: Duration) {
    let nonce = feed::heartbeat_nonce();
    let (store, invalidations, nonce) = (&store, &invalidations, &nonce);
    feed::keep_listening(
        invalidations,
        beat,
        move || async move {
            // A pool of one connection of its own, opened like the store's: listening
            // never takes a connection from the requests.
            let options = store.pool().connect_options().as_ref().clone();
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options);
            let mut listener = PgListener::connect_with(&pool).await.ok()?;
            // A lost connection ends this listener: the next one is opened here, after
            // the cache is told.
            listener.eager_reconnect(false);
            listener.listen(ENDED_CHANNEL).await.ok()?;
            Some(listener)
        },
        move |listener| relay(listener, store, invalidations, beat, nonce),
    )
    .await;
}

/// Relays one listener's notifications until it fails or the cache is gone.
async fn relay(
    listener: PgListener,
    store: &PostgresStore,
    invalidations: &Invalidations,
    beat: Duration,
    nonce: &str,
) {
    // The stream ends when the connection is lost (`None`): events may have been missed.
    let notifications = futures_util::stream::unfold(listener, |mut listener| async move {
        let notification = listener.try_recv().await.ok().flatten()?;
        Some((notification, listener))
    });
    feed::relay(
        invalidations,
        beat,
        nonce,
        notifications,
        |notification| parse(notification.payload()),
        |tag| async move {
            let send = sqlx::query("SELECT pg_notify($1, $2)::text")
                .bind(ENDED_CHANNEL)
                .bind(format!("H{tag}"))
                .execute(store.pool());
            let _ = send.await;
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_read() {
        let sid = SessionId::from_bytes([7; 16]);
        assert_eq!(parse(&format!("S{sid}")), Some(Event::Session(sid)));
        assert_eq!(parse("Ualice"), Some(Event::User("alice")));
        assert_eq!(parse("Habc"), Some(Event::Heartbeat(b"abc")));
        assert_eq!(parse("*"), None);
        assert_eq!(parse("Snot-an-id"), None);
        assert_eq!(parse(""), None);
    }
}
