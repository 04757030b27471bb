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
/// registered once, so a request costs a few atomic adds, not label sets,
/// key hashing and registry look-ups.
struct Series {
    requests_ok: Counter,
    payloads: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    duration: Histogram,
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
        }
    }

    /// The cached series for (`route`, `namespace`), registered on first use.
    fn series(&self, route: &'static str, namespace: &str) -> Arc<Series> {
        let find = |cache: &SeriesCache| {
            cache.get(namespace).and_then(|routes| {
                routes
                    .iter()
                    .find(|(r, _)| *r == route)
                    .map(|(_, series)| series.clone())
            })
        };
        if let Some(series) = find(&self.series.load()) {
            return series;
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
        series
    }

    /// Records one finished request.
    pub(crate) fn record(
        &self,
        stats: &RequestStats,
        namespace_label: &str,
        status: u16,
        latency: Duration,
    ) {
        let series = self.series(stats.route, namespace_label);
        if status == 200 {
            series.requests_ok.increment(1);
        } else {
            let mut labels = Self::labels(stats.route, namespace_label);
            labels.push(Label::new("status", status.to_string()));
            self.counter("codec_server_requests_total", labels)
                .increment(1);
        }
        series.payloads.increment(stats.payloads as u64);
        series.bytes_in.increment(stats.bytes_in as u64);
        series.bytes_out.increment(stats.bytes_out as u64);
        if let Some(code) = stats.error {
            let mut labels = Self::labels(stats.route, namespace_label);
            labels.push(Label::new("code", code));
            self.counter("codec_server_errors_total", labels)
                .increment(1);
        }
        series.duration.record(latency.as_secs_f64());
        if self.recorded.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.handle.run_upkeep();
        }
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        self.handle.render()
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
}
