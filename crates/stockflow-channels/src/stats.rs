//! What the engine counts per channel, for the server's stats endpoint and for the `metrics`
//! facade (Prometheus names, seconds as the unit of time).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use serde::Serialize;
use stockflow_core::ids::ChannelId;

use crate::adapter::SyncKey;
use crate::pending::KeyError;

pub const SYNC_LAG: &str = "stockflow_sync_lag_seconds";
pub const QUEUE_DEPTH: &str = "stockflow_sync_queue_depth";
pub const CALLS: &str = "stockflow_sync_calls_total";
pub const RATE_LIMITED: &str = "stockflow_sync_rate_limited_total";
pub const RETRIES: &str = "stockflow_sync_retries_total";
pub const DRIFT: &str = "stockflow_sync_drift_total";
pub const ERRORS: &str = "stockflow_sync_errors_total";
pub const PROPAGATION_LATENCY: &str = "stockflow_propagation_latency_seconds";
pub const INTERNAL_LATENCY: &str = "stockflow_sync_internal_latency_seconds";

/// Describes every metric once (names, units, help), for the exporter.
pub fn describe_metrics() {
    describe_gauge!(
        SYNC_LAG,
        Unit::Seconds,
        "Age of the oldest change waiting to reach the channel."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Distinct keys (SKU x location) waiting to be sent to the channel."
    );
    describe_counter!(CALLS, Unit::Count, "Calls to the channel, by outcome.");
    describe_counter!(
        RATE_LIMITED,
        Unit::Count,
        "Calls the channel answered with its rate-limit answer."
    );
    describe_counter!(
        RETRIES,
        Unit::Count,
        "Entries scheduled for another attempt."
    );
    describe_counter!(
        DRIFT,
        Unit::Count,
        "Differences between what the channel showed and what stockflow believed it showed."
    );
    describe_counter!(
        ERRORS,
        Unit::Count,
        "Entry failures, by the platform's code."
    );
    describe_histogram!(
        PROPAGATION_LATENCY,
        Unit::Seconds,
        "From the causing input's ingest to the channel's acknowledgement."
    );
    describe_histogram!(
        INTERNAL_LATENCY,
        Unit::Seconds,
        "From the causing input's ingest to the call carrying the change being sent."
    );
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// A latency histogram in microseconds, 1 µs to 1 day.
#[derive(Debug, Clone)]
pub struct LatencyHistogram(Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 86_400_000_000, 3).expect("valid bounds"))
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, 86_400_000_000);
        self.0.record(micros).expect("clamped into bounds");
    }

    pub fn percentiles(&self) -> Percentiles {
        let ms = |q: f64| self.0.value_at_quantile(q) as f64 / 1_000.0;
        Percentiles {
            count: self.0.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            max_ms: self.0.max() as f64 / 1_000.0,
        }
    }
}

/// The last error a channel answered, with the platform's code.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastError {
    pub code: String,
    pub message: String,
    pub key: Option<SyncKey>,
    /// Unix milliseconds.
    pub at_unix_ms: i64,
}

/// Counters of one channel.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub offered: u64,
    pub coalesced: u64,
    pub stale: u64,
    pub refused: u64,
    pub acknowledged: u64,
    pub calls: BTreeMap<&'static str, u64>,
    pub rate_limited: u64,
    pub retries: u64,
    pub drift: u64,
    pub verified: u64,
    pub not_applied: u64,
    pub errors: BTreeMap<String, u64>,
    pub last_error: Option<LastError>,
    pub propagation: LatencyHistogram,
    /// Propagation latency of acknowledged drops to zero.
    pub zero: LatencyHistogram,
    pub under_1s: u64,
    /// From the causing input's ingest to the call carrying the change being sent.
    pub internal: LatencyHistogram,
}

/// One channel's stats, for the server.
#[derive(Clone, Debug, Serialize)]
pub struct ChannelStats {
    pub channel: ChannelId,
    pub kind: &'static str,
    /// Keys waiting (ready, backing off or in flight).
    pub queue_depth: usize,
    pub in_flight_keys: usize,
    /// Age of the oldest waiting change: the sync lag.
    pub oldest_pending_age_ms: u64,
    /// Values sent and waiting to be read back (channels that queue).
    pub verifications_pending: usize,
    pub offered: u64,
    /// Offers that replaced a value still waiting.
    pub coalesced: u64,
    /// Offers older than a value already known for the key: ignored.
    pub stale: u64,
    /// New keys refused because the queue was full.
    pub refused: u64,
    pub acknowledged: u64,
    pub calls: BTreeMap<&'static str, u64>,
    pub rate_limited: u64,
    pub retries: u64,
    pub drift: u64,
    pub verified: u64,
    /// Accepted values a read-back showed were not applied (they were sent again).
    pub not_applied: u64,
    pub errors: BTreeMap<String, u64>,
    pub last_error: Option<LastError>,
    /// Waiting keys with an error, most attempts first.
    pub key_errors: Vec<(SyncKey, KeyError)>,
    pub propagation_latency: Percentiles,
    /// Drops to zero only: what prevents oversells.
    pub zero_latency: Percentiles,
    /// Share of acknowledgements within one second of the cause.
    pub under_1s_share: f64,
    /// Internal latency: from the causing input's ingest (the change's `caused_at`) to the
    /// adapter's call carrying it being sent, per value sent.
    pub internal_latency: Percentiles,
}

/// Metric handles are looked up by labels each time; these helpers keep the names in one place.
pub fn record_call(channel: &ChannelId, outcome: &'static str) {
    counter!(CALLS, "channel" => channel.to_string(), "outcome" => outcome).increment(1);
}

pub fn record_rate_limited(channel: &ChannelId) {
    counter!(RATE_LIMITED, "channel" => channel.to_string()).increment(1);
}

pub fn record_retry(channel: &ChannelId) {
    counter!(RETRIES, "channel" => channel.to_string()).increment(1);
}

pub fn record_drift(channel: &ChannelId) {
    counter!(DRIFT, "channel" => channel.to_string()).increment(1);
}

pub fn record_error(channel: &ChannelId, code: &str) {
    counter!(ERRORS, "channel" => channel.to_string(), "code" => code.to_owned()).increment(1);
}

pub fn record_propagation(channel: &ChannelId, latency: Duration) {
    histogram!(PROPAGATION_LATENCY, "channel" => channel.to_string()).record(latency.as_secs_f64());
}

pub fn record_internal(channel: &ChannelId, latency: Duration) {
    histogram!(INTERNAL_LATENCY, "channel" => channel.to_string()).record(latency.as_secs_f64());
}

pub fn record_queue(channel: &ChannelId, depth: usize, lag: Duration) {
    gauge!(QUEUE_DEPTH, "channel" => channel.to_string()).set(depth as f64);
    gauge!(SYNC_LAG, "channel" => channel.to_string()).set(lag.as_secs_f64());
}
