//! Long-lived connections that end with their session: [`Sessions::ended`].
//!
//! A WebSocket or a server-sent event stream outlives the request that opened it, so the
//! layer's check at its start is not enough: a logout must end it too. `ended(&claims)` is
//! a future that resolves when the session of `claims` ends (revoked, expired, or the store
//! can no longer vouch for it). It wakes at once when a session is ended through this
//! process's [`Sessions`] (any logout, logout-all, revocation by time, the session limit,
//! refresh-token reuse), and checks the store at least every
//! [`live_check_interval`](crate::SessionsBuilder::live_check_interval) (one second by
//! default) for sessions ended by other instances.
//!
//! ```
//! use tower_jwt_auth::{Keys, Login, Sessions, live::SessionEnd, store::MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = Sessions::builder(Keys::hs256([7; 32])?, MemoryStore::new()).build()?;
//! let issued = sessions.issue(Login::new("alice")).await?;
//! let claims = sessions.authenticate_token(&issued.access_token).await?;
//!
//! let watcher = sessions.clone();
//! let stream = tokio::spawn(async move {
//!     // Send events until the session ends, then close the connection.
//!     watcher.ended(&claims).await
//! });
//! sessions.revoke_all("alice").await?;
//! assert!(matches!(stream.await?, SessionEnd::Ended));
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use tokio::sync::watch;

use crate::store::{SessionStore, StoreError};
use crate::{Claims, Sessions};

/// Why [`Sessions::ended`] resolved.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionEnd {
    /// The session is no longer live: revoked, expired, or never created here.
    Ended,
    /// The store could not answer: it cannot vouch for the session, so the connection
    /// should close as if it had ended (fail closed).
    StoreUnavailable(StoreError),
}

/// Wakes the watchers of this process when a session may have ended.
#[derive(Debug)]
pub(crate) struct Endings {
    sender: watch::Sender<u64>,
}

impl Endings {
    pub(crate) fn new() -> Self {
        Self {
            sender: watch::Sender::new(0),
        }
    }

    /// Some session may have ended: every watcher checks its own.
    pub(crate) fn notify(&self) {
        self.sender
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.sender.subscribe()
    }
}

impl<St: SessionStore, C> Sessions<St, C> {
    /// Resolves when the session of `claims` ends; see the [module docs](crate::live).
    pub async fn ended(&self, claims: &Claims<C>) -> SessionEnd {
        let mut endings = self.endings().subscribe();
        let mut ticks = tokio::time::interval(self.live_check_interval());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            match self.is_active(claims, self.now()).await {
                Ok(true) => {}
                Ok(false) => return SessionEnd::Ended,
                Err(error) => return SessionEnd::StoreUnavailable(error),
            }
            // Whichever comes first: a local ending, or the next periodic check.
            let mut changed = pin!(endings.changed());
            let mut tick = pin!(ticks.tick());
            std::future::poll_fn(|cx| {
                if changed.as_mut().poll(cx).is_ready() || tick.as_mut().poll(cx).is_ready() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::MemoryStore;
    use crate::{Keys, Login};

    fn sessions() -> Sessions<MemoryStore> {
        Sessions::builder(Keys::hs256([7; 32]).unwrap(), MemoryStore::new())
            .live_check_interval(Duration::from_secs(3600))
            .build()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_local_logout_ends_the_watch_at_once() {
        let sessions = sessions();
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        let claims = sessions
            .authenticate_token(&issued.access_token)
            .await
            .unwrap();
        let watcher = sessions.clone();
        let watch = tokio::spawn(async move { watcher.ended(&claims).await });
        tokio::task::yield_now().await;
        assert!(!watch.is_finished());
        sessions.revoke("alice", &issued.session_id).await.unwrap();
        // No periodic check is due for an hour: the local notification did it.
        let ended = tokio::time::timeout(Duration::from_secs(1), watch).await;
        assert!(matches!(ended, Ok(Ok(SessionEnd::Ended))));
    }

    #[tokio::test(start_paused = true)]
    async fn an_ending_elsewhere_is_seen_by_the_periodic_check() {
        let sessions = Sessions::builder(Keys::hs256([7; 32]).unwrap(), MemoryStore::new())
            .live_check_interval(Duration::from_secs(1))
            .build()
            .unwrap();
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        let claims = sessions
            .authenticate_token(&issued.access_token)
            .await
            .unwrap();
        let watcher = sessions.clone();
        let watch = tokio::spawn(async move { watcher.ended(&claims).await });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!watch.is_finished(), "the session is still live");
        // Another instance ends it: straight in the store, no local notification.
        sessions.store().revoke_all("alice").await.unwrap();
        let ended = tokio::time::timeout(Duration::from_millis(1100), watch).await;
        assert!(matches!(ended, Ok(Ok(SessionEnd::Ended))));
    }
}
