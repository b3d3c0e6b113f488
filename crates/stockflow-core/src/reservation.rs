//! Reservations: the two-step pattern (provisional, then confirmed or released; then fulfilled
//! by picks, or expired when the TTL passes).

use crate::ids::{ChannelId, LocationId, ReservationId, Sku};
use crate::quantity::QuantityState;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    Provisional,
    Confirmed,
    Fulfilled,
    Released,
    Expired,
}

impl ReservationState {
    pub fn name(self) -> &'static str {
        match self {
            ReservationState::Provisional => "provisional",
            ReservationState::Confirmed => "confirmed",
            ReservationState::Fulfilled => "fulfilled",
            ReservationState::Released => "released",
            ReservationState::Expired => "expired",
        }
    }

    /// Whether the reservation still holds stock.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ReservationState::Provisional | ReservationState::Confirmed
        )
    }

    /// Where the held units of a reservation in this state are counted (`reserved` while
    /// provisional, `committed` once confirmed); None once resolved.
    pub fn held_state(self) -> Option<QuantityState> {
        match self {
            ReservationState::Provisional => Some(QuantityState::Reserved),
            ReservationState::Confirmed => Some(QuantityState::Committed),
            ReservationState::Fulfilled
            | ReservationState::Released
            | ReservationState::Expired => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationLine {
    pub sku: Sku,
    pub location: LocationId,
    /// Units granted by the reserve step, those picked for the reservation before it arrived
    /// included (they are `picked` from the start and were never held).
    pub quantity: i64,
    /// Units moved to committed by the confirm step (0 while provisional).
    pub confirmed: i64,
    /// Units picked against this line.
    pub picked: i64,
    /// Units still held by the line (in `reserved` while provisional, in `committed` once
    /// confirmed); 0 once the reservation is resolved.
    pub held: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub reservation_id: ReservationId,
    pub channel: Option<ChannelId>,
    pub state: ReservationState,
    pub lines: Vec<ReservationLine>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// When the reservation left the open states, and why (released, cancelled, expired, picked).
    pub resolved_at: Option<Timestamp>,
    pub resolution_reason: Option<String>,
    /// Fingerprint of the reserve request, so that a repeat answers the same reservation and a
    /// different request under the same id is a conflict.
    pub request_fingerprint: [u8; 16],
}

impl Reservation {
    /// A cancellation that arrived before its reservation: released, without lines. A later
    /// reserve under the same id answers it and grants nothing.
    pub fn is_tombstone(&self) -> bool {
        self.lines.is_empty()
    }

    /// Whether a line of `sku` at `location` still holds units.
    pub fn holds(&self, sku: &Sku, location: &LocationId) -> bool {
        self.lines
            .iter()
            .any(|line| line.sku == *sku && line.location == *location && line.held > 0)
    }

    /// Units held by all lines.
    pub fn held_total(&self) -> i64 {
        self.lines.iter().map(|line| line.held).sum()
    }
}
