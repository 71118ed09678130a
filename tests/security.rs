//! The security checklist, one named test per item: RFC 8725 (JWT best current practices),
//! RFC 6750 (bearer tokens) and RFC 7235 (HTTP authentication). The README's table points
//! here.

mod refusals;

use std::convert::Infallible;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};
use tower_jwt_auth::store::{MemoryStore, StoreError};
use tower_jwt_auth::{
    Algorithm, AuthError, ConfigError, Keys, Login, ManualClock, Sessions, SessionsBuilder,
    TokenError,
};

const SECRET: &[u8] = b"the security checklist's secret!";
const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/rsa_public.pem");
const NOW: u64 = 1_800_000_000;

fn builder(keys: Keys) -> SessionsBuilder<MemoryStore> {
    Sessions::builder(keys, MemoryStore::new()).clock(ManualClock::new(NOW))
}

fn hs256() -> Sessions<MemoryStore> {
    builder(Keys::hs256(SECRET).unwrap()).build().unwrap()
}

/// Status and `WWW-Authenticate` of a request with these `Authorization` values.
async fn answer(sessions: &Sessions<MemoryStore>, values: &[&[u8]]) -> (StatusCode, String) {
    let service =
        ServiceBuilder::new()
            .layer(sessions.layer())
            .service_fn(|_: Request<()>| async {
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
            });
    let mut request = Request::new(());
    for value in values {
        request.headers_mut().append(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    let response = service.oneshot(request).await.unwrap();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status(), challenge)
}

async fn refusal(sessions: &Sessions<MemoryStore>, token: &str) -> TokenError {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    match sessions.authenticate(&headers).await {
        Err(AuthError::InvalidToken(error)) => error,
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

/// The claims of a live session of `sessions`, for re-signing in other ways.
async fn live_claims(sessions: &Sessions<MemoryStore>) -> Value {
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    let claims = sessions
        .authenticate_token(&issued.access_token)
        .await
        .unwrap();
    serde_json::to_value(claims).unwrap()
}

fn typed(alg: Algorithm) -> Header {
    Header {
        typ: Some("at+jwt".into()),
        ..Header::new(alg)
    }
}

/// `claims` signed as an access token with `alg` and `key`.
fn signed(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&typed(alg), claims, key).unwrap()
}

// ===== RFC 8725 §3.1: algorithm verification =====

#[tokio::test]
async fn rfc8725_3_1_the_algorithm_comes_from_configuration_not_the_token() {
    let sessions = hs256();
    let claims = live_claims(&sessions).await;
    let hs512 = signed(Algorithm::HS512, &EncodingKey::from_secret(SECRET), &claims);
    assert!(matches!(
        refusal(&sessions, &hs512).await,
        TokenError::AlgorithmNotAllowed
    ));
}

#[tokio::test]
async fn rfc8725_3_1_alg_none_is_rejected() {
    let sessions = hs256();
    let claims = live_claims(&sessions).await;
    for alg in ["none", "None", "NONE"] {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "at+jwt"}).to_string());
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            let (status, _) = answer(&sessions, &[format!("Bearer {token}").as_bytes()]).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{alg}");
        }
    }
}

#[tokio::test]
async fn rfc8725_3_1_an_hs256_token_keyed_with_the_rsa_public_key_is_rejected() {
    // Algorithm confusion: the attacker knows the public key and uses it as an HMAC secret.
    let sessions = builder(Keys::rs256_pem(RSA_PRIVATE, RSA_PUBLIC).unwrap())
        .build()
        .unwrap();
    let claims = live_claims(&sessions).await;
    let forged = signed(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_PUBLIC),
        &claims,
    );
    assert!(matches!(
        refusal(&sessions, &forged).await,
        TokenError::AlgorithmNotAllowed
    ));
}

#[tokio::test]
async fn rfc8725_3_1_an_rs256_token_against_an_hs256_key_is_rejected() {
    let sessions = hs256();
    let claims = live_claims(&sessions).await;
    let rs256 = signed(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
        &claims,
    );
    assert!(matches!(
        refusal(&sessions, &rs256).await,
        TokenError::AlgorithmNotAllowed
    ));
}

#[tokio::test]
async fn rfc8725_3_1_a_key_is_bound_to_one_algorithm() {
    // The same RSA key pair configured for PS256 refuses RS256 signatures it could verify.
    let sessions = builder(Keys::ps256_pem(RSA_PRIVATE, RSA_PUBLIC).unwrap())
        .build()
        .unwrap();
    let claims = live_claims(&sessions).await;
    let rs256 = signed(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
        &claims,
    );
    assert!(matches!(
        refusal(&sessions, &rs256).await,
        TokenError::AlgorithmNotAllowed
    ));
}

// ===== RFC 8725 §3.10: do not trust received claims (kid, jku, jwk) =====

#[tokio::test]
async fn rfc8725_3_10_kid_is_looked_up_only_among_the_configured_keys() {
    let clock = ManualClock::new(NOW);
    let old = Sessions::builder(
        Keys::hs256(b"the previous key, 32 bytes long!")
            .unwrap()
            .with_kid("2025"),
        MemoryStore::new(),
    )
    .clock(clock.clone())
    .build()
    .unwrap();
    let old_token = old.issue(Login::new("alice")).await.unwrap();

    // The new signing key, still accepting the previous one by its kid, on the same store.
    let rotated = Sessions::builder(
        Keys::hs256(SECRET).unwrap().with_kid("2026"),
        old.store().clone(),
    )
    .clock(clock)
    .verify_also(
        Keys::hs256(b"the previous key, 32 bytes long!")
            .unwrap()
            .with_kid("2025"),
    )
    .build()
    .unwrap();
    let new_token = rotated.issue(Login::new("alice")).await.unwrap();
    for token in [&old_token.access_token, &new_token.access_token] {
        let (status, _) = answer(&rotated, &[format!("Bearer {token}").as_bytes()]).await;
        assert_eq!(status, StatusCode::OK);
    }

    // A kid that names no configured key is refused, whatever the token says of itself.
    let claims = rotated
        .authenticate_token(&new_token.access_token)
        .await
        .unwrap();
    let claims = serde_json::to_value(claims).unwrap();
    for (kid, secret) in [
        ("2027", SECRET),
        ("../../etc/passwd", SECRET),
        ("2025", SECRET),
    ] {
        let header = Header {
            kid: Some(kid.into()),
            ..typed(Algorithm::HS256)
        };
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
        let error = refusal(&rotated, &token).await;
        if kid == "2025" {
            // The right kid, the wrong key: the signature fails.
            assert!(
                matches!(error, TokenError::InvalidSignature),
                "{kid}: {error:?}"
            );
        } else {
            assert!(matches!(error, TokenError::UnknownKey), "{kid}: {error:?}");
        }
    }

    // Keys beside the signing one need a kid, and kids are unique.
    let without_kid = builder(Keys::hs256(SECRET).unwrap())
        .verify_also(Keys::hs256(SECRET).unwrap())
        .build();
    assert!(matches!(without_kid, Err(ConfigError::KeyWithoutKid)));
    let duplicate = builder(Keys::hs256(SECRET).unwrap().with_kid("a"))
        .verify_also(Keys::hs256(SECRET).unwrap().with_kid("a"))
        .build();
    assert!(matches!(duplicate, Err(ConfigError::DuplicateKid(_))));
}

#[tokio::test]
async fn rfc8725_3_10_a_key_embedded_in_the_token_is_never_used() {
    // A token carrying its own key (jwk / jku) and signed with it is still checked with the
    // configured key only.
    let sessions = hs256();
    let claims = live_claims(&sessions).await;
    let attacker = b"an attacker's own key, 32 bytes!";
    let header = URL_SAFE_NO_PAD.encode(
        json!({
            "alg": "HS256", "typ": "at+jwt",
            "jku": "https://attacker.example/keys",
            "jwk": {"kty": "oct", "k": URL_SAFE_NO_PAD.encode(attacker)},
        })
        .to_string(),
    );
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let message = format!("{header}.{payload}");
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(attacker),
        Algorithm::HS256,
    )
    .unwrap();
    let error = refusal(&sessions, &format!("{message}.{signature}")).await;
    assert!(matches!(error, TokenError::InvalidSignature), "{error:?}");
}

#[tokio::test]
async fn rfc7515_4_1_11_an_unknown_critical_header_is_rejected() {
    let sessions = hs256();
    let claims = live_claims(&sessions).await;
    let header = Header {
        crit: Some(vec!["b64".into()]),
        ..typed(Algorithm::HS256)
    };
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap();
    assert!(matches!(
        refusal(&sessions, &token).await,
        TokenError::UnsupportedCritical
    ));
}

// ===== RFC 8725 §3.11: explicit typing =====

#[tokio::test]
async fn rfc8725_3_11_typ_keeps_token_kinds_apart() {
    let sessions = hs256();
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    let claims = live_claims(&sessions).await;
    // A JWT of another kind signed with the same key (an ID token, say), and the refresh
    // token, are both refused as access tokens.
    let id_token = jsonwebtoken::encode(
        &Header {
            typ: Some("JWT".into()),
            ..Header::new(Algorithm::HS256)
        },
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let untyped = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    for token in [&id_token, &untyped, &issued.refresh_token] {
        assert!(matches!(
            refusal(&sessions, token).await,
            TokenError::WrongType
        ));
    }
    // And the access token is refused as a refresh token.
    assert!(sessions.refresh(&issued.access_token).await.is_err());
}

// ===== RFC 8725 §3.8, §3.9: issuer and audience =====

#[tokio::test]
async fn rfc8725_3_8_and_3_9_issuer_and_audience_are_checked() {
    let sessions = builder(Keys::hs256(SECRET).unwrap())
        .issuer("https://auth.test")
        .audience("api")
        .build()
        .unwrap();
    let mut claims = live_claims(&sessions).await;
    claims["iss"] = json!("https://auth.test");
    claims["aud"] = json!("api");
    let sign = |claims: &Value| signed(Algorithm::HS256, &EncodingKey::from_secret(SECRET), claims);
    assert!(sessions.authenticate(&bearer(&sign(&claims))).await.is_ok());
    let cases: [Bent; 5] = [
        ("iss", json!("https://evil.test"), |e| {
            matches!(e, TokenError::WrongIssuer)
        }),
        ("aud", json!("other-api"), |e| {
            matches!(e, TokenError::WrongAudience)
        }),
        ("aud", json!(["other-api", "more"]), |e| {
            matches!(e, TokenError::WrongAudience)
        }),
        ("iss", Value::Null, |e| {
            matches!(e, TokenError::MissingClaim(_) | TokenError::WrongIssuer)
        }),
        ("aud", Value::Null, |e| {
            matches!(e, TokenError::MissingClaim(_) | TokenError::WrongAudience)
        }),
    ];
    for (claim, value, expected) in cases {
        let mut bent = claims.clone();
        if value.is_null() {
            bent.as_object_mut().unwrap().remove(claim);
        } else {
            bent[claim] = value.clone();
        }
        let error = refusal(&sessions, &sign(&bent)).await;
        assert!(expected(&error), "{claim} = {value}: {error:?}");
    }
    // An audience list naming this API is fine.
    claims["aud"] = json!(["other-api", "api"]);
    assert!(sessions.authenticate(&bearer(&sign(&claims))).await.is_ok());
}

/// A claim, the value it is bent to (null: removed), and the refusal expected.
type Bent = (&'static str, Value, fn(&TokenError) -> bool);

fn bearer(token: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    headers
}

// ===== Time: exp required, leeway bounded =====

#[tokio::test]
async fn exp_is_required_and_leeway_is_bounded_and_applied() {
    assert!(matches!(
        builder(Keys::hs256(SECRET).unwrap())
            .leeway(Duration::from_secs(301))
            .build(),
        Err(ConfigError::LeewayTooLarge(_))
    ));

    let clock = ManualClock::new(NOW);
    let sessions = Sessions::builder(Keys::hs256(SECRET).unwrap(), MemoryStore::new())
        .clock(clock.clone())
        .leeway(Duration::from_secs(30))
        .session_lifetime(Duration::from_secs(3600))
        .access_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    clock.advance(Duration::from_secs(60 + 29));
    assert!(
        sessions
            .authenticate(&bearer(&issued.access_token))
            .await
            .is_ok()
    );
    clock.advance(Duration::from_secs(1));
    assert!(matches!(
        refusal(&sessions, &issued.access_token).await,
        TokenError::Expired
    ));

    let mut claims = live_claims(&sessions).await;
    claims.as_object_mut().unwrap().remove("exp");
    let token = signed(Algorithm::HS256, &EncodingKey::from_secret(SECRET), &claims);
    assert!(matches!(refusal(&sessions, &token).await, TokenError::MissingClaim(c) if c == "exp"));
}

// ===== RFC 6750 §3: the exact challenges =====

#[tokio::test]
async fn rfc6750_3_challenges_are_exact_with_realm_first() {
    let sessions = builder(Keys::hs256(SECRET).unwrap())
        .realm("example")
        .build()
        .unwrap();
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    let valid = format!("Bearer {}", issued.access_token);
    let cases: [(&[&[u8]], StatusCode, &str); 6] = [
        (&[], StatusCode::UNAUTHORIZED, r#"Bearer realm="example""#),
        (
            &[b"Basic YWxpY2U6d29uZGVybGFuZA=="],
            StatusCode::UNAUTHORIZED,
            r#"Bearer realm="example""#,
        ),
        (
            &[b"Bearer"],
            StatusCode::BAD_REQUEST,
            r#"Bearer realm="example", error="invalid_request", error_description="malformed Authorization header""#,
        ),
        (
            &[valid.as_bytes(), valid.as_bytes()],
            StatusCode::BAD_REQUEST,
            r#"Bearer realm="example", error="invalid_request", error_description="more than one Authorization header""#,
        ),
        (
            &[b"Bearer abc.def.ghi"],
            StatusCode::UNAUTHORIZED,
            r#"Bearer realm="example", error="invalid_token", error_description="malformed token""#,
        ),
        (&[valid.as_bytes()], StatusCode::OK, ""),
    ];
    for (values, status, challenge) in cases {
        assert_eq!(
            answer(&sessions, values).await,
            (status, challenge.to_owned())
        );
    }
    // Without a realm there is no realm attribute at all.
    let (_, challenge) = answer(&hs256(), &[b"Bearer abc.def.ghi"]).await;
    assert_eq!(
        challenge,
        r#"Bearer error="invalid_token", error_description="malformed token""#
    );
}

#[test]
fn rfc6750_3_error_descriptions_use_only_the_allowed_characters() {
    // error_description = 1*( %x20-21 / %x23-5B / %x5D-7E )
    let mut errors = refusals::every_refusal();
    errors.extend([
        TokenError::RefreshRetired.into(),
        TokenError::RefreshReused.into(),
        AuthError::StoreUnavailable(StoreError::Timeout),
    ]);
    for error in &errors {
        let description = error.description();
        assert!(!description.is_empty());
        assert!(
            description
                .bytes()
                .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
            "{description:?}"
        );
    }
}

#[tokio::test]
async fn rfc6750_2_a_token_in_two_places_is_an_invalid_request() {
    let sessions = builder(Keys::hs256(SECRET).unwrap())
        .cookie("access_token")
        .build()
        .unwrap();
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    let mut headers = bearer(&issued.access_token);
    headers.insert(
        header::COOKIE,
        HeaderValue::try_from(format!("access_token={}", issued.access_token)).unwrap(),
    );
    match sessions.authenticate(&headers).await {
        Err(error @ AuthError::InvalidRequest(_)) => {
            assert_eq!(error.status(), StatusCode::BAD_REQUEST)
        }
        other => panic!("expected invalid_request, got {other:?}"),
    }
}

// ===== RFC 7235 §2.1: the scheme is case-insensitive =====

#[tokio::test]
async fn rfc7235_2_1_the_scheme_is_case_insensitive() {
    let sessions = hs256();
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {}", issued.access_token);
        let (status, _) = answer(&sessions, &[value.as_bytes()]).await;
        assert_eq!(status, StatusCode::OK, "{scheme}");
    }
}
