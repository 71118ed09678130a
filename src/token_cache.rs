//! The verified-token cache: a client sends the same access token with every request for
//! its whole lifetime, so once a token has verified, the layer skips the signature check and
//! the JSON parsing for it and answers from memory.
//!
//! What it never skips:
//! - the **allowlist check**: every request still asks the store whether its session is
//!   live, so a logout is refused from the next request on, cached or not;
//! - `exp` and `nbf`, checked against the clock on every request with the configured leeway,
//!   exactly as for a token seen the first time;
//! - the length limit, checked before anything else.
//!
//! A token is found only by the exact bytes it was verified as: the cache keeps each token
//! it verified and compares a presented one with it in full, in constant time (the table
//! places tokens with a hash seeded at random for each cache, only to find the candidate).
//! A token that differs from a cached one in any byte, or in its length, is verified from
//! scratch. Tokens are kept in memory for as long as they stay in the cache, as the
//! [`Keys`](crate::Keys) are for as long as the process runs; nothing of them is logged.
//!
//! The keys, issuer, audience and leeway of a `Sessions` are fixed when it is built, and the
//! cache belongs to it: a key rotation builds a new `Sessions`, whose cache starts empty.
//!
//! The cache is on by default ([`DEFAULT_TOKEN_CACHE_ENTRIES`]) and bounded in entries;
//! the least useful entry leaves when it is full. Size it with
//! [`SessionsBuilder::token_cache`](crate::SessionsBuilder::token_cache) or turn it off with
//! [`SessionsBuilder::no_token_cache`](crate::SessionsBuilder::no_token_cache). It serves the
//! middleware ([`JwtAuth`](crate::JwtAuth)); the other ways in
//! ([`Sessions::authenticate_token`](crate::Sessions::authenticate_token), the logout
//! services) verify every time.
//!
//! ```
//! use tower_jwt_auth::{Keys, Sessions, store::MemoryStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Room for the tokens of 50,000 busy clients (about 500 bytes each with `()` claims).
//! let sessions = Sessions::builder(Keys::hs256([7; 32])?, MemoryStore::new())
//!     .token_cache(50_000)
//!     .build()?;
//! # let _ = sessions;
//! # Ok(()) }
//! ```

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use quick_cache::Equivalent;

use crate::Claims;

/// How many verified tokens a [`Sessions`](crate::Sessions) remembers unless told otherwise.
pub const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 10_000;

/// The exact bytes of a token that verified.
pub(crate) struct Verified(Box<[u8]>);

/// A presented token, looked up without a copy.
pub(crate) struct Presented<'a>(pub(crate) &'a [u8]);

impl Hash for Verified {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Presented(&self.0).hash(state);
    }
}

impl Hash for Presented<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0);
    }
}

impl PartialEq for Verified {
    fn eq(&self, other: &Self) -> bool {
        Presented(&self.0).equivalent(other)
    }
}

impl Eq for Verified {}

impl Equivalent<Verified> for Presented<'_> {
    /// Every byte is compared, whatever the first difference: how long a comparison takes
    /// tells nothing of a cached token. (Lengths may differ at once: a presented token's
    /// length is its sender's to know.)
    fn equivalent(&self, key: &Verified) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0, &key.0).is_ok()
    }
}

/// Verified access-token claims by token.
///
/// `quick_cache` rather than `moka`: it is already what the near-cache uses, it brings no
/// background housekeeping and no further dependencies, and its lookup is a sharded read
/// under a short lock. Measured: a request whose token is found costs about 4,300
/// instructions through the whole layer, store check included, against 38,600 for a bare
/// `jsonwebtoken::decode` (`examples/token_cache_instructions.rs`). Its eviction keeps
/// frequently used entries while a burst of new ones passes through.
/// Only tokens that verified are ever inserted, so nobody without a valid token can fill it.
pub(crate) type Entries<C> = quick_cache::sync::Cache<
    Verified,
    Claims<C>,
    quick_cache::UnitWeighter,
    foldhash::fast::RandomState,
>;

/// The cache of one [`Sessions`](crate::Sessions): its size, and the entries, made at the
/// first request. They are held as `Any` so that a `Sessions` stays `Send + Sync` whatever
/// its claims type; the middleware, whose claims are `Clone + Send + Sync`, is what fills
/// them.
pub(crate) struct TokenCache {
    capacity: usize,
    entries: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl TokenCache {
    /// Room for `capacity` tokens (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: OnceLock::new(),
        }
    }

    /// The entries, for claims of type `C` (always the one claims type of the `Sessions`).
    pub(crate) fn entries<C>(&self) -> Option<&Entries<C>>
    where
        C: Clone + Send + Sync + 'static,
    {
        self.entries
            .get_or_init(|| {
                Box::new(Entries::<C>::with(
                    self.capacity,
                    self.capacity as u64,
                    quick_cache::UnitWeighter,
                    foldhash::fast::RandomState::default(),
                    Default::default(),
                ))
            })
            .downcast_ref()
    }
}

/// Remembers `token`, which just verified as `claims`.
pub(crate) fn remember<C>(entries: &Entries<C>, token: &[u8], claims: Claims<C>)
where
    C: Clone,
{
    entries.insert(Verified(token.into()), claims);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{Request, Response, StatusCode, header};
    use http_body_util::Full;
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::error::TokenError;
    use crate::store::MemoryStore;
    use crate::{Keys, Login, ManualClock, Sessions};

    const START: u64 = 1_700_000_000;

    fn sessions_with(keys: Keys, entries: usize) -> (Sessions<MemoryStore>, ManualClock) {
        let clock = ManualClock::new(START);
        let sessions = Sessions::builder(keys, MemoryStore::new())
            .clock(clock.clone())
            .token_cache(entries)
            .build()
            .unwrap();
        (sessions, clock)
    }

    fn sessions(entries: usize) -> (Sessions<MemoryStore>, ManualClock) {
        sessions_with(Keys::hs256([7; 32]).unwrap(), entries)
    }

    fn cache(sessions: &Sessions<MemoryStore>) -> &Entries<()> {
        let cache = sessions.token_cache().unwrap();
        cache.entries::<()>().unwrap()
    }

    fn verify(sessions: &Sessions<MemoryStore>, token: &[u8]) -> Result<Claims, TokenError> {
        sessions.verify_cached(token, sessions.now())
    }

    /// Signs `claims` as this crate signs access tokens, with `keys`.
    fn sign(keys: &Keys, claims: &Claims) -> String {
        jsonwebtoken::encode(
            &keys.header(crate::keys::ACCESS_TOKEN_TYPE),
            claims,
            keys.encoding().unwrap(),
        )
        .unwrap()
    }

    fn claims(sessions: &Sessions<MemoryStore>, token: &str) -> Claims {
        sessions.verify_without_session_check(token).unwrap()
    }

    async fn status(sessions: &Sessions<MemoryStore>, token: &str) -> StatusCode {
        let service = ServiceBuilder::new().layer(sessions.layer()).service_fn(
            |_: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
            },
        );
        let request = Request::get("/")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::default())
            .unwrap();
        service.oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_and_answers_the_same() {
        let (sessions, _) = sessions(100);
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        let token = issued.access_token.as_bytes();
        let first = verify(&sessions, token).unwrap();
        assert_eq!(cache(&sessions).len(), 1);
        let again = verify(&sessions, token).unwrap();
        assert_eq!(first, again);
        assert_eq!(again, claims(&sessions, &issued.access_token));
        assert_eq!(cache(&sessions).len(), 1);
    }

    #[tokio::test]
    async fn a_token_differing_in_any_byte_is_not_served_from_the_cache() {
        let (uncached, _) = sessions(0);
        let (sessions, _) = sessions(100);
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        let token = issued.access_token.into_bytes();
        verify(&sessions, &token).unwrap();
        for at in 0..token.len() {
            for replacement in [b'A', b'x', b'.', b'_', 0] {
                if token[at] == replacement {
                    continue;
                }
                let mut changed = token.clone();
                changed[at] = replacement;
                assert!(
                    cache(&sessions).get(&Presented(&changed)).is_none(),
                    "byte {at} changed, found in the cache"
                );
                // Whatever the changed token is, it is verified on its own: the cached
                // sessions answer as ones without a cache do.
                let outcome = verify(&sessions, &changed).map_err(|e| e.to_string());
                let fresh = uncached
                    .verify_cached(&changed, uncached.now())
                    .map_err(|e| e.to_string());
                assert_eq!(outcome, fresh, "byte {at} changed to {replacement}");
                assert!(outcome.is_err(), "a changed token passed (byte {at})");
            }
        }
        // Longer and shorter: one byte added or removed.
        let mut longer = token.clone();
        longer.push(b'A');
        assert!(verify(&sessions, &longer).is_err());
        assert!(verify(&sessions, &token[..token.len() - 1]).is_err());
        assert!(verify(&sessions, &token).is_ok());
    }

    #[test]
    fn tokens_are_compared_in_full() {
        let verified = Verified(b"header.payload.signature".as_slice().into());
        assert!(Presented(b"header.payload.signature").equivalent(&verified));
        for other in [
            b"header.payload.signaturE".as_slice(),
            b"Header.payload.signature",
            b"header.payload.signatur",
            b"header.payload.signaturee",
            b"",
        ] {
            assert!(!Presented(other).equivalent(&verified));
        }
    }

    #[tokio::test]
    async fn a_token_that_expires_while_cached_is_refused() {
        let (sessions, clock) = sessions(100);
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        assert_eq!(
            status(&sessions, &issued.access_token).await,
            StatusCode::OK
        );
        assert_eq!(cache(&sessions).len(), 1);
        let exp = claims(&sessions, &issued.access_token).exp;
        // Within the leeway (30 s by default) it still passes, as it would uncached.
        clock.set(exp + 29);
        assert_eq!(
            status(&sessions, &issued.access_token).await,
            StatusCode::OK
        );
        clock.set(exp + 30);
        assert_eq!(
            status(&sessions, &issued.access_token).await,
            StatusCode::UNAUTHORIZED
        );
        assert!(matches!(
            verify(&sessions, issued.access_token.as_bytes()),
            Err(TokenError::Expired)
        ));
        assert_eq!(cache(&sessions).len(), 0, "an expired token is forgotten");
    }

    #[tokio::test]
    async fn not_before_is_checked_against_now_on_every_request() {
        let keys = Keys::hs256([7; 32]).unwrap();
        let (sessions, clock) = sessions_with(keys.clone(), 100);
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        let mut claims = claims(&sessions, &issued.access_token);
        claims.nbf = Some(START + 10);
        let token = sign(&keys, &claims);
        // Valid now (within the leeway of its nbf), so it is cached...
        assert_eq!(status(&sessions, &token).await, StatusCode::OK);
        assert_eq!(cache(&sessions).len(), 1);
        // ...and refused once the clock is set back before it, as uncached.
        clock.set(START - 30);
        assert!(matches!(
            verify(&sessions, token.as_bytes()),
            Err(TokenError::NotYetValid)
        ));
        assert_eq!(status(&sessions, &token).await, StatusCode::UNAUTHORIZED);
        clock.set(START);
        assert_eq!(status(&sessions, &token).await, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_session_revoked_while_its_token_is_cached_is_refused_at_once() {
        let (sessions, _) = sessions(100);
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        let other = sessions.issue(Login::new("alice")).await.unwrap();
        for token in [&issued.access_token, &other.access_token] {
            assert_eq!(status(&sessions, token).await, StatusCode::OK);
            assert_eq!(status(&sessions, token).await, StatusCode::OK);
        }
        assert_eq!(cache(&sessions).len(), 2);
        sessions.revoke("alice", &issued.session_id).await.unwrap();
        assert_eq!(
            status(&sessions, &issued.access_token).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(status(&sessions, &other.access_token).await, StatusCode::OK);
        sessions.revoke_all("alice").await.unwrap();
        assert_eq!(
            status(&sessions, &other.access_token).await,
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn a_key_rotation_starts_from_an_empty_cache() {
        let old = Keys::hs256([1; 32]).unwrap().with_kid("old");
        let new = Keys::hs256([2; 32]).unwrap().with_kid("new");
        let (before, clock) = sessions_with(old.clone(), 100);
        let issued = before.issue(Login::new("alice")).await.unwrap();
        let token = &issued.access_token;
        assert_eq!(status(&before, token).await, StatusCode::OK);
        // The rotation: a new Sessions on the same store, still accepting the old key...
        let during = Sessions::builder(new.clone(), before.store().clone())
            .verify_also(old)
            .clock(clock.clone())
            .build()
            .unwrap();
        assert_eq!(status(&during, token).await, StatusCode::OK);
        assert_eq!(status(&during, token).await, StatusCode::OK);
        // ...then without it: tokens of the retired key are refused although the
        // sessions before had them cached.
        let after = Sessions::builder(new, before.store().clone())
            .clock(clock)
            .build()
            .unwrap();
        assert_eq!(status(&after, token).await, StatusCode::UNAUTHORIZED);
        assert!(after.verify_cached(token.as_bytes(), after.now()).is_err());
        let cached = after.token_cache().unwrap();
        assert!(cached.entries::<()>().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_its_size() {
        let (sessions, _) = sessions(16);
        let mut tokens = Vec::new();
        for n in 0..200 {
            let issued = sessions
                .issue(Login::new(format!("user{n}")))
                .await
                .unwrap();
            verify(&sessions, issued.access_token.as_bytes()).unwrap();
            tokens.push(issued.access_token);
            assert!(cache(&sessions).len() <= 16, "{}", cache(&sessions).len());
        }
        // Evicted or not, every token still passes.
        for token in &tokens {
            assert_eq!(status(&sessions, token).await, StatusCode::OK);
        }
        assert!(cache(&sessions).len() <= 16);
    }

    #[tokio::test]
    async fn turned_off_nothing_is_remembered() {
        let (sessions, _) = sessions(0);
        assert!(sessions.token_cache().is_none());
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        assert_eq!(
            status(&sessions, &issued.access_token).await,
            StatusCode::OK
        );
        let off = Sessions::builder(Keys::hs256([7; 32]).unwrap(), MemoryStore::new())
            .no_token_cache()
            .build()
            .unwrap();
        assert!(off.token_cache().is_none());
    }

    #[tokio::test]
    async fn refusals_before_the_cache_are_unchanged() {
        let (sessions, _) = sessions(100);
        let issued = sessions.issue(Login::new("alice")).await.unwrap();
        // A refresh token is the wrong type, cached sessions or not.
        assert!(matches!(
            verify(&sessions, issued.refresh_token.as_bytes()),
            Err(TokenError::WrongType)
        ));
        assert!(matches!(
            verify(&sessions, &vec![b'a'; 9 * 1024]),
            Err(TokenError::TooLong)
        ));
        assert_eq!(cache(&sessions).len(), 0);
    }

    #[tokio::test]
    async fn memory_per_entry() {
        let (sessions, _) = sessions(10_000);
        let issued = sessions
            .issue(Login::new("user1234").scope("profile"))
            .await
            .unwrap();
        let token = issued.access_token.as_bytes();
        let claims = verify(&sessions, token).unwrap();
        let entries = cache(&sessions);
        entries.clear();
        let empty = entries.memory_used().total();
        for n in 0..10_000u32 {
            // Tokens of the same length, all different.
            let mut key = token.to_vec();
            key[..4].copy_from_slice(&n.to_le_bytes());
            remember(entries, &key, claims.clone());
        }
        let table = entries.memory_used().total().saturating_sub(empty) / entries.len().max(1);
        // The token and the claims' strings live on the heap, each with its allocator
        // header (16 bytes on glibc, rounded up to 16).
        let heap = |len: usize| (len + 8).div_ceil(16) * 16;
        let strings = heap(claims.sub.len()) + heap(claims.jti.len()) + heap("profile".len());
        let per_entry = table + heap(token.len()) + strings;
        println!(
            "token cache: {} entries; per entry {per_entry} bytes: table {table} (claims {} \
             inline), token {} ({} bytes long), claims' strings {strings}",
            entries.len(),
            std::mem::size_of::<Claims>(),
            heap(token.len()),
            token.len(),
        );
        assert!(
            entries.len() > 9_000 && entries.len() <= 10_000,
            "{}",
            entries.len()
        );
        assert!(per_entry < 1024, "{per_entry} bytes per entry");
    }
}
