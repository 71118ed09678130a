//! Pulling the bearer credential out of a request (RFC 6750 §2.1, RFC 7235 §2.1).
//!
//! Exactly one `Authorization` header, scheme `Bearer` in any case, one or more spaces, one
//! b64token no longer than the configured maximum. With a cookie name configured, the token
//! may come from that cookie instead, but never from both places at once.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use crate::error::{AuthError, RequestError, TokenError};

/// Where tokens are looked for, and how long they may be.
#[derive(Debug, Clone)]
pub(crate) struct Extractor {
    pub(crate) max_len: usize,
    pub(crate) cookie: Option<String>,
}

impl Extractor {
    /// The token the request presents: a b64token, so ASCII (and never converted to `str`,
    /// which would scan it once more).
    pub(crate) fn token<'a>(&self, headers: &'a HeaderMap) -> Result<&'a [u8], AuthError> {
        self.credential(headers).map(|(token, _)| token)
    }

    /// The token, and whether it came from the cookie (a browser sends those by itself, so
    /// unsafe requests they authenticate must be same-origin).
    pub(crate) fn credential<'a>(
        &self,
        headers: &'a HeaderMap,
    ) -> Result<(&'a [u8], bool), AuthError> {
        let from_header = authorization(headers)?;
        let from_cookie = match &self.cookie {
            Some(name) => cookie(headers, name)?,
            None => None,
        };
        let (token, malformed) = match (from_header, from_cookie) {
            (Some(_), Some(_)) => return Err(RequestError::MultipleCredentials.into()),
            (Some(token), None) => (token, RequestError::MalformedHeader),
            (None, Some(token)) => (token, RequestError::MalformedCookie),
            (None, None) => return Err(AuthError::Missing),
        };
        // Length before syntax: an oversize token is refused without being scanned.
        if token.len() > self.max_len {
            return Err(TokenError::TooLong.into());
        }
        if !is_b64token(token) {
            return Err(malformed.into());
        }
        Ok((token, malformed == RequestError::MalformedCookie))
    }
}

/// The bearer token of the one `Authorization` header; `None` when there is no header or it
/// is of another scheme (no bearer credentials, so no error code: RFC 6750 §3.1).
fn authorization(headers: &HeaderMap) -> Result<Option<&[u8]>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(RequestError::MultipleHeaders.into());
    }
    let value = value.as_bytes();
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &[][..]),
    };
    if scheme.is_empty() {
        return Err(RequestError::MalformedHeader.into());
    }
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let token = &rest[start..];
    if token.is_empty() {
        return Err(RequestError::MalformedHeader.into());
    }
    Ok(Some(token))
}

/// The value of cookie `name`; two cookies of that name are two credentials.
///
/// Split by hand rather than with `cookie::Cookie::split_parse` (the `cookie` crate does
/// build the cookies this crate sets): on a five-cookie header holding a 300-byte token,
/// this takes about 4,000 instructions and `split_parse` about 6,400 (callgrind, release
/// build, cookie 0.18.2), and `split_parse` needs the header as `&str`, so one other cookie
/// with a non-ASCII byte (obs-text, which HTTP allows) would hide the token. The grammar is
/// small: pairs split on `;`, trimmed, the name compared exactly, one pair of quotes removed.
pub(crate) fn cookie<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a [u8]>, AuthError> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        for pair in header.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            let Some(equals) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if &pair[..equals] != name.as_bytes() {
                continue;
            }
            let value = &pair[equals + 1..];
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            if found.replace(value).is_some() {
                return Err(RequestError::MultipleCredentials.into());
            }
        }
    }
    Ok(found)
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..token.len() - padding];
    // A fold without early exit: branch-free, so the compiler vectorises it. Every request
    // pays for this scan over the whole token.
    !body.is_empty() && body.iter().fold(true, |ok, &b| ok & is_b64token_char(b))
}

const fn is_b64token_char(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter
        | digit
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn extractor(cookie: Option<&str>) -> Extractor {
        Extractor {
            max_len: 16,
            cookie: cookie.map(str::to_owned),
        }
    }

    fn headers(pairs: &[(&http::HeaderName, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    fn outcome(cookie: Option<&str>, pairs: &[(&http::HeaderName, &[u8])]) -> String {
        match extractor(cookie).token(&headers(pairs)) {
            Ok(token) => format!("token {}", String::from_utf8_lossy(token)),
            Err(error) => format!("{} {}", error.status().as_u16(), error.description()),
        }
    }

    #[test]
    fn authorization_headers() {
        let cases: &[(&[u8], &str)] = &[
            (b"Bearer abc.def", "token abc.def"),
            (b"bearer abc", "token abc"),
            (b"BEARER abc", "token abc"),
            (b"Bearer   abc", "token abc"),
            (b"Bearer a-b_c~d+e/f==", "token a-b_c~d+e/f=="),
            (b"", "400 malformed Authorization header"),
            (b"Bearer", "400 malformed Authorization header"),
            (b"Bearer ", "400 malformed Authorization header"),
            (b"Bearer a b", "400 malformed Authorization header"),
            (b"Bearer ab$c", "400 malformed Authorization header"),
            (b"Bearer =", "400 malformed Authorization header"),
            (b"Bearer a=b", "400 malformed Authorization header"),
            (b" Bearer abc", "400 malformed Authorization header"),
            (b"Bearer \xffabc", "400 malformed Authorization header"),
            (b"\xff", "401 missing bearer token"),
            (b"Basic YWxpY2U6cHc=", "401 missing bearer token"),
            (b"Bearerabc", "401 missing bearer token"),
            (b"Bearer 0123456789abcdefX", "401 token too long"),
        ];
        for (value, expected) in cases {
            assert_eq!(
                outcome(None, &[(&AUTHORIZATION, value)]),
                *expected,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(outcome(None, &[]), "401 missing bearer token");
        assert_eq!(
            outcome(
                None,
                &[(&AUTHORIZATION, b"Bearer a"), (&AUTHORIZATION, b"Bearer a")]
            ),
            "400 more than one Authorization header"
        );
    }

    #[test]
    fn the_b64token_alphabet_is_exact() {
        let allowed: Vec<u8> = (0..=255u8).filter(|&b| is_b64token_char(b)).collect();
        let expected: Vec<u8> = (0..=255u8)
            .filter(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b))
            .collect();
        assert_eq!(allowed, expected);
    }

    #[test]
    fn cookies_only_when_configured_and_never_beside_a_header() {
        assert_eq!(
            outcome(None, &[(&COOKIE, b"at=abc")]),
            "401 missing bearer token"
        );
        assert_eq!(
            outcome(Some("at"), &[(&COOKIE, b"theme=dark; at=abc")]),
            "token abc"
        );
        assert_eq!(
            outcome(Some("at"), &[(&COOKIE, b"at=\"abc\"")]),
            "token abc"
        );
        assert_eq!(
            outcome(
                Some("at"),
                &[(&COOKIE, b"at=abc"), (&AUTHORIZATION, b"Bearer abc")]
            ),
            "400 more than one credential"
        );
        assert_eq!(
            outcome(Some("at"), &[(&COOKIE, b"at=abc"), (&COOKIE, b"at=def")]),
            "400 more than one credential"
        );
        assert_eq!(
            outcome(Some("at"), &[(&COOKIE, b"at=a b")]),
            "400 malformed token cookie"
        );
    }
}
