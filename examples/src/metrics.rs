//! Metrics for Prometheus: the exporter of the `metrics` facade with its own HTTP listener, for
//! a bus made `with_metrics()` (see `tidings::telemetry::metrics` for what it records).

use std::net::SocketAddr;

use metrics_exporter_prometheus::{BuildError, PrometheusBuilder};

/// Bucket bounds, in seconds, of the duration histograms: from a tenth of a millisecond (an
/// in-process handler) to ten seconds (a publish waiting out a slow broker).
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
];

/// Installs the Prometheus exporter as the process's metrics recorder, serving
/// `http://{listen}/metrics` from a task on the current tokio runtime. Names follow
/// Prometheus' conventions: `messaging.client.sent.messages` is scraped as
/// `messaging_client_sent_messages_total`, `messaging.process.duration` as the histogram
/// `messaging_process_duration_seconds`.
pub fn install_prometheus(listen: SocketAddr) -> Result<(), BuildError> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .with_recommended_naming(true)
        .set_buckets(DURATION_BUCKETS)?
        .install()
}
