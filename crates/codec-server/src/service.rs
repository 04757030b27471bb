//! [`CodecService`]: the one way requests go through the server, whether
//! `serve` runs it, an embedder mounts it in its own router, or the tests
//! and benches call it.
//!
//! Each request's path is looked at once: a preflight (`OPTIONS`, any
//! path) is answered from the CORS answers; `…/encode`, `…/decode` and
//! `…/download` go to [`codec_route`]; `/healthz`, `/readyz` and
//! `/metrics` are answered here; anything else is a 404 or 405. Every
//! answer but a preflight gets the CORS headers for its origin, and codec
//! requests and refusals are counted in the metrics and the access log.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};

use crate::access_log::AccessLine;
use crate::codec_route::{self, Answer, Outcome, action_of};
use crate::connection::Activity;
use crate::error::ApiError;
use crate::metrics::RequestStats;
use crate::state::{AppState, TableView};

/// The server's service: every request, one path (see the module docs).
///
/// Cheap to clone: clones share one view of the namespace table. `serve`
/// makes one per connection, so the reference counts a request takes are
/// its connection's (see `state.rs`).
#[derive(Clone, Debug)]
pub struct CodecService(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    state: AppState,
    table: TableView,
    activity: Option<Arc<Activity>>,
}

impl CodecService {
    /// The service for `state`.
    pub fn new(state: AppState) -> Self {
        Self::for_connection(state, None)
    }

    /// The service for one connection, which it tells when requests start
    /// and end (for its idle timeout).
    pub(crate) fn for_connection(state: AppState, activity: Option<Arc<Activity>>) -> Self {
        Self(Arc::new(Inner {
            table: state.table_view(),
            state,
            activity,
        }))
    }
}

type Answered = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl tower::Service<Request> for CodecService {
    type Response = Response;
    type Error = Infallible;
    type Future = Answered;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Answered {
        let inner = self.0.clone();
        Box::pin(async move {
            let version = request.version();
            let _active = inner.activity.as_deref().map(|a| a.start(version));
            Ok(inner.answer(request).await)
        })
    }
}

impl Inner {
    async fn answer(&self, request: Request) -> Response {
        let cors = self.state.cors();
        let origin = request.headers().get(header::ORIGIN).cloned();
        if request.method() == Method::OPTIONS {
            let mut response = StatusCode::OK.into_response();
            append(&mut response, cors.preflight(origin.as_ref()));
            return response;
        }
        let mut response = match request.uri().path() {
            "/healthz" => get_only(&request, || json_status(StatusCode::OK, "ok")),
            "/readyz" => get_only(&request, || self.readyz()),
            "/metrics" => get_only(&request, || self.metrics()),
            _ => self.recorded(request).await,
        };
        append(&mut response, cors.actual(origin.as_ref()));
        response
    }

    /// A codec request, or a request for no route: answered, then counted
    /// in the metrics and the access log.
    async fn recorded(&self, request: Request) -> Response {
        let started = Instant::now();
        let table = self.table.current(&self.state);
        let (parts, body) = request.into_parts();
        let mut stats = RequestStats::default();
        let response = match action_of(parts.uri.path()) {
            None => {
                stats.route = "other";
                failed(&mut stats, ApiError::NotFound(parts.uri.path().to_owned()))
            }
            Some(route) => {
                stats.route = route.1.route();
                let Outcome { answer, close } = codec_route::handle(
                    &self.state,
                    &table,
                    &parts,
                    body,
                    route,
                    &mut stats,
                    started,
                )
                .await;
                let mut response = match answer {
                    Ok(answer) => answered(&mut stats, answer),
                    Err(err) => failed(&mut stats, err),
                };
                if close && parts.version <= Version::HTTP_11 {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                response
            }
        };
        let latency = started.elapsed();
        let status = response.status().as_u16();
        let label = table.metric_label(&stats.namespace);
        self.state.metrics().record(&stats, label, status, latency);
        AccessLine {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            stats: &stats,
            status,
            latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        }
        .log();
        response
    }

    /// `GET /readyz`: keyrings and codecs are loaded, and the server is
    /// not shutting down.
    fn readyz(&self) -> Response {
        if self.state.is_ready() {
            json_status(StatusCode::OK, "ready")
        } else {
            json_status(StatusCode::SERVICE_UNAVAILABLE, "not ready")
        }
    }

    /// `GET /metrics`: Prometheus text.
    fn metrics(&self) -> Response {
        let memory = self.state.limits().memory();
        let metrics = self.state.metrics();
        metrics
            .gauge("codec_server_memory_in_use_bytes")
            .set(memory.in_use() as f64);
        metrics
            .gauge("codec_server_memory_limit_bytes")
            .set(memory_limit(memory) as f64);
        let mut text = metrics.render();
        if let Some(stats) = self.state.kms_stats() {
            crate::metrics::render_kms(&mut text, &stats);
        }
        crate::metrics::render_storage(&mut text, &self.state.storage_stats());
        let mut response = text.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    }
}

fn memory_limit(memory: &crate::limits::MemoryGate) -> usize {
    use payload_converter::MemoryPool as _;
    memory.capacity()
}

/// The answer to a codec request that succeeded.
fn answered(stats: &mut RequestStats, answer: Answer) -> Response {
    let mut response = match answer {
        Answer::Whole(body) => {
            stats.bytes_out = body.len();
            (StatusCode::OK, body).into_response()
        }
        Answer::Streamed(body) => {
            stats.bytes_out = usize::try_from(body.len()).unwrap_or(usize::MAX);
            Response::new(Body::new(body))
        }
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The answer to a request that failed.
fn failed(stats: &mut RequestStats, err: ApiError) -> Response {
    stats.error = Some(err.status_and_code().1);
    err.into_response()
}

fn append(response: &mut Response, headers: &[(axum::http::HeaderName, HeaderValue)]) {
    let map = response.headers_mut();
    for (name, value) in headers {
        map.append(name, value.clone());
    }
}

/// `answer` for `GET` and `HEAD`; 405 for other methods.
fn get_only(request: &Request, answer: impl FnOnce() -> Response) -> Response {
    match *request.method() {
        Method::GET | Method::HEAD => answer(),
        _ => ApiError::MethodNotAllowed {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            allowed: "GET",
        }
        .into_response(),
    }
}

fn json_status(status: StatusCode, text: &'static str) -> Response {
    let mut response = (status, format!("{{\"status\":\"{text}\"}}")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
