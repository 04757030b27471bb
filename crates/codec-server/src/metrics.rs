//! Prometheus metrics: requests, payloads, bytes, errors and latency by
//! route and namespace, served at `GET /metrics`.
//!
//! Each server owns its recorder (no global state), so several servers can
//! run in one process (tests). Namespace labels are limited to configured
//! namespaces (others count as `other`), so callers cannot inflate the
//! number of series.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Latency buckets, in seconds: most decode calls are sub-millisecond.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

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

/// The server's metrics.
#[derive(Clone)]
pub(crate) struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
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
        let labels = || {
            vec![
                Label::new("route", stats.route),
                Label::new("namespace", namespace_label.to_owned()),
            ]
        };
        let counter = |name: &'static str, extra: Vec<Label>, value: u64| {
            let mut all = labels();
            all.extend(extra);
            self.recorder
                .register_counter(&Key::from_parts(name, all), &METADATA)
                .increment(value);
        };
        counter(
            "codec_server_requests_total",
            vec![Label::new("status", status.to_string())],
            1,
        );
        counter(
            "codec_server_payloads_total",
            Vec::new(),
            stats.payloads as u64,
        );
        counter(
            "codec_server_request_bytes_total",
            Vec::new(),
            stats.bytes_in as u64,
        );
        counter(
            "codec_server_response_bytes_total",
            Vec::new(),
            stats.bytes_out as u64,
        );
        if let Some(code) = stats.error {
            counter(
                "codec_server_errors_total",
                vec![Label::new("code", code)],
                1,
            );
        }
        self.recorder
            .register_histogram(
                &Key::from_parts("codec_server_request_duration_seconds", labels()),
                &METADATA,
            )
            .record(latency.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        self.handle.render()
    }
}
