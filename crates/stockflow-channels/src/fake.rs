//! An in-memory channel that keeps a platform's rules, for tests of the engine and of the
//! server's wiring: it shows a quantity per key, paces calls with a GCRA, checks
//! compare-and-set the way Shopify does (and repairs like the Shopify adapter: re-read, record,
//! retry with the right value), can queue values instead of applying them (Amazon's ACCEPTED,
//! some never landing), and answers scripted failures. It records every call it got.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::adapter::{
    AdapterError, Batch, CallReport, ChannelAdapter, EntryOutcome, Failure, FailureKind,
    Observation, Placement, ReadValue, SyncKey,
};
use crate::pacing::Gcra;

/// How the fake takes values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeMode {
    /// Applies at once and acknowledges (webhook-like).
    Apply,
    /// Checks the believed value first, like Shopify's `changeFromQuantity`.
    CompareAndSet,
    /// Accepts and applies after `apply_delay` (Amazon-like); keys in `lost` never apply.
    Queue { apply_delay: Duration },
}

/// A scripted answer to the next call.
#[derive(Clone, Debug)]
pub enum Scripted {
    /// The whole call fails.
    Fail(Failure),
}

#[derive(Debug, Default)]
struct FakeState {
    shown: HashMap<SyncKey, i64>,
    queued: Vec<(Instant, SyncKey, i64)>,
    lost: HashSet<SyncKey>,
    unknown: HashSet<SyncKey>,
    script: VecDeque<Scripted>,
    calls: Vec<Vec<(SyncKey, Option<i64>)>>,
    reads: usize,
}

struct FakeInner {
    mode: FakeMode,
    units_per_call: usize,
    latency: Duration,
    verify_delay: Duration,
    gcra: Gcra,
    state: Mutex<FakeState>,
}

/// A fake channel; clones share the channel, so a test keeps one to look inside.
#[derive(Clone)]
pub struct FakeAdapter {
    inner: Arc<FakeInner>,
}

impl FakeAdapter {
    /// `rate_per_second` calls with a burst of `burst`, `units_per_call` keys a call, `latency`
    /// per call.
    pub fn new(
        mode: FakeMode,
        rate_per_second: f64,
        burst: u32,
        units_per_call: usize,
        latency: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(FakeInner {
                mode,
                units_per_call,
                latency,
                verify_delay: Duration::from_secs(2),
                gcra: Gcra::new(rate_per_second, burst, Duration::ZERO),
                state: Mutex::new(FakeState::default()),
            }),
        }
    }

    pub fn with_verify_delay(self, verify_delay: Duration) -> Self {
        let inner = Arc::into_inner(self.inner).expect("configure before sharing");
        Self {
            inner: Arc::new(FakeInner {
                verify_delay,
                ..inner
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.inner.state.lock().unwrap()
    }

    /// What the channel shows (after applying what is due).
    pub fn shown(&self, key: &SyncKey) -> Option<i64> {
        let mut state = self.state();
        settle(&mut state);
        state.shown.get(key).copied()
    }

    /// Sets what the channel shows, behind the engine's back (a merchant edit, an order).
    pub fn set_shown(&self, key: &SyncKey, quantity: i64) {
        let mut state = self.state();
        settle(&mut state);
        state.shown.insert(key.clone(), quantity);
    }

    /// The next queued value of this key never lands.
    pub fn lose_next(&self, key: &SyncKey) {
        self.state().lost.insert(key.clone());
    }

    /// The channel does not know this key: calls with it fail with INVALID_ITEM.
    pub fn forget(&self, key: &SyncKey) {
        self.state().unknown.insert(key.clone());
    }

    pub fn script(&self, answer: Scripted) {
        self.state().script.push_back(answer);
    }

    /// Every call, as (key, quantity) lists in call order.
    pub fn calls(&self) -> Vec<Vec<(SyncKey, Option<i64>)>> {
        self.state().calls.clone()
    }

    pub fn read_count(&self) -> usize {
        self.state().reads
    }
}

fn settle(state: &mut FakeState) {
    let now = Instant::now();
    let due: Vec<(SyncKey, i64)> = state
        .queued
        .iter()
        .filter(|(at, _, _)| *at <= now)
        .map(|(_, key, quantity)| (key.clone(), *quantity))
        .collect();
    state.queued.retain(|(at, _, _)| *at > now);
    for (key, quantity) in due {
        state.shown.insert(key, quantity);
    }
}

impl FakeAdapter {
    fn answer(&self, batch: &Batch) -> CallReport {
        let mut state = self.state();
        settle(&mut state);
        state.calls.push(
            batch
                .entries
                .iter()
                .map(|e| (e.key.clone(), e.quantity))
                .collect(),
        );
        if let Some(Scripted::Fail(failure)) = state.script.pop_front() {
            if failure.kind == FailureKind::Throttled {
                self.inner
                    .gcra
                    .hold_off(failure.retry_after.unwrap_or(Duration::from_secs(1)));
            }
            let mut report = CallReport::all_failed(batch, failure);
            report.calls.push("failed");
            return report;
        }
        let mut report = CallReport {
            calls: vec!["ok"],
            ..CallReport::default()
        };
        for entry in &batch.entries {
            report
                .outcomes
                .push(self.apply(&mut state, entry, &mut report.observations));
        }
        report
    }

    fn apply(
        &self,
        state: &mut FakeState,
        entry: &crate::adapter::Entry,
        observations: &mut Vec<Observation>,
    ) -> EntryOutcome {
        if state.unknown.contains(&entry.key) {
            return EntryOutcome::Failed(Failure::new(
                FailureKind::Rejected,
                "INVALID_ITEM",
                "unknown item",
            ));
        }
        let current = state.shown.get(&entry.key).copied();
        let quantity = entry.quantity.or(current).unwrap_or(0);
        match self.inner.mode {
            FakeMode::Apply => {
                state.shown.insert(entry.key.clone(), quantity);
                EntryOutcome::Applied { quantity }
            }
            FakeMode::CompareAndSet => {
                if let Some(current) = current
                    && entry.believed != Some(current)
                {
                    // What the Shopify adapter does on CHANGE_FROM_QUANTITY_STALE: re-read,
                    // report, set again with the value read.
                    observations.push(Observation {
                        key: entry.key.clone(),
                        believed: entry.believed,
                        found: current,
                    });
                }
                state.shown.insert(entry.key.clone(), quantity);
                EntryOutcome::Applied { quantity }
            }
            FakeMode::Queue { apply_delay } => {
                if !state.lost.remove(&entry.key) {
                    let at = Instant::now() + apply_delay;
                    state.queued.push((at, entry.key.clone(), quantity));
                }
                EntryOutcome::Accepted { quantity }
            }
        }
    }
}

impl ChannelAdapter for FakeAdapter {
    fn place(&self, key: &SyncKey) -> Result<Placement, Failure> {
        Ok(Placement {
            group: String::new(),
            unit: key.to_string(),
            companions: Vec::new(),
        })
    }

    fn units_per_call(&self) -> usize {
        self.inner.units_per_call
    }

    fn acquire(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.inner.gcra.acquire())
    }

    fn send(&self, batch: Batch) -> BoxFuture<'_, CallReport> {
        Box::pin(async move {
            let sent_at = Instant::now();
            tokio::time::sleep(self.inner.latency).await;
            let mut report = self.answer(&batch);
            report.sent_at = Some(sent_at);
            report
        })
    }

    fn read(&self, keys: Vec<SyncKey>) -> BoxFuture<'_, Result<Vec<ReadValue>, AdapterError>> {
        Box::pin(async move {
            self.inner.gcra.acquire().await;
            tokio::time::sleep(self.inner.latency).await;
            let mut state = self.state();
            settle(&mut state);
            state.reads += 1;
            Ok(keys
                .into_iter()
                .map(|key| ReadValue {
                    quantity: state.shown.get(&key).copied(),
                    key,
                })
                .collect())
        })
    }

    fn verify_delay(&self) -> Duration {
        self.inner.verify_delay
    }
}
