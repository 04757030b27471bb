//! The service `serve` runs: codec requests straight to their handler,
//! everything else through the router.
//!
//! `POST …/encode`, `…/decode` and `…/download` are nearly all the traffic
//! (a history page in the Web UI sends one `/decode` per payload field), so
//! they skip the router's layers: the handler is called directly and the
//! CORS headers come from [`CorsAnswers`], worked out by the CORS layer at
//! start-up. Preflights, health, metrics and wrong methods go through the
//! [`router`](crate::router) as before. The answers are the same either way
//! (tests in `tests/paths.rs` send the same requests through both).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::response::Response;

use crate::cors::CorsAnswers;
use crate::routes;
use crate::state::AppState;

/// The server's service (see the module docs).
#[derive(Clone)]
pub(crate) struct CodecService {
    state: AppState,
    cors: Option<Arc<CorsAnswers>>,
    router: Router,
}

impl CodecService {
    /// Serves codec requests for `state` with `cors`, and the rest with `router`.
    /// Without `cors` every request goes through the router.
    pub(crate) fn new(state: AppState, cors: Option<CorsAnswers>, router: Router) -> Self {
        Self {
            state,
            cors: cors.map(Arc::new),
            router,
        }
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl tower::Service<Request> for CodecService {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Answer {
        match &self.cors {
            Some(cors)
                if request.method() == Method::POST
                    && routes::is_codec_path(request.uri().path()) =>
            {
                let state = self.state.clone();
                let cors = cors.clone();
                Box::pin(async move {
                    let added = cors.for_origin(request.headers().get(header::ORIGIN));
                    let mut response = routes::dispatch(State(state), request).await;
                    let headers = response.headers_mut();
                    for (name, value) in added {
                        headers.append(name, value.clone());
                    }
                    Ok(response)
                })
            }
            _ => {
                let answer = tower::Service::call(&mut self.router, request);
                Box::pin(answer)
            }
        }
    }
}
