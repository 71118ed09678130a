//! What every event feed of a [`NearCache`](super::NearCache) does alike, whatever carries
//! its events (Redis pub/sub, PostgreSQL `LISTEN`): listening again after a loss with
//! backoff, telling the cache when it is connected and when not, heartbeats tagged with the
//! feed's own nonce, and handing each event to the cache.

use std::future::Future;
use std::time::Duration;

use super::near_cache::{Invalidations, NearCacheConfig};
use crate::SessionId;

/// The shortest pause between two attempts to listen again.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// The longest.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// One event, as a feed read it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// A heartbeat and its tag.
    Heartbeat(&'a [u8]),
    /// That session ended.
    Session(SessionId),
    /// Some or all sessions of that user ended.
    User(&'a str),
}

/// How often a feed sends a heartbeat: four per `max_silence`, so that one lost heartbeat
/// does not distrust the cache.
pub(crate) fn heartbeat_every(config: &NearCacheConfig) -> Duration {
    (config.max_silence / 4).max(Duration::from_millis(5))
}

/// A random tag for a feed's heartbeats (hexadecimal), so that only its own prove it
/// listens. Without randomness, a fixed tag still works: heartbeats of other feeds would
/// then count as its own, and they travel the same channel.
pub(crate) fn heartbeat_nonce() -> String {
    let mut bytes = [0; 8];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Hands one event (`None`: a message the feed does not understand) to the cache.
pub(crate) fn deliver(invalidations: &Invalidations, event: Option<Event<'_>>, nonce: &str) {
    match event {
        Some(Event::Heartbeat(sent)) if sent == nonce.as_bytes() => invalidations.heartbeat(),
        Some(Event::Heartbeat(_)) => {}
        Some(Event::Session(sid)) => invalidations.session_ended(&sid),
        Some(Event::User(sub)) => invalidations.user_ended(sub),
        // Not ours to understand: distrust rather than guess.
        None => {
            invalidations.lost();
            invalidations.connected();
        }
    }
}

/// Listens with `listen` (within four heartbeats) and relays with `relay` until the
/// channel fails, then listens again after a backoff, until the cache is gone. The cache
/// is told it is connected after each `listen`, and lost after each `relay`.
pub(crate) async fn keep_listening<L, Listening, Relaying>(
    invalidations: &Invalidations,
    beat: Duration,
    mut listen: impl FnMut() -> Listening,
    mut relay: impl FnMut(L) -> Relaying,
) where
    Listening: Future<Output = Option<L>>,
    Relaying: Future<Output = ()>,
{
    let mut backoff = FIRST_BACKOFF;
    while invalidations.is_alive() {
        if let Ok(Some(listening)) = tokio::time::timeout(beat * 4, listen()).await {
            invalidations.connected();
            backoff = FIRST_BACKOFF;
            relay(listening).await;
            invalidations.lost();
            tracing::warn!("the session endings channel was lost: near-cache bypassed");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
