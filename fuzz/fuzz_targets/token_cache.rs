//! Fuzz target `token_cache`: the same requests through two layers on one store and one
//! clock, one with a (small) verified-token cache and one without; every answer must be the
//! same, byte for byte.
//!
//! ```text
//! cargo fuzz run --sanitizer none token_cache -- -max_total_time=300
//! RUSTC_BOOTSTRAP=1 cargo fuzz run token_cache fuzz/artifacts/token_cache/<file>
//! ```
//!
//! The store holds live sessions (one expiring soon), a revoked one and an expired one;
//! tokens are signed for them once, with fixed keys (one token with `nbf` ahead, one with a
//! short `exp`, one of an unknown key). The input is a list of three-byte steps:
//! - `0`: present fixed token `a` (modulo their number), as is;
//! - `1`: present fixed token `a` with the byte at `b` replaced by a byte from the input;
//! - `2`: present fixed token `a` cut to `b` bytes, or with a byte added;
//! - `3`: move the clock by `a` - 128 times 7 seconds (back or forth, crossing `exp`, `nbf`
//!   and the leeway of each);
//! - `4`: revoke session `a`;
//! - `5`: present a token as two headers, or as a cookie with the wrong scheme.
//!
//! The cache holds four tokens, so eviction is exercised too. What must hold: no panic, no
//! future left pending, and the cached layer's status, `WWW-Authenticate` header, body and
//! (for a 200) the session the inner service saw equal the uncached layer's.

#![no_main]

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use tower::{Layer, Service, service_fn};
use tower_jwt_auth::clock::from_unix_seconds;
use tower_jwt_auth::store::{MemoryStore, Session, SessionStore};
use tower_jwt_auth::{Claims, Keys, ManualClock, SessionId, Sessions};

const NOW: u64 = 1_700_000_000;
const KEY: &[u8; 32] = b"token_cache: a fixed HS256 key!!";
const OTHER_KEY: &[u8; 32] = b"token_cache: a key nobody knows!";

/// (user, session number): 1-3 live, 4 expires soon, 5 expired, 6 unknown.
const SESSIONS: [(&str, u8); 6] = [
    ("alice", 1),
    ("alice", 2),
    ("bob", 3),
    ("carol", 4),
    ("dave", 5),
    ("erin", 6),
];

fn sid(n: u8) -> SessionId {
    SessionId::from_bytes([n; 16])
}

fn tokens() -> &'static [Vec<u8>] {
    static TOKENS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let sign = |key: &[u8], typ: &str, claims: &Claims| {
            let header = Header {
                typ: Some(typ.to_owned()),
                ..Header::new(Algorithm::HS256)
            };
            jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key))
                .unwrap()
                .into_bytes()
        };
        let claims = |(sub, n): (&str, u8), exp: u64, nbf: Option<u64>| Claims {
            sub: sub.to_owned(),
            sid: sid(n),
            jti: format!("j{n}"),
            iat: NOW - 60,
            exp,
            nbf,
            scope: None,
            custom: (),
        };
        let mut tokens: Vec<Vec<u8>> = SESSIONS
            .iter()
            .map(|&session| sign(KEY, "at+jwt", &claims(session, NOW + 900, None)))
            .collect();
        tokens.push(sign(KEY, "at+jwt", &claims(SESSIONS[0], NOW + 40, None)));
        tokens.push(sign(KEY, "at+jwt", &claims(SESSIONS[1], NOW + 900, Some(NOW + 20))));
        tokens.push(sign(KEY, "rt+jwt", &claims(SESSIONS[2], NOW + 900, None)));
        tokens.push(sign(OTHER_KEY, "at+jwt", &claims(SESSIONS[0], NOW + 900, None)));
        tokens
    })
}

/// Polls a future that must be ready at once (the memory store answers at once).
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a future was left pending"),
    }
}

/// What a layer answered: status, challenge, body, and the session the inner service saw.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    challenge: Option<HeaderValue>,
    body: Bytes,
}

fn answer<S, B>(service: &mut S, request: Request<Full<Bytes>>) -> Answer
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    ready(std::future::poll_fn(|cx| service.poll_ready(cx))).unwrap();
    let response = ready(service.call(request)).unwrap();
    let status = response.status().as_u16();
    let challenge = response.headers().get(WWW_AUTHENTICATE).cloned();
    let body = ready(response.into_body().collect()).unwrap().to_bytes();
    Answer {
        status,
        challenge,
        body,
    }
}

fn request(headers: &[(http::HeaderName, Vec<u8>)]) -> Option<Request<Full<Bytes>>> {
    let mut request = Request::new(Full::default());
    for (name, value) in headers {
        let value = HeaderValue::from_bytes(value).ok()?;
        request.headers_mut().append(name.clone(), value);
    }
    Some(request)
}

fn bearer(token: &[u8]) -> (http::HeaderName, Vec<u8>) {
    (AUTHORIZATION, [b"Bearer ".as_slice(), token].concat())
}

fuzz_target!(|data: &[u8]| {
    let tokens = tokens();
    let clock = ManualClock::new(NOW);
    let store = MemoryStore::new();
    for (n, &(sub, number)) in SESSIONS.iter().enumerate() {
        let end = match n {
            3 => NOW + 30,
            4 => NOW - 10,
            5 => continue,
            _ => NOW + 24 * 3600,
        };
        let session = Session::new(sid(number), sub, from_unix_seconds(NOW - 100), from_unix_seconds(end));
        ready(store.create(&session, None)).unwrap();
    }
    let build = |entries: usize| {
        Sessions::builder(Keys::hs256(KEY).unwrap(), store.clone())
            .clock(clock.clone())
            .cookie("at")
            .token_cache(entries)
            .build()
            .unwrap()
    };
    let inner = service_fn(|request: Request<Full<Bytes>>| async move {
        let claims = request.extensions().get::<Claims>().cloned();
        let seen = claims.map_or(String::new(), |c| format!("{} {}", c.sub, c.sid));
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(seen))))
    });
    let mut cached = build(4).layer().layer(inner);
    let mut uncached = build(0).layer().layer(inner);

    for step in data.chunks_exact(3) {
        let (op, a, b) = (step[0] % 6, step[1], step[2]);
        let token = &tokens[a as usize % tokens.len()];
        let headers = match op {
            0 => vec![bearer(token)],
            1 => {
                let mut changed = token.clone();
                let at = b as usize % changed.len();
                changed[at] = a.rotate_left(3) ^ b;
                vec![bearer(&changed)]
            }
            2 => {
                let mut changed = token.clone();
                if b & 1 == 0 {
                    changed.truncate(b as usize % changed.len());
                } else {
                    changed.push(b'A' + b % 26);
                }
                vec![bearer(&changed)]
            }
            3 => {
                let seconds = (i64::from(a) - 128) * 7;
                let moved = NOW.saturating_add_signed(seconds.saturating_mul(i64::from(b % 4 + 1)));
                clock.set(moved);
                continue;
            }
            4 => {
                let (sub, number) = SESSIONS[a as usize % SESSIONS.len()];
                ready(store.revoke(sub, &sid(number))).unwrap();
                continue;
            }
            _ => match b % 3 {
                0 => vec![bearer(token), bearer(token)],
                1 => vec![(COOKIE, [b"at=".as_slice(), token].concat())],
                _ => vec![(AUTHORIZATION, [b"Basic ".as_slice(), token].concat())],
            },
        };
        let (Some(one), Some(two)) = (request(&headers), request(&headers)) else {
            continue;
        };
        let with_cache = answer(&mut cached, one);
        let without = answer(&mut uncached, two);
        assert_eq!(with_cache, without, "step {step:?}");
        // Time moves on a little between requests, as it does.
        clock.advance(Duration::from_millis(250));
    }
});
