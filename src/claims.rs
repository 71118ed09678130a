//! The claims every access token carries, and the session id that ties a token to its
//! allowlist entry.
//!
//! [`Claims<C>`] holds the registered claims this crate relies on (`sub`, `sid`, `jti`, `iat`,
//! `exp`, optionally `nbf`) and your own typed claims `C`, flattened beside them in the token.
//! After a request passed [`JwtAuth`](crate::JwtAuth), its verified `Claims<C>` sit in the
//! request extensions.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use tower_jwt_auth::Claims;
//!
//! #[derive(Clone, Debug, Serialize, Deserialize)]
//! struct Role {
//!     role: String,
//! }
//!
//! let json = r#"{"sub":"alice","sid":"AAAAAAAAAAAAAAAAAAAAAA","jti":"x","iat":1,"exp":2,"role":"admin"}"#;
//! let claims: Claims<Role> = serde_json::from_str(json)?;
//! assert_eq!(claims.sub, "alice");
//! assert_eq!(claims.custom.role, "admin");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// The verified claims of an access token, with your own claims `C` beside them.
///
/// See the [module docs](crate::claims).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims<C = ()> {
    /// The user the session belongs to.
    pub sub: String,
    /// The session this token belongs to: its key in the allowlist.
    pub sid: SessionId,
    /// This token's own unique id.
    pub jti: String,
    /// When the token was issued (seconds since the Unix epoch).
    pub iat: u64,
    /// When the token expires (seconds since the Unix epoch).
    pub exp: u64,
    /// Before this time the token is not valid, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// What the token grants: space-separated scope names (RFC 9068 §2.2.3), when the login
    /// gave any ([`Login::scope`](crate::Login::scope)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Your own claims, flattened into the token's payload.
    #[serde(flatten)]
    pub custom: C,
}

impl<C> Claims<C> {
    /// Whether the token grants `scope` (one of the space-separated names of its `scope`).
    ///
    /// ```
    /// # let json = r#"{"sub":"bob","sid":"AAAAAAAAAAAAAAAAAAAAAA","jti":"x","iat":1,"exp":2,"scope":"profile admin"}"#;
    /// let claims: tower_jwt_auth::Claims = serde_json::from_str(json)?;
    /// assert!(claims.has_scope("admin"));
    /// assert!(!claims.has_scope("adm"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|granted| granted == scope)
    }

    /// The scope names the token grants.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
    }
}

/// The random 128-bit id of a session, written as 22 characters of unpadded base64url.
///
/// ```
/// use tower_jwt_auth::SessionId;
///
/// let id: SessionId = "AAECAwQFBgcICQoLDA0ODw".parse()?;
/// assert_eq!(id.as_bytes()[15], 15);
/// assert_eq!(id.to_string(), "AAECAwQFBgcICQoLDA0ODw");
/// # Ok::<(), tower_jwt_auth::InvalidSessionId>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 16]);

/// The text was not a session id: 22 characters of canonical unpadded base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a session id (22 characters of unpadded base64url)")]
pub struct InvalidSessionId;

const ENCODED_LEN: usize = 22;

impl SessionId {
    /// A session id from its 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Its 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A fresh id from the operating system's random number generator.
    pub(crate) fn random() -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut bytes = [0; 16];
        aws_lc_rs::rand::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0; ENCODED_LEN];
        // 16 bytes always encode to exactly 22 characters.
        let written = URL_SAFE_NO_PAD
            .encode_slice(self.0, &mut out)
            .unwrap_or_default();
        debug_assert_eq!(written, ENCODED_LEN);
        out
    }
}

impl FromStr for SessionId {
    type Err = InvalidSessionId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != ENCODED_LEN {
            return Err(InvalidSessionId);
        }
        // The decoder wants room for its estimate (18 bytes for 22 characters).
        let mut out = [0; 18];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut out) {
            Ok(16) => {
                let mut bytes = [0; 16];
                bytes.copy_from_slice(&out[..16]);
                Ok(Self(bytes))
            }
            _ => Err(InvalidSessionId),
        }
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = self.encode();
        // base64url output is ASCII.
        f.write_str(std::str::from_utf8(&encoded).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let encoded = self.encode();
        let text = std::str::from_utf8(&encoded).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl de::Visitor<'_> for Visitor {
            type Value = SessionId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a session id: 22 characters of unpadded base64url")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<SessionId, E> {
                text.parse()
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(text), &self))
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

/// A random 128-bit token id (`jti`), unpadded base64url.
pub(crate) fn random_token_id() -> Result<String, aws_lc_rs::error::Unspecified> {
    SessionId::random().map(|id| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_round_trips_through_text_and_json() {
        let id = SessionId::random().unwrap();
        let text = id.to_string();
        assert_eq!(text.len(), 22);
        assert_eq!(text.parse::<SessionId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<SessionId>(&json).unwrap(), id);
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(SessionId::random().unwrap(), SessionId::random().unwrap());
    }

    #[test]
    fn malformed_session_ids_are_refused() {
        for bad in [
            "",
            "short",
            "AAECAwQFBgcICQoLDA0OD",   // 21 characters
            "AAECAwQFBgcICQoLDA0ODwA", // 23 characters
            "AAECAwQFBgcICQoLDA0OD+",  // not base64url
            "AAECAwQFBgcICQoLDA0OD1",  // non-zero trailing bits: not canonical
        ] {
            assert_eq!(bad.parse::<SessionId>(), Err(InvalidSessionId), "{bad:?}");
        }
        assert!(serde_json::from_str::<SessionId>("42").is_err());
    }

    #[test]
    fn custom_claims_sit_beside_the_registered_ones() {
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        struct Role {
            role: String,
        }
        let claims = Claims {
            sub: "alice".into(),
            sid: SessionId::from_bytes([7; 16]),
            jti: "j".into(),
            iat: 1,
            exp: 2,
            nbf: None,
            scope: None,
            custom: Role {
                role: "admin".into(),
            },
        };
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["role"], "admin");
        assert!(json.get("nbf").is_none());
        assert_eq!(
            serde_json::from_value::<Claims<Role>>(json).unwrap(),
            claims
        );
    }
}
