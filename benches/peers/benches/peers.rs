//! The layer beside jwt-authorizer's on the same HS256 tokens, in one run.
//!
//! - `peers/tower_jwt_auth_seen`: this crate's layer, memory store, tokens verified before
//!   (the token cache on, as by default);
//! - `peers/tower_jwt_auth_first_sight`: the same with the cache off;
//! - `peers/jwt_authorizer`: jwt-authorizer 0.15's layer (`from_secret`, default
//!   validation), which checks no session at all.
//!
//! Each iteration presents the next of 1,000 tokens; requests are built outside the timed
//! part. `cd benches/peers && cargo bench`.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use axum::response::Response;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jwt_authorizer::{IntoLayer, JwtAuthorizer, RegisteredClaims};
use tower::{Layer, ServiceExt, service_fn};
use tower_jwt_auth::store::MemoryStore;
use tower_jwt_auth::{Keys, Login, Sessions};

const SECRET: &str = "a benchmark secret of at least 32 bytes";
const TOKENS: usize = 1_000;

fn requests(tokens: &[String]) -> impl FnMut() -> Request<Body> + '_ {
    let mut next = 0;
    move || {
        let token = &tokens[next % tokens.len()];
        next += 1;
        let mut request = Request::new(Body::empty());
        request.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::try_from(format!("Bearer {token}")).unwrap(),
        );
        request
    }
}

async fn ok(_: Request<Body>) -> Result<Response, Infallible> {
    Ok(Response::new(Body::empty()))
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (cached, uncached, peer, tokens) = runtime.block_on(async {
        let store = MemoryStore::new();
        let sessions = |cache: bool| {
            let builder = Sessions::builder(Keys::hs256(SECRET).unwrap(), store.clone());
            let builder = if cache {
                builder
            } else {
                builder.no_token_cache()
            };
            builder.build().unwrap()
        };
        let (cached, uncached) = (sessions(true), sessions(false));
        let mut tokens = Vec::with_capacity(TOKENS);
        for n in 0..TOKENS {
            let issued = cached.issue(Login::new(format!("user{n}"))).await.unwrap();
            tokens.push(issued.access_token);
        }
        let peer = JwtAuthorizer::<RegisteredClaims>::from_secret(SECRET)
            .build()
            .await
            .unwrap();
        (cached, uncached, peer, tokens)
    });
    let ours = cached.layer().layer(service_fn(ok));
    let ours_uncached = uncached.layer().layer(service_fn(ok));
    let theirs = peer.into_layer().layer(service_fn(ok));
    // Every token once through the cached layer, and each layer checked to accept them.
    runtime.block_on(async {
        let mut next = requests(&tokens);
        for _ in 0..TOKENS {
            assert_eq!(ours.clone().oneshot(next()).await.unwrap().status(), 200);
        }
        assert_eq!(
            ours_uncached
                .clone()
                .oneshot(next())
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(theirs.clone().oneshot(next()).await.unwrap().status(), 200);
    });

    let mut group = c.benchmark_group("peers");
    group.bench_function("tower_jwt_auth_seen", |b| {
        b.to_async(&runtime).iter_batched(
            requests(&tokens),
            |request| ours.clone().oneshot(request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("tower_jwt_auth_first_sight", |b| {
        b.to_async(&runtime).iter_batched(
            requests(&tokens),
            |request| ours_uncached.clone().oneshot(request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("jwt_authorizer", |b| {
        b.to_async(&runtime).iter_batched(
            requests(&tokens),
            |request| theirs.clone().oneshot(request),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
