//! Signing and verifying keys, each bound to exactly one algorithm.
//!
//! The algorithm a token is checked with comes from here, never from the token's own
//! header: a token whose `alg` differs is refused (RFC 8725 §3.1), and so is `alg: none`.
//!
//! ```
//! use tower_jwt_auth::{Algorithm, KeyError, Keys};
//!
//! let keys = Keys::hs256(b"a secret of at least thirty-two bytes!")?;
//! assert_eq!(keys.algorithm(), Algorithm::HS256);
//!
//! // Shorter than the hash is a configuration error, not a weak key.
//! assert!(matches!(Keys::hs256(b"short"), Err(KeyError::SecretTooShort { .. })));
//! # Ok::<(), KeyError>(())
//! ```
//!
//! Asymmetric keys come from PEM; a server that only verifies (a gateway) needs only the
//! public half:
//!
//! ```no_run
//! use tower_jwt_auth::{Algorithm, Keys};
//!
//! let private = std::fs::read("private.pem")?;
//! let public = std::fs::read("public.pem")?;
//! let issuer = Keys::from_pem(Algorithm::ES256, &private, &public)?;
//! let gateway = Keys::verify_only_pem(Algorithm::ES256, &public)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};

/// A signing key (optional: verifying-only servers have none) and the verifying key, pinned
/// to one algorithm.
///
/// See the [module docs](crate::keys).
#[derive(Clone)]
pub struct Keys {
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    kid: Option<String>,
}

/// Why keys could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An HMAC secret shorter than its hash output (RFC 7518 §3.2).
    #[error("the {algorithm:?} secret must be at least {min} bytes long, got {got}")]
    SecretTooShort {
        /// The algorithm the secret was meant for.
        algorithm: Algorithm,
        /// The least length it needs.
        min: usize,
        /// The length it had.
        got: usize,
    },
    /// The constructor does not take keys of this algorithm.
    #[error("{0:?} keys cannot be built this way")]
    WrongAlgorithm(Algorithm),
    /// A PEM key could not be read.
    #[error("the {algorithm:?} {half} key is not a valid PEM key")]
    InvalidPem {
        /// The algorithm the key was meant for.
        algorithm: Algorithm,
        /// `"private"` or `"public"`.
        half: &'static str,
        /// What the parser said.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// A token signed with the private key does not verify with the public key.
    #[error("the {0:?} private and public keys do not belong together")]
    Mismatch(Algorithm),
}

impl Keys {
    /// HS256 from a secret of at least 32 bytes.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        Self::hmac(Algorithm::HS256, secret.as_ref())
    }

    /// HS384 from a secret of at least 48 bytes.
    pub fn hs384(secret: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        Self::hmac(Algorithm::HS384, secret.as_ref())
    }

    /// HS512 from a secret of at least 64 bytes.
    pub fn hs512(secret: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        Self::hmac(Algorithm::HS512, secret.as_ref())
    }

    /// RS256 from a PEM private key (PKCS#1 or PKCS#8) and its PEM public key.
    pub fn rs256_pem(private_pem: &[u8], public_pem: &[u8]) -> Result<Self, KeyError> {
        Self::from_pem(Algorithm::RS256, private_pem, public_pem)
    }

    /// PS256 from a PEM RSA private key and its PEM public key.
    pub fn ps256_pem(private_pem: &[u8], public_pem: &[u8]) -> Result<Self, KeyError> {
        Self::from_pem(Algorithm::PS256, private_pem, public_pem)
    }

    /// ES256 from a PEM P-256 private key (PKCS#8) and its PEM public key.
    pub fn es256_pem(private_pem: &[u8], public_pem: &[u8]) -> Result<Self, KeyError> {
        Self::from_pem(Algorithm::ES256, private_pem, public_pem)
    }

    /// EdDSA (Ed25519) from a PEM private key (PKCS#8) and its PEM public key.
    pub fn eddsa_pem(private_pem: &[u8], public_pem: &[u8]) -> Result<Self, KeyError> {
        Self::from_pem(Algorithm::EdDSA, private_pem, public_pem)
    }

    /// An asymmetric key pair for `algorithm` from PEM. A pair that does not belong together
    /// is refused here rather than at the first request.
    pub fn from_pem(
        algorithm: Algorithm,
        private_pem: &[u8],
        public_pem: &[u8],
    ) -> Result<Self, KeyError> {
        let invalid = |half| {
            move |source| KeyError::InvalidPem {
                algorithm,
                half,
                source,
            }
        };
        let encoding = match family(algorithm)? {
            Family::Rsa => EncodingKey::from_rsa_pem(private_pem),
            Family::Ec => EncodingKey::from_ec_pem(private_pem),
            Family::Ed => EncodingKey::from_ed_pem(private_pem),
            Family::Hmac => return Err(KeyError::WrongAlgorithm(algorithm)),
        }
        .map_err(invalid("private"))?;
        let keys = Self {
            encoding: Some(encoding),
            ..Self::verify_only_pem(algorithm, public_pem)?
        };
        keys.check_pair()?;
        Ok(keys)
    }

    /// Only the public half, for servers that verify tokens but never issue them.
    pub fn verify_only_pem(algorithm: Algorithm, public_pem: &[u8]) -> Result<Self, KeyError> {
        let decoding = match family(algorithm)? {
            Family::Rsa => DecodingKey::from_rsa_pem(public_pem),
            Family::Ec => DecodingKey::from_ec_pem(public_pem),
            Family::Ed => DecodingKey::from_ed_pem(public_pem),
            Family::Hmac => return Err(KeyError::WrongAlgorithm(algorithm)),
        }
        .map_err(|source| KeyError::InvalidPem {
            algorithm,
            half: "public",
            source,
        })?;
        Ok(Self {
            algorithm,
            encoding: None,
            decoding,
            kid: None,
        })
    }

    /// Names the key in the `kid` header of the tokens it signs.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The `kid` the keys are known by, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm these keys sign and accept.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether these keys can sign (issue) tokens.
    pub fn can_sign(&self) -> bool {
        self.encoding.is_some()
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    pub(crate) fn encoding(&self) -> Option<&EncodingKey> {
        self.encoding.as_ref()
    }

    /// The header of the tokens these keys sign, of type `typ`, so that one kind of token
    /// cannot be mistaken for another (RFC 8725 §3.11).
    pub(crate) fn header(&self, typ: &str) -> Header {
        Header {
            typ: Some(typ.to_owned()),
            kid: self.kid.clone(),
            ..Header::new(self.algorithm)
        }
    }

    fn hmac(algorithm: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        let min = match algorithm {
            Algorithm::HS256 => 32,
            Algorithm::HS384 => 48,
            _ => 64,
        };
        if secret.len() < min {
            return Err(KeyError::SecretTooShort {
                algorithm,
                min,
                got: secret.len(),
            });
        }
        Ok(Self {
            algorithm,
            encoding: Some(EncodingKey::from_secret(secret)),
            decoding: DecodingKey::from_secret(secret),
            kid: None,
        })
    }

    fn check_pair(&self) -> Result<(), KeyError> {
        install_provider();
        let mismatch = |_| KeyError::Mismatch(self.algorithm);
        let Some(encoding) = &self.encoding else {
            return Ok(());
        };
        let message = b"tower-jwt-auth key check";
        let signature =
            jsonwebtoken::crypto::sign(message, encoding, self.algorithm).map_err(mismatch)?;
        match jsonwebtoken::crypto::verify(&signature, message, &self.decoding, self.algorithm) {
            Ok(true) => Ok(()),
            _ => Err(KeyError::Mismatch(self.algorithm)),
        }
    }
}

/// Makes aws-lc-rs jsonwebtoken's process-wide crypto backend, unless the application chose
/// one already. jsonwebtoken picks its backend from its cargo features and, when another
/// crate in the build turns on its `rust_crypto` feature too, it cannot pick and would panic
/// at the first signature; installing explicitly keeps that from ever reaching a request.
pub(crate) fn install_provider() {
    // `Err` means a provider is installed already (the application's or ours): keep it.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

/// The `typ` header of access tokens (RFC 9068 §2.1).
pub(crate) const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The `typ` header of refresh tokens.
pub(crate) const REFRESH_TOKEN_TYPE: &str = "rt+jwt";

enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

fn family(algorithm: Algorithm) -> Result<Family, KeyError> {
    use Algorithm::*;
    Ok(match algorithm {
        HS256 | HS384 | HS512 => Family::Hmac,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        ES256 | ES384 => Family::Ec,
        EdDSA => Family::Ed,
        #[allow(unreachable_patterns)]
        _ => return Err(KeyError::WrongAlgorithm(algorithm)),
    })
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Keys")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("can_sign", &self.can_sign())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // Test keys, generated for these tests only (openssl genpkey).
    pub(crate) const RSA_PRIVATE: &[u8] = include_bytes!("../tests/keys/rsa_private.pem");
    pub(crate) const RSA_PUBLIC: &[u8] = include_bytes!("../tests/keys/rsa_public.pem");
    pub(crate) const EC_PRIVATE: &[u8] = include_bytes!("../tests/keys/ec_private.pem");
    pub(crate) const EC_PUBLIC: &[u8] = include_bytes!("../tests/keys/ec_public.pem");
    pub(crate) const ED_PRIVATE: &[u8] = include_bytes!("../tests/keys/ed25519_private.pem");
    pub(crate) const ED_PUBLIC: &[u8] = include_bytes!("../tests/keys/ed25519_public.pem");
    pub(crate) const OTHER_RSA_PUBLIC: &[u8] = include_bytes!("../tests/keys/rsa_other_public.pem");

    #[test]
    fn hmac_secrets_must_be_as_long_as_the_hash() {
        assert!(Keys::hs256([0; 32]).is_ok());
        for (result, min) in [
            (Keys::hs256([0; 31]), 32),
            (Keys::hs384([0; 47]), 48),
            (Keys::hs512([0; 63]), 64),
        ] {
            match result {
                Err(KeyError::SecretTooShort { min: m, .. }) => assert_eq!(m, min),
                other => panic!("expected SecretTooShort, got {other:?}"),
            }
        }
        assert!(Keys::hs512([0; 64]).is_ok());
    }

    #[test]
    fn pem_pairs_of_every_asymmetric_family_load() {
        assert!(Keys::rs256_pem(RSA_PRIVATE, RSA_PUBLIC).is_ok());
        assert!(Keys::ps256_pem(RSA_PRIVATE, RSA_PUBLIC).is_ok());
        assert!(Keys::es256_pem(EC_PRIVATE, EC_PUBLIC).is_ok());
        assert!(Keys::eddsa_pem(ED_PRIVATE, ED_PUBLIC).is_ok());
        let gateway = Keys::verify_only_pem(Algorithm::RS256, RSA_PUBLIC).unwrap();
        assert!(!gateway.can_sign());
    }

    #[test]
    fn mismatched_or_misused_keys_are_refused() {
        assert!(matches!(
            Keys::rs256_pem(RSA_PRIVATE, OTHER_RSA_PUBLIC),
            Err(KeyError::Mismatch(Algorithm::RS256))
        ));
        assert!(matches!(
            Keys::es256_pem(RSA_PRIVATE, EC_PUBLIC),
            Err(KeyError::InvalidPem {
                half: "private",
                ..
            })
        ));
        assert!(matches!(
            Keys::from_pem(Algorithm::HS256, RSA_PRIVATE, RSA_PUBLIC),
            Err(KeyError::WrongAlgorithm(Algorithm::HS256))
        ));
        assert!(matches!(
            Keys::rs256_pem(RSA_PRIVATE, b"not pem"),
            Err(KeyError::InvalidPem { half: "public", .. })
        ));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let keys = Keys::hs256(b"0123456789abcdef0123456789abcdef").unwrap();
        let printed = format!("{keys:?}");
        assert!(!printed.contains("0123456789"), "{printed}");
    }
}
