//! gRPC refusals end to end: a tonic server with the layer and [`GrpcErrors`], called by a
//! tonic client over HTTP/2, with tonic-health's ready-made service and client.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower_jwt_auth::store::{
    Created, MemoryStore, Rotated, Rotation, Session, SessionLimit, SessionStore, StoreError,
};
use tower_jwt_auth::{GrpcErrors, Keys, Login, SessionId, Sessions};

/// The memory store, made to fail on demand.
#[derive(Clone, Default)]
struct Flaky {
    store: MemoryStore,
    down: Arc<AtomicBool>,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

impl SessionStore for Flaky {
    type IsActive = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>>;

    async fn create(
        &self,
        session: &Session,
        limit: Option<SessionLimit>,
    ) -> Result<Created, StoreError> {
        self.check()?;
        self.store.create(session, limit).await
    }
    fn is_active(&self, sub: &str, sid: &SessionId, now: u64, touch: u64) -> Self::IsActive {
        match self.check() {
            Ok(()) => Box::pin(self.store.is_active(sub, sid, now, touch)),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }
    async fn rotate(
        &self,
        sub: &str,
        sid: &SessionId,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        self.check()?;
        self.store.rotate(sub, sid, rotation).await
    }
    async fn revoke_authenticated_before(
        &self,
        sub: &str,
        before: SystemTime,
        now: SystemTime,
    ) -> Result<u64, StoreError> {
        self.check()?;
        self.store
            .revoke_authenticated_before(sub, before, now)
            .await
    }
    async fn revoke(&self, sub: &str, sid: &SessionId) -> Result<bool, StoreError> {
        self.check()?;
        self.store.revoke(sub, sid).await
    }
    async fn revoke_all(&self, sub: &str) -> Result<u64, StoreError> {
        self.check()?;
        self.store.revoke_all(sub).await
    }
    async fn list(&self, sub: &str, now: u64, max: usize) -> Result<Vec<Session>, StoreError> {
        self.check()?;
        self.store.list(sub, now, max).await
    }
}

/// The health service behind the layer on a free port, and a client connected to it.
async fn start(sessions: &Sessions<Flaky>) -> HealthClient<Channel> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder()
        .layer(sessions.layer())
        .add_service(health)
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(async move {
        // Keep the reporter for as long as the server runs.
        let _reporter = reporter;
        server.await
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

fn check(token: Option<&str>) -> Request<HealthCheckRequest> {
    let mut request = Request::new(HealthCheckRequest {
        service: String::new(),
    });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

#[tokio::test]
async fn tonic_clients_read_refusals_as_grpc_statuses() {
    let store = Flaky::default();
    let sessions = Sessions::builder(Keys::hs256([7; 32]).unwrap(), store.clone())
        .error_handler(GrpcErrors)
        .build()
        .unwrap();
    let mut client = start(&sessions).await;

    // No token.
    let status = client.check(check(None)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), "missing bearer token");

    // A valid one: served.
    let issued = sessions.issue(Login::new("alice")).await.unwrap();
    let served = client
        .check(check(Some(&issued.access_token)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(served.status(), ServingStatus::Serving);

    // A malformed one.
    let status = client.check(check(Some("not.a.token"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "malformed token");

    // The store cannot answer: unavailable, never served.
    store.down.store(true, Ordering::SeqCst);
    let status = client
        .check(check(Some(&issued.access_token)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "session store unavailable");
    assert_eq!(status.metadata().get("retry-after").unwrap(), "1");
    store.down.store(false, Ordering::SeqCst);

    // Revoked.
    sessions.revoke("alice", &issued.session_id).await.unwrap();
    let status = client
        .check(check(Some(&issued.access_token)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "revoked");
}

#[tokio::test]
async fn a_missing_scope_is_permission_denied() {
    let sessions = Sessions::builder(Keys::hs256([7; 32]).unwrap(), Flaky::default())
        .error_handler(GrpcErrors)
        .build()
        .unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder()
        .layer(sessions.layer().require_scope("health"))
        .add_service(health)
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(server);
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);

    let issued = sessions
        .issue(Login::new("alice").scope("profile"))
        .await
        .unwrap();
    let status = client
        .check(check(Some(&issued.access_token)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "insufficient scope");

    let issued = sessions
        .issue(Login::new("alice").scope("profile health"))
        .await
        .unwrap();
    let served = client.check(check(Some(&issued.access_token))).await;
    assert_eq!(
        served.unwrap().into_inner().status(),
        ServingStatus::Serving
    );
    drop(reporter);
}
