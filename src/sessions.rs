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
//! let claims = sessions.authenticate_token(&issued.access_token).await?;
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
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response};
use http_body_util::Full;
use jsonwebtoken::Validation;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::{from_unix_seconds, unix_seconds};
use crate::cookies::{CookieConfig, wants_cookies};
use crate::error::{AuthError, Challenge, ErrorHandler, JsonErrors, RefusedRequest, TokenError};
use crate::extract::Extractor;
use crate::keys::{ACCESS_TOKEN_TYPE, REFRESH_TOKEN_TYPE, install_provider};
use crate::live::Endings;
use crate::refresh::{Grant, RefreshHook};
use crate::store::{
    Created, RefreshState, Rotated, Rotation, Session, SessionLimit, SessionStore, StoreError,
    WhenFull,
};
use crate::token_cache::{DEFAULT_TOKEN_CACHE_ENTRIES, Presented, TokenCache, remember};
use crate::{
    Claims, Clock, JwtAuthLayer, Keys, LogoutAllService, LogoutService, ResolveError, SessionId,
};

/// The most leeway the builder accepts for clock skew on `exp` and `nbf`.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The session limit when none is chosen: 100 live sessions per user, a login beyond them
/// ending the oldest. It bounds what one call reads of a user; see
/// [`SessionsBuilder::session_limit`].
pub const DEFAULT_SESSION_LIMIT: SessionLimit = SessionLimit {
    max: 100,
    when_full: WhenFull::EndOldest,
};

/// The most sessions [`Sessions::list`] returns when the limit is lifted
/// ([`SessionsBuilder::no_session_limit`]).
pub const MAX_LISTED_WITHOUT_LIMIT: usize = 1_000;

/// The handle a server builds once: keys, validation rules, token lifetime and the store.
///
/// Cheap to clone (one `Arc`). `C` is the type of your own claims (`()` for none). See the
/// [module docs](crate::sessions).
pub struct Sessions<St, C = ()> {
    shared: Arc<Shared<St, C>>,
    _claims: PhantomData<fn() -> C>,
}

struct Shared<St, C> {
    /// The signing keys first, then those that only verify, each found by its `kid`.
    verifiers: Vec<Verifier>,
    store: St,
    access_ttl: u64,
    refresh_idle: u64,
    session_lifetime: u64,
    refresh_grace: u64,
    touch_interval: u64,
    session_limit: Option<SessionLimit>,
    leeway: u64,
    issuer: Option<String>,
    audience: Option<String>,
    extractor: Extractor,
    cookies: Option<CookieConfig>,
    challenge: Challenge,
    errors: Box<dyn ErrorHandler>,
    clock: Clock,
    refresh_hook: Option<RefreshHook<C>>,
    endings: Endings,
    live_check: Duration,
    /// Verified access tokens by digest; `None` when turned off.
    token_cache: Option<TokenCache>,
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
            .field("keys", &shared.verifiers[0].keys)
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
    /// A token or session lifetime under one second.
    #[error("token and session lifetimes must be at least one second")]
    LifetimeTooShort,
    /// The realm holds a quote, a backslash or a control character.
    #[error("the realm must be printable ASCII without quotes or backslashes")]
    InvalidRealm,
    /// The cookie name is not an HTTP token.
    #[error("the cookie name must be a non-empty HTTP token")]
    InvalidCookieName,
    /// The [cookie configuration](crate::cookies::CookieConfig) breaks the cookie rules: a
    /// name that is not an HTTP token, a `__Secure-`/`__Host-` prefix without `Secure`, a
    /// `__Host-` cookie off the root path, or `SameSite=None` without `Secure`.
    #[error("the cookie configuration breaks the cookie prefix or SameSite rules")]
    InvalidCookies,
    /// A key given to [`SessionsBuilder::verify_also`] has no `kid`.
    #[error("every key besides the signing one needs a kid")]
    KeyWithoutKid,
    /// Two keys share a `kid`.
    #[error("two keys share the kid {0:?}")]
    DuplicateKid(String),
    /// The token length limit is zero.
    #[error("the maximum token length must be at least one byte")]
    MaxTokenLenZero,
    /// A session limit of zero sessions.
    #[error("the session limit must allow at least one session")]
    ZeroSessionLimit,
}

/// Why tokens could not be issued, at login or at refresh.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The keys can only verify ([`Keys::verify_only_pem`]).
    #[error("these keys cannot sign tokens")]
    CannotSign,
    /// The user is empty or longer than 1024 bytes.
    #[error("the subject must be 1 to 1024 bytes long")]
    InvalidSubject,
    /// The user is at the [`SessionLimit`] and [`WhenFull::RefuseNew`] holds.
    #[error("the user has as many sessions as allowed")]
    TooManySessions,
    /// The login was authenticated before the user's sessions were revoked
    /// ([`Sessions::revoke_issued_before`], after a password change say): the password it
    /// checked may be the old one, so no session was created.
    #[error("the user's sessions were revoked after this login was authenticated")]
    AuthenticatedBeforeRevocation,
    /// [`Login::authenticated_at`] is in the future, or further back than a session lives.
    #[error("the authentication time is in the future or older than a session lives")]
    InvalidAuthenticationTime,
    /// The refresh token is not (or no longer) acceptable.
    #[error("refresh refused: {0}")]
    Refused(#[from] TokenError),
    /// The store refused or failed to record the session.
    #[error("the session could not be stored")]
    Store(#[from] StoreError),
    /// The [refresh hook](SessionsBuilder::on_refresh) could not answer.
    #[error("the refresh hook failed")]
    RefreshHook(#[source] ResolveError),
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
    verify_also: Vec<Keys>,
    store: St,
    access_ttl: Duration,
    refresh_idle: Duration,
    session_lifetime: Duration,
    refresh_grace: Duration,
    touch_interval: Duration,
    session_limit: Option<SessionLimit>,
    leeway: Duration,
    issuer: Option<String>,
    audience: Option<String>,
    max_token_len: usize,
    cookie: Option<String>,
    cookies: Option<CookieConfig>,
    realm: Option<String>,
    retry_after: Duration,
    errors: Box<dyn ErrorHandler>,
    clock: Clock,
    refresh_hook: Option<RefreshHook<C>>,
    live_check: Duration,
    token_cache: usize,
    _claims: PhantomData<fn() -> C>,
}

impl<St: SessionStore> Sessions<St> {
    /// Starts the configuration: tokens signed and checked with `keys`, sessions kept in
    /// `store`. Defaults: 15-minute access tokens; sessions that end after 7 days without a
    /// refresh and after 30 days in any case; strict refresh-token reuse detection; last use
    /// recorded at most once a minute; at most 100 sessions per user, a login beyond them
    /// ending the oldest ([`DEFAULT_SESSION_LIMIT`]); 30 s leeway; 8 KiB token limit; no
    /// issuer or audience; JSON error bodies; the system clock; a cache of 10,000 verified
    /// tokens ([`token_cache`](crate::token_cache)).
    pub fn builder(keys: Keys, store: St) -> SessionsBuilder<St> {
        SessionsBuilder {
            keys,
            verify_also: Vec::new(),
            store,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_idle: Duration::from_secs(7 * 24 * 3600),
            session_lifetime: Duration::from_secs(30 * 24 * 3600),
            refresh_grace: Duration::ZERO,
            touch_interval: Duration::from_secs(60),
            session_limit: Some(DEFAULT_SESSION_LIMIT),
            leeway: Duration::from_secs(30),
            issuer: None,
            audience: None,
            max_token_len: 8 * 1024,
            cookie: None,
            cookies: None,
            realm: None,
            retry_after: Duration::from_secs(1),
            errors: Box::new(JsonErrors),
            clock: Clock::system(),
            refresh_hook: None,
            live_check: Duration::from_secs(1),
            token_cache: DEFAULT_TOKEN_CACHE_ENTRIES,
            _claims: PhantomData,
        }
    }
}

impl<St: SessionStore, C> SessionsBuilder<St, C> {
    /// How long an access token lives (never past its session's end).
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// A session not refreshed for this long ends (its idle timeout).
    pub fn refresh_idle_timeout(mut self, idle: Duration) -> Self {
        self.refresh_idle = idle;
        self
    }

    /// A session ends this long after login, however often it is refreshed.
    pub fn session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = lifetime;
        self
    }

    /// For this long after a refresh, the refresh token it retired is refused without ending
    /// the session (two browser tabs refreshing at once). Zero, the default, is strict reuse
    /// detection: a retired refresh token presented again ends its session.
    pub fn refresh_grace(mut self, grace: Duration) -> Self {
        self.refresh_grace = grace;
        self
    }

    /// A session's last use is recorded at most once per `interval` (default one minute),
    /// so a request does not mean a store write. On Redis, a check that may record use is a
    /// small script rather than a plain `ZSCORE`; `Duration::MAX` records no use on requests
    /// (refreshes still do) and keeps every check a single `ZSCORE`.
    pub fn touch_interval(mut self, interval: Duration) -> Self {
        self.touch_interval = interval;
        self
    }

    /// At most `max` live sessions per user; a login beyond that does what `when_full` says.
    /// The default is [`DEFAULT_SESSION_LIMIT`] (100, ending the oldest).
    ///
    /// The limit also bounds the work of one call: a login, a logout of all sessions, a
    /// revocation by time and a listing each read at most the user's `max` sessions.
    pub fn session_limit(mut self, max: u32, when_full: WhenFull) -> Self {
        self.session_limit = Some(SessionLimit { max, when_full });
        self
    }

    /// No cap on a user's live sessions. Then one account can hold any number of them, and
    /// a login or a revocation by time costs time in proportion (on Redis, a script that
    /// blocks the server meanwhile); listings stop at [`MAX_LISTED_WITHOUT_LIMIT`]. Choose
    /// it only when something else bounds the logins of one user.
    pub fn no_session_limit(mut self) -> Self {
        self.session_limit = None;
        self
    }

    /// Clock skew tolerated on `exp` and `nbf`; at most [`MAX_LEEWAY`].
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Also accept tokens signed with `keys` (say, the previous key during a rotation).
    /// They are told apart by the `kid` header, looked up in the configured keys only, so
    /// every key here needs a `kid` ([`Keys::with_kid`]); tokens without one are checked
    /// with the signing key.
    pub fn verify_also(mut self, keys: Keys) -> Self {
        self.verify_also.push(keys);
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

    /// Cookie mode for browsers: tokens in `HttpOnly` cookies set at login and refresh and
    /// cleared at logout, for clients that ask for it, with a same-origin check on unsafe
    /// requests they authenticate. See [`cookies`](crate::cookies).
    pub fn cookies(mut self, config: CookieConfig) -> Self {
        self.cookie = Some(config.access_name().to_owned());
        self.cookies = Some(config);
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

    /// How often [`Sessions::ended`] asks the store whether a session ended elsewhere
    /// (default one second; endings through this process wake it at once).
    pub fn live_check_interval(mut self, interval: Duration) -> Self {
        self.live_check = interval;
        self
    }

    /// Remembers up to `entries` verified access tokens, so that a token seen before skips
    /// the signature check and the JSON parsing (its session, `exp` and `nbf` are still
    /// checked on every request); zero turns the cache off. The default is
    /// [`DEFAULT_TOKEN_CACHE_ENTRIES`](crate::token_cache::DEFAULT_TOKEN_CACHE_ENTRIES).
    /// See [`token_cache`](crate::token_cache).
    pub fn token_cache(mut self, entries: usize) -> Self {
        self.token_cache = entries;
        self
    }

    /// Verifies every token from scratch, on every request.
    pub fn no_token_cache(self) -> Self {
        self.token_cache(0)
    }

    /// Reads time from `clock` (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// At every refresh, asks `hook` what the new tokens grant: the user's scope and
    /// claims as they are now (a role taken away is gone at the next refresh, not at the
    /// next login). It gets the grant the presented refresh token carries and answers the
    /// one to sign, `Ok(None)` when the user no longer exists (the refresh is refused and
    /// the session ends), or an error (the refresh fails with 503 and can be retried).
    ///
    /// ```
    /// use std::future::ready;
    /// use tower_jwt_auth::{Grant, Keys, ResolveError, Sessions, store::MemoryStore};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sessions = Sessions::builder(Keys::hs256([7; 32])?, MemoryStore::new())
    ///     .on_refresh(|mut grant: Grant| {
    ///         // Look the user's roles up again; here, nobody is an admin any more.
    ///         grant.scope = Some("profile".into());
    ///         ready(Ok::<_, ResolveError>(Some(grant)))
    ///     })
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    ///
    /// Set it after [`custom_claims`](Self::custom_claims), which starts a new claims type.
    pub fn on_refresh<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Grant<C>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Option<Grant<C>>, ResolveError>> + Send + 'static,
    {
        self.refresh_hook = Some(Box::new(move |grant| Box::pin(hook(grant))));
        self
    }

    /// Your own claims type, flattened into every token beside the registered claims.
    pub fn custom_claims<C2>(self) -> SessionsBuilder<St, C2> {
        SessionsBuilder {
            keys: self.keys,
            verify_also: self.verify_also,
            store: self.store,
            access_ttl: self.access_ttl,
            refresh_idle: self.refresh_idle,
            session_lifetime: self.session_lifetime,
            refresh_grace: self.refresh_grace,
            touch_interval: self.touch_interval,
            session_limit: self.session_limit,
            leeway: self.leeway,
            issuer: self.issuer,
            audience: self.audience,
            max_token_len: self.max_token_len,
            cookie: self.cookie,
            cookies: self.cookies,
            realm: self.realm,
            retry_after: self.retry_after,
            errors: self.errors,
            clock: self.clock,
            refresh_hook: None,
            live_check: self.live_check,
            token_cache: self.token_cache,
            _claims: PhantomData,
        }
    }

    /// Checks the configuration and builds the handle.
    pub fn build(self) -> Result<Sessions<St, C>, ConfigError> {
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::LeewayTooLarge(self.leeway));
        }
        if [self.access_ttl, self.refresh_idle, self.session_lifetime]
            .iter()
            .any(|lifetime| lifetime.as_secs() == 0)
        {
            return Err(ConfigError::LifetimeTooShort);
        }
        if self.session_limit.is_some_and(|limit| limit.max == 0) {
            return Err(ConfigError::ZeroSessionLimit);
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
        if self
            .cookies
            .as_ref()
            .is_some_and(|config| !config.is_valid())
        {
            return Err(ConfigError::InvalidCookies);
        }
        install_provider();

        let mut kids = Vec::new();
        for keys in &self.verify_also {
            let kid = keys.kid().ok_or(ConfigError::KeyWithoutKid)?;
            if self.keys.kid() == Some(kid) || kids.contains(&kid) {
                return Err(ConfigError::DuplicateKid(kid.to_owned()));
            }
            kids.push(kid);
        }
        let verifiers = std::iter::once(self.keys)
            .chain(self.verify_also)
            .map(|keys| Verifier::new(keys, self.issuer.as_deref(), self.audience.as_deref()))
            .collect();

        let token_cache = match self.token_cache {
            0 => None,
            entries => Some(TokenCache::new(entries)),
        };
        let retry_after = HeaderValue::from(self.retry_after.as_secs().max(1));
        Ok(Sessions {
            shared: Arc::new(Shared {
                verifiers,
                store: self.store,
                access_ttl: self.access_ttl.as_secs(),
                refresh_idle: self.refresh_idle.as_secs(),
                session_lifetime: self.session_lifetime.as_secs(),
                refresh_grace: self.refresh_grace.as_secs(),
                touch_interval: self.touch_interval.as_secs(),
                session_limit: self.session_limit,
                leeway: self.leeway.as_secs(),
                issuer: self.issuer,
                audience: self.audience,
                extractor: Extractor {
                    max_len: self.max_token_len,
                    cookie: self.cookie,
                },
                cookies: self.cookies,
                challenge: Challenge {
                    realm: self.realm,
                    retry_after,
                },
                errors: self.errors,
                clock: self.clock,
                refresh_hook: self.refresh_hook,
                endings: Endings::new(),
                live_check: self.live_check.max(Duration::from_millis(1)),
                token_cache,
            }),
            _claims: PhantomData,
        })
    }
}

/// A key and what tokens checked with it must satisfy.
struct Verifier {
    keys: Keys,
    access: Validation,
    refresh: Validation,
}

impl Verifier {
    fn new(keys: Keys, issuer: Option<&str>, audience: Option<&str>) -> Self {
        Self {
            access: validation_for(&keys, issuer, audience),
            // Refresh tokens name no audience: no resource server takes them for access
            // tokens, even one that does not look at `typ`.
            refresh: validation_for(&keys, issuer, None),
            keys,
        }
    }
}

/// What jsonwebtoken checks: the one algorithm, `exp` and `sub` present, and `iss` / `aud`
/// when configured. Time claims are checked afterwards against the crate's clock.
fn validation_for(keys: &Keys, issuer: Option<&str>, audience: Option<&str>) -> Validation {
    let mut validation = Validation::new(keys.algorithm());
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    let mut required = vec!["exp", "sub"];
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    match audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
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
    authenticated_at: Option<SystemTime>,
    scope: Option<String>,
    custom: C,
}

/// Space-separated scope names, one space apart; `None` when there are none.
pub(crate) fn normalise_scope(scope: &str) -> Option<String> {
    let names: Vec<&str> = scope.split(' ').filter(|name| !name.is_empty()).collect();
    (!names.is_empty()).then(|| names.join(" "))
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
            authenticated_at: None,
            scope: None,
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

    /// When the user proved who they are (the moment the password checked out); the
    /// default is the moment of [`Sessions::issue`]. Take it before a slow check finishes:
    /// a [`revoke_issued_before`](Sessions::revoke_issued_before) (a password change) made
    /// after it refuses this login, even if the login reaches the store later.
    pub fn authenticated_at(mut self, time: SystemTime) -> Self {
        self.authenticated_at = Some(time);
        self
    }

    /// Your own claims for the token.
    pub fn claims<C2>(self, custom: C2) -> Login<C2> {
        Login {
            sub: self.sub,
            user_agent: self.user_agent,
            address: self.address,
            authenticated_at: self.authenticated_at,
            scope: self.scope,
            custom,
        }
    }

    /// What the session's tokens grant: space-separated scope names (`"profile admin"`),
    /// carried in their `scope` claim (RFC 9068) and checked by
    /// [`require_scope`](crate::JwtAuthLayer::require_scope). A refresh keeps them unless a
    /// [refresh hook](SessionsBuilder::on_refresh) says otherwise. Runs of spaces are
    /// folded, and an empty scope is none.
    pub fn scope(mut self, scope: impl AsRef<str>) -> Self {
        self.scope = normalise_scope(scope.as_ref());
        self
    }
}

/// Tokens issued at login or refresh: a short-lived access token and the refresh token that
/// gets the next pair.
///
/// Its `Debug` output leaves the tokens out.
#[derive(Clone)]
#[non_exhaustive]
pub struct Issued {
    /// The signed access token, to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token, to present once to [`Sessions::refresh`].
    pub refresh_token: String,
    /// Seconds until the refresh token expires (the session's end unless refreshed).
    pub refresh_expires_in: u64,
    /// The user.
    pub sub: String,
    /// The session both tokens belong to.
    pub session_id: SessionId,
    /// What the tokens grant (space-separated scope names), when anything.
    pub scope: Option<String>,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"<redacted>")
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("sub", &self.sub)
            .field("session_id", &self.session_id)
            .finish()
    }
}

/// Claims as signed: `iss` and `aud` come from the configuration.
#[derive(Serialize)]
struct Signed<'a, T> {
    #[serde(flatten)]
    claims: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// The claims of a refresh token: the session, its rotation generation, its absolute end,
/// and the custom claims that every access token of the session carries.
#[derive(Serialize, Deserialize)]
struct RefreshClaims<C> {
    sub: String,
    sid: SessionId,
    /// Rotation generation.
    #[serde(rename = "gen")]
    generation: u64,
    jti: String,
    iat: u64,
    exp: u64,
    /// The session's absolute end, which no refresh moves.
    sxp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(flatten)]
    custom: C,
}

/// SHA-256 of a refresh token: what the store keeps instead of the token.
fn digest(token: &str) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref(),
    );
    out
}

impl<St: SessionStore, C> Sessions<St, C> {
    /// Records a new session for `login` and signs its access and refresh tokens.
    pub async fn issue(&self, login: Login<C>) -> Result<Issued, IssueError>
    where
        C: Serialize,
    {
        let shared = &*self.shared;
        if login.sub.is_empty() || login.sub.len() > 1024 {
            return Err(IssueError::InvalidSubject);
        }
        let created_at = shared.clock.time();
        let now = unix_seconds(created_at);
        let authenticated_at = login.authenticated_at.unwrap_or(created_at);
        // A login authenticated longer ago than a session lives could pass a "not before"
        // mark that has been forgotten.
        let oldest = created_at
            .checked_sub(Duration::from_secs(shared.session_lifetime))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if authenticated_at > created_at || authenticated_at < oldest {
            return Err(IssueError::InvalidAuthenticationTime);
        }
        let session_end = now.saturating_add(shared.session_lifetime);
        let refresh = RefreshClaims {
            sub: login.sub,
            sid: SessionId::random().map_err(|_| IssueError::Random)?,
            generation: 0,
            jti: String::new(),
            iat: now,
            exp: session_end.min(now.saturating_add(shared.refresh_idle)),
            sxp: session_end,
            scope: login.scope,
            custom: login.custom,
        };
        let issued = self.sign_pair(refresh, now)?;
        let session = Session {
            authenticated_at,
            user_agent: login.user_agent,
            address: login.address,
            refresh: RefreshState {
                generation: 0,
                digest: digest(&issued.refresh_token),
                rotated_at: now,
            },
            ..Session::new(
                issued.session_id,
                issued.sub.clone(),
                created_at,
                from_unix_seconds(now.saturating_add(issued.refresh_expires_in)),
            )
        };
        match shared.store.create(&session, shared.session_limit).await? {
            Created::Live { ended } => {
                if ended > 0 {
                    shared.endings.notify();
                }
                tracing::debug!(sub = %session.sub, sid = %session.id, ended, "session created");
                Ok(issued)
            }
            Created::LimitReached => Err(IssueError::TooManySessions),
            Created::Barred => Err(IssueError::AuthenticatedBeforeRevocation),
        }
    }

    /// Exchanges a refresh token for a new access token and a new refresh token, retiring
    /// the one presented, atomically.
    ///
    /// A retired refresh token presented again ends its whole session (its newest access
    /// token included) and is refused with [`TokenError::RefreshReused`], unless it was
    /// retired less than [`refresh_grace`](SessionsBuilder::refresh_grace) ago
    /// ([`TokenError::RefreshRetired`], the session goes on). Of concurrent refreshes with
    /// one token, exactly one gets the new pair. An unknown, expired or ended session is
    /// [`TokenError::Revoked`].
    pub async fn refresh(&self, refresh_token: &str) -> Result<Issued, IssueError>
    where
        C: Serialize + DeserializeOwned,
    {
        let shared = &*self.shared;
        let now = shared.clock.now();
        // Length before anything is parsed, as on the request path.
        if refresh_token.len() > shared.extractor.max_len {
            return Err(TokenError::TooLong.into());
        }
        // The type first, so that an access token presented here is named as such.
        let header = jsonwebtoken::decode_header(refresh_token).map_err(TokenError::from)?;
        check_type(&header, REFRESH_TOKEN_TYPE)?;
        let presented: RefreshClaims<C> =
            self.decode(refresh_token.as_bytes(), Kind::Refresh, now)?;
        // Accepted within the leeway after its `exp`, the token may name a session whose
        // absolute end has come: no token outlives its session.
        if now >= presented.sxp {
            return Err(TokenError::Expired.into());
        }
        let RefreshClaims {
            sub,
            sid,
            generation,
            sxp,
            scope,
            custom,
            ..
        } = presented;
        // What the next tokens grant: as before, or as the application says it is now.
        let (scope, custom) = match &shared.refresh_hook {
            None => (scope, custom),
            Some(hook) => {
                let grant = Grant {
                    sub: sub.clone(),
                    scope,
                    custom,
                };
                match hook(grant).await.map_err(IssueError::RefreshHook)? {
                    Some(grant) => (
                        grant.scope.as_deref().and_then(normalise_scope),
                        grant.custom,
                    ),
                    None => {
                        shared.store.revoke(&sub, &sid).await?;
                        shared.endings.notify();
                        return Err(TokenError::UnknownUser.into());
                    }
                }
            }
        };
        // Only this crate signs refresh tokens, and no session rotates 2^64 times.
        let next_generation = generation
            .checked_add(1)
            .ok_or(TokenError::Malformed(None))?;
        let next = RefreshClaims {
            sub: sub.clone(),
            sid,
            generation: next_generation,
            jti: String::new(),
            iat: now,
            exp: sxp.min(now.saturating_add(shared.refresh_idle)),
            sxp,
            scope,
            custom,
        };
        let issued = self.sign_pair(next, now)?;
        let rotation = Rotation {
            generation,
            digest: digest(refresh_token),
            next_digest: digest(&issued.refresh_token),
            now,
            expires_at: now.saturating_add(issued.refresh_expires_in),
            grace: shared.refresh_grace,
        };
        match shared.store.rotate(&sub, &sid, &rotation).await? {
            Rotated::Rotated => Ok(issued),
            Rotated::Forgiven => Err(TokenError::RefreshRetired.into()),
            Rotated::Reused => {
                shared.endings.notify();
                tracing::warn!(sub, %sid, generation, "retired refresh token presented: session ended");
                Err(TokenError::RefreshReused.into())
            }
            Rotated::Unknown => Err(TokenError::Revoked.into()),
        }
    }

    /// Signs the access token and the refresh token of `refresh`'s session and generation.
    fn sign_pair(&self, mut refresh: RefreshClaims<C>, now: u64) -> Result<Issued, IssueError>
    where
        C: Serialize,
    {
        let shared = &*self.shared;
        if refresh.exp <= now {
            return Err(TokenError::Expired.into());
        }
        let keys = &shared.verifiers[0].keys;
        let encoding = keys.encoding().ok_or(IssueError::CannotSign)?;
        let random_id = || crate::claims::random_token_id().map_err(|_| IssueError::Random);
        let access = Claims {
            sub: refresh.sub.clone(),
            sid: refresh.sid,
            jti: random_id()?,
            iat: now,
            exp: refresh.exp.min(now.saturating_add(shared.access_ttl)),
            nbf: None,
            scope: refresh.scope.clone(),
            custom: &refresh.custom,
        };
        let signed = Signed {
            claims: &access,
            iss: shared.issuer.as_deref(),
            aud: shared.audience.as_deref(),
        };
        let access_token =
            jsonwebtoken::encode(&keys.header(ACCESS_TOKEN_TYPE), &signed, encoding)?;
        refresh.jti = random_id()?;
        let signed = Signed {
            claims: &refresh,
            iss: shared.issuer.as_deref(),
            aud: None,
        };
        let refresh_token =
            jsonwebtoken::encode(&keys.header(REFRESH_TOKEN_TYPE), &signed, encoding)?;
        Ok(Issued {
            access_token,
            expires_in: access.exp - now,
            refresh_token,
            refresh_expires_in: refresh.exp - now,
            sub: refresh.sub,
            session_id: refresh.sid,
            scope: refresh.scope,
        })
    }

    /// Checks a token's signature, header and claims, **but not its session**: a token of a
    /// logged-out session passes. Use [`authenticate_token`](Self::authenticate_token) to
    /// accept a token, and this only where the allowlist is checked apart (then with
    /// [`is_live`](Self::is_live)).
    pub fn verify_without_session_check(&self, token: &str) -> Result<Claims<C>, TokenError>
    where
        C: DeserializeOwned,
    {
        self.verify_at(token.as_bytes(), self.now())
    }

    /// Checks a token's signature, header and claims, but not its session.
    #[deprecated(
        since = "0.1.0",
        note = "it accepts tokens of logged-out sessions: use `authenticate_token`, or \
                `verify_without_session_check` with `is_live`"
    )]
    pub fn verify(&self, token: &str) -> Result<Claims<C>, TokenError>
    where
        C: DeserializeOwned,
    {
        self.verify_without_session_check(token)
    }

    /// Accepts a token as the middleware does: verification, then the allowlist check. For
    /// tokens that do not come in an `Authorization` header (the first message of a
    /// WebSocket, say).
    pub async fn authenticate_token(&self, token: &str) -> Result<Claims<C>, AuthError>
    where
        C: DeserializeOwned,
    {
        let now = self.now();
        let claims = self.verify_at(token.as_bytes(), now)?;
        self.require_live(claims, now).await
    }

    /// Whether the session of `claims` is still live: for long-lived connections (a
    /// WebSocket, a server-sent event stream), checked per message or periodically, so that
    /// a logout ends them too. A store failure is an error, never a `true`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_jwt_auth::{Keys, Login, Sessions, store::MemoryStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sessions = Sessions::builder(Keys::hs256([7; 32])?, MemoryStore::new()).build()?;
    /// let issued = sessions.issue(Login::new("alice")).await?;
    /// // The connection opens with a token...
    /// let claims = sessions.authenticate_token(&issued.access_token).await?;
    /// // ...and each message (or every few seconds) asks again.
    /// assert!(sessions.is_live(&claims).await?);
    /// sessions.revoke(&claims.sub, &claims.sid).await?;
    /// assert!(!sessions.is_live(&claims).await?, "logged out: close the connection");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn is_live(&self, claims: &Claims<C>) -> Result<bool, StoreError> {
        let now = self.now();
        if now >= claims.exp.saturating_add(self.shared.leeway) {
            return Ok(false);
        }
        self.is_active(claims, now).await
    }

    fn verify_at(&self, token: &[u8], now: u64) -> Result<Claims<C>, TokenError>
    where
        C: DeserializeOwned,
    {
        self.decode(token, Kind::Access, now)
    }

    /// Verifies a token of `kind`: signature with its key's one algorithm, `typ`, no `crit`,
    /// then `exp` and `nbf` with leeway against `now`.
    fn decode<T: DeserializeOwned + TimeClaims>(
        &self,
        token: &[u8],
        kind: Kind,
        now: u64,
    ) -> Result<T, TokenError> {
        let shared = &*self.shared;
        if token.len() > shared.extractor.max_len {
            return Err(TokenError::TooLong);
        }
        let verifier = self.verifier(token)?;
        let (validation, typ) = match kind {
            Kind::Access => (&verifier.access, ACCESS_TOKEN_TYPE),
            Kind::Refresh => (&verifier.refresh, REFRESH_TOKEN_TYPE),
        };
        let data = jsonwebtoken::decode::<T>(token, verifier.keys.decoding(), validation)?;
        check_type(&data.header, typ)?;
        // No critical extension is understood here, so any is refused (RFC 7515 §4.1.11).
        if data.header.crit.is_some() {
            return Err(TokenError::UnsupportedCritical);
        }
        let claims = data.claims;
        self.check_time(&claims, now)?;
        Ok(claims)
    }

    /// `exp` and `nbf` against `now`, with the leeway.
    fn check_time(&self, claims: &impl TimeClaims, now: u64) -> Result<(), TokenError> {
        let leeway = self.shared.leeway;
        let (exp, nbf) = claims.time();
        if now >= exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }

    /// [`verify_at`](Self::verify_at) through the token cache: a token verified before is
    /// found by its exact bytes, and only its times are checked again. What
    /// comes out is what verifying it afresh would give.
    pub(crate) fn verify_cached(&self, token: &[u8], now: u64) -> Result<Claims<C>, TokenError>
    where
        C: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let shared = &*self.shared;
        let Some(entries) = shared
            .token_cache
            .as_ref()
            .and_then(|cache| cache.entries::<C>())
        else {
            return self.verify_at(token, now);
        };
        if token.len() > shared.extractor.max_len {
            return Err(TokenError::TooLong);
        }
        if let Some(claims) = entries.get(&Presented(token)) {
            let checked = self.check_time(&claims, now);
            if matches!(checked, Err(TokenError::Expired)) {
                // It will never pass again.
                entries.remove(&Presented(token));
            }
            return checked.map(|()| claims);
        }
        let claims = self.verify_at(token, now)?;
        remember(entries, token, claims.clone());
        Ok(claims)
    }

    /// The key to check `token` with: found by its `kid` among the configured keys only
    /// (RFC 8725 §3.10), the signing key when it names none. With one key configured the
    /// header is not read twice.
    fn verifier(&self, token: &[u8]) -> Result<&Verifier, TokenError> {
        let verifiers = &self.shared.verifiers;
        if verifiers.len() == 1 {
            return Ok(&verifiers[0]);
        }
        match jsonwebtoken::decode_header(token)?.kid {
            None => Ok(&verifiers[0]),
            Some(kid) => verifiers
                .iter()
                .find(|verifier| verifier.keys.kid() == Some(kid.as_str()))
                .ok_or(TokenError::UnknownKey),
        }
    }

    /// Authenticates a request's headers as the middleware does: extraction, verification,
    /// and the allowlist check.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Claims<C>, AuthError>
    where
        C: DeserializeOwned,
    {
        let now = self.now();
        let claims = self.verify_headers(headers, now)?;
        self.require_live(claims, now).await
    }

    pub(crate) async fn require_live(
        &self,
        claims: Claims<C>,
        now: u64,
    ) -> Result<Claims<C>, AuthError> {
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
        self.shared.endings.notify();
        tracing::debug!(sub, %sid, revoked, "session revoked");
        Ok(revoked)
    }

    /// Ends every session of `sub` (log out everywhere, or an administrator's lock-out);
    /// returns how many there were.
    pub async fn revoke_all(&self, sub: &str) -> Result<u64, StoreError> {
        let revoked = self.shared.store.revoke_all(sub).await?;
        self.shared.endings.notify();
        tracing::debug!(sub, revoked, "all sessions revoked");
        Ok(revoked)
    }

    /// Ends every session of `sub` authenticated before `time`, and refuses from then on
    /// any login authenticated before it ([`IssueError::AuthenticatedBeforeRevocation`]),
    /// even one whose password check ran before this call and whose session is stored after
    /// it. After a password change, `revoke_issued_before(sub, SystemTime::now())`: every
    /// token already out in the wild stops working, and no login with the old password
    /// still in flight gets through. Returns how many sessions ended.
    pub async fn revoke_issued_before(
        &self,
        sub: &str,
        time: SystemTime,
    ) -> Result<u64, StoreError> {
        let shared = &*self.shared;
        // Logins authenticated longer ago than a session lives are refused anyway.
        let keep_until = shared
            .clock
            .time()
            .max(time)
            .checked_add(Duration::from_secs(shared.session_lifetime))
            .unwrap_or(time);
        let revoked = shared
            .store
            .revoke_authenticated_before(sub, time, keep_until)
            .await?;
        shared.endings.notify();
        tracing::debug!(sub, revoked, "sessions issued before a time revoked");
        Ok(revoked)
    }

    /// The live sessions of `sub`, first created first: at most the session limit's `max`
    /// newest (or [`MAX_LISTED_WITHOUT_LIMIT`] without a limit).
    pub async fn list(&self, sub: &str) -> Result<Vec<Session>, StoreError> {
        let shared = &*self.shared;
        let max = shared
            .session_limit
            .map_or(MAX_LISTED_WITHOUT_LIMIT, |limit| limit.max as usize);
        shared.store.list(sub, shared.clock.now(), max).await
    }

    /// The middleware that lets only requests with a live session through.
    pub fn layer(&self) -> JwtAuthLayer<St, C> {
        JwtAuthLayer::new(self.clone())
    }

    /// A service that ends the session of the token it is called with (204).
    pub fn logout_service(&self) -> LogoutService<St, C> {
        LogoutService::new(self.clone())
    }

    /// The refresh endpoint: JSON `{"refresh_token"}` or the RFC 6749 form, answered with a
    /// new pair (see [`refresh`](crate::refresh)).
    pub fn refresh_service(&self) -> crate::RefreshService<St, C> {
        crate::RefreshService::new(self.clone())
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

    #[cfg(test)]
    pub(crate) fn token_cache(&self) -> Option<&TokenCache> {
        self.shared.token_cache.as_ref()
    }

    pub(crate) fn endings(&self) -> &Endings {
        &self.shared.endings
    }

    pub(crate) fn live_check_interval(&self) -> Duration {
        self.shared.live_check
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

    /// Extraction, the same-origin check of cookie credentials, and verification; whether
    /// the token came from the cookie.
    pub(crate) fn verify_request(
        &self,
        method: &Method,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<(Claims<C>, bool), AuthError>
    where
        C: DeserializeOwned,
    {
        let (token, from_cookie) = self.credential(method, headers)?;
        Ok((self.verify_at(token, now)?, from_cookie))
    }

    /// [`verify_request`](Self::verify_request) through the token cache: the middleware's.
    pub(crate) fn verify_request_cached(
        &self,
        method: &Method,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<(Claims<C>, bool), AuthError>
    where
        C: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let (token, from_cookie) = self.credential(method, headers)?;
        Ok((self.verify_cached(token, now)?, from_cookie))
    }

    /// The one credential of a request, and whether it came from the cookie, which must
    /// then come from the same origin.
    fn credential<'h>(
        &self,
        method: &Method,
        headers: &'h HeaderMap,
    ) -> Result<(&'h [u8], bool), AuthError> {
        let (token, from_cookie) = self.shared.extractor.credential(headers)?;
        if from_cookie
            && let Some(cookies) = &self.shared.cookies
            && !cookies.is_same_origin(method, headers)
        {
            return Err(AuthError::CrossSiteRequest);
        }
        Ok((token, from_cookie))
    }

    /// The cookie configuration, in cookie mode.
    pub(crate) fn cookie_config(&self) -> Option<&CookieConfig> {
        self.shared.cookies.as_ref()
    }

    /// The answer to a login: the tokens as cookies (and a JSON body without them) when
    /// the request asked for cookie mode (`Token-Delivery: cookie`) and it is configured,
    /// [`Issued::response`] otherwise. See [`cookies`](crate::cookies).
    pub fn login_response(&self, issued: &Issued, request: &HeaderMap) -> Response<Full<Bytes>> {
        match &self.shared.cookies {
            Some(cookies) if wants_cookies(request) => issued.cookie_response(cookies),
            _ => issued.response(),
        }
    }

    /// The allowlist check; a store failure fails closed.
    pub(crate) fn is_active(&self, claims: &Claims<C>, now: u64) -> St::IsActive {
        let shared = &*self.shared;
        shared
            .store
            .is_active(&claims.sub, &claims.sid, now, shared.touch_interval)
    }

    /// Exactly the refusal the middleware answers `error` with (its status, challenge with
    /// the realm, `Retry-After`, and the body of the configured
    /// [`ErrorHandler`](crate::ErrorHandler)), so a handler's own 401 or 503 matches the
    /// layer's.
    pub fn refusal(&self, error: &AuthError) -> Response<Full<Bytes>> {
        self.reject(error, &RefusedRequest::unknown())
    }

    /// [`refusal`](Self::refusal) of `request`, for an error handler that looks at it.
    pub fn refusal_for(
        &self,
        error: &AuthError,
        request: &RefusedRequest<'_>,
    ) -> Response<Full<Bytes>> {
        self.reject(error, request)
    }

    /// The response for a refused request.
    pub(crate) fn reject(
        &self,
        error: &AuthError,
        request: &RefusedRequest<'_>,
    ) -> Response<Full<Bytes>> {
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
            .respond(self.shared.errors.as_ref(), error, request)
    }
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        Self::StoreUnavailable(error)
    }
}

/// Whether a token's `typ` header names the kind expected (media types ignore case).
fn check_type(header: &jsonwebtoken::Header, typ: &str) -> Result<(), TokenError> {
    match &header.typ {
        Some(found) if found.eq_ignore_ascii_case(typ) => Ok(()),
        _ => Err(TokenError::WrongType),
    }
}

/// The time claims checked after the signature.
trait TimeClaims {
    /// `exp`, and `nbf` when present.
    fn time(&self) -> (u64, Option<u64>);
}

impl<C> TimeClaims for Claims<C> {
    fn time(&self) -> (u64, Option<u64>) {
        (self.exp, self.nbf)
    }
}

impl<C> TimeClaims for RefreshClaims<C> {
    fn time(&self) -> (u64, Option<u64>) {
        (self.exp, None)
    }
}

/// The two kinds of token this crate signs.
#[derive(Clone, Copy)]
enum Kind {
    Access,
    Refresh,
}
