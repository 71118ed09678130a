//! What the benches send through the layer: requests carrying tokens in turn, and an inner
//! service that answers each with 200.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use tower::{Service, service_fn};

/// Requests bearing `tokens` in turn, round and round.
pub fn requests(tokens: &[String]) -> impl FnMut() -> Request<Full<Bytes>> + '_ {
    let mut next = 0;
    move || {
        let token = &tokens[next % tokens.len()];
        next += 1;
        let mut request = Request::new(Full::new(Bytes::new()));
        request.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::try_from(format!("Bearer {token}")).unwrap(),
        );
        request
    }
}

/// The inner service: 200, with the request (and the claims the layer put into it) kept
/// in the response, so that they are dropped outside the timed part.
pub fn mock() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    service_fn(|request: Request<Full<Bytes>>| async {
        let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
        response.extensions_mut().insert(request.into_parts().0);
        Ok::<_, Infallible>(response)
    })
}
