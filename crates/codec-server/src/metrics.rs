//! Prometheus metrics: requests, payloads, bytes, errors and latency by
//! route and namespace, served at `GET /metrics`.
//!
//! Each server owns its recorder (no global state), so several servers can
//! run in one process (tests). Namespace labels are limited to configured
//! namespaces (others count as `other`), so callers cannot inflate the
//! number of series.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::{Counter, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::shard::{Padded, lock, thread_number};

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Latency buckets, in seconds: most decode calls are sub-millisecond.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Latency samples wait in the recorder until they are folded into their
/// buckets; this many requests fold them. Without it a server that nobody
/// scrapes kept every sample: 24 bytes a request (value and time), 2 MB a
/// second at full load.
const UPKEEP_EVERY: u64 = 1024;

/// What one request did, for metrics and the access log.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestStats {
    pub(crate) route: &'static str,
    pub(crate) namespace: String,
    pub(crate) payloads: usize,
    pub(crate) bytes_in: usize,
    pub(crate) bytes_out: usize,
    pub(crate) error: Option<&'static str>,
}

/// The series one (route, namespace) pair records into on success: handles
/// registered once, so a request costs no label sets, key hashing or
/// registry look-ups.
///
/// Requests add to a [`Shard`] of their thread's, not to the handles, which
/// every thread shares (see [`crate::shard`]). A shard goes into the handles
/// every [`FLUSH_EVERY`] requests, and every shard before each render, so a
/// scrape sees every finished request.
struct Series {
    requests_ok: Counter,
    payloads: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    duration: Histogram,
    shards: Box<[Shard]>,
}

/// Shards per series: more than the threads that record, so that two
/// threads rarely share one (if they do, they only take turns at its lock).
const SHARDS: usize = 16;

/// Requests a shard holds before it goes into the shared handles.
const FLUSH_EVERY: usize = 64;

/// One thread's not yet flushed part of a series.
type Shard = Padded<std::sync::Mutex<Pending>>;

#[derive(Default)]
struct Pending {
    requests_ok: u64,
    payloads: u64,
    bytes_in: u64,
    bytes_out: u64,
    /// Latencies in seconds, at most [`FLUSH_EVERY`].
    latencies: Vec<f64>,
}

impl Series {
    /// Moves `pending` into the handles; returns how many requests it held.
    fn flush(&self, pending: &mut Pending) -> u64 {
        let count = pending.latencies.len() as u64;
        if count == 0 {
            return 0;
        }
        self.requests_ok
            .increment(std::mem::take(&mut pending.requests_ok));
        self.payloads
            .increment(std::mem::take(&mut pending.payloads));
        self.bytes_in
            .increment(std::mem::take(&mut pending.bytes_in));
        self.bytes_out
            .increment(std::mem::take(&mut pending.bytes_out));
        for latency in pending.latencies.drain(..) {
            self.duration.record(latency);
        }
        count
    }

    /// Flushes every shard; returns how many requests they held.
    fn flush_all(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| self.flush(&mut lock(&shard.0)))
            .sum()
    }
}

/// Namespace label → the series of each route seen with it.
type SeriesCache = HashMap<Box<str>, Vec<(&'static str, Arc<Series>)>>;

/// The server's metrics.
#[derive(Clone)]
pub(crate) struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// Read without locks; written the first time a (route, namespace)
    /// pair is seen. Bounded: namespace labels are configured names or
    /// `other`, routes are a fixed set.
    series: Arc<ArcSwap<SeriesCache>>,
    /// Requests recorded, for the upkeep.
    recorded: Arc<AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        Self {
            recorder: Arc::new(recorder),
            handle,
            series: Arc::new(ArcSwap::from_pointee(HashMap::new())),
            recorded: Arc::new(AtomicU64::new(0)),
        }
    }

    fn labels(route: &'static str, namespace: &str) -> Vec<Label> {
        vec![
            Label::new("route", route),
            Label::new("namespace", namespace.to_owned()),
        ]
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    /// A gauge without labels (the connection layer and `/metrics` set
    /// them).
    pub(crate) fn gauge(&self, name: &'static str) -> metrics::Gauge {
        self.recorder
            .register_gauge(&Key::from_name(name), &METADATA)
    }

    /// A counter without labels.
    pub(crate) fn plain_counter(&self, name: &'static str) -> Counter {
        self.counter(name, Vec::new())
    }

    /// A counter with one label.
    pub(crate) fn labelled_counter(
        &self,
        name: &'static str,
        label: &'static str,
        value: &'static str,
    ) -> Counter {
        self.counter(name, vec![Label::new(label, value)])
    }

    fn register(&self, route: &'static str, namespace: &str) -> Series {
        let with = |extra: Option<Label>| {
            let mut labels = Self::labels(route, namespace);
            labels.extend(extra);
            labels
        };
        Series {
            requests_ok: self.counter(
                "codec_server_requests_total",
                with(Some(Label::new("status", "200"))),
            ),
            payloads: self.counter("codec_server_payloads_total", with(None)),
            bytes_in: self.counter("codec_server_request_bytes_total", with(None)),
            bytes_out: self.counter("codec_server_response_bytes_total", with(None)),
            duration: self.recorder.register_histogram(
                &Key::from_parts("codec_server_request_duration_seconds", with(None)),
                &METADATA,
            ),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }

    /// Runs `with` on the series for (`route`, `namespace`), registered on
    /// first use. The series is borrowed, not cloned: a clone would write
    /// its shared reference count.
    fn with_series<R>(
        &self,
        route: &'static str,
        namespace: &str,
        with: impl FnOnce(&Series) -> R,
    ) -> R {
        let find = |cache: &SeriesCache| -> Option<usize> {
            cache.get(namespace)?.iter().position(|(r, _)| *r == route)
        };
        {
            let cache = self.series.load();
            if let Some(i) = find(&cache) {
                return with(&cache[namespace][i].1);
            }
        }
        let series = Arc::new(self.register(route, namespace));
        self.series.rcu(|cache| {
            let mut cache = SeriesCache::clone(cache);
            let routes = cache.entry(namespace.into()).or_default();
            if !routes.iter().any(|(r, _)| *r == route) {
                routes.push((route, series.clone()));
            }
            cache
        });
        // Another thread may have registered it first: use the cached one,
        // which renders flush.
        let cache = self.series.load();
        match find(&cache) {
            Some(i) => with(&cache[namespace][i].1),
            None => with(&series),
        }
    }

    /// Records one finished request.
    pub(crate) fn record(
        &self,
        stats: &RequestStats,
        namespace_label: &str,
        status: u16,
        latency: Duration,
    ) {
        if status != 200 {
            let mut labels = Self::labels(stats.route, namespace_label);
            labels.push(Label::new("status", status.to_string()));
            self.counter("codec_server_requests_total", labels)
                .increment(1);
        }
        if let Some(code) = stats.error {
            let mut labels = Self::labels(stats.route, namespace_label);
            labels.push(Label::new("code", code));
            self.counter("codec_server_errors_total", labels)
                .increment(1);
        }
        let flushed = self.with_series(stats.route, namespace_label, |series| {
            let mut pending = lock(&series.shards[thread_number() % SHARDS].0);
            pending.requests_ok += u64::from(status == 200);
            pending.payloads += stats.payloads as u64;
            pending.bytes_in += stats.bytes_in as u64;
            pending.bytes_out += stats.bytes_out as u64;
            pending.latencies.push(latency.as_secs_f64());
            if pending.latencies.len() >= FLUSH_EVERY {
                series.flush(&mut pending)
            } else {
                0
            }
        });
        self.upkeep(flushed);
    }

    /// Folds the flushed latency samples into their buckets now and then.
    fn upkeep(&self, flushed: u64) {
        if flushed == 0 {
            return;
        }
        let before = self.recorded.fetch_add(flushed, Ordering::Relaxed);
        if before / UPKEEP_EVERY != (before + flushed) / UPKEEP_EVERY {
            self.handle.run_upkeep();
        }
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let flushed = self
            .series
            .load()
            .values()
            .flatten()
            .map(|(_, series)| series.flush_all())
            .sum();
        self.upkeep(flushed);
        self.handle.render()
    }
}

/// KMS calls and data key cache lookups, appended to the exposition. The
/// counts start again when a reload builds a new KMS hub.
pub(crate) fn render_kms(text: &mut String, stats: &payload_kms::KmsStats) {
    use std::fmt::Write as _;
    let _ = write!(
        text,
        "# HELP codec_server_kms_calls_total KMS calls that succeeded, by operation.\n\
         # TYPE codec_server_kms_calls_total counter\n\
         codec_server_kms_calls_total{{op=\"wrap\"}} {}\n\
         codec_server_kms_calls_total{{op=\"unwrap\"}} {}\n\
         # HELP codec_server_kms_call_failures_total KMS calls that failed (each retry counts).\n\
         # TYPE codec_server_kms_call_failures_total counter\n\
         codec_server_kms_call_failures_total {}\n\
         # HELP codec_server_kms_cache_lookups_total Data key cache lookups, by result.\n\
         # TYPE codec_server_kms_cache_lookups_total counter\n\
         codec_server_kms_cache_lookups_total{{result=\"hit\"}} {}\n\
         codec_server_kms_cache_lookups_total{{result=\"miss\"}} {}\n",
        stats.wraps, stats.unwraps, stats.failures, stats.cache_hits, stats.cache_misses
    );
}

/// External storage objects and bytes by namespace section and driver,
/// appended to the exposition (nothing when no namespace has storage).
pub(crate) fn render_storage(
    text: &mut String,
    stats: &[(String, String, payload_storage::DriverStats)],
) {
    use std::fmt::Write as _;
    if stats.is_empty() {
        return;
    }
    text.push_str(
        "# HELP codec_server_storage_objects_total External storage objects, by operation and result.\n\
         # TYPE codec_server_storage_objects_total counter\n",
    );
    let label = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    for (ns, driver, s) in stats {
        let (ns, driver) = (label(ns), label(driver));
        for (op, result, n) in [
            ("store", "ok", s.stored),
            ("retrieve", "ok", s.retrieved),
            ("retrieve", "missing", s.missing),
            ("retrieve", "corrupt", s.corrupt),
            ("any", "unavailable", s.unavailable),
            ("any", "refused", s.refused),
        ] {
            let _ = writeln!(
                text,
                "codec_server_storage_objects_total{{namespace=\"{ns}\",driver=\"{driver}\",\
                 operation=\"{op}\",result=\"{result}\"}} {n}"
            );
        }
    }
    text.push_str(
        "# HELP codec_server_storage_bytes_total External storage bytes moved, by operation.\n\
         # TYPE codec_server_storage_bytes_total counter\n",
    );
    for (ns, driver, s) in stats {
        let (ns, driver) = (label(ns), label(driver));
        for (op, n) in [("store", s.bytes_stored), ("retrieve", s.bytes_retrieved)] {
            let _ = writeln!(
                text,
                "codec_server_storage_bytes_total{{namespace=\"{ns}\",driver=\"{driver}\",\
                 operation=\"{op}\"}} {n}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `_count` of the request-duration histogram in `text`.
    fn duration_count(text: &str) -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with("codec_server_request_duration_seconds_count"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
    }

    #[test]
    fn upkeep_keeps_every_sample() {
        let metrics = Metrics::new();
        let stats = RequestStats {
            route: "decode",
            ..RequestStats::default()
        };
        let n = UPKEEP_EVERY * 3 + 5;
        for _ in 0..n {
            metrics.record(&stats, "", 200, Duration::from_micros(300));
        }
        assert_eq!(duration_count(&metrics.render()), Some(n));
        assert!(metrics.render().contains("le=\"0.0005\"} "));
    }

    #[test]
    fn every_thread_s_requests_are_in_the_next_render() {
        let metrics = Metrics::new();
        let stats = RequestStats {
            route: "decode",
            payloads: 2,
            bytes_in: 10,
            ..RequestStats::default()
        };
        // Not a multiple of the flush size: some requests are still in
        // their shards when the render comes.
        let per_thread = FLUSH_EVERY as u64 * 3 + 7;
        std::thread::scope(|scope| {
            for _ in 0..5 {
                scope.spawn(|| {
                    for _ in 0..per_thread {
                        metrics.record(&stats, "", 200, Duration::from_micros(300));
                    }
                });
            }
        });
        metrics.record(&stats, "", 400, Duration::from_micros(300));
        let text = metrics.render();
        let total = per_thread * 5 + 1;
        assert_eq!(duration_count(&text), Some(total));
        let value = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
        };
        assert_eq!(
            value("codec_server_requests_total{route=\"decode\",namespace=\"\",status=\"200\"}"),
            Some(per_thread * 5),
            "{text}"
        );
        assert_eq!(value("codec_server_payloads_total"), Some(total * 2));
        assert_eq!(value("codec_server_request_bytes_total"), Some(total * 10));
    }
}
