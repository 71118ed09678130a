//! The "your devices" page at `GET /`: plain HTML, CSS and a little JavaScript, compiled
//! into the binary.
//!
//! The page signs in with `Token-Delivery: cookie`, so its tokens live in `HttpOnly`
//! cookies that its script cannot read; it lists the user's sessions from `GET /sessions`,
//! ends one with `DELETE /sessions/{id}`, signs out with `POST /logout` or
//! `POST /logout/all`, and refreshes the access cookie before it expires. Its
//! Content-Security-Policy allows scripts, styles and requests from this origin only, and
//! no framing.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

const HTML: &str = include_str!("index.html");
const CSS: &str = include_str!("devices.css");
const SCRIPT: &str = include_str!("devices.js");

/// No inline script or style, nothing from elsewhere, forms post here only, no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The page and its two files.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", HTML) }),
        )
        .route(
            "/devices.css",
            get(|| async { file("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/devices.js",
            get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }),
        )
}

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // Always the page of this build.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body)
}
