//! What the middleware costs on top of the signature check it cannot avoid.
//!
//! - `auth/no_auth`: the mock service alone.
//! - `auth/jsonwebtoken_decode_hs256`: the bare `jsonwebtoken::decode` of the same tokens,
//!   the floor.
//! - `auth/layer_hs256_memory`: a request through the layer with a token it has never seen
//!   (first sight), memory store of 10,000 sessions. The token cache is on but holds one
//!   entry, so each token is a miss that is verified and then stored (evicting another):
//!   what the first request of a token costs with the cache on.
//! - `auth/layer_hs256_memory_seen`: a request through the layer with a token it has already
//!   verified (the default token cache, warmed with the 1,000 tokens that are then cycled).
//! - `auth/layer_hs256_memory_no_cache`: first sight with the token cache turned off.
//! - `auth/layer_hs256_memory_1m`: first sight with 1,000,000 sessions.
//!
//! In the layer cases each iteration presents the token of another live session (1,000 of
//! them, spread over the store), so the allowlist lookups are not all CPU-cache hits. Requests
//! are built outside the timed part, and every case, the floor included, reads its token from
//! such a request; what a case produces (decoded claims, or the response carrying the
//! request and its claims) is dropped outside the timed part. The futures here complete on
//! their first poll (the memory store answers at once), so they are polled directly: no
//! runtime in the timing.
//!
//! With `--features redis`, also:
//!
//! - `auth/layer_hs256_redis`: a request through the layer, one instance on a loopback Redis
//!   holding 10,000 sessions (`REDIS_URL`, or a `redis-server` started for the run);
//! - `auth/layer_hs256_redis_64_concurrent`: 64 such requests at once (throughput);
//! - `auth/layer_hs256_redis_near_cache`: a request through the layer on the same Redis
//!   behind a near-cache, token and session seen before.
//!
//! `cargo bench --bench auth --all-features`

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::header;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tower::Service;
use tower_jwt_auth::clock::from_unix_seconds;
use tower_jwt_auth::store::{MemoryStore, Session, SessionStore};
use tower_jwt_auth::{Claims, Keys, Login, SessionId, Sessions};

mod traffic;
use traffic::{mock, requests};

const SECRET: &[u8] = b"a benchmark secret of 32 bytes!!";
const SAMPLED: usize = 1_000;

/// Polls a future that must be ready at once.
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benchmark expects futures that are ready at once"),
    }
}

/// A store of `total` sessions, and the tokens of `SAMPLED` of them spread evenly through it.
fn populated(total: usize) -> (Sessions<MemoryStore>, Vec<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(populate(MemoryStore::new(), total))
}

/// Fills `store` with `total` sessions: every `total / SAMPLED`-th issued with a token, the
/// others written to the store directly (signing a million tokens would only slow set-up).
async fn populate<St: SessionStore>(store: St, total: usize) -> (Sessions<St>, Vec<String>) {
    let sessions = Sessions::builder(Keys::hs256(SECRET).unwrap(), store)
        .build()
        .unwrap();
    let every = total / SAMPLED;
    let mut tokens = Vec::with_capacity(SAMPLED);
    let expires = jsonwebtoken::get_current_timestamp() + 3_600;
    for n in 0..total {
        if n % every == 0 {
            let issued = sessions
                .issue(Login::new(format!("user{n}")))
                .await
                .unwrap();
            tokens.push(issued.access_token);
        } else {
            let mut id = [0; 16];
            id[..8].copy_from_slice(&(n as u64).to_le_bytes());
            let session = Session::new(
                SessionId::from_bytes(id),
                format!("user{n}"),
                from_unix_seconds(0),
                from_unix_seconds(expires),
            );
            sessions.store().create(&session, None).await.unwrap();
        }
    }
    (sessions, tokens)
}

/// What the token cache of a layer case holds when a token comes.
#[derive(Clone, Copy)]
enum Cache {
    /// On, but every token is new to it.
    FirstSight,
    /// On, and every token verified before.
    Seen,
    /// Turned off.
    Off,
}

fn bench(c: &mut Criterion) {
    let (small, small_tokens) = populated(10_000);
    let mut group = c.benchmark_group("auth");

    let mut service = mock();
    group.bench_function("no_auth", |b| {
        b.iter_batched(
            requests(&small_tokens),
            |request| {
                now(std::future::poll_fn(|cx| service.poll_ready(cx))).unwrap();
                now(service.call(request)).unwrap()
            },
            BatchSize::SmallInput,
        )
    });

    let key = DecodingKey::from_secret(SECRET);
    let validation = Validation::new(Algorithm::HS256);
    group.bench_function("jsonwebtoken_decode_hs256", |b| {
        b.iter_batched(
            requests(&small_tokens),
            |request| {
                // The same token bytes the layer reads, from the same freshly built request.
                let value = request.headers()[header::AUTHORIZATION].as_bytes();
                let token = &value[b"Bearer ".len()..];
                let data =
                    jsonwebtoken::decode::<Claims>(black_box(token), &key, &validation).unwrap();
                (data, request)
            },
            BatchSize::SmallInput,
        )
    });

    // The million-session store is built only once the smaller cases are measured, so that
    // its memory does not weigh on them.
    for (id, total, cache) in [
        ("layer_hs256_memory", 10_000, Cache::FirstSight),
        ("layer_hs256_memory_seen", 10_000, Cache::Seen),
        ("layer_hs256_memory_no_cache", 10_000, Cache::Off),
        ("layer_hs256_memory_1m", 1_000_000, Cache::FirstSight),
    ] {
        let (sessions, tokens) = match total {
            10_000 => (small.clone(), small_tokens.clone()),
            _ => populated(total),
        };
        // The same store and key, with the token cache this case measures.
        let builder = Sessions::builder(Keys::hs256(SECRET).unwrap(), sessions.store().clone());
        let sessions = match cache {
            Cache::FirstSight => builder.token_cache(1),
            Cache::Seen => builder,
            Cache::Off => builder.no_token_cache(),
        }
        .build()
        .unwrap();
        let tokens = &tokens;
        let mut service = tower::Layer::layer(&sessions.layer(), mock());
        if let Cache::Seen = cache {
            let mut warm = requests(tokens);
            for _ in 0..tokens.len() {
                now(std::future::poll_fn(|cx| service.poll_ready(cx))).unwrap();
                assert_eq!(now(service.call(warm())).unwrap().status(), 200);
            }
        }
        group.bench_function(id, |b| {
            b.iter_batched(
                requests(tokens),
                |request| {
                    now(std::future::poll_fn(|cx| service.poll_ready(cx))).unwrap();
                    let response = now(service.call(request)).unwrap();
                    assert_eq!(response.status(), 200);
                    response
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

#[cfg(feature = "redis")]
#[path = "../tests/support/mod.rs"]
mod support;

#[cfg(feature = "redis")]
fn bench_redis(c: &mut Criterion) {
    use criterion::Throughput;
    use tower::ServiceExt;
    use tower_jwt_auth::store::RedisStore;

    let redis = support::TestRedis::get();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let prefix = support::unique_prefix("bench");
    let (sessions, tokens) = runtime.block_on(async {
        let store = RedisStore::connect(redis.url())
            .await
            .unwrap()
            .prefix(&prefix);
        populate(store, 10_000).await
    });
    let mut group = c.benchmark_group("auth");
    traffic::bench_layer(
        &mut group,
        &runtime,
        "layer_hs256_redis",
        &sessions,
        &tokens,
    );
    // The same sessions through another instance with a near-cache, every token and
    // session seen once before.
    let near = runtime.block_on(async {
        use tower_jwt_auth::store::NearCacheConfig;
        use tower_jwt_auth::store::redis::redis::Client;
        let store = RedisStore::connect(redis.url())
            .await
            .unwrap()
            .prefix(&prefix)
            .near_cache(
                Client::open(redis.url()).unwrap(),
                NearCacheConfig::default(),
            );
        while !store.is_trusted() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let near = Sessions::builder(Keys::hs256(SECRET).unwrap(), store)
            .build()
            .unwrap();
        let service = tower::Layer::layer(&near.layer(), mock());
        let mut warm = requests(&tokens);
        for _ in 0..tokens.len() {
            let response = service.clone().oneshot(warm()).await.unwrap();
            assert_eq!(response.status(), 200);
        }
        service
    });
    traffic::bench_service(
        &mut group,
        &runtime,
        "layer_hs256_redis_near_cache",
        near,
        &tokens,
    );
    let service = tower::Layer::layer(&sessions.layer(), mock());
    const CONCURRENT: usize = 64;
    group.throughput(Throughput::Elements(CONCURRENT as u64));
    let mut next = requests(&tokens);
    group.bench_function("layer_hs256_redis_64_concurrent", |b| {
        b.to_async(&runtime).iter_batched(
            || (0..CONCURRENT).map(|_| next()).collect::<Vec<_>>(),
            |batch| {
                let service = service.clone();
                async move {
                    let tasks: Vec<_> = batch
                        .into_iter()
                        .map(|request| tokio::spawn(service.clone().oneshot(request)))
                        .collect();
                    for task in tasks {
                        assert_eq!(task.await.unwrap().unwrap().status(), 200);
                    }
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

#[cfg(not(feature = "redis"))]
fn bench_redis(_: &mut Criterion) {}

criterion_group!(benches, bench, bench_redis);
criterion_main!(benches);
