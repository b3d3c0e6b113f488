//! The compact journal form of a request of events ([`super::FORMAT_EVENTS_COMPACT`]).
//!
//! The event count, then per event: id, source, seq, a byte of flags for the optional
//! `occurred_at`, `reason` and `reference` (then those present), a byte naming the event type
//! and that type's fields in declaration order. Quantities are zigzag varints, states and
//! conditions a byte. Every variant is destructured in full, so that a new field is a compile
//! error here rather than a field silently left out of the journal.

use crate::binary::{Reader, Writer};
use crate::error::StoreError;
use stockflow_core::event::{Condition, Event, EventKind};
use stockflow_core::ids::{EventId, LocationId, ReservationId, Sku, SourceId};
use stockflow_core::quantity::QuantityState;
use stockflow_core::time::Timestamp;

const WHAT: &str = "journal events";

const OCCURRED_AT: u8 = 1;
const REASON: u8 = 2;
const REFERENCE: u8 = 4;

const RECEIVED: u8 = 0;
const PICKED: u8 = 1;
const RETURNED: u8 = 2;
const ADJUSTED: u8 = 3;
const COUNTED: u8 = 4;
const MOVED: u8 = 5;
const TRANSFERRED: u8 = 6;
const CANCELLED: u8 = 7;

pub(super) fn encode(buffer: &mut Vec<u8>, events: &[Event]) {
    let mut writer = Writer { bytes: buffer };
    writer.unsigned(events.len() as u64);
    for event in events {
        encode_event(&mut writer, event);
    }
}

fn encode_event(writer: &mut Writer<'_>, event: &Event) {
    let Event {
        event_id,
        source,
        seq,
        occurred_at,
        reason,
        reference,
        kind,
    } = event;
    writer.text(event_id.as_str());
    writer.text(source.as_str());
    writer.unsigned(*seq);
    let flags = [
        (occurred_at.is_some(), OCCURRED_AT),
        (reason.is_some(), REASON),
        (reference.is_some(), REFERENCE),
    ]
    .into_iter()
    .filter(|(present, _)| *present)
    .fold(0, |flags, (_, flag)| flags | flag);
    writer.byte(flags);
    if let Some(at) = occurred_at {
        writer.signed(at.0);
    }
    for text in [reason, reference].into_iter().flatten() {
        writer.text(text);
    }
    encode_kind(writer, kind);
}

fn encode_kind(writer: &mut Writer<'_>, kind: &EventKind) {
    match kind {
        EventKind::Received {
            sku,
            location,
            quantity,
            to,
        } => {
            place(writer, RECEIVED, sku, location, *quantity);
            writer.byte(state_code(*to));
        }
        EventKind::Picked {
            sku,
            location,
            quantity,
            reservation_id,
        } => {
            place(writer, PICKED, sku, location, *quantity);
            writer.optional_text(reservation_id.as_ref().map(|id| id.as_str()));
        }
        EventKind::Returned {
            sku,
            location,
            quantity,
            condition,
        } => {
            place(writer, RETURNED, sku, location, *quantity);
            writer.byte(condition_code(*condition));
        }
        EventKind::Adjusted {
            sku,
            location,
            delta,
            expected_version,
        } => {
            place(writer, ADJUSTED, sku, location, *delta);
            writer.optional_unsigned(*expected_version);
        }
        EventKind::Counted {
            sku,
            location,
            counted,
            expected_version,
        } => {
            place(writer, COUNTED, sku, location, *counted);
            writer.optional_unsigned(*expected_version);
        }
        EventKind::Moved {
            sku,
            location,
            quantity,
            from,
            to,
        } => {
            place(writer, MOVED, sku, location, *quantity);
            writer.byte(state_code(*from));
            writer.byte(state_code(*to));
        }
        EventKind::Transferred {
            sku,
            location,
            to_location,
            quantity,
        } => {
            place(writer, TRANSFERRED, sku, location, *quantity);
            writer.text(to_location.as_str());
        }
        EventKind::Cancelled {
            reservation_id,
            sku,
            quantity,
        } => {
            writer.byte(CANCELLED);
            writer.text(reservation_id.as_str());
            writer.optional_text(sku.as_ref().map(|s| s.as_str()));
            writer.optional_signed(*quantity);
        }
    }
}

/// The type byte and the fields every type but `cancelled` starts with.
fn place(writer: &mut Writer<'_>, kind: u8, sku: &Sku, location: &LocationId, quantity: i64) {
    writer.byte(kind);
    writer.text(sku.as_str());
    writer.text(location.as_str());
    writer.signed(quantity);
}

pub(super) fn decode(bytes: &[u8]) -> Result<Vec<Event>, StoreError> {
    let mut reader = Reader::new(bytes, WHAT);
    let count = reader.unsigned()?;
    // Each event takes at least a few bytes: a count beyond the blob is corrupt, and must not
    // reserve memory for it.
    if count > bytes.len() as u64 {
        return Err(reader.error(format!("{count} events in {} bytes", bytes.len())));
    }
    let mut events = Vec::with_capacity(count as usize);
    for _ in 0..count {
        events.push(decode_event(&mut reader)?);
    }
    if !reader.is_empty() {
        return Err(reader.error("bytes after the last event"));
    }
    Ok(events)
}

fn decode_event(reader: &mut Reader<'_>) -> Result<Event, StoreError> {
    let event_id = reader.id(EventId::parse)?;
    let source = reader.id(SourceId::parse)?;
    let seq = reader.unsigned()?;
    let flags = reader.byte()?;
    if flags & !(OCCURRED_AT | REASON | REFERENCE) != 0 {
        return Err(reader.error(format!("unknown event flags {flags:#x}")));
    }
    let occurred_at = if flags & OCCURRED_AT != 0 {
        Some(Timestamp(reader.signed()?))
    } else {
        None
    };
    let mut text = |flag: u8| -> Result<Option<String>, StoreError> {
        Ok(if flags & flag != 0 {
            Some(reader.text()?.to_owned())
        } else {
            None
        })
    };
    let reason = text(REASON)?;
    let reference = text(REFERENCE)?;
    let kind = decode_kind(reader)?;
    Ok(Event {
        event_id,
        source,
        seq,
        occurred_at,
        reason,
        reference,
        kind,
    })
}

fn decode_kind(reader: &mut Reader<'_>) -> Result<EventKind, StoreError> {
    let kind = reader.byte()?;
    if kind == CANCELLED {
        return Ok(EventKind::Cancelled {
            reservation_id: reader.id(ReservationId::parse)?,
            sku: reader.optional_id(Sku::parse)?,
            quantity: reader.optional_signed()?,
        });
    }
    let sku = reader.id(Sku::parse)?;
    let location = reader.id(LocationId::parse)?;
    let quantity = reader.signed()?;
    Ok(match kind {
        RECEIVED => EventKind::Received {
            sku,
            location,
            quantity,
            to: state(reader)?,
        },
        PICKED => EventKind::Picked {
            sku,
            location,
            quantity,
            reservation_id: reader.optional_id(ReservationId::parse)?,
        },
        RETURNED => EventKind::Returned {
            sku,
            location,
            quantity,
            condition: condition(reader)?,
        },
        ADJUSTED => EventKind::Adjusted {
            sku,
            location,
            delta: quantity,
            expected_version: reader.optional_unsigned()?,
        },
        COUNTED => EventKind::Counted {
            sku,
            location,
            counted: quantity,
            expected_version: reader.optional_unsigned()?,
        },
        MOVED => EventKind::Moved {
            sku,
            location,
            quantity,
            from: state(reader)?,
            to: state(reader)?,
        },
        TRANSFERRED => EventKind::Transferred {
            sku,
            location,
            to_location: reader.id(LocationId::parse)?,
            quantity,
        },
        other => return Err(reader.error(format!("unknown event type {other}"))),
    })
}

/// A state's position in [`QuantityState::ALL`].
pub(crate) fn state_code(state: QuantityState) -> u8 {
    QuantityState::ALL
        .iter()
        .position(|s| *s == state)
        .expect("every state is in ALL") as u8
}

fn state(reader: &mut Reader<'_>) -> Result<QuantityState, StoreError> {
    let code = reader.byte()?;
    QuantityState::ALL
        .get(usize::from(code))
        .copied()
        .ok_or_else(|| reader.error(format!("unknown quantity state {code}")))
}

fn condition_code(condition: Condition) -> u8 {
    match condition {
        Condition::Sellable => 0,
        Condition::Damaged => 1,
        Condition::QualityControl => 2,
    }
}

fn condition(reader: &mut Reader<'_>) -> Result<Condition, StoreError> {
    match reader.byte()? {
        0 => Ok(Condition::Sellable),
        1 => Ok(Condition::Damaged),
        2 => Ok(Condition::QualityControl),
        other => Err(reader.error(format!("unknown condition {other}"))),
    }
}
