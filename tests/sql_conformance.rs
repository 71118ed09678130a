//! The `SessionStore` contract, run through the exported suite
//! (`tower_jwt_auth::store_conformance!`) against the SQL stores: PostgreSQL at
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), in a schema kept for
//! these tests (also behind its near-cache), and SQLite on a file per test. Every item works
//! under random users and session ids of its own, so the PostgreSQL items share one schema in
//! parallel.

#![cfg(all(feature = "testing", any(feature = "postgres", feature = "sqlite")))]

mod sql_support;

#[cfg(feature = "postgres")]
tower_jwt_auth::store_conformance!(postgres, async {
    crate::sql_support::shared_pg_store().await
});

#[cfg(feature = "postgres")]
tower_jwt_auth::store_conformance!(any_postgres, async {
    tower_jwt_auth::store::AnyStore::from(crate::sql_support::shared_pg_store().await)
});

#[cfg(feature = "postgres")]
tower_jwt_auth::store_conformance!(near_postgres, async {
    crate::sql_support::shared_pg_store()
        .await
        .near_cache(tower_jwt_auth::store::NearCacheConfig::default())
});

#[cfg(feature = "sqlite")]
tower_jwt_auth::store_conformance!(sqlite, async {
    crate::sql_support::sqlite_file_store().await
});
