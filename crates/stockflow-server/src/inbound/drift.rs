//! A channel-side inventory edit announced by webhook (Shopify's `inventory_levels/update`).
//! The payload carries the value when it was built, not when it changed (two fast edits can
//! arrive as two deliveries of the same final value), so it is only a trigger: after
//! `webhooks.drift_delay_ms` (time for the order webhooks sent around the edit to land and be
//! told to the sync) the key is read back from the channel and classified as reconciliation
//! classifies it (`stockflow_core::reconcile::classify`):
//!
//! - the channel shows what it acknowledged, and that is the ATS: nothing to do (our own
//!   writes and the orders we know of announce themselves this way too);
//! - a newer value is on its way: looked at again shortly;
//! - a lost change (it shows what it acknowledged, which is no longer the ATS): sent again;
//! - drift (it shows something it was never sent): the channel's drift policy
//!   (`[reconcile.channels] drift_policy` / `drift_policies`, shared with scheduled
//!   reconciliation) decides. `overwrite` records what the channel showed as the sync's belief
//!   and sends the current ATS again; `accept` books the difference (shown - ATS) as an
//!   `adjusted` event at the mapped location, with a reason naming the channel, from the source
//!   `webhook-drift-<channel>`. The event's id and `seq` are kept on the row before it is
//!   submitted, so a retry submits the same event (a duplicate if it was applied).
//!
//! Either way a `drift` incident records what was found and done (the ledger's audit trail has
//! the adjustment of an accepted drift), and `stockflow_drift_total` counts it.

use super::inbox::{NewIncident, RowState};
use super::processor::{Context, Report, Step, blocking};
use crate::app::wall_clock;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use stockflow_channels::SyncKey;
use stockflow_core::envelope::Input;
use stockflow_core::event::{Event, EventKind};
use stockflow_core::ids::{EventId, LocationId, Sku, SourceId};
use stockflow_core::outcome::{AtsChange, Reply};
use stockflow_core::reconcile::{DriftPolicy, KeyClass, KeyObservation, classify};

/// How long past the drift delay a key whose newer value is in flight is waited for.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(30);
/// How soon a key in flight is looked at again.
const IN_FLIGHT_POLL: Duration = Duration::from_millis(500);

/// An accepted drift's adjustment, decided once and kept on the row.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    event_id: String,
    source: String,
    seq: u64,
    sku: String,
    location: String,
    /// The sync key's location (None for channels told one number per SKU).
    key_location: Option<String>,
    delta: i64,
    shown: i64,
    reason: String,
    detail: String,
}

/// One key of the channel: where it is in the ledger and what the channel may sell of it.
struct Target {
    key: SyncKey,
    available_to_sell: i64,
    withheld: i64,
}

pub async fn process(
    context: &Context<'_>,
    inventory_item_id: &str,
    location_id: &str,
    available: Option<i64>,
) -> Step {
    let mut report = Report::default();
    if let Some(plan) = &context.row.plan {
        return match serde_json::from_str::<Plan>(plan) {
            Ok(plan) => match book(context, &plan, &mut report).await {
                Ok(()) => report.finish(RowState::Done),
                Err(step) => step,
            },
            Err(error) => Step::Retry(format!("the row's plan cannot be read: {error}")),
        };
    }
    let result = check(
        context,
        inventory_item_id,
        location_id,
        available,
        &mut report,
    )
    .await;
    match result {
        Ok(()) => report.finish(RowState::Done),
        Err(step) => step,
    }
}

fn drift_incident(sku: &Sku, quantity: i64, detail: String) -> NewIncident {
    NewIncident {
        kind: "drift",
        order_id: None,
        sku: Some(sku.to_string()),
        quantity: Some(quantity),
        detail,
    }
}

async fn check(
    context: &Context<'_>,
    inventory_item_id: &str,
    location_id: &str,
    available: Option<i64>,
    report: &mut Report,
) -> Result<(), Step> {
    let webhook = context.webhook;
    let channel = &webhook.channel;
    let Some(sku) = webhook.items.get(inventory_item_id).cloned() else {
        report.incident(NewIncident::new(
            "unmapped_item",
            format!(
                "inventory item {inventory_item_id} is not listed in [channels.{channel}].items: \
                 the SKU that changed is unknown"
            ),
        ));
        return Ok(());
    };
    let Some(location) = webhook.locations.get(location_id).cloned() else {
        report.incident(NewIncident::new(
            "unmapped_location",
            format!("location {location_id} is not listed in [channels.{channel}].locations"),
        ));
        return Ok(());
    };
    let delay = Duration::from_millis(context.state.config.webhooks.drift_delay_ms);
    let ready_at = context.received_at().plus_micros(delay.as_micros() as i64);
    if context.now < ready_at {
        return Err(Step::Later {
            at: ready_at,
            note: "re-read once the order webhooks sent around the edit have landed".to_owned(),
        });
    }
    let Some(sync) = context.state.sync.clone() else {
        report.note("no channel sync: nothing to compare the edit with");
        return Ok(());
    };
    let Some(target) = target(context, &sku, &location) else {
        report.note(format!("{channel} is not told {sku} at {location}"));
        return Ok(());
    };
    let values = sync
        .read_back(channel, vec![target.key.clone()])
        .await
        .map_err(|error| Step::Retry(format!("reading {channel} back: {error}")))?;
    let shown = values
        .iter()
        .find(|value| value.key == target.key)
        .and_then(|value| value.quantity);
    let view = match sync.key_view(channel, &target.key) {
        Ok(view) => view,
        Err(error) => {
            report.note(format!(
                "the sync cannot say what {channel} was sent: {error}"
            ));
            return Ok(());
        }
    };
    let observation = KeyObservation {
        shown,
        acknowledged: view.believed,
        newest: view.wanted.map(|wanted| (wanted, view.waiting)),
        available_to_sell: target.available_to_sell,
    };
    let announced = available.map_or(String::new(), |a| format!(" (the webhook said {a})"));
    match classify(&observation) {
        KeyClass::Matches => {
            report.note(format!(
                "no drift: {channel} shows {}{announced}",
                shown.unwrap_or_default()
            ));
            Ok(())
        }
        KeyClass::InFlight => {
            let waited_until = ready_at.plus_micros(IN_FLIGHT_WAIT.as_micros() as i64);
            if context.now < waited_until {
                return Err(Step::Later {
                    at: context.now.plus_micros(IN_FLIGHT_POLL.as_micros() as i64),
                    note: "a newer value is on its way to the channel".to_owned(),
                });
            }
            report.note("a newer value is still on its way to the channel");
            Ok(())
        }
        KeyClass::Missing => {
            report.incident(drift_incident(
                &sku,
                0,
                format!("{channel} no longer lists {sku} at {location}"),
            ));
            Ok(())
        }
        KeyClass::Stale => {
            resend(context, &target)?;
            super::metrics::drift(channel.as_str(), "any", "resent");
            report.note(format!(
                "{channel} missed a change: sent {} again",
                target.available_to_sell
            ));
            Ok(())
        }
        KeyClass::Drift => {
            let shown = shown.expect("drift has a shown value");
            let policy = context
                .state
                .config
                .reconcile
                .channels
                .policy_for(channel.as_str());
            match policy {
                DriftPolicy::Overwrite => {
                    let _ = sync.observe(channel, &target.key, shown);
                    resend(context, &target)?;
                    super::metrics::drift(channel.as_str(), "overwrite", "overwritten");
                    report.incident(drift_incident(
                        &sku,
                        shown - target.available_to_sell,
                        format!(
                            "{sku} at {location}: {channel} showed {shown}, it was sent {}; \
                             overwritten with {}",
                            believed(view.believed),
                            target.available_to_sell
                        ),
                    ));
                    Ok(())
                }
                DriftPolicy::Accept => {
                    let plan =
                        plan(context, &target, &sku, &location, shown, view.believed).await?;
                    book(context, &plan, report).await
                }
            }
        }
    }
}

fn believed(value: Option<i64>) -> String {
    value.map_or_else(|| "nothing known".to_owned(), |v| v.to_string())
}

/// Where the key is in the ledger's published view, for this channel.
fn target(context: &Context<'_>, sku: &Sku, location: &LocationId) -> Option<Target> {
    let reads = context.state.engine.reads();
    let view = reads.sku(&context.webhook.tenant, sku)?;
    let channel = view
        .channels()
        .iter()
        .find(|c| c.channel == context.webhook.channel)?;
    if channel.per_location {
        let at = channel.locations.iter().find(|l| &l.location == location)?;
        Some(Target {
            key: SyncKey::new(sku.clone(), Some(location.clone())),
            available_to_sell: at.available_to_sell,
            withheld: at.withheld,
        })
    } else {
        Some(Target {
            key: SyncKey::new(sku.clone(), None),
            available_to_sell: channel.available_to_sell,
            withheld: channel.withheld,
        })
    }
}

/// Sends the key the ledger's current value again.
fn resend(context: &Context<'_>, target: &Target) -> Result<(), Step> {
    let Some(sync) = &context.state.sync else {
        return Ok(());
    };
    let tenant = &context.webhook.tenant;
    let engine = &context.state.engine;
    let change = AtsChange {
        tenant: tenant.clone(),
        channel: context.webhook.channel.clone(),
        sku: target.key.sku.clone(),
        location: target.key.location.clone(),
        available_to_sell: target.available_to_sell,
        withheld: target.withheld,
        position: engine.reads().position(engine.shard_of(tenant)),
        caused_at: wall_clock(),
    };
    sync.resend(&change)
        .map_err(|error| Step::Retry(format!("sending the value again: {error}")))
}

/// Decides the adjustment of an accepted drift and keeps it on the row.
async fn plan(
    context: &Context<'_>,
    target: &Target,
    sku: &Sku,
    location: &LocationId,
    shown: i64,
    acknowledged: Option<i64>,
) -> Result<Plan, Step> {
    let channel = &context.webhook.channel;
    let source = format!("webhook-drift-{channel}");
    let inbox = &context.state.inbound.inbox;
    let seq = {
        let source = source.clone();
        blocking(inbox, move |inbox| inbox.next_seq(&source))
            .await
            .map_err(Step::Retry)?
    };
    let delta = shown - target.available_to_sell;
    let plan = Plan {
        event_id: format!("{source}-{seq}"),
        source,
        seq,
        sku: sku.to_string(),
        location: location.to_string(),
        key_location: target.key.location.as_ref().map(ToString::to_string),
        delta,
        shown,
        reason: format!("channel drift accepted from {channel}"),
        detail: format!(
            "{sku} at {location}: {channel} showed {shown}, it was sent {}, the ledger allowed \
             {}; accepted as an adjustment of {delta:+}",
            believed(acknowledged),
            target.available_to_sell
        ),
    };
    let text = serde_json::to_string(&plan).expect("a plan serialises");
    let id = context.row.id;
    blocking(inbox, move |inbox| inbox.set_plan(id, &text))
        .await
        .map_err(Step::Retry)?;
    Ok(plan)
}

/// Submits an accepted drift's adjustment (again, after a crash: then a duplicate).
async fn book(context: &Context<'_>, plan: &Plan, report: &mut Report) -> Result<(), Step> {
    let channel = &context.webhook.channel;
    let invalid = |error: stockflow_core::ids::IdError| Step::Retry(error.to_string());
    let sku = Sku::parse(plan.sku.clone()).map_err(invalid)?;
    let location = LocationId::parse(plan.location.clone()).map_err(invalid)?;
    if plan.delta != 0 {
        let event = Event {
            event_id: EventId::parse(plan.event_id.clone()).map_err(invalid)?,
            source: SourceId::parse(plan.source.clone()).map_err(invalid)?,
            seq: plan.seq,
            occurred_at: None,
            reason: Some(plan.reason.clone()),
            reference: Some(context.row.event_id.clone()),
            kind: EventKind::Adjusted {
                sku: sku.clone(),
                location,
                delta: plan.delta,
                expected_version: None,
            },
        };
        let tenant = context.webhook.tenant.clone();
        let submitted = crate::api::submit(context.state, tenant, Input::Events(vec![event]))
            .await
            .map_err(|problem| {
                Step::Retry(format!(
                    "the ledger did not take the adjustment: {}",
                    problem.detail.unwrap_or(problem.code)
                ))
            })?;
        if let Reply::Rejected(rejection) = submitted.reply {
            report.incident(drift_incident(
                &sku,
                plan.delta,
                format!(
                    "the adjustment was refused ({}): {}",
                    rejection.code(),
                    plan.detail
                ),
            ));
            return Ok(());
        }
    }
    if let Some(sync) = &context.state.sync {
        let key_location = plan
            .key_location
            .as_ref()
            .and_then(|l| LocationId::parse(l.clone()).ok());
        let _ = sync.observe(
            channel,
            &SyncKey::new(sku.clone(), key_location),
            plan.shown,
        );
    }
    super::metrics::drift(channel.as_str(), "accept", "accepted");
    report.incident(drift_incident(&sku, plan.delta, plan.detail.clone()));
    Ok(())
}
