//! Alert rules and the alert state machine. Conditions go in (what each rule found at one
//! instant), transitions come out (opened, resolved); time is passed in. One alert is open per
//! rule x subject at most: a condition that holds again while its alert is open updates it.

use crate::availability::VelocityReading;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// The rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The oldest change waiting for a channel is older than the target.
    SyncLag,
    /// A channel answers with its rate-limit answer more often than the limit in a window.
    RateLimited,
    /// A SKU's demand in the recent hour is a multiple of its own baseline.
    DemandSpike,
    /// A producer's sequence gap was given up on.
    SequenceGap,
    /// An event of a gap already given up on arrived after all and was applied out of its
    /// source's order.
    LateEvent,
    /// A channel order could not be reserved.
    Oversell,
    /// Channel reconciliation found more mismatched keys than the threshold.
    ReconciliationMismatch,
    /// A channel's cancellation rate approaches its platform's limit.
    CancellationRate,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::SyncLag,
        Rule::RateLimited,
        Rule::DemandSpike,
        Rule::SequenceGap,
        Rule::LateEvent,
        Rule::Oversell,
        Rule::ReconciliationMismatch,
        Rule::CancellationRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::SyncLag => "sync_lag",
            Rule::RateLimited => "rate_limited",
            Rule::DemandSpike => "demand_spike",
            Rule::SequenceGap => "sequence_gap",
            Rule::LateEvent => "late_event",
            Rule::Oversell => "oversell",
            Rule::ReconciliationMismatch => "reconciliation_mismatch",
            Rule::CancellationRate => "cancellation_rate",
        }
    }
}

/// What a rule found for one subject (a channel, a SKU, a source) at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    pub rule: Rule,
    pub subject: String,
    /// The measured value and the threshold it crossed, in the rule's unit.
    pub value: f64,
    pub threshold: f64,
    /// One sentence with the numbers.
    pub summary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Open,
    Resolved,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub id: u64,
    pub rule: Rule,
    pub subject: String,
    pub state: AlertState,
    pub opened_at: Timestamp,
    /// The last time the condition was seen to hold.
    pub seen_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub value: f64,
    /// The worst value while open.
    pub peak_value: f64,
    pub threshold: f64,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Opened(Alert),
    Resolved(Alert),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertBookConfig {
    /// An open alert resolves once its condition has not held for this long (so that a
    /// condition flickering around its threshold does not open and resolve in a loop).
    pub resolve_after_micros: i64,
    /// Open alerts at most; conditions beyond it are counted, not opened.
    pub open_max: usize,
    /// Resolved alerts remembered for the listing.
    pub resolved_kept_max: usize,
}

/// Open alerts and the recently resolved ones.
#[derive(Debug, Clone)]
pub struct AlertBook {
    config: AlertBookConfig,
    open: BTreeMap<(Rule, String), Alert>,
    resolved: VecDeque<Alert>,
    next_id: u64,
    /// Conditions not opened because `open_max` alerts were open.
    pub suppressed: u64,
}

impl AlertBook {
    pub fn new(config: AlertBookConfig) -> Self {
        Self {
            config,
            open: BTreeMap::new(),
            resolved: VecDeque::new(),
            next_id: 1,
            suppressed: 0,
        }
    }

    /// Takes what the rules in `evaluated` found at `now` (only the conditions that hold).
    /// Alerts of rules not evaluated this time are left as they are.
    pub fn observe(
        &mut self,
        evaluated: &[Rule],
        holding: Vec<Condition>,
        now: Timestamp,
    ) -> Vec<Transition> {
        let mut transitions = Vec::new();
        for condition in holding {
            if let Some(opened) = self.hold(condition, now) {
                transitions.push(Transition::Opened(opened));
            }
        }
        let due: Vec<(Rule, String)> = self
            .open
            .iter()
            .filter(|((rule, _), alert)| {
                evaluated.contains(rule)
                    && now.micros_since(alert.seen_at) >= self.config.resolve_after_micros
                    && alert.seen_at < now
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            let mut alert = self.open.remove(&key).expect("listed above");
            alert.state = AlertState::Resolved;
            alert.resolved_at = Some(now);
            if self.resolved.len() == self.config.resolved_kept_max {
                self.resolved.pop_front();
            }
            self.resolved.push_back(alert.clone());
            transitions.push(Transition::Resolved(alert));
        }
        transitions
    }

    /// Updates the open alert of the condition, or opens one (returned).
    fn hold(&mut self, condition: Condition, now: Timestamp) -> Option<Alert> {
        let key = (condition.rule, condition.subject.clone());
        if let Some(alert) = self.open.get_mut(&key) {
            alert.seen_at = now;
            alert.value = condition.value;
            // Thresholds are upper limits: the worst value is the highest.
            alert.peak_value = alert.peak_value.max(condition.value);
            alert.summary = condition.summary;
            return None;
        }
        if self.open.len() >= self.config.open_max {
            self.suppressed += 1;
            return None;
        }
        let alert = Alert {
            id: self.next_id,
            rule: condition.rule,
            subject: condition.subject,
            state: AlertState::Open,
            opened_at: now,
            seen_at: now,
            resolved_at: None,
            value: condition.value,
            peak_value: condition.value,
            threshold: condition.threshold,
            summary: condition.summary,
        };
        self.next_id += 1;
        self.open.insert(key, alert.clone());
        Some(alert)
    }

    pub fn open(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    /// Resolved alerts, oldest first.
    pub fn resolved(&self) -> impl Iterator<Item = &Alert> {
        self.resolved.iter()
    }
}

/// The thresholds of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Sync lag: the oldest waiting change may be this old.
    pub sync_lag_ms_max: u64,
    /// Rate limiting: rejections per window, at most.
    pub rate_limited_per_window_max: u64,
    /// Demand spike: the recent hour's rate at least this multiple of the baseline...
    pub spike_ratio_min: f64,
    /// ...with at least this many units in the recent hour.
    pub spike_units_min: u64,
    /// Reconciliation: mismatched keys over keys checked, at most.
    pub mismatch_rate_max: f64,
    /// Cancellation rate: alert at this share of the platform's limit (0.8: at 2% of Amazon's
    /// 2.5%).
    pub cancellation_limit_share: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            sync_lag_ms_max: 30_000,
            rate_limited_per_window_max: 20,
            spike_ratio_min: 5.0,
            spike_units_min: 20,
            mismatch_rate_max: 0.01,
            cancellation_limit_share: 0.8,
        }
    }
}

fn condition(rule: Rule, subject: &str, value: f64, threshold: f64, summary: String) -> Condition {
    Condition {
        rule,
        subject: subject.to_owned(),
        value,
        threshold,
        summary,
    }
}

pub fn sync_lag(channel: &str, oldest_pending_age_ms: u64, t: &Thresholds) -> Option<Condition> {
    (oldest_pending_age_ms > t.sync_lag_ms_max).then(|| {
        condition(
            Rule::SyncLag,
            channel,
            oldest_pending_age_ms as f64 / 1000.0,
            t.sync_lag_ms_max as f64 / 1000.0,
            format!(
                "{channel}: the oldest change has waited {:.1} s (target {:.1} s)",
                oldest_pending_age_ms as f64 / 1000.0,
                t.sync_lag_ms_max as f64 / 1000.0
            ),
        )
    })
}

pub fn rate_limited(channel: &str, rejections_in_window: u64, t: &Thresholds) -> Option<Condition> {
    (rejections_in_window > t.rate_limited_per_window_max).then(|| {
        condition(
            Rule::RateLimited,
            channel,
            rejections_in_window as f64,
            t.rate_limited_per_window_max as f64,
            format!(
                "{channel}: {rejections_in_window} rate-limit rejections in the window (limit {})",
                t.rate_limited_per_window_max
            ),
        )
    })
}

/// A spike: the recent hour at `spike_ratio_min` times the baseline or more. A SKU with no
/// baseline yet is judged against one unit a day, as the buffer policies do.
pub fn demand_spike(sku: &str, reading: &VelocityReading, t: &Thresholds) -> Option<Condition> {
    if reading.recent_units < t.spike_units_min.max(1) {
        return None;
    }
    let baseline = reading.baseline_per_hour.unwrap_or(0.0).max(1.0 / 24.0);
    let ratio = reading.recent_per_hour / baseline;
    (ratio >= t.spike_ratio_min).then(|| {
        condition(
            Rule::DemandSpike,
            sku,
            ratio,
            t.spike_ratio_min,
            format!(
                "{sku}: {:.1} units/h in the last hour, {ratio:.1}x its baseline of {baseline:.2}/h",
                reading.recent_per_hour
            ),
        )
    })
}

/// Incidents of one kind (sequence gaps, oversells) for one subject within the window: the
/// alert holds while any happened.
pub fn incidents(rule: Rule, subject: &str, count_in_window: u64, what: &str) -> Option<Condition> {
    (count_in_window > 0).then(|| {
        condition(
            rule,
            subject,
            count_in_window as f64,
            0.0,
            format!("{subject}: {count_in_window} {what} in the window"),
        )
    })
}

pub fn reconciliation_mismatch(
    channel: &str,
    rate: f64,
    checked: u64,
    t: &Thresholds,
) -> Option<Condition> {
    (checked > 0 && rate > t.mismatch_rate_max).then(|| {
        condition(
            Rule::ReconciliationMismatch,
            channel,
            rate,
            t.mismatch_rate_max,
            format!(
                "{channel}: {:.2}% of {checked} keys did not match (threshold {:.2}%)",
                rate * 100.0,
                t.mismatch_rate_max * 100.0
            ),
        )
    })
}

/// `rate_percent` against the platform's `limit_percent`.
pub fn cancellation_rate(
    channel: &str,
    rate_percent: f64,
    limit_percent: f64,
    t: &Thresholds,
) -> Option<Condition> {
    let threshold = limit_percent * t.cancellation_limit_share;
    (rate_percent >= threshold && limit_percent > 0.0).then(|| {
        condition(
            Rule::CancellationRate,
            channel,
            rate_percent,
            threshold,
            format!(
                "{channel}: cancellation rate {rate_percent:.2}% approaches the platform's limit of \
                 {limit_percent:.2}%"
            ),
        )
    })
}

/// How much a monotonic counter rose within a sliding window, from samples taken when the
/// caller looks. Bounded: samples older than the window are dropped, and at most `samples_max`
/// are kept (the oldest go first).
#[derive(Debug, Clone, Default)]
pub struct CounterWindow {
    samples: VecDeque<(Timestamp, u64)>,
}

impl CounterWindow {
    pub const SAMPLES_MAX: usize = 1024;

    /// Records the counter's `total` at `now` and returns its rise within `window_micros`.
    pub fn rise(&mut self, now: Timestamp, total: u64, window_micros: i64) -> u64 {
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.micros_since(*at) > window_micros)
            && self.samples.len() > 1
        {
            self.samples.pop_front();
        }
        if self.samples.len() == Self::SAMPLES_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back((now, total));
        let oldest = self.samples.front().map_or(total, |(_, value)| *value);
        total.saturating_sub(oldest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_seconds(seconds)
    }

    fn book(resolve_after_seconds: i64) -> AlertBook {
        AlertBook::new(AlertBookConfig {
            resolve_after_micros: resolve_after_seconds * Timestamp::MICROS_PER_SECOND,
            open_max: 3,
            resolved_kept_max: 2,
        })
    }

    fn lag(channel: &str, ms: u64) -> Option<Condition> {
        sync_lag(channel, ms, &Thresholds::default())
    }

    /// Feeds one round of conditions for the sync-lag rule and returns the transitions as
    /// `opened:subject` / `resolved:subject`.
    fn check(book: &mut AlertBook, seconds: i64, holding: Vec<Condition>) -> Vec<String> {
        book.observe(&[Rule::SyncLag], holding, at(seconds))
            .into_iter()
            .map(|t| match t {
                Transition::Opened(a) => format!("opened:{}", a.subject),
                Transition::Resolved(a) => format!("resolved:{}", a.subject),
            })
            .collect()
    }

    #[test]
    fn an_alert_opens_stays_open_while_its_condition_holds_and_resolves_after() {
        let mut book = book(0);
        assert!(check(&mut book, 1, vec![]).is_empty());
        assert_eq!(
            check(&mut book, 2, lag("amazon", 40_000).into_iter().collect()),
            ["opened:amazon"]
        );
        // Still lagging: no second alert, the open one is updated.
        assert!(check(&mut book, 3, lag("amazon", 50_000).into_iter().collect()).is_empty());
        let open: Vec<_> = book.open().collect();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].value, 50.0);
        assert_eq!(open[0].opened_at, at(2));
        assert_eq!(
            check(&mut book, 4, lag("amazon", 1_000).into_iter().collect()),
            ["resolved:amazon"]
        );
        assert_eq!(book.open().count(), 0);
        let resolved: Vec<_> = book.resolved().collect();
        assert_eq!(resolved[0].peak_value, 50.0);
        assert_eq!(resolved[0].resolved_at, Some(at(4)));
        // It can open again: a new alert with a new id.
        assert_eq!(
            check(&mut book, 5, lag("amazon", 40_000).into_iter().collect()),
            ["opened:amazon"]
        );
        assert_eq!(book.open().next().unwrap().id, 2);
    }

    #[test]
    fn resolving_waits_for_the_condition_to_stay_clear() {
        let mut book = book(10);
        check(&mut book, 0, lag("shop", 40_000).into_iter().collect());
        assert!(check(&mut book, 5, vec![]).is_empty(), "clear for 5 s only");
        check(&mut book, 6, lag("shop", 40_000).into_iter().collect());
        assert!(check(&mut book, 15, vec![]).is_empty());
        assert_eq!(check(&mut book, 16, vec![]), ["resolved:shop"]);
    }

    #[test]
    fn rules_not_evaluated_leave_their_alerts_alone_and_subjects_are_separate() {
        let mut book = book(0);
        let mismatch = reconciliation_mismatch("amazon", 0.5, 10, &Thresholds::default());
        book.observe(
            &[Rule::ReconciliationMismatch],
            mismatch.into_iter().collect(),
            at(1),
        );
        let mut holding: Vec<_> = lag("amazon", 40_000).into_iter().collect();
        holding.extend(lag("tiktok", 40_000));
        assert_eq!(
            check(&mut book, 2, holding),
            ["opened:amazon", "opened:tiktok"]
        );
        assert_eq!(
            check(&mut book, 3, vec![]),
            ["resolved:amazon", "resolved:tiktok"]
        );
        let open: Vec<_> = book.open().map(|a| a.rule).collect();
        assert_eq!(open, [Rule::ReconciliationMismatch]);
    }

    #[test]
    fn open_and_resolved_alerts_are_bounded() {
        let mut book = book(0);
        let holding: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .filter_map(|c| lag(c, 40_000))
            .collect();
        assert_eq!(check(&mut book, 1, holding).len(), 3);
        assert_eq!(book.suppressed, 1);
        assert_eq!(check(&mut book, 2, vec![]).len(), 3);
        assert_eq!(
            book.resolved().count(),
            2,
            "only the newest resolved are kept"
        );
    }

    #[test]
    fn each_rule_holds_only_past_its_threshold() {
        let t = Thresholds::default();
        assert!(sync_lag("c", 30_000, &t).is_none());
        assert!(sync_lag("c", 30_001, &t).is_some());
        assert!(rate_limited("c", 20, &t).is_none());
        assert!(rate_limited("c", 21, &t).is_some());
        let reading = |recent_units, recent_per_hour, baseline_per_hour| VelocityReading {
            recent_units,
            recent_per_hour,
            baseline_per_hour,
            history_seconds: 86_400,
        };
        assert!(demand_spike("S", &reading(60, 60.0, Some(10.0)), &t).is_some());
        assert!(
            demand_spike("S", &reading(40, 40.0, Some(10.0)), &t).is_none(),
            "4x"
        );
        assert!(
            demand_spike("S", &reading(10, 10.0, None), &t).is_none(),
            "too few units"
        );
        assert!(
            demand_spike("S", &reading(30, 30.0, None), &t).is_some(),
            "no baseline"
        );
        assert!(incidents(Rule::SequenceGap, "wms", 0, "gaps").is_none());
        assert_eq!(
            incidents(Rule::Oversell, "tiktok", 2, "oversells")
                .unwrap()
                .value,
            2.0
        );
        assert!(reconciliation_mismatch("c", 0.01, 100, &t).is_none());
        assert!(reconciliation_mismatch("c", 0.02, 100, &t).is_some());
        assert!(reconciliation_mismatch("c", 0.02, 0, &t).is_none());
        // Amazon's 2.5%: alert from 2%.
        assert!(cancellation_rate("amazon", 1.9, 2.5, &t).is_none());
        let c = cancellation_rate("amazon", 2.0, 2.5, &t).unwrap();
        assert_eq!(c.threshold, 2.0);
        assert!(cancellation_rate("tiktok", 8.0, 10.0, &t).is_some());
    }

    #[test]
    fn a_counter_window_measures_the_rise_within_the_window() {
        let mut window = CounterWindow::default();
        let minute = 60 * Timestamp::MICROS_PER_SECOND;
        assert_eq!(window.rise(at(0), 5, minute), 0);
        assert_eq!(window.rise(at(30), 15, minute), 10);
        assert_eq!(window.rise(at(60), 20, minute), 15);
        // The sample at 0 left the window; the one at 30 is the oldest.
        assert_eq!(window.rise(at(90), 20, minute), 5);
        assert_eq!(window.rise(at(200), 20, minute), 0);
    }
}
