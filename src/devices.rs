//! A user's sessions as they see them: "your devices", serialised to the JSON a device list
//! needs.
//!
//! [`Session`] serialises to `{"id", "created_at", "last_used_at", "expires_at",
//! "user_agent", "address"}` with RFC 3339 times (never its refresh state);
//! [`Sessions::devices`] lists the caller's sessions with the one making the request marked
//! `"current"`, as `{"sessions": [...]}`. With feature `axum` it is a whole route:
//!
//! ```
//! use axum::{Router, extract::State, routing::get};
//! use tower_jwt_auth::{AuthError, Claims, Keys, Sessions, devices::Devices, store::MemoryStore};
//!
//! async fn devices(
//!     State(sessions): State<Sessions<MemoryStore>>,
//!     claims: Claims,
//! ) -> Result<Devices, AuthError> {
//!     sessions.devices(&claims).await
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = Sessions::builder(Keys::hs256([7; 32])?, MemoryStore::new()).build()?;
//! let app: Router = Router::new()
//!     .route("/sessions", get(devices))
//!     .route_layer(sessions.layer())
//!     .with_state(sessions);
//! # Ok(()) }
//! ```

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use crate::clock::rfc3339;
use crate::error::AuthError;
use crate::store::{Session, SessionStore};
use crate::{Claims, Sessions};

impl Serialize for Session {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut session = serializer.serialize_struct("Session", 6)?;
        session.serialize_field("id", &self.id)?;
        session.serialize_field("created_at", &rfc3339(self.created_at))?;
        session.serialize_field("last_used_at", &rfc3339(self.last_used_at))?;
        session.serialize_field("expires_at", &rfc3339(self.expires_at))?;
        session.serialize_field("user_agent", &self.user_agent)?;
        session.serialize_field("address", &self.address)?;
        session.end()
    }
}

/// One of the caller's sessions, and whether it is the one making the request.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Device {
    /// The session.
    #[serde(flatten)]
    pub session: Session,
    /// Whether the request came with this session's token.
    pub current: bool,
}

/// The caller's live sessions, first created first: `{"sessions": [...]}`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Devices {
    /// The sessions.
    pub sessions: Vec<Device>,
}

impl<St: SessionStore, C> Sessions<St, C> {
    /// The sessions of the user of `claims`, the one of `claims` marked current (at most as
    /// many as [`list`](Self::list) returns). A store that cannot answer is
    /// [`AuthError::StoreUnavailable`], answered 503 like the layer's refusals.
    pub async fn devices(&self, claims: &Claims<C>) -> Result<Devices, AuthError> {
        let sessions = self.list(&claims.sub).await?;
        Ok(Devices {
            sessions: sessions
                .into_iter()
                .map(|session| Device {
                    current: session.id == claims.sid,
                    session,
                })
                .collect(),
        })
    }
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for Devices {
    fn into_response(self) -> axum_core::response::Response {
        // Strings, numbers and booleans only: serialising cannot fail.
        let body = serde_json::to_vec(&self).unwrap_or_default();
        ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::SessionId;

    #[test]
    fn a_session_serialises_to_the_device_list_shape_without_its_refresh_state() {
        let at = |seconds| UNIX_EPOCH + Duration::from_secs(seconds);
        let mut session = Session::new(
            SessionId::from_bytes([1; 16]),
            "alice",
            at(1_700_000_000),
            at(1_700_086_400),
        );
        session.user_agent = Some("curl/8".into());
        session.address = Some("203.0.113.7".parse().unwrap());
        session.refresh.digest = [0xAB; 32];
        let device = Device {
            session,
            current: true,
        };
        assert_eq!(
            serde_json::to_value(&device).unwrap(),
            serde_json::json!({
                "id": "AQEBAQEBAQEBAQEBAQEBAQ",
                "created_at": "2023-11-14T22:13:20Z",
                "last_used_at": "2023-11-14T22:13:20Z",
                "expires_at": "2023-11-15T22:13:20Z",
                "user_agent": "curl/8",
                "address": "203.0.113.7",
                "current": true,
            })
        );
    }
}
