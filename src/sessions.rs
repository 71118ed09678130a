//! [`Sessions`]: the handle a server builds once, from keys, validation rules, token lifetime
//! and a store.
//!
//! It issues tokens at login (creating their session in the store), verifies them, revokes
//! sessions, and builds the [`JwtAuthLayer`] and the logout services, which all share it.
//!
//! ```
//! use std::time::Duration;
//! use tower_jwt_auth::{Keys, Login, Sessions, store::MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = Sessions::builder(Keys::hs256(b"a secret of at least thirty-two bytes!")?, MemoryStore::new())
//!     .access_ttl(Duration::from_secs(15 * 60))
//!     .issuer("https://auth.example.com")
//!     .audience("api")
//!     .build()?;
//!
//! // At login, once the password checked out:
//! let issued = sessions.issue(Login::new("alice").user_agent("curl/8")).await?;
//! let claims = sessions.verify(&issued.access_token)?;
//! assert_eq!(claims.sub, "alice");
//!
//! // "Log out all my devices":
//! assert_eq!(sessions.revoke_all("alice").await?, 1);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::Full;
use jsonwebtoken::Validation;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{AuthError, Challenge, ErrorHandler, JsonErrors, TokenError};
use crate::extract::Extractor;
use crate::keys::{ACCESS_TOKEN_TYPE, install_provider};
use crate::store::{Session, SessionStore, StoreError};
use crate::{Claims, Clock, JwtAuthLayer, Keys, LogoutAllService, LogoutService, SessionId};

/// The most leeway the builder accepts for clock skew on `exp` and `nbf`.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The handle a server builds once: keys, validation rules, token lifetime and the store.
///
/// Cheap to clone (one `Arc`). `C` is the type of your own claims (`()` for none). See the
/// [module docs](crate::sessions).
pub struct Sessions<St, C = ()> {
    shared: Arc<Shared<St>>,
    _claims: PhantomData<fn() -> C>,
}

struct Shared<St> {
    keys: Keys,
    validation: Validation,
    store: St,
    access_ttl: u64,
    leeway: u64,
    issuer: Option<String>,
    audience: Option<String>,
    extractor: Extractor,
    challenge: Challenge,
    errors: Box<dyn ErrorHandler>,
    clock: Clock,
}

impl<St, C> Clone for Sessions<St, C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            _claims: PhantomData,
        }
    }
}

impl<St, C> fmt::Debug for Sessions<St, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        f.debug_struct("Sessions")
            .field("keys", &shared.keys)
            .field("access_ttl", &shared.access_ttl)
            .field("leeway", &shared.leeway)
            .field("issuer", &shared.issuer)
            .field("audience", &shared.audience)
            .finish_non_exhaustive()
    }
}

/// Why [`SessionsBuilder::build`] refused the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// More leeway than [`MAX_LEEWAY`].
    #[error("leeway of {0:?} is more than the {MAX_LEEWAY:?} allowed")]
    LeewayTooLarge(Duration),
    /// A token lifetime under one second.
    #[error("the access token lifetime must be at least one second")]
    LifetimeTooShort,
    /// The realm holds a quote, a backslash or a control character.
    #[error("the realm must be printable ASCII without quotes or backslashes")]
    InvalidRealm,
    /// The cookie name is not an HTTP token.
    #[error("the cookie name must be a non-empty HTTP token")]
    InvalidCookieName,
    /// The token length limit is zero.
    #[error("the maximum token length must be at least one byte")]
    MaxTokenLenZero,
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The keys can only verify ([`Keys::verify_only_pem`]).
    #[error("these keys cannot sign tokens")]
    CannotSign,
    /// The user is empty or longer than 1024 bytes.
    #[error("the subject must be 1 to 1024 bytes long")]
    InvalidSubject,
    /// The store refused or failed to record the session.
    #[error("the session could not be stored")]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error("the token could not be signed")]
    Signing(#[from] jsonwebtoken::errors::Error),
    /// The system random number generator failed.
    #[error("no randomness for the session id")]
    Random,
}

/// Configures [`Sessions`]; from [`Sessions::builder`].
#[must_use]
pub struct SessionsBuilder<St, C = ()> {
    keys: Keys,
    store: St,
    access_ttl: Duration,
    leeway: Duration,
    issuer: Option<String>,
    audience: Option<String>,
    max_token_len: usize,
    cookie: Option<String>,
    realm: Option<String>,
    retry_after: Duration,
    errors: Box<dyn ErrorHandler>,
    clock: Clock,
    _claims: PhantomData<fn() -> C>,
}

impl<St: SessionStore> Sessions<St> {
    /// Starts the configuration: tokens signed and checked with `keys`, sessions kept in
    /// `store`. Defaults: 15-minute tokens, 30 s leeway, 8 KiB token limit, no issuer or
    /// audience, JSON error bodies, the system clock.
    pub fn builder(keys: Keys, store: St) -> SessionsBuilder<St> {
        SessionsBuilder {
            keys,
            store,
            access_ttl: Duration::from_secs(15 * 60),
            leeway: Duration::from_secs(30),
            issuer: None,
            audience: None,
            max_token_len: 8 * 1024,
            cookie: None,
            realm: None,
            retry_after: Duration::from_secs(1),
            errors: Box::new(JsonErrors),
            clock: Clock::system(),
            _claims: PhantomData,
        }
    }
}

impl<St: SessionStore, C> SessionsBuilder<St, C> {
    /// How long an access token (and, without refresh, its session) lives.
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Clock skew tolerated on `exp` and `nbf`; at most [`MAX_LEEWAY`].
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Tokens carry `iss` = `issuer`, and only such tokens are accepted.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Tokens carry `aud` = `audience`, and only tokens naming it are accepted.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Longer tokens are refused before any parsing (default 8 KiB).
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_token_len = bytes;
        self
    }

    /// Also accept the token from cookie `name` (never from header and cookie at once).
    /// Cookie credentials travel with every request of the browser: set the cookie
    /// `HttpOnly; Secure; SameSite=Strict` or guard against cross-site requests.
    pub fn cookie(mut self, name: impl Into<String>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// The `realm` of the `WWW-Authenticate` challenges.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The `Retry-After` sent with 503 when the store cannot answer (default 1 s).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Writes refusals with `handler` instead of [`JsonErrors`].
    pub fn error_handler(mut self, handler: impl ErrorHandler) -> Self {
        self.errors = Box::new(handler);
        self
    }

    /// Reads time from `clock` (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Your own claims type, flattened into every token beside the registered claims.
    pub fn custom_claims<C2>(self) -> SessionsBuilder<St, C2> {
        SessionsBuilder {
            keys: self.keys,
            store: self.store,
            access_ttl: self.access_ttl,
            leeway: self.leeway,
            issuer: self.issuer,
            audience: self.audience,
            max_token_len: self.max_token_len,
            cookie: self.cookie,
            realm: self.realm,
            retry_after: self.retry_after,
            errors: self.errors,
            clock: self.clock,
            _claims: PhantomData,
        }
    }

    /// Checks the configuration and builds the handle.
    pub fn build(self) -> Result<Sessions<St, C>, ConfigError> {
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::LeewayTooLarge(self.leeway));
        }
        if self.access_ttl.as_secs() == 0 {
            return Err(ConfigError::LifetimeTooShort);
        }
        if self.max_token_len == 0 {
            return Err(ConfigError::MaxTokenLenZero);
        }
        let quotable = |b: u8| matches!(b, 0x20..=0x7E) && b != b'"' && b != b'\\';
        if self
            .realm
            .as_ref()
            .is_some_and(|realm| !realm.bytes().all(quotable))
        {
            return Err(ConfigError::InvalidRealm);
        }
        // A cookie name is an HTTP token, as a header name is.
        if self.cookie.as_ref().is_some_and(|name| {
            name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err()
        }) {
            return Err(ConfigError::InvalidCookieName);
        }
        install_provider();

        let mut validation = Validation::new(self.keys.algorithm());
        // Time claims are checked against our own clock, after the signature.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);

        let retry_after = HeaderValue::from(self.retry_after.as_secs().max(1));
        Ok(Sessions {
            shared: Arc::new(Shared {
                keys: self.keys,
                validation,
                store: self.store,
                access_ttl: self.access_ttl.as_secs(),
                leeway: self.leeway.as_secs(),
                issuer: self.issuer,
                audience: self.audience,
                extractor: Extractor {
                    max_len: self.max_token_len,
                    cookie: self.cookie,
                },
                challenge: Challenge {
                    realm: self.realm,
                    retry_after,
                },
                errors: self.errors,
                clock: self.clock,
            }),
            _claims: PhantomData,
        })
    }
}

/// A login to record: the user, optional metadata, and your own claims for its token.
///
/// ```
/// use tower_jwt_auth::Login;
///
/// let login = Login::new("alice")
///     .user_agent("Mozilla/5.0")
///     .address("203.0.113.7".parse().unwrap());
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Login<C = ()> {
    sub: String,
    user_agent: Option<String>,
    address: Option<IpAddr>,
    custom: C,
}

/// The longest `User-Agent` kept with a session; longer ones are cut.
const MAX_USER_AGENT: usize = 256;

impl Login {
    /// A login of user `sub`.
    pub fn new(sub: impl Into<String>) -> Self {
        Self {
            sub: sub.into(),
            user_agent: None,
            address: None,
            custom: (),
        }
    }
}

impl<C> Login<C> {
    /// The client's `User-Agent`, kept (cut to 256 bytes) for the user's list of devices.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        let mut user_agent = user_agent.into();
        if user_agent.len() > MAX_USER_AGENT {
            let mut cut = MAX_USER_AGENT;
            while !user_agent.is_char_boundary(cut) {
                cut -= 1;
            }
            user_agent.truncate(cut);
        }
        self.user_agent = Some(user_agent);
        self
    }

    /// The client's address, kept for the user's list of devices.
    pub fn address(mut self, address: IpAddr) -> Self {
        self.address = Some(address);
        self
    }

    /// Your own claims for the token.
    pub fn claims<C2>(self, custom: C2) -> Login<C2> {
        Login {
            sub: self.sub,
            user_agent: self.user_agent,
            address: self.address,
            custom,
        }
    }
}

/// A freshly issued access token and the session it belongs to.
///
/// Its `Debug` output leaves the token out.
#[derive(Clone)]
#[non_exhaustive]
pub struct Issued {
    /// The signed access token, to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The session now in the store.
    pub session: Session,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("session", &self.session)
            .finish()
    }
}

/// The claims as signed: `iss` and `aud` come from the configuration.
#[derive(Serialize)]
struct Signed<'a, C> {
    #[serde(flatten)]
    claims: &'a Claims<C>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

impl<St: SessionStore, C> Sessions<St, C> {
    /// Records a new session for `login` and signs its access token.
    pub async fn issue(&self, login: Login<C>) -> Result<Issued, IssueError>
    where
        C: Serialize,
    {
        let shared = &*self.shared;
        let encoding = shared.keys.encoding().ok_or(IssueError::CannotSign)?;
        if login.sub.is_empty() || login.sub.len() > 1024 {
            return Err(IssueError::InvalidSubject);
        }
        let now = shared.clock.now();
        let expires_at = now.saturating_add(shared.access_ttl);
        let id = SessionId::random().map_err(|_| IssueError::Random)?;
        let claims = Claims {
            sub: login.sub,
            sid: id,
            jti: crate::claims::random_token_id().map_err(|_| IssueError::Random)?,
            iat: now,
            exp: expires_at,
            nbf: None,
            custom: login.custom,
        };
        let signed = Signed {
            claims: &claims,
            iss: shared.issuer.as_deref(),
            aud: shared.audience.as_deref(),
        };
        let access_token = jsonwebtoken::encode(&shared.keys.header(), &signed, encoding)?;
        let session = Session {
            user_agent: login.user_agent,
            address: login.address,
            ..Session::new(id, claims.sub, now, expires_at)
        };
        shared.store.create(&session).await?;
        tracing::debug!(sub = %session.sub, sid = %session.id, "session created");
        Ok(Issued {
            access_token,
            expires_in: shared.access_ttl,
            session,
        })
    }

    /// Checks a token's signature, header and claims (not its session): the synchronous part
    /// of authentication.
    pub fn verify(&self, token: &str) -> Result<Claims<C>, TokenError>
    where
        C: DeserializeOwned,
    {
        self.verify_at(token, self.now())
    }

    fn verify_at(&self, token: &str, now: u64) -> Result<Claims<C>, TokenError>
    where
        C: DeserializeOwned,
    {
        let shared = &*self.shared;
        let data =
            jsonwebtoken::decode::<Claims<C>>(token, shared.keys.decoding(), &shared.validation)?;
        if !data
            .header
            .typ
            .as_deref()
            .is_some_and(|typ| typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE))
        {
            return Err(TokenError::WrongType);
        }
        // No critical extension is understood here, so any is refused (RFC 7515 §4.1.11).
        if data.header.crit.is_some() {
            return Err(TokenError::UnsupportedCritical);
        }
        let claims = data.claims;
        if now >= claims.exp.saturating_add(shared.leeway) {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(shared.leeway))
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    /// Authenticates a request's headers as the middleware does: extraction, verification,
    /// and the allowlist check.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Claims<C>, AuthError>
    where
        C: DeserializeOwned,
    {
        let now = self.now();
        let claims = self.verify_headers(headers, now)?;
        if self.is_active(&claims, now).await? {
            Ok(claims)
        } else {
            Err(TokenError::Revoked.into())
        }
    }

    /// Ends one session of `sub`; `true` when it existed. Its tokens are refused from the
    /// next request on.
    pub async fn revoke(&self, sub: &str, sid: &SessionId) -> Result<bool, StoreError> {
        let revoked = self.shared.store.revoke(sub, sid).await?;
        tracing::debug!(sub, %sid, revoked, "session revoked");
        Ok(revoked)
    }

    /// Ends every session of `sub` (log out everywhere, or an administrator's lock-out);
    /// returns how many there were.
    pub async fn revoke_all(&self, sub: &str) -> Result<u64, StoreError> {
        let revoked = self.shared.store.revoke_all(sub).await?;
        tracing::debug!(sub, revoked, "all sessions revoked");
        Ok(revoked)
    }

    /// The live sessions of `sub`, oldest first.
    pub async fn list(&self, sub: &str) -> Result<Vec<Session>, StoreError> {
        self.shared.store.list(sub, self.shared.clock.now()).await
    }

    /// The middleware that lets only requests with a live session through.
    pub fn layer(&self) -> JwtAuthLayer<St, C> {
        JwtAuthLayer::new(self.clone())
    }

    /// A service that ends the session of the token it is called with (204).
    pub fn logout_service(&self) -> LogoutService<St, C> {
        LogoutService::new(self.clone())
    }

    /// A service that ends every session of the user of the token it is called with (204).
    pub fn logout_all_service(&self) -> LogoutAllService<St, C> {
        LogoutAllService::new(self.clone())
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.shared.store
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    // ===== crate-internal pieces of the request path =====

    /// Now, read once per request so that every check of it agrees.
    pub(crate) fn now(&self) -> u64 {
        self.shared.clock.now()
    }

    /// Extraction and verification: everything before the store is asked.
    pub(crate) fn verify_headers(
        &self,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<Claims<C>, AuthError>
    where
        C: DeserializeOwned,
    {
        let token = self.shared.extractor.token(headers)?;
        Ok(self.verify_at(token, now)?)
    }

    /// The allowlist check; a store failure fails closed.
    pub(crate) fn is_active(&self, claims: &Claims<C>, now: u64) -> St::IsActive {
        self.shared.store.is_active(&claims.sub, &claims.sid, now)
    }

    /// The response for a refused request.
    pub(crate) fn reject(&self, error: &AuthError) -> Response<Full<Bytes>> {
        // Never the token: only the fixed description, and the store's own error.
        match error {
            AuthError::StoreUnavailable(source) => {
                tracing::warn!(error = %source, cause = ?std::error::Error::source(source), "refused: session store unavailable");
            }
            AuthError::ResolverUnavailable(source) => {
                tracing::warn!(error = %source, cause = ?std::error::Error::source(source), "refused: user lookup unavailable");
            }
            _ => tracing::debug!(
                status = error.status().as_u16(),
                reason = error.description(),
                "refused"
            ),
        }
        self.shared
            .challenge
            .respond(self.shared.errors.as_ref(), error)
    }
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        Self::StoreUnavailable(error)
    }
}
