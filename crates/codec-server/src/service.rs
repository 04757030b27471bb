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
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, header};
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};

use crate::cors::CorsAnswers;
use crate::routes;
use crate::state::{AppState, TableView};

/// What every connection is served with.
#[derive(Clone)]
struct Shared {
    state: AppState,
    cors: Option<Arc<CorsAnswers>>,
    router: Router,
}

/// Makes a [`CodecService`] for each connection.
#[derive(Clone)]
pub(crate) struct MakeCodecService(Shared);

impl MakeCodecService {
    /// Serves codec requests for `state` with `cors`, and the rest with `router`.
    /// Without `cors` every request goes through the router.
    pub(crate) fn new(state: AppState, cors: Option<CorsAnswers>, router: Router) -> Self {
        Self(Shared {
            state,
            cors: cors.map(Arc::new),
            router,
        })
    }
}

impl<L: Listener> tower::Service<IncomingStream<'_, L>> for MakeCodecService {
    type Response = CodecService;
    type Error = Infallible;
    type Future = Ready<Result<CodecService, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _stream: IncomingStream<'_, L>) -> Self::Future {
        ready(Ok(CodecService(Arc::new(Connection {
            table: self.0.state.table_view(),
            shared: self.0.clone(),
        }))))
    }
}

/// One connection's service. hyper clones it for every request, and each
/// request holds it until answered: the reference counts written are the
/// connection's own, not ones every core shares (see [`TableView`]).
#[derive(Clone)]
pub(crate) struct CodecService(Arc<Connection>);

struct Connection {
    shared: Shared,
    table: TableView,
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
        let shared = &self.0.shared;
        match &shared.cors {
            Some(_)
                if request.method() == Method::POST
                    && routes::is_codec_path(request.uri().path()) =>
            {
                let connection = self.0.clone();
                Box::pin(async move {
                    let Connection { shared, table } = &*connection;
                    let added = shared
                        .cors
                        .as_deref()
                        .map(|cors| cors.for_origin(request.headers().get(header::ORIGIN)))
                        .unwrap_or_default();
                    let mut response = routes::dispatch(&shared.state, table, request).await;
                    let headers = response.headers_mut();
                    for (name, value) in added {
                        headers.append(name, value.clone());
                    }
                    Ok(response)
                })
            }
            _ => {
                let answer = tower::Service::call(&mut shared.router.clone(), request);
                Box::pin(answer)
            }
        }
    }
}
