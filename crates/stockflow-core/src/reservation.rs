//! Reservations: the two-step pattern (provisional, then confirmed or released; then fulfilled
//! by picks, or expired when the TTL passes).

use crate::ids::{ChannelId, LocationId, ReservationId, Sku};
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationLine {
    pub sku: Sku,
    pub location: LocationId,
    /// Units granted by the reserve step.
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
