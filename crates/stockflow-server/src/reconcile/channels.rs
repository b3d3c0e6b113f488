//! Channel reconciliation: read back what each channel shows, in pages of `page_keys`, compare
//! with what it acknowledged (the sync's belief) and with the current ATS, classify each key
//! (`stockflow_core::reconcile::classify`), repair drift per the channel's policy, and count.
//!
//! Runs on a schedule (`reconcile.channels.interval_seconds`) and on demand, one at a time.
//! Repair: `overwrite` records what the channel showed as the sync's belief and sends the key
//! its newest value again (`SyncEngine::observe` + `resend`); `accept` turns the difference into
//! a ledger adjustment at the key's location (an `adjusted` event with the channel's name in the
//! reason), after which the ATS follows what the channel shows.

use super::stats::{ChannelReport, ChannelRun, KeyMismatch};
use crate::app::{AppState, wall_clock};
use crate::problem::Problem;
use crate::wire::format_time;
use axum::http::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use stockflow_channels::SyncKey;
use stockflow_channels::adapter::ReadValue;
use stockflow_core::envelope::Input;
use stockflow_core::event::{Event, EventKind};
use stockflow_core::ids::{ChannelId, EventId, LocationId, Sku, SourceId, TenantId};
use stockflow_core::outcome::{AtsChange, Reply};
use stockflow_core::reconcile::{DriftPolicy, KeyClass, KeyObservation, classify};

/// Errors listed per channel in a report at most.
const ERRORS_LISTED_MAX: usize = 10;

/// One key to check: where it comes from in the ledger and what the channel may sell.
#[derive(Debug, Clone)]
struct Target {
    tenant: TenantId,
    key: SyncKey,
    available_to_sell: i64,
    withheld: i64,
    /// Where an accepted difference is booked: the key's location, or the channel's only one.
    location: Option<LocationId>,
}

/// Starts the scheduled runs (when an interval is configured and channels are).
pub fn start(state: &AppState) {
    let interval = state.config.reconcile.channels.interval_seconds;
    if interval == 0 || state.sync.is_none() {
        return;
    }
    let task_state = state.clone();
    let mut stop = state.reconciliation.stop.subscribe();
    let task = tokio::spawn(async move {
        let period = Duration::from_secs(interval);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
            if let Err(problem) = run(&task_state, None, "schedule").await {
                tracing::warn!(detail = ?problem.detail, "scheduled channel reconciliation failed");
            }
        }
    });
    state
        .reconciliation
        .tasks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(task);
}

/// Stops the scheduled runs (a run in progress is abandoned between pages).
pub async fn stop(state: &AppState) {
    state.reconciliation.stop.send_replace(true);
    let tasks: Vec<_> = std::mem::take(
        &mut *state
            .reconciliation
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
}

/// One run over every channel (or one), recorded in [`super::ReconciliationStats`] and the KPIs.
pub async fn run(
    state: &AppState,
    only: Option<ChannelId>,
    trigger: &str,
) -> Result<ChannelRun, Problem> {
    let Some(sync) = state.sync.clone() else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "no_channels",
            "no channel sync is configured",
        ));
    };
    let mut channels: Vec<ChannelId> = sync.stats().into_iter().map(|s| s.channel).collect();
    if let Some(only) = &only {
        if !channels.contains(only) {
            return Err(Problem::not_found(
                "unknown_channel",
                format!("no channel {only} is synced"),
            ));
        }
        channels.retain(|c| c == only);
    }
    // A scheduled run waits its turn; one asked for while another runs is told so at once.
    let _running = if trigger == "schedule" {
        state.reconciliation.running.lock().await
    } else {
        state.reconciliation.running.try_lock().map_err(|_| {
            Problem::new(
                StatusCode::CONFLICT,
                "run_in_progress",
                "a reconciliation run is in progress; see GET /v1/reconcile/runs when it ends",
            )
            .with_retry_after(5)
        })?
    };
    let id = state.reconciliation.next_run_id();
    let started_at = wall_clock();
    let mut reports = Vec::with_capacity(channels.len());
    for channel in channels {
        let report = reconcile_channel(state, &sync, &channel, id).await;
        state
            .kpis
            .reconciled(&channel, report.checked, report.mismatched, wall_clock());
        reports.push(report);
    }
    let checked = reports.iter().map(|r| r.checked).sum();
    let mismatched = reports.iter().map(|r| r.mismatched).sum();
    let finished_at = wall_clock();
    let run = ChannelRun {
        id,
        trigger: trigger.to_owned(),
        started_at: format_time(started_at),
        finished_at: format_time(finished_at),
        checked,
        mismatched,
        mismatch_rate: stockflow_core::reconcile::mismatch_rate(mismatched, checked),
        channels: reports,
    };
    state.reconciliation.record_run(run.clone(), finished_at);
    Ok(run)
}

async fn reconcile_channel(
    state: &AppState,
    sync: &Arc<stockflow_channels::SyncEngine>,
    channel: &ChannelId,
    run_id: u64,
) -> ChannelReport {
    let settings = &state.config.reconcile.channels;
    let mut report = ChannelReport {
        channel: channel.to_string(),
        ..ChannelReport::default()
    };
    let (targets, skipped) = targets(state, channel, settings.keys_per_run_max);
    report.skipped = skipped;
    let policy = settings.policy_for(channel.as_str());
    let mut accept = Acceptor::new(channel, run_id);
    for page in targets.chunks(settings.page_keys) {
        if *state.reconciliation.stop.borrow() {
            break;
        }
        let keys: Vec<SyncKey> = page.iter().map(|t| t.key.clone()).collect();
        let values = match sync.read_back(channel, keys).await {
            Ok(values) => values,
            Err(error) => {
                report.unread += page.len() as u64;
                note_error(&mut report, error.to_string());
                continue;
            }
        };
        for target in page {
            let shown = shown(&values, &target.key);
            let view = match sync.key_view(channel, &target.key) {
                Ok(view) => view,
                Err(error) => {
                    note_error(&mut report, error.to_string());
                    continue;
                }
            };
            let observation = KeyObservation {
                shown,
                acknowledged: view.believed,
                newest: view.wanted.map(|wanted| (wanted, view.waiting)),
                available_to_sell: target.available_to_sell,
            };
            let class = classify(&observation);
            report.count(class);
            if !class.is_mismatch() {
                continue;
            }
            let repair = repair(
                state,
                sync,
                channel,
                target,
                &observation,
                class,
                policy,
                &mut accept,
            )
            .await;
            match repair.as_str() {
                "overwritten" => report.overwritten += 1,
                "accepted" => report.accepted += 1,
                _ => {}
            }
            if report.mismatches.len() < settings.listed_max {
                report.mismatches.push(KeyMismatch {
                    sku: target.key.sku.to_string(),
                    location: target.key.location.as_ref().map(ToString::to_string),
                    class,
                    shown,
                    acknowledged: view.believed,
                    available_to_sell: target.available_to_sell,
                    repair,
                });
            }
        }
    }
    report
}

fn shown(values: &[ReadValue], key: &SyncKey) -> Option<i64> {
    values
        .iter()
        .find(|v| &v.key == key)
        .and_then(|v| v.quantity)
}

fn note_error(report: &mut ChannelReport, error: String) {
    if report.errors.len() < ERRORS_LISTED_MAX {
        report.errors.push(error);
    }
}

/// Every key the channel is told, from the published SKU views, at most `keys_max`; and how
/// many more there were.
fn targets(state: &AppState, channel: &ChannelId, keys_max: usize) -> (Vec<Target>, u64) {
    let reads = state.engine.reads();
    let mut targets = Vec::new();
    let mut skipped = 0u64;
    for tenant in reads.tenants() {
        let mut after: Option<Sku> = None;
        loop {
            let page = reads.skus(
                &tenant,
                after.as_ref(),
                stockflow_engine::reads::SKU_PAGE_MAX,
            );
            let Some(last) = page.last() else { break };
            after = Some(last.sku.clone());
            for view in &page {
                let Some(availability) = view.channels().iter().find(|c| &c.channel == channel)
                else {
                    continue;
                };
                let only_location = (availability.locations.len() == 1)
                    .then(|| availability.locations[0].location.clone());
                let keys: Vec<Target> = if availability.per_location {
                    availability
                        .locations
                        .iter()
                        .map(|l| Target {
                            tenant: tenant.clone(),
                            key: SyncKey::new(view.sku.clone(), Some(l.location.clone())),
                            available_to_sell: l.available_to_sell,
                            withheld: l.withheld,
                            location: Some(l.location.clone()),
                        })
                        .collect()
                } else {
                    vec![Target {
                        tenant: tenant.clone(),
                        key: SyncKey::new(view.sku.clone(), None),
                        available_to_sell: availability.available_to_sell,
                        withheld: availability.withheld,
                        location: only_location,
                    }]
                };
                for target in keys {
                    if targets.len() < keys_max {
                        targets.push(target);
                    } else {
                        skipped += 1;
                    }
                }
            }
        }
    }
    (targets, skipped)
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename the list
async fn repair(
    state: &AppState,
    sync: &Arc<stockflow_channels::SyncEngine>,
    channel: &ChannelId,
    target: &Target,
    observation: &KeyObservation,
    class: KeyClass,
    policy: DriftPolicy,
    accept: &mut Acceptor,
) -> String {
    let Some(shown) = observation.shown else {
        return "none: the channel does not list the item".into();
    };
    if policy == DriftPolicy::Accept && class == KeyClass::Drift {
        return match accept
            .book(state, target, shown - target.available_to_sell)
            .await
        {
            Ok(()) => {
                let _ = sync.observe(channel, &target.key, shown);
                "accepted".into()
            }
            Err(error) => error,
        };
    }
    let _ = sync.observe(channel, &target.key, shown);
    let change = AtsChange {
        tenant: target.tenant.clone(),
        channel: channel.clone(),
        sku: target.key.sku.clone(),
        location: target.key.location.clone(),
        available_to_sell: target.available_to_sell,
        withheld: target.withheld,
        position: state
            .engine
            .reads()
            .position(state.engine.shard_of(&target.tenant)),
        caused_at: wall_clock(),
    };
    match sync.resend(&change) {
        Ok(()) => "overwritten".into(),
        Err(error) => format!("failed: {error}"),
    }
}

/// Books accepted channel differences as ledger adjustments, from a source of the run's own.
struct Acceptor {
    source: String,
    channel: ChannelId,
    seq: u64,
}

impl Acceptor {
    fn new(channel: &ChannelId, run_id: u64) -> Self {
        Self {
            source: format!(
                "reconcile-{}-{run_id}-{channel}",
                wall_clock().unix_micros()
            ),
            channel: channel.clone(),
            seq: 0,
        }
    }

    async fn book(&mut self, state: &AppState, target: &Target, delta: i64) -> Result<(), String> {
        let Some(location) = target.location.clone() else {
            return Err("none: accepting needs the channel to have one location".into());
        };
        if delta == 0 {
            return Ok(());
        }
        let seq = self.seq + 1;
        let invalid = |e: stockflow_core::ids::IdError| format!("failed: {e}");
        let event = Event {
            event_id: EventId::parse(format!("{}-{seq}", self.source)).map_err(invalid)?,
            source: SourceId::parse(self.source.clone()).map_err(invalid)?,
            seq,
            occurred_at: None,
            reason: Some(format!("channel drift accepted from {}", self.channel)),
            reference: None,
            kind: EventKind::Adjusted {
                sku: target.key.sku.clone(),
                location,
                delta,
                expected_version: None,
            },
        };
        let submitted =
            crate::api::submit(state, target.tenant.clone(), Input::Events(vec![event]))
                .await
                .map_err(|p| format!("failed: {}", p.code))?;
        match submitted.reply {
            Reply::Events(_) => {
                self.seq = seq;
                Ok(())
            }
            Reply::Rejected(rejection) => Err(format!("failed: {}", rejection.code())),
            _ => Err("failed: unexpected_reply".into()),
        }
    }
}
