//! Accepting connections and keeping each one within its limits: HTTP/1.1
//! and HTTP/2 (hyper-util's auto builder), TLS handshakes, timeouts that
//! always apply, a cap on open connections, and a bounded drain on
//! shutdown.
//!
//! - **Header-read timeout** (`server.header_read_timeout_secs`): a client
//!   must send a request's headers (and finish a TLS handshake, and, on a
//!   fresh connection, start its first request) within it. hyper applies
//!   it to HTTP/1.1 headers, also while a kept-alive connection waits for
//!   its next request; a watchdog per connection applies it to the rest.
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
//! - **HTTP/2**: at most `server.http2_max_concurrent_streams` streams a
//!   connection, 64 KiB of headers, windows of 256 KiB a stream and 1 MiB a
//!   connection, keep-alive pings, and hyper's limits on streams reset by
//!   the client (rapid reset) and by the server.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
/// body as it is read).
const H1_MAX_BUFFER: usize = 64 * 1024;
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
/// How long a connection asked to close (idle or evicted) may take.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What one connection does, for its watchdog and for eviction: requests
/// in flight, requests seen, and when the last one ended.
#[derive(Debug)]
pub(crate) struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// When the last request ended, in microseconds since `opened`.
    last_end_us: AtomicU64,
    /// Asked to close (eviction).
    close: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_end_us: AtomicU64::new(0),
            close: Notify::new(),
        }
    }

    /// Records a request; it ends when the guard is dropped.
    pub(crate) fn start(&self) -> Active<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        Active(self)
    }

    /// How long the connection has had no request in flight; `None` while
    /// one is.
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let since = self.opened + Duration::from_micros(self.last_end_us.load(Ordering::Relaxed));
        Some(now.saturating_duration_since(since))
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
pub(crate) struct Active<'a>(&'a Activity);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        let since = u64::try_from(self.0.opened.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.0.last_end_us.store(since, Ordering::Relaxed);
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
        let now = Instant::now();
        let live = crate::shard::lock(&self.live);
        let mut idle: Vec<(Duration, &Arc<Activity>)> = live
            .values()
            .filter_map(|a| a.idle_for(now).map(|d| (d, a)))
            .collect();
        let count = (live.len() / 16).max(1).min(idle.len());
        if count == 0 {
            return;
        }
        idle.select_nth_unstable_by(count - 1, |a, b| b.0.cmp(&a.0));
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
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(config.header_read_timeout_secs))
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
    async fn run<I>(mut self, io: I)
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
        // When the connection must be gone, once asked to close.
        let mut closing: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let check = match closing {
                Some(deadline) => deadline,
                None => self.next_check(now),
            };
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(%err, "connection ended with an error");
                    }
                    return;
                }
                () = tokio::time::sleep_until(check.into()) => {
                    if closing.is_some() {
                        return;
                    }
                    if self.is_idle_too_long(Instant::now()) {
                        connection.as_mut().graceful_shutdown();
                        closing = Some(Instant::now() + CLOSE_GRACE.max(self.settings.request_timeout));
                    }
                }
                () = self.activity.close.notified(), if closing.is_none() => {
                    connection.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + CLOSE_GRACE.max(self.settings.request_timeout));
                }
                _ = self.stopping.changed(), if closing.is_none() => {
                    connection.as_mut().graceful_shutdown();
                    // The server's drain bounds this connection.
                    closing = Some(Instant::now() + Duration::from_secs(60 * 60));
                }
            }
        }
    }

    /// The idle limit now: the header-read timeout until a first request,
    /// the idle timeout after.
    fn idle_limit(&self) -> Duration {
        if self.activity.requests.load(Ordering::Relaxed) == 0 {
            self.settings.header_timeout
        } else {
            self.settings.idle_timeout
        }
    }

    fn is_idle_too_long(&self, now: Instant) -> bool {
        self.activity
            .idle_for(now)
            .is_some_and(|idle| idle >= self.idle_limit())
    }

    /// When to look at the connection again: when it would be idle too
    /// long if nothing happens. Before its first request that is the
    /// sooner of the two limits, since a request may come and go before
    /// then (nothing wakes the watchdog when it does).
    fn next_check(&self, now: Instant) -> Instant {
        let settings = &self.settings;
        let limit = if self.activity.requests.load(Ordering::Relaxed) == 0 {
            settings.header_timeout.min(settings.idle_timeout)
        } else {
            settings.idle_timeout
        };
        match self.activity.idle_for(now) {
            Some(idle) => now + limit.saturating_sub(idle),
            None => now + limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_counts_from_the_last_request_and_not_during_one() {
        let activity = Activity::new();
        let later = Instant::now() + Duration::from_secs(5);
        assert!(activity.idle_for(later).unwrap() >= Duration::from_secs(5));
        let active = activity.start();
        assert_eq!(activity.idle_for(later), None);
        drop(active);
        let idle = activity.idle_for(later).unwrap();
        assert!(idle <= Duration::from_secs(5), "{idle:?}");
        assert_eq!(activity.requests.load(Ordering::Relaxed), 1);
    }
}
