//! The operators' KPIs, counted continuously in time buckets and reported over the last hour,
//! day, 7 days and 30 days (`GET /v1/kpis`, `stockflow_kpi_*` gauges, the dashboard's tiles).
//!
//! Sources, and what other parts call:
//!
//! - propagation latency: the channel sync's acknowledgements ([`SyncEngine::subscribe`]);
//! - oversell incidents: `IncidentKind::Oversell` from the effect sink; at start, those of the
//!   last 30 days are counted again from the incidents table;
//! - orders, cancellations, operator releases: reservations touched by a commit (the effect
//!   sink hands their ids over; a task reads them from the read model);
//! - buffer releases: the sink's buffer changes (decayed + released);
//! - reconciliation: [`Kpis::reconciled`], called by the channel reconciliation with how many
//!   keys it checked and how many did not match;
//! - manual work outside the ledger (a quarantined webhook): [`Kpis::manual_intervention`].
//!
//! Restart: the counts (but oversells, recounted from the incidents table) are saved to
//! `kpis.json` in the data directory every `kpis.save_every_seconds` and at shutdown, and read
//! back at start; a crash loses at most that interval of latencies, orders and releases.
//!
//! The sink's part runs on the writer's thread: a counter update under a short lock, and the
//! ids of touched reservations copied into a bounded list.

pub mod report;
pub mod window;

use crate::app::{AppState, wall_clock};
use crate::config::KpisSection;
use anyhow::Context;
use report::{KpiReport, LatencyPoint, ReportInput};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use stockflow_channels::SyncEvent;
use stockflow_core::command::{Command, LedgerCommand};
use stockflow_core::envelope::{Input, Position};
use stockflow_core::ids::{ChannelId, ReservationId, TenantId};
use stockflow_core::outcome::{Incident, IncidentKind};
use stockflow_core::reservation::ReservationState;
use stockflow_core::time::Timestamp;
use stockflow_engine::Effects;
use stockflow_store::IncidentQuery;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, watch};
use window::Counts;

pub const ORDERS_TOTAL: &str = "stockflow_orders_total";
pub const ORDER_CANCELLATIONS_TOTAL: &str = "stockflow_order_cancellations_total";
pub const MANUAL_INTERVENTIONS_TOTAL: &str = "stockflow_manual_interventions_total";
pub const RECONCILIATION_CHECKED_TOTAL: &str = "stockflow_reconciliation_checked_total";
pub const RECONCILIATION_MISMATCHES_TOTAL: &str = "stockflow_reconciliation_mismatches_total";
pub const KPI_LATENCY_SECONDS: &str = "stockflow_kpi_propagation_latency_seconds";
pub const KPI_UNDER_TARGET_RATIO: &str = "stockflow_kpi_propagation_under_target_ratio";
pub const KPI_OVERSELL_INCIDENTS: &str = "stockflow_kpi_oversell_incidents";
pub const KPI_MISMATCH_RATIO: &str = "stockflow_kpi_reconciliation_mismatch_ratio";
pub const KPI_BUFFER_RELEASES: &str = "stockflow_kpi_buffer_releases";
pub const KPI_MANUAL_RATIO: &str = "stockflow_kpi_manual_intervention_ratio";
pub const KPI_ORDERS: &str = "stockflow_kpi_orders";
pub const KPI_CANCELLATION_RATIO: &str = "stockflow_kpi_cancellation_ratio";
pub const KPI_CANCELLATION_LIMIT_RATIO: &str = "stockflow_kpi_cancellation_limit_ratio";

/// Reservation touches waiting for the task; beyond this they are dropped and counted.
const PENDING_TOUCHES_MAX: usize = 65_536;
/// Oversell incidents recounted at start, per tenant, at most (pages of 1000).
const RECOUNT_PAGES_MAX: usize = 100;
/// How often the task reads touched reservations and refreshes the gauges.
const STEP_INTERVAL: Duration = Duration::from_secs(1);
const GAUGE_EVERY_STEPS: u64 = 5;
const FILE_NAME: &str = "kpis.json";

pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(
        ORDERS_TOTAL,
        "Channel orders: reservations granted for a channel, and orders that could not be reserved (oversells)."
    );
    describe_counter!(
        ORDER_CANCELLATIONS_TOTAL,
        "Channel orders cancelled before they were picked, including oversold orders."
    );
    describe_counter!(
        MANUAL_INTERVENTIONS_TOTAL,
        "Orders that needed a person, by reason."
    );
    describe_counter!(
        RECONCILIATION_CHECKED_TOTAL,
        "Keys whose channel value reconciliation checked."
    );
    describe_counter!(
        RECONCILIATION_MISMATCHES_TOTAL,
        "Keys reconciliation found different on the channel."
    );
    describe_gauge!(
        KPI_LATENCY_SECONDS,
        Unit::Seconds,
        "Propagation latency quantile over the window, per channel."
    );
    describe_gauge!(
        KPI_UNDER_TARGET_RATIO,
        "Share of acknowledgements within the latency target over the window, per channel."
    );
    describe_gauge!(KPI_OVERSELL_INCIDENTS, "Oversell incidents in the window.");
    describe_gauge!(
        KPI_MISMATCH_RATIO,
        "Reconciliation mismatches / keys checked in the window."
    );
    describe_gauge!(
        KPI_BUFFER_RELEASES,
        "Buffers that gave stock back (decayed or released) in the window."
    );
    describe_gauge!(
        KPI_MANUAL_RATIO,
        "Orders that needed a person / orders in the window."
    );
    describe_gauge!(KPI_ORDERS, "Channel orders in the window.");
    describe_gauge!(
        KPI_CANCELLATION_RATIO,
        "Cancelled orders / orders in the window, per channel."
    );
    describe_gauge!(
        KPI_CANCELLATION_LIMIT_RATIO,
        "The platform's cancellation rate limit, per channel."
    );
}

/// What is saved to `kpis.json`.
#[derive(Serialize, Deserialize)]
struct Saved {
    counting_since: Timestamp,
    counts: Counts,
}

struct Touch {
    tenant: TenantId,
    at: Timestamp,
    position: Option<Position>,
    reservation: ReservationId,
}

/// The KPI counts and the way to feed them. One per server, in [`AppState::kpis`].
pub struct Kpis {
    settings: KpisSection,
    path: PathBuf,
    /// Counts saved across restarts.
    counts: Mutex<Counts>,
    /// Counts recounted from the incidents table at start (never saved).
    incidents: Mutex<Counts>,
    counting_since: Mutex<Timestamp>,
    touches: Mutex<Vec<Touch>>,
    touches_dropped: AtomicU64,
    /// Channel id -> kind, from the configured channels.
    kinds: Mutex<BTreeMap<String, String>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    wake: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Kpis {
    /// Reads the saved counts of `data_dir` (an unreadable file is reported and set aside).
    pub fn open(settings: KpisSection, data_dir: &std::path::Path) -> Self {
        let path = data_dir.join(FILE_NAME);
        let saved = std::fs::read(&path)
            .ok()
            .and_then(|bytes| match serde_json::from_slice::<Saved>(&bytes) {
                Ok(saved) => Some(saved),
                Err(error) => {
                    tracing::warn!(%error, path = %path.display(), "KPI counts unreadable; starting from zero");
                    None
                }
            });
        let (counting_since, counts) = match saved {
            Some(saved) => (saved.counting_since, saved.counts),
            None => (wall_clock(), Counts::default()),
        };
        Self {
            settings,
            path,
            counts: Mutex::new(counts),
            incidents: Mutex::new(Counts::default()),
            counting_since: Mutex::new(counting_since),
            touches: Mutex::default(),
            touches_dropped: AtomicU64::new(0),
            kinds: Mutex::default(),
            stop: watch::Sender::new(false),
            tasks: Mutex::default(),
            wake: Notify::new(),
        }
    }

    pub fn settings(&self) -> &KpisSection {
        &self.settings
    }

    /// A channel acknowledged a value `latency_ms` after its cause reached stockflow.
    pub fn acknowledged(&self, channel: &ChannelId, latency_ms: f64, at: Timestamp) {
        let target = self.settings.latency_target_ms as f64;
        lock(&self.counts).record(at, |b| {
            b.channel(channel.as_str())
                .latency
                .record(latency_ms, target)
        });
    }

    /// Reconciliation checked `checked` keys of `channel` and found `mismatched` of them
    /// different on the channel.
    pub fn reconciled(&self, channel: &ChannelId, checked: u64, mismatched: u64, at: Timestamp) {
        metrics::counter!(RECONCILIATION_CHECKED_TOTAL, "channel" => channel.to_string())
            .increment(checked);
        metrics::counter!(RECONCILIATION_MISMATCHES_TOTAL, "channel" => channel.to_string())
            .increment(mismatched);
        lock(&self.counts).record(at, |b| {
            let counts = b.channel(channel.as_str());
            counts.reconciled += checked;
            counts.mismatched += mismatched;
        });
    }

    /// An order needed a person for a reason the ledger does not see (`quarantined_webhook`).
    pub fn manual_intervention(&self, reason: &str, at: Timestamp) {
        metrics::counter!(MANUAL_INTERVENTIONS_TOTAL, "reason" => reason.to_owned()).increment(1);
        lock(&self.counts).record(at, |b| *b.manual.entry(reason.to_owned()).or_default() += 1);
    }

    /// From the effect sink, on the writer's thread: oversells, buffer releases, and the
    /// reservations to look at.
    pub fn committed(&self, effects: &[Effects<'_>]) {
        let mut touches = Vec::new();
        for effect in effects {
            let releases = effect.buffer_changes.decayed + effect.buffer_changes.released;
            if releases > 0 {
                lock(&self.counts).record(effect.recorded_at, |b| b.buffer_releases += releases);
            }
            if effect
                .incidents
                .iter()
                .any(|incident| incident.kind == IncidentKind::Oversell)
            {
                count_oversells(&mut lock(&self.incidents), effect.incidents);
            }
            for id in effect.touched_reservations {
                touches.push(Touch {
                    tenant: effect.tenant.clone(),
                    at: effect.recorded_at,
                    position: effect.position,
                    reservation: id.clone(),
                });
            }
        }
        if touches.is_empty() {
            return;
        }
        let mut pending = lock(&self.touches);
        let room = PENDING_TOUCHES_MAX.saturating_sub(pending.len());
        if touches.len() > room {
            self.touches_dropped
                .fetch_add((touches.len() - room) as u64, Ordering::Relaxed);
            touches.truncate(room);
        }
        pending.extend(touches);
    }

    pub fn report(&self, now: Timestamp) -> KpiReport {
        let counts = lock(&self.counts).clone();
        let incidents = lock(&self.incidents).clone();
        let kinds = lock(&self.kinds).clone();
        let input = ReportInput {
            now,
            counting_since: *lock(&self.counting_since),
            settings: &self.settings,
            kinds: &kinds,
        };
        report::report(&[&counts, &incidents], &input)
    }

    /// Per minute of the last hour, each channel's propagation latency.
    pub fn latency_series(&self, now: Timestamp) -> Vec<LatencyPoint> {
        report::latency_series(&lock(&self.counts), now)
    }

    /// Reservation touches dropped because the task fell behind.
    pub fn touches_dropped(&self) -> u64 {
        self.touches_dropped.load(Ordering::Relaxed)
    }

    /// Recounts the oversells of the last 30 days, learns the channels' kinds, and starts the
    /// tasks that follow the channel sync and the touched reservations.
    pub async fn start(self: &Arc<Self>, state: &AppState) -> anyhow::Result<()> {
        self.learn_kinds(state);
        self.recount_oversells(state).await?;
        let mut tasks = lock(&self.tasks);
        if let Some(sync) = &state.sync {
            let events = sync.subscribe();
            tasks.push(tokio::spawn(follow_sync(self.clone(), events)));
        }
        tasks.push(tokio::spawn(step_loop(self.clone(), state.clone())));
        Ok(())
    }

    /// Stops the tasks and saves the counts.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        self.wake.notify_waiters();
        let tasks: Vec<_> = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            let _ = task.await;
        }
        if let Err(error) = self.save() {
            tracing::warn!(%error, "saving the KPI counts");
        }
    }

    fn learn_kinds(&self, state: &AppState) {
        let reads = state.engine.reads();
        let mut kinds = lock(&self.kinds);
        for tenant in reads.tenants() {
            if let Some(settings) = reads.settings(&tenant) {
                for channel in &settings.availability.channels {
                    kinds.insert(
                        channel.config.id.to_string(),
                        channel.config.kind.name().to_owned(),
                    );
                }
            }
        }
    }

    async fn recount_oversells(&self, state: &AppState) -> anyhow::Result<()> {
        let since = wall_clock().plus_seconds(-(window::Window::Month.hours() as i64) * 3600);
        for tenant in state.engine.reads().tenants() {
            let store = state.engine.store_for(&tenant).clone();
            let found =
                tokio::task::spawn_blocking(move || oversells_since(&*store, tenant, since))
                    .await
                    .context("recounting oversells panicked")??;
            count_oversells(&mut lock(&self.incidents), &found);
        }
        Ok(())
    }

    /// Writes the counts to `kpis.json` (through a temporary file and a rename).
    pub fn save(&self) -> anyhow::Result<()> {
        let saved = Saved {
            counting_since: *lock(&self.counting_since),
            counts: lock(&self.counts).clone(),
        };
        let bytes = serde_json::to_vec(&saved)?;
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, bytes)
            .with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, &self.path)
            .with_context(|| format!("renaming to {}", self.path.display()))?;
        Ok(())
    }

    /// Reads the touched reservations and counts orders, cancellations and operator releases.
    async fn read_touches(&self, state: &AppState) {
        let touches = std::mem::take(&mut *lock(&self.touches));
        let mut seen = HashSet::new();
        for touch in touches {
            if !seen.insert((touch.tenant.clone(), touch.reservation.clone(), touch.at)) {
                continue;
            }
            let Some(reservation) = state
                .engine
                .reads()
                .reservation(&touch.tenant, &touch.reservation)
            else {
                continue;
            };
            let Some(channel) = reservation.channel.as_ref().map(ToString::to_string) else {
                continue;
            };
            let step = classify(
                reservation.created_at,
                reservation.resolved_at,
                reservation.state,
                reservation.is_tombstone(),
                touch.at,
            );
            let by_operator = step.cancelled
                && released_by_command(state, &touch.tenant, &touch.reservation, touch.position)
                    .await;
            self.count_step(&channel, step, by_operator, touch.at);
        }
    }

    fn count_step(&self, channel: &str, step: Step, by_operator: bool, at: Timestamp) {
        if step.ordered {
            metrics::counter!(ORDERS_TOTAL, "channel" => channel.to_owned()).increment(1);
        }
        if step.cancelled {
            metrics::counter!(ORDER_CANCELLATIONS_TOTAL, "channel" => channel.to_owned())
                .increment(1);
        }
        if by_operator {
            metrics::counter!(MANUAL_INTERVENTIONS_TOTAL, "reason" => "released_by_operator")
                .increment(1);
        }
        lock(&self.counts).record(at, |b| {
            let counts = b.channel(channel);
            counts.orders += u64::from(step.ordered);
            counts.cancelled += u64::from(step.cancelled);
            if by_operator {
                *b.manual
                    .entry("released_by_operator".to_owned())
                    .or_default() += 1;
            }
        });
    }

    fn update_gauges(&self, now: Timestamp) {
        let report = self.report(now);
        for window in &report.windows {
            let name = window.window.clone();
            for latency in &window.propagation {
                for (quantile, value) in [("0.5", latency.p50_ms), ("0.99", latency.p99_ms)] {
                    if let Some(ms) = value {
                        metrics::gauge!(KPI_LATENCY_SECONDS, "channel" => latency.channel.clone(),
                            "window" => name.clone(), "quantile" => quantile)
                        .set(ms / 1000.0);
                    }
                }
                if let Some(share) = latency.under_target_share {
                    metrics::gauge!(KPI_UNDER_TARGET_RATIO, "channel" => latency.channel.clone(),
                        "window" => name.clone())
                    .set(share);
                }
            }
            metrics::gauge!(KPI_OVERSELL_INCIDENTS, "window" => name.clone())
                .set(window.oversell_incidents as f64);
            metrics::gauge!(KPI_BUFFER_RELEASES, "window" => name.clone())
                .set(window.buffer_releases as f64);
            metrics::gauge!(KPI_MISMATCH_RATIO, "window" => name.clone())
                .set(window.reconciliation.mismatch_rate.unwrap_or(0.0));
            metrics::gauge!(KPI_MANUAL_RATIO, "window" => name.clone())
                .set(window.manual_intervention_share.unwrap_or(0.0));
            for channel in &window.cancellations {
                metrics::gauge!(KPI_ORDERS, "channel" => channel.channel.clone(), "window" => name.clone())
                    .set(channel.orders as f64);
                metrics::gauge!(KPI_CANCELLATION_RATIO, "channel" => channel.channel.clone(), "window" => name.clone())
                    .set(channel.rate.unwrap_or(0.0));
            }
        }
        for channel in &report.cancellation {
            if let Some(limit) = channel.limit {
                metrics::gauge!(KPI_CANCELLATION_LIMIT_RATIO, "channel" => channel.channel.clone())
                    .set(limit);
            }
        }
    }
}

/// What one commit did to a channel reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    pub ordered: bool,
    pub cancelled: bool,
}

/// Which steps of a reservation happened in the envelope recorded at `at`: created then (an
/// order), released then (a cancellation). Read from the reservation as it is now, so a
/// reservation created and released before the task looked is still counted twice, once at
/// each envelope. Expiry (an unpaid cart) and fulfilment are neither.
pub fn classify(
    created_at: Timestamp,
    resolved_at: Option<Timestamp>,
    state: ReservationState,
    tombstone: bool,
    at: Timestamp,
) -> Step {
    Step {
        ordered: created_at == at && !tombstone,
        cancelled: resolved_at == Some(at) && state == ReservationState::Released && !tombstone,
    }
}

/// Oversell incidents, in journal order. Each is counted; each envelope that has any is one
/// order of its channel that could not be reserved (one incident per short SKU): an order
/// cancelled, and work for a person.
fn count_oversells(counts: &mut Counts, incidents: &[Incident]) {
    let mut last_position = None;
    for incident in incidents {
        if incident.kind != IncidentKind::Oversell {
            continue;
        }
        let new_order = last_position != Some(incident.position);
        last_position = Some(incident.position);
        let channel = incident.channel.as_ref().map(ToString::to_string);
        counts.record(incident.at, |b| {
            b.oversells += 1;
            if !new_order {
                return;
            }
            *b.manual.entry("oversold".to_owned()).or_default() += 1;
            if let Some(channel) = &channel {
                let counts = b.channel(channel);
                counts.orders += 1;
                counts.cancelled += 1;
            }
        });
    }
}

fn oversells_since(
    store: &dyn stockflow_store::Store,
    tenant: TenantId,
    since: Timestamp,
) -> anyhow::Result<Vec<Incident>> {
    let mut found = Vec::new();
    let mut after = None;
    for _ in 0..RECOUNT_PAGES_MAX {
        let mut query = IncidentQuery::tenant(tenant.clone(), stockflow_store::QUERY_LIMIT_MAX);
        query.kind = Some(IncidentKind::Oversell);
        query.since = Some(since);
        query.after_id = after;
        let page = store.query_incidents(&query)?;
        let full = page.len() == stockflow_store::QUERY_LIMIT_MAX;
        after = page.last().map(|record| record.id);
        found.extend(page.into_iter().map(|record| record.incident));
        if !full {
            return Ok(found);
        }
    }
    tracing::warn!(
        count = found.len(),
        "oversells recounted up to the limit; older ones are not"
    );
    Ok(found)
}

/// Whether the envelope that released `reservation` was a `release` command (an operator or
/// the OMS stepping in, `POST /v1/reservations/{id}/release`) rather than the channel's own
/// cancellation (`cancel_order`, a `cancelled` event). Read from the journal.
async fn released_by_command(
    state: &AppState,
    tenant: &TenantId,
    reservation: &ReservationId,
    position: Option<Position>,
) -> bool {
    let Some(position) = position else {
        return false;
    };
    let store = state.engine.store_for(tenant).clone();
    let read =
        tokio::task::spawn_blocking(move || store.read_journal(position.saturating_sub(1), 1))
            .await;
    let Ok(Ok(envelopes)) = read else {
        return false;
    };
    envelopes.first().is_some_and(|envelope| {
        envelope.position == position
            && matches!(&envelope.input, Input::Command {
                command: Command::Ledger(LedgerCommand::Release { reservation_id, .. }),
                ..
            } if reservation_id == reservation)
    })
}

async fn follow_sync(kpis: Arc<Kpis>, mut events: tokio::sync::broadcast::Receiver<SyncEvent>) {
    let mut stop = kpis.stop.subscribe();
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = stop.changed() => return,
        };
        match event {
            Ok(SyncEvent::Acknowledged {
                channel,
                latency_ms,
                ..
            }) => kpis.acknowledged(&channel, latency_ms, wall_clock()),
            Ok(_) => {}
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(
                    missed,
                    "KPIs missed acknowledgements of a busy channel sync"
                );
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn step_loop(kpis: Arc<Kpis>, state: AppState) {
    let mut stop = kpis.stop.subscribe();
    let save_every = (kpis.settings.save_every_seconds.max(1)).div_ceil(STEP_INTERVAL.as_secs());
    let mut steps = 0u64;
    loop {
        tokio::select! {
            () = tokio::time::sleep(STEP_INTERVAL) => {}
            _ = stop.changed() => {
                kpis.read_touches(&state).await;
                return;
            }
        }
        steps += 1;
        kpis.read_touches(&state).await;
        if steps.is_multiple_of(GAUGE_EVERY_STEPS) {
            kpis.update_gauges(wall_clock());
        }
        if steps.is_multiple_of(save_every)
            && let Err(error) = kpis.save()
        {
            tracing::warn!(%error, "saving the KPI counts");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        created: i64,
        resolved: Option<i64>,
        state: ReservationState,
        at: i64,
        expected: (bool, bool),
    ) {
        let step = classify(
            Timestamp(created),
            resolved.map(Timestamp),
            state,
            false,
            Timestamp(at),
        );
        assert_eq!((step.ordered, step.cancelled), expected);
    }

    #[test]
    fn each_envelope_counts_its_own_step() {
        use ReservationState::*;
        check(10, None, Provisional, 10, (true, false));
        check(10, Some(20), Released, 10, (true, false));
        check(10, Some(20), Released, 20, (false, true));
        check(10, Some(10), Released, 10, (true, true));
        check(10, Some(20), Expired, 20, (false, false));
        check(10, Some(20), Fulfilled, 20, (false, false));
        check(10, None, Confirmed, 15, (false, false));
    }

    #[test]
    fn a_cancellation_before_its_order_is_no_order() {
        let step = classify(
            Timestamp(5),
            Some(Timestamp(5)),
            ReservationState::Released,
            true,
            Timestamp(5),
        );
        assert_eq!(step, Step::default());
    }

    #[test]
    fn counts_survive_a_save_and_an_open() {
        let dir = std::env::temp_dir().join(format!("stockflow-kpis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kpis = Kpis::open(KpisSection::default(), &dir);
        let channel = ChannelId::parse("shop").unwrap();
        let now = wall_clock();
        kpis.acknowledged(&channel, 250.0, now);
        kpis.reconciled(&channel, 10, 1, now);
        kpis.save().unwrap();
        let reopened = Kpis::open(KpisSection::default(), &dir);
        let report = reopened.report(now);
        let hour = &report.windows[0];
        assert_eq!(hour.propagation[0].acknowledged, 1);
        assert_eq!(hour.reconciliation.mismatch_rate, Some(0.1));
        std::fs::write(dir.join(FILE_NAME), b"not json").unwrap();
        let fresh = Kpis::open(KpisSection::default(), &dir);
        assert!(fresh.report(now).windows[0].propagation.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
