//! What a sandbox saw and showed, for tests to assert on: per item, the timeline of the
//! quantity the platform showed buyers; per operation, every call by outcome; every rate-limit
//! rejection and every limit violation.
//!
//! A *rejection* is a call that arrived while its client had no capacity left (the platform
//! answered with its throttling answer). A *violation* is a client breaking a documented rule:
//! calling again while still rejected (before the platform said capacity would be back), or
//! exceeding a documented maximum (batch size, query cost, page size, body size). A well-behaved
//! client may be rejected now and then; it is never recorded with a violation.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::SimClock;

/// The most points one item's timeline keeps; older points are dropped first.
pub const TIMELINE_POINTS_MAX: usize = 100_000;
/// The most items with a timeline; changes to further items are counted as dropped, not kept.
pub const ITEMS_MAX: usize = 100_000;
/// The most violations kept in detail; the count goes on beyond it.
pub const VIOLATIONS_KEPT_MAX: usize = 10_000;

/// One item as a platform shows it: the merchant's SKU at a platform location (a Shopify
/// location gid, a TikTok warehouse id, `DEFAULT` for Amazon's merchant-fulfilled quantity, or
/// the location named in a webhook, empty when none).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey {
    pub sku: String,
    pub location: String,
}

impl ItemKey {
    pub fn new(sku: impl Into<String>, location: impl Into<String>) -> Self {
        Self {
            sku: sku.into(),
            location: location.into(),
        }
    }
}

/// Why a shown quantity changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The catalogue the sandbox was started with.
    Seed,
    /// An API call applied it immediately; the operation name and the request's reference
    /// (an idempotency key, a request id).
    Api {
        operation: String,
        reference: String,
    },
    /// An accepted submission applied after its delay (Amazon).
    QueuedApply { submission_id: String },
    /// A bulk feed finished processing (Amazon).
    Feed { feed_id: String },
    /// A simulated buyer's order.
    Order { order_id: String },
    /// A cancelled order gave its units back.
    Cancellation { order_id: String },
    /// The merchant edited the quantity in the platform's own admin (drift).
    MerchantEdit,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantityPoint {
    /// Sandbox time of the change.
    pub at: Duration,
    pub quantity: i64,
    pub cause: Cause,
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Accepted and answered with success (applied, queued, or read).
    Ok,
    /// Well-formed but refused by a business rule (user errors, INVALID, a platform error code).
    Refused,
    /// Malformed: unparsable, missing fields, unknown resource, too large.
    Invalid,
    /// Bad or missing credentials or signature.
    Unauthorized,
    /// Answered with the platform's throttling answer.
    Throttled,
    /// Answered with an injected 5xx.
    ServerError,
    /// Held by an injected timeout.
    TimedOut,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// Called again before the platform said capacity would be back.
    CalledWhileRejected,
    /// Exceeded a documented maximum.
    LimitExceeded,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub at: Duration,
    pub operation: String,
    pub kind: ViolationKind,
    pub detail: String,
}

/// Everything recorded, copied out at once.
#[derive(Clone, Debug, Default)]
pub struct RecorderSnapshot {
    pub timelines: BTreeMap<ItemKey, Vec<QuantityPoint>>,
    pub calls: BTreeMap<(String, Outcome), u64>,
    pub rejections: BTreeMap<String, u64>,
    pub violation_count: u64,
    pub violations: Vec<Violation>,
    /// Quantity changes not kept because [`ITEMS_MAX`] items already had a timeline.
    pub dropped_points: u64,
}

#[derive(Debug)]
pub struct Recorder {
    clock: SimClock,
    state: Mutex<RecorderState>,
}

#[derive(Debug, Default)]
struct RecorderState {
    timelines: HashMap<ItemKey, VecDeque<QuantityPoint>>,
    calls: HashMap<(String, Outcome), u64>,
    rejections: HashMap<String, u64>,
    violation_count: u64,
    violations: VecDeque<Violation>,
    dropped_points: u64,
}

impl Recorder {
    pub fn new(clock: SimClock) -> Self {
        Self {
            clock,
            state: Mutex::new(RecorderState::default()),
        }
    }

    /// Records the quantity shown for an item at `at`; a value equal to the last one shown is
    /// not a change and is not recorded.
    pub fn record_quantity(&self, key: ItemKey, at: Duration, quantity: i64, cause: Cause) {
        let mut state = self.state.lock().unwrap();
        if state.timelines.len() >= ITEMS_MAX && !state.timelines.contains_key(&key) {
            state.dropped_points += 1;
            return;
        }
        let timeline = state.timelines.entry(key).or_default();
        if timeline
            .back()
            .is_some_and(|last| last.quantity == quantity)
        {
            return;
        }
        if timeline.len() == TIMELINE_POINTS_MAX {
            timeline.pop_front();
        }
        timeline.push_back(QuantityPoint {
            at,
            quantity,
            cause,
        });
    }

    pub fn record_call(&self, operation: &str, outcome: Outcome) {
        let mut state = self.state.lock().unwrap();
        *state
            .calls
            .entry((operation.to_owned(), outcome))
            .or_default() += 1;
    }

    pub fn record_rejection(&self, operation: &str) {
        let mut state = self.state.lock().unwrap();
        *state.rejections.entry(operation.to_owned()).or_default() += 1;
    }

    pub fn record_violation(&self, operation: &str, kind: ViolationKind, detail: String) {
        let at = self.clock.now();
        tracing::debug!(operation, ?kind, %detail, "limit violation");
        let mut state = self.state.lock().unwrap();
        state.violation_count += 1;
        if state.violations.len() == VIOLATIONS_KEPT_MAX {
            state.violations.pop_front();
        }
        state.violations.push_back(Violation {
            at,
            operation: operation.to_owned(),
            kind,
            detail,
        });
    }

    /// The quantities shown for one item, oldest first.
    pub fn timeline(&self, sku: &str, location: &str) -> Vec<QuantityPoint> {
        let state = self.state.lock().unwrap();
        state
            .timelines
            .get(&ItemKey::new(sku, location))
            .map(|points| points.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The quantity currently shown for one item, if it was ever shown.
    pub fn shown(&self, sku: &str, location: &str) -> Option<i64> {
        let state = self.state.lock().unwrap();
        let timeline = state.timelines.get(&ItemKey::new(sku, location))?;
        timeline.back().map(|point| point.quantity)
    }

    pub fn call_count(&self, operation: &str, outcome: Outcome) -> u64 {
        let state = self.state.lock().unwrap();
        let key = (operation.to_owned(), outcome);
        state.calls.get(&key).copied().unwrap_or(0)
    }

    /// Calls of one operation, whatever their outcome.
    pub fn call_total(&self, operation: &str) -> u64 {
        let state = self.state.lock().unwrap();
        let calls = state.calls.iter();
        calls
            .filter(|((name, _), _)| name == operation)
            .map(|(_, count)| count)
            .sum()
    }

    pub fn rejection_count(&self) -> u64 {
        self.state.lock().unwrap().rejections.values().sum()
    }

    pub fn violation_count(&self) -> u64 {
        self.state.lock().unwrap().violation_count
    }

    /// The most recent violations (up to [`VIOLATIONS_KEPT_MAX`]).
    pub fn violations(&self) -> Vec<Violation> {
        let state = self.state.lock().unwrap();
        state.violations.iter().cloned().collect()
    }

    pub fn snapshot(&self) -> RecorderSnapshot {
        let state = self.state.lock().unwrap();
        let timelines = state.timelines.iter();
        RecorderSnapshot {
            timelines: timelines
                .map(|(key, points)| (key.clone(), points.iter().cloned().collect()))
                .collect(),
            calls: state.calls.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            rejections: state
                .rejections
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            violation_count: state.violation_count,
            violations: state.violations.iter().cloned().collect(),
            dropped_points: state.dropped_points,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_quantities_are_not_points() {
        let recorder = Recorder::new(SimClock::manual());
        let at = Duration::ZERO;
        recorder.record_quantity(ItemKey::new("A", "x"), at, 5, Cause::Seed);
        recorder.record_quantity(ItemKey::new("A", "x"), at, 5, Cause::MerchantEdit);
        recorder.record_quantity(ItemKey::new("A", "x"), at, 4, Cause::MerchantEdit);
        let quantities: Vec<i64> = recorder
            .timeline("A", "x")
            .iter()
            .map(|p| p.quantity)
            .collect();
        assert_eq!(quantities, vec![5, 4]);
        assert_eq!(recorder.shown("A", "x"), Some(4));
        assert_eq!(recorder.shown("A", "y"), None);
    }

    #[test]
    fn counts_calls_rejections_and_violations() {
        let recorder = Recorder::new(SimClock::manual());
        recorder.record_call("op", Outcome::Ok);
        recorder.record_call("op", Outcome::Throttled);
        recorder.record_rejection("op");
        recorder.record_violation("op", ViolationKind::LimitExceeded, "251 > 250".into());
        assert_eq!(recorder.call_total("op"), 2);
        assert_eq!(recorder.call_count("op", Outcome::Ok), 1);
        assert_eq!(recorder.rejection_count(), 1);
        assert_eq!(recorder.violation_count(), 1);
        assert_eq!(recorder.snapshot().violations.len(), 1);
    }
}
