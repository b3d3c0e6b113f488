//! The engine's metrics, through the `metrics` facade (the server installs the Prometheus
//! recorder; without one every call is a no-op). Names follow Prometheus conventions: units
//! last, `_total` for counters.

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use std::time::Duration;
use stockflow_core::outcome::{EventStatus, IncidentKind, Outcome, Reply};

pub const EVENTS_APPLIED_TOTAL: &str = "stockflow_events_applied_total";
pub const EVENTS_DUPLICATE_TOTAL: &str = "stockflow_events_duplicate_total";
pub const EVENTS_HELD_TOTAL: &str = "stockflow_events_held_total";
pub const REQUESTS_REJECTED_TOTAL: &str = "stockflow_requests_rejected_total";
pub const REQUESTS_OVERLOADED_TOTAL: &str = "stockflow_requests_overloaded_total";
pub const INCIDENTS_TOTAL: &str = "stockflow_incidents_total";
pub const BATCH_REQUESTS: &str = "stockflow_batch_requests";
pub const BATCH_ENVELOPES: &str = "stockflow_batch_envelopes";
pub const JOURNAL_COMMIT_SECONDS: &str = "stockflow_journal_commit_seconds";
pub const JOURNAL_COMMIT_FAILURES_TOTAL: &str = "stockflow_journal_commit_failures_total";
pub const WRITER_QUEUE_DEPTH: &str = "stockflow_writer_queue_depth";
pub const JOURNAL_POSITION: &str = "stockflow_journal_position";
pub const SNAPSHOT_SECONDS: &str = "stockflow_snapshot_seconds";
pub const SNAPSHOT_CLONE_SECONDS: &str = "stockflow_snapshot_clone_seconds";

/// Registers descriptions and units; call once after installing the recorder.
pub fn describe() {
    describe_counter!(EVENTS_APPLIED_TOTAL, "Events applied to the ledger.");
    describe_counter!(
        EVENTS_DUPLICATE_TOTAL,
        "Events answered as duplicates (already applied)."
    );
    describe_counter!(
        EVENTS_HELD_TOTAL,
        "Events held until a missing earlier seq arrives."
    );
    describe_counter!(
        REQUESTS_REJECTED_TOTAL,
        "Requests refused by the ledger, by code."
    );
    describe_counter!(
        REQUESTS_OVERLOADED_TOTAL,
        "Requests refused because a writer queue was full."
    );
    describe_counter!(INCIDENTS_TOTAL, "Incidents recorded, by kind.");
    describe_histogram!(BATCH_REQUESTS, "Requests per committed batch.");
    describe_histogram!(BATCH_ENVELOPES, "Journaled envelopes per committed batch.");
    describe_histogram!(
        JOURNAL_COMMIT_SECONDS,
        Unit::Seconds,
        "Time to commit one batch durably."
    );
    describe_counter!(
        JOURNAL_COMMIT_FAILURES_TOTAL,
        "Batches whose commit failed."
    );
    describe_gauge!(WRITER_QUEUE_DEPTH, "Requests waiting for a writer.");
    describe_gauge!(JOURNAL_POSITION, "Last journaled position, per shard.");
    describe_histogram!(
        SNAPSHOT_SECONDS,
        Unit::Seconds,
        "Time to encode and store a snapshot."
    );
    describe_histogram!(
        SNAPSHOT_CLONE_SECONDS,
        Unit::Seconds,
        "Time the writer stalls to copy its ledger for a snapshot."
    );
}

/// Counts what one outcome did.
pub(crate) fn record_outcome(outcome: &Outcome) {
    match &outcome.reply {
        Reply::Events(results) => {
            let (mut applied, mut duplicate, mut held) = (0_u64, 0_u64, 0_u64);
            for result in results {
                match result.status {
                    EventStatus::Applied => applied += 1,
                    EventStatus::Duplicate => duplicate += 1,
                    EventStatus::Held => held += 1,
                }
            }
            counter!(EVENTS_APPLIED_TOTAL).increment(applied);
            counter!(EVENTS_DUPLICATE_TOTAL).increment(duplicate);
            counter!(EVENTS_HELD_TOTAL).increment(held);
        }
        Reply::Rejected(rejection) => {
            counter!(REQUESTS_REJECTED_TOTAL, "code" => rejection.code()).increment(1);
        }
        Reply::Done | Reply::Reservation { .. } => {}
    }
    for incident in &outcome.incidents {
        counter!(INCIDENTS_TOTAL, "kind" => incident_kind_name(incident.kind)).increment(1);
    }
}

pub(crate) fn record_commit(shard: usize, requests: usize, envelopes: usize, elapsed: Duration) {
    let shard = shard.to_string();
    histogram!(BATCH_REQUESTS, "shard" => shard.clone()).record(requests as f64);
    histogram!(BATCH_ENVELOPES, "shard" => shard.clone()).record(envelopes as f64);
    histogram!(JOURNAL_COMMIT_SECONDS, "shard" => shard).record(elapsed.as_secs_f64());
}

pub(crate) fn record_position(shard: usize, position: u64) {
    gauge!(JOURNAL_POSITION, "shard" => shard.to_string()).set(position as f64);
}

pub(crate) fn record_queue_depth(shard: usize, queue_depth: usize) {
    gauge!(WRITER_QUEUE_DEPTH, "shard" => shard.to_string()).set(queue_depth as f64);
}

pub fn incident_kind_name(kind: IncidentKind) -> &'static str {
    match kind {
        IncidentKind::NegativeAvailable => "negative_available",
        IncidentKind::SequenceGap => "sequence_gap",
        IncidentKind::UnknownReservation => "unknown_reservation",
        IncidentKind::Oversell => "oversell",
        IncidentKind::NegativeQuantity => "negative_quantity",
        IncidentKind::VersionConflict => "version_conflict",
        IncidentKind::LateEvent => "late_event",
        IncidentKind::PickedAhead => "picked_ahead",
        // The core may add kinds before this list learns them; they are still counted.
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}
