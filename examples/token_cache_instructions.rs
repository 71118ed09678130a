//! The token cache's benchmark cases as a plain loop, for counting instructions, which a
//! shared machine cannot disturb the way it disturbs time:
//!
//! ```text
//! cargo build --release --example token_cache_instructions
//! for case in setup floor first warm seen off; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/token_cache_instructions $case 20000 2>&1 | grep Collected
//! done
//! ```
//!
//! Each case first builds the same 10,000-session memory store, the requests (1,000 tokens,
//! cycled), and the layer of its case; `setup` stops there. In `seen` the layer has
//! verified every token once before, and `warm` stops after that. Then (case - setup) / N
//! (for `seen`, (seen - warm) / N) is one bare
//! `jsonwebtoken::decode` (`floor`) or one request through the layer around a mock service:
//! `first`, a token the cache has not seen (it holds one entry, so every token is a miss
//! that is verified and stored); `seen`, a token verified before; `off`, the cache turned
//! off.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tower::{Layer, Service, service_fn};
use tower_jwt_auth::clock::from_unix_seconds;
use tower_jwt_auth::store::{MemoryStore, Session, SessionStore};
use tower_jwt_auth::{Claims, Keys, Login, SessionId, Sessions};

const SECRET: &[u8] = b"a benchmark secret of 32 bytes!!";

/// Polls a future that is ready at once (the memory store answers at once).
fn ready_now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("every future here is ready at once"),
    }
}

fn request(token: &str) -> Result<Request<Full<Bytes>>, http::header::InvalidHeaderValue> {
    let mut request = Request::new(Full::new(Bytes::new()));
    let value = HeaderValue::try_from(format!("Bearer {token}"))?;
    request.headers_mut().insert(header::AUTHORIZATION, value);
    Ok(request)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "seen".into());
    let n: usize = args.next().unwrap_or_else(|| "20000".into()).parse()?;

    let store = MemoryStore::new();
    let issuer = Sessions::builder(Keys::hs256(SECRET)?, store.clone()).build()?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let tokens = runtime.block_on(async {
        let mut tokens = Vec::new();
        for n in 0..10_000u64 {
            if n % 10 == 0 {
                let issued = issuer.issue(Login::new(format!("user{n}"))).await?;
                tokens.push(issued.access_token);
            } else {
                let mut id = [0; 16];
                id[..8].copy_from_slice(&n.to_le_bytes());
                let session = Session::new(
                    SessionId::from_bytes(id),
                    format!("user{n}"),
                    from_unix_seconds(0),
                    from_unix_seconds(u64::from(u32::MAX)),
                );
                store.create(&session, None).await?;
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(tokens)
    })?;
    let requests = (0..n)
        .map(|i| request(&tokens[i % tokens.len()]))
        .collect::<Result<Vec<_>, _>>()?;
    let mock = service_fn(|_: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let builder = Sessions::builder(Keys::hs256(SECRET)?, store);
    let sessions = match case.as_str() {
        "first" => builder.token_cache(1),
        "off" => builder.no_token_cache(),
        _ => builder,
    }
    .build()?;
    let mut service = sessions.layer().layer(mock);
    if case == "seen" || case == "warm" {
        for token in &tokens {
            ready_now(std::future::poll_fn(|cx| service.poll_ready(cx)))?;
            ready_now(service.call(request(token)?))?;
        }
    }

    let mut accepted = 0;
    match case.as_str() {
        "setup" | "warm" => {}
        "floor" => {
            let key = DecodingKey::from_secret(SECRET);
            let validation = Validation::new(Algorithm::HS256);
            for request in &requests {
                let token = &request.headers()[header::AUTHORIZATION].as_bytes()[7..];
                let decoded = jsonwebtoken::decode::<Claims>(black_box(token), &key, &validation);
                accepted += usize::from(decoded.is_ok());
            }
        }
        "first" | "seen" | "off" => {
            for request in requests {
                ready_now(std::future::poll_fn(|cx| service.poll_ready(cx)))?;
                let response = ready_now(service.call(request))?;
                accepted += usize::from(response.status().is_success());
            }
        }
        other => {
            return Err(
                format!("unknown case {other:?}: setup, floor, first, warm, seen or off").into(),
            );
        }
    }
    println!("{case}: {accepted} of {n} accepted");
    Ok(())
}
