//! [`ReconciliationStats`]: the shared record of reconciliation, in [`crate::app::AppState`].
//! Channel runs (the most recent ones, with their reports), per-channel mismatch counts since
//! the start, and cycle count totals. The KPIs, the alert rules and the dashboard read it.

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use stockflow_core::reconcile::{KeyClass, mismatch_rate};
use stockflow_core::time::Timestamp;

/// One key that did not match, for a run's report.
#[derive(Debug, Clone, Serialize)]
pub struct KeyMismatch {
    pub sku: String,
    pub location: Option<String>,
    pub class: KeyClass,
    pub shown: Option<i64>,
    pub acknowledged: Option<i64>,
    pub available_to_sell: i64,
    /// `overwritten`, `accepted`, `none` (nothing to do or not repairable), or the error.
    pub repair: String,
}

/// One channel's part of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChannelReport {
    pub channel: String,
    pub checked: u64,
    pub matches: u64,
    pub in_flight: u64,
    pub drift: u64,
    pub stale: u64,
    pub missing: u64,
    pub mismatched: u64,
    pub mismatch_rate: f64,
    pub overwritten: u64,
    pub accepted: u64,
    /// Keys that could not be read (a failed read call), not counted as checked.
    pub unread: u64,
    /// Keys not checked this run because of `keys_per_run_max`.
    pub skipped: u64,
    pub errors: Vec<String>,
    /// The first mismatched keys (at most `listed_max`).
    pub mismatches: Vec<KeyMismatch>,
}

impl ChannelReport {
    pub fn count(&mut self, class: KeyClass) {
        self.checked += 1;
        match class {
            KeyClass::Matches => self.matches += 1,
            KeyClass::InFlight => self.in_flight += 1,
            KeyClass::Drift => self.drift += 1,
            KeyClass::Stale => self.stale += 1,
            KeyClass::Missing => self.missing += 1,
        }
        if class.is_mismatch() {
            self.mismatched += 1;
        }
        self.mismatch_rate = mismatch_rate(self.mismatched, self.checked);
    }
}

/// One run over one or more channels.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelRun {
    pub id: u64,
    /// `schedule` or `on_demand`.
    pub trigger: String,
    pub started_at: String,
    pub finished_at: String,
    pub checked: u64,
    pub mismatched: u64,
    pub mismatch_rate: f64,
    pub channels: Vec<ChannelReport>,
}

/// Per channel, since the server started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChannelTotals {
    pub runs: u64,
    pub checked: u64,
    pub mismatched: u64,
    pub mismatch_rate: f64,
    /// The last run's rate and size: what the alert rule judges.
    pub last_mismatch_rate: f64,
    pub last_checked: u64,
    #[serde(skip)]
    pub last_run_at: Timestamp,
}

/// Cycle counts since the server started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CountTotals {
    pub imports: u64,
    pub rows: u64,
    pub malformed_rows: u64,
    pub discrepancies: u64,
    pub applied: u64,
    pub flagged: u64,
    pub conflicts: u64,
}

/// What [`ReconciliationStats::snapshot`] answers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconciliationSnapshot {
    pub channels: BTreeMap<String, ChannelTotals>,
    pub checked: u64,
    pub mismatched: u64,
    pub mismatch_rate: f64,
    pub counts: CountTotals,
    pub runs: u64,
}

#[derive(Default)]
struct Inner {
    runs: VecDeque<ChannelRun>,
    next_run: u64,
    channels: BTreeMap<String, ChannelTotals>,
    counts: CountTotals,
}

/// The shared record. Cheap to read: one short lock.
pub struct ReconciliationStats {
    runs_kept: usize,
    inner: Mutex<Inner>,
    /// One channel run at a time: a scheduled run and an on-demand one do not interleave.
    pub running: tokio::sync::Mutex<()>,
    /// Tells the scheduled runs to stop.
    pub(crate) stop: tokio::sync::watch::Sender<bool>,
    pub(crate) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl ReconciliationStats {
    pub fn new(runs_kept: usize) -> Self {
        Self {
            runs_kept: runs_kept.max(1),
            inner: Mutex::new(Inner {
                next_run: 1,
                ..Inner::default()
            }),
            running: tokio::sync::Mutex::new(()),
            stop: tokio::sync::watch::Sender::new(false),
            tasks: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn next_run_id(&self) -> u64 {
        let mut inner = self.lock();
        let id = inner.next_run;
        inner.next_run += 1;
        id
    }

    /// Records a finished run.
    pub fn record_run(&self, run: ChannelRun, at: Timestamp) {
        let mut inner = self.lock();
        for report in &run.channels {
            let totals = inner.channels.entry(report.channel.clone()).or_default();
            totals.runs += 1;
            totals.checked += report.checked;
            totals.mismatched += report.mismatched;
            totals.mismatch_rate = mismatch_rate(totals.mismatched, totals.checked);
            totals.last_mismatch_rate = report.mismatch_rate;
            totals.last_checked = report.checked;
            totals.last_run_at = at;
        }
        if inner.runs.len() == self.runs_kept {
            inner.runs.pop_front();
        }
        inner.runs.push_back(run);
    }

    pub fn record_count(&self, totals: &CountTotals) {
        let mut inner = self.lock();
        let counts = &mut inner.counts;
        counts.imports += totals.imports;
        counts.rows += totals.rows;
        counts.malformed_rows += totals.malformed_rows;
        counts.discrepancies += totals.discrepancies;
        counts.applied += totals.applied;
        counts.flagged += totals.flagged;
        counts.conflicts += totals.conflicts;
    }

    /// The most recent runs, newest last.
    pub fn runs(&self, limit: usize) -> Vec<ChannelRun> {
        let inner = self.lock();
        let skip = inner.runs.len().saturating_sub(limit);
        inner.runs.iter().skip(skip).cloned().collect()
    }

    pub fn run(&self, id: u64) -> Option<ChannelRun> {
        self.lock().runs.iter().find(|run| run.id == id).cloned()
    }

    /// Per channel: the last run's mismatch rate, keys checked and when.
    pub fn last_rates(&self) -> Vec<(String, f64, u64, Timestamp)> {
        self.lock()
            .channels
            .iter()
            .map(|(channel, t)| {
                (
                    channel.clone(),
                    t.last_mismatch_rate,
                    t.last_checked,
                    t.last_run_at,
                )
            })
            .collect()
    }

    pub fn snapshot(&self) -> ReconciliationSnapshot {
        let inner = self.lock();
        let checked = inner.channels.values().map(|t| t.checked).sum();
        let mismatched = inner.channels.values().map(|t| t.mismatched).sum();
        ReconciliationSnapshot {
            channels: inner.channels.clone(),
            checked,
            mismatched,
            mismatch_rate: mismatch_rate(mismatched, checked),
            counts: inner.counts.clone(),
            runs: inner.next_run - 1,
        }
    }
}
