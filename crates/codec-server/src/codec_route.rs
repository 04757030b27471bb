//! A codec request, `POST <any prefix>/encode|decode|download`: content
//! type → namespace → auth → body → processing slot → codec → answer, all
//! of it under the request's deadline.
//!
//! Where the time goes, and what a request holds while it waits:
//! - The body is read before any processing slot is taken, so a client
//!   that sends slowly holds only its own bytes (reserved in the memory
//!   gate) and is cut at the deadline with `408 body_timeout`.
//! - Codec work on a body of at most [`INLINE_BODY`] bytes runs on the I/O
//!   thread with a small budget ([`INLINE_DECODED`] bytes for decoding):
//!   a few milliseconds at most. A body that needs more (a compressed
//!   payload that inflates) is run again, like larger bodies, on the
//!   blocking pool, one per core, with the full budget
//!   (`server.max_decoded_bytes`).
//! - When the deadline passes (or the client goes away), the request's
//!   budget is cancelled: the blocking job stops at its next charge, and
//!   its slot is given back when the job really ends, not before.

use std::future::Future as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Poll;
use std::time::Instant;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method, header};
use bytes::Bytes;
use payload_converter::{Budget, PayloadCodec};
use payload_storage::{Resolve, StorageCodec, StoreTarget};

use crate::auth::Access;
use crate::body::{RAW_PIECE, StreamedAnswer, parse_payloads, read_body, write_payloads};
use crate::error::ApiError;
use crate::limits::Limits;
use crate::metrics::RequestStats;
use crate::state::{AppState, NamespaceTable};

/// Bodies up to this size have their codec work done on the I/O thread.
const INLINE_BODY: usize = 256 * 1024;
/// What decoding a body on the I/O thread may produce; more moves the
/// request to the blocking pool.
const INLINE_DECODED: usize = 1024 * 1024;
/// Answers with more payload data than this are streamed.
const STREAM_ABOVE: usize = 256 * 1024;

/// The codec routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Encode,
    Decode,
    Download,
}

impl Action {
    /// The metrics label.
    pub(crate) fn route(self) -> &'static str {
        match self {
            Action::Encode => "encode",
            Action::Decode => "decode",
            Action::Download => "download",
        }
    }
}

/// Splits `/a/b/decode` into (`/a/b`, Decode).
pub(crate) fn action_of(path: &str) -> Option<(&str, Action)> {
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
        Err(ApiError::UnsupportedMediaType(
            crate::access_log::cut(text).into_owned(),
        ))
    }
}

/// Where a request is, for the error its deadline gives.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Stage {
    /// Checking the request (auth may wait for the identity provider).
    Checking,
    /// Reading the body.
    Body,
    /// Waiting for a slot.
    Waiting,
    /// Codec work.
    Working,
}

struct StageCell(AtomicU8);

impl StageCell {
    fn set(&self, stage: Stage) {
        self.0.store(stage as u8, Ordering::Relaxed);
    }

    /// The error for a request whose deadline passed at this stage.
    fn timed_out(&self, limits: &Limits) -> ApiError {
        let secs = limits.request_timeout.as_secs();
        match self.0.load(Ordering::Relaxed) {
            s if s == Stage::Body as u8 => ApiError::BodyTimeout(secs),
            s if s == Stage::Waiting as u8 => ApiError::Overloaded,
            _ => ApiError::Timeout(secs),
        }
    }
}

/// A codec answer: small ones whole, large ones streamed.
pub(crate) enum Answer {
    Whole(Vec<u8>),
    Streamed(StreamedAnswer),
}

/// Bytes of an unread body read and thrown away after an early answer
/// (401, 403, 415, …), so that the connection can serve the next request.
const DRAIN_BYTES: usize = 64 * 1024;
/// How long such a body may take to arrive.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// A codec request's answer, and whether the connection must close after
/// it: its body was not read to the end, so an HTTP/1.1 client must not
/// send another request on it (the answer says `Connection: close`).
pub(crate) struct Outcome {
    pub(crate) answer: Result<Answer, ApiError>,
    pub(crate) close: bool,
}

/// Handles one codec request, under its deadline (from `started`).
pub(crate) async fn handle(
    state: &AppState,
    table: &NamespaceTable,
    parts: &Parts,
    mut body: Body,
    route: (&str, Action),
    stats: &mut RequestStats,
    started: Instant,
) -> Outcome {
    let limits = state.limits();
    let stage = StageCell(AtomicU8::new(Stage::Checking as u8));
    let mut read = false;
    let answer = {
        let work = run(
            state, table, parts, &mut body, route, stats, &stage, &mut read,
        );
        // A small request whose body has arrived and that finds a free
        // slot is done on its first poll, in microseconds: it needs no
        // timer.
        let mut work = std::pin::pin!(work);
        match std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await {
            Poll::Ready(answer) => answer,
            Poll::Pending => {
                let deadline = tokio::time::Instant::from_std(started + limits.request_timeout);
                match tokio::time::timeout_at(deadline, work).await {
                    Ok(answer) => answer,
                    Err(_) => Err(stage.timed_out(limits)),
                }
            }
        }
    };
    let close = !read && !drain(&mut body).await;
    Outcome { answer, close }
}

/// Reads what is left of an unread body, up to [`DRAIN_BYTES`] within
/// [`DRAIN_WAIT`]; whether it got to the end.
async fn drain(body: &mut Body) -> bool {
    use http_body_util::BodyExt as _;
    use hyper::body::Body as _;

    if body.is_end_stream() {
        return true;
    }
    let read = async {
        let mut seen = 0_usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return false;
            };
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > DRAIN_BYTES {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_WAIT, read)
        .await
        .unwrap_or(false)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    state: &AppState,
    table: &NamespaceTable,
    parts: &Parts,
    body: &mut Body,
    (prefix, action): (&str, Action),
    stats: &mut RequestStats,
    stage: &StageCell,
    read: &mut bool,
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
    let work = match (&policy.storage, action) {
        (None, Action::Download) => return Err(ApiError::DownloadUnavailable),
        (None, _) => Work::Chain(policy.codec.clone()),
        (Some(storage), Action::Encode) => {
            let target = if namespace.is_empty() {
                StoreTarget::Unknown
            } else {
                StoreTarget::namespace(namespace)
            };
            Work::Storage(storage.for_target(target), Resolve::Always)
        }
        (Some(storage), Action::Download) => Work::Storage(storage.clone(), Resolve::Only),
        (Some(storage), Action::Decode) if preserves_references(parts.uri.query()) => {
            Work::Storage(storage.clone(), Resolve::Preserve)
        }
        (Some(storage), Action::Decode) => Work::Storage(storage.clone(), Resolve::Always),
    };
    // Fetching stored payloads happens once, with the full budget: a
    // second try would fetch them again.
    let fetches =
        matches!(&work, Work::Storage(_, r) if *r != Resolve::Preserve) && action != Action::Encode;

    let limits = state.limits();
    stage.set(Stage::Body);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let (body, held) = read_body(body, declared, limits).await?;
    *read = true;
    stats.bytes_in = body.len();

    stage.set(Stage::Waiting);
    let _processing = limits.processing_slot().await?;
    let job = Job {
        work,
        action,
        max_payloads: limits.max_payloads,
        timeout_secs: limits.request_timeout.as_secs(),
    };
    if body.len() <= INLINE_BODY {
        stage.set(Stage::Working);
        let inline_limit = match action {
            _ if fetches => limits.max_decoded_bytes,
            Action::Decode | Action::Download if policy.may_inflate => INLINE_DECODED,
            _ => usize::MAX,
        };
        let budget = limits.budget(inline_limit);
        if !policy.may_inflate || action == Action::Encode || fetches {
            // Nothing to retry: the work is bounded by the body's size.
            let (count, result) = job.process(body, &budget).await;
            stats.payloads = count;
            return result.map(|answer| answer.holding((budget, held)));
        }
        // The body is kept for a second try, which takes a reference
        // count, not a copy.
        let (count, result) = job.process(body.clone(), &budget).await;
        match result {
            Err(ApiError::DecodedTooLarge { limit }) if limit < limits.max_decoded_bytes => {}
            result => {
                stats.payloads = count;
                return result.map(|answer| answer.holding((budget, held)));
            }
        }
    }
    stage.set(Stage::Waiting);
    let slot = limits.heavy_slot().await?;
    stage.set(Stage::Working);
    let budget = Arc::new(limits.budget(usize::MAX));
    let cancel = CancelOnDrop(budget.clone());
    let in_job = budget.clone();
    let handle = tokio::runtime::Handle::current();
    let (count, result) = tokio::task::spawn_blocking(move || {
        // The slot ends with the work, even when the request has given up.
        let _slot = slot;
        handle.block_on(job.process(body, &in_job))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("codec task failed: {e}")))?;
    drop(cancel);
    stats.payloads = count;
    result.map(|answer| answer.holding((budget, held)))
}

/// Cancels a budget when dropped: a request that ends early (deadline,
/// client gone) stops its work.
struct CancelOnDrop(Arc<Budget>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// What a request's payloads go through.
enum Work {
    /// The namespace's codec chain.
    Chain(Arc<dyn PayloadCodec>),
    /// The chain with external storage around it.
    Storage(StorageCodec, Resolve),
}

/// Whether the query says `preserveStorageRefs=true` (the Web UI's flag:
/// show references as they are, do not fetch them).
fn preserves_references(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.eq_ignore_ascii_case("preserveStorageRefs=true"))
    })
}

/// The codec work of one request.
struct Job {
    work: Work,
    action: Action,
    max_payloads: usize,
    timeout_secs: u64,
}

impl Job {
    /// Body → payloads → codec → answer, under `budget`; returns the
    /// payload count too.
    async fn process(&self, body: Bytes, budget: &Budget) -> (usize, Result<Answer, ApiError>) {
        // The body is consumed: large data is decoded in its buffer.
        let payloads = match parse_payloads(body, self.max_payloads) {
            Ok(payloads) => payloads,
            Err(err) => return (0, Err(err)),
        };
        let count = payloads.len();
        let out = match (&self.work, self.action) {
            (Work::Chain(codec), Action::Encode) => codec.encode_within(payloads, budget).await,
            (Work::Chain(codec), _) => codec.decode_within(payloads, budget).await,
            (Work::Storage(storage, _), Action::Encode) => {
                storage.encode_with(payloads, budget).await
            }
            (Work::Storage(storage, resolve), _) => {
                storage.decode_with(payloads, budget, *resolve).await
            }
        };
        let answer = match out {
            Ok(out) => {
                let data: usize = out.iter().map(|p| p.data.len()).sum();
                if data > STREAM_ABOVE {
                    StreamedAnswer::new(out, RAW_PIECE).map(Answer::Streamed)
                } else {
                    write_payloads(&out).map(Answer::Whole)
                }
                .map_err(|e| ApiError::Internal(format!("writing the answer: {e}")))
            }
            Err(err) => Err(ApiError::from_codec(err, self.timeout_secs)),
        };
        (count, answer)
    }
}

impl Answer {
    /// Keeps `held` (the request's budget and body reservation) as long as
    /// the answer is being sent: a streamed answer holds the decoded
    /// payloads until its last piece is out. A whole answer is a copy, so
    /// they go at once.
    fn holding(self, held: impl std::any::Any + Send + Sync) -> Self {
        match self {
            Answer::Whole(body) => Answer::Whole(body),
            Answer::Streamed(body) => Answer::Streamed(body.holding(held)),
        }
    }
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
    fn the_ui_flag_is_found_among_other_parameters() {
        assert!(preserves_references(Some("preserveStorageRefs=true")));
        assert!(preserves_references(Some("a=1&preserveStorageRefs=true")));
        assert!(!preserves_references(Some("preserveStorageRefs=false")));
        assert!(!preserves_references(Some("xpreserveStorageRefs=true")));
        assert!(!preserves_references(None));
    }

    #[test]
    fn content_type_must_be_json_when_given() {
        use axum::http::HeaderValue;
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
