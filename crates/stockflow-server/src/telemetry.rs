//! The process-wide Prometheus recorder. `metrics` allows one global recorder per process, so it
//! is installed once and shared by every server the process starts (tests start several).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds, from 100 us to 60 s: journal commits sit at the low end,
/// propagation to a rate-limited channel at the high end.
const SECONDS_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 60.0,
];

/// Batch sizes (requests, envelopes) of the writer.
const SIZE_BUCKETS: [f64; 10] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0,
];

/// Installs the recorder on first use and returns the handle that renders `/metrics`.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Prefix("stockflow_batch_".into()),
                        &SIZE_BUCKETS,
                    )
                })
                .expect("non-empty buckets");
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder was installed first (an embedding program's): render ours
                // anyway so /metrics answers, even if it stays empty.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            stockflow_engine::metrics::describe();
            crate::sink::describe_metrics();
            crate::kpis::describe_metrics();
            crate::alerts::describe_metrics();
            handle
        })
        .clone()
}
