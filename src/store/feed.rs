//! What every event feed of a [`NearCache`](super::NearCache) does alike, whatever carries
//! its events (Redis pub/sub, PostgreSQL `LISTEN`): listening again after a loss with
//! backoff, telling the cache when it is connected and when not, heartbeats tagged with the
//! feed's own nonce (on a schedule, and whenever an ending asks for one), and handing each
//! event to the cache.

use std::future::Future;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::time::Instant;

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
        Some(Event::Heartbeat(tag)) => {
            if let Some(asked) = own_heartbeat(tag, nonce) {
                invalidations.heartbeat();
                invalidations.echoed(asked);
            }
        }
        Some(Event::Session(sid)) => invalidations.session_ended(&sid),
        Some(Event::User(sub)) => invalidations.user_ended(sub),
        // Not ours to understand: distrust rather than guess.
        None => {
            invalidations.lost();
            invalidations.connected();
        }
    }
}

/// A heartbeat's tag: the feed's nonce, then how many heartbeats endings had asked for
/// when it was sent.
fn heartbeat_tag(nonce: &str, asked: u64) -> String {
    format!("{nonce}.{asked}")
}

/// The count a heartbeat tag carries, if the heartbeat is this feed's own.
fn own_heartbeat(tag: &[u8], nonce: &str) -> Option<u64> {
    let asked = tag.strip_prefix(nonce.as_bytes())?.strip_prefix(b".")?;
    std::str::from_utf8(asked).ok()?.parse().ok()
}

/// Relays one channel's `messages` (read by `read`) to the cache until the channel ends or
/// the cache is gone. It sends a heartbeat with `publish` every `beat`, and at once when an
/// ending asks for one.
pub(crate) async fn relay<M, Publishing>(
    invalidations: &Invalidations,
    beat: Duration,
    nonce: &str,
    messages: impl Stream<Item = M>,
    read: impl Fn(&M) -> Option<Event<'_>>,
    mut publish: impl FnMut(String) -> Publishing,
) where
    Publishing: Future<Output = ()>,
{
    invalidations.answer_echoes();
    let mut messages = std::pin::pin!(messages);
    let mut next_beat = Instant::now();
    let mut sent = 0;
    while invalidations.is_alive() {
        let asked = invalidations.echoes_asked();
        let due = Instant::now() >= next_beat;
        if due || asked > sent {
            if due {
                next_beat += beat;
            }
            sent = asked;
            // A failed publish is a missed heartbeat: the silence distrusts the cache.
            let _ = tokio::time::timeout(beat, publish(heartbeat_tag(nonce, asked))).await;
        }
        tokio::select! {
            () = tokio::time::sleep_until(next_beat) => {}
            () = invalidations.echo_wanted() => {}
            message = messages.next() => match message {
                Some(message) => deliver(invalidations, read(&message), nonce),
                None => return,
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_own_heartbeats_count_and_carry_what_was_asked() {
        let tag = heartbeat_tag("0a1b", 42);
        assert_eq!(own_heartbeat(tag.as_bytes(), "0a1b"), Some(42));
        assert_eq!(own_heartbeat(tag.as_bytes(), "ffff"), None);
        assert_eq!(own_heartbeat(b"0a1b", "0a1b"), None);
        assert_eq!(own_heartbeat(b"0a1b.x", "0a1b"), None);
        assert_eq!(own_heartbeat(b"0a1b.18446744073709551616", "0a1b"), None);
    }
}
