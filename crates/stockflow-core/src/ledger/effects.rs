//! What each event type does (DESIGN.md section 2, and the doc comments of
//! [`crate::event::EventKind`]). Physical facts are never refused: only a failed
//! `expected_version` check refuses, and it does so before anything changes.

use super::transaction::{DemandKind, Origin, Transaction};
use crate::event::{Event, EventKind};
use crate::ids::{LocationId, ReservationId, Sku};
use crate::outcome::{IncidentKind, Rejection};
use crate::quantity::QuantityState;

impl Transaction<'_> {
    pub(super) fn apply_effects(
        &mut self,
        event: &Event,
        origin: &Origin,
    ) -> Result<(), Rejection> {
        match &event.kind {
            EventKind::Received {
                sku,
                location,
                quantity,
                to,
            } => {
                let (quantity, to) = (*quantity, *to);
                self.change_stock(origin, sku, location, |q| {
                    q.add(to, quantity);
                    // Arriving stock is no longer on its way (as far as it was expected).
                    let arrived = q.incoming.clamp(0, quantity);
                    q.incoming -= arrived;
                });
            }
            EventKind::Picked {
                sku,
                location,
                quantity,
                reservation_id,
            } => self.pick(origin, sku, location, *quantity, reservation_id.as_ref()),
            EventKind::Returned {
                sku,
                location,
                quantity,
                condition,
            } => {
                let (quantity, state) = (*quantity, condition.state());
                self.change_stock(origin, sku, location, |q| q.add(state, quantity));
            }
            EventKind::Adjusted {
                sku,
                location,
                delta,
                expected_version,
            } => {
                self.check_version(sku, location, *expected_version)?;
                let delta = *delta;
                self.change_stock(origin, sku, location, |q| {
                    q.add(QuantityState::Available, delta)
                });
            }
            EventKind::Counted {
                sku,
                location,
                counted,
                expected_version,
            } => {
                self.check_version(sku, location, *expected_version)?;
                let counted = *counted;
                self.change_stock(origin, sku, location, |q| {
                    q.add(QuantityState::Available, counted - q.on_hand)
                });
            }
            EventKind::Moved {
                sku,
                location,
                quantity,
                from,
                to,
            } => {
                let (quantity, from, to) = (*quantity, *from, *to);
                self.change_stock(origin, sku, location, |q| {
                    q.move_between(from, to, quantity)
                });
            }
            EventKind::Transferred {
                sku,
                location,
                to_location,
                quantity,
            } => {
                let quantity = *quantity;
                self.change_stock(origin, sku, location, |q| {
                    q.add(QuantityState::Available, -quantity)
                });
                self.change_stock(origin, sku, to_location, |q| {
                    q.add(QuantityState::Incoming, quantity)
                });
            }
            EventKind::Cancelled {
                reservation_id,
                sku,
                quantity,
            } => self.cancel(origin, reservation_id, sku.as_ref(), *quantity),
        }
        Ok(())
    }

    fn check_version(
        &self,
        sku: &Sku,
        location: &LocationId,
        expected: Option<u64>,
    ) -> Result<(), Rejection> {
        let Some(expected) = expected else {
            return Ok(());
        };
        let current = self
            .tenant
            .stock
            .get(sku)
            .and_then(|stock| stock.get(location))
            .map_or(0, |q| q.version);
        if expected == current {
            return Ok(());
        }
        Err(Rejection::VersionConflict {
            sku: sku.clone(),
            location: location.clone(),
            expected,
            current,
        })
    }

    /// A pick takes from the held units of the named reservation's lines for this SKU and
    /// location, and the rest from available. A pick for a reservation not seen yet takes from
    /// available and is remembered for it (`picked_ahead.rs`).
    fn pick(
        &mut self,
        origin: &Origin,
        sku: &Sku,
        location: &LocationId,
        quantity: i64,
        reservation_id: Option<&ReservationId>,
    ) {
        let mut from_held = 0;
        let mut held_state = QuantityState::Committed;
        let mut channel = None;
        if let Some(id) = reservation_id {
            match self.tenant.reservations.get(id) {
                None => {
                    // Picked ahead of its reservation (a late order webhook), or for one that
                    // never comes: from available either way, and remembered for the first case.
                    let remembered = self.remember_picked_ahead(id, sku, location, quantity);
                    let detail = format!(
                        "picked {quantity} for reservation {id}, which is unknown; taken from \
                         available and {remembered}"
                    );
                    self.incident(
                        origin,
                        IncidentKind::UnknownReservation,
                        Some(sku),
                        Some(location),
                        0,
                        detail,
                    );
                }
                Some(reservation) => {
                    channel = reservation.channel.clone();
                    if let Some(state) = reservation.state.held_state()
                        && reservation.holds(sku, location)
                    {
                        held_state = state;
                        from_held = self.pick_from_reservation(id, sku, location, quantity);
                    }
                }
            }
        }
        let from_available = quantity - from_held;
        self.change_stock(origin, sku, location, |q| {
            q.add(held_state, -from_held);
            q.add(QuantityState::Available, -from_available);
        });
        // Units taken from a reservation were counted as demand when it was granted.
        self.record_demand(
            DemandKind::PickedFromAvailable,
            sku,
            channel.as_ref(),
            from_available,
        );
        self.record_demand(DemandKind::Picked, sku, None, quantity);
    }
}
