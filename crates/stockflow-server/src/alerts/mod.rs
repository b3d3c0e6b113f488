//! Alerts: the rules of `stockflow_core::alerts` evaluated every `alerts.evaluate_every_ms`
//! against what the service measures, the open and recently resolved alerts (`GET /v1/alerts`),
//! and their delivery to webhooks ([`webhook`]).
//!
//! Inputs per rule:
//! - sync lag and rate-limit rejections: the channel sync's stats (oldest waiting change; the
//!   rise of the rate-limited counter over `window_seconds`);
//! - demand spike: a velocity tracker per SKU (the core's `Velocity`, as the buffer policies
//!   use) fed with the units of each new reservation: the effect sink copies the ids of touched
//!   reservations into a bounded list, and the evaluation reads them from the read model;
//! - sequence gaps and oversells: the incidents table over `window_seconds`;
//! - reconciliation mismatch: the last channel run's rate ([`crate::reconcile::ReconciliationStats`]);
//! - cancellation rate: the KPIs' cancellation report against each platform's limit.

pub mod webhook;

use crate::app::{AppState, wall_clock};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use stockflow_core::alerts::{
    self as rules, Alert, AlertBook, AlertBookConfig, Condition, CounterWindow, Rule, Thresholds,
    Transition,
};
use stockflow_core::availability::Velocity;
use stockflow_core::ids::{ReservationId, Sku, TenantId};
use stockflow_core::outcome::IncidentKind;
use stockflow_core::time::Timestamp;
use stockflow_engine::Effects;
use stockflow_store::{IncidentQuery, QUERY_LIMIT_MAX};

/// `[alerts]` in the configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSection {
    /// How often the rules are evaluated.
    pub evaluate_every_ms: u64,
    /// An alert resolves once its condition has not held for this long.
    pub resolve_after_seconds: u64,
    /// The window of the counted rules (rate-limit rejections, sequence gaps, oversells).
    pub window_seconds: u64,
    pub thresholds: Thresholds,
    pub open_max: usize,
    pub resolved_kept_max: usize,
    /// SKUs whose demand is tracked at most; new SKUs beyond it are not tracked.
    pub demand_skus_max: usize,
    /// Reservations remembered as seen (so that demand is counted once).
    pub reservations_seen_max: usize,
    /// Where opened and resolved alerts are posted (Slack-compatible bodies).
    pub webhooks: Vec<webhook::WebhookTarget>,
}

impl Default for AlertsSection {
    fn default() -> Self {
        Self {
            evaluate_every_ms: 10_000,
            resolve_after_seconds: 60,
            window_seconds: 300,
            thresholds: Thresholds::default(),
            open_max: 1_000,
            resolved_kept_max: 200,
            demand_skus_max: 100_000,
            reservations_seen_max: 100_000,
            webhooks: Vec::new(),
        }
    }
}

impl AlertsSection {
    pub fn validate(&self) -> Result<(), String> {
        if self.evaluate_every_ms < 10 {
            return Err("alerts.evaluate_every_ms must be at least 10".into());
        }
        if self.open_max == 0 || self.resolved_kept_max == 0 {
            return Err("alerts.open_max and alerts.resolved_kept_max must be at least 1".into());
        }
        for target in &self.webhooks {
            target.validate()?;
        }
        Ok(())
    }
}

/// Touched reservations waiting for the evaluation, at most this many (more are dropped and
/// counted: demand is then undercounted, never blocked on).
const TOUCHED_MAX: usize = 65_536;

/// The alert service, in [`AppState::alerts`].
pub struct Alerts {
    settings: AlertsSection,
    book: Mutex<AlertBook>,
    rate_limited: Mutex<HashMap<String, CounterWindow>>,
    demand: Mutex<Demand>,
    touched: Mutex<Vec<(TenantId, ReservationId)>>,
    touched_dropped: AtomicU64,
    pub(crate) deliveries: Vec<webhook::Delivery>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

#[derive(Default)]
struct Demand {
    skus: HashMap<(TenantId, Sku), Velocity>,
    seen: HashMap<(TenantId, ReservationId), Timestamp>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Alerts {
    pub fn new(settings: AlertsSection) -> Self {
        let book = AlertBook::new(AlertBookConfig {
            resolve_after_micros: settings.resolve_after_seconds as i64
                * Timestamp::MICROS_PER_SECOND,
            open_max: settings.open_max,
            resolved_kept_max: settings.resolved_kept_max,
        });
        let deliveries = settings
            .webhooks
            .iter()
            .map(webhook::Delivery::new)
            .collect();
        Self {
            book: Mutex::new(book),
            rate_limited: Mutex::default(),
            demand: Mutex::default(),
            touched: Mutex::default(),
            touched_dropped: AtomicU64::new(0),
            deliveries,
            stop: tokio::sync::watch::Sender::new(false),
            tasks: Mutex::default(),
            settings,
        }
    }

    /// From the effect sink (the writer's thread): copies the touched reservation ids.
    pub fn committed(&self, effects: &[Effects<'_>]) {
        if effects.iter().all(|e| e.touched_reservations.is_empty()) {
            return;
        }
        let mut touched = lock(&self.touched);
        for effect in effects {
            for id in effect.touched_reservations {
                if touched.len() >= TOUCHED_MAX {
                    self.touched_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                touched.push((effect.tenant.clone(), id.clone()));
            }
        }
    }

    /// Open alerts and the recently resolved ones (oldest first).
    pub fn list(&self) -> (Vec<Alert>, Vec<Alert>, u64) {
        let book = lock(&self.book);
        (
            book.open().cloned().collect(),
            book.resolved().cloned().collect(),
            book.suppressed,
        )
    }

    /// Starts the evaluation loop and the webhook deliveries.
    pub fn start(self: &Arc<Self>, state: &AppState) {
        let mut tasks = lock(&self.tasks);
        for delivery in &self.deliveries {
            tasks.push(delivery.start(self.stop.subscribe()));
        }
        let alerts = self.clone();
        let state = state.clone();
        let mut stop = self.stop.subscribe();
        tasks.push(tokio::spawn(async move {
            let period = Duration::from_millis(alerts.settings.evaluate_every_ms);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
                evaluate(&state, wall_clock()).await;
            }
        }));
    }

    /// Stops evaluating; deliveries get a moment to finish what they hold.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let tasks: Vec<_> = std::mem::take(&mut *lock(&self.tasks));
        for mut task in tasks {
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

/// Evaluates every rule at `now`, updates the alerts, and hands the transitions to the
/// webhooks. Returns the transitions (tests pass a `now` in the future to let windows pass).
pub async fn evaluate(state: &AppState, now: Timestamp) -> Vec<Transition> {
    let alerts = &state.alerts;
    let mut holding = Vec::new();
    let mut evaluated = vec![
        Rule::DemandSpike,
        Rule::SequenceGap,
        Rule::LateEvent,
        Rule::Oversell,
        Rule::CancellationRate,
    ];
    if state.sync.is_some() {
        evaluated.extend([Rule::SyncLag, Rule::RateLimited]);
        holding.extend(sync_conditions(state, now));
    }
    holding.extend(demand_conditions(state, now));
    match incident_conditions(state, now).await {
        Ok(found) => holding.extend(found),
        Err(error) => {
            tracing::warn!(%error, "alerts: the incidents could not be read");
            evaluated
                .retain(|r| !matches!(r, Rule::SequenceGap | Rule::LateEvent | Rule::Oversell));
        }
    }
    let rates = state.reconciliation.last_rates();
    if !rates.is_empty() {
        evaluated.push(Rule::ReconciliationMismatch);
    }
    let thresholds = &alerts.settings.thresholds;
    for (channel, rate, checked, _) in rates {
        holding.extend(rules::reconciliation_mismatch(
            &channel, rate, checked, thresholds,
        ));
    }
    holding.extend(cancellation_conditions(state, now));
    let transitions = lock(&alerts.book).observe(&evaluated, holding, now);
    for transition in &transitions {
        let (state_name, alert) = match transition {
            Transition::Opened(alert) => ("opened", alert),
            Transition::Resolved(alert) => ("resolved", alert),
        };
        tracing::info!(rule = alert.rule.name(), subject = %alert.subject, state = state_name, "{}", alert.summary);
        metrics::counter!(ALERTS_TOTAL, "rule" => alert.rule.name(), "transition" => state_name)
            .increment(1);
        for delivery in &alerts.deliveries {
            delivery.offer(transition);
        }
    }
    metrics::gauge!(ALERTS_OPEN).set(lock(&alerts.book).open().count() as f64);
    transitions
}

pub const ALERTS_TOTAL: &str = "stockflow_alerts_total";
pub const ALERTS_OPEN: &str = "stockflow_alerts_open";

pub fn describe_metrics() {
    metrics::describe_counter!(
        ALERTS_TOTAL,
        "Alert transitions, by rule and transition (opened, resolved)."
    );
    metrics::describe_gauge!(ALERTS_OPEN, "Alerts open now (one per rule x subject).");
}

fn sync_conditions(state: &AppState, now: Timestamp) -> Vec<Condition> {
    let Some(sync) = &state.sync else {
        return Vec::new();
    };
    let settings = &state.alerts.settings;
    let window_micros = settings.window_seconds as i64 * Timestamp::MICROS_PER_SECOND;
    let mut windows = lock(&state.alerts.rate_limited);
    let mut holding = Vec::new();
    for stats in sync.stats() {
        let channel = stats.channel.to_string();
        holding.extend(rules::sync_lag(
            &channel,
            stats.oldest_pending_age_ms,
            &settings.thresholds,
        ));
        let rise = windows.entry(channel.clone()).or_default().rise(
            now,
            stats.rate_limited,
            window_micros,
        );
        holding.extend(rules::rate_limited(&channel, rise, &settings.thresholds));
    }
    holding
}

/// Takes the touched reservations, records the demand of those not seen before, and judges
/// every tracked SKU.
fn demand_conditions(state: &AppState, now: Timestamp) -> Vec<Condition> {
    let alerts = &state.alerts;
    let touched = std::mem::take(&mut *lock(&alerts.touched));
    let reads = state.engine.reads();
    let mut demand = lock(&alerts.demand);
    let demand = &mut *demand;
    for (tenant, id) in touched {
        if demand.seen.contains_key(&(tenant.clone(), id.clone())) {
            continue;
        }
        let Some(reservation) = reads.reservation(&tenant, &id) else {
            continue;
        };
        if demand.seen.len() >= alerts.settings.reservations_seen_max {
            // Forget the oldest half: a reservation touched again after hours is rare, and
            // counting it twice only nudges a velocity.
            let mut ages: Vec<Timestamp> = demand.seen.values().copied().collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            demand.seen.retain(|_, at| *at > cut);
        }
        demand
            .seen
            .insert((tenant.clone(), id), reservation.created_at);
        for line in &reservation.lines {
            let key = (tenant.clone(), line.sku.clone());
            if !demand.skus.contains_key(&key)
                && demand.skus.len() >= alerts.settings.demand_skus_max
            {
                continue;
            }
            demand
                .skus
                .entry(key)
                .or_default()
                .record(line.quantity, reservation.created_at);
        }
    }
    let thresholds = &alerts.settings.thresholds;
    demand
        .skus
        .iter()
        .filter_map(|((_, sku), velocity)| {
            rules::demand_spike(sku.as_str(), &velocity.read(now), thresholds)
        })
        .collect()
}

async fn incident_conditions(state: &AppState, now: Timestamp) -> Result<Vec<Condition>, String> {
    let since = now.plus_seconds(-(state.alerts.settings.window_seconds as i64));
    let mut counts: HashMap<(Rule, String), u64> = HashMap::new();
    for tenant in state.engine.reads().tenants() {
        let store = state.engine.store_for(&tenant).clone();
        let found = tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            let kinds = [
                IncidentKind::SequenceGap,
                IncidentKind::LateEvent,
                IncidentKind::Oversell,
            ];
            for kind in kinds {
                let mut query = IncidentQuery::tenant(tenant.clone(), QUERY_LIMIT_MAX);
                query.kind = Some(kind);
                query.since = Some(since);
                query.until = Some(now.plus_micros(1));
                query.window = stockflow_store::Window::Latest;
                found.extend(store.query_incidents(&query)?);
            }
            Ok::<_, stockflow_store::StoreError>(found)
        })
        .await
        .map_err(|_| "the incident query panicked".to_owned())?
        .map_err(|e| e.to_string())?;
        for record in found {
            let incident = &record.incident;
            let source = || {
                incident
                    .source
                    .as_ref()
                    .map_or("unknown".into(), ToString::to_string)
            };
            let (rule, subject) = match incident.kind {
                IncidentKind::SequenceGap => (Rule::SequenceGap, source()),
                IncidentKind::LateEvent => (Rule::LateEvent, source()),
                _ => (
                    Rule::Oversell,
                    incident
                        .channel
                        .as_ref()
                        .map(ToString::to_string)
                        .or_else(|| incident.sku.as_ref().map(ToString::to_string))
                        .unwrap_or_else(|| "unknown".into()),
                ),
            };
            *counts.entry((rule, subject)).or_default() += 1;
        }
    }
    Ok(counts
        .into_iter()
        .filter_map(|((rule, subject), count)| {
            let what = match rule {
                Rule::SequenceGap => "sequence gaps given up on",
                Rule::LateEvent => "events applied late, after their gap was given up on",
                _ => "oversold orders",
            };
            rules::incidents(rule, &subject, count, what)
        })
        .collect())
}

fn cancellation_conditions(state: &AppState, now: Timestamp) -> Vec<Condition> {
    let thresholds = &state.alerts.settings.thresholds;
    state
        .kpis
        .report(now)
        .cancellation
        .iter()
        .filter_map(|c| {
            let (rate, limit) = (c.rate?, c.limit?);
            rules::cancellation_rate(&c.channel, rate * 100.0, limit * 100.0, thresholds)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Overrides};

    /// Loads a configuration file's text; the error's text when it is refused.
    fn check(toml: &str) -> Result<Config, String> {
        let dir =
            std::env::temp_dir().join(format!("stockflow-alerts-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{}.toml", toml.len()));
        std::fs::write(&file, toml).unwrap();
        Config::load(Some(&file), &Overrides::default()).map_err(|e| e.0)
    }

    #[test]
    fn the_alert_and_reconciliation_sections_load_from_the_file_and_bad_values_name_themselves() {
        let config = check(
            "[alerts]\nevaluate_every_ms = 1000\n[alerts.thresholds]\nsync_lag_ms_max = 5000\n\
             spike_ratio_min = 4.0\nrate_limited_per_window_max = 3\nspike_units_min = 10\n\
             mismatch_rate_max = 0.05\ncancellation_limit_share = 0.9\n\
             [[alerts.webhooks]]\nurl = \"https://hooks.example/services/T/B/x\"\nattempts_max = 3\n\
             [reconcile.counts]\ndefault_apply = \"policy\"\npolicy = { units_max = 2, percent_max = 1.5 }\n\
             [reconcile.channels]\ninterval_seconds = 60\ndrift_policies = { amazon = \"accept\" }\n",
        )
        .unwrap();
        assert_eq!(config.alerts.thresholds.sync_lag_ms_max, 5000);
        assert_eq!(config.alerts.webhooks[0].attempts_max, 3);
        assert_eq!(
            config.alerts.webhooks[0].backoff_base_ms, 500,
            "defaults fill the rest"
        );
        assert_eq!(config.reconcile.counts.policy.units_max, Some(2));
        assert_eq!(
            config.reconcile.channels.policy_for("amazon"),
            stockflow_core::reconcile::DriftPolicy::Accept
        );
        assert_eq!(
            config.reconcile.channels.policy_for("shop"),
            stockflow_core::reconcile::DriftPolicy::Overwrite
        );
        let refused = check("[[alerts.webhooks]]\nurl = \"ftp://x\"\n").unwrap_err();
        assert!(refused.contains("alerts.webhooks"), "{refused}");
        let refused = check("[reconcile.channels]\npage_keys = 0\n").unwrap_err();
        assert!(refused.contains("page_keys"), "{refused}");
        let refused = check("[alerts.thresholds]\nsync_lag = 1\n").unwrap_err();
        assert!(refused.contains("sync_lag"), "{refused}");
    }
}
