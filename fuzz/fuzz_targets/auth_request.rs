//! Fuzz target `auth_request`: requests driven through the real `JwtAuth` layer around a
//! `tower::service_fn`, checked against a reference of what the layer must answer.
//!
//! Run it from the repository root. cargo-fuzz instruments with `-Z` flags, which a stable
//! toolchain takes under `RUSTC_BOOTSTRAP=1` (stable ships the AddressSanitizer runtime for
//! x86_64 Linux); without AddressSanitizer no `-Z` flag is passed and plain stable builds it:
//!
//! ```text
//! cargo install cargo-fuzz
//! RUSTC_BOOTSTRAP=1 cargo fuzz run auth_request -- -max_total_time=300
//! # without AddressSanitizer (several times faster; the crate has no unsafe code):
//! cargo fuzz run --sanitizer none auth_request -- -max_total_time=300
//! # new inputs go to the first corpus folder given: a scratch one keeps fuzz/corpus as it is
//! RUSTC_BOOTSTRAP=1 cargo fuzz run auth_request /tmp/auth_request fuzz/corpus/auth_request
//! # a failing input is saved under fuzz/artifacts/auth_request/; replay it with
//! RUSTC_BOOTSTRAP=1 cargo fuzz run auth_request fuzz/artifacts/auth_request/<file>
//! ```
//!
//! Without a folder, inputs found are added to `fuzz/corpus/auth_request/`, which git
//! ignores but for the `seed-*` files.
//!
//! One store (a `MemoryStore` at a fixed time) holds live, revoked and expired sessions, and
//! a set of tokens is signed for them once, with fixed keys, so every run sees the same
//! tokens. Three configurations share them: `Bearer` header only; header or cookie `at` with
//! a realm and a token limit just above the longest token; two keys told apart by `kid`.
//!
//! The first byte picks the configuration (byte % 3) and the mode ((byte / 3) % 4), so that
//! the digits `0`-`2` start raw inputs, `3`-`5` mutations and `6`-`8` re-signed tokens, for
//! each configuration in turn:
//! - 0 and 3, raw: the rest is header lines split on `\n`: `c:` starts a `Cookie`, `x:`
//!   another header, `a:` or anything else an `Authorization`; `$0` to `$9` stand for the
//!   fixed tokens;
//! - 1, mutation: a fixed token (next byte), the way it is presented (next byte), then up to
//!   16 edits of three bytes each: characters changed, inserted or removed, segments swapped
//!   or spliced from other tokens, base64 re-spelled (padding, standard alphabet, the unused
//!   trailing bits of a segment), header or claims JSON changed and re-encoded under the old
//!   signature, truncation, segments added or removed;
//! - 2, re-signed: eight bytes choose a header (algorithm, key, `typ`, `kid`, `crit`) and
//!   claims (`sub`, `sid`, `exp`, `nbf`, `iat`, `jti`, extra or duplicate members), signed
//!   with a real key; the next byte says how the token is presented.
//!
//! What must hold, whatever the input: no panic and no future left pending; the status is
//! 200, 400 or 401, and exactly the reference's; a refusal carries a `WWW-Authenticate`
//! starting with `Bearer` (exactly the reference's for a malformed request) and one of the
//! fixed bodies, never the presented token; 200 only for a token byte-identical to a fixed
//! token of a live session valid in that configuration, or a re-signed one whose claims and
//! header the reference accepts, and then the inner service sees that session.

#![no_main]

#[path = "../../tests/refusals/mod.rs"]
mod refusals;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE, HeaderName, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::{Layer, Service, service_fn};
use tower_jwt_auth::clock::from_unix_seconds as at;
use tower_jwt_auth::store::{MemoryStore, Session, SessionStore};
use tower_jwt_auth::{
    AuthError, Claims, ErrorHandler, JsonErrors, Keys, ManualClock, RefusedRequest, RequestError,
    SessionId, Sessions, TokenError,
};

/// The fixed time of every request.
const NOW: u64 = 1_700_000_000;
/// The default leeway on `exp` and `nbf`.
const LEEWAY: u64 = 30;
const KEY_1: &[u8; 32] = b"auth_request: fixed HS256 key #1";
const KEY_2: &[u8; 32] = b"auth_request: fixed HS256 key #2";
/// A key no configuration knows.
const KEY_3: &[u8; 32] = b"auth_request: a key nobody knows";
const COOKIE_NAME: &str = "at";
const REALM: &str = "fuzz";

fn session_id(n: u8) -> SessionId {
    SessionId::from_bytes([n; 16])
}

/// The sessions (user, id) live in the store.
const LIVE: [(&str, u8); 3] = [("alice", 1), ("alice", 2), ("bob", 3)];

/// A configuration of the layer.
struct Config {
    sessions: Sessions<MemoryStore>,
    realm: Option<&'static str>,
    cookie: bool,
    max_len: usize,
    /// Two keys, chosen by `kid`.
    kids: bool,
}

/// A fixed token, and in which configurations it must be let in.
struct Fixed {
    token: Vec<u8>,
    valid: [bool; 3],
    /// What the inner service sees when it is let in: `sub sid`.
    seen: String,
}

struct World {
    configs: [Config; 3],
    fixed: Vec<Fixed>,
    /// Fixed token -> its index.
    by_token: HashMap<Vec<u8>, usize>,
    /// Every body a refusal can have.
    bodies: Vec<Vec<u8>>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(build_world)
}

fn build_world() -> World {
    let store = MemoryStore::new();
    let day = 24 * 3600;
    for (sub, n) in LIVE {
        create(
            &store,
            Session::new(session_id(n), sub, at(NOW - 100), at(NOW + day)),
        );
    }
    create(
        &store,
        Session::new(session_id(4), "bob", at(NOW - 100), at(NOW + day)),
    );
    assert!(ready(store.revoke("bob", &session_id(4))).unwrap());
    // Expired, not yet swept.
    create(
        &store,
        Session::new(session_id(5), "carol", at(NOW - 1000), at(NOW - 10)),
    );

    let sign = |alg: &str, kid: Option<&str>, typ: &str, key: &[u8; 32], claims: String| {
        let kid = kid.map_or(String::new(), |kid| format!(r#","kid":"{kid}""#));
        let header = format!(r#"{{"alg":"{alg}","typ":"{typ}"{kid}}}"#);
        signed(&header, &claims, key, algorithm(alg))
    };
    let claims = |sub: &str, sid: u8, exp: u64| {
        format!(
            r#"{{"sub":"{sub}","sid":"{}","jti":"j{sid}","iat":{},"exp":{exp}}}"#,
            session_id(sid),
            NOW - 60
        )
    };
    let fresh = NOW + 900;
    let all = [true; 3];
    let only_kids = [false, false, true];
    let none = [false; 3];
    let fixed: Vec<(Vec<u8>, [bool; 3], &str, u8)> = vec![
        // Live sessions, the signing key, no kid: valid everywhere.
        (
            sign("HS256", None, "at+jwt", KEY_1, claims("alice", 1, fresh)),
            all,
            "alice",
            1,
        ),
        (
            sign("HS256", None, "at+jwt", KEY_1, claims("alice", 2, fresh)),
            all,
            "alice",
            2,
        ),
        (
            sign(
                "HS256",
                Some("k1"),
                "at+jwt",
                KEY_1,
                claims("bob", 3, fresh),
            ),
            all,
            "bob",
            3,
        ),
        // The second key: only where it is configured.
        (
            sign(
                "HS256",
                Some("k2"),
                "at+jwt",
                KEY_2,
                claims("bob", 3, fresh),
            ),
            only_kids,
            "bob",
            3,
        ),
        // Revoked, expired session, another user's session, expired token, refresh type,
        // another algorithm.
        (
            sign("HS256", None, "at+jwt", KEY_1, claims("bob", 4, fresh)),
            none,
            "bob",
            4,
        ),
        (
            sign("HS256", None, "at+jwt", KEY_1, claims("carol", 5, fresh)),
            none,
            "carol",
            5,
        ),
        (
            sign("HS256", None, "at+jwt", KEY_1, claims("alice", 3, fresh)),
            none,
            "alice",
            3,
        ),
        (
            sign(
                "HS256",
                None,
                "at+jwt",
                KEY_1,
                claims("alice", 1, NOW - LEEWAY),
            ),
            none,
            "alice",
            1,
        ),
        (
            sign("HS256", None, "rt+jwt", KEY_1, claims("alice", 1, fresh)),
            none,
            "alice",
            1,
        ),
        (
            sign("HS384", None, "at+jwt", KEY_1, claims("alice", 1, fresh)),
            none,
            "alice",
            1,
        ),
    ];
    let longest = fixed.iter().map(|(token, ..)| token.len()).max().unwrap();

    let clock = ManualClock::new(NOW);
    let keys = |key: &[u8; 32]| Keys::hs256(key).unwrap();
    let configs = [
        Config {
            sessions: Sessions::builder(keys(KEY_1), store.clone())
                .clock(clock.clone())
                .build()
                .unwrap(),
            realm: None,
            cookie: false,
            max_len: 8 * 1024,
            kids: false,
        },
        Config {
            sessions: Sessions::builder(keys(KEY_1), store.clone())
                .clock(clock.clone())
                .cookie(COOKIE_NAME)
                .realm(REALM)
                .max_token_len(longest + 16)
                .build()
                .unwrap(),
            realm: Some(REALM),
            cookie: true,
            max_len: longest + 16,
            kids: false,
        },
        Config {
            sessions: Sessions::builder(keys(KEY_1).with_kid("k1"), store)
                .clock(clock)
                .verify_also(keys(KEY_2).with_kid("k2"))
                .cookie(COOKIE_NAME)
                .build()
                .unwrap(),
            realm: None,
            cookie: true,
            max_len: 8 * 1024,
            kids: true,
        },
    ];

    let fixed: Vec<Fixed> = fixed
        .into_iter()
        .map(|(token, valid, sub, sid)| Fixed {
            token,
            valid,
            seen: format!("{sub} {}", session_id(sid)),
        })
        .collect();
    let by_token = fixed
        .iter()
        .enumerate()
        .map(|(index, fixed)| (fixed.token.clone(), index))
        .collect();
    let bodies = refusals::every_refusal()
        .iter()
        .map(|error| {
            collect(
                JsonErrors
                    .render(error, &RefusedRequest::unknown())
                    .into_body(),
            )
        })
        .collect();
    let world = World {
        configs,
        fixed,
        by_token,
        bodies,
    };
    // The reference agrees with the layer on the fixed tokens, or nothing else is worth
    // checking.
    for (index, config) in world.configs.iter().enumerate() {
        for fixed in &world.fixed {
            let value = [b"Bearer ".as_slice(), &fixed.token].concat();
            let (status, _, _) = send(config, &[(AUTHORIZATION, value)]);
            assert_eq!(
                status == StatusCode::OK,
                fixed.valid[index],
                "configuration {index}: {}",
                String::from_utf8_lossy(&fixed.token)
            );
        }
    }
    world
}

fn create(store: &MemoryStore, session: Session) {
    ready(store.create(&session, None)).unwrap();
}

fn algorithm(name: &str) -> Algorithm {
    match name {
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        _ => Algorithm::HS256,
    }
}

/// `header.claims.signature` from JSON texts as given (members in any order, duplicates
/// kept), signed with `key`; `alg: none` gets an empty signature.
fn signed(header: &str, claims: &str, key: &[u8], alg: Algorithm) -> Vec<u8> {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = if header.contains(r#""alg":"none""#) {
        String::new()
    } else {
        jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(key), alg).unwrap()
    };
    format!("{message}.{signature}").into_bytes()
}

// ===== driving the layer =====

/// Polls a future once: the memory store and the mock service answer at once, so a future
/// still pending is a hang.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a future did not complete although nothing waits"),
    }
}

fn collect<B: http_body::Body<Data = Bytes>>(body: B) -> Vec<u8>
where
    B::Error: std::fmt::Debug,
{
    ready(body.collect()).unwrap().to_bytes().to_vec()
}

/// Sends a request with `headers` through the layer of `config`; the inner service answers
/// 200 with the session it was given.
fn send(
    config: &Config,
    headers: &[(HeaderName, Vec<u8>)],
) -> (StatusCode, Option<HeaderValue>, Vec<u8>) {
    let inner = service_fn(|request: Request<()>| async move {
        let claims = request
            .extensions()
            .get::<Claims>()
            .expect("the layer hands the claims on");
        let seen = format!("{} {}", claims.sub, claims.sid);
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(seen)))
    });
    let mut service = config.sessions.layer().layer(inner);
    let mut request = Request::new(());
    for (name, value) in headers {
        let value = HeaderValue::from_bytes(value).expect("checked when read");
        request.headers_mut().append(name.clone(), value);
    }
    ready(std::future::poll_fn(|cx| service.poll_ready(cx))).unwrap();
    let response = ready(service.call(request)).unwrap();
    let status = response.status();
    let challenge = response.headers().get(WWW_AUTHENTICATE).cloned();
    (status, challenge, collect(response.into_body()))
}

// ===== the reference =====

/// What the layer must take from the headers: RFC 6750 §2.1 with the crate's choices (one
/// `Authorization` header, scheme in any case, one or more spaces, a b64token within the
/// limit; with a cookie name configured, that cookie instead, never both).
fn extract(config: &Config, headers: &[(HeaderName, Vec<u8>)]) -> Result<Vec<u8>, AuthError> {
    let values: Vec<&[u8]> = headers
        .iter()
        .filter(|(name, _)| name == AUTHORIZATION)
        .map(|(_, value)| value.as_slice())
        .collect();
    let from_header = match values[..] {
        [] => None,
        [value] => {
            let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
                Some(space) => (&value[..space], &value[space + 1..]),
                None => (value, &[][..]),
            };
            if scheme.is_empty() {
                return Err(RequestError::MalformedHeader.into());
            }
            if scheme.eq_ignore_ascii_case(b"bearer") {
                // One or more spaces (RFC 7235 §2.1: SP, not any whitespace).
                let token = &rest[rest.iter().take_while(|&&b| b == b' ').count()..];
                if token.is_empty() {
                    return Err(RequestError::MalformedHeader.into());
                }
                Some(token)
            } else {
                None
            }
        }
        _ => return Err(RequestError::MultipleHeaders.into()),
    };
    let mut from_cookie = None;
    if config.cookie {
        for (name, value) in headers {
            if name != COOKIE {
                continue;
            }
            for pair in value.split(|&b| b == b';') {
                let pair = pair.trim_ascii();
                let Some(equals) = pair.iter().position(|&b| b == b'=') else {
                    continue;
                };
                if &pair[..equals] != COOKIE_NAME.as_bytes() {
                    continue;
                }
                let value = &pair[equals + 1..];
                let value = match value {
                    [b'"', inner @ .., b'"'] => inner,
                    _ => value,
                };
                if from_cookie.replace(value).is_some() {
                    return Err(RequestError::MultipleCredentials.into());
                }
            }
        }
    }
    let (token, malformed) = match (from_header, from_cookie) {
        (Some(_), Some(_)) => return Err(RequestError::MultipleCredentials.into()),
        (Some(token), None) => (token, RequestError::MalformedHeader),
        (None, Some(token)) => (token, RequestError::MalformedCookie),
        (None, None) => return Err(AuthError::Missing),
    };
    if token.len() > config.max_len {
        return Err(TokenError::TooLong.into());
    }
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = &token[..token.len() - token.iter().rev().take_while(|&&b| b == b'=').count()];
    let b64 = |b: &u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(b);
    if body.is_empty() || !body.iter().all(b64) {
        return Err(malformed.into());
    }
    Ok(token.to_vec())
}

/// A token signed with a real key, and whether it must be let in (and as whom).
struct Resigned {
    token: Vec<u8>,
    seen: Option<String>,
}

/// Builds a token from eight bytes of choices, signs it, and says what the layer must do
/// with it in `config`.
fn resign(config_index: usize, choice: &[u8; 8]) -> Resigned {
    let config = &world().configs[config_index];
    let [alg_key, header, sub, sid, exp, nbf, iat_jti, extra] = *choice;

    let alg = ["HS256", "HS384", "none", "HS512", "hs256"][usize::from(alg_key % 5)];
    let key = [KEY_1, KEY_2, KEY_3][usize::from(alg_key / 5 % 3)];
    let typ = [
        Some("at+jwt"),
        Some("AT+JWT"),
        Some("rt+jwt"),
        Some("JWT"),
        None,
        Some("application/at+jwt"),
    ][usize::from(header % 6)];
    let kid = [None, Some("k1"), Some("k2"), Some("zz")][usize::from(header / 6 % 4)];
    let crit = header & 0x80 != 0;
    let mut members = vec![format!(r#""alg":"{alg}""#)];
    members.extend(typ.map(|typ| format!(r#""typ":"{typ}""#)));
    members.extend(kid.map(|kid| format!(r#""kid":"{kid}""#)));
    if crit {
        members.push(r#""crit":["exp"]"#.to_owned());
    }
    let header_json = format!("{{{}}}", members.join(","));

    let sub = ["alice", "bob", "carol", "", "Alice", "alice "][usize::from(sub % 6)];
    let sid_text = match sid % 8 {
        n @ 0..=4 => Some(session_id(n + 1).to_string()),
        5 => Some(session_id(0x77).to_string()),
        6 => Some("not-a-session-id".to_owned()),
        _ => None,
    };
    let exp_value: Option<String> = match exp % 8 {
        0 => Some((NOW + 900).to_string()),
        1 => Some((NOW - LEEWAY - 1).to_string()),
        2 => Some((NOW - LEEWAY).to_string()),
        3 => Some((NOW - LEEWAY + 1).to_string()),
        4 => None,
        5 => Some(r#""soon""#.to_owned()),
        6 => Some(u64::MAX.to_string()),
        _ => Some("-1".to_owned()),
    };
    let nbf_value: Option<String> = match nbf % 5 {
        0 => None,
        1 => Some((NOW + LEEWAY + 1).to_string()),
        2 => Some((NOW + LEEWAY).to_string()),
        3 => Some((NOW - 100).to_string()),
        _ => Some(r#""later""#.to_owned()),
    };
    let iat_value = [Some(NOW.to_string()), None, Some(r#""now""#.to_owned())]
        [usize::from(iat_jti % 3)]
    .clone();
    let jti_value = [Some(r#""j""#.to_owned()), None, Some("5".to_owned())]
        [usize::from(iat_jti / 3 % 3)]
    .clone();
    let mut claims = vec![format!(r#""sub":"{sub}""#)];
    claims.extend(sid_text.as_ref().map(|sid| format!(r#""sid":"{sid}""#)));
    claims.extend(jti_value.as_ref().map(|jti| format!(r#""jti":{jti}"#)));
    claims.extend(iat_value.as_ref().map(|iat| format!(r#""iat":{iat}"#)));
    claims.extend(exp_value.as_ref().map(|exp| format!(r#""exp":{exp}"#)));
    claims.extend(nbf_value.as_ref().map(|nbf| format!(r#""nbf":{nbf}"#)));
    let duplicate = match extra % 6 {
        1 => {
            claims.push(r#""aud":"somewhere""#.to_owned());
            false
        }
        2 => {
            claims.push(r#""iss":"someone""#.to_owned());
            false
        }
        3 => {
            claims.push(r#""role":"admin""#.to_owned());
            false
        }
        // The same member twice: parsers that keep the first and those that keep the last
        // would disagree about the user.
        4 => {
            claims.insert(0, r#""sub":"mallory""#.to_owned());
            true
        }
        5 => {
            claims.push(r#""sub":"mallory""#.to_owned());
            true
        }
        _ => false,
    };
    if extra & 0x80 != 0 {
        claims.reverse();
    }
    let claims_json = format!("{{{}}}", claims.join(","));
    let token = signed(&header_json, &claims_json, key, algorithm(alg));

    // The verifying key: by `kid` among the configured ones when there are two, otherwise
    // the one key whatever the `kid`.
    let verifying_key = match (config.kids, kid) {
        (false, _) | (true, None | Some("k1")) => Some(KEY_1),
        (true, Some("k2")) => Some(KEY_2),
        (true, Some(_)) => None,
    };
    let integer = |value: &Option<String>| value.as_deref().and_then(|v| v.parse::<u64>().ok());
    let sid = sid_text
        .as_deref()
        .and_then(|sid| sid.parse::<SessionId>().ok());
    let accepted = alg == "HS256"
        && verifying_key == Some(key)
        && typ.is_some_and(|typ| typ.eq_ignore_ascii_case("at+jwt"))
        && !crit
        && !duplicate
        && jti_value.as_deref() == Some(r#""j""#)
        && integer(&iat_value).is_some()
        && integer(&exp_value).is_some_and(|exp| NOW < exp.saturating_add(LEEWAY))
        && (nbf_value.is_none() || integer(&nbf_value).is_some_and(|nbf| nbf <= NOW + LEEWAY))
        && sid.is_some_and(|sid| LIVE.iter().any(|&(s, n)| s == sub && session_id(n) == sid));
    Resigned {
        seen: accepted.then(|| format!("{sub} {}", sid.unwrap())),
        token,
    }
}

// ===== building requests from bytes =====

/// Reads bytes, zero once they run out.
struct Input<'a>(std::slice::Iter<'a, u8>);

impl Input<'_> {
    fn next(&mut self) -> u8 {
        self.0.next().copied().unwrap_or(0)
    }
}

/// The headers that present `token` as `how` says.
fn present(token: &[u8], how: u8) -> Vec<(HeaderName, Vec<u8>)> {
    let scheme: &[u8] = [
        b"Bearer".as_slice(),
        b"bearer",
        b"BEARER",
        b"bEaReR",
        b"Basic",
        b"Bearer\t",
        b"",
        b" Bearer",
    ][usize::from(how & 7)];
    let spaces = 1 + usize::from((how >> 3) & 3);
    let in_cookie = how & 0x20 != 0;
    let quoted = how & 0x40 != 0;
    let twice = how & 0x80 != 0;

    let mut header = scheme.to_vec();
    if !scheme.is_empty() && !scheme.ends_with(b"\t") {
        header.extend(std::iter::repeat_n(b' ', spaces));
    }
    header.extend_from_slice(token);
    let mut cookie = b"theme=dark; at=".to_vec();
    if quoted {
        cookie.push(b'"');
    }
    cookie.extend_from_slice(token);
    if quoted {
        cookie.push(b'"');
    }
    let mut headers = vec![];
    if in_cookie {
        headers.push((COOKIE, cookie));
        if twice {
            headers.push((AUTHORIZATION, header));
        }
    } else {
        headers.push((AUTHORIZATION, header.clone()));
        if twice {
            headers.push((AUTHORIZATION, header));
        }
    }
    headers
        .into_iter()
        .filter(|(_, value)| HeaderValue::from_bytes(value).is_ok())
        .collect()
}

/// Header lines: `c:` a cookie, `x:` another header, `a:` or nothing an `Authorization`;
/// `$0`..`$9` are the fixed tokens.
fn raw_headers(data: &[u8]) -> Vec<(HeaderName, Vec<u8>)> {
    let fixed = &world().fixed;
    data.split(|&b| b == b'\n')
        .take(8)
        .filter_map(|line| {
            let (name, value) = match line {
                [b'c', b':', rest @ ..] => (COOKIE, rest),
                [b'x', b':', rest @ ..] => (HeaderName::from_static("x-other"), rest),
                [b'a', b':', rest @ ..] => (AUTHORIZATION, rest),
                _ => (AUTHORIZATION, line),
            };
            let mut expanded = Vec::with_capacity(value.len());
            let mut rest = value;
            while let Some((&b, tail)) = rest.split_first() {
                match tail.first() {
                    Some(&d)
                        if b == b'$'
                            && d.is_ascii_digit()
                            && usize::from(d - b'0') < fixed.len() =>
                    {
                        expanded.extend_from_slice(&fixed[usize::from(d - b'0')].token);
                        rest = &tail[1..];
                    }
                    _ => {
                        expanded.push(b);
                        rest = tail;
                    }
                }
            }
            HeaderValue::from_bytes(&expanded)
                .is_ok()
                .then_some((name, expanded))
        })
        .collect()
}

/// Characters edits put in: the b64token ones, padding, and some that must never pass.
const CHARS: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+/= \",;\t\xff";
const URL_SAFE_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn segments(token: &[u8]) -> Vec<Vec<u8>> {
    token.split(|&b| b == b'.').map(<[u8]>::to_vec).collect()
}

fn join(segments: &[Vec<u8>]) -> Vec<u8> {
    segments.join(&b'.')
}

/// A position in `0..len` (or `0..=len` with `end`) spread over the byte's range.
fn position(a: u8, len: usize, end: bool) -> usize {
    let span = len + usize::from(end);
    (usize::from(a) * span / 256).min(span.saturating_sub(1))
}

/// Changes one JSON segment (header or claims) and encodes it again.
fn edit_json(segment: &[u8], a: u8, b: u8, header: bool) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    let Value::Object(mut map) = serde_json::from_slice::<Value>(&bytes).ok()? else {
        return None;
    };
    let text = match (header, b % 8) {
        (false, 0) => {
            map.insert(
                "sub".into(),
                ["alice", "bob", "carol"][usize::from(a % 3)].into(),
            );
            None
        }
        (false, 1) => {
            map.insert("sid".into(), session_id(a % 6).to_string().into());
            None
        }
        (false, 2) => {
            let exp = map.get("exp").and_then(Value::as_u64).unwrap_or(NOW);
            map.insert("exp".into(), (exp + u64::from(a)).into());
            None
        }
        (false, 3) => {
            map.insert("nbf".into(), (NOW - u64::from(a)).into());
            None
        }
        (false, 4) => {
            // The same member twice, the second naming another user.
            let text = serde_json::to_string(&map).ok()?;
            Some(format!(r#"{},"sub":"bob"}}"#, &text[..text.len() - 1]))
        }
        (true, 0) => {
            map.insert(
                "alg".into(),
                ["none", "HS384", "hs256", "RS256"][usize::from(a % 4)].into(),
            );
            None
        }
        (true, 1) => {
            map.insert(
                "typ".into(),
                ["rt+jwt", "JWT", "AT+JWT"][usize::from(a % 3)].into(),
            );
            None
        }
        (true, 2) => {
            map.insert("kid".into(), ["k1", "k2", "zz"][usize::from(a % 3)].into());
            None
        }
        (true, 3) => {
            map.insert("crit".into(), Value::Array(vec!["exp".into()]));
            None
        }
        (true, 4) => {
            map.insert(
                "jwk".into(),
                serde_json::json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(KEY_3)}),
            );
            None
        }
        (_, 5) => {
            // A member removed.
            let key = map.keys().nth(usize::from(a) % map.len().max(1))?.clone();
            map.remove(&key);
            None
        }
        (_, 6) => Some(serde_json::to_string_pretty(&map).ok()?),
        _ => {
            map.insert(format!("x{a}"), Value::from(b));
            None
        }
    };
    let text = match text {
        Some(text) => text,
        None => serde_json::to_string(&map).ok()?,
    };
    Some(URL_SAFE_NO_PAD.encode(text).into_bytes())
}

/// Applies one edit to `token`.
fn mutate(token: &mut Vec<u8>, op: u8, a: u8, b: u8) {
    let fixed = &world().fixed;
    let mut parts = segments(token);
    let n = parts.len();
    let pick = |x: u8| usize::from(x) % n;
    match op % 12 {
        0 if !token.is_empty() => {
            let at = position(a, token.len(), false);
            token[at] = CHARS[usize::from(b) % CHARS.len()];
        }
        1 => {
            let at = position(a, token.len(), true);
            token.insert(at, CHARS[usize::from(b) % CHARS.len()]);
        }
        2 if !token.is_empty() => {
            token.remove(position(a, token.len(), false));
        }
        3 => {
            parts.swap(pick(a), pick(b));
            *token = join(&parts);
        }
        4 => {
            // A segment of another fixed token, spliced in at the same place.
            let other = segments(&fixed[usize::from(b) % fixed.len()].token);
            let at = pick(a);
            if let Some(segment) = other.get(at) {
                parts[at] = segment.clone();
            }
            *token = join(&parts);
        }
        5 => {
            // The unused low bits of a segment's last character: the same bytes, spelled
            // another way. Canonical decoding must refuse it.
            let at = pick(a);
            let segment = &mut parts[at];
            let unused = (6 * segment.len()) % 8;
            if let Some(last) = segment.last_mut()
                && unused > 0
                && let Some(value) = URL_SAFE_ALPHABET.iter().position(|c| c == last)
            {
                let mask = (1 << unused) - 1;
                *last = URL_SAFE_ALPHABET[(value & !mask) | (usize::from(b) & mask)];
            }
            *token = join(&parts);
        }
        6 => {
            let at = pick(a);
            parts[at].extend(std::iter::repeat_n(b'=', 1 + usize::from(b % 3)));
            *token = join(&parts);
        }
        7 => {
            let at = pick(a);
            if let Ok(bytes) = URL_SAFE_NO_PAD.decode(&parts[at]) {
                parts[at] = match b % 3 {
                    0 => STANDARD.encode(bytes),
                    1 => STANDARD_NO_PAD.encode(bytes),
                    _ => URL_SAFE.encode(bytes),
                }
                .into_bytes();
            }
            *token = join(&parts);
        }
        8 | 9 => {
            let header = op % 12 == 9;
            let at = usize::from(!header);
            if let Some(edited) = parts.get(at).and_then(|s| edit_json(s, a, b, header)) {
                parts[at] = edited;
            }
            *token = join(&parts);
        }
        10 => token.truncate(position(a, token.len(), true)),
        _ => {
            match b % 5 {
                0 => {
                    parts.pop();
                }
                1 => parts.push(b"AAAA".to_vec()),
                2 => {
                    let copy = parts[pick(a)].clone();
                    parts.insert(pick(a), copy);
                }
                3 if n > 1 => {
                    let at = pick(a).min(n - 2);
                    let next = parts.remove(at + 1);
                    parts[at].extend(next);
                }
                _ => {
                    if let Some(last) = parts.last_mut() {
                        last.clear();
                    }
                }
            }
            *token = join(&parts);
        }
    }
}

// ===== the target =====

fuzz_target!(|data: &[u8]| {
    let world = world();
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let config_index = usize::from(first % 3);
    let config = &world.configs[config_index];
    let mut bytes = Input(rest.iter());

    // The headers, and a re-signed token with its verdict.
    let (headers, resigned) = match first / 3 % 4 {
        1 => {
            let mut token = world.fixed[usize::from(bytes.next()) % world.fixed.len()]
                .token
                .clone();
            let how = bytes.next();
            for _ in 0..16 {
                if bytes.0.len() == 0 {
                    break;
                }
                let (op, a, b) = (bytes.next(), bytes.next(), bytes.next());
                mutate(&mut token, op, a, b);
            }
            (present(&token, how), None)
        }
        2 => {
            let mut choice = [0; 8];
            choice.iter_mut().for_each(|c| *c = bytes.next());
            let resigned = resign(config_index, &choice);
            (present(&resigned.token, bytes.next()), Some(resigned))
        }
        _ => (raw_headers(rest), None),
    };

    let (status, challenge, body) = send(config, &headers);
    let shown = String::from_utf8_lossy(&body);

    // The protocol, whatever the input.
    assert!(
        matches!(status.as_u16(), 200 | 400 | 401),
        "status {status} for {headers:?}"
    );
    if status != StatusCode::OK {
        assert!(
            challenge
                .as_ref()
                .is_some_and(|c| c.as_bytes().starts_with(b"Bearer")),
            "challenge {challenge:?} for {headers:?}"
        );
        assert!(world.bodies.contains(&body), "body {shown} for {headers:?}");
    }

    // Exactly what the reference says.
    let expected = extract(config, &headers);
    match expected {
        Err(error) => {
            assert_eq!(status, error.status(), "{error:?} expected for {headers:?}");
            assert_eq!(challenge, error.challenge(config.realm), "for {headers:?}");
            assert_eq!(
                body,
                collect(
                    JsonErrors
                        .render(&error, &RefusedRequest::unknown())
                        .into_body()
                )
            );
        }
        Ok(token) => {
            let seen = match &resigned {
                Some(resigned) if resigned.token == token => resigned.seen.clone(),
                _ => world
                    .by_token
                    .get(&token)
                    .map(|&index| &world.fixed[index])
                    .filter(|fixed| fixed.valid[config_index])
                    .map(|fixed| fixed.seen.clone()),
            };
            match seen {
                Some(seen) => {
                    assert_eq!(
                        status,
                        StatusCode::OK,
                        "refused {:?} ({shown})",
                        String::from_utf8_lossy(&token)
                    );
                    assert_eq!(shown, seen);
                }
                None => {
                    assert_eq!(
                        status,
                        StatusCode::UNAUTHORIZED,
                        "let in {:?} ({shown})",
                        String::from_utf8_lossy(&token)
                    );
                    let prefix = match config.realm {
                        Some(realm) => format!(r#"Bearer realm="{realm}", error="invalid_token""#),
                        None => r#"Bearer error="invalid_token""#.to_owned(),
                    };
                    assert!(
                        challenge
                            .as_ref()
                            .is_some_and(|c| c.as_bytes().starts_with(prefix.as_bytes())),
                        "challenge {challenge:?}"
                    );
                }
            }
            // Never the token, in the body or the challenge.
            if status != StatusCode::OK && token.len() > 8 {
                let in_fixed_text = world
                    .bodies
                    .iter()
                    .any(|body| body.windows(token.len()).any(|w| w == token));
                if !in_fixed_text {
                    assert!(!body.windows(token.len()).any(|w| w == token));
                    assert!(
                        !challenge
                            .as_ref()
                            .is_some_and(|c| c.as_bytes().windows(token.len()).any(|w| w == token))
                    );
                }
            }
        }
    }
});
