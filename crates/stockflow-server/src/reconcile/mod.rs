//! Reconciliation: physical (a cycle count against the ledger as of the count's time) and
//! channel (what each channel shows against what it acknowledged and what it may sell). The
//! rules are pure, in `stockflow_core::reconcile`; this module gathers their inputs and carries
//! out their results.
//!
//! - [`counts`]: cycle count files (CSV, JSON), the expected quantity at the count's time from
//!   the audit trail, and the audited corrections.
//! - [`channels`]: channel runs in bounded pages, on a schedule and on demand, drift repaired
//!   per policy.
//! - [`stats`]: [`ReconciliationStats`], the runs and mismatch counts the KPIs, the alerts and
//!   the dashboard read.

pub mod channels;
pub mod counts;
pub mod stats;

pub use stats::ReconciliationStats;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use stockflow_core::reconcile::{ApplyMode, CountPolicy, DriftPolicy};

/// `[reconcile]` in the configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileSection {
    pub counts: CountsSettings,
    pub channels: ChannelsSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountsSettings {
    /// A count file larger than this is refused (413) while it streams in.
    pub bytes_max: usize,
    /// A count file with more rows is refused.
    pub rows_max: usize,
    /// What a request that does not say `apply` does: `dry_run`, `policy` or `all`.
    pub default_apply: ApplyMode,
    /// Differences within these limits are applied by `apply=policy`; the rest are flagged.
    pub policy: CountPolicy,
    /// The most audit entries read to account for the moves after a count's time; an older
    /// count is refused rather than read for minutes.
    pub audit_scan_entries_max: usize,
    /// Discrepancies listed in an answer (all are counted).
    pub listed_max: usize,
}

impl Default for CountsSettings {
    fn default() -> Self {
        Self {
            bytes_max: 64 * 1024 * 1024,
            rows_max: 500_000,
            default_apply: ApplyMode::DryRun,
            policy: CountPolicy::default(),
            audit_scan_entries_max: 5_000_000,
            listed_max: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelsSettings {
    /// Seconds between scheduled runs over every channel; 0: on demand only.
    pub interval_seconds: u64,
    /// Keys read from a channel per read call.
    pub page_keys: usize,
    /// Keys checked per channel per run at most (the rest wait for the next run).
    pub keys_per_run_max: usize,
    /// Runs remembered for `GET /v1/reconcile/runs`.
    pub runs_kept: usize,
    /// Mismatched keys listed per channel in a run's report (all are counted).
    pub listed_max: usize,
    /// What is done about drift on a channel without its own policy.
    pub drift_policy: DriftPolicy,
    /// Per channel id: `overwrite` (send the ledger's value again) or `accept` (adjust the
    /// ledger to what the channel shows).
    pub drift_policies: BTreeMap<String, DriftPolicy>,
}

impl Default for ChannelsSettings {
    fn default() -> Self {
        Self {
            interval_seconds: 900,
            page_keys: 50,
            keys_per_run_max: 200_000,
            runs_kept: 50,
            listed_max: 100,
            drift_policy: DriftPolicy::Overwrite,
            drift_policies: BTreeMap::new(),
        }
    }
}

impl ChannelsSettings {
    pub fn policy_for(&self, channel: &str) -> DriftPolicy {
        self.drift_policies
            .get(channel)
            .copied()
            .unwrap_or(self.drift_policy)
    }
}

impl ReconcileSection {
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                self.counts.bytes_max >= 1024,
                "reconcile.counts.bytes_max must be at least 1024",
            ),
            (
                self.counts.rows_max >= 1,
                "reconcile.counts.rows_max must be at least 1",
            ),
            (
                self.channels.page_keys >= 1,
                "reconcile.channels.page_keys must be at least 1",
            ),
            (
                self.channels.page_keys <= 250,
                "reconcile.channels.page_keys must be at most 250",
            ),
            (
                self.channels.runs_kept >= 1,
                "reconcile.channels.runs_kept must be at least 1",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err((*message).to_owned()),
            None => Ok(()),
        }
    }
}
