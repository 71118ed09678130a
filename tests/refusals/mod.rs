//! Every refusal the layer can answer a request with, listed once for the tests and the fuzz
//! target that check refusals against it (`#[path]` brings it into the fuzz crate).

use tower_jwt_auth::{AuthError, RequestError, TokenError};

/// Every refusal of the request path on a store that answers (the 503s come on top).
pub fn every_refusal() -> Vec<AuthError> {
    vec![
        AuthError::Missing,
        RequestError::MultipleHeaders.into(),
        RequestError::MultipleCredentials.into(),
        RequestError::MalformedHeader.into(),
        RequestError::MalformedCookie.into(),
        TokenError::TooLong.into(),
        TokenError::Malformed(None).into(),
        TokenError::AlgorithmNotAllowed.into(),
        TokenError::InvalidSignature.into(),
        TokenError::Expired.into(),
        TokenError::NotYetValid.into(),
        TokenError::WrongIssuer.into(),
        TokenError::WrongAudience.into(),
        TokenError::MissingClaim("exp".into()).into(),
        TokenError::WrongType.into(),
        TokenError::UnsupportedCritical.into(),
        TokenError::Revoked.into(),
        TokenError::UnknownUser.into(),
        TokenError::UnknownKey.into(),
    ]
}
