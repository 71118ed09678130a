//! The `SessionStore` contract, run through the exported suite
//! (`tower_jwt_auth::store_conformance!`) against every built-in store: the memory store,
//! `AnyStore` over it, and with the `redis` feature the Redis store.

#![cfg(feature = "testing")]

use tower_jwt_auth::store::{AnyStore, MemoryStore};

tower_jwt_auth::store_conformance!(memory, async { MemoryStore::new() });

tower_jwt_auth::store_conformance!(any_memory, async { AnyStore::from(MemoryStore::new()) });

/// One store for every test at once, as a shared backend is: each item keeps to users and
/// session ids of its own.
static SHARED: std::sync::LazyLock<MemoryStore> = std::sync::LazyLock::new(MemoryStore::new);

tower_jwt_auth::store_conformance!(shared_memory, async { SHARED.clone() });

// Against `REDIS_URL` (default: the local Redis); each test works under users of its own.
#[cfg(feature = "redis")]
tower_jwt_auth::store_conformance!(redis, async {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    tower_jwt_auth::store::RedisStore::connect(&url)
        .await
        .expect("these tests need Redis: set REDIS_URL")
});

// A near-cache passes the contract too: over the memory store with a feed that stays
// trusted (every ending goes through the cache itself here), and over Redis with its feed.
tower_jwt_auth::store_conformance!(near_cache_memory, async {
    use tower_jwt_auth::store::{NearCache, NearCacheConfig};
    let config = NearCacheConfig::default().max_silence(std::time::Duration::from_secs(3600));
    let (store, feed) = NearCache::new(MemoryStore::new(), config);
    feed.connected();
    feed.heartbeat();
    store
});

#[cfg(feature = "redis")]
tower_jwt_auth::store_conformance!(near_cache_redis, async {
    use tower_jwt_auth::store::redis::redis::Client;
    use tower_jwt_auth::store::{NearCacheConfig, RedisStore};
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let store = RedisStore::connect(&url)
        .await
        .expect("these tests need Redis: set REDIS_URL");
    let feed = Client::open(url.as_str()).expect("a Redis URL");
    let store = store.near_cache(feed, NearCacheConfig::default());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !store.is_trusted() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    store
});
