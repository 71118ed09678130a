//! [`AnyStore`]: one type to name whichever built-in store the configuration chose.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use pin_project_lite::pin_project;

use super::{
    Created, Liveness, MemoryStore, Rotated, Rotation, Session, SessionLimit, SessionStore,
    StoreError,
};
use crate::SessionId;

/// Any of the built-in stores, chosen at start-up, so that an application names one type
/// (`Sessions<AnyStore>`) in its state and handlers whatever the configuration says.
///
/// The memory store's check stays inline; the network stores' checks are boxed futures
/// already, so a request pays one `match` for the choice.
///
/// ```
/// use tower_jwt_auth::store::{AnyStore, MemoryStore};
/// use tower_jwt_auth::{Keys, Sessions};
///
/// /// The one type handlers name.
/// type AppSessions = Sessions<AnyStore>;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store: AnyStore = match std::env::var("REDIS_URL") {
///     # #[cfg(feature = "redis")]
///     Ok(url) => tower_jwt_auth::store::RedisStore::connect(&url).await?.into(),
///     _ => MemoryStore::new().into(),
/// };
/// let sessions: AppSessions = Sessions::builder(Keys::hs256([7; 32])?, store).build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyStore {
    /// [`MemoryStore`].
    Memory(MemoryStore),
    /// [`RedisStore`](super::RedisStore).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    Redis(super::RedisStore),
    /// [`RedisStore`](super::RedisStore) behind a [`NearCache`](super::NearCache).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    NearRedis(super::NearCache<super::RedisStore>),
    /// [`PostgresStore`](super::PostgresStore).
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    Postgres(super::PostgresStore),
    /// [`PostgresStore`](super::PostgresStore) behind a [`NearCache`](super::NearCache).
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    NearPostgres(super::NearCache<super::PostgresStore>),
    /// [`SqliteStore`](super::SqliteStore).
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    Sqlite(super::SqliteStore),
}

impl From<MemoryStore> for AnyStore {
    fn from(store: MemoryStore) -> Self {
        Self::Memory(store)
    }
}

#[cfg(feature = "redis")]
impl From<super::RedisStore> for AnyStore {
    fn from(store: super::RedisStore) -> Self {
        Self::Redis(store)
    }
}

#[cfg(feature = "redis")]
impl From<super::NearCache<super::RedisStore>> for AnyStore {
    fn from(store: super::NearCache<super::RedisStore>) -> Self {
        Self::NearRedis(store)
    }
}

#[cfg(feature = "postgres")]
impl From<super::PostgresStore> for AnyStore {
    fn from(store: super::PostgresStore) -> Self {
        Self::Postgres(store)
    }
}

#[cfg(feature = "postgres")]
impl From<super::NearCache<super::PostgresStore>> for AnyStore {
    fn from(store: super::NearCache<super::PostgresStore>) -> Self {
        Self::NearPostgres(store)
    }
}

#[cfg(feature = "sqlite")]
impl From<super::SqliteStore> for AnyStore {
    fn from(store: super::SqliteStore) -> Self {
        Self::Sqlite(store)
    }
}

type Boxed = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>>;

pin_project! {
    /// The future of [`AnyStore`]'s check.
    pub struct AnyIsActive {
        #[pin]
        inner: Inner,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner {
        // The memory store's, inline.
        Memory { #[pin] fut: <MemoryStore as SessionStore>::IsActive },
        // A network store's, boxed by that store.
        Boxed { #[pin] fut: Boxed },
        // A near-cache's: inline on a hit.
        Near { #[pin] fut: super::near_cache::NearCacheIsActive },
    }
}

impl Future for AnyIsActive {
    type Output = Result<bool, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            InnerProj::Memory { fut } => fut.poll(cx),
            InnerProj::Boxed { fut } => fut.poll(cx),
            InnerProj::Near { fut } => fut.poll(cx),
        }
    }
}

/// Runs `$call` on whichever store `$store` holds.
macro_rules! each {
    ($store:expr, $inner:ident => $call:expr) => {
        match $store {
            AnyStore::Memory($inner) => $call,
            #[cfg(feature = "redis")]
            AnyStore::Redis($inner) => $call,
            #[cfg(feature = "redis")]
            AnyStore::NearRedis($inner) => $call,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($inner) => $call,
            #[cfg(feature = "postgres")]
            AnyStore::NearPostgres($inner) => $call,
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite($inner) => $call,
        }
    };
}

impl SessionStore for AnyStore {
    type IsActive = AnyIsActive;

    async fn create(
        &self,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> Result<Created, StoreError> {
        each!(self, store => store.create(session, limit).await)
    }

    fn is_active(&self, sub: &str, sid: &SessionId, now: u64, touch_interval: u64) -> AnyIsActive {
        match self {
            Self::Memory(store) => AnyIsActive {
                inner: Inner::Memory {
                    fut: store.is_active(sub, sid, now, touch_interval),
                },
            },
            #[cfg(feature = "redis")]
            Self::Redis(store) => AnyIsActive {
                inner: Inner::Boxed {
                    fut: store.is_active(sub, sid, now, touch_interval),
                },
            },
            #[cfg(feature = "redis")]
            Self::NearRedis(store) => AnyIsActive {
                inner: Inner::Near {
                    fut: store.is_active(sub, sid, now, touch_interval),
                },
            },
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => AnyIsActive {
                inner: Inner::Boxed {
                    fut: store.is_active(sub, sid, now, touch_interval),
                },
            },
            #[cfg(feature = "postgres")]
            Self::NearPostgres(store) => AnyIsActive {
                inner: Inner::Near {
                    fut: store.is_active(sub, sid, now, touch_interval),
                },
            },
            #[cfg(feature = "sqlite")]
            Self::Sqlite(store) => AnyIsActive {
                inner: Inner::Boxed {
                    fut: store.is_active(sub, sid, now, touch_interval),
                },
            },
        }
    }

    async fn liveness(
        &self,
        sub: &str,
        sid: &SessionId,
        now: u64,
        touch_interval: u64,
    ) -> Result<Option<Liveness>, StoreError> {
        each!(self, store => store.liveness(sub, sid, now, touch_interval).await)
    }

    async fn rotate(
        &self,
        sub: &str,
        sid: &SessionId,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        each!(self, store => store.rotate(sub, sid, rotation).await)
    }

    async fn revoke(&self, sub: &str, sid: &SessionId) -> Result<bool, StoreError> {
        each!(self, store => store.revoke(sub, sid).await)
    }

    async fn revoke_all(&self, sub: &str) -> Result<u64, StoreError> {
        each!(self, store => store.revoke_all(sub).await)
    }

    async fn revoke_authenticated_before(
        &self,
        sub: &str,
        before: SystemTime,
        keep_until: SystemTime,
    ) -> Result<u64, StoreError> {
        each!(self, store => store.revoke_authenticated_before(sub, before, keep_until).await)
    }

    async fn list(&self, sub: &str, now: u64, max: usize) -> Result<Vec<Session>, StoreError> {
        each!(self, store => store.list(sub, now, max).await)
    }
}
