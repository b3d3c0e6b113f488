//! Two-step reservations: reserve (provisional, all lines or none), confirm (full or partial),
//! release, expire (time), and the reservation side of `picked` and `cancelled` events.

use super::TenantLedger;
use super::fingerprint::reserve_fingerprint;
use super::picked_ahead::{self, Coverage};
use super::transaction::{DemandKind, Origin, StateDeltas, Transaction};
use super::validate;
use crate::command::{ReservationLineRequest, Reserve};
use crate::ids::{ActorId, ChannelId, LocationId, ReservationId, Sku};
use crate::outcome::{IncidentKind, Rejection, Reply, Shortfall};
use crate::quantity::QuantityState;
use crate::reservation::{Reservation, ReservationLine, ReservationState};
use std::collections::{BTreeMap, BTreeSet};

fn answer(reservation: &Reservation, created: bool) -> Reply {
    Reply::Reservation {
        reservation: reservation.clone(),
        created,
    }
}

impl Transaction<'_> {
    pub(super) fn reserve(
        &mut self,
        actor: &ActorId,
        request: &Reserve,
    ) -> Result<Reply, Rejection> {
        validate::reserve(request)?;
        let id = &request.reservation_id;
        let fingerprint = reserve_fingerprint(request);
        if let Some(existing) = self.tenant.reservations.get(id) {
            if existing.is_tombstone() || existing.request_fingerprint == fingerprint.0 {
                return Ok(answer(existing, false));
            }
            return Err(Rejection::IdempotencyConflict { id: id.to_string() });
        }
        // Units picked for this reservation before it arrived count as picked: only the rest
        // of each line is reserved.
        let picked_ahead = self.tenant.picked_ahead.get(id).cloned();
        let (lines, coverage) = match &picked_ahead {
            None => (plan(self.tenant, request)?, None),
            Some(record) => {
                let coverage = picked_ahead::cover(record, &request.lines);
                (plan_rest(self.tenant, request, &coverage)?, Some(coverage))
            }
        };
        let origin = Origin::command(
            "reserve",
            id.as_str(),
            actor.as_str(),
            None,
            request.channel.clone(),
        );
        let mut deltas: BTreeMap<(Sku, LocationId), StateDeltas> = BTreeMap::new();
        for line in lines.iter().filter(|line| line.held > 0) {
            let key = (line.sku.clone(), line.location.clone());
            let delta = deltas.entry(key).or_default();
            delta.add(QuantityState::Available, -line.held);
            delta.add(QuantityState::Reserved, line.held);
        }
        for ((sku, location), delta) in deltas {
            self.change_stock_by(&origin, &sku, &location, delta);
        }
        for line in &lines {
            let channel = request.channel.as_ref();
            self.record_demand(DemandKind::Reserved, &line.sku, channel, line.held);
        }
        if let (Some(record), Some(coverage)) = (&picked_ahead, &coverage) {
            self.picked_ahead_incidents(&origin, id, record, coverage);
        }
        // Picked ahead in full: nothing to hold, the order is done.
        let fulfilled = lines.iter().all(|line| line.held == 0);
        let reservation = Reservation {
            reservation_id: id.clone(),
            channel: request.channel.clone(),
            state: if fulfilled {
                ReservationState::Fulfilled
            } else {
                ReservationState::Provisional
            },
            lines,
            created_at: self.now,
            expires_at: self.now.plus_seconds(i64::from(request.ttl_seconds)),
            resolved_at: fulfilled.then_some(self.now),
            resolution_reason: fulfilled.then(|| "picked before it was reserved".to_owned()),
            request_fingerprint: fingerprint.0,
        };
        let reply = answer(&reservation, true);
        self.insert_reservation(reservation);
        Ok(reply)
    }

    pub(super) fn confirm(
        &mut self,
        actor: &ActorId,
        id: &ReservationId,
        lines: Option<&[ReservationLineRequest]>,
    ) -> Result<Reply, Rejection> {
        if let Some(lines) = lines {
            validate::confirm_lines(lines)?;
        }
        let reservation = self.known(id)?;
        match reservation.state {
            ReservationState::Provisional => {}
            // Resolving is idempotent: a repeat answers the reservation as it is.
            ReservationState::Confirmed => return Ok(answer(reservation, false)),
            state => return Err(invalid_state(id, state, "confirm")),
        }
        let confirmed = match lines {
            None => reservation.lines.iter().map(|line| line.held).collect(),
            Some(requested) => partial_confirmation(reservation, requested)?,
        };
        if confirmed.iter().sum::<i64>() == 0 {
            return Err(Rejection::Invalid {
                field: "lines".to_owned(),
                detail: "a confirm must keep at least one unit; release the reservation instead"
                    .to_owned(),
            });
        }
        let origin = Origin::command(
            "confirm",
            id.as_str(),
            actor.as_str(),
            None,
            reservation.channel.clone(),
        );
        let reservation = self.reservation_mut(id).expect("known above");
        let mut deltas: BTreeMap<(Sku, LocationId), StateDeltas> = BTreeMap::new();
        for (line, &confirm) in reservation.lines.iter_mut().zip(&confirmed) {
            let delta = deltas
                .entry((line.sku.clone(), line.location.clone()))
                .or_default();
            delta.add(QuantityState::Reserved, -line.held);
            delta.add(QuantityState::Committed, confirm);
            delta.add(QuantityState::Available, line.held - confirm);
            line.confirmed = confirm;
            line.held = confirm;
        }
        reservation.state = ReservationState::Confirmed;
        let expires_at = reservation.expires_at;
        self.expiry_remove(expires_at, id);
        for ((sku, location), delta) in deltas {
            self.change_stock_by(&origin, &sku, &location, delta);
        }
        Ok(answer(&self.tenant.reservations[id], false))
    }

    pub(super) fn release(
        &mut self,
        actor: &ActorId,
        id: &ReservationId,
        reason: Option<&str>,
    ) -> Result<Reply, Rejection> {
        validate::text("reason", reason)?;
        let reservation = self.known(id)?;
        match reservation.state {
            ReservationState::Provisional | ReservationState::Confirmed => {}
            // Already free: a repeat, or the TTL passed first.
            ReservationState::Released | ReservationState::Expired => {
                return Ok(answer(reservation, false));
            }
            state => return Err(invalid_state(id, state, "release")),
        }
        let reason = reason.unwrap_or("released");
        let origin = Origin::command(
            "release",
            id.as_str(),
            actor.as_str(),
            Some(reason),
            reservation.channel.clone(),
        );
        self.release_all(&origin, id, ReservationState::Released, reason);
        Ok(answer(&self.tenant.reservations[id], false))
    }

    /// A channel's order: a reserve whose refusal for insufficient stock is an oversell. The
    /// incidents and the tombstone are changes, so the envelope is journaled beside the
    /// `Rejected` reply (a replay refuses it again and records the same).
    pub(super) fn reserve_order(
        &mut self,
        actor: &ActorId,
        request: &Reserve,
    ) -> Result<Reply, Rejection> {
        match self.reserve(actor, request) {
            Err(Rejection::InsufficientStock { shortfalls }) => {
                self.oversold(actor, request, &shortfalls);
                Ok(Reply::Rejected(Rejection::InsufficientStock { shortfalls }))
            }
            other => other,
        }
    }

    fn oversold(&mut self, actor: &ActorId, request: &Reserve, shortfalls: &[Shortfall]) {
        let id = &request.reservation_id;
        debug_assert!(!self.tenant.reservations.contains_key(id));
        let origin = Origin::command(
            "reserve_order",
            id.as_str(),
            actor.as_str(),
            Some("oversold"),
            request.channel.clone(),
        );
        for shortfall in shortfalls {
            let missing = shortfall.requested - shortfall.available;
            assert!(missing > 0, "a shortfall misses at least one unit");
            let channel = request
                .channel
                .as_ref()
                .map_or(String::new(), |c| format!(" on {c}"));
            let detail = format!(
                "order {id}{channel}: {} of {} sold, {} available",
                shortfall.requested, shortfall.sku, shortfall.available
            );
            self.incident(
                &origin,
                IncidentKind::Oversell,
                Some(&shortfall.sku),
                shortfall.location.as_ref(),
                missing,
                detail,
            );
        }
        self.insert_reservation(Reservation {
            reservation_id: id.clone(),
            channel: request.channel.clone(),
            state: ReservationState::Released,
            lines: Vec::new(),
            created_at: self.now,
            expires_at: self.now,
            resolved_at: Some(self.now),
            resolution_reason: Some("oversold: not enough stock when the order arrived".to_owned()),
            request_fingerprint: reserve_fingerprint(request).0,
        });
    }

    /// A channel cancelled an order: released if known; a tombstone if not seen yet.
    pub(super) fn cancel_order(
        &mut self,
        actor: &ActorId,
        id: &ReservationId,
        reason: Option<&str>,
    ) -> Result<Reply, Rejection> {
        if self.tenant.reservations.contains_key(id) {
            return self.release(actor, id, reason);
        }
        validate::text("reason", reason)?;
        let reason = reason.unwrap_or("cancelled before it was reserved");
        self.insert_reservation(Reservation {
            reservation_id: id.clone(),
            channel: None,
            state: ReservationState::Released,
            lines: Vec::new(),
            created_at: self.now,
            expires_at: self.now,
            resolved_at: Some(self.now),
            resolution_reason: Some(reason.to_owned()),
            request_fingerprint: [0; 16],
        });
        Ok(answer(&self.tenant.reservations[id], false))
    }

    /// Deadline work: the TTL of a provisional reservation passed.
    pub(super) fn expire(&mut self, id: &ReservationId) {
        let reservation = &self.tenant.reservations[id];
        assert_eq!(
            reservation.state,
            ReservationState::Provisional,
            "only provisional reservations are in the expiry index"
        );
        let mut origin = Origin::time("reservation_ttl", "expired");
        origin.channel = reservation.channel.clone();
        self.release_all(&origin, id, ReservationState::Expired, "expired");
    }

    /// A `cancelled` event: the whole reservation (no SKU) or some units of one SKU's lines
    /// return to available. A whole cancellation of a reservation not seen yet leaves a
    /// tombstone, so that the reservation, when it arrives, grants nothing.
    pub(super) fn cancel(
        &mut self,
        origin: &Origin,
        id: &ReservationId,
        sku: Option<&Sku>,
        quantity: Option<i64>,
    ) {
        let Some(reservation) = self.tenant.reservations.get(id) else {
            self.cancel_unknown(origin, id, sku);
            return;
        };
        if !reservation.state.is_open() {
            return;
        }
        let mut left = quantity.unwrap_or(i64::MAX);
        let returned: Vec<i64> = reservation
            .lines
            .iter()
            .map(|line| match sku {
                None => line.held,
                Some(sku) if line.sku == *sku => {
                    let take = line.held.min(left);
                    left -= take;
                    take
                }
                Some(_) => 0,
            })
            .collect();
        if returned.iter().all(|&units| units == 0) {
            return;
        }
        let origin = Origin {
            channel: reservation.channel.clone(),
            ..origin.clone()
        };
        self.return_held(&origin, id, &returned);
        let reservation = &self.tenant.reservations[id];
        if reservation.held_total() == 0 {
            // Picked in part and cancelled for the rest: the order is done.
            let state = if reservation.lines.iter().any(|line| line.picked > 0) {
                ReservationState::Fulfilled
            } else {
                ReservationState::Released
            };
            let reason = origin.reason().unwrap_or_else(|| "cancelled".to_owned());
            self.resolve(id, state, &reason);
        }
    }

    fn cancel_unknown(&mut self, origin: &Origin, id: &ReservationId, sku: Option<&Sku>) {
        let detail = match sku {
            None => format!("cancellation of reservation {id}, not seen yet: kept as a tombstone"),
            Some(sku) => {
                format!("cancellation of the {sku} line of reservation {id}, not seen yet: ignored")
            }
        };
        self.incident(
            origin,
            IncidentKind::UnknownReservation,
            sku,
            None,
            0,
            detail,
        );
        if sku.is_some() {
            return;
        }
        let reason = origin
            .reason()
            .unwrap_or_else(|| "cancelled before it was reserved".to_owned());
        self.insert_reservation(Reservation {
            reservation_id: id.clone(),
            channel: None,
            state: ReservationState::Released,
            lines: Vec::new(),
            created_at: self.now,
            expires_at: self.now,
            resolved_at: Some(self.now),
            resolution_reason: Some(reason),
            request_fingerprint: [0; 16],
        });
    }

    /// Takes up to `quantity` picked units of `sku` at `location` from the held units of an
    /// open reservation's lines; returns how many it took. The stock change is the caller's.
    pub(super) fn pick_from_reservation(
        &mut self,
        id: &ReservationId,
        sku: &Sku,
        location: &LocationId,
        quantity: i64,
    ) -> i64 {
        let now = self.now;
        let reservation = self.reservation_mut(id).expect("the caller found it");
        let mut left = quantity;
        for line in reservation.lines.iter_mut() {
            if line.sku == *sku && line.location == *location {
                let take = line.held.min(left);
                line.held -= take;
                line.picked += take;
                left -= take;
            }
        }
        if reservation.held_total() == 0 {
            let expires_at = reservation.expires_at;
            let was_provisional = reservation.state == ReservationState::Provisional;
            reservation.state = ReservationState::Fulfilled;
            reservation.resolved_at = Some(now);
            reservation.resolution_reason = Some("picked".to_owned());
            if was_provisional {
                self.expiry_remove(expires_at, id);
            }
        }
        quantity - left
    }

    fn known(&self, id: &ReservationId) -> Result<&Reservation, Rejection> {
        self.tenant
            .reservations
            .get(id)
            .ok_or_else(|| Rejection::UnknownReservation {
                reservation_id: id.clone(),
            })
    }

    fn release_all(
        &mut self,
        origin: &Origin,
        id: &ReservationId,
        state: ReservationState,
        reason: &str,
    ) {
        let returned: Vec<i64> = self.tenant.reservations[id]
            .lines
            .iter()
            .map(|line| line.held)
            .collect();
        self.return_held(origin, id, &returned);
        self.resolve(id, state, reason);
    }

    /// Moves `returned[i]` held units of line `i` back to available, one stock change per SKU x
    /// location.
    fn return_held(&mut self, origin: &Origin, id: &ReservationId, returned: &[i64]) {
        let reservation = &self.tenant.reservations[id];
        let given_back: Vec<(Sku, ChannelId, i64)> = match &reservation.channel {
            Some(channel) => reservation
                .lines
                .iter()
                .zip(returned)
                .map(|(line, &units)| (line.sku.clone(), channel.clone(), units))
                .collect(),
            None => Vec::new(),
        };
        for (sku, channel, units) in given_back {
            self.record_demand(DemandKind::Returned, &sku, Some(&channel), units);
        }
        let reservation = self.reservation_mut(id).expect("an open reservation");
        let held_state = reservation
            .state
            .held_state()
            .expect("only open reservations hold units");
        let mut deltas: BTreeMap<(Sku, LocationId), StateDeltas> = BTreeMap::new();
        for (line, &units) in reservation.lines.iter_mut().zip(returned) {
            if units == 0 {
                continue;
            }
            debug_assert!(units <= line.held);
            line.held -= units;
            let delta = deltas
                .entry((line.sku.clone(), line.location.clone()))
                .or_default();
            delta.add(held_state, -units);
            delta.add(QuantityState::Available, units);
        }
        for ((sku, location), delta) in deltas {
            self.change_stock_by(origin, &sku, &location, delta);
        }
    }

    fn resolve(&mut self, id: &ReservationId, state: ReservationState, reason: &str) {
        let now = self.now;
        let reservation = self.reservation_mut(id).expect("a known reservation");
        let expires_at = reservation.expires_at;
        let was_provisional = reservation.state == ReservationState::Provisional;
        reservation.state = state;
        reservation.resolved_at = Some(now);
        reservation.resolution_reason = Some(reason.to_owned());
        if was_provisional {
            self.expiry_remove(expires_at, id);
        }
    }
}

fn invalid_state(id: &ReservationId, state: ReservationState, step: &str) -> Rejection {
    Rejection::InvalidReservationState {
        reservation_id: id.clone(),
        state,
        step: step.to_owned(),
    }
}

/// How many held units each line confirms, for a partial confirm. A request line without a
/// location spreads over the SKU's lines in order.
fn partial_confirmation(
    reservation: &Reservation,
    requested: &[ReservationLineRequest],
) -> Result<Vec<i64>, Rejection> {
    let mut confirmed = vec![0i64; reservation.lines.len()];
    for request in requested {
        let matching: Vec<usize> = (0..reservation.lines.len())
            .filter(|&i| {
                let line = &reservation.lines[i];
                line.sku == request.sku
                    && request
                        .location
                        .as_ref()
                        .is_none_or(|l| *l == line.location)
            })
            .collect();
        let invalid = |detail: String| Rejection::InvalidConfirmLine {
            reservation_id: reservation.reservation_id.clone(),
            sku: request.sku.clone(),
            detail,
        };
        let place = request
            .location
            .as_ref()
            .map_or(String::new(), |l| format!(" at {l}"));
        if matching.is_empty() {
            return Err(invalid(format!(
                "the reservation has no line of {}{place}",
                request.sku
            )));
        }
        let capacity: i64 = matching
            .iter()
            .map(|&i| reservation.lines[i].held - confirmed[i])
            .sum();
        if request.quantity > capacity {
            return Err(invalid(format!(
                "confirms {} of {}{place}, but the reservation holds {capacity} there",
                request.quantity, request.sku
            )));
        }
        let mut left = request.quantity;
        for i in matching {
            let take = (reservation.lines[i].held - confirmed[i]).min(left);
            confirmed[i] += take;
            left -= take;
        }
    }
    Ok(confirmed)
}

/// The lines of a reservation some of whose units were picked before it arrived: the rest of
/// each request line is planned as usual; the picked units join the planned line at their
/// location, or form a line of their own that holds nothing.
fn plan_rest(
    tenant: &TenantLedger,
    request: &Reserve,
    coverage: &Coverage,
) -> Result<Vec<ReservationLine>, Rejection> {
    let mut rest = Reserve {
        reservation_id: request.reservation_id.clone(),
        channel: request.channel.clone(),
        lines: Vec::new(),
        ttl_seconds: request.ttl_seconds,
    };
    for (index, line) in request.lines.iter().enumerate() {
        let quantity = coverage.rest(index, line);
        if quantity > 0 {
            rest.lines.push(ReservationLineRequest {
                quantity,
                ..line.clone()
            });
        }
    }
    let mut planned = if rest.lines.is_empty() {
        Vec::new()
    } else {
        plan_parts(tenant, &rest)?
    }
    .into_iter()
    .zip(&rest.lines);
    let mut lines = Vec::new();
    for (index, line) in request.lines.iter().enumerate() {
        let mut parts: Vec<ReservationLine> = if coverage.rest(index, line) > 0 {
            let (parts, rest_line) = planned.next().expect("one plan per line with a rest");
            held_lines(rest_line, parts).collect()
        } else {
            Vec::new()
        };
        for (location, picked) in &coverage.lines[index] {
            match parts.iter_mut().find(|part| part.location == *location) {
                Some(part) => {
                    part.quantity += picked;
                    part.picked += picked;
                }
                None => parts.push(ReservationLine {
                    sku: line.sku.clone(),
                    location: location.clone(),
                    quantity: *picked,
                    confirmed: 0,
                    picked: *picked,
                    held: 0,
                }),
            }
        }
        lines.append(&mut parts);
    }
    Ok(lines)
}

/// Where the lines of a reserve request are taken from, all or nothing.
fn plan(tenant: &TenantLedger, request: &Reserve) -> Result<Vec<ReservationLine>, Rejection> {
    Ok(plan_parts(tenant, request)?
        .into_iter()
        .zip(&request.lines)
        .flat_map(|(parts, line)| held_lines(line, parts))
        .collect())
}

/// The reservation lines that hold the parts of one request line.
fn held_lines<'a>(
    line: &'a ReservationLineRequest,
    parts: Vec<(&'a LocationId, i64)>,
) -> impl Iterator<Item = ReservationLine> + 'a {
    parts
        .into_iter()
        .map(|(location, quantity)| ReservationLine {
            sku: line.sku.clone(),
            location: location.clone(),
            quantity,
            confirmed: 0,
            picked: 0,
            held: quantity,
        })
}

/// Per request line, where its units are taken from (location, quantity), all lines or none.
///
/// Lines that name a location are accounted first (together per SKU x location); then each line
/// without one takes the first location, in priority order, that can fill it whole, or else is
/// split across locations in that order.
fn plan_parts<'t>(
    tenant: &'t TenantLedger,
    request: &'t Reserve,
) -> Result<Vec<Vec<(&'t LocationId, i64)>>, Rejection> {
    for line in &request.lines {
        if !tenant.stock.contains_key(&line.sku) {
            return Err(Rejection::UnknownSku {
                sku: line.sku.clone(),
            });
        }
        if let Some(location) = &line.location
            && !tenant.locations.contains(location)
        {
            return Err(Rejection::UnknownLocation {
                location: location.clone(),
            });
        }
    }
    let mut planner = Planner {
        tenant,
        remaining: BTreeMap::new(),
        shortfalls: Vec::new(),
    };
    let fixed = planner.fixed_lines(&request.lines);
    let mut granted: Vec<Vec<(&LocationId, i64)>> = vec![Vec::new(); request.lines.len()];
    let mut failed: Vec<&Sku> = Vec::new();
    for (index, line) in request.lines.iter().enumerate() {
        match &line.location {
            Some(location) => granted[index].push((location, line.quantity)),
            None => {
                let candidates = candidate_locations(tenant, request.channel.as_ref(), &line.sku);
                match planner.flexible_line(&line.sku, line.quantity, &candidates) {
                    Some(parts) => granted[index] = parts,
                    None if !failed.contains(&&line.sku) => failed.push(&line.sku),
                    None => {}
                }
            }
        }
    }
    for sku in failed {
        planner.flexible_shortfall(request, &fixed, sku);
    }
    if !planner.shortfalls.is_empty() {
        return Err(Rejection::InsufficientStock {
            shortfalls: planner.shortfalls,
        });
    }
    Ok(granted)
}

struct Planner<'t> {
    tenant: &'t TenantLedger,
    /// Units still free per SKU x location after the lines planned so far.
    remaining: BTreeMap<(&'t Sku, &'t LocationId), i64>,
    shortfalls: Vec<Shortfall>,
}

impl<'t> Planner<'t> {
    /// What a reservation may take at `location`: available, never less than zero.
    fn usable(&self, sku: &Sku, location: &LocationId) -> i64 {
        self.tenant
            .stock
            .get(sku)
            .and_then(|stock| stock.get(location))
            .map_or(0, |q| q.available().max(0))
    }

    fn remaining(&mut self, sku: &'t Sku, location: &'t LocationId) -> &mut i64 {
        let usable = self.usable(sku, location);
        self.remaining.entry((sku, location)).or_insert(usable)
    }

    /// Accounts the lines that name a location, together per SKU x location; returns what they
    /// requested per key.
    fn fixed_lines(
        &mut self,
        lines: &'t [ReservationLineRequest],
    ) -> Vec<((&'t Sku, &'t LocationId), i64)> {
        let mut requested: Vec<((&'t Sku, &'t LocationId), i64)> = Vec::new();
        for line in lines {
            let Some(location) = &line.location else {
                continue;
            };
            let key = (&line.sku, location);
            match requested.iter_mut().find(|(k, _)| *k == key) {
                Some((_, sum)) => *sum += line.quantity,
                None => requested.push((key, line.quantity)),
            }
        }
        for &((sku, location), quantity) in &requested {
            let available = self.usable(sku, location);
            if quantity > available {
                self.shortfalls.push(Shortfall {
                    sku: sku.clone(),
                    location: Some(location.clone()),
                    requested: quantity,
                    available,
                });
            }
            *self.remaining(sku, location) -= quantity;
        }
        requested
    }

    /// Places one line without a location; None when the candidates cannot fill it.
    fn flexible_line(
        &mut self,
        sku: &'t Sku,
        quantity: i64,
        candidates: &[&'t LocationId],
    ) -> Option<Vec<(&'t LocationId, i64)>> {
        for &location in candidates {
            let remaining = self.remaining(sku, location);
            if *remaining >= quantity {
                *remaining -= quantity;
                return Some(vec![(location, quantity)]);
            }
        }
        let mut parts = Vec::new();
        let mut left = quantity;
        for &location in candidates {
            let remaining = self.remaining(sku, location);
            let take = (*remaining).max(0).min(left);
            if take > 0 {
                *remaining -= take;
                left -= take;
                parts.push((location, take));
            }
        }
        (left == 0).then_some(parts)
    }

    /// One shortfall per SKU whose location-less lines could not be placed: all they requested
    /// against what the candidate locations had beside the lines that name a location.
    fn flexible_shortfall(
        &mut self,
        request: &Reserve,
        fixed: &[((&'t Sku, &'t LocationId), i64)],
        sku: &'t Sku,
    ) {
        let requested = request
            .lines
            .iter()
            .filter(|line| line.location.is_none() && line.sku == *sku)
            .map(|line| line.quantity)
            .sum();
        let available = candidate_locations(self.tenant, request.channel.as_ref(), sku)
            .into_iter()
            .map(|location| {
                let taken: i64 = fixed
                    .iter()
                    .filter(|((s, l), _)| *s == sku && *l == location)
                    .map(|(_, quantity)| quantity)
                    .sum();
                (self.usable(sku, location) - taken).max(0)
            })
            .sum();
        self.shortfalls.push(Shortfall {
            sku: sku.clone(),
            location: None,
            requested,
            available,
        });
    }
}

/// The locations tried, in order, for a line of `sku` without a location: the channel's own
/// (only those: they are the ones that serve it), else the tenant's priority list followed by the
/// SKU's other locations in name order.
fn candidate_locations<'t>(
    tenant: &'t TenantLedger,
    channel: Option<&ChannelId>,
    sku: &Sku,
) -> Vec<&'t LocationId> {
    if let Some(config) = channel.and_then(|id| tenant.availability.channel(id))
        && !config.locations.is_empty()
    {
        return config.locations_by_priority();
    }
    let Some(stock) = tenant.stock.get(sku) else {
        return Vec::new();
    };
    let listed: BTreeSet<&LocationId> = tenant
        .location_priority
        .iter()
        .filter(|location| stock.contains_key(*location))
        .collect();
    let mut ordered: Vec<&LocationId> = tenant
        .location_priority
        .iter()
        .filter(|location| stock.contains_key(*location))
        .collect();
    ordered.extend(stock.keys().filter(|location| !listed.contains(location)));
    ordered
}
