//! Property tests: header parsing through the real layer, and the store contract against a
//! reference model (`tests/model/mod.rs`, shared with the `store_model` fuzz target).
//!
//! Requests are driven through `JwtAuth` around a `tower::service_fn`, polled directly: the
//! memory store answers at once, so no runtime is needed (and none starts a background sweep).
//! Case counts are kept small so that this file runs in a few seconds; raise them with
//! `PROPTEST_CASES=10000 cargo test --test properties` for a longer search.

mod model;
mod refusals;

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE, HeaderName, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_jwt_auth::store::{MemoryStore, WhenFull};
use tower_jwt_auth::{
    AuthError, Claims, ErrorHandler, IssueError, JsonErrors, Keys, Login, ManualClock,
    RefusedRequest, SessionId, Sessions, TokenError,
};

use model::{Harness, Op, ready};

const SECRET: &[u8] = b"the property tests' fixed secret";
const NOW: u64 = 1_800_000_000;
/// The token limit of the cookie configuration; issued tokens are about 250 bytes.
const SMALL_MAX: usize = 512;
/// The default token limit.
const DEFAULT_MAX: usize = 8 * 1024;

/// What every property runs against: one store, two configurations of the same key.
struct World {
    /// Defaults: header only, 8 KiB limit, no realm.
    plain: Sessions<MemoryStore>,
    /// Token in the `Authorization` header or in cookie `at`, 512-byte limit, realm `props`.
    cookie: Sessions<MemoryStore>,
    /// Access tokens of live sessions, with their user.
    live: Vec<(String, String)>,
    /// The access token of a session that was revoked.
    revoked: String,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let store = MemoryStore::new();
        let clock = ManualClock::new(NOW);
        let keys = || Keys::hs256(SECRET).unwrap();
        let plain = Sessions::builder(keys(), store.clone())
            .clock(clock.clone())
            .build()
            .unwrap();
        let cookie = Sessions::builder(keys(), store)
            .clock(clock)
            .cookie("at")
            .max_token_len(SMALL_MAX)
            .realm("props")
            .build()
            .unwrap();
        let live = ["alice", "alice", "bob"]
            .into_iter()
            .map(|user| {
                let issued = ready(plain.issue(Login::new(user))).unwrap();
                (issued.access_token, user.to_owned())
            })
            .collect();
        let gone = ready(plain.issue(Login::new("carol"))).unwrap();
        ready(plain.revoke("carol", &gone.session_id)).unwrap();
        World {
            plain,
            cookie,
            live,
            revoked: gone.access_token,
        }
    })
}

/// A response of the layer, read out.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

/// Sends a request with `headers` through the layer of `sessions`; the inner service
/// answers 200 with the user the layer let in.
fn send(sessions: &Sessions<MemoryStore>, headers: &[(HeaderName, &[u8])]) -> Answer {
    let mut service = sessions
        .layer()
        .layer(service_fn(|request: Request<()>| async move {
            let claims = request
                .extensions()
                .get::<Claims>()
                .expect("set by the layer");
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(claims.sub.clone())))
        }));
    let mut request = Request::new(());
    for (name, value) in headers {
        let value = HeaderValue::from_bytes(value).expect("a valid header value");
        request.headers_mut().append(name.clone(), value);
    }
    let service = ready(service.ready()).unwrap();
    let response = ready(service.call(request)).unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|value| value.to_str().expect("an ASCII challenge").to_owned());
    let body = ready(response.into_body().collect()).unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).expect("a UTF-8 body");
    Answer {
        status,
        challenge,
        body,
    }
}

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

/// Every body a refusal can have.
fn refusal_bodies() -> &'static [String] {
    static BODIES: OnceLock<Vec<String>> = OnceLock::new();
    BODIES.get_or_init(|| {
        let errors = refusals::every_refusal();
        errors
            .iter()
            .map(|error| {
                let body = ready(
                    JsonErrors
                        .render(error, &RefusedRequest::unknown())
                        .into_body()
                        .collect(),
                )
                .unwrap();
                String::from_utf8(body.to_bytes().to_vec()).unwrap()
            })
            .collect()
    })
}

/// A refusal follows RFC 6750 and tells nothing of the token presented.
fn assert_refusal(answer: &Answer, presented: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(answer.status.as_u16(), 400 | 401),
        "status {answer:?}"
    );
    prop_assert!(
        answer
            .challenge
            .as_deref()
            .is_some_and(|c| c.starts_with("Bearer")),
        "challenge {answer:?}"
    );
    prop_assert!(refusal_bodies().contains(&answer.body), "body {answer:?}");
    // Implied by the fixed bodies, unless the "token" is a piece of one of them.
    if let Ok(presented) = std::str::from_utf8(presented)
        && presented.len() > 8
        && !refusal_bodies().iter().any(|body| body.contains(presented))
    {
        prop_assert!(!answer.body.contains(presented), "{answer:?}");
    }
    Ok(())
}

/// `token` with the `Authorization` scheme written in the letter case `upper` says.
fn scheme(upper: &[bool]) -> String {
    "bearer"
        .chars()
        .zip(upper)
        .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
        .collect()
}

/// The characters of a b64token body.
const B64TOKEN: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";

/// Bytes a header value may hold: visible ASCII, space, tab and obs-text.
fn header_bytes(len: impl Into<proptest::collection::SizeRange>) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), len).prop_map(|bytes| {
        bytes
            .into_iter()
            .map(|b| {
                if (b < 0x20 && b != b'\t') || b == 0x7f {
                    b'x'
                } else {
                    b
                }
            })
            .collect()
    })
}

fn live_token() -> impl Strategy<Value = usize> {
    0..world().live.len()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ===== header parsing =====

proptest! {
    #![proptest_config(config())]

    /// RFC 7235 §2.1 and RFC 6750 §2.1: the scheme in any letter case, then one or more
    /// spaces, then the token.
    #[test]
    fn bearer_in_any_case_and_any_run_of_spaces_is_accepted(
        token in live_token(),
        upper in proptest::collection::vec(any::<bool>(), 6),
        spaces in 1..16usize,
    ) {
        let world = world();
        let (token, user) = &world.live[token];
        let value = format!("{}{}{token}", scheme(&upper), " ".repeat(spaces));
        for sessions in [&world.plain, &world.cookie] {
            let answer = send(sessions, &[(AUTHORIZATION, value.as_bytes())]);
            prop_assert_eq!(answer.status, StatusCode::OK, "{:?}", answer);
            prop_assert_eq!(&answer.body, user);

            let mut headers = http::HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
            let claims = ready(sessions.authenticate(&headers)).unwrap();
            prop_assert_eq!(&claims.sub, user);
        }
    }

    /// A value that strays from `<scheme> SP+ <b64token>` around a valid token (a tab, a
    /// leading or trailing space, quotes, a comma, a second parameter, another separator)
    /// never lets the request in.
    #[test]
    fn values_off_the_grammar_never_pass(
        token in live_token(),
        upper in proptest::collection::vec(any::<bool>(), 6),
        shape in 0..12usize,
        junk in header_bytes(1..4),
    ) {
        let world = world();
        let (token, _) = &world.live[token];
        let scheme = scheme(&upper);
        let junk = String::from_utf8_lossy(&junk).into_owned();
        // Spaces alone before the token are the grammar's own run of spaces.
        prop_assume!(shape != 11 || junk.bytes().any(|b| b != b' '));
        let value = match shape {
            0 => format!("{scheme}\t{token}"),
            1 => format!(" {scheme} {token}"),
            2 => format!("{scheme} {token} "),
            3 => format!("{scheme} \"{token}\""),
            4 => format!("{scheme} {token},"),
            5 => format!("{scheme} {token} {token}"),
            6 => format!("{scheme}:{token}"),
            7 => format!("{scheme}={token}"),
            8 => format!("{scheme}{token}"),
            9 => format!("{scheme} token={token}"),
            10 => format!("{scheme} {token}{junk}"),
            _ => format!("{scheme} {junk}{token}"),
        };
        // Junk made only of b64token characters can leave a well-formed (and refused) token.
        let answer = send(&world.plain, &[(AUTHORIZATION, value.as_bytes())]);
        prop_assert_ne!(answer.status, StatusCode::OK, "{:?} for {:?}", answer, value);
        assert_refusal(&answer, token.as_bytes())?;
    }

    /// Whatever bytes the header holds, the answer is a well-formed refusal.
    #[test]
    fn arbitrary_values_are_refused_by_the_protocol(value in header_bytes(0..300)) {
        for sessions in [&world().plain, &world().cookie] {
            let answer = send(sessions, &[(AUTHORIZATION, &value)]);
            assert_refusal(&answer, &value)?;
        }
    }

    /// RFC 6750 §3.1: two `Authorization` headers are a malformed request, whatever they hold
    /// (valid tokens included).
    #[test]
    fn two_authorization_headers_are_always_invalid_request(
        first in prop_oneof![header_bytes(0..80), live_token().prop_map(|i| bearer(&world().live[i].0))],
        second in prop_oneof![header_bytes(0..80), live_token().prop_map(|i| bearer(&world().live[i].0))],
    ) {
        for sessions in [&world().plain, &world().cookie] {
            let answer = send(sessions, &[(AUTHORIZATION, &first), (AUTHORIZATION, &second)]);
            prop_assert_eq!(answer.status, StatusCode::BAD_REQUEST);
            let realm = if std::ptr::eq(sessions, &world().cookie) { "realm=\"props\", " } else { "" };
            prop_assert_eq!(
                answer.challenge.unwrap(),
                format!("Bearer {realm}error=\"invalid_request\", error_description=\"more than one Authorization header\"")
            );
        }
    }

    /// A token over the limit is refused as too long before anything else looks at it,
    /// whatever its characters.
    #[test]
    fn tokens_over_the_limit_are_too_long(
        token in header_bytes(SMALL_MAX + 1..SMALL_MAX + 600),
        big in header_bytes(DEFAULT_MAX + 1..DEFAULT_MAX + 64),
        upper in proptest::collection::vec(any::<bool>(), 6),
    ) {
        for (sessions, token, realm) in [
            (&world().cookie, token, "realm=\"props\", "),
            (&world().plain, big, ""),
        ] {
            // The token starts after the run of spaces.
            let mut token = token;
            token[0] = b'x';
            let mut value = format!("{} ", scheme(&upper)).into_bytes();
            value.extend_from_slice(&token);
            let answer = send(sessions, &[(AUTHORIZATION, &value)]);
            prop_assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
            prop_assert_eq!(
                answer.challenge.as_deref().unwrap(),
                format!("Bearer {realm}error=\"invalid_token\", error_description=\"token too long\"")
            );
            assert_refusal(&answer, &token)?;
            let text = String::from_utf8_lossy(&token);
            prop_assert!(matches!(sessions.verify_without_session_check(&text), Err(TokenError::TooLong)));
        }
    }

    /// Another scheme is no bearer credential: 401 with the bare challenge (RFC 6750 §3.1).
    #[test]
    fn other_schemes_get_the_bare_challenge(
        scheme in "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}",
        rest in header_bytes(0..40),
    ) {
        prop_assume!(!scheme.eq_ignore_ascii_case("bearer"));
        let mut value = format!("{scheme} ").into_bytes();
        value.extend_from_slice(&rest);
        let answer = send(&world().plain, &[(AUTHORIZATION, &value)]);
        prop_assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        prop_assert_eq!(answer.challenge.as_deref(), Some("Bearer"));
        assert_refusal(&answer, &rest)?;
    }

    /// With a cookie name configured the token may come in that cookie, among any others;
    /// never in the header and the cookie at once, nor in two cookies.
    #[test]
    fn the_cookie_carries_the_token_only_alone(
        token in live_token(),
        before in proptest::collection::vec(("[a-z]{1,6}", "[A-Za-z0-9]{0,12}"), 0..4),
        after in proptest::collection::vec(("[a-z]{1,6}", "[A-Za-z0-9]{0,12}"), 0..4),
        quoted in any::<bool>(),
    ) {
        let world = world();
        let (token, user) = &world.live[token];
        let pairs = |pairs: &[(String, String)]| -> Vec<String> {
            pairs.iter().filter(|(name, _)| name != "at").map(|(n, v)| format!("{n}={v}")).collect()
        };
        let ours = if quoted { format!("at=\"{token}\"") } else { format!("at={token}") };
        let cookie = [pairs(&before), vec![ours.clone()], pairs(&after)].concat().join("; ");

        let answer = send(&world.cookie, &[(COOKIE, cookie.as_bytes())]);
        prop_assert_eq!(answer.status, StatusCode::OK, "{:?} for {:?}", answer, cookie);
        prop_assert_eq!(&answer.body, user);

        // Not configured: the cookie is no credential.
        let answer = send(&world.plain, &[(COOKIE, cookie.as_bytes())]);
        prop_assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        prop_assert_eq!(answer.challenge.as_deref(), Some("Bearer"));

        let both = send(&world.cookie, &[(COOKIE, cookie.as_bytes()), (AUTHORIZATION, &bearer(token))]);
        prop_assert_eq!(both.status, StatusCode::BAD_REQUEST);
        assert_refusal(&both, token.as_bytes())?;

        let twice = send(&world.cookie, &[(COOKIE, cookie.as_bytes()), (COOKIE, ours.as_bytes())]);
        prop_assert_eq!(twice.status, StatusCode::BAD_REQUEST);
        assert_refusal(&twice, token.as_bytes())?;
    }

    /// One character changed, inserted or removed anywhere in a valid token: refused.
    #[test]
    fn a_token_changed_by_one_character_is_refused(
        token in live_token(),
        at in any::<prop::sample::Index>(),
        by in prop::sample::select(B64TOKEN.to_vec()),
        how in 0..3usize,
    ) {
        let (token, _) = &world().live[token];
        let mut changed = token.clone().into_bytes();
        let at = at.index(changed.len());
        match how {
            0 => {
                prop_assume!(changed[at] != by);
                changed[at] = by;
            }
            1 => changed.insert(at, by),
            _ => {
                changed.remove(at);
            }
        }
        let answer = send(&world().plain, &[(AUTHORIZATION, &bearer(std::str::from_utf8(&changed).unwrap()))]);
        prop_assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{:?}", answer);
        assert_refusal(&answer, &changed)?;
    }
}

/// Base64 malleability: the same bytes written another way (non-zero trailing bits, padding,
/// the standard alphabet) in any segment are another token, and refused. The signature is
/// the one segment whose bytes are not themselves signed; its decoder must refuse every
/// non-canonical spelling, or one signature would have several valid spellings.
#[test]
fn non_canonical_spellings_of_a_valid_token_are_refused() {
    let world = world();
    let mut tried = 0;
    for (token, _) in &world.live {
        let segments: Vec<&str> = token.split('.').collect();
        assert_eq!(segments.len(), 3);
        for (index, segment) in segments.iter().enumerate() {
            let bytes = URL_SAFE_NO_PAD.decode(segment).unwrap();
            let mut spellings = vec![
                URL_SAFE.encode(&bytes),
                STANDARD.encode(&bytes),
                STANDARD_NO_PAD.encode(&bytes),
                format!("{segment}="),
                format!("{segment}=="),
            ];
            // The bits of the last character that encode nothing.
            let unused = (6 * segment.len() - 8 * bytes.len()) as u8;
            let last = segment.as_bytes()[segment.len() - 1];
            let value = URL_SAFE_ALPHABET.iter().position(|&c| c == last).unwrap() as u8;
            for extra in 1..(1u8 << unused) {
                let mut spelled = segment.as_bytes().to_vec();
                *spelled.last_mut().unwrap() = URL_SAFE_ALPHABET[usize::from(value ^ extra)];
                spellings.push(String::from_utf8(spelled).unwrap());
            }
            for spelling in spellings {
                if spelling == *segment {
                    continue;
                }
                let mut parts = segments.clone();
                parts[index] = &spelling;
                let other = parts.join(".");
                let answer = send(&world.plain, &[(AUTHORIZATION, &bearer(&other))]);
                // `=` before the last segment is no b64token (400); any other spelling
                // reaches the verifier (401).
                assert!(
                    matches!(answer.status.as_u16(), 400 | 401),
                    "segment {index} spelled {spelling:?}: {answer:?}"
                );
                assert!(
                    world.plain.verify_without_session_check(&other).is_err(),
                    "{other}"
                );
                tried += 1;
            }
        }
    }
    assert!(tried > 3 * 3 * 5, "only {tried} spellings tried");
}

const URL_SAFE_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A signed token whose session was revoked is refused like any other invalid token.
#[test]
fn a_revoked_session_is_refused() {
    let world = world();
    let answer = send(&world.plain, &[(AUTHORIZATION, &bearer(&world.revoked))]);
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge.as_deref(),
        Some(r#"Bearer error="invalid_token", error_description="revoked""#)
    );
}

// ===== the store contract =====

fn op() -> impl Strategy<Value = Op> {
    // Fewer users and ids than the model knows, so that operations meet the same sessions
    // often: a rotation must name a live session, its generation and its digest.
    let user = 0..2u8;
    let id = 0..3u8;
    let small = 0..3u64;
    prop_oneof![
        4 => (
            user.clone(),
            id.clone(),
            prop_oneof![3 => Just(0u64), 1 => 0..5u64],
            prop_oneof![2 => Just(0u64), 1 => 0..3u64, 1 => 0..3_000_000u64],
            0..30u64,
            proptest::option::of((0..4u32, any::<bool>())),
            0..2u8,
            any::<bool>(),
        )
            .prop_map(
                |(user, id, backdate, auth_lag, ttl, limit, digest, metadata)| Op::Create {
                    user,
                    id,
                    backdate,
                    auth_lag,
                    ttl,
                    limit,
                    digest,
                    metadata,
                }
            ),
        4 => (user.clone(), id.clone(), 0..6u64, small.clone()).prop_map(
            |(user, id, touch_interval, lag)| Op::IsActive {
                user,
                id,
                touch_interval,
                lag,
            }
        ),
        6 => (
            user.clone(),
            id.clone(),
            0..2u64,
            0..2u8,
            0..3u8,
            0..30u64,
            0..4u64,
            small.clone(),
        )
            .prop_map(
                |(user, id, generation, digest, next_digest, ttl, grace, lag)| Op::Rotate {
                    user,
                    id,
                    generation,
                    digest,
                    next_digest,
                    ttl,
                    grace,
                    lag,
                }
            ),
        2 => Just(Op::Repeat),
        2 => (user.clone(), id).prop_map(|(user, id)| Op::Revoke { user, id }),
        1 => user.clone().prop_map(|user| Op::RevokeAll { user }),
        1 => (
            user.clone(),
            prop_oneof![-3..3i64, -5_000_000..5_000_000i64],
            prop_oneof![Just(0u64), 0..10u64, 0..100u64],
        )
            .prop_map(|(user, offset, keep)| Op::RevokeAuthenticatedBefore { user, offset, keep }),
        1 => (user, small, prop_oneof![0..4usize, Just(usize::MAX)])
            .prop_map(|(user, lag, max)| Op::List { user, lag, max }),
        1 => Just(Op::Sweep),
        3 => prop_oneof![
            3 => Just(0u64),
            3 => 0..2_000u64,
            3 => 0..3_000_000u64,
            1 => 0..30_000_000u64,
        ]
        .prop_map(|micros| Op::Advance { micros }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..config() })]

    /// Every answer of `MemoryStore`, and every user's live sessions after each step, are
    /// those of the model.
    #[test]
    fn the_memory_store_answers_as_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut harness = Harness::new();
        if let Err(difference) = harness.run(&ops) {
            return Err(TestCaseError::fail(difference));
        }
    }
}

// ===== the contract as `Sessions` uses it =====

/// Sessions on a fresh memory store, on a clock of their own standing at `NOW`.
fn fresh(limit: Option<u32>) -> (Sessions<MemoryStore>, ManualClock) {
    let clock = ManualClock::new(NOW);
    let builder =
        Sessions::builder(Keys::hs256(SECRET).unwrap(), MemoryStore::new()).clock(clock.clone());
    let builder = match limit {
        Some(max) => builder.session_limit(max, WhenFull::EndOldest),
        None => builder.no_session_limit(),
    };
    (builder.build().unwrap(), clock)
}

proptest! {
    #![proptest_config(config())]

    /// `max + extra` logins of one user within one second (the clock moving by a few
    /// microseconds or not at all): exactly the `max` last logged in survive, and the
    /// tokens of the others are refused as revoked.
    #[test]
    fn the_oldest_session_is_the_first_created(
        max in 1..12u32,
        extra in 1..4u32,
        steps in proptest::collection::vec(prop_oneof![Just(0u64), 0..50u64], 16),
    ) {
        let (sessions, clock) = fresh(Some(max));
        let mut issued = Vec::new();
        for n in 0..(max + extra) as usize {
            clock.advance(Duration::from_micros(steps[n % steps.len()]));
            issued.push(ready(sessions.issue(Login::new("alice"))).unwrap());
        }
        prop_assert_eq!(clock.now(), NOW, "all within one second");
        let listed: Vec<SessionId> = ready(sessions.list("alice"))
            .unwrap()
            .iter()
            .map(|session| session.id)
            .collect();
        let newest: Vec<SessionId> =
            issued[extra as usize..].iter().map(|issued| issued.session_id).collect();
        prop_assert_eq!(listed, newest);
        for (n, issued) in issued.iter().enumerate() {
            let accepted = ready(sessions.authenticate_token(&issued.access_token));
            if n < extra as usize {
                prop_assert!(
                    matches!(accepted, Err(AuthError::InvalidToken(TokenError::Revoked))),
                    "login {n} survived: {accepted:?}"
                );
            } else {
                prop_assert!(accepted.is_ok(), "login {n} refused: {accepted:?}");
            }
        }
    }

    /// `revoke_issued_before(T)` among logins in flight, each authenticated a few
    /// microseconds before or after `T` and stored before or after the revocation: no
    /// session authenticated before `T` is live afterwards, whatever the order; the others
    /// all are.
    #[test]
    fn revoking_by_time_is_a_barrier(
        logins in proptest::collection::vec((-3..3i64, any::<bool>()), 1..10),
    ) {
        let (sessions, clock) = fresh(None);
        let barrier = clock.time();
        // The logins are stored a second later; only their authentication is near `T`.
        clock.advance(Duration::from_secs(1));
        let at = |offset: i64| {
            if offset < 0 {
                barrier - Duration::from_micros(offset.unsigned_abs())
            } else {
                barrier + Duration::from_micros(offset.unsigned_abs())
            }
        };
        let issue = |offset: i64| {
            ready(sessions.issue(Login::new("alice").authenticated_at(at(offset))))
        };
        let mut before = Vec::new();
        for &(offset, _) in logins.iter().filter(|(_, early)| *early) {
            before.push((offset, issue(offset).unwrap()));
        }
        ready(sessions.revoke_issued_before("alice", barrier)).unwrap();
        let mut live = 0;
        for (offset, issued) in &before {
            let accepted = ready(sessions.authenticate_token(&issued.access_token));
            prop_assert_eq!(accepted.is_ok(), *offset >= 0, "{}: {:?}", offset, accepted);
            live += usize::from(*offset >= 0);
        }
        for &(offset, _) in logins.iter().filter(|(_, early)| !*early) {
            match issue(offset) {
                Ok(issued) => {
                    prop_assert!(offset >= 0, "authenticated {offset}us before the mark, yet created");
                    prop_assert!(ready(sessions.authenticate_token(&issued.access_token)).is_ok());
                    live += 1;
                }
                Err(error) => {
                    prop_assert!(offset < 0, "authenticated {offset}us after the mark, refused: {error:?}");
                    prop_assert!(matches!(error, IssueError::AuthenticatedBeforeRevocation), "{error:?}");
                }
            }
        }
        prop_assert_eq!(ready(sessions.list("alice")).unwrap().len(), live);
    }
}

/// A listing stops at the session limit, keeping the newest: a user cannot make one call
/// read more than that.
#[test]
fn a_listing_is_bounded_by_the_limit() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(NOW);
    let keys = || Keys::hs256(SECRET).unwrap();
    let unlimited = Sessions::builder(keys(), store.clone())
        .clock(clock.clone())
        .no_session_limit()
        .build()
        .unwrap();
    let limited = Sessions::builder(keys(), store)
        .clock(clock)
        .session_limit(3, WhenFull::RefuseNew)
        .build()
        .unwrap();
    let ids: Vec<SessionId> = (0..5)
        .map(|_| {
            ready(unlimited.issue(Login::new("alice")))
                .unwrap()
                .session_id
        })
        .collect();
    let listed = |sessions: &Sessions<MemoryStore>| -> Vec<SessionId> {
        ready(sessions.list("alice"))
            .unwrap()
            .iter()
            .map(|session| session.id)
            .collect()
    };
    assert_eq!(listed(&unlimited), ids);
    assert_eq!(listed(&limited), ids[2..]);
    assert!(matches!(
        ready(limited.issue(Login::new("alice"))),
        Err(IssueError::TooManySessions)
    ));
}
