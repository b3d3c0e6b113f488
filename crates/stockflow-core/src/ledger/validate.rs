//! Checks that need no state. The edge checks the same shapes first; the core checks again so
//! that a value that slipped through is refused with `invalid` instead of breaking an invariant.
//! A request is checked whole before any of it is applied.

use crate::command::{
    LOCATION_PRIORITY_MAX, RESERVATION_LINES_MAX, RESERVATION_TTL_SECONDS_MAX,
    ReservationLineRequest, Reserve,
};
use crate::envelope::EVENTS_PER_REQUEST_MAX;
use crate::event::{Event, EventKind, TEXT_LENGTH_MAX};
use crate::ids::LocationId;
use crate::outcome::Rejection;
use crate::quantity::{QUANTITY_MAX, QuantityState};
use std::collections::BTreeSet;

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Rejection {
    Rejection::Invalid {
        field: field.into(),
        detail: detail.into(),
    }
}

/// A quantity in `minimum..=QUANTITY_MAX`.
fn quantity(field: impl Into<String>, value: i64, minimum: i64) -> Result<(), Rejection> {
    if (minimum..=QUANTITY_MAX).contains(&value) {
        return Ok(());
    }
    Err(invalid(
        field,
        format!("{value} is outside {minimum}..={QUANTITY_MAX}"),
    ))
}

pub fn text(field: &str, value: Option<&str>) -> Result<(), Rejection> {
    match value {
        Some(value) if value.len() > TEXT_LENGTH_MAX => Err(invalid(
            field,
            format!("{} bytes long; the limit is {TEXT_LENGTH_MAX}", value.len()),
        )),
        _ => Ok(()),
    }
}

pub fn events(events: &[Event]) -> Result<(), Rejection> {
    if events.len() > EVENTS_PER_REQUEST_MAX {
        return Err(invalid(
            "events",
            format!(
                "{} events; the limit is {EVENTS_PER_REQUEST_MAX}",
                events.len()
            ),
        ));
    }
    for (index, event) in events.iter().enumerate() {
        event_fields(event).map_err(|rejection| match rejection {
            Rejection::Invalid { field, detail } => {
                invalid(format!("events[{index}].{field}"), detail)
            }
            other => other,
        })?;
    }
    Ok(())
}

fn event_fields(event: &Event) -> Result<(), Rejection> {
    if event.seq == 0 {
        return Err(invalid("seq", "sequence numbers start at 1"));
    }
    text("reason", event.reason.as_deref())?;
    text("reference", event.reference.as_deref())?;
    match &event.kind {
        EventKind::Received {
            quantity: q, to, ..
        } => {
            quantity("quantity", *q, 1)?;
            if !matches!(to, QuantityState::Available | QuantityState::QualityControl) {
                return Err(invalid(
                    "to",
                    format!(
                        "received stock goes to available or quality_control, not {}",
                        to.name()
                    ),
                ));
            }
        }
        EventKind::Picked { quantity: q, .. }
        | EventKind::Returned { quantity: q, .. }
        | EventKind::Transferred { quantity: q, .. } => quantity("quantity", *q, 1)?,
        EventKind::Adjusted { delta, .. } => {
            if *delta == 0 {
                return Err(invalid("delta", "an adjustment must not be 0"));
            }
            quantity("delta", delta.saturating_abs(), 1)?;
        }
        EventKind::Counted { counted, .. } => quantity("counted", *counted, 0)?,
        EventKind::Moved {
            quantity: q,
            from,
            to,
            ..
        } => {
            quantity("quantity", *q, 1)?;
            if from == to {
                return Err(invalid("to", "a move needs two different states"));
            }
        }
        EventKind::Cancelled {
            sku, quantity: q, ..
        } => match (sku, q) {
            (None, Some(_)) => {
                return Err(invalid("quantity", "a quantity needs the sku of the line"));
            }
            (_, Some(q)) => quantity("quantity", *q, 1)?,
            (_, None) => {}
        },
    }
    if let EventKind::Transferred {
        location,
        to_location,
        ..
    } = &event.kind
        && location == to_location
    {
        return Err(invalid(
            "to_location",
            "a transfer needs two different locations",
        ));
    }
    Ok(())
}

pub fn reserve(request: &Reserve) -> Result<(), Rejection> {
    let count = request.lines.len();
    if !(1..=RESERVATION_LINES_MAX).contains(&count) {
        return Err(invalid(
            "lines",
            format!("{count} lines; a reservation has 1..={RESERVATION_LINES_MAX}"),
        ));
    }
    for (index, line) in request.lines.iter().enumerate() {
        quantity(format!("lines[{index}].quantity"), line.quantity, 1)?;
    }
    if !(1..=RESERVATION_TTL_SECONDS_MAX).contains(&request.ttl_seconds) {
        return Err(invalid(
            "ttl_seconds",
            format!(
                "{} is outside 1..={RESERVATION_TTL_SECONDS_MAX}",
                request.ttl_seconds
            ),
        ));
    }
    Ok(())
}

/// The lines of a partial confirm: 0 confirms none of a line (the rest of the reservation is
/// still confirmed), but the confirm as a whole must keep at least one unit.
pub fn confirm_lines(lines: &[ReservationLineRequest]) -> Result<(), Rejection> {
    let count = lines.len();
    if !(1..=RESERVATION_LINES_MAX).contains(&count) {
        return Err(invalid(
            "lines",
            format!(
                "{count} lines; a partial confirm has 1..={RESERVATION_LINES_MAX} (omit them to confirm in full)"
            ),
        ));
    }
    for (index, line) in lines.iter().enumerate() {
        quantity(format!("lines[{index}].quantity"), line.quantity, 0)?;
    }
    Ok(())
}

pub fn location_priority(locations: &[LocationId]) -> Result<(), Rejection> {
    if locations.len() > LOCATION_PRIORITY_MAX {
        return Err(invalid(
            "locations",
            format!(
                "{} locations; the limit is {LOCATION_PRIORITY_MAX}",
                locations.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for location in locations {
        if !seen.insert(location) {
            return Err(invalid("locations", format!("{location} is listed twice")));
        }
    }
    Ok(())
}
