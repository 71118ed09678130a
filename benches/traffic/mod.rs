//! What the benches send through the layer: requests carrying tokens in turn, an inner
//! service that answers each with 200, and the timing of one request after another.

// Each bench uses a part of this module.
#![allow(dead_code)]

use std::convert::Infallible;
use std::fmt::Debug;

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup};
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use tower::{Service, ServiceExt, service_fn};
use tower_jwt_auth::Sessions;
use tower_jwt_auth::store::SessionStore;

/// Requests bearing `tokens` in turn, round and round.
pub fn requests(tokens: &[String]) -> impl FnMut() -> Request<Full<Bytes>> + '_ {
    let mut next = 0;
    move || {
        let token = &tokens[next % tokens.len()];
        next += 1;
        let mut request = Request::new(Full::new(Bytes::new()));
        request.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::try_from(format!("Bearer {token}")).unwrap(),
        );
        request
    }
}

/// The inner service: 200, with the request (and the claims the layer put into it) kept
/// in the response, so that they are dropped outside the timed part.
pub fn mock() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    service_fn(|request: Request<Full<Bytes>>| async {
        let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
        response.extensions_mut().insert(request.into_parts().0);
        Ok::<_, Infallible>(response)
    })
}

/// Times requests through the layer of `sessions` (over [`mock`]), each answered 200.
pub fn bench_layer<St: SessionStore + Clone>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    id: &str,
    sessions: &Sessions<St>,
    tokens: &[String],
) {
    let service = tower::Layer::layer(&sessions.layer(), mock());
    bench_service(group, runtime, id, service, tokens);
}

/// Times `service` on requests bearing `tokens` in turn, one after another, each answered
/// 200; the response is dropped outside the timed part.
pub fn bench_service<S, B>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    id: &str,
    service: S,
    tokens: &[String],
) where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Debug,
{
    group.bench_function(id, |b| {
        b.to_async(runtime).iter_batched(
            requests(tokens),
            |request| {
                let service = service.clone();
                async move {
                    let response = service.oneshot(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                    response
                }
            },
            BatchSize::SmallInput,
        )
    });
}
