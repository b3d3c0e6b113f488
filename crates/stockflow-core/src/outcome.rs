//! What applying one envelope produces: the answer to the caller and the effects for the edges to
//! carry out (audit rows, incidents, availability changes for the channel sync). Effects are data;
//! the core performs none of them.

use crate::availability::Percent;
use crate::envelope::Position;
use crate::ids::{
    ChannelId, EventId, LocationId, PolicyId, ReservationId, Sku, SourceId, TenantId,
};
use crate::quantity::Quantities;
use crate::reservation::{Reservation, ReservationState};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    pub reply: Reply,
    /// The state changed: the envelope must be journaled (before the reply is sent).
    pub persist: bool,
    pub audit: Vec<AuditEntry>,
    pub incidents: Vec<Incident>,
    /// Changes of what a channel may sell, for the channel sync.
    pub availability: Vec<AtsChange>,
    /// SKUs whose published view changed (quantities, reservations or buffers).
    pub touched_skus: Vec<Sku>,
    /// Reservations whose published view changed.
    pub touched_reservations: Vec<ReservationId>,
    /// Buffer changes among `audit`, by kind, for the server's counters.
    pub buffer_changes: BufferChanges,
}

/// How many buffers of SKU x channel were applied, grown, decayed or released (each is also an
/// [`AuditChange::Buffer`] entry). Buffer release frequency, an operators' KPI, is
/// `decayed + released` over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BufferChanges {
    /// A buffer that did not apply now does.
    pub applied: u64,
    /// An applied buffer asks for more.
    pub grown: u64,
    /// An applied buffer asks for less, and still applies (a decay or release step).
    pub decayed: u64,
    /// A buffer no longer applies: its stock is sellable again.
    pub released: u64,
}

/// The kind of one buffer change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferChangeKind {
    Applied,
    Grown,
    Decayed,
    Released,
}

impl BufferChangeKind {
    pub fn name(self) -> &'static str {
        match self {
            BufferChangeKind::Applied => "applied",
            BufferChangeKind::Grown => "grown",
            BufferChangeKind::Decayed => "decayed",
            BufferChangeKind::Released => "released",
        }
    }
}

impl BufferChanges {
    pub fn count(&mut self, kind: BufferChangeKind) {
        match kind {
            BufferChangeKind::Applied => self.applied += 1,
            BufferChangeKind::Grown => self.grown += 1,
            BufferChangeKind::Decayed => self.decayed += 1,
            BufferChangeKind::Released => self.released += 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum Reply {
    /// Nothing to say (a tick, a setting).
    #[default]
    Done,
    /// Per event of the request, in the order given.
    Events(Vec<EventResult>),
    /// The reservation after the step; `created` is true only for the reserve that granted it.
    Reservation {
        reservation: Reservation,
        created: bool,
    },
    /// Refused; nothing changed.
    Rejected(Rejection),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventResult {
    pub event_id: EventId,
    pub status: EventStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Applied,
    Duplicate,
    /// Waiting for a missing earlier `seq` of its source.
    Held,
}

/// A business refusal. Values, not errors: each has a stable code for the problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Rejection {
    /// The same id was used before with a different body.
    IdempotencyConflict {
        id: String,
    },
    /// `expected_version` did not match.
    VersionConflict {
        sku: Sku,
        location: LocationId,
        expected: u64,
        current: u64,
    },
    InsufficientStock {
        shortfalls: Vec<Shortfall>,
    },
    UnknownSku {
        sku: Sku,
    },
    UnknownLocation {
        location: LocationId,
    },
    UnknownChannel {
        channel: ChannelId,
    },
    UnknownReservation {
        reservation_id: ReservationId,
    },
    /// The step is impossible from the reservation's state (confirm after release, ...).
    InvalidReservationState {
        reservation_id: ReservationId,
        state: ReservationState,
        step: String,
    },
    /// A partial confirm named a line the reservation does not have, or more than it holds.
    InvalidConfirmLine {
        reservation_id: ReservationId,
        sku: Sku,
        detail: String,
    },
    /// Any other invalid input the edge could not check without state; `field` names it.
    Invalid {
        field: String,
        detail: String,
    },
    /// A buffer policy that is not well formed (curve, decay, selector, ...).
    InvalidPolicy {
        policy: Option<PolicyId>,
        detail: String,
    },
    /// A share outside 0-100% (a margin outside -100% to 100%).
    InvalidPercentage {
        field: String,
        value: Percent,
    },
    /// A time window, expiry or duration that ends before it starts, is over already, or is
    /// longer than allowed.
    InvalidWindow {
        field: String,
        detail: String,
    },
    /// A quantity outside what the field accepts.
    InvalidQuantity {
        field: String,
        value: i64,
    },
    InvalidChannel {
        channel: ChannelId,
        detail: String,
    },
    InvalidAllocation {
        channel: ChannelId,
        detail: String,
    },
    InvalidAttributes {
        sku: Sku,
        detail: String,
    },
    /// A surge signal with a magnitude outside what the field accepts.
    InvalidSignal {
        detail: String,
    },
    UnknownPolicy {
        policy: PolicyId,
    },
    UnknownHold {
        hold: PolicyId,
    },
    /// A policy cannot be removed while channels apply it.
    PolicyInUse {
        policy: PolicyId,
        channels: Vec<ChannelId>,
    },
    /// A list or a collection would exceed its limit.
    TooManyItems {
        field: String,
        count: u64,
        limit: u64,
    },
}

impl Rejection {
    /// The stable machine-readable code of the problem document.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::IdempotencyConflict { .. } => "idempotency_conflict",
            Rejection::VersionConflict { .. } => "version_conflict",
            Rejection::InsufficientStock { .. } => "insufficient_stock",
            Rejection::UnknownSku { .. } => "unknown_sku",
            Rejection::UnknownLocation { .. } => "unknown_location",
            Rejection::UnknownChannel { .. } => "unknown_channel",
            Rejection::UnknownReservation { .. } => "unknown_reservation",
            Rejection::InvalidReservationState { .. } => "invalid_reservation_state",
            Rejection::InvalidConfirmLine { .. } => "invalid_confirm_line",
            Rejection::Invalid { .. } => "invalid",
            Rejection::InvalidPolicy { .. } => "invalid_policy",
            Rejection::InvalidPercentage { .. } => "invalid_percentage",
            Rejection::InvalidWindow { .. } => "invalid_window",
            Rejection::InvalidQuantity { .. } => "invalid_quantity",
            Rejection::InvalidChannel { .. } => "invalid_channel",
            Rejection::InvalidAllocation { .. } => "invalid_allocation",
            Rejection::InvalidAttributes { .. } => "invalid_attributes",
            Rejection::InvalidSignal { .. } => "invalid_signal",
            Rejection::UnknownPolicy { .. } => "unknown_policy",
            Rejection::UnknownHold { .. } => "unknown_hold",
            Rejection::PolicyInUse { .. } => "policy_in_use",
            Rejection::TooManyItems { .. } => "too_many_items",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortfall {
    pub sku: Sku,
    pub location: Option<LocationId>,
    pub requested: i64,
    pub available: i64,
}

/// What caused a change, for the audit trail and incidents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    Event {
        event_id: EventId,
        source: SourceId,
        event_type: String,
    },
    /// A command; `name` is its kind (reserve, confirm, release, place_hold, ...), `id` the
    /// reservation, hold or channel it concerned.
    Command { name: String, id: String },
    /// The passing of time (a TTL, a held-event time limit, a buffer decay step).
    Time { what: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub position: Position,
    pub sku: Sku,
    pub location: Option<LocationId>,
    pub channel: Option<ChannelId>,
    pub cause: Cause,
    /// The producer (source) of an event, the actor of a command, `stockflow` for time.
    pub actor: String,
    pub reason: Option<String>,
    pub change: AuditChange,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditChange {
    /// Quantities of one SKU at one location.
    Quantities {
        before: Quantities,
        after: Quantities,
    },
    /// A buffer of one SKU (x location) on one channel: applied, grown, decayed or released.
    Buffer {
        policy: PolicyId,
        strategy: String,
        before: i64,
        after: i64,
        explanation: String,
    },
    /// What a channel may sell of a SKU (all its locations, or one when the channel is per
    /// location).
    AvailableToSell { before: i64, after: i64 },
    /// A setting (channel, SKU attributes, hold, signal, location priority) changed.
    Setting { detail: serde_json::Value },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// A physical fact drove available below zero.
    NegativeAvailable,
    /// A producer's sequence gap was given up on (held-event limit or time limit reached).
    SequenceGap,
    /// A pick or cancellation named a reservation the ledger does not know.
    UnknownReservation,
    /// A channel order could not be reserved: sold stock that did not exist.
    Oversell,
    /// A physical fact drove a state other than available (damaged, committed, incoming, ...)
    /// below zero: the ledger and the floor disagree.
    NegativeQuantity,
    /// An event held for a missing `seq` failed its `expected_version` check when its turn came;
    /// it was skipped (it had already been answered `held`, so it could not be refused).
    VersionConflict,
    /// An event of a gap already given up on (a `SequenceGap`) arrived after all: it was applied
    /// late, out of its source's order, instead of being dropped.
    LateEvent,
    /// A reservation arrived after units were picked for it (a late order webhook): those units
    /// count as picked for its lines and were not reserved again.
    PickedAhead,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub kind: IncidentKind,
    pub at: Timestamp,
    pub position: Position,
    pub sku: Option<Sku>,
    pub location: Option<LocationId>,
    pub channel: Option<ChannelId>,
    pub source: Option<SourceId>,
    /// Units missing (for negative available and oversells), or events skipped (for gaps); 0
    /// for the others.
    pub shortfall: i64,
    pub detail: String,
    pub cause: Cause,
}

/// What one channel may now sell of one SKU (at one location, for channels that are told per
/// location). The channel sync keeps only the newest per key (`position` orders them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtsChange {
    pub tenant: TenantId,
    pub channel: ChannelId,
    pub sku: Sku,
    /// Present for channels told per location (Shopify, TikTok warehouses).
    pub location: Option<LocationId>,
    pub available_to_sell: i64,
    pub withheld: i64,
    /// The journal position of the state this value was computed from.
    pub position: Position,
    /// When the input that caused the change reached stockflow: the start of the propagation
    /// latency measured at the channel's acknowledgement.
    pub caused_at: Timestamp,
}
