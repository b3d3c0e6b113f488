//! Commands: requests that may be refused (imperative). Reservations and ledger settings here;
//! channel, buffer and signal commands in [`crate::availability::AvailabilityCommand`].

use crate::availability::AvailabilityCommand;
use crate::ids::{ChannelId, LocationId, ReservationId, Sku};
use serde::{Deserialize, Serialize};

/// The most lines one reservation may have.
pub const RESERVATION_LINES_MAX: usize = 100;
/// The longest a provisional reservation may live before it expires.
pub const RESERVATION_TTL_SECONDS_MAX: u32 = 30 * 24 * 3600;
/// The most locations a tenant's location priority list may name.
pub const LOCATION_PRIORITY_MAX: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Ledger(LedgerCommand),
    Availability(AvailabilityCommand),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerCommand {
    /// Provisionally hold stock for an order or cart: all lines or none.
    Reserve(Reserve),
    /// Confirm a provisional reservation, in full (`lines` absent) or in part (the unconfirmed
    /// rest returns to available).
    Confirm {
        reservation_id: ReservationId,
        lines: Option<Vec<ReservationLineRequest>>,
    },
    /// Give the stock of a provisional or confirmed reservation back to available.
    Release {
        reservation_id: ReservationId,
        reason: Option<String>,
    },
    /// The order in which locations are tried for a reservation line without a location, for
    /// reservations whose channel does not configure its own.
    SetLocationPriority { locations: Vec<LocationId> },
    /// A channel's order, heard by webhook: a reserve for units the channel has already sold.
    /// Refused for insufficient stock, it is an oversell rather than a plain refusal: one
    /// incident per short SKU (channel, SKU, shortfall) is recorded and the reservation id is
    /// kept as a tombstone (released, no lines), so that a retry of the same order neither
    /// grants stock nor records the incident again. Other refusals are those of `Reserve`.
    ReserveOrder(Reserve),
    /// A channel cancelled an order: `Release`, except that an order not seen yet leaves a
    /// tombstone (as a `cancelled` event does), so that the order, when it arrives, grants
    /// nothing. Channels deliver webhooks out of order.
    CancelOrder {
        reservation_id: ReservationId,
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reserve {
    pub reservation_id: ReservationId,
    pub channel: Option<ChannelId>,
    pub lines: Vec<ReservationLineRequest>,
    pub ttl_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationLineRequest {
    pub sku: Sku,
    /// Absent: chosen from the channel's (or the tenant's) location priority.
    pub location: Option<LocationId>,
    pub quantity: i64,
}
