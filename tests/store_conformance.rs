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

#[cfg(feature = "redis")]
mod support;

/// `REDIS_URL`, or a `redis-server` of these tests' own, kept for the whole run (each test
/// works under users of its own).
#[cfg(feature = "redis")]
fn redis_url() -> String {
    static REDIS: std::sync::OnceLock<support::TestRedis> = std::sync::OnceLock::new();
    REDIS.get_or_init(support::TestRedis::get).url().to_owned()
}

#[cfg(feature = "redis")]
tower_jwt_auth::store_conformance!(redis, async {
    tower_jwt_auth::store::RedisStore::connect(&redis_url())
        .await
        .expect("Redis at REDIS_URL or the tests' own answers")
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
    let url = redis_url();
    let store = RedisStore::connect(&url)
        .await
        .expect("Redis at REDIS_URL or the tests' own answers");
    let feed = Client::open(url.as_str()).expect("a Redis URL");
    let store = store.near_cache(feed, NearCacheConfig::default());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !store.is_trusted() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    store
});
