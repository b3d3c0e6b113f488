//! The ledger: the state machine that applies envelopes (events, commands, ticks) to the stock
//! of every tenant x SKU x location, with exactly-once ordered ingestion and two-step
//! reservations. Pure and deterministic: the same envelopes give the same state, byte for byte.

use crate::availability::{Availability, ChannelAvailability, SkuStock};
use crate::envelope::Envelope;
use crate::ids::{ReservationId, Sku, TenantId};
use crate::outcome::Outcome;
use crate::reservation::Reservation;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Limits and time limits of the ledger. Not journaled: part of the configuration a journal is
/// replayed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerConfig {
    /// The most events held per source while waiting for a missing `seq`.
    pub held_events_per_source_max: usize,
    /// How long a held event waits for its gap to fill before the gap is given up on.
    pub held_timeout_micros: i64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            held_events_per_source_max: 1000,
            held_timeout_micros: 30 * 1_000_000,
        }
    }
}

/// The whole state. Serialisable for snapshots.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Ledger {
    pub tenants: BTreeMap<TenantId, TenantLedger>,
}

/// The state of one tenant.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TenantLedger {
    /// Stock per SKU, per location.
    pub stock: BTreeMap<Sku, SkuStock>,
    pub reservations: BTreeMap<ReservationId, Reservation>,
    pub availability: Availability,
}

/// What `GET /v1/skus/{sku}` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkuView {
    pub sku: Sku,
    pub stock: SkuStock,
    pub channels: Vec<ChannelAvailability>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one envelope. `envelope.recorded_at` is "now"; deadlines that passed by then
    /// (reservation TTLs, held-event time limits, buffer steps) are handled first.
    pub fn apply(&mut self, _config: &LedgerConfig, _envelope: &Envelope) -> Outcome {
        todo!("ledger state machine")
    }

    /// The view of `sku` as of `now` (buffers depend on time).
    pub fn sku_view(&self, tenant: &TenantId, sku: &Sku, now: Timestamp) -> Option<SkuView> {
        let tenant = self.tenants.get(tenant)?;
        let stock = tenant.stock.get(sku)?;
        Some(SkuView {
            sku: sku.clone(),
            stock: stock.clone(),
            channels: tenant.availability.explain(sku, stock, now),
        })
    }

    pub fn reservation(&self, tenant: &TenantId, id: &ReservationId) -> Option<&Reservation> {
        self.tenants.get(tenant)?.reservations.get(id)
    }

    /// The earliest instant at which time alone changes the state; the writer sends a tick then.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        None
    }
}
