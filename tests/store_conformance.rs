//! The `SessionStore` contract, run through the exported suite
//! (`tower_jwt_auth::store_conformance!`) against every built-in store: the memory store,
//! `AnyStore` over it, and with the `redis` feature the Redis store.

#![cfg(feature = "testing")]

use tower_jwt_auth::store::{AnyStore, MemoryStore};

tower_jwt_auth::store_conformance!(memory, async { MemoryStore::new() });

tower_jwt_auth::store_conformance!(any_memory, async { AnyStore::from(MemoryStore::new()) });

// Against `REDIS_URL` (default: the local Redis); each test works under users of its own.
#[cfg(feature = "redis")]
tower_jwt_auth::store_conformance!(redis, async {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    tower_jwt_auth::store::RedisStore::connect(&url)
        .await
        .expect("these tests need Redis: set REDIS_URL")
});
