//! Accepting connections and keeping each one within its limits: HTTP/1.1
//! and HTTP/2 (hyper-util's auto builder), TLS handshakes, timeouts that
//! always apply, a cap on open connections, and a bounded drain on
//! shutdown.
//!
//! - **Header-read timeout** (`server.header_read_timeout_secs`): a client
//!   must finish a TLS handshake within it, and a connection with no request
//!   in flight (a fresh one, an HTTP/1.1 one kept alive, or one sending its
//!   headers a byte at a time) is closed after it. A watchdog per connection
//!   samples its request counts a few times per timeout (so it closes at
//!   most a quarter of the timeout late, never early).
//! - **Idle timeout** (`server.idle_timeout_secs`): an HTTP/2 connection
//!   with no request in flight for this long is closed (GOAWAY).
//! - **Connection cap** (`server.max_connections`): a connection beyond it
//!   asks the longest idle connections (no request in flight) to close,
//!   then waits briefly for a place; if none frees up it is closed. Idle
//!   sockets cannot keep new clients out.
//! - **Accept errors** (out of file descriptors and the like) back off,
//!   from 5 ms doubling to 1 s, instead of spinning; each is logged once
//!   per back-off.
//! - **Shutdown**: readiness turns false at once, the listener closes, idle
//!   connections close, requests in flight get `server.shutdown_grace_secs`
//!   to finish, and the connections still open then are closed.
//! - **Buffers**: 256 KiB of headers and body a HTTP/1.1 connection.
//! - **HTTP/2**: at most `server.http2_max_concurrent_streams` streams a
//!   connection, 64 KiB of headers, windows of 256 KiB a stream and 1 MiB a
//!   connection, keep-alive pings, and hyper's limits on streams reset by
//!   the client (rapid reset) and by the server.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::ServerConfig;
use crate::service::CodecService;
use crate::state::AppState;
use crate::tls::Tls;

/// Most bytes hyper buffers for one HTTP/1.1 connection (headers, and the
/// body as it is read): bodies up to the size whose codec work is done on
/// the I/O thread arrive in one piece (a body in pieces is copied once into
/// one buffer), and headers cannot take more.
const H1_MAX_BUFFER: usize = 256 * 1024;
/// Most bytes of HTTP/2 headers a request may have.
const H2_MAX_HEADER_LIST: u32 = 64 * 1024;
/// HTTP/2 flow-control windows: what a client may send before the server
/// has read it.
const H2_STREAM_WINDOW: u32 = 256 * 1024;
const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;
/// HTTP/2 keep-alive pings: how often, and how long to wait for the answer.
const H2_PING_EVERY: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a connection beyond the cap waits for a place.
const ADMIT_WAIT: Duration = Duration::from_secs(1);
/// Accept-error back-off.
const BACKOFF_FIRST: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long a connection asked to close (idle or evicted) may take to do
/// so (an idle HTTP/1.1 connection closes at once, HTTP/2 sends GOAWAY);
/// one still in a request then gets the request timeout, and one with a
/// partial request head is dropped.
const CLOSE_GRACE: Duration = Duration::from_millis(250);

/// What one connection does, for its watchdog and for eviction. A request
/// only counts itself in and out (connection-local atomics, no clock); the
/// watchdog samples the counts to tell how long the connection has been
/// idle.
#[derive(Debug)]
pub(crate) struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Whether the connection speaks HTTP/2 (seen on its first request).
    http2: AtomicBool,
    /// Since when the watchdog has seen the connection idle, in
    /// milliseconds since `opened` (for eviction: the longest idle first).
    idle_since_ms: AtomicU64,
    /// Asked to close (eviction).
    close: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            close: Notify::new(),
        }
    }

    /// Records a request of `version`; it ends when the guard is dropped.
    pub(crate) fn start(&self, version: hyper::Version) -> Active<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if self.requests.fetch_add(1, Ordering::Relaxed) == 0 && version == hyper::Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        Active(self)
    }

    fn is_busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
pub(crate) struct Active<'a>(&'a Activity);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The open connections: places under the cap, and their activity for
/// eviction.
struct Connections {
    places: Arc<Semaphore>,
    live: Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
    open: metrics::Gauge,
    refused: metrics::Counter,
    evicted: metrics::Counter,
}

impl Connections {
    fn new(max: usize, state: &AppState) -> Self {
        let metrics = state.metrics();
        Self {
            places: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            open: metrics.gauge("codec_server_connections_open"),
            refused: metrics.plain_counter("codec_server_connections_refused_total"),
            evicted: metrics.plain_counter("codec_server_connections_evicted_total"),
        }
    }

    /// A place for a new connection: at once if there is one, else after
    /// asking idle connections to close; `None` if none frees up in time.
    async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(place) = self.places.clone().try_acquire_owned() {
            return Some(place);
        }
        self.evict_idle();
        match tokio::time::timeout(ADMIT_WAIT, self.places.clone().acquire_owned()).await {
            Ok(Ok(place)) => Some(place),
            _ => {
                self.refused.increment(1);
                None
            }
        }
    }

    /// Asks the longest idle connections to close: a sixteenth of them, at
    /// least one.
    fn evict_idle(&self) {
        let live = crate::shard::lock(&self.live);
        let mut idle: Vec<(u64, &Arc<Activity>)> = live
            .values()
            .filter(|a| !a.is_busy())
            .map(|a| (a.idle_since_ms.load(Ordering::Relaxed), a))
            .collect();
        let count = (live.len() / 16).max(1).min(idle.len());
        if count == 0 {
            return;
        }
        // Oldest first: opened longest ago plus idle since then.
        idle.select_nth_unstable_by_key(count - 1, |(since, a)| {
            a.opened + Duration::from_millis(*since)
        });
        for (_, activity) in &idle[..count] {
            activity.close.notify_one();
        }
        self.evicted.increment(count as u64);
    }

    fn register(&self) -> (u64, Arc<Activity>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new());
        crate::shard::lock(&self.live).insert(id, activity.clone());
        self.open.increment(1.0);
        (id, activity)
    }

    fn unregister(&self, id: u64) {
        crate::shard::lock(&self.live).remove(&id);
        self.open.decrement(1.0);
    }
}

/// The per-connection settings.
struct Settings {
    builder: Builder<TokioExecutor>,
    header_timeout: Duration,
    idle_timeout: Duration,
    request_timeout: Duration,
}

fn builder(config: &ServerConfig) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    // No hyper timer for HTTP/1.1: the watchdog applies the header-read
    // timeout (a timer armed for every request's head cost more than the
    // rest of a small request's bookkeeping).
    builder
        .http1()
        .header_read_timeout(None)
        .max_buf_size(H1_MAX_BUFFER);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.http2_max_concurrent_streams)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .keep_alive_interval(H2_PING_EVERY)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    builder
}

/// Serves `listener` until `shutdown` completes, then drains (see the
/// module docs).
pub(crate) async fn serve(
    listener: TcpListener,
    state: AppState,
    config: &ServerConfig,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()>,
) {
    let settings = Arc::new(Settings {
        builder: builder(config),
        header_timeout: Duration::from_secs(config.header_read_timeout_secs),
        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        request_timeout: Duration::from_secs(config.request_timeout_secs),
    });
    let connections = Arc::new(Connections::new(config.max_connections, &state));
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut backoff = BACKOFF_FIRST;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _peer)) => {
                backoff = BACKOFF_FIRST;
                tcp
            }
            Err(err) if is_per_connection(&err) => continue,
            Err(err) => {
                tracing::warn!(
                    %err,
                    retry_in_ms = backoff.as_millis() as u64,
                    "accepting connections failed; if the process is out of file descriptors, \
                     raise its limit (ulimit -n) or lower server.max_connections"
                );
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let Some(place) = connections.admit().await else {
            continue;
        };
        // Answers go out at once, not held back by Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let (id, activity) = connections.register();
        let task = Task {
            state: state.clone(),
            settings: settings.clone(),
            activity,
            stopping: stopping.clone(),
        };
        let acceptor = tls.as_ref().map(Tls::acceptor);
        let connections = connections.clone();
        tasks.spawn(async move {
            match acceptor {
                None => task.run(tcp).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(tcp);
                    match tokio::time::timeout(task.settings.header_timeout, handshake).await {
                        Ok(Ok(stream)) => task.run(stream).await,
                        Ok(Err(err)) => tracing::debug!(%err, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            connections.unregister(id);
            drop(place);
        });
    }
    drop(listener);
    state.set_ready(false);
    let _ = stop.send(true);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "connections still busy after the shutdown grace period; closing them"
        );
    }
    tasks.shutdown().await;
}

/// Whether an accept error concerns only the connection being accepted
/// (so the next accept may succeed at once).
fn is_per_connection(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}

/// One connection's task.
struct Task {
    state: AppState,
    settings: Arc<Settings>,
    activity: Arc<Activity>,
    stopping: watch::Receiver<bool>,
}

impl Task {
    async fn run<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = CodecService::for_connection(self.state.clone(), Some(self.activity.clone()));
        let hyper_service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut service = service.clone();
            tower::Service::call(&mut service, request.map(Body::new))
        });
        let connection = self
            .settings
            .builder
            .serve_connection(TokioIo::new(io), hyper_service);
        let mut connection = std::pin::pin!(connection);
        // The watchdog runs beside the connection, so that serving a
        // request polls the connection alone; it says when to close and by
        // when the connection must be gone.
        let (close, mut closing) = tokio::sync::oneshot::channel();
        let watchdog = tokio::spawn(watchdog(
            self.activity.clone(),
            self.settings.clone(),
            self.stopping,
            close,
        ));
        let result = tokio::select! {
            biased;
            result = connection.as_mut() => Some(result),
            deadline = &mut closing => {
                connection.as_mut().graceful_shutdown();
                let mut deadline = deadline.unwrap_or_else(|_| Instant::now());
                let mut extended = false;
                loop {
                    match tokio::time::timeout_at(deadline.into(), connection.as_mut()).await {
                        Ok(result) => break Some(result),
                        // A request that started meanwhile may finish.
                        Err(_) if !extended && self.activity.is_busy() => {
                            extended = true;
                            deadline = Instant::now() + self.settings.request_timeout;
                        }
                        // Idle (a partial head, a silent socket): dropped.
                        Err(_) => break None,
                    }
                }
            }
        };
        watchdog.abort();
        if let Some(Err(err)) = result {
            tracing::debug!(%err, "connection ended with an error");
        }
    }
}

/// A connection's watchdog: sends the time by which the connection must be
/// gone when it is to close, because it has been idle too long (no request
/// in flight for the header-read timeout; for the idle timeout on HTTP/2
/// after its first request), because it is evicted, or because the server
/// shuts down.
///
/// It samples the connection's counts a few times per limit: a connection
/// is idle from the first sample that finds no request in flight and none
/// started since the sample before, so it is never closed early, at most a
/// sampling period late.
async fn watchdog(
    activity: Arc<Activity>,
    settings: Arc<Settings>,
    mut stopping: watch::Receiver<bool>,
    close: tokio::sync::oneshot::Sender<Instant>,
) {
    let grace = CLOSE_GRACE;
    let period =
        (settings.header_timeout.min(settings.idle_timeout) / 4).max(Duration::from_millis(50));
    let mut seen = activity.requests.load(Ordering::Relaxed);
    let mut idle_since = Some(activity.opened);
    let deadline = loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {
                let now = Instant::now();
                let requests = activity.requests.load(Ordering::Relaxed);
                if activity.is_busy() || requests != seen {
                    seen = requests;
                    idle_since = None;
                    continue;
                }
                let since = *idle_since.get_or_insert(now);
                let ms = u64::try_from(since.duration_since(activity.opened).as_millis()).unwrap_or(u64::MAX);
                activity.idle_since_ms.store(ms, Ordering::Relaxed);
                // Kept-alive HTTP/1.1 must start its next request within the
                // header-read timeout; HTTP/2 may idle longer.
                let limit = if requests > 0 && activity.http2.load(Ordering::Relaxed) {
                    settings.idle_timeout
                } else {
                    settings.header_timeout
                };
                if now.duration_since(since) >= limit {
                    break now + grace;
                }
            }
            () = activity.close.notified() => break Instant::now() + grace,
            // The server's drain bounds the connection.
            _ = stopping.changed() => break Instant::now() + Duration::from_secs(60 * 60),
        }
    };
    let _ = close.send(deadline);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_in_and_out() {
        let activity = Activity::new();
        assert!(!activity.is_busy());
        let first = activity.start(hyper::Version::HTTP_11);
        let second = activity.start(hyper::Version::HTTP_11);
        assert!(activity.is_busy());
        drop(first);
        assert!(activity.is_busy());
        drop(second);
        assert!(!activity.is_busy());
        assert_eq!(activity.requests.load(Ordering::Relaxed), 2);
        assert!(!activity.http2.load(Ordering::Relaxed));
        drop(Activity::new().start(hyper::Version::HTTP_2));
    }
}
