//! The layer on a tonic gRPC server, with refusals as gRPC statuses ([`GrpcErrors`]).
//!
//! ```text
//! cargo run --example grpc
//! ```
//!
//! It serves tonic-health's `grpc.health.v1.Health` behind the layer on `ADDR` (default
//! `127.0.0.1:50051`), calls it once without a token, once with a token for `alice`, and
//! once after that session was revoked, printing what a tonic client sees; then it keeps
//! serving, and prints a token to call it with.

use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower_jwt_auth::store::MemoryStore;
use tower_jwt_auth::{GrpcErrors, Keys, Login, Sessions};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut secret = [0; 32];
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| "no randomness for the key")?;
    let sessions = Sessions::builder(Keys::hs256(secret)?, MemoryStore::new())
        // Refused calls become trailers-only answers with grpc-status 16, 7 or 14.
        .error_handler(GrpcErrors)
        .build()?;

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:50051".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let server = Server::builder()
        // Every call of every service added below is authenticated.
        .layer(sessions.layer())
        .add_service(health)
        .serve_with_incoming(TcpIncoming::from(listener));
    let server = tokio::spawn(server);
    println!("listening on http://{addr} (gRPC)");

    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = HealthClient::new(channel);
    let call = |token: Option<&str>| {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        if let Some(token) = token
            && let Ok(value) = format!("Bearer {token}").parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    };
    let show = |label: &str, result: Result<tonic::Response<_>, tonic::Status>| match result {
        Ok(response) => println!("{label}: served, {:?}", response.into_inner()),
        Err(status) => println!("{label}: {:?} {:?}", status.code(), status.message()),
    };

    show("no token", client.check(call(None)).await);
    let issued = sessions.issue(Login::new("alice")).await?;
    show(
        "alice's token",
        client.check(call(Some(&issued.access_token))).await,
    );
    sessions.revoke("alice", &issued.session_id).await?;
    show(
        "after logout",
        client.check(call(Some(&issued.access_token))).await,
    );

    let issued = sessions.issue(Login::new("alice")).await?;
    println!("a live token for alice: {}", issued.access_token);
    server.await??;
    drop(reporter);
    Ok(())
}
