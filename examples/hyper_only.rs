//! The layer on a bare hyper 1 server: no framework, just `tower::ServiceBuilder`.
//!
//! ```text
//! cargo run --example hyper_only
//! ```
//!
//! It mints a token for `alice` at start and prints it; `GET /` greets the token's user.
//! `ADDR` chooses where to listen (default `127.0.0.1:3001`).

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_jwt_auth::store::MemoryStore;
use tower_jwt_auth::{Claims, Keys, Login, Sessions};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // The layer only lets requests with verified claims through.
    let greeting = match request.extensions().get::<Claims>() {
        Some(claims) => format!("hello {}, session {}\n", claims.sub, claims.sid),
        None => "hello, whoever you are\n".to_owned(),
    };
    Ok(Response::new(Full::from(greeting)))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut secret = [0; 32];
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| "no randomness for the key")?;
    let sessions = Sessions::builder(Keys::hs256(secret)?, MemoryStore::new()).build()?;
    let service = ServiceBuilder::new()
        .layer(sessions.layer())
        .service_fn(hello);

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3001".into());
    let listener = TcpListener::bind(&addr).await?;
    let issued = sessions.issue(Login::new("alice")).await?;
    println!("listening on http://{addr}");
    println!(
        "try: curl -i http://{addr}/ -H 'Authorization: Bearer {}'",
        issued.access_token
    );

    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {error}");
            }
        });
    }
}
