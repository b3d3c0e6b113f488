//! Property tests on random sequences of events, commands and ticks:
//!
//! - the reservation path never drives available below zero (only physical facts may);
//! - on_hand and incoming follow the physical facts alone, and the on_hand identity holds;
//! - every open reservation's held units add up to `reserved` / `committed` (the generator moves
//!   no units into or out of those states by hand, the one physical fact that would interfere);
//! - a refused request leaves the state byte for byte;
//! - replaying the journal, from empty or from a snapshot, gives a byte-identical state;
//! - duplicates and reordering within the held limit give the same state as the clean stream;
//! - gaps given up on and filled late: every event of them applies once, a second claim on its
//!   `seq` is a duplicate, and the end state is that of the clean stream;
//! - units picked for a reservation not seen yet (the generators name reservations before
//!   reserving them) are remembered within their limits and never reserved a second time.

use crate::support::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use stockflow_core::command::{LedgerCommand, RESERVATION_LINES_MAX};
use stockflow_core::event::{Condition, Event, EventKind};
use stockflow_core::ledger::{Ledger, LedgerConfig, TenantLedger};
use stockflow_core::outcome::{AuditChange, Cause, EventStatus, IncidentKind, Outcome, Reply};
use stockflow_core::quantity::QuantityState::{
    self, Available, Damaged, Incoming, QualityControl, SafetyStock,
};
use stockflow_core::reservation::ReservationState;

const SKUS: [&str; 3] = ["A", "B", "C"];
const LOCATIONS: [&str; 3] = ["east", "west", "north"];
const SOURCES: [&str; 2] = ["wms", "oms"];
const RESERVATIONS: [&str; 6] = ["r0", "r1", "r2", "r3", "r4", "r5"];
/// The states a generated `moved` may touch: not reserved or committed, which belong to
/// reservations.
const MOVABLE: [QuantityState; 5] = [Available, Damaged, QualityControl, SafetyStock, Incoming];

#[derive(Debug, Clone)]
enum Op {
    /// Events of one source, in order.
    Events {
        source: usize,
        kinds: Vec<EventKind>,
    },
    /// A fresh event followed by an earlier event id with another body: refused whole.
    Conflict {
        fresh: EventKind,
        reused: usize,
    },
    Command(LedgerCommand),
    /// Time passes; a tick follows.
    Advance {
        seconds: i64,
    },
    /// Events of one source after `skip` seqs that are not sent (yet): held until their gap
    /// fills or is given up on (time passing).
    Gap {
        source: usize,
        skip: u64,
        kinds: Vec<EventKind>,
    },
    /// One of the skipped seqs arrives, alone in its request; then, with `again`, another event
    /// claiming the same seq.
    Late {
        pick: prop::sample::Index,
        kind: EventKind,
        again: bool,
    },
}

fn sku_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&SKUS[..])
}
fn location_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&LOCATIONS[..])
}
fn reservation_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&RESERVATIONS[..])
}

fn physical_kind() -> impl Strategy<Value = EventKind> {
    let receive =
        (sku_name(), location_name(), 1..20i64, any::<bool>()).prop_map(|(s, l, q, qc)| {
            EventKind::Received {
                sku: sku(s),
                location: loc(l),
                quantity: q,
                to: if qc { QualityControl } else { Available },
            }
        });
    let pick = (
        sku_name(),
        location_name(),
        1..8i64,
        prop::option::of(reservation_name()),
    )
        .prop_map(|(s, l, q, r)| picked(s, l, q, r));
    let condition = prop::sample::select(
        &[
            Condition::Sellable,
            Condition::Damaged,
            Condition::QualityControl,
        ][..],
    );
    let give_back = (sku_name(), location_name(), 1..5i64, condition)
        .prop_map(|(s, l, q, c)| returned(s, l, q, c));
    let adjust = (
        sku_name(),
        location_name(),
        prop::sample::select(&[-3i64, -1, 1, 4][..]),
        prop::option::of(0..6u64),
    )
        .prop_map(|(s, l, d, v)| adjusted(s, l, d, v));
    let count =
        (sku_name(), location_name(), 0..20i64).prop_map(|(s, l, c)| counted(s, l, c, None));
    let movement = (
        sku_name(),
        location_name(),
        1..5i64,
        prop::sample::select(&MOVABLE[..]),
        prop::sample::select(&MOVABLE[..]),
    )
        .prop_filter("two states", |(_, _, _, from, to)| from != to)
        .prop_map(|(s, l, q, from, to)| moved(s, l, q, from, to));
    let transfer = (sku_name(), location_name(), location_name(), 1..5i64)
        .prop_filter("two locations", |(_, from, to, _)| from != to)
        .prop_map(|(s, from, to, q)| transferred(s, from, to, q));
    let cancel = (
        reservation_name(),
        prop::option::of(sku_name()),
        prop::option::of(1..4i64),
    )
        .prop_map(|(r, s, q)| {
            let q = if s.is_some() { q } else { None };
            cancelled(r, s, q)
        });
    prop_oneof![
        4 => receive,
        3 => pick,
        1 => give_back,
        1 => adjust,
        1 => count,
        1 => movement,
        1 => transfer,
        1 => cancel,
    ]
}

fn line() -> impl Strategy<Value = (&'static str, Option<&'static str>, i64)> {
    (sku_name(), prop::option::of(location_name()), 1..6i64)
}

fn command() -> impl Strategy<Value = LedgerCommand> {
    let reserve_step = (
        reservation_name(),
        prop::collection::vec(line(), 1..4),
        1..120u32,
    )
        .prop_map(|(r, lines, ttl)| reserve(r, None, &lines, ttl));
    let confirm_step = (
        reservation_name(),
        prop::option::of(prop::collection::vec(
            (sku_name(), prop::option::of(location_name()), 0..4i64),
            1..3,
        )),
    )
        .prop_map(|(r, lines)| confirm(r, lines.as_deref()));
    let release_step = reservation_name().prop_map(release);
    let priority = prop::sample::subsequence(&LOCATIONS[..], 0..=3)
        .prop_shuffle()
        .prop_map(|locations| LedgerCommand::SetLocationPriority {
            locations: locations.into_iter().map(loc).collect(),
        });
    prop_oneof![4 => reserve_step, 2 => confirm_step, 2 => release_step, 1 => priority]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..SOURCES.len(), prop::collection::vec(physical_kind(), 1..4)).prop_map(|(source, kinds)| Op::Events { source, kinds }),
        1 => (physical_kind(), any::<prop::sample::Index>()).prop_map(|(fresh, reused)| Op::Conflict { fresh, reused: reused.index(1000) }),
        5 => command().prop_map(Op::Command),
        1 => (1..90i64).prop_map(|seconds| Op::Advance { seconds }),
        1 => (0..SOURCES.len(), 1..4u64, prop::collection::vec(physical_kind(), 1..3)).prop_map(|(source, skip, kinds)| Op::Gap { source, skip, kinds }),
        1 => (any::<prop::sample::Index>(), physical_kind(), any::<bool>()).prop_map(|(pick, kind, again)| Op::Late { pick, kind, again }),
    ]
}

/// The same physical fact in a form whose effect on the quantities does not depend on when it
/// applies (no count, no version check, no arrival that settles `incoming`): the form of every
/// event that may wait in the held buffer, so that the model may apply held events released
/// together in any order.
fn commuting(kind: EventKind) -> EventKind {
    match kind {
        EventKind::Received {
            sku,
            location,
            quantity,
            to,
        } => EventKind::Returned {
            sku,
            location,
            quantity,
            condition: if to == QualityControl {
                Condition::QualityControl
            } else {
                Condition::Sellable
            },
        },
        EventKind::Counted { sku, location, .. } => EventKind::Adjusted {
            sku,
            location,
            delta: 1,
            expected_version: None,
        },
        EventKind::Adjusted {
            sku,
            location,
            delta,
            ..
        } => EventKind::Adjusted {
            sku,
            location,
            delta,
            expected_version: None,
        },
        other => other,
    }
}

/// on_hand and incoming per SKU x location, from the physical facts alone.
#[derive(Default)]
struct Model {
    physical: BTreeMap<(String, String), (i64, i64)>,
}

impl Model {
    fn entry(
        &mut self,
        s: &stockflow_core::ids::Sku,
        l: &stockflow_core::ids::LocationId,
    ) -> &mut (i64, i64) {
        self.physical
            .entry((s.to_string(), l.to_string()))
            .or_default()
    }

    fn apply(&mut self, kind: &EventKind) {
        let in_hand = |state: QuantityState| state != Incoming;
        match kind {
            EventKind::Received {
                sku,
                location,
                quantity,
                ..
            } => {
                let (on_hand, incoming) = self.entry(sku, location);
                *on_hand += quantity;
                *incoming -= (*incoming).clamp(0, *quantity);
            }
            EventKind::Picked {
                sku,
                location,
                quantity,
                ..
            } => self.entry(sku, location).0 -= quantity,
            EventKind::Returned {
                sku,
                location,
                quantity,
                ..
            } => self.entry(sku, location).0 += quantity,
            EventKind::Adjusted {
                sku,
                location,
                delta,
                ..
            } => self.entry(sku, location).0 += delta,
            EventKind::Counted {
                sku,
                location,
                counted,
                ..
            } => self.entry(sku, location).0 = *counted,
            EventKind::Moved {
                sku,
                location,
                quantity,
                from,
                to,
            } => {
                let (on_hand, incoming) = self.entry(sku, location);
                for (state, sign) in [(*from, -1), (*to, 1)] {
                    if in_hand(state) {
                        *on_hand += sign * quantity;
                    } else {
                        *incoming += sign * quantity;
                    }
                }
            }
            EventKind::Transferred {
                sku,
                location,
                to_location,
                quantity,
            } => {
                self.entry(sku, location).0 -= quantity;
                self.entry(sku, to_location).1 += quantity;
            }
            EventKind::Cancelled { .. } => {}
        }
    }
}

struct Run {
    harness: Harness,
    next_seq: [u64; 2],
    model: Model,
    /// Events answered `applied` or `held`: their ids are known.
    applied: Vec<Event>,
    /// Events answered but perhaps not applied yet (held), by source; the model applies them
    /// once their source's last seq reaches them.
    pending: Vec<(usize, Event)>,
    /// Seqs skipped by `Op::Gap` and not sent since.
    skipped: Vec<(usize, u64)>,
}

impl Run {
    fn new() -> Self {
        Run {
            harness: Harness::default(),
            next_seq: [1, 1],
            model: Model::default(),
            applied: Vec::new(),
            pending: Vec::new(),
            skipped: Vec::new(),
        }
    }

    fn last_seq(&self, source: usize) -> u64 {
        let source = stockflow_core::ids::SourceId::parse(SOURCES[source]).unwrap();
        self.harness
            .ledger
            .source_last_seq(&self.harness.tenant, &source)
    }

    /// Whether an event of `source` sent now may be held: a skipped seq lies ahead of it.
    fn may_hold(&self, source: usize) -> bool {
        let last = self.last_seq(source);
        self.skipped
            .iter()
            .any(|&(s, seq)| s == source && seq > last)
    }

    /// Hands the model the pending events their source has reached. One envelope applies the
    /// events of one source in seq order, except a tick, which may release held events of both
    /// sources: those are all `commuting`.
    fn settle(&mut self) {
        let last = [self.last_seq(0), self.last_seq(1)];
        let (mut reached, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(source, event)| event.seq <= last[*source]);
        self.pending = waiting;
        reached.sort_by_key(|(source, event)| (*source, event.seq));
        for (_, event) in reached {
            self.model.apply(&event.kind);
        }
    }

    /// Events of `source` from `first`, as `commuting` facts when they may be held.
    fn numbered(&self, source: usize, first: u64, kinds: &[EventKind], held: bool) -> Vec<Event> {
        kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                let kind = if held {
                    commuting(kind.clone())
                } else {
                    kind.clone()
                };
                event(SOURCES[source], first + i as u64, kind)
            })
            .collect()
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        // Deadlines first, on their own, so that a refused request below must change nothing.
        if !self.harness.ledger.tenants_due(self.harness.now).is_empty() {
            let outcome = self.harness.tick();
            self.check_reservation_path(&outcome)?;
            self.settle();
        }
        let before = self.harness.snapshot();
        let (outcome, events) = match op {
            Op::Events { source, kinds } => {
                let may_hold = self.may_hold(*source);
                let events = self.numbered(*source, self.next_seq[*source], kinds, may_hold);
                let outcome = self.harness.events(events.clone());
                if let Reply::Events(results) = &outcome.reply
                    && !may_hold
                {
                    prop_assert!(results.iter().all(|r| r.status == EventStatus::Applied));
                }
                (outcome, events)
            }
            Op::Gap {
                source,
                skip,
                kinds,
            } => {
                let first = self.next_seq[*source] + skip;
                let events = self.numbered(*source, first, kinds, true);
                let outcome = self.harness.events(events.clone());
                if let Reply::Events(results) = &outcome.reply {
                    prop_assert!(results.iter().all(|r| r.status == EventStatus::Held));
                }
                self.skipped
                    .extend((self.next_seq[*source]..first).map(|seq| (*source, seq)));
                (outcome, events)
            }
            Op::Late { pick, kind, again } => {
                if self.skipped.is_empty() {
                    return Ok(());
                }
                let (source, seq) = self.skipped[pick.index(self.skipped.len())];
                let behind = seq <= self.last_seq(source);
                let late = self.numbered(source, seq, std::slice::from_ref(kind), !behind);
                let outcome = self.harness.events(late.clone());
                if let Reply::Events(results) = &outcome.reply {
                    self.skipped.retain(|&skipped| skipped != (source, seq));
                    if behind {
                        // Its gap was given up on: applied late, and said so.
                        prop_assert_eq!(results[0].status, EventStatus::Applied);
                        prop_assert!(
                            outcome
                                .incidents
                                .iter()
                                .any(|i| i.kind == IncidentKind::LateEvent)
                        );
                    }
                }
                if *again && !matches!(outcome.reply, Reply::Rejected(_)) {
                    let mut claim = late[0].clone();
                    claim.event_id =
                        stockflow_core::ids::EventId::parse(format!("{}-again", claim.event_id))
                            .unwrap();
                    claim.reason = Some("another claim".to_owned());
                    let snapshot = self.harness.snapshot();
                    let repeat = self.harness.events(vec![claim]);
                    prop_assert!(!repeat.persist);
                    prop_assert_eq!(
                        render_reply(&repeat.reply),
                        "duplicate",
                        "a second claim on seq {} of {}",
                        seq,
                        SOURCES[source]
                    );
                    prop_assert!(self.harness.snapshot() == snapshot);
                }
                (outcome, late)
            }
            Op::Conflict { fresh, reused } => {
                if self.applied.is_empty() {
                    return Ok(());
                }
                let mut reused = self.applied[reused % self.applied.len()].clone();
                reused.reason = Some("another body".to_owned());
                let fresh = event("wms", self.next_seq[0], fresh.clone());
                let outcome = self.harness.events(vec![fresh, reused]);
                // Refused for the reused id, or earlier for the fresh event's version check.
                prop_assert!(
                    matches!(outcome.reply, Reply::Rejected(_)),
                    "{:?}",
                    outcome.reply
                );
                (outcome, Vec::new())
            }
            Op::Command(command) => (self.harness.command(command.clone()), Vec::new()),
            Op::Advance { seconds } => {
                self.harness.advance_seconds(*seconds);
                let outcome = self.harness.tick();
                self.settle();
                (outcome, Vec::new())
            }
        };
        match &outcome.reply {
            Reply::Rejected(_) => {
                prop_assert!(!outcome.persist);
                prop_assert!(outcome.audit.is_empty() && outcome.incidents.is_empty());
                prop_assert!(
                    self.harness.snapshot() == before,
                    "a refusal changed the state"
                );
            }
            Reply::Events(results) => {
                for (event, result) in events.iter().zip(results) {
                    // Every event here is fresh: applied now, or held for an earlier seq.
                    prop_assert!(
                        matches!(result.status, EventStatus::Applied | EventStatus::Held),
                        "{:?}",
                        result
                    );
                    self.applied.push(event.clone());
                    let source = SOURCES
                        .iter()
                        .position(|s| *s == event.source.as_str())
                        .unwrap();
                    self.pending.push((source, event.clone()));
                    self.next_seq[source] = self.next_seq[source].max(event.seq + 1);
                }
                self.settle();
            }
            _ => self.check_reservation_path(&outcome)?,
        }
        for entry in &outcome.audit {
            if let AuditChange::Quantities { before, after } = &entry.change {
                prop_assert_eq!(after.version, before.version + 1);
            }
        }
        self.check_state()
    }

    /// Commands and expiries never take available below zero, nor lower it while negative. (A
    /// tick may also apply held events whose gap it gave up on: physical facts, which may.)
    fn check_reservation_path(&self, outcome: &Outcome) -> Result<(), TestCaseError> {
        let physical = |cause: &Cause| matches!(cause, Cause::Event { .. });
        for entry in outcome.audit.iter().filter(|e| !physical(&e.cause)) {
            if let AuditChange::Quantities { before, after } = &entry.change {
                prop_assert!(
                    after.available() >= 0 || after.available() >= before.available(),
                    "{:?} took available from {} to {}",
                    entry.cause,
                    before.available(),
                    after.available()
                );
            }
        }
        prop_assert!(
            outcome
                .incidents
                .iter()
                .all(|i| i.kind != IncidentKind::NegativeAvailable || physical(&i.cause))
        );
        Ok(())
    }

    fn check_state(&self) -> Result<(), TestCaseError> {
        let Some(tenant) = self.harness.ledger.tenant(&self.harness.tenant) else {
            return Ok(());
        };
        let mut held: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
        let mut provisional = BTreeSet::new();
        for reservation in tenant.reservations.values() {
            for line in &reservation.lines {
                let entry = held
                    .entry((line.sku.to_string(), line.location.to_string()))
                    .or_default();
                match reservation.state {
                    ReservationState::Provisional => entry.0 += line.held,
                    ReservationState::Confirmed => entry.1 += line.held,
                    _ => prop_assert_eq!(line.held, 0, "a resolved reservation holds units"),
                }
                prop_assert!(line.held >= 0 && line.held <= line.quantity);
            }
            if reservation.state == ReservationState::Provisional {
                provisional.insert((reservation.expires_at, reservation.reservation_id.clone()));
            }
        }
        prop_assert_eq!(
            &provisional,
            &tenant.expiries,
            "the expiry index holds exactly the provisional reservations"
        );
        for (s, stock) in &tenant.stock {
            for (l, q) in stock {
                let key = (s.to_string(), l.to_string());
                let (on_hand, incoming) =
                    self.model.physical.get(&key).copied().unwrap_or_default();
                prop_assert_eq!(
                    (q.on_hand, q.incoming),
                    (on_hand, incoming),
                    "physical quantities of {:?}",
                    key
                );
                prop_assert_eq!(
                    q.on_hand,
                    q.available()
                        + q.reserved
                        + q.committed
                        + q.damaged
                        + q.quality_control
                        + q.safety_stock
                );
                let (reserved, committed) = held.remove(&key).unwrap_or_default();
                prop_assert_eq!(
                    (q.reserved, q.committed),
                    (reserved, committed),
                    "held units at {:?}",
                    key
                );
            }
        }
        prop_assert!(
            held.values().all(|&(r, c)| r == 0 && c == 0),
            "units held where no stock is: {:?}",
            held
        );
        self.check_given_up(tenant)?;
        check_picked_ahead(tenant, &self.harness.config)
    }

    /// The given-up ranges of each source are sorted, disjoint, behind the source, within their
    /// limit, and hold exactly the skipped seqs the source has passed (the runs here stay below
    /// the limit, so none is forgotten).
    fn check_given_up(&self, tenant: &TenantLedger) -> Result<(), TestCaseError> {
        for (index, name) in SOURCES.iter().enumerate() {
            let Some(state) = tenant
                .sources
                .get(&stockflow_core::ids::SourceId::parse(*name).unwrap())
            else {
                continue;
            };
            prop_assert!(
                state.given_up.len() <= self.harness.config.given_up_ranges_per_source_max
            );
            for pair in state.given_up.windows(2) {
                prop_assert!(pair[0].last < pair[1].first, "{:?}", state.given_up);
            }
            let mut remembered: Vec<u64> = state
                .given_up
                .iter()
                .flat_map(|r| {
                    prop_assert!(r.first <= r.last && r.last <= state.last_seq);
                    Ok(r.first..=r.last)
                })
                .flatten()
                .collect();
            remembered.sort_unstable();
            let mut passed: Vec<u64> = self
                .skipped
                .iter()
                .filter(|&&(s, seq)| s == index && seq <= state.last_seq)
                .map(|&(_, seq)| seq)
                .collect();
            passed.sort_unstable();
            prop_assert_eq!(remembered, passed, "given-up seqs of {}", name);
        }
        Ok(())
    }

    /// Replaying the journal from empty, and from a snapshot taken half way, gives the same
    /// bytes as the state that was built live.
    fn check_replay(&self) -> Result<(), TestCaseError> {
        let live = self.harness.snapshot();
        let config = &self.harness.config;
        let mut replayed = Ledger::new();
        let half = self.harness.journal.len() / 2;
        let mut snapshot = None;
        for (index, envelope) in self.harness.journal.iter().enumerate() {
            if index == half {
                snapshot = Some(serde_json::to_vec(&replayed).unwrap());
            }
            prop_assert!(
                replayed.apply(config, envelope).persist,
                "a journaled envelope changed nothing on replay"
            );
        }
        prop_assert!(
            serde_json::to_vec(&replayed).unwrap() == live,
            "replay from empty differs"
        );
        let snapshot = snapshot.unwrap_or_else(|| serde_json::to_vec(&replayed).unwrap());
        let mut restored: Ledger = serde_json::from_slice(&snapshot).unwrap();
        for envelope in &self.harness.journal[half..] {
            restored.apply(config, envelope);
        }
        prop_assert!(
            serde_json::to_vec(&restored).unwrap() == live,
            "replay from a snapshot differs"
        );
        prop_assert!(restored == self.harness.ledger);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_and_replay_is_byte_identical(ops in prop::collection::vec(op(), 1..60)) {
        let mut run = Run::new();
        for op in &ops {
            run.step(op)?;
        }
        run.check_replay()?;
    }
}

/// Units picked ahead of their reservation: never for a known reservation, indexed by first
/// pick, within their limits.
fn check_picked_ahead(tenant: &TenantLedger, config: &LedgerConfig) -> Result<(), TestCaseError> {
    prop_assert!(tenant.picked_ahead.len() <= config.picked_ahead_max);
    let index: BTreeSet<_> = tenant
        .picked_ahead
        .iter()
        .map(|(id, record)| (record.first_picked_at, id.clone()))
        .collect();
    prop_assert_eq!(&index, &tenant.picked_ahead_by_time);
    for (id, record) in &tenant.picked_ahead {
        prop_assert!(
            !tenant.reservations.contains_key(id),
            "picks ahead of {} kept beside its reservation",
            id
        );
        prop_assert!(!record.lines.is_empty() && record.lines.len() <= RESERVATION_LINES_MAX);
        for pair in record.lines.windows(2) {
            prop_assert!((&pair[0].sku, &pair[0].location) < (&pair[1].sku, &pair[1].location));
        }
        prop_assert!(record.lines.iter().all(|line| line.quantity > 0));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Duplicates and reordering

/// Delivery of a clean stream: each window of `window` consecutive events shuffled, earlier
/// events sent again at random points, all cut into requests of random sizes.
#[derive(Debug, Clone)]
struct Delivery {
    window: usize,
    shuffle_keys: Vec<u32>,
    duplicates: Vec<(prop::sample::Index, prop::sample::Index)>,
    cuts: Vec<prop::sample::Index>,
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        1..=8usize,
        prop::collection::vec(any::<u32>(), 64),
        prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
            0..10,
        ),
        prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    )
        .prop_map(|(window, shuffle_keys, duplicates, cuts)| Delivery {
            window,
            shuffle_keys,
            duplicates,
            cuts,
        })
}

fn deliver(events: &[Event], delivery: &Delivery) -> Vec<Vec<Event>> {
    let mut order: Vec<Event> = Vec::new();
    for (w, window) in events.chunks(delivery.window).enumerate() {
        let mut window: Vec<(u32, &Event)> = window
            .iter()
            .enumerate()
            .map(|(i, e)| (delivery.shuffle_keys[(w * delivery.window + i) % 64], e))
            .collect();
        window.sort_by_key(|(key, e)| (*key, e.seq));
        order.extend(window.into_iter().map(|(_, e)| e.clone()));
    }
    // A copy goes anywhere after its original, so that it never arrives early itself.
    for (from, to) in &delivery.duplicates {
        let from = from.index(order.len());
        let again = order[from].clone();
        let at = from + 1 + to.index(order.len() - from);
        order.insert(at, again);
    }
    let mut cuts: Vec<usize> = delivery
        .cuts
        .iter()
        .map(|c| c.index(order.len() + 1))
        .collect();
    cuts.push(order.len());
    cuts.sort_unstable();
    let mut requests = Vec::new();
    let mut start = 0;
    for cut in cuts {
        if cut > start {
            requests.push(order[start..cut].to_vec());
            start = cut;
        }
    }
    requests
}

fn prepared(config: &LedgerConfig) -> Harness {
    let mut harness = Harness::new(config.clone());
    harness.events(vec![
        event("setup", 1, received("A", "east", 20)),
        event("setup", 2, received("B", "west", 20)),
    ]);
    harness.reserve("r0", &[("A", Some("east"), 5), ("B", None, 3)], 600);
    harness.reserve("r1", &[("A", None, 4)], 600);
    harness.command(confirm("r1", None));
    harness
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn duplicates_and_reordering_give_the_clean_state(
        kinds in prop::collection::vec(physical_kind(), 1..40),
        delivery in delivery(),
    ) {
        let config = LedgerConfig { held_events_per_source_max: 8, ..LedgerConfig::default() };
        let events: Vec<Event> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| {
                // Version checks depend on what came before; keep the stream free of them so
                // that every event of it applies.
                let kind = match kind {
                    EventKind::Adjusted { sku, location, delta, .. } => {
                        EventKind::Adjusted { sku, location, delta, expected_version: None }
                    }
                    other => other,
                };
                event("wms", i as u64 + 1, kind)
            })
            .collect();
        let mut clean = prepared(&config);
        for request in events.chunks(7) {
            clean.events(request.to_vec());
        }
        let mut messy = prepared(&config);
        for request in deliver(&events, &delivery) {
            let outcome = messy.events(request);
            prop_assert!(!matches!(outcome.reply, Reply::Rejected(_)), "{:?}", outcome.reply);
            prop_assert!(outcome.incidents.iter().all(|i| i.kind != IncidentKind::SequenceGap));
        }
        prop_assert_eq!(clean.render_stock(), messy.render_stock());
        prop_assert!(clean.snapshot() == messy.snapshot(), "the states differ");
    }
}

// ---------------------------------------------------------------------------------------------
// Gaps given up on, then filled late

/// The journal of `harness` replayed from empty.
fn replayed(harness: &Harness) -> Vec<u8> {
    let mut ledger = Ledger::new();
    for envelope in &harness.journal {
        ledger.apply(&harness.config, envelope);
    }
    serde_json::to_vec(&ledger).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Some events of a clean stream are withheld: the others arrive in order and overflow the
    /// held buffer, so the gaps before them are given up on; then the withheld ones arrive, in
    /// any order, each followed (with `again`) by another event claiming its seq. Every withheld
    /// event applies once (late when its gap was given up on), every second claim is a
    /// duplicate, and the end state is the clean stream's. The facts are `commuting` ones and
    /// name no cancellation, so that the order they apply in does not matter.
    #[test]
    fn late_events_of_given_up_gaps_give_the_clean_state(
        kinds in prop::collection::vec(physical_kind(), 2..30),
        withheld in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        late_keys in prop::collection::vec(any::<u32>(), 6),
        again in prop::collection::vec(any::<bool>(), 6),
    ) {
        let config = LedgerConfig { held_events_per_source_max: 2, ..LedgerConfig::default() };
        let events: Vec<Event> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| {
                let kind = commuting(match kind {
                    EventKind::Cancelled { .. } => received("C", "north", 1),
                    other => other,
                });
                event("wms", i as u64 + 1, kind)
            })
            .collect();
        let withheld: BTreeSet<usize> = withheld.iter().map(|i| i.index(events.len())).collect();
        let mut clean = prepared(&config);
        for request in events.chunks(3) {
            clean.events(request.to_vec());
        }
        let mut messy = prepared(&config);
        let on_time: Vec<Event> = events
            .iter()
            .enumerate()
            .filter(|(i, _)| !withheld.contains(i))
            .map(|(_, e)| e.clone())
            .collect();
        for request in on_time.chunks(3) {
            let outcome = messy.events(request.to_vec());
            prop_assert!(!matches!(outcome.reply, Reply::Rejected(_)), "{:?}", outcome.reply);
        }
        let mut late: Vec<(u32, usize)> = withheld
            .iter()
            .enumerate()
            .map(|(n, &i)| (late_keys[n], i))
            .collect();
        late.sort_unstable();
        let source = stockflow_core::ids::SourceId::parse("wms").unwrap();
        let mut applied_late = 0;
        for (n, (_, i)) in late.into_iter().enumerate() {
            let behind = events[i].seq <= messy.ledger.source_last_seq(&messy.tenant, &source);
            let outcome = messy.events(vec![events[i].clone()]);
            let status = render_reply(&outcome.reply);
            let late_incidents = outcome
                .incidents
                .iter()
                .filter(|i| i.kind == IncidentKind::LateEvent)
                .count();
            if behind {
                prop_assert_eq!(status, "applied");
                prop_assert_eq!(late_incidents, 1);
                applied_late += 1;
            } else {
                prop_assert!(status == "applied" || status == "held", "{}", status);
                prop_assert_eq!(late_incidents, 0);
            }
            if again[n] {
                let mut claim = events[(i + 1) % events.len()].clone();
                claim.seq = events[i].seq;
                claim.event_id = stockflow_core::ids::EventId::parse(
                    format!("wms-{}-again", claim.seq),
                ).unwrap();
                let snapshot = messy.snapshot();
                let outcome = messy.events(vec![claim]);
                prop_assert_eq!(render_reply(&outcome.reply), "duplicate");
                prop_assert!(!outcome.persist && messy.snapshot() == snapshot);
            }
        }
        let tenant = messy.ledger.tenant(&messy.tenant).unwrap();
        prop_assert!(tenant.sources[&source].given_up.is_empty());
        prop_assert!(tenant.sources[&source].held.is_empty());
        prop_assert_eq!(clean.render_stock(), messy.render_stock());
        prop_assert!(clean.snapshot() == messy.snapshot(), "the states differ ({} applied late)", applied_late);
        prop_assert!(replayed(&messy) == messy.snapshot(), "replay differs");
    }
}
