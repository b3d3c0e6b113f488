//! An order notice against the ledger. The reservation id is derived from the platform's order
//! id (`<platform>-<channel>-<order id>`), so every step is idempotent and steps may arrive in
//! any order:
//!
//! - placed: `ReserveOrder` with the channel set (its location priority places the lines); an
//!   order that cannot be reserved is an oversell the ledger records (channel, SKU, shortfall).
//!   Lines for SKUs the ledger never saw are left out and recorded as `unknown_sku` incidents.
//!   The channel sync is told of the units the channel took itself (`order_seen`).
//! - paid: reserved if not yet, then confirmed.
//! - cancelled: `CancelOrder`, which leaves a tombstone for an order not seen yet, so that the
//!   order, when it arrives, grants nothing.
//! - fulfilled: reserved and confirmed if not yet, then the units shipped are matched against
//!   the warehouse's `picked` events for the reservation. Picks may come after the webhook:
//!   the row waits for them up to `webhooks.fulfilment_grace_seconds`, then records a
//!   `fulfilment_mismatch` per SKU that differs.

use super::formats::{OrderLine, OrderNotice, OrderStep};
use super::inbox::{NewIncident, RowState};
use super::processor::{Context, Report, Step};
use std::time::Duration;
use stockflow_core::availability::ChannelConfig;
use stockflow_core::command::{Command, LedgerCommand, ReservationLineRequest, Reserve};
use stockflow_core::envelope::Input;
use stockflow_core::ids::{ActorId, LocationId, ReservationId, Sku};
use stockflow_core::outcome::{Rejection, Reply};
use stockflow_core::reservation::{Reservation, ReservationState};

pub async fn process(context: &Context<'_>, order: &OrderNotice) -> Step {
    let mut report = Report::default();
    let Some(id) = reservation_id(context, order) else {
        report.incident(incident(
            "malformed",
            order,
            None,
            "the order id is too long for a reservation id",
        ));
        return report.finish(RowState::Quarantined);
    };
    let result = match order.step {
        OrderStep::Placed => reserve(context, &id, order, &mut report).await,
        OrderStep::Paid => match reserve(context, &id, order, &mut report).await {
            Ok(()) => confirm(context, &id, order, &mut report).await,
            Err(step) => Err(step),
        },
        OrderStep::Cancelled => cancel(context, &id, &mut report).await,
        OrderStep::Fulfilled => fulfilled(context, &id, order, &mut report).await,
    };
    match result {
        Ok(()) => report.finish(RowState::Done),
        Err(step) => step,
    }
}

async fn fulfilled(
    context: &Context<'_>,
    id: &ReservationId,
    order: &OrderNotice,
    report: &mut Report,
) -> Result<(), Step> {
    reserve(context, id, order, report).await?;
    confirm(context, id, order, report).await?;
    check_fulfilment(context, id, order, report)
}

pub fn reservation_id(context: &Context<'_>, order: &OrderNotice) -> Option<ReservationId> {
    let platform = context.webhook.platform.name();
    let channel = &context.webhook.channel;
    ReservationId::parse(format!("{platform}-{channel}-{}", order.order_id)).ok()
}

fn incident(
    kind: &'static str,
    order: &OrderNotice,
    sku: Option<(&str, i64)>,
    detail: impl Into<String>,
) -> NewIncident {
    NewIncident {
        kind,
        order_id: Some(order.order_id.clone()),
        sku: sku.map(|(sku, _)| sku.to_owned()),
        quantity: sku.map(|(_, quantity)| quantity),
        detail: detail.into(),
    }
}

/// Hands a ledger command to the writer; a failure to take it is retried.
async fn submit(context: &Context<'_>, command: LedgerCommand) -> Result<Reply, Step> {
    let actor = ActorId::parse(format!("webhook-{}", context.webhook.channel))
        .unwrap_or_else(|_| ActorId::parse("webhook").expect("a valid actor"));
    let input = Input::Command {
        actor,
        command: Command::Ledger(command),
    };
    let tenant = context.webhook.tenant.clone();
    match crate::api::submit(context.state, tenant, input).await {
        Ok(submitted) => Ok(submitted.reply),
        Err(problem) => Err(Step::Retry(format!(
            "the ledger did not take it: {}",
            problem.detail.unwrap_or(problem.code)
        ))),
    }
}

fn existing(context: &Context<'_>, id: &ReservationId) -> Option<std::sync::Arc<Reservation>> {
    context
        .state
        .engine
        .reads()
        .reservation(&context.webhook.tenant, id)
}

fn describe(reservation: &Reservation) -> String {
    let reason = reservation.resolution_reason.as_deref().unwrap_or_default();
    if reservation.is_tombstone() {
        format!("nothing held: {reason}")
    } else if reservation.state.is_open() || reason.is_empty() {
        format!("reservation {}", reservation.state.name())
    } else {
        format!("reservation {} ({reason})", reservation.state.name())
    }
}

async fn reserve(
    context: &Context<'_>,
    id: &ReservationId,
    order: &OrderNotice,
    report: &mut Report,
) -> Result<(), Step> {
    if let Some(reservation) = existing(context, id) {
        if order.step == OrderStep::Placed {
            report.note(describe(&reservation));
        }
        return Ok(());
    }
    let lines = match &order.lines {
        Some(lines) => lines.clone(),
        None => tiktok_lines(context, order, report).await?,
    };
    let mut requests = Vec::with_capacity(lines.len());
    for line in &lines {
        match known_sku(context, line) {
            Ok(sku) => requests.push(ReservationLineRequest {
                sku,
                location: None,
                quantity: line.quantity,
            }),
            Err(detail) => report.incident(unknown_sku(order, line, detail)),
        }
    }
    // Each refusal for an unknown SKU (one that appeared after the check) drops a line.
    for _ in 0..=lines.len() {
        if requests.is_empty() {
            report.note("nothing to reserve");
            return Ok(());
        }
        let command = LedgerCommand::ReserveOrder(Reserve {
            reservation_id: id.clone(),
            channel: Some(context.webhook.channel.clone()),
            lines: requests.clone(),
            ttl_seconds: context.state.config.webhooks.order_ttl_seconds,
        });
        match submit(context, command).await? {
            Reply::Reservation {
                reservation,
                created: true,
            } => {
                report.note(format!("reserved {}", render_lines(&reservation)));
                let seen: Vec<_> = reservation
                    .lines
                    .iter()
                    .map(|line| (line.sku.clone(), Some(line.location.clone()), line.quantity))
                    .collect();
                tell_sync(context, &seen);
                return Ok(());
            }
            Reply::Reservation { reservation, .. } => {
                report.note(describe(&reservation));
                return Ok(());
            }
            Reply::Rejected(Rejection::InsufficientStock { shortfalls }) => {
                let short: Vec<String> = shortfalls
                    .iter()
                    .map(|s| format!("{} {} of {}", s.sku, s.requested, s.available))
                    .collect();
                report.note(format!("oversold ({})", short.join(", ")));
                let seen: Vec<_> = requests
                    .iter()
                    .map(|r| (r.sku.clone(), None, r.quantity))
                    .collect();
                tell_sync(context, &seen);
                return Ok(());
            }
            Reply::Rejected(Rejection::UnknownSku { sku }) => {
                let line = lines
                    .iter()
                    .find(|l| l.sku.as_deref() == Some(sku.as_str()));
                let quantity = line.map_or(0, |l| l.quantity);
                report.incident(incident(
                    "unknown_sku",
                    order,
                    Some((sku.as_str(), quantity)),
                    format!("no stock was ever recorded for {sku}"),
                ));
                requests.retain(|request| request.sku != sku);
            }
            Reply::Rejected(Rejection::IdempotencyConflict { .. }) => {
                report.incident(incident(
                    "order_changed",
                    order,
                    None,
                    "the order's lines differ from those reserved for it",
                ));
                return Ok(());
            }
            Reply::Rejected(rejection) => {
                report.incident(incident(
                    "refused",
                    order,
                    None,
                    format!("the reservation was refused: {}", rejection.code()),
                ));
                return Ok(());
            }
            other => return Err(Step::Retry(format!("unexpected reply {other:?}"))),
        }
    }
    Ok(())
}

fn render_lines(reservation: &Reservation) -> String {
    let lines: Vec<String> = reservation
        .lines
        .iter()
        .map(|line| format!("{} x{} at {}", line.sku, line.quantity, line.location))
        .collect();
    lines.join(", ")
}

fn unknown_sku(order: &OrderNotice, line: &OrderLine, detail: String) -> NewIncident {
    let name = line
        .sku
        .as_deref()
        .or(line.sku_id.as_deref())
        .unwrap_or("(none)");
    incident("unknown_sku", order, Some((name, line.quantity)), detail)
}

/// Our SKU for a channel's line, if the ledger knows it.
fn known_sku(context: &Context<'_>, line: &OrderLine) -> Result<Sku, String> {
    let sku = match (&line.sku, &line.sku_id) {
        (Some(name), _) => {
            Sku::parse(name.clone()).map_err(|error| format!("{name:?} is not a SKU: {error}"))?
        }
        (None, Some(sku_id)) => context
            .webhook
            .sku_ids
            .get(sku_id)
            .cloned()
            .ok_or_else(|| format!("the channel's SKU id {sku_id} maps to no SKU"))?,
        (None, None) => return Err("the line has no SKU".to_owned()),
    };
    let reads = context.state.engine.reads();
    match reads.sku(&context.webhook.tenant, &sku) {
        Some(_) => Ok(sku),
        None => Err(format!("no stock was ever recorded for {sku}")),
    }
}

/// TikTok's webhook names no lines: they come from Get Order Detail.
async fn tiktok_lines(
    context: &Context<'_>,
    order: &OrderNotice,
    report: &mut Report,
) -> Result<Vec<OrderLine>, Step> {
    let Some(reader) = context.state.inbound.tiktok.get(&context.webhook.channel) else {
        report.incident(incident(
            "order_unreadable",
            order,
            None,
            "the webhook names no lines and the channel has no adapter settings to read the \
             order with (Get Order Detail)",
        ));
        return Ok(Vec::new());
    };
    let orders = reader
        .order_detail(std::slice::from_ref(&order.order_id))
        .await
        .map_err(|failure| {
            Step::Retry(format!(
                "Get Order Detail: {} {}",
                failure.code, failure.message
            ))
        })?;
    let Some(found) = orders.into_iter().find(|o| o.order_id == order.order_id) else {
        return Err(Step::Retry(
            "Get Order Detail does not list the order yet".to_owned(),
        ));
    };
    Ok(found
        .lines
        .into_iter()
        .map(|line| OrderLine {
            sku: line.seller_sku,
            sku_id: line.sku_id,
            quantity: line.quantity,
        })
        .collect())
}

/// The channel's settings as the ledger has them.
fn channel_config(context: &Context<'_>) -> Option<ChannelConfig> {
    let settings = context
        .state
        .engine
        .reads()
        .settings(&context.webhook.tenant)?;
    settings
        .availability
        .channels
        .iter()
        .find(|c| c.config.id == context.webhook.channel)
        .map(|c| c.config.clone())
}

/// Tells the channel sync of units the channel took itself for an order, so that what it
/// believes the channel shows stays right. `location` is where the units were reserved; for
/// an order that was not (an oversell) the channel's first location.
fn tell_sync(context: &Context<'_>, units: &[(Sku, Option<LocationId>, i64)]) {
    let Some(sync) = &context.state.sync else {
        return;
    };
    let config = channel_config(context);
    let per_location = config.as_ref().is_some_and(|c| c.per_location);
    let first = config
        .as_ref()
        .and_then(|c| c.locations_by_priority().first().map(|l| (*l).clone()));
    for (sku, location, quantity) in units {
        let location = match (per_location, location) {
            (false, _) => None,
            (true, Some(location)) => Some(location.clone()),
            (true, None) => first.clone(),
        };
        // A channel the sync does not drive has no belief to keep.
        let _ = sync.order_seen(&context.webhook.channel, sku, location.as_ref(), *quantity);
    }
}

async fn confirm(
    context: &Context<'_>,
    id: &ReservationId,
    order: &OrderNotice,
    report: &mut Report,
) -> Result<(), Step> {
    let Some(reservation) = existing(context, id) else {
        return Ok(());
    };
    match reservation.state {
        ReservationState::Provisional => {}
        ReservationState::Confirmed | ReservationState::Fulfilled => {
            if order.step == OrderStep::Paid {
                report.note(describe(&reservation));
            }
            return Ok(());
        }
        ReservationState::Released | ReservationState::Expired => {
            // A cancellation processed before this older webhook (delivered late, or retried)
            // is the order's latest state, not a contradiction.
            let cancelled_here =
                reservation.resolution_reason.as_deref() == Some(cancel_reason(context).as_str());
            if reservation.is_tombstone() || cancelled_here {
                report.note(describe(&reservation));
            } else {
                report.incident(incident(
                    "order_state",
                    order,
                    None,
                    format!(
                        "the order is {} on {}, but its reservation was {} ({}): its units are \
                         not held",
                        order.status.to_lowercase(),
                        context.webhook.channel,
                        reservation.state.name(),
                        reservation.resolution_reason.as_deref().unwrap_or_default()
                    ),
                ));
            }
            return Ok(());
        }
    }
    let command = LedgerCommand::Confirm {
        reservation_id: id.clone(),
        lines: None,
    };
    match submit(context, command).await? {
        Reply::Reservation { .. } => report.note("confirmed"),
        Reply::Rejected(rejection) => report.incident(incident(
            "order_state",
            order,
            None,
            format!("the confirmation was refused: {}", rejection.code()),
        )),
        other => return Err(Step::Retry(format!("unexpected reply {other:?}"))),
    }
    Ok(())
}

fn cancel_reason(context: &Context<'_>) -> String {
    format!("cancelled on {}", context.webhook.channel)
}

async fn cancel(
    context: &Context<'_>,
    id: &ReservationId,
    report: &mut Report,
) -> Result<(), Step> {
    let before = existing(context, id);
    let command = LedgerCommand::CancelOrder {
        reservation_id: id.clone(),
        reason: Some(cancel_reason(context)),
    };
    match submit(context, command).await? {
        Reply::Reservation { reservation, .. } => match before {
            None => report.note("cancelled before the order arrived: kept as a tombstone"),
            Some(before) if before.state.is_open() => report.note("released"),
            Some(_) => report.note(describe(&reservation)),
        },
        Reply::Rejected(rejection) => {
            let state = before.map_or("unknown", |r| r.state.name());
            report.incident(NewIncident {
                kind: "order_state",
                order_id: Some(id.to_string()),
                sku: None,
                quantity: None,
                detail: format!(
                    "cancelled on {} when its reservation was {state}: {}",
                    context.webhook.channel,
                    rejection.code()
                ),
            });
        }
        other => return Err(Step::Retry(format!("unexpected reply {other:?}"))),
    }
    Ok(())
}

/// Units shipped per SKU against units picked for the reservation.
fn check_fulfilment(
    context: &Context<'_>,
    id: &ReservationId,
    order: &OrderNotice,
    report: &mut Report,
) -> Result<(), Step> {
    let Some(reservation) = existing(context, id) else {
        report.note("nothing reserved to match the fulfilment against");
        return Ok(());
    };
    if reservation.is_tombstone() {
        report.incident(incident(
            "fulfilment_mismatch",
            order,
            None,
            format!(
                "shipped on {}, but nothing was held for it: {}",
                context.webhook.channel,
                reservation.resolution_reason.as_deref().unwrap_or_default()
            ),
        ));
        return Ok(());
    }
    let shipped = shipped_units(context, order, &reservation);
    let mut skus: Vec<&Sku> = shipped.iter().map(|(sku, _)| sku).collect();
    skus.extend(reservation.lines.iter().map(|line| &line.sku));
    skus.sort();
    skus.dedup();
    let mut differences = Vec::new();
    for sku in skus {
        let sent: i64 = shipped
            .iter()
            .filter(|(s, _)| s == sku)
            .map(|(_, q)| q)
            .sum();
        let picked: i64 = reservation
            .lines
            .iter()
            .filter(|line| &line.sku == sku)
            .map(|line| line.picked)
            .sum();
        if sent != picked {
            differences.push((sku.clone(), sent, picked));
        }
    }
    if differences.is_empty() {
        report.note("fulfilment matches the picks");
        return Ok(());
    }
    let grace = Duration::from_secs(context.state.config.webhooks.fulfilment_grace_seconds);
    let deadline = context.received_at().plus_micros(grace.as_micros() as i64);
    let picks_missing = differences.iter().any(|(_, sent, picked)| picked < sent);
    if picks_missing && context.now < deadline {
        let poll = (grace / 20).clamp(Duration::from_millis(200), Duration::from_secs(60));
        let at = context
            .now
            .plus_micros(poll.as_micros() as i64)
            .min(deadline);
        return Err(Step::Later {
            at,
            note: "waiting for the warehouse's picks".to_owned(),
        });
    }
    for (sku, sent, picked) in differences {
        report.incident(incident(
            "fulfilment_mismatch",
            order,
            Some((sku.as_str(), sent - picked)),
            format!(
                "{sku}: {sent} shipped on {}, {picked} picked",
                context.webhook.channel
            ),
        ));
    }
    Ok(())
}

/// What the notice says shipped, in our SKUs; every unit of the reservation when it does not.
fn shipped_units(
    context: &Context<'_>,
    order: &OrderNotice,
    reservation: &Reservation,
) -> Vec<(Sku, i64)> {
    match &order.shipped {
        Some(lines) => lines
            .iter()
            .filter_map(|line| Some((known_sku(context, line).ok()?, line.quantity)))
            .collect(),
        None => reservation
            .lines
            .iter()
            .map(|line| (line.sku.clone(), line.quantity))
            .collect(),
    }
}
