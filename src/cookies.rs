//! Cookie mode, for browsers: tokens in `HttpOnly` cookies that no script can read, set at
//! login and refresh, cleared at logout, and a same-origin check against cross-site
//! requests.
//!
//! Configured on the builder with [`SessionsBuilder::cookies`](crate::SessionsBuilder::cookies):
//!
//! - **Asking for it.** A login or refresh request with the header `Token-Delivery: cookie`
//!   (the page's own `fetch`) gets its tokens as cookies, and a JSON body without them
//!   (`{"token_type", "expires_in", "refresh_expires_in", "scope"}`). A refresh request that
//!   carries the refresh cookie and no token in its body is answered the same way. Any other
//!   client gets exactly the JSON answers of bearer mode, and no cookie.
//! - **The cookies.** The access token in `__Host-access_token` (`Path=/`), the refresh
//!   token in `__Secure-refresh_token` scoped to the refresh route (`Path=/refresh`), both
//!   `HttpOnly`, `Secure`, `SameSite=Strict`, living as long as their tokens. Without
//!   `Secure` (plain-HTTP development) the prefixes cannot be used and the names are
//!   `access_token` and `refresh_token`.
//! - **Requests** may present the access token in its cookie instead of a bearer header
//!   (never both: 400).
//! - **Logout** ([`LogoutService`](crate::LogoutService) and its sibling) clears both
//!   cookies when the request was authenticated by cookie, and ends the session as always.
//! - **Cross-site requests** (CSRF). A request authenticated by cookie with an unsafe method
//!   (anything but `GET`, `HEAD`, `OPTIONS`, `TRACE`) is refused with 403 unless it is
//!   same-origin: `Sec-Fetch-Site: same-origin`, or an `Origin` equal to the server's own
//!   (`https://` or, without `Secure`, `http://`, then the `Host`), or one of the
//!   [allowed origins](CookieConfig::allow_origin). `SameSite` does not suffice: two ports of
//!   one host are the same *site*, so a page on another port could otherwise post with the
//!   user's cookies. A bearer header is never subject to this check (a browser never adds
//!   one by itself).
//!
//! ```
//! use tower_jwt_auth::cookies::CookieConfig;
//! use tower_jwt_auth::{Keys, Sessions, store::MemoryStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = Sessions::builder(Keys::hs256([7; 32])?, MemoryStore::new())
//!     .cookies(CookieConfig::new().allow_origin("https://app.example.com"))
//!     .build()?;
//! # Ok(()) }
//! ```

use cookie::{Cookie, SameSite};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response};

/// The header with which a client asks for its tokens as cookies.
pub const TOKEN_DELIVERY: &str = "token-delivery";

/// How tokens travel as cookies. See the [module docs](crate::cookies).
#[derive(Debug, Clone)]
pub struct CookieConfig {
    access_name: Option<String>,
    refresh_name: Option<String>,
    refresh_path: String,
    same_site: SameSite,
    secure: bool,
    allowed_origins: Vec<String>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl CookieConfig {
    /// `Secure`, `HttpOnly`, `SameSite=Strict` cookies named `__Host-access_token` and
    /// `__Secure-refresh_token`, the refresh cookie for `/refresh` only.
    pub fn new() -> Self {
        Self {
            access_name: None,
            refresh_name: None,
            refresh_path: "/refresh".into(),
            same_site: SameSite::Strict,
            secure: true,
            allowed_origins: Vec::new(),
        }
    }

    /// Whether the cookies are `Secure` (sent over HTTPS only; the default). Turn it off
    /// only for plain-HTTP development on localhost.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The cookies' names, instead of the defaults.
    pub fn names(mut self, access: impl Into<String>, refresh: impl Into<String>) -> Self {
        self.access_name = Some(access.into());
        self.refresh_name = Some(refresh.into());
        self
    }

    /// The path the refresh service is routed at (default `/refresh`): the refresh cookie
    /// is sent there only.
    pub fn refresh_path(mut self, path: impl Into<String>) -> Self {
        self.refresh_path = path.into();
        self
    }

    /// `SameSite=Strict` (the default) or `Lax`; `None` is refused by browsers without
    /// `Secure`.
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Also accept unsafe requests authenticated by cookie from `origin` (scheme, host and
    /// port, as the `Origin` header writes it: `https://app.example.com`).
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.push(origin.into());
        self
    }

    /// The access token's cookie name.
    pub fn access_name(&self) -> &str {
        match (&self.access_name, self.secure) {
            (Some(name), _) => name,
            (None, true) => "__Host-access_token",
            (None, false) => "access_token",
        }
    }

    /// The refresh token's cookie name.
    pub fn refresh_name(&self) -> &str {
        match (&self.refresh_name, self.secure) {
            (Some(name), _) => name,
            (None, true) => "__Secure-refresh_token",
            (None, false) => "refresh_token",
        }
    }

    /// Whether the names and flags fit together: HTTP tokens for names, and the prefixes'
    /// rules (RFC 6265bis §4.1.3: `__Secure-` and `__Host-` need `Secure`, `__Host-` a path
    /// of `/`).
    pub(crate) fn is_valid(&self) -> bool {
        let token =
            |name: &str| !name.is_empty() && http::HeaderName::from_bytes(name.as_bytes()).is_ok();
        let prefix_ok = |name: &str, path: &str| {
            let secure_prefixed = name.starts_with("__Secure-") || name.starts_with("__Host-");
            (!secure_prefixed || self.secure) && (!name.starts_with("__Host-") || path == "/")
        };
        token(self.access_name())
            && token(self.refresh_name())
            && self.refresh_path.starts_with('/')
            && prefix_ok(self.access_name(), "/")
            && prefix_ok(self.refresh_name(), &self.refresh_path)
            && (self.same_site != SameSite::None || self.secure)
    }

    fn cookie<'a>(
        &'a self,
        name: &'a str,
        value: &'a str,
        path: &'a str,
        max_age: u64,
    ) -> Cookie<'a> {
        let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
        Cookie::build((name, value))
            .path(path)
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site)
            .max_age(cookie::time::Duration::seconds(max_age))
            .build()
    }

    /// Sets both cookies on `response`.
    pub(crate) fn set<B>(
        &self,
        response: &mut Response<B>,
        access: (&str, u64),
        refresh: (&str, u64),
    ) {
        let cookies = [
            self.cookie(self.access_name(), access.0, "/", access.1),
            self.cookie(
                self.refresh_name(),
                refresh.0,
                &self.refresh_path,
                refresh.1,
            ),
        ];
        append(response.headers_mut(), &cookies);
    }

    /// Clears both cookies on `response` (same names and paths, empty, `Max-Age=0`).
    pub(crate) fn clear<B>(&self, response: &mut Response<B>) {
        let cookies = [
            self.cookie(self.access_name(), "", "/", 0),
            self.cookie(self.refresh_name(), "", &self.refresh_path, 0),
        ];
        append(response.headers_mut(), &cookies);
    }

    /// Whether an unsafe request with these headers comes from the server's own pages (or
    /// an allowed origin). Safe methods always pass.
    pub(crate) fn is_same_origin(&self, method: &Method, headers: &HeaderMap) -> bool {
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return true;
        }
        if headers
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes() == b"same-origin")
        {
            return true;
        }
        let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
            // No way to tell where it comes from: a browser sends one with every unsafe
            // request, so refuse.
            return false;
        };
        if self.allowed_origins.iter().any(|allowed| allowed == origin) {
            return true;
        }
        let scheme = if self.secure { "https://" } else { "http://" };
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        host.is_some_and(|host| {
            origin
                .strip_prefix(scheme)
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
        })
    }
}

fn append(headers: &mut HeaderMap, cookies: &[Cookie<'_>]) {
    for cookie in cookies {
        // Names were checked at build time and values are b64tokens: always a valid value.
        if let Ok(value) = HeaderValue::try_from(cookie.to_string()) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

/// Whether the client asked for its tokens as cookies.
pub(crate) fn wants_cookies(headers: &HeaderMap) -> bool {
    headers
        .get(TOKEN_DELIVERY)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"cookie"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_the_attributes_and_prefixes() {
        let config = CookieConfig::new();
        assert!(config.is_valid());
        let mut response = Response::new(());
        config.set(&mut response, ("aaa", 900), ("rrr", 604_800));
        let set: Vec<_> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            set,
            [
                "__Host-access_token=aaa; HttpOnly; SameSite=Strict; Secure; Path=/; Max-Age=900",
                "__Secure-refresh_token=rrr; HttpOnly; SameSite=Strict; Secure; Path=/refresh; Max-Age=604800",
            ]
        );
        let mut response = Response::new(());
        config.clear(&mut response);
        assert!(
            response
                .headers()
                .get_all(header::SET_COOKIE)
                .iter()
                .all(|v| {
                    let v = v.to_str().unwrap();
                    v.contains("Max-Age=0") && v.contains("=;")
                })
        );
    }

    #[test]
    fn prefixes_need_secure_and_the_host_prefix_the_root_path() {
        assert!(CookieConfig::new().secure(false).is_valid());
        assert_eq!(
            CookieConfig::new().secure(false).access_name(),
            "access_token"
        );
        assert!(
            !CookieConfig::new()
                .secure(false)
                .names("__Host-a", "r")
                .is_valid()
        );
        assert!(!CookieConfig::new().names("a", "__Host-r").is_valid());
        assert!(!CookieConfig::new().names("a b", "r").is_valid());
        assert!(
            !CookieConfig::new()
                .secure(false)
                .same_site(SameSite::None)
                .is_valid()
        );
    }

    #[test]
    fn only_same_origin_unsafe_requests_pass() {
        let config = CookieConfig::new().allow_origin("https://app.example");
        let headers = |pairs: &[(&str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            map
        };
        let post = Method::POST;
        assert!(config.is_same_origin(&Method::GET, &headers(&[])));
        assert!(!config.is_same_origin(&post, &headers(&[])));
        assert!(config.is_same_origin(&post, &headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!config.is_same_origin(&post, &headers(&[("sec-fetch-site", "same-site")])));
        let own = [
            ("host", "example.com:8443"),
            ("origin", "https://example.com:8443"),
        ];
        assert!(config.is_same_origin(&post, &headers(&own)));
        let other_port = [
            ("host", "example.com:8443"),
            ("origin", "https://example.com:9000"),
        ];
        assert!(!config.is_same_origin(&post, &headers(&other_port)));
        let plain = [
            ("host", "example.com:8443"),
            ("origin", "http://example.com:8443"),
        ];
        assert!(!config.is_same_origin(&post, &headers(&plain)));
        let allowed = [("host", "api.example"), ("origin", "https://app.example")];
        assert!(config.is_same_origin(&Method::DELETE, &headers(&allowed)));
    }
}
