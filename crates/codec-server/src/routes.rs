//! The HTTP routes.
//!
//! `POST <any prefix>/encode`, `POST <any prefix>/decode` and
//! `POST <any prefix>/download` (query strings allowed), `GET /healthz`,
//! `GET /readyz` and `GET /metrics`. Each codec request goes: method →
//! content type → namespace → auth → body (bounded) → payloads → codec →
//! answer with the same count and order.

use std::future::Future as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::Access;
use crate::body::{RAW_PIECE, StreamedAnswer, parse_payloads, read_body, write_payloads};
use crate::error::ApiError;
use crate::log_format::push_value;
use crate::metrics::RequestStats;
use crate::state::{AppState, NamespaceTable, TableView};

/// Bodies above this are decoded off the I/O threads, a bounded number at a time.
const OFFLOAD_BYTES: usize = 256 * 1024;

/// Slots for large bodies: one per available core.
fn large_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        tokio::sync::Semaphore::new(cores)
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Encode,
    Decode,
    Download,
}

impl Action {
    fn route(self) -> &'static str {
        match self {
            Action::Encode => "encode",
            Action::Decode => "decode",
            Action::Download => "download",
        }
    }
}

/// Splits `/a/b/decode` into (`/a/b`, Decode).
fn action_of(path: &str) -> Option<(&str, Action)> {
    // Byte slices, not `str` searches: this runs for every request.
    let mut trimmed = path.as_bytes();
    while let [rest @ .., b'/'] = trimmed {
        trimmed = rest;
    }
    let (action, name) = if trimmed.ends_with(b"/decode") {
        (Action::Decode, "/decode".len())
    } else if trimmed.ends_with(b"/encode") {
        (Action::Encode, "/encode".len())
    } else if trimmed.ends_with(b"/download") {
        (Action::Download, "/download".len())
    } else {
        return None;
    };
    // The prefix ends before a '/', so it is a char boundary.
    Some((path.get(..trimmed.len() - name)?, action))
}

/// Whether `path` is a codec route (`…/encode`, `…/decode`, `…/download`).
pub(crate) fn is_codec_path(path: &str) -> bool {
    action_of(path).is_some()
}

const X_NAMESPACE: HeaderName = HeaderName::from_static("x-namespace");

/// The namespace: `X-Namespace`, else the last prefix segment when it names
/// a configured namespace, else empty (the default section).
fn namespace_of(headers: &HeaderMap, prefix: &str, table: &NamespaceTable) -> String {
    if let Some(ns) = headers
        .get(X_NAMESPACE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        return ns.to_owned();
    }
    match prefix.rsplit('/').next() {
        Some(segment) if table.has(segment) => segment.to_owned(),
        _ => String::new(),
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("<not text>");
    let mime = text.split(';').next().unwrap_or_default().trim();
    if mime.eq_ignore_ascii_case("application/json") || mime.is_empty() {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(text.to_owned()))
    }
}

/// Every request that is not health or metrics lands here. Records the
/// request's metrics and access-log line (what was done, never payload
/// data, keys or credentials).
pub(crate) async fn dispatch(state: &AppState, table: &TableView, request: Request) -> Response {
    let started = Instant::now();
    let table = table.current(state);
    let (parts, body) = request.into_parts();
    let mut stats = RequestStats::default();
    let response = match action_of(parts.uri.path()) {
        None => {
            stats.route = "other";
            let err = ApiError::NotFound(parts.uri.path().to_owned());
            stats.error = Some(err.status_and_code().1);
            err.into_response()
        }
        Some((prefix, action)) => {
            stats.route = action.route();
            match handle(state, &table, &parts, body, prefix, action, &mut stats).await {
                Ok(answer) => {
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
                Err(err) => {
                    stats.error = Some(err.status_and_code().1);
                    err.into_response()
                }
            }
        }
    };
    let latency = started.elapsed();
    let status = response.status().as_u16();
    let label = table.metric_label(&stats.namespace);
    state.metrics().record(&stats, label, status, latency);
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

/// [`dispatch`] for the router: requests that are not codec calls (an
/// unknown path, a wrong method), and codec calls too if the CORS answers
/// could not be worked out at start-up. A table view of its own each time:
/// these are rare.
pub(crate) async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    dispatch(&state, &state.table_view(), request).await
}

/// One access-log line: what was done, never payload data, keys or
/// credentials.
struct AccessLine<'a> {
    method: &'a str,
    path: &'a str,
    stats: &'a RequestStats,
    status: u16,
    latency_us: u64,
}

impl AccessLine<'_> {
    /// Logs the line as one message, `method=… path=… namespace=…
    /// payloads=… bytes_in=… bytes_out=… status=… [error=…] latency_us=…`:
    /// at info when the request failed, at debug when it succeeded.
    ///
    /// Successes are debug because a line for each costs more than the rest
    /// of the request's bookkeeping: at full load the bench's server wrote
    /// 16 MB of log a second, and lost a tenth of its throughput to it
    /// (`docs/performance.md`). Failures, which someone has to look at, are
    /// logged by default. The text is built here in one buffer rather than
    /// as ten event fields, each of which costs dynamic calls per piece.
    fn log(&self) {
        let failed = self.status >= 400;
        let enabled = if failed {
            tracing::enabled!(target: "codec_server::access", tracing::Level::INFO)
        } else {
            tracing::enabled!(target: "codec_server::access", tracing::Level::DEBUG)
        };
        if !enabled {
            return;
        }
        thread_local! {
            static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        TEXT.with(|cell| {
            let Ok(mut text) = cell.try_borrow_mut() else {
                return;
            };
            text.clear();
            let mut number = itoa::Buffer::new();
            let stats = self.stats;
            text.push_str("method=");
            push_value(&mut text, self.method);
            text.push_str(" path=");
            push_value(&mut text, self.path);
            text.push_str(" namespace=");
            push_value(&mut text, &stats.namespace);
            text.push_str(" payloads=");
            text.push_str(number.format(stats.payloads));
            text.push_str(" bytes_in=");
            text.push_str(number.format(stats.bytes_in));
            text.push_str(" bytes_out=");
            text.push_str(number.format(stats.bytes_out));
            text.push_str(" status=");
            text.push_str(number.format(self.status));
            if let Some(code) = stats.error {
                text.push_str(" error=");
                push_value(&mut text, code);
            }
            text.push_str(" latency_us=");
            text.push_str(number.format(self.latency_us));
            if failed {
                tracing::info!(target: "codec_server::access", "{}", text.as_str());
            } else {
                tracing::debug!(target: "codec_server::access", "{}", text.as_str());
            }
            if text.capacity() > 4096 {
                *text = String::new();
            }
        });
    }
}

async fn handle(
    state: &AppState,
    table: &NamespaceTable,
    parts: &Parts,
    body: Body,
    prefix: &str,
    action: Action,
    stats: &mut RequestStats,
) -> Result<Answer, ApiError> {
    if parts.method != Method::POST {
        return Err(ApiError::MethodNotAllowed {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            allowed: "POST",
        });
    }
    let headers = &parts.headers;
    check_content_type(headers)?;
    stats.namespace = namespace_of(headers, prefix, table);
    let namespace = stats.namespace.as_str();
    let policy = table.policy(namespace)?;
    let access = if action == Action::Encode {
        Access::Write
    } else {
        Access::Read
    };
    policy.auth.check(headers, namespace, access).await?;
    if action == Action::Download {
        return Err(ApiError::DownloadUnavailable);
    }

    // One deadline for waiting for a slot and doing the work: a request
    // that cannot start in time is refused as overloaded (503), one that
    // started and ran out of time is a timeout (504).
    let limits = state.limits();
    let started = AtomicBool::new(false);
    let work = async {
        let _permit = state
            .concurrency()
            .acquire()
            .await
            .map_err(|_| ApiError::Overloaded)?;
        started.store(true, Ordering::Relaxed);
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        // A large body takes its slot before it is read, so waiting requests
        // hold no memory (their bodies wait in the socket).
        let mut slot = match declared {
            Some(len) if len > OFFLOAD_BYTES && len <= limits.max_body_bytes => {
                Some(large_slot().await?)
            }
            _ => None,
        };
        let body = read_body(body, declared, limits.max_body_bytes).await?;
        stats.bytes_in = body.len();
        if slot.is_none() && body.len() > OFFLOAD_BYTES {
            slot = Some(large_slot().await?);
        }
        let max_payloads = limits.max_payloads;
        let (count, answer) = if slot.is_some() {
            // Parse, codec and answer off the I/O threads, so they stay free
            // for small requests.
            let codec = policy.codec.clone();
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                handle.block_on(process(&*codec, body, action, max_payloads))
            })
            .await
            .map_err(|e| ApiError::Internal(format!("codec task failed: {e}")))?
        } else {
            process(&*policy.codec, body, action, max_payloads).await
        };
        drop(slot);
        stats.payloads = count;
        answer
    };
    // A small request whose body has arrived and that finds a free slot is
    // done on its first poll, in microseconds: it needs no timer. Anything
    // that waits (a slot, a slow body, a large body's thread) is timed from
    // then on.
    let mut work = std::pin::pin!(work);
    if let Poll::Ready(result) =
        std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await
    {
        return result;
    }
    let deadline = Duration::from_secs(limits.request_timeout_secs);
    match tokio::time::timeout(deadline, work).await {
        Ok(result) => result,
        Err(_) if started.load(Ordering::Relaxed) => {
            Err(ApiError::Timeout(limits.request_timeout_secs))
        }
        Err(_) => Err(ApiError::Overloaded),
    }
}

/// A codec answer: small ones whole, large ones streamed.
enum Answer {
    Whole(Vec<u8>),
    Streamed(StreamedAnswer),
}

/// A slot for a large request (one per core): more at once would only hold
/// more memory, not go faster.
async fn large_slot() -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    large_slots()
        .acquire()
        .await
        .map_err(|_| ApiError::Overloaded)
}

/// Body → payloads → codec → answer; returns the payload count too.
async fn process(
    codec: &dyn payload_converter::PayloadCodec,
    body: bytes::Bytes,
    action: Action,
    max_payloads: usize,
) -> (usize, Result<Answer, ApiError>) {
    // The body is consumed: large data is decoded in its buffer.
    let payloads = match parse_payloads(body, max_payloads) {
        Ok(payloads) => payloads,
        Err(err) => return (0, Err(err)),
    };
    let count = payloads.len();
    let out = if action == Action::Encode {
        codec.encode(payloads).await
    } else {
        codec.decode(payloads).await
    };
    let answer = match out {
        Ok(out) => {
            let data: usize = out.iter().map(|p| p.data.len()).sum();
            if data > OFFLOAD_BYTES {
                StreamedAnswer::new(out, RAW_PIECE).map(Answer::Streamed)
            } else {
                write_payloads(&out).map(Answer::Whole)
            }
            .map_err(|e| ApiError::Internal(format!("writing the answer: {e}")))
        }
        Err(err) => Err(err.into()),
    };
    (count, answer)
}

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> Response {
    json_status(StatusCode::OK, "ok")
}

/// `GET /readyz`: keyrings and codecs are loaded.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        json_status(StatusCode::OK, "ready")
    } else {
        json_status(StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics().render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

fn json_status(status: StatusCode, text: &'static str) -> Response {
    let mut response = (status, format!("{{\"status\":\"{text}\"}}")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Wrong method on the health and metrics routes.
pub(crate) async fn get_only(request: Request<Body>) -> Response {
    ApiError::MethodNotAllowed {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        allowed: "GET",
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_found_under_any_prefix() {
        assert_eq!(action_of("/decode"), Some(("", Action::Decode)));
        assert_eq!(action_of("/codec/encode"), Some(("/codec", Action::Encode)));
        assert_eq!(
            action_of("/my-ns/decode/"),
            Some(("/my-ns", Action::Decode))
        );
        assert_eq!(action_of("/a/b/download"), Some(("/a/b", Action::Download)));
        assert_eq!(action_of("/decoder"), None);
        assert_eq!(action_of("/"), None);
        assert_eq!(action_of("decode"), None);
        assert_eq!(action_of("/x/undecode"), None);
        assert_eq!(action_of("/x/decode//"), Some(("/x", Action::Decode)));
    }

    #[test]
    fn access_lines_hold_the_fields_and_quote_what_a_caller_chose() {
        let mut stats = RequestStats {
            route: "decode",
            namespace: String::new(),
            payloads: 3,
            bytes_in: 212,
            bytes_out: 93,
            error: None,
        };
        let line = |stats: &RequestStats, path: &str, status: u16| {
            crate::log_format::tests::capture_at(tracing::Level::DEBUG, || {
                AccessLine {
                    method: "POST",
                    path,
                    stats,
                    status,
                    latency_us: 41,
                }
                .log();
            })
        };
        let ok = line(&stats, "/decode", 200);
        assert!(
            ok.ends_with(
                " DEBUG codec_server::access: method=POST path=/decode namespace=\"\" payloads=3 \
                 bytes_in=212 bytes_out=93 status=200 latency_us=41\n"
            ),
            "{ok}"
        );
        stats.namespace = "ns x\"\nforged=1".to_owned();
        stats.error = Some("invalid_json");
        let hostile = line(&stats, "/a=b/decode", 400);
        assert!(
            hostile.ends_with(
                " method=POST path=\"/a=b/decode\" namespace=\"ns x\\\"\\nforged=1\" payloads=3 \
                 bytes_in=212 bytes_out=93 status=400 error=invalid_json latency_us=41\n"
            ),
            "{hostile}"
        );
        assert_eq!(hostile.lines().count(), 1);
        assert!(
            hostile.contains("  INFO codec_server::access: "),
            "{hostile}"
        );
    }

    #[test]
    fn by_default_only_failed_requests_are_logged() {
        let stats = RequestStats {
            route: "decode",
            ..RequestStats::default()
        };
        let at_info = |status: u16| {
            crate::log_format::tests::capture_at(tracing::Level::INFO, || {
                AccessLine {
                    method: "POST",
                    path: "/decode",
                    stats: &stats,
                    status,
                    latency_us: 7,
                }
                .log();
            })
        };
        assert_eq!(at_info(200), "");
        assert!(at_info(400).contains(" status=400 "));
        assert!(at_info(503).contains(" status=503 "));
    }

    #[test]
    fn content_type_must_be_json_when_given() {
        let mut headers = HeaderMap::new();
        check_content_type(&headers).unwrap();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        check_content_type(&headers).unwrap();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(matches!(
            check_content_type(&headers),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }
}
