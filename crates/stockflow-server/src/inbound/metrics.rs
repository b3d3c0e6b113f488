//! The inbound side's metrics. Oversells are counted by the effect sink
//! (`stockflow_oversell_incidents_total`), since the ledger records them.

pub const WEBHOOKS_TOTAL: &str = "stockflow_webhooks_total";
pub const PROCESSED_TOTAL: &str = "stockflow_webhooks_processed_total";
pub const INCIDENTS_TOTAL: &str = "stockflow_webhook_incidents_total";
pub const DRIFT_TOTAL: &str = "stockflow_drift_total";
pub const BACKLOG: &str = "stockflow_webhook_backlog";

pub fn describe() {
    metrics::describe_counter!(
        WEBHOOKS_TOTAL,
        "Webhooks received, by platform, channel and result: accepted, duplicate, quarantined, \
         unauthorized, malformed, too_large, backlog_full, unavailable."
    );
    metrics::describe_counter!(
        PROCESSED_TOTAL,
        "Inbox rows processed, by platform, channel and outcome: done, ignored, quarantined, \
         retried."
    );
    metrics::describe_counter!(
        INCIDENTS_TOTAL,
        "Inbound incidents, by channel and kind: unknown_sku, fulfilment_mismatch, malformed, \
         drift, ..."
    );
    metrics::describe_counter!(
        DRIFT_TOTAL,
        "Channel-side inventory edits handled, by channel, policy and action (overwritten, \
         accepted, resent)."
    );
    metrics::describe_gauge!(BACKLOG, "Webhooks accepted and not processed yet.");
}

pub fn received(platform: &str, channel: &str, result: &'static str) {
    metrics::counter!(WEBHOOKS_TOTAL, "platform" => platform.to_owned(),
        "channel" => channel.to_owned(), "result" => result)
    .increment(1);
}

pub fn processed(platform: &str, channel: &str, outcome: &'static str) {
    metrics::counter!(PROCESSED_TOTAL, "platform" => platform.to_owned(),
        "channel" => channel.to_owned(), "outcome" => outcome)
    .increment(1);
}

pub fn incident(channel: &str, kind: &'static str) {
    metrics::counter!(INCIDENTS_TOTAL, "channel" => channel.to_owned(), "kind" => kind)
        .increment(1);
}

pub fn drift(channel: &str, policy: &'static str, action: &'static str) {
    metrics::counter!(DRIFT_TOTAL, "channel" => channel.to_owned(), "policy" => policy,
        "action" => action)
    .increment(1);
}

pub fn backlog(pending: u64) {
    metrics::gauge!(BACKLOG).set(pending as f64);
}
