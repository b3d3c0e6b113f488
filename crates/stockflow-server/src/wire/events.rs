//! `POST /v1/events`: one event, or `{"events": [...]}` of up to
//! [`EVENTS_PER_REQUEST_MAX`]. Validated whole: one bad item refuses the request.

use super::{check_text, parse_id, parse_time};
use crate::problem::{FieldError, Problem};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use stockflow_core::envelope::EVENTS_PER_REQUEST_MAX;
use stockflow_core::event::{Condition, Event, EventKind};
use stockflow_core::ids::{EventId, LocationId, ReservationId, Sku, SourceId};
use stockflow_core::outcome::{EventResult, EventStatus};
use stockflow_core::quantity::{QUANTITY_MAX, QuantityState};
use utoipa::ToSchema;

/// One event as producers send it. Which fields are required depends on `type`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// Unique per tenant, at most 128 characters; deduplicated forever.
    #[schema(example = "wms-east-000123")]
    pub event_id: Option<String>,
    #[schema(example = "wms-east")]
    pub source: Option<String>,
    /// The producer's sequence number, from 1, without gaps.
    #[schema(example = 123)]
    pub seq: Option<i64>,
    /// received | picked | returned | adjusted | counted | moved | transferred | cancelled
    #[serde(rename = "type")]
    #[schema(example = "received")]
    pub event_type: Option<String>,
    pub sku: Option<String>,
    pub location: Option<String>,
    /// Units; for `adjusted` a signed delta, for `counted` the counted on-hand quantity.
    pub quantity: Option<i64>,
    /// RFC 3339.
    pub occurred_at: Option<String>,
    pub reason: Option<String>,
    pub reference: Option<String>,
    /// picked / cancelled: the reservation the units belong to.
    pub reservation_id: Option<String>,
    /// returned: sellable | damaged | quality_control
    pub condition: Option<String>,
    /// moved: the state the units leave.
    pub from: Option<String>,
    /// moved: the state the units enter; received: available (default) or quality_control.
    pub to: Option<String>,
    /// transferred: the destination location.
    pub to_location: Option<String>,
    /// adjusted / counted: refuse the event unless the SKU x location is at this version.
    pub expected_version: Option<u64>,
}

/// A batch of events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatchIn {
    pub events: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventsOut {
    pub results: Vec<EventResultOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventResultOut {
    pub event_id: String,
    /// applied | duplicate | held
    pub status: String,
}

impl EventsOut {
    pub fn from_results(results: &[EventResult]) -> Self {
        let results = results
            .iter()
            .map(|result| EventResultOut {
                event_id: result.event_id.to_string(),
                status: match result.status {
                    EventStatus::Applied => "applied",
                    EventStatus::Duplicate => "duplicate",
                    EventStatus::Held => "held",
                }
                .to_owned(),
            })
            .collect();
        Self { results }
    }
}

/// Parses the body of `POST /v1/events` into core events, or a problem listing every error.
pub fn parse_request(body: serde_json::Value) -> Result<Vec<Event>, Problem> {
    let items = match body {
        serde_json::Value::Object(ref map) if map.contains_key("events") => {
            let batch: EventBatchIn = serde_json::from_value(body).map_err(|error| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    error.to_string(),
                )
            })?;
            batch.events
        }
        serde_json::Value::Object(_) => vec![body],
        _ => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be an event object or {\"events\": [...]}",
            ));
        }
    };
    if items.is_empty() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "empty_batch",
            "the batch has no events",
        ));
    }
    if items.len() > EVENTS_PER_REQUEST_MAX {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{} events; at most {EVENTS_PER_REQUEST_MAX} per request",
                items.len()
            ),
        ));
    }
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match parse_item(item) {
            Ok(event) => events.push(event),
            Err(item_errors) => errors.extend(item_errors.into_iter().map(|mut error| {
                error.index = Some(index);
                error
            })),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(Problem::invalid(errors))
    }
}

fn parse_item(item: serde_json::Value) -> Result<Event, Vec<FieldError>> {
    let input: EventIn = serde_json::from_value(item).map_err(|error| {
        let message = error.to_string();
        let code = if message.starts_with("unknown field") {
            "unknown_field"
        } else {
            "invalid_value"
        };
        vec![FieldError::new("", code, message)]
    })?;
    let mut errors = Vec::new();
    let event = convert(&input, &mut errors);
    match event {
        Some(event) if errors.is_empty() => Ok(event),
        _ => Err(errors),
    }
}

/// The fields each event type may carry besides the common ones.
fn allowed_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "received" => &["sku", "location", "quantity", "to"],
        "picked" => &["sku", "location", "quantity", "reservation_id"],
        "returned" => &["sku", "location", "quantity", "condition"],
        "adjusted" | "counted" => &["sku", "location", "quantity", "expected_version"],
        "moved" => &["sku", "location", "quantity", "from", "to"],
        "transferred" => &["sku", "location", "quantity", "to_location"],
        "cancelled" => &["reservation_id", "sku", "quantity"],
        _ => &[],
    }
}

fn present_fields(input: &EventIn) -> Vec<&'static str> {
    let mut present = Vec::new();
    let optional: [(&'static str, bool); 9] = [
        ("sku", input.sku.is_some()),
        ("location", input.location.is_some()),
        ("quantity", input.quantity.is_some()),
        ("reservation_id", input.reservation_id.is_some()),
        ("condition", input.condition.is_some()),
        ("from", input.from.is_some()),
        ("to", input.to.is_some()),
        ("to_location", input.to_location.is_some()),
        ("expected_version", input.expected_version.is_some()),
    ];
    for (name, is_present) in optional {
        if is_present {
            present.push(name);
        }
    }
    present
}

fn convert(input: &EventIn, errors: &mut Vec<FieldError>) -> Option<Event> {
    let event_id = parse_id(
        "event_id",
        input.event_id.as_deref(),
        EventId::parse,
        errors,
    );
    let source = parse_id("source", input.source.as_deref(), SourceId::parse, errors);
    let seq = match input.seq {
        Some(seq) if seq >= 1 => Some(seq as u64),
        Some(seq) => {
            errors.push(FieldError::new(
                "seq",
                "invalid_seq",
                format!("seq must be >= 1, got {seq}"),
            ));
            None
        }
        None => {
            errors.push(FieldError::new("seq", "missing_field", "seq is required"));
            None
        }
    };
    let occurred_at = input
        .occurred_at
        .as_deref()
        .and_then(|at| parse_time("occurred_at", at, errors));
    check_text("reason", &input.reason, errors);
    check_text("reference", &input.reference, errors);
    let Some(event_type) = input.event_type.as_deref() else {
        errors.push(FieldError::new("type", "missing_field", "type is required"));
        return None;
    };
    let allowed = allowed_fields(event_type);
    if allowed.is_empty() {
        errors.push(FieldError::new(
            "type",
            "unknown_event_type",
            format!(
                "{event_type:?} is not an event type; expected one of received, picked, returned, \
                 adjusted, counted, moved, transferred, cancelled"
            ),
        ));
        return None;
    }
    for field in present_fields(input) {
        if !allowed.contains(&field) {
            errors.push(FieldError::new(
                field,
                "field_not_allowed",
                format!("{field} does not apply to a {event_type} event"),
            ));
        }
    }
    let kind = convert_kind(event_type, input, errors)?;
    Some(Event {
        event_id: event_id?,
        source: source?,
        seq: seq?,
        occurred_at,
        reason: input.reason.clone(),
        reference: input.reference.clone(),
        kind,
    })
}

fn convert_kind(
    event_type: &str,
    input: &EventIn,
    errors: &mut Vec<FieldError>,
) -> Option<EventKind> {
    if event_type == "cancelled" {
        let reservation_id = parse_id(
            "reservation_id",
            input.reservation_id.as_deref(),
            ReservationId::parse,
            errors,
        );
        let sku = input
            .sku
            .as_deref()
            .and_then(|sku| parse_id("sku", Some(sku), Sku::parse, errors));
        let quantity = match input.quantity {
            Some(quantity) => Some(positive("quantity", Some(quantity), errors)?),
            None => None,
        };
        if quantity.is_some() && input.sku.is_none() {
            errors.push(FieldError::new(
                "sku",
                "missing_field",
                "a partial cancellation names its sku",
            ));
        }
        return Some(EventKind::Cancelled {
            reservation_id: reservation_id?,
            sku,
            quantity,
        });
    }
    let sku = parse_id("sku", input.sku.as_deref(), Sku::parse, errors);
    let location = parse_id(
        "location",
        input.location.as_deref(),
        LocationId::parse,
        errors,
    );
    let kind = match event_type {
        "received" => {
            let to = match input.to.as_deref() {
                None | Some("available") => Some(QuantityState::Available),
                Some("quality_control") => Some(QuantityState::QualityControl),
                Some(other) => {
                    errors.push(FieldError::new(
                        "to",
                        "invalid_state",
                        format!("received goes to available or quality_control, not {other:?}"),
                    ));
                    None
                }
            };
            let quantity = positive("quantity", input.quantity, errors);
            EventKind::Received {
                sku: sku?,
                location: location?,
                quantity: quantity?,
                to: to?,
            }
        }
        "picked" => {
            let reservation_id = input
                .reservation_id
                .as_deref()
                .and_then(|id| parse_id("reservation_id", Some(id), ReservationId::parse, errors));
            let quantity = positive("quantity", input.quantity, errors);
            EventKind::Picked {
                sku: sku?,
                location: location?,
                quantity: quantity?,
                reservation_id,
            }
        }
        "returned" => {
            let condition = match input.condition.as_deref() {
                Some("sellable") => Some(Condition::Sellable),
                Some("damaged") => Some(Condition::Damaged),
                Some("quality_control") => Some(Condition::QualityControl),
                Some(other) => {
                    errors.push(FieldError::new(
                        "condition",
                        "invalid_condition",
                        format!("condition is sellable, damaged or quality_control, not {other:?}"),
                    ));
                    None
                }
                None => {
                    errors.push(FieldError::new(
                        "condition",
                        "missing_field",
                        "a return says its condition: sellable, damaged or quality_control",
                    ));
                    None
                }
            };
            let quantity = positive("quantity", input.quantity, errors);
            EventKind::Returned {
                sku: sku?,
                location: location?,
                quantity: quantity?,
                condition: condition?,
            }
        }
        "adjusted" => {
            let delta = match input.quantity {
                Some(0) => {
                    errors.push(FieldError::new(
                        "quantity",
                        "invalid_quantity",
                        "an adjustment is not zero",
                    ));
                    None
                }
                Some(delta) if delta.abs() > QUANTITY_MAX => {
                    errors.push(FieldError::new(
                        "quantity",
                        "invalid_quantity",
                        format!("|{delta}| is above the limit {QUANTITY_MAX}"),
                    ));
                    None
                }
                Some(delta) => Some(delta),
                None => {
                    errors.push(FieldError::new(
                        "quantity",
                        "missing_field",
                        "quantity (the signed delta) is required",
                    ));
                    None
                }
            };
            EventKind::Adjusted {
                sku: sku?,
                location: location?,
                delta: delta?,
                expected_version: input.expected_version,
            }
        }
        "counted" => {
            let counted = match input.quantity {
                Some(counted) if (0..=QUANTITY_MAX).contains(&counted) => Some(counted),
                Some(counted) => {
                    errors.push(FieldError::new(
                        "quantity",
                        "invalid_quantity",
                        format!("a count is between 0 and {QUANTITY_MAX}, got {counted}"),
                    ));
                    None
                }
                None => {
                    errors.push(FieldError::new(
                        "quantity",
                        "missing_field",
                        "quantity (the count) is required",
                    ));
                    None
                }
            };
            EventKind::Counted {
                sku: sku?,
                location: location?,
                counted: counted?,
                expected_version: input.expected_version,
            }
        }
        "moved" => {
            let from = state("from", input.from.as_deref(), errors);
            let to = state("to", input.to.as_deref(), errors);
            if from.is_some() && from == to {
                errors.push(FieldError::new(
                    "to",
                    "invalid_state",
                    "from and to are the same state",
                ));
            }
            let quantity = positive("quantity", input.quantity, errors);
            EventKind::Moved {
                sku: sku?,
                location: location?,
                quantity: quantity?,
                from: from?,
                to: to?,
            }
        }
        "transferred" => {
            let to_location = parse_id(
                "to_location",
                input.to_location.as_deref(),
                LocationId::parse,
                errors,
            );
            if to_location.is_some() && to_location == location {
                errors.push(FieldError::new(
                    "to_location",
                    "invalid_location",
                    "a transfer goes to another location",
                ));
            }
            let quantity = positive("quantity", input.quantity, errors);
            EventKind::Transferred {
                sku: sku?,
                location: location?,
                to_location: to_location?,
                quantity: quantity?,
            }
        }
        _ => return None,
    };
    Some(kind)
}

fn positive(field: &str, value: Option<i64>, errors: &mut Vec<FieldError>) -> Option<i64> {
    match value {
        Some(quantity) if (1..=QUANTITY_MAX).contains(&quantity) => Some(quantity),
        Some(quantity) => {
            errors.push(FieldError::new(
                field,
                "invalid_quantity",
                format!("{field} must be between 1 and {QUANTITY_MAX}, got {quantity}"),
            ));
            None
        }
        None => {
            errors.push(FieldError::new(
                field,
                "missing_field",
                format!("{field} is required"),
            ));
            None
        }
    }
}

fn state(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<QuantityState> {
    let Some(name) = value else {
        errors.push(FieldError::new(
            field,
            "missing_field",
            format!("{field} is required"),
        ));
        return None;
    };
    let parsed = QuantityState::parse(name);
    if parsed.is_none() {
        errors.push(FieldError::new(
            field,
            "invalid_state",
            format!(
                "{name:?} is not a quantity state; expected available, reserved, committed, damaged, \
                 quality_control, safety_stock or incoming"
            ),
        ));
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(body: serde_json::Value) -> Vec<(Option<usize>, String, String)> {
        match parse_request(body) {
            Ok(_) => vec![],
            Err(problem) if problem.errors.is_empty() => vec![(None, String::new(), problem.code)],
            Err(problem) => problem
                .errors
                .into_iter()
                .map(|e| (e.index, e.field, e.code))
                .collect(),
        }
    }

    fn received() -> serde_json::Value {
        json!({"event_id": "e1", "source": "wms", "seq": 1, "type": "received",
               "sku": "SKU-1", "location": "east", "quantity": 5})
    }

    #[test]
    fn a_valid_event_and_a_batch_parse() {
        let events = parse_request(received()).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind.type_name(), "received");
        let events = parse_request(json!({"events": [received(), received()]})).unwrap();
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn every_kind_of_bad_field_has_its_own_code() {
        let mut bad = received();
        bad["type"] = json!("teleported");
        assert_eq!(
            codes(bad),
            vec![(Some(0), "type".into(), "unknown_event_type".into())]
        );

        let mut bad = received();
        bad["quantity"] = json!(0);
        assert_eq!(
            codes(bad),
            vec![(Some(0), "quantity".into(), "invalid_quantity".into())]
        );

        let mut bad = received();
        bad["event_id"] = json!("x".repeat(129));
        assert_eq!(
            codes(bad),
            vec![(Some(0), "event_id".into(), "invalid_id".into())]
        );

        let mut bad = received();
        bad["colour"] = json!("red");
        assert_eq!(
            codes(bad),
            vec![(Some(0), "".into(), "unknown_field".into())]
        );

        let mut bad = received();
        bad["condition"] = json!("damaged");
        assert_eq!(
            codes(bad),
            vec![(Some(0), "condition".into(), "field_not_allowed".into())]
        );
    }

    #[test]
    fn one_bad_item_refuses_the_batch_and_names_its_index() {
        let mut bad = received();
        bad["seq"] = json!(0);
        assert_eq!(
            codes(json!({"events": [received(), bad]})),
            vec![(Some(1), "seq".into(), "invalid_seq".into())]
        );
    }

    #[test]
    fn oversized_and_empty_batches_are_refused() {
        let many: Vec<_> = (0..1001).map(|_| received()).collect();
        assert_eq!(
            codes(json!({"events": many})),
            vec![(None, "".into(), "batch_too_large".into())]
        );
        assert_eq!(
            codes(json!({"events": []})),
            vec![(None, "".into(), "empty_batch".into())]
        );
    }

    #[test]
    fn adjusted_takes_a_signed_delta_and_moved_needs_two_states() {
        let adjusted = json!({"event_id": "e2", "source": "wms", "seq": 2, "type": "adjusted",
                              "sku": "S", "location": "east", "quantity": -3, "expected_version": 4});
        let events = parse_request(adjusted).unwrap();
        assert_eq!(
            events[0].kind,
            EventKind::Adjusted {
                sku: Sku::parse("S").unwrap(),
                location: LocationId::parse("east").unwrap(),
                delta: -3,
                expected_version: Some(4)
            }
        );
        let moved = json!({"event_id": "e3", "source": "wms", "seq": 3, "type": "moved",
                           "sku": "S", "location": "east", "quantity": 1, "from": "available", "to": "available"});
        assert_eq!(
            codes(moved),
            vec![(Some(0), "to".into(), "invalid_state".into())]
        );
    }
}
