//! Units picked for a reservation before the reservation arrived ("picked ahead"): the
//! warehouse picked for an order whose channel webhook is late. The pick is a fact, so its units
//! leave available at once (an `UnknownReservation` incident says so); they are also remembered
//! per reservation id, so that when the reservation arrives its lines count them as picked
//! instead of reserving the same units a second time.
//!
//! The record is bounded: per tenant at most `LedgerConfig::picked_ahead_max` reservations (the
//! one picked first is forgotten past it), each at most [`RESERVATION_LINES_MAX`] SKU x
//! location lines, none older than `LedgerConfig::picked_ahead_max_age_micros` (forgotten at the
//! tenant's next input, with the other deadline work). A forgotten record changes nothing that
//! was applied: its reservation, if it arrives later, simply reserves its lines in full.

use super::transaction::{Origin, Transaction};
use super::{PickedAhead, PickedAheadLine};
use crate::command::{RESERVATION_LINES_MAX, ReservationLineRequest};
use crate::ids::{LocationId, ReservationId, Sku};
use crate::outcome::IncidentKind;

/// How the units picked ahead for a reservation meet the lines of its reserve request.
pub(super) struct Coverage {
    /// Per request line: the picked units it counts, by location.
    pub lines: Vec<Vec<(LocationId, i64)>>,
    /// Per record line: units counted by no request line (more picked than ordered, or a SKU
    /// x location the request does not name).
    pub unmatched: Vec<i64>,
}

impl Coverage {
    /// Units of request line `index` still to reserve.
    pub fn rest(&self, index: usize, line: &ReservationLineRequest) -> i64 {
        line.quantity - self.lines[index].iter().map(|(_, q)| q).sum::<i64>()
    }
}

/// Matches picked units to request lines: a line that names a location counts the units picked
/// there (as a pick against a known reservation's line does); then a line without one counts
/// those of its SKU at any location, in location order.
pub(super) fn cover(record: &PickedAhead, lines: &[ReservationLineRequest]) -> Coverage {
    let mut left: Vec<i64> = record.lines.iter().map(|line| line.quantity).collect();
    let mut covered: Vec<Vec<(LocationId, i64)>> = vec![Vec::new(); lines.len()];
    let fixed_first = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.location.is_some())
        .chain(
            lines
                .iter()
                .enumerate()
                .filter(|(_, line)| line.location.is_none()),
        );
    for (index, line) in fixed_first {
        let mut needed = line.quantity;
        for (picked, left) in record.lines.iter().zip(left.iter_mut()) {
            let matches = picked.sku == line.sku
                && line.location.as_ref().is_none_or(|l| *l == picked.location);
            let take = (*left).min(needed);
            if !matches || take <= 0 {
                continue;
            }
            *left -= take;
            needed -= take;
            covered[index].push((picked.location.clone(), take));
        }
    }
    Coverage {
        lines: covered,
        unmatched: left,
    }
}

impl Transaction<'_> {
    /// Remembers `quantity` of `sku` at `location` picked for `id`, a reservation not seen yet.
    /// Returns how, for the pick's incident.
    pub(super) fn remember_picked_ahead(
        &mut self,
        id: &ReservationId,
        sku: &Sku,
        location: &LocationId,
        quantity: i64,
    ) -> String {
        let limit = self.config.picked_ahead_max;
        if limit == 0 {
            return "not remembered (no picks ahead of their reservation are kept)".to_owned();
        }
        let mut note = String::new();
        let mut record = match self.tenant.picked_ahead.get(id) {
            Some(record) => record.clone(),
            None => {
                while self.tenant.picked_ahead.len() >= limit {
                    let (_, oldest) = self
                        .tenant
                        .picked_ahead_by_time
                        .first()
                        .cloned()
                        .expect("the index lists every record");
                    self.set_picked_ahead(&oldest, None);
                    note = format!(
                        " (the picks for {oldest} were forgotten: the limit of {limit} \
                         reservations picked ahead)"
                    );
                }
                PickedAhead {
                    first_picked_at: self.now,
                    lines: Vec::new(),
                }
            }
        };
        let found = record
            .lines
            .binary_search_by(|line| (&line.sku, &line.location).cmp(&(sku, location)));
        match found {
            Ok(index) => {
                let line = &mut record.lines[index];
                line.quantity = line.quantity.saturating_add(quantity);
            }
            Err(_) if record.lines.len() >= RESERVATION_LINES_MAX => {
                return format!(
                    "not remembered ({id} has picks of {RESERVATION_LINES_MAX} SKU x locations \
                     already)"
                );
            }
            Err(index) => record.lines.insert(
                index,
                PickedAheadLine {
                    sku: sku.clone(),
                    location: location.clone(),
                    quantity,
                },
            ),
        }
        self.set_picked_ahead(id, Some(record));
        format!("remembered: {id}, when it arrives, counts them as picked{note}")
    }

    /// Deadline work: forgets the records whose first pick is older than the age limit.
    pub(super) fn forget_old_picked_ahead(&mut self) {
        let max_age = self.config.picked_ahead_max_age_micros;
        let now = self.now;
        // Runs before every input: the common answer (nothing due) costs one look, no copy.
        while let Some((_, id)) = self
            .tenant
            .picked_ahead_by_time
            .first()
            .filter(|(at, _)| at.plus_micros(max_age) <= now)
        {
            let id = id.clone();
            self.set_picked_ahead(&id, None);
        }
    }

    /// Incidents saying how the units picked ahead for a new reservation were counted, one per
    /// SKU x location picked.
    pub(super) fn picked_ahead_incidents(
        &mut self,
        origin: &Origin,
        id: &ReservationId,
        record: &PickedAhead,
        coverage: &Coverage,
    ) {
        for (picked, &unmatched) in record.lines.iter().zip(&coverage.unmatched) {
            let counted = picked.quantity - unmatched;
            let (sku, location) = (&picked.sku, &picked.location);
            let mut detail = format!(
                "reservation {id} arrived after {} of {sku} at {location} were picked for it: ",
                picked.quantity
            );
            if counted > 0 {
                detail.push_str(&format!("{counted} counted as picked, not reserved again"));
            }
            if unmatched > 0 {
                if counted > 0 {
                    detail.push_str("; ");
                }
                detail.push_str(&format!(
                    "{unmatched} beyond what its lines order there (they stay picked)"
                ));
            }
            self.incident(
                origin,
                IncidentKind::PickedAhead,
                Some(sku),
                Some(location),
                0,
                detail,
            );
        }
    }
}
