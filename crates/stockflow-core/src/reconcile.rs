//! Reconciliation rules: what a cycle count says against the ledger, and what a channel shows
//! against what it acknowledged and what it may sell. Pure functions of their inputs; the server
//! gathers the inputs (read model, audit trail, channel read-backs) and carries out the results.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A change of on_hand at one SKU x location, with when it physically happened (the event's
/// `occurred_at` when the producer said, else when stockflow recorded it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnHandChange {
    pub occurred_at: Timestamp,
    pub delta: i64,
}

/// on_hand as it was at `counted_at`: today's on_hand less every change that happened after the
/// count. A pick scanned before the count but reported after it is part of what the counter saw,
/// so it is not taken back; a pick scanned after the count is.
pub fn on_hand_at(
    on_hand_now: i64,
    changes_recorded_since: &[OnHandChange],
    counted_at: Timestamp,
) -> i64 {
    let after: i64 = changes_recorded_since
        .iter()
        .filter(|change| change.occurred_at > counted_at)
        .map(|change| change.delta)
        .sum();
    on_hand_now - after
}

/// Which differences of a count are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApplyMode {
    /// Report only (the default).
    #[default]
    DryRun,
    /// Apply the differences within the configured thresholds; flag the rest for a person.
    Policy,
    /// Apply every difference.
    All,
}

/// The threshold policy: a difference is within it when it is within any configured limit.
/// With no limit configured nothing is within it (every difference waits for a person).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountPolicy {
    /// Differences of at most this many units (either sign).
    pub units_max: Option<i64>,
    /// Differences of at most this share of the expected quantity, in percent.
    pub percent_max: Option<f64>,
}

impl CountPolicy {
    pub fn within(&self, difference: i64, expected: i64) -> bool {
        let units = difference.unsigned_abs();
        let by_units = self.units_max.is_some_and(|max| units <= max.max(0) as u64);
        let by_percent = self.percent_max.is_some_and(|max| {
            if expected <= 0 {
                return units == 0;
            }
            units as f64 * 100.0 <= max * expected as f64
        });
        by_units || by_percent
    }
}

/// What becomes of one counted row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The count agrees with the ledger.
    Matches,
    /// A difference, reported only (dry run).
    Reported,
    /// A difference to apply.
    Apply,
    /// A difference outside the threshold policy: left for a person.
    Flagged,
}

pub fn decide(difference: i64, expected: i64, mode: ApplyMode, policy: &CountPolicy) -> Decision {
    if difference == 0 {
        return Decision::Matches;
    }
    match mode {
        ApplyMode::DryRun => Decision::Reported,
        ApplyMode::All => Decision::Apply,
        ApplyMode::Policy if policy.within(difference, expected) => Decision::Apply,
        ApplyMode::Policy => Decision::Flagged,
    }
}

/// The ledger event that applies a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Correction {
    /// Nothing changed since the count: on_hand is set to what was counted (a `counted` event).
    Count { counted: i64 },
    /// Stock moved since the count: the difference is carried forward as an `adjusted` event,
    /// since setting on_hand to the counted number would undo the moves after it.
    Adjust { delta: i64 },
}

pub fn correction(counted: i64, expected: i64, on_hand_now: i64) -> Option<Correction> {
    let difference = counted - expected;
    if difference == 0 {
        return None;
    }
    if expected == on_hand_now {
        Some(Correction::Count { counted })
    } else {
        Some(Correction::Adjust { delta: difference })
    }
}

/// How a channel's stockflow-maintained quantity is repaired when it drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DriftPolicy {
    /// The ledger is right: the channel is sent the current value again.
    #[default]
    Overwrite,
    /// The channel is right (a merchant's edit): the difference becomes a ledger adjustment.
    Accept,
}

/// What reconciliation knows of one channel key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyObservation {
    /// What the channel shows now; `None` when it does not know the item.
    pub shown: Option<i64>,
    /// What the channel last acknowledged (less the orders it took itself since), as the sync
    /// believes; `None` when nothing is known.
    pub acknowledged: Option<i64>,
    /// The newest value the sync holds for the key and whether it is still waiting to be sent.
    pub newest: Option<(i64, bool)>,
    /// What the channel may sell now.
    pub available_to_sell: i64,
}

/// The class of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyClass {
    /// The channel shows what it acknowledged, and that is the current ATS.
    Matches,
    /// A newer value is on its way: not a mismatch.
    InFlight,
    /// The channel shows something other than what it acknowledged: someone else changed it.
    Drift,
    /// The channel shows what it acknowledged, but that is not the current ATS and nothing is
    /// on its way: a change was lost.
    Stale,
    /// The channel does not know the item.
    Missing,
}

impl KeyClass {
    pub fn is_mismatch(self) -> bool {
        matches!(self, KeyClass::Drift | KeyClass::Stale | KeyClass::Missing)
    }
}

pub fn classify(key: &KeyObservation) -> KeyClass {
    let Some(shown) = key.shown else {
        return KeyClass::Missing;
    };
    let waiting = key.newest.filter(|(_, waiting)| *waiting).map(|(v, _)| v);
    if waiting.is_some() && (waiting == Some(shown) || key.acknowledged == Some(shown)) {
        return KeyClass::InFlight;
    }
    match key.acknowledged {
        Some(acknowledged) if acknowledged != shown => KeyClass::Drift,
        Some(_) if shown == key.available_to_sell => KeyClass::Matches,
        Some(_) if waiting.is_some() => KeyClass::InFlight,
        Some(_) => KeyClass::Stale,
        None if shown == key.available_to_sell => KeyClass::Matches,
        None if waiting.is_some() => KeyClass::InFlight,
        None => KeyClass::Drift,
    }
}

/// Mismatched keys over keys checked (0 when nothing was checked).
pub fn mismatch_rate(mismatched: u64, checked: u64) -> f64 {
    if checked == 0 {
        0.0
    } else {
        mismatched as f64 / checked as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_seconds(seconds)
    }

    fn change(seconds: i64, delta: i64) -> OnHandChange {
        OnHandChange {
            occurred_at: at(seconds),
            delta,
        }
    }

    #[test]
    fn on_hand_at_the_count_takes_back_only_what_happened_after_it() {
        let check = |changes: &[OnHandChange], expected: i64| {
            assert_eq!(on_hand_at(7, changes, at(100)), expected, "{changes:?}");
        };
        check(&[], 7);
        // Two picks after the count: the counter saw two more.
        check(&[change(101, -1), change(150, -1)], 9);
        // A pick scanned before the count, reported later: the counter did not see it.
        check(&[change(99, -1), change(150, -1)], 8);
        // At the count's own instant: already counted.
        check(&[change(100, -3)], 7);
        // A receipt after the count.
        check(&[change(120, 5)], 2);
    }

    #[test]
    fn decisions_follow_the_mode_and_the_threshold_policy() {
        let policy = CountPolicy {
            units_max: Some(2),
            percent_max: Some(5.0),
        };
        let check = |difference, expected, mode, decision| {
            assert_eq!(
                decide(difference, expected, mode, &policy),
                decision,
                "{difference} of {expected} in {mode:?}"
            );
        };
        check(0, 10, ApplyMode::All, Decision::Matches);
        check(3, 10, ApplyMode::DryRun, Decision::Reported);
        check(30, 10, ApplyMode::All, Decision::Apply);
        check(-2, 10, ApplyMode::Policy, Decision::Apply);
        check(-3, 10, ApplyMode::Policy, Decision::Flagged);
        // 5 of 100 is 5%: within by percent though over by units.
        check(5, 100, ApplyMode::Policy, Decision::Apply);
        check(6, 100, ApplyMode::Policy, Decision::Flagged);
        // Nothing expected: any difference is infinitely many percent.
        check(3, 0, ApplyMode::Policy, Decision::Flagged);
        assert!(
            !CountPolicy::default().within(1, 100),
            "no limit: nothing within"
        );
    }

    #[test]
    fn a_count_without_moves_since_sets_on_hand_and_one_with_moves_adjusts() {
        assert_eq!(correction(5, 5, 5), None);
        assert_eq!(correction(4, 5, 5), Some(Correction::Count { counted: 4 }));
        assert_eq!(correction(4, 6, 3), Some(Correction::Adjust { delta: -2 }));
    }

    #[test]
    fn keys_are_classified_against_acknowledged_and_current_values() {
        let check = |shown, acknowledged, newest, ats, class: KeyClass| {
            let key = KeyObservation {
                shown,
                acknowledged,
                newest,
                available_to_sell: ats,
            };
            assert_eq!(classify(&key), class, "{key:?}");
            class.is_mismatch()
        };
        assert!(!check(
            Some(5),
            Some(5),
            Some((5, false)),
            5,
            KeyClass::Matches
        ));
        // A newer value waits to be sent; the channel still shows the acknowledged one.
        assert!(!check(
            Some(5),
            Some(5),
            Some((3, true)),
            3,
            KeyClass::InFlight
        ));
        // The channel applied the waiting value before its acknowledgement came back.
        assert!(!check(
            Some(3),
            Some(5),
            Some((3, true)),
            3,
            KeyClass::InFlight
        ));
        // A merchant's edit.
        assert!(check(
            Some(9),
            Some(5),
            Some((5, false)),
            5,
            KeyClass::Drift
        ));
        // An edit while a value waits is still drift.
        assert!(check(Some(9), Some(5), Some((3, true)), 3, KeyClass::Drift));
        // Acknowledged, but the ATS moved and nothing was sent.
        assert!(check(
            Some(5),
            Some(5),
            Some((5, false)),
            4,
            KeyClass::Stale
        ));
        assert!(check(None, Some(5), None, 5, KeyClass::Missing));
        // Nothing known: judged against the ATS.
        assert!(!check(Some(4), None, None, 4, KeyClass::Matches));
        assert!(check(Some(7), None, None, 4, KeyClass::Drift));
        assert!(!check(
            Some(7),
            None,
            Some((4, true)),
            4,
            KeyClass::InFlight
        ));
    }

    #[test]
    fn the_mismatch_rate_is_a_share_of_keys_checked() {
        assert_eq!(mismatch_rate(0, 0), 0.0);
        assert_eq!(mismatch_rate(1, 4), 0.25);
    }
}
