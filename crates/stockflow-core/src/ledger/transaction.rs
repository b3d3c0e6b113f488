//! One application of an envelope to one tenant: the mutation helpers, the undo log that makes a
//! request atomic, and the effects collected on the way (audit, incidents, touched keys, demand).
//!
//! Every mutation of tenant state goes through a helper here that records the prior value in the
//! undo log. A refused request replays the log backwards, which restores the state exactly (the
//! maps and the indexes alike) without cloning the tenant. The log is kept only while the
//! request can still be refused after a change (`undo_enabled`): deadline work is never undone,
//! and most event requests are checked whole before their first change.

use super::fingerprint::{BodyFingerprints, Fingerprint};
use super::{
    HeldEvent, LedgerConfig, PickedAhead, SeqRange, SourceState, TIME_ACTOR, TenantLedger,
};
use crate::envelope::Position;
use crate::event::Event;
use crate::ids::{ChannelId, LocationId, ReservationId, Sku, SourceId, TenantId};
use crate::outcome::{AuditChange, AuditEntry, Cause, Incident, IncidentKind, Outcome};
use crate::quantity::{Quantities, QuantityState};
use crate::reservation::{Reservation, ReservationState};
use crate::time::Timestamp;

/// The prior value of one mutated entry.
pub(super) enum Undo {
    Stock {
        sku: Sku,
        location: LocationId,
        before: Option<Quantities>,
    },
    Reservation {
        id: ReservationId,
        before: Option<Box<Reservation>>,
    },
    ExpiryInserted(Timestamp, ReservationId),
    ExpiryRemoved(Timestamp, ReservationId),
    SourceCreated(SourceId),
    Source {
        source: SourceId,
        last_seq: u64,
        release_at: Option<Timestamp>,
    },
    HeldInserted {
        source: SourceId,
        seq: u64,
    },
    HeldRemoved {
        source: SourceId,
        seq: u64,
        held: Box<HeldEvent>,
    },
    HeldIndexInserted(Timestamp, SourceId),
    HeldIndexRemoved(Timestamp, SourceId),
    GivenUp {
        source: SourceId,
        before: Vec<SeqRange>,
    },
    PickedAhead {
        id: ReservationId,
        before: Option<Box<PickedAhead>>,
    },
    EventSeen(Fingerprint),
    LocationSeen(LocationId),
    LocationPriority(Vec<LocationId>),
}

/// Who and what caused the changes being made, for audit entries and incidents. Borrowed: the
/// owned [`Cause`], actor and reason are built only for the entries that need them.
#[derive(Debug, Clone)]
pub(super) struct Origin<'a> {
    pub why: Why<'a>,
    pub channel: Option<ChannelId>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Why<'a> {
    Event(&'a Event),
    Command {
        name: &'static str,
        id: &'a str,
        actor: &'a str,
        reason: Option<&'a str>,
    },
    Time {
        what: &'static str,
        reason: &'static str,
    },
}

impl<'a> Origin<'a> {
    pub fn of_event(event: &'a Event) -> Origin<'a> {
        Origin {
            why: Why::Event(event),
            channel: None,
        }
    }

    pub fn time(what: &'static str, reason: &'static str) -> Origin<'a> {
        Origin {
            why: Why::Time { what, reason },
            channel: None,
        }
    }

    pub fn command(
        name: &'static str,
        id: &'a str,
        actor: &'a str,
        reason: Option<&'a str>,
        channel: Option<ChannelId>,
    ) -> Origin<'a> {
        Origin {
            why: Why::Command {
                name,
                id,
                actor,
                reason,
            },
            channel,
        }
    }

    pub fn cause(&self) -> Cause {
        match self.why {
            Why::Event(event) => Cause::Event {
                event_id: event.event_id.clone(),
                source: event.source.clone(),
                event_type: event.kind.type_name().to_owned(),
            },
            Why::Command { name, id, .. } => Cause::Command {
                name: name.to_owned(),
                id: id.to_owned(),
            },
            Why::Time { what, .. } => Cause::Time {
                what: what.to_owned(),
            },
        }
    }

    /// The producer of an event, the actor of a command, `stockflow` for time.
    pub fn actor(&self) -> String {
        match self.why {
            // Not `to_string`: formatting machinery for a copy of the text.
            Why::Event(event) => event.source.as_str().to_owned(),
            Why::Command { actor, .. } => actor.to_owned(),
            Why::Time { .. } => TIME_ACTOR.to_owned(),
        }
    }

    /// An event's reason and reference, a command's reason, what time did.
    pub fn reason(&self) -> Option<String> {
        match self.why {
            Why::Event(event) => match (&event.reason, &event.reference) {
                (Some(reason), Some(reference)) => {
                    Some(format!("{reason} (reference {reference})"))
                }
                (Some(text), None) | (None, Some(text)) => Some(text.clone()),
                (None, None) => None,
            },
            Why::Command { reason, .. } => reason.map(str::to_owned),
            Why::Time { reason, .. } => Some(reason.to_owned()),
        }
    }

    pub fn source(&self) -> Option<&'a SourceId> {
        match self.why {
            Why::Event(event) => Some(&event.source),
            _ => None,
        }
    }
}

/// Demand seen by the ledger, handed to the availability module once the request succeeded.
pub(super) struct Demand {
    pub kind: DemandKind,
    pub sku: Sku,
    pub channel: Option<ChannelId>,
    pub quantity: i64,
}

/// What the availability module is told about units that moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DemandKind {
    /// A reservation granted (velocity, and the channel's reserved units).
    Reserved,
    /// Units picked that no reservation held (velocity).
    PickedFromAvailable,
    /// Any units picked (time windows released as picks complete).
    Picked,
    /// Reserved units given back before being picked: released, expired, cancelled (the
    /// channel's cancellation rate).
    Returned,
}

/// How far the effects reached when the request itself began, so a refusal can drop its own.
pub(super) struct Mark {
    audit_length: usize,
    incident_length: usize,
    demand_length: usize,
    touched_sku_length: usize,
    touched_reservation_length: usize,
    changed: bool,
}

/// Per-location deltas of every quantity state, indexed like [`QuantityState::ALL`]; applied
/// with [`Quantities::add`], so moves between two on-hand states leave on_hand unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct StateDeltas([i64; 7]);

impl StateDeltas {
    pub fn add(&mut self, state: QuantityState, delta: i64) {
        self.0[state as usize] += delta;
    }

    pub fn apply_to(&self, quantities: &mut Quantities) {
        for state in QuantityState::ALL {
            let delta = self.0[state as usize];
            if delta != 0 {
                quantities.add(state, delta);
            }
        }
    }
}

pub(super) struct Transaction<'a> {
    pub config: &'a LedgerConfig,
    /// The ledger's scheme for event body fingerprints.
    pub body_fingerprints: BodyFingerprints,
    pub tenant_id: &'a TenantId,
    pub tenant: &'a mut TenantLedger,
    pub now: Timestamp,
    pub position: Position,
    pub undo: Vec<Undo>,
    pub out: Outcome,
    /// Touched keys in the order touched, with repeats: a push per change instead of two
    /// searches of an ordered set (the hottest path of an event). Sorted and deduplicated once,
    /// by [`Transaction::take_touched`].
    pub touched_skus: Vec<Sku>,
    pub touched_reservations: Vec<ReservationId>,
    pub demand: Vec<Demand>,
    /// State changed in a way the undo log does not see (the availability module's own state).
    pub changed_elsewhere: bool,
    /// Some mutation happened since the mark.
    changed: bool,
    /// Whether mutations are logged. Off for deadline work (never undone) and for requests that
    /// cannot be refused once they have started changing things: logging costs allocations on
    /// the hottest path.
    pub undo_enabled: bool,
}

impl<'a> Transaction<'a> {
    pub fn new(
        config: &'a LedgerConfig,
        body_fingerprints: BodyFingerprints,
        tenant_id: &'a TenantId,
        tenant: &'a mut TenantLedger,
        now: Timestamp,
        position: Position,
    ) -> Self {
        Transaction {
            config,
            body_fingerprints,
            tenant_id,
            tenant,
            now,
            position,
            undo: Vec::new(),
            out: Outcome::default(),
            touched_skus: Vec::new(),
            touched_reservations: Vec::new(),
            demand: Vec::new(),
            changed_elsewhere: false,
            changed: false,
            undo_enabled: false,
        }
    }

    pub fn changed(&self) -> bool {
        self.changed || self.changed_elsewhere
    }

    /// Notes a mutation, and its undo record when the request may still be refused.
    fn record(&mut self, undo: impl FnOnce() -> Undo) {
        self.changed = true;
        if self.undo_enabled {
            self.undo.push(undo());
        }
    }

    /// Starts the request proper: what happened so far (deadline work) is kept even if the
    /// request is refused.
    pub fn mark(&mut self) -> Mark {
        let mark = Mark {
            audit_length: self.out.audit.len(),
            incident_length: self.out.incidents.len(),
            demand_length: self.demand.len(),
            touched_sku_length: self.touched_skus.len(),
            touched_reservation_length: self.touched_reservations.len(),
            changed: self.changed(),
        };
        self.undo.clear();
        self.changed = false;
        self.changed_elsewhere = false;
        self.undo_enabled = true;
        mark
    }

    /// Undoes everything since `mark`, leaving the tenant as it was then, byte for byte.
    pub fn rollback(&mut self, mark: Mark) {
        assert!(
            self.undo_enabled || !self.changed,
            "a request was refused after changes made without an undo log"
        );
        self.changed = false;
        while let Some(undo) = self.undo.pop() {
            self.undo_one(undo);
        }
        self.out.audit.truncate(mark.audit_length);
        self.out.incidents.truncate(mark.incident_length);
        self.demand.truncate(mark.demand_length);
        self.touched_skus.truncate(mark.touched_sku_length);
        self.touched_reservations
            .truncate(mark.touched_reservation_length);
        self.changed_elsewhere = mark.changed;
    }

    /// Ends the request as accepted: its effects join those of the deadline work.
    pub fn keep(&mut self, mark: Mark) {
        self.changed_elsewhere |= mark.changed;
    }

    fn undo_one(&mut self, undo: Undo) {
        let tenant = &mut *self.tenant;
        match undo {
            Undo::Stock {
                sku,
                location,
                before,
            } => {
                let stock = tenant.stock.entry(sku.clone()).or_default();
                match before {
                    Some(before) => {
                        stock.insert(location, before);
                    }
                    None => {
                        stock.remove(&location);
                        if stock.is_empty() {
                            tenant.stock.remove(&sku);
                        }
                    }
                }
            }
            Undo::Reservation { id, before } => match before {
                Some(before) => {
                    tenant.reservations.insert(id, *before);
                }
                None => {
                    tenant.reservations.remove(&id);
                }
            },
            Undo::ExpiryInserted(at, id) => {
                tenant.expiries.remove(&(at, id));
            }
            Undo::ExpiryRemoved(at, id) => {
                tenant.expiries.insert((at, id));
            }
            Undo::SourceCreated(source) => {
                tenant.sources.remove(&source);
            }
            Undo::Source {
                source,
                last_seq,
                release_at,
            } => {
                let state = tenant
                    .sources
                    .get_mut(&source)
                    .expect("undo of a known source");
                state.last_seq = last_seq;
                state.release_at = release_at;
            }
            Undo::HeldInserted { source, seq } => {
                let state = tenant
                    .sources
                    .get_mut(&source)
                    .expect("undo of a known source");
                state.held.remove(&seq);
            }
            Undo::HeldRemoved { source, seq, held } => {
                let state = tenant
                    .sources
                    .get_mut(&source)
                    .expect("undo of a known source");
                state.held.insert(seq, *held);
            }
            Undo::HeldIndexInserted(at, source) => {
                tenant.held_deadlines.remove(&(at, source));
            }
            Undo::HeldIndexRemoved(at, source) => {
                tenant.held_deadlines.insert((at, source));
            }
            Undo::GivenUp { source, before } => {
                let state = tenant
                    .sources
                    .get_mut(&source)
                    .expect("undo of a known source");
                state.given_up = before;
            }
            Undo::PickedAhead { id, before } => {
                put_picked_ahead(tenant, &id, before.map(|before| *before));
            }
            Undo::EventSeen(key) => {
                tenant.events_seen.remove(&key);
            }
            Undo::LocationSeen(location) => {
                tenant.locations.remove(&location);
            }
            Undo::LocationPriority(before) => tenant.location_priority = before,
        }
    }

    // ---------------------------------------------------------------------------------------
    // Stock

    /// Applies `change` to the quantities of `sku` at `location` as one change: one version
    /// step, one audit entry, and an incident when a physical fact drove a state below zero.
    /// A change that changes nothing is no change at all (no version step, no audit entry).
    pub fn change_stock(
        &mut self,
        origin: &Origin,
        sku: &Sku,
        location: &LocationId,
        change: impl FnOnce(&mut Quantities),
    ) {
        let existing = self
            .tenant
            .stock
            .get_mut(sku)
            .and_then(|stock| stock.get_mut(location));
        let (stored, after) = match existing {
            Some(quantities) => {
                let before = *quantities;
                change(quantities);
                if *quantities == before {
                    return;
                }
                quantities.version = before.version + 1;
                (Some(before), *quantities)
            }
            None => {
                let mut after = Quantities::default();
                change(&mut after);
                if after == Quantities::default() {
                    return;
                }
                after.version = 1;
                self.note_location(location);
                match self.tenant.stock.get_mut(sku) {
                    Some(stock) => {
                        stock.insert(location.clone(), after);
                    }
                    None => {
                        self.tenant
                            .stock
                            .insert(sku.clone(), [(location.clone(), after)].into());
                    }
                }
                (None, after)
            }
        };
        let before = stored.unwrap_or_default();
        self.record(|| Undo::Stock {
            sku: sku.clone(),
            location: location.clone(),
            before: stored,
        });
        self.touch_sku(sku);
        self.check_negative(origin, sku, location, &before, &after);
        self.out.audit.push(AuditEntry {
            at: self.now,
            position: self.position,
            sku: sku.clone(),
            location: Some(location.clone()),
            channel: origin.channel.clone(),
            cause: origin.cause(),
            actor: origin.actor(),
            reason: origin.reason(),
            change: AuditChange::Quantities { before, after },
        });
    }

    pub fn change_stock_by(
        &mut self,
        origin: &Origin,
        sku: &Sku,
        location: &LocationId,
        deltas: StateDeltas,
    ) {
        self.change_stock(origin, sku, location, |quantities| {
            deltas.apply_to(quantities)
        });
    }

    fn check_negative(
        &mut self,
        origin: &Origin,
        sku: &Sku,
        location: &LocationId,
        before: &Quantities,
        after: &Quantities,
    ) {
        for state in QuantityState::ALL {
            let (was, is) = (before.get(state), after.get(state));
            if is >= 0 || is >= was {
                continue;
            }
            let kind = if state == QuantityState::Available {
                IncidentKind::NegativeAvailable
            } else {
                IncidentKind::NegativeQuantity
            };
            let detail = format!("{} went from {was} to {is}", state.name());
            self.incident(origin, kind, Some(sku), Some(location), -is, detail);
        }
    }

    fn note_location(&mut self, location: &LocationId) {
        if !self.tenant.locations.contains(location) {
            self.tenant.locations.insert(location.clone());
            self.record(|| Undo::LocationSeen(location.clone()));
        }
    }

    pub fn set_location_priority(&mut self, locations: Vec<LocationId>) {
        if self.tenant.location_priority == locations {
            return;
        }
        let before = std::mem::replace(&mut self.tenant.location_priority, locations);
        self.record(|| Undo::LocationPriority(before));
    }

    // ---------------------------------------------------------------------------------------
    // Reservations

    /// The reservation, to be changed: its prior value goes to the undo log.
    pub fn reservation_mut(&mut self, id: &ReservationId) -> Option<&mut Reservation> {
        let before = self.tenant.reservations.get(id)?;
        let before = self.undo_enabled.then(|| Box::new(before.clone()));
        self.record(|| Undo::Reservation {
            id: id.clone(),
            before,
        });
        self.touch_reservation(id);
        self.tenant.reservations.get_mut(id)
    }

    /// Inserts a new reservation (or tombstone); a record of units picked for it before it
    /// arrived is consumed (the caller has read it).
    pub fn insert_reservation(&mut self, reservation: Reservation) {
        let id = reservation.reservation_id.clone();
        debug_assert!(!self.tenant.reservations.contains_key(&id));
        if self.tenant.picked_ahead.contains_key(&id) {
            self.set_picked_ahead(&id, None);
        }
        if reservation.state == ReservationState::Provisional {
            self.expiry_insert(reservation.expires_at, &id);
        }
        self.tenant.reservations.insert(id.clone(), reservation);
        self.touch_reservation(&id);
        self.record(|| Undo::Reservation { id, before: None });
    }

    pub fn expiry_insert(&mut self, at: Timestamp, id: &ReservationId) {
        if self.tenant.expiries.insert((at, id.clone())) {
            self.record(|| Undo::ExpiryInserted(at, id.clone()));
        }
    }

    pub fn expiry_remove(&mut self, at: Timestamp, id: &ReservationId) {
        let key = (at, id.clone());
        if self.tenant.expiries.remove(&key) {
            self.record(|| Undo::ExpiryRemoved(key.0, key.1));
        }
    }

    /// Replaces (or removes, with None) the record of units picked ahead for `id`, keeping
    /// the index by first pick time.
    pub fn set_picked_ahead(&mut self, id: &ReservationId, record: Option<PickedAhead>) {
        let before = put_picked_ahead(self.tenant, id, record);
        self.record(|| Undo::PickedAhead {
            id: id.clone(),
            before: before.map(Box::new),
        });
    }

    // ---------------------------------------------------------------------------------------
    // Sources and deduplication

    /// An event id remembered provisionally by the idempotency check (which logged its undo
    /// record) is kept: the state changed.
    pub fn remembered_event(&mut self) {
        self.changed = true;
    }

    /// The state of `source`, created (at seq 0) on first sight.
    pub fn source(&mut self, source: &SourceId) -> &SourceState {
        if !self.tenant.sources.contains_key(source) {
            self.tenant
                .sources
                .insert(source.clone(), SourceState::default());
            self.record(|| Undo::SourceCreated(source.clone()));
        }
        &self.tenant.sources[source]
    }

    fn source_mut(&mut self, source: &SourceId) -> &mut SourceState {
        // One search: the undo record is written through the fields beside the tenant, since
        // `record` would borrow the whole transaction while the state is borrowed.
        let state = self
            .tenant
            .sources
            .get_mut(source)
            .expect("the source was created before it was changed");
        self.changed = true;
        if self.undo_enabled {
            self.undo.push(Undo::Source {
                source: source.clone(),
                last_seq: state.last_seq,
                release_at: state.release_at,
            });
        }
        state
    }

    pub fn set_last_seq(&mut self, source: &SourceId, seq: u64) {
        self.source_mut(source).last_seq = seq;
    }

    /// Replaces the given-up ranges of `source`.
    pub fn set_given_up(&mut self, source: &SourceId, ranges: Vec<SeqRange>) {
        let state = self
            .tenant
            .sources
            .get_mut(source)
            .expect("the source was created before it was changed");
        let before = std::mem::replace(&mut state.given_up, ranges);
        self.record(|| Undo::GivenUp {
            source: source.clone(),
            before,
        });
    }

    pub fn hold(&mut self, source: &SourceId, held: HeldEvent) {
        let seq = held.event.seq;
        let release_at = held.release_at;
        let state = self.tenant.sources.get_mut(source).expect("a known source");
        let previous = state.held.insert(seq, held);
        debug_assert!(previous.is_none());
        self.record(|| Undo::HeldInserted {
            source: source.clone(),
            seq,
        });
        let current = self.tenant.sources[source].release_at;
        if current.is_none_or(|current| release_at < current) {
            self.set_release_at(source, Some(release_at));
        }
    }

    /// Takes the held event `seq` out of the buffer. The caller must pass it back through
    /// [`Transaction::held_taken`] once applied, so that a refusal can put it back.
    pub fn take_held(&mut self, source: &SourceId, seq: u64) -> Option<HeldEvent> {
        self.tenant.sources.get_mut(source)?.held.remove(&seq)
    }

    pub fn held_taken(&mut self, source: &SourceId, held: HeldEvent) {
        self.record(|| Undo::HeldRemoved {
            source: source.clone(),
            seq: held.event.seq,
            held: Box::new(held),
        });
    }

    /// Recomputes the source's earliest release time after held events left the buffer.
    pub fn refresh_release_at(&mut self, source: &SourceId) {
        let state = &self.tenant.sources[source];
        let earliest = state.held.values().map(|held| held.release_at).min();
        if earliest != state.release_at {
            self.set_release_at(source, earliest);
        }
    }

    fn set_release_at(&mut self, source: &SourceId, release_at: Option<Timestamp>) {
        let state = self.source_mut(source);
        let previous = std::mem::replace(&mut state.release_at, release_at);
        if let Some(previous) = previous {
            self.tenant
                .held_deadlines
                .remove(&(previous, source.clone()));
            self.record(|| Undo::HeldIndexRemoved(previous, source.clone()));
        }
        if let Some(release_at) = release_at {
            self.tenant
                .held_deadlines
                .insert((release_at, source.clone()));
            self.record(|| Undo::HeldIndexInserted(release_at, source.clone()));
        }
    }

    // ---------------------------------------------------------------------------------------
    // Effects

    pub fn touch_sku(&mut self, sku: &Sku) {
        if self.touched_skus.last() != Some(sku) {
            self.touched_skus.push(sku.clone());
        }
    }

    pub fn touch_reservation(&mut self, id: &ReservationId) {
        if self.touched_reservations.last() != Some(id) {
            self.touched_reservations.push(id.clone());
        }
    }

    /// The touched SKUs and reservations, each once, in key order (the order the ordered sets
    /// they replace gave, which the recomputation and the outcome keep).
    pub fn take_touched(&mut self) -> (Vec<Sku>, Vec<ReservationId>) {
        let mut skus = std::mem::take(&mut self.touched_skus);
        skus.sort_unstable();
        skus.dedup();
        let mut reservations = std::mem::take(&mut self.touched_reservations);
        reservations.sort_unstable();
        reservations.dedup();
        (skus, reservations)
    }

    pub fn incident(
        &mut self,
        origin: &Origin,
        kind: IncidentKind,
        sku: Option<&Sku>,
        location: Option<&LocationId>,
        shortfall: i64,
        detail: String,
    ) {
        self.out.incidents.push(Incident {
            kind,
            at: self.now,
            position: self.position,
            sku: sku.cloned(),
            location: location.cloned(),
            channel: origin.channel.clone(),
            source: origin.source().cloned(),
            shortfall,
            detail,
            cause: origin.cause(),
        });
    }

    pub fn record_demand(
        &mut self,
        kind: DemandKind,
        sku: &Sku,
        channel: Option<&ChannelId>,
        quantity: i64,
    ) {
        if quantity > 0 {
            self.demand.push(Demand {
                kind,
                sku: sku.clone(),
                channel: channel.cloned(),
                quantity,
            });
        }
    }
}

/// Puts `record` in place of the one for `id` (none: removes it), index included; returns the
/// record it replaced.
fn put_picked_ahead(
    tenant: &mut TenantLedger,
    id: &ReservationId,
    record: Option<PickedAhead>,
) -> Option<PickedAhead> {
    let before = match record {
        Some(record) => tenant.picked_ahead.insert(id.clone(), record),
        None => tenant.picked_ahead.remove(id),
    };
    if let Some(before) = &before {
        tenant
            .picked_ahead_by_time
            .remove(&(before.first_picked_at, id.clone()));
    }
    if let Some(after) = tenant.picked_ahead.get(id) {
        tenant
            .picked_ahead_by_time
            .insert((after.first_picked_at, id.clone()));
    }
    before
}
