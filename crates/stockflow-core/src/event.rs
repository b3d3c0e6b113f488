//! Events: facts reported by producers (a WMS, an OMS). Past tense; physical facts are never
//! refused (DESIGN.md section 2). Wire formats live at the edge; these are the parsed forms.

use crate::ids::{EventId, LocationId, ReservationId, Sku, SourceId};
use crate::quantity::QuantityState;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The longest free text (reason, reference) carried by an event or command.
pub const TEXT_LENGTH_MAX: usize = 512;

/// One event as a producer reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: EventId,
    pub source: SourceId,
    /// The producer's sequence number, from 1, without gaps. Events of one source apply in order.
    pub seq: u64,
    /// When it happened on the floor, if the producer says so. The ledger orders by `seq`, not by
    /// this; it is kept for the audit trail and for reconciliation against counts.
    pub occurred_at: Option<Timestamp>,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub kind: EventKind,
}

/// Where a returned unit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Sellable,
    Damaged,
    QualityControl,
}

impl Condition {
    pub fn state(self) -> QuantityState {
        match self {
            Condition::Sellable => QuantityState::Available,
            Condition::Damaged => QuantityState::Damaged,
            Condition::QualityControl => QuantityState::QualityControl,
        }
    }
}

/// The eight warehouse / OMS event types and their data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// on_hand += quantity, into `available` or `quality_control` (`to`). Arriving stock is no
    /// longer on its way: `incoming` at the location drops by up to `quantity`.
    Received {
        sku: Sku,
        location: LocationId,
        quantity: i64,
        to: QuantityState,
    },
    /// on_hand -= quantity: from the `committed` (or still `reserved`) units of the named
    /// reservation, else from `available`.
    Picked {
        sku: Sku,
        location: LocationId,
        quantity: i64,
        reservation_id: Option<ReservationId>,
    },
    /// on_hand += quantity, into the state its condition names.
    Returned {
        sku: Sku,
        location: LocationId,
        quantity: i64,
        condition: Condition,
    },
    /// on_hand += delta (signed, not zero).
    Adjusted {
        sku: Sku,
        location: LocationId,
        delta: i64,
        expected_version: Option<u64>,
    },
    /// Cycle count: on_hand set to `counted`; the difference goes to/from `available`.
    Counted {
        sku: Sku,
        location: LocationId,
        counted: i64,
        expected_version: Option<u64>,
    },
    /// quantity moves between two states at one location.
    Moved {
        sku: Sku,
        location: LocationId,
        quantity: i64,
        from: QuantityState,
        to: QuantityState,
    },
    /// quantity leaves `location` (from available) and shows as `incoming` at `to_location`.
    Transferred {
        sku: Sku,
        location: LocationId,
        to_location: LocationId,
        quantity: i64,
    },
    /// An order line is cancelled: the reservation's reserved or committed units return to
    /// available. Without `sku` the whole reservation is cancelled; with it, `quantity` of that
    /// SKU's line (all of it when `quantity` is absent).
    Cancelled {
        reservation_id: ReservationId,
        sku: Option<Sku>,
        quantity: Option<i64>,
    },
}

impl EventKind {
    /// The wire name of the event type.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::Received { .. } => "received",
            EventKind::Picked { .. } => "picked",
            EventKind::Returned { .. } => "returned",
            EventKind::Adjusted { .. } => "adjusted",
            EventKind::Counted { .. } => "counted",
            EventKind::Moved { .. } => "moved",
            EventKind::Transferred { .. } => "transferred",
            EventKind::Cancelled { .. } => "cancelled",
        }
    }

    /// The SKU the event is about, when it names one.
    pub fn sku(&self) -> Option<&Sku> {
        match self {
            EventKind::Received { sku, .. }
            | EventKind::Picked { sku, .. }
            | EventKind::Returned { sku, .. }
            | EventKind::Adjusted { sku, .. }
            | EventKind::Counted { sku, .. }
            | EventKind::Moved { sku, .. }
            | EventKind::Transferred { sku, .. } => Some(sku),
            EventKind::Cancelled { sku, .. } => sku.as_ref(),
        }
    }
}
