//! Exactly-once, ordered ingestion per tenant and source.
//!
//! An event id is remembered forever (the fingerprint of its body beside it). Per source, events
//! apply in `seq` order from 1: a `seq` at or below the last applied is a duplicate, the next one
//! applies and then releases the held events that follow it, a later one waits in a bounded
//! buffer. When the buffer overflows or its earliest event waits past its time limit, the first
//! gap is given up on (a `SequenceGap` incident) and the source continues after it.
//!
//! A given-up gap is remembered (a bounded list of `seq` ranges per source): an event of it that
//! arrives after all, with an id never seen, is a physical fact that happened, so it is applied
//! late (a `LateEvent` incident says so) and its `seq` leaves the range; another event claiming
//! that `seq` afterwards is a duplicate. Past the limit of ranges the lowest is forgotten, and a
//! late event of it is answered `duplicate` and dropped, as any `seq` behind the source is.

use super::fingerprint::{Fingerprint, Fingerprinter};
use super::transaction::{Origin, Transaction, Undo};
use super::{HeldEvent, SeqRange, validate};
use crate::event::{Event, EventKind};
use crate::ids::SourceId;
use crate::outcome::{EventResult, EventStatus, Incident, IncidentKind, Rejection};
use std::collections::BTreeMap;

/// The answers of one request, and which of its events are still held (so that an event held and
/// released by a later event of the same request answers `applied`).
#[derive(Default)]
pub(super) struct RequestEvents {
    results: Vec<EventResult>,
    pending: BTreeMap<(SourceId, u64), usize>,
}

impl RequestEvents {
    /// Whether the held event `seq` of `source` belongs to this request; if so it is applied now.
    fn settle(&mut self, source: &SourceId, seq: u64) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        match self.pending.remove(&(source.clone(), seq)) {
            Some(index) => {
                self.results[index].status = EventStatus::Applied;
                true
            }
            None => false,
        }
    }
}

/// An event's id key, and whether its id is already known.
struct Fingerprints {
    key: Fingerprint,
    known: bool,
}

impl Transaction<'_> {
    /// Applies one request of events, all or nothing. Stateless checks come first, for the
    /// whole request; a conflict found on the way is refused by the caller's rollback.
    pub(super) fn ingest(&mut self, events: &[Event]) -> Result<Vec<EventResult>, Rejection> {
        validate::events(events)?;
        // Past the checks below, only a failed `expected_version` can refuse the request once it
        // has changed something; without one, no undo log is needed.
        self.undo_enabled = events.iter().any(has_expected_version);
        let fingerprints = self.check_idempotency(events)?;
        let mut request = RequestEvents {
            results: Vec::with_capacity(events.len()),
            pending: BTreeMap::new(),
        };
        self.out.audit.reserve(events.len());
        self.touched_skus.reserve(events.len());
        self.demand.reserve(events.len());
        for (event, fingerprints) in events.iter().zip(fingerprints) {
            self.ingest_one(event, fingerprints, &mut request)?;
        }
        Ok(request.results)
    }

    /// Refuses the request when an event id was seen before, or earlier in the request, with
    /// another body. Returns every event's fingerprints and whether its id is already known
    /// (remembered, or earlier in this request): known ids are answered without a change.
    ///
    /// Each new id is remembered here, provisionally, in the same search of the index that
    /// found it absent (a second search later would miss the cache again on a large index);
    /// [`Transaction::ingest_one`] confirms or forgets it. A conflict forgets the provisional
    /// ids before refusing, and with an undo log they are logged, so that a later refusal of
    /// the request forgets them too.
    fn check_idempotency(&mut self, events: &[Event]) -> Result<Vec<Fingerprints>, Rejection> {
        let mut fingerprints = Vec::with_capacity(events.len());
        let mut fingerprinter = Fingerprinter::new();
        for event in events {
            let key = fingerprinter.id_key(&event.event_id);
            let body = fingerprinter.body(self.body_fingerprints, event);
            let known = match self.tenant.events_seen.insert_if_absent(key, body) {
                None => {
                    if self.undo_enabled {
                        self.undo.push(Undo::EventSeen(key));
                    }
                    false
                }
                Some(stored) if stored == body => true,
                Some(_) => {
                    for provisional in fingerprints.iter().filter(|f: &&Fingerprints| !f.known) {
                        self.tenant.events_seen.remove(&provisional.key);
                    }
                    return Err(Rejection::IdempotencyConflict {
                        id: event.event_id.to_string(),
                    });
                }
            };
            fingerprints.push(Fingerprints { key, known });
        }
        Ok(fingerprints)
    }

    fn ingest_one(
        &mut self,
        event: &Event,
        fingerprints: Fingerprints,
        request: &mut RequestEvents,
    ) -> Result<(), Rejection> {
        let index = request.results.len();
        request.results.push(EventResult {
            event_id: event.event_id.clone(),
            status: EventStatus::Duplicate,
        });
        if fingerprints.known {
            if self.is_held(event) {
                request.results[index].status = EventStatus::Held;
            }
            return Ok(());
        }
        // One search of the sources for what the common case (the next `seq`, nothing held)
        // needs to know.
        let (last_seq, nothing_held, seq_held) = match self.tenant.sources.get(&event.source) {
            Some(state) => (
                state.last_seq,
                state.held.is_empty(),
                state.held.contains_key(&event.seq),
            ),
            None => {
                self.source(&event.source);
                (0, true, false)
            }
        };
        // A second event claiming a `seq` already applied or held: the first one wins, and this
        // one's id is not remembered. Unless its `seq` belongs to a gap given up on: then it is
        // the first, late.
        if event.seq <= last_seq || seq_held {
            if event.seq <= last_seq && self.given_up_range(&event.source, event.seq).is_some() {
                self.remembered_event();
                self.apply_late(event)?;
                request.results[index].status = EventStatus::Applied;
                return Ok(());
            }
            self.tenant.events_seen.remove(&fingerprints.key);
            return Ok(());
        }
        self.remembered_event();
        let origin = Origin::of_event(event);
        if event.seq == last_seq + 1 {
            self.apply_in_order(event, &origin, true)?;
            request.results[index].status = EventStatus::Applied;
            // Applying an event holds none: with nothing held before, there is nothing to drain.
            if nothing_held {
                return Ok(());
            }
            return self.drain(&event.source, request);
        }
        self.hold(
            &event.source,
            HeldEvent {
                event: event.clone(),
                held_at: self.now,
                release_at: self.now.plus_micros(self.config.held_timeout_micros),
            },
        );
        request.results[index].status = EventStatus::Held;
        request
            .pending
            .insert((event.source.clone(), event.seq), index);
        while self.tenant.sources[&event.source].held.len() > self.config.held_events_per_source_max
        {
            self.give_up_gap(
                &event.source,
                &origin,
                "the held-event limit was reached",
                request,
            )?;
        }
        Ok(())
    }

    fn is_held(&self, event: &Event) -> bool {
        self.tenant
            .sources
            .get(&event.source)
            .and_then(|state| state.held.get(&event.seq))
            .is_some_and(|held| held.event.event_id == event.event_id)
    }

    /// Applies an event whose turn it is. A version conflict refuses the request when the event
    /// belongs to it; an event held from an earlier request was already answered, so its
    /// conflict is skipped (its `seq` consumed) and recorded as an incident.
    fn apply_in_order(
        &mut self,
        event: &Event,
        origin: &Origin,
        in_request: bool,
    ) -> Result<(), Rejection> {
        if let Err(rejection) = self.apply_effects(event, origin) {
            if in_request {
                return Err(rejection);
            }
            let detail = format!(
                "held event {} skipped: {}",
                event.event_id,
                describe_conflict(&rejection)
            );
            self.incident(
                origin,
                IncidentKind::VersionConflict,
                event.kind.sku(),
                event_location(event),
                0,
                detail,
            );
        }
        self.set_last_seq(&event.source, event.seq);
        Ok(())
    }

    /// Applies the held events that directly follow the last applied `seq` of `source`.
    fn drain(&mut self, source: &SourceId, request: &mut RequestEvents) -> Result<(), Rejection> {
        let mut drained = false;
        loop {
            let next = self.tenant.sources[source].last_seq.saturating_add(1);
            let Some(held) = self.take_held(source, next) else {
                break;
            };
            drained = true;
            let in_request = request.settle(source, next);
            let origin = Origin::of_event(&held.event);
            let result = self.apply_in_order(&held.event, &origin, in_request);
            self.held_taken(source, held);
            result?;
        }
        if drained {
            self.refresh_release_at(source);
        }
        Ok(())
    }

    /// The index of the given-up range of `source` that holds `seq`.
    fn given_up_range(&self, source: &SourceId, seq: u64) -> Option<usize> {
        let ranges = &self.tenant.sources.get(source)?.given_up;
        // Sorted and disjoint: the range holding `seq`, if any, is the last that starts at or
        // before it.
        let index = ranges
            .partition_point(|range| range.first <= seq)
            .checked_sub(1)?;
        ranges[index].contains(seq).then_some(index)
    }

    /// Applies an event of a given-up gap that arrived after all, and takes its `seq` out of the
    /// range. A version conflict refuses the request, as for any event of it.
    fn apply_late(&mut self, event: &Event) -> Result<(), Rejection> {
        let origin = Origin::of_event(event);
        self.apply_effects(event, &origin)?;
        let source = &event.source;
        let seq = event.seq;
        let index = self
            .given_up_range(source, seq)
            .expect("the caller found the range");
        let mut ranges = self.tenant.sources[source].given_up.clone();
        let range = ranges[index];
        match (seq == range.first, seq == range.last) {
            (true, true) => {
                ranges.remove(index);
            }
            (true, false) => ranges[index].first = seq + 1,
            (false, true) => ranges[index].last = seq - 1,
            (false, false) => {
                ranges[index].last = seq - 1;
                ranges.insert(
                    index + 1,
                    SeqRange {
                        first: seq + 1,
                        last: range.last,
                    },
                );
            }
        }
        let forgotten = self.bound_given_up(&mut ranges);
        self.set_given_up(source, ranges);
        let detail = format!(
            "seq {seq} of {source} arrived after its gap (seq {}..={}) was given up on: applied \
             late{}",
            range.first,
            range.last,
            forgotten_text(forgotten, self.config.given_up_ranges_per_source_max)
        );
        self.incident(
            &origin,
            IncidentKind::LateEvent,
            event.kind.sku(),
            event_location(event),
            0,
            detail,
        );
        Ok(())
    }

    /// Drops the lowest ranges past the limit; returns the `seq`s they covered.
    fn bound_given_up(&self, ranges: &mut Vec<SeqRange>) -> Option<SeqRange> {
        let excess = ranges
            .len()
            .saturating_sub(self.config.given_up_ranges_per_source_max);
        if excess == 0 {
            return None;
        }
        let forgotten = SeqRange {
            first: ranges[0].first,
            last: ranges[excess - 1].last,
        };
        ranges.drain(..excess);
        Some(forgotten)
    }

    /// Gives up on the gap before the lowest held `seq` of `source`: records it (and remembers
    /// its range, for events of it that arrive late), moves the source past it and applies what
    /// follows.
    pub(super) fn give_up_gap(
        &mut self,
        source: &SourceId,
        origin: &Origin,
        why: &str,
        request: &mut RequestEvents,
    ) -> Result<(), Rejection> {
        let state = &self.tenant.sources[source];
        let Some(&first_held) = state.held.keys().next() else {
            return Ok(());
        };
        let first_missing = state.last_seq + 1;
        let missing = first_held - first_missing;
        debug_assert!(missing >= 1);
        // Every range remembered lies below `last_seq`: the new one goes last.
        let mut ranges = state.given_up.clone();
        ranges.push(SeqRange {
            first: first_missing,
            last: first_held - 1,
        });
        let forgotten = self.bound_given_up(&mut ranges);
        let remembered = ranges.last().is_some_and(|r| r.first == first_missing);
        let limit = self.config.given_up_ranges_per_source_max;
        let late = if remembered {
            "an event of it that arrives late is applied"
        } else {
            "an event of it that arrives late is dropped (no given-up gaps are remembered)"
        };
        self.out.incidents.push(Incident {
            kind: IncidentKind::SequenceGap,
            at: self.now,
            position: self.position,
            sku: None,
            location: None,
            channel: None,
            source: Some(source.clone()),
            shortfall: missing as i64,
            detail: format!(
                "seq {first_missing}..={} of {source} never arrived ({missing} events): {why}; \
                 continuing at seq {first_held}; {late}{}",
                first_held - 1,
                if remembered {
                    forgotten_text(forgotten, limit)
                } else {
                    String::new()
                }
            ),
            cause: origin.cause(),
        });
        if !(ranges.is_empty() && self.tenant.sources[source].given_up.is_empty()) {
            self.set_given_up(source, ranges);
        }
        self.set_last_seq(source, first_held - 1);
        self.drain(source, request)
    }

    /// Deadline work: the earliest held event of `source` waited past its time limit.
    pub(super) fn give_up_timed_out_gap(&mut self, source: &SourceId) {
        let origin = Origin::time("held_event_timeout", "held-event time limit");
        let result = self.give_up_gap(
            source,
            &origin,
            "its held events waited past the time limit",
            &mut RequestEvents::default(),
        );
        // Events held by earlier requests are never refused (a conflict becomes an incident).
        assert!(result.is_ok(), "deadline work refused: {result:?}");
    }
}

fn has_expected_version(event: &Event) -> bool {
    matches!(
        event.kind,
        EventKind::Adjusted {
            expected_version: Some(_),
            ..
        } | EventKind::Counted {
            expected_version: Some(_),
            ..
        }
    )
}

fn event_location(event: &Event) -> Option<&crate::ids::LocationId> {
    match &event.kind {
        EventKind::Received { location, .. }
        | EventKind::Picked { location, .. }
        | EventKind::Returned { location, .. }
        | EventKind::Adjusted { location, .. }
        | EventKind::Counted { location, .. }
        | EventKind::Moved { location, .. }
        | EventKind::Transferred { location, .. } => Some(location),
        EventKind::Cancelled { .. } => None,
    }
}

/// How an incident says that given-up `seq`s were forgotten.
fn forgotten_text(forgotten: Option<SeqRange>, limit: usize) -> String {
    match forgotten {
        None => String::new(),
        Some(range) => format!(
            "; seq {}..={} no longer awaited (the limit of {limit} given-up gaps per source)",
            range.first, range.last
        ),
    }
}

fn describe_conflict(rejection: &Rejection) -> String {
    match rejection {
        Rejection::VersionConflict {
            expected, current, ..
        } => format!("expected version {expected}, current {current}"),
        other => other.code().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use crate::envelope::{Envelope, Input};
    use crate::event::{Event, EventKind};
    use crate::ids::{EventId, LocationId, Sku, SourceId, TenantId};
    use crate::ledger::{Ledger, LedgerConfig};
    use crate::outcome::{EventStatus, Reply};
    use crate::quantity::QuantityState;
    use crate::time::Timestamp;

    fn event(id: &str, seq: u64, kind: EventKind) -> Event {
        Event {
            event_id: EventId::parse(id).unwrap(),
            source: SourceId::parse("wms").unwrap(),
            seq,
            occurred_at: None,
            reason: None,
            reference: None,
            kind,
        }
    }

    fn received(quantity: i64) -> EventKind {
        EventKind::Received {
            sku: Sku::parse("A").unwrap(),
            location: LocationId::parse("east").unwrap(),
            quantity,
            to: QuantityState::Available,
        }
    }

    fn adjusted(expected_version: u64) -> EventKind {
        EventKind::Adjusted {
            sku: Sku::parse("A").unwrap(),
            location: LocationId::parse("east").unwrap(),
            delta: 1,
            expected_version: Some(expected_version),
        }
    }

    struct Harness {
        ledger: Ledger,
        position: u64,
    }

    impl Harness {
        fn new() -> Self {
            Self {
                ledger: Ledger::new(),
                position: 0,
            }
        }

        fn apply(&mut self, events: Vec<Event>) -> Reply {
            self.position += 1;
            let envelope = Envelope {
                position: self.position,
                tenant: TenantId::default_tenant(),
                recorded_at: Timestamp(1_000_000),
                input: Input::Events(events),
            };
            self.ledger.apply(&LedgerConfig::default(), &envelope).reply
        }

        fn statuses(&mut self, events: Vec<Event>) -> Vec<EventStatus> {
            match self.apply(events) {
                Reply::Events(results) => results.iter().map(|r| r.status).collect(),
                other => panic!("{other:?}"),
            }
        }

        fn refusal(&mut self, events: Vec<Event>) -> &'static str {
            match self.apply(events) {
                Reply::Rejected(rejection) => rejection.code(),
                other => panic!("{other:?}"),
            }
        }

        fn ids_remembered(&self) -> usize {
            self.ledger.tenants[&TenantId::default_tenant()]
                .events_seen
                .len()
        }
    }

    /// The idempotency check remembers new ids as it finds them absent; a refusal must forget
    /// every one of them, whether it comes from a conflict during the check or from a version
    /// check afterwards.
    #[test]
    fn a_refused_request_forgets_the_ids_it_checked() {
        let mut harness = Harness::new();
        harness.statuses(vec![event("old", 1, received(5))]);
        let before = harness.ledger.clone();
        let conflict = harness.refusal(vec![
            event("a", 2, received(1)),
            event("b", 3, received(1)),
            event("old", 1, received(6)),
        ]);
        assert_eq!(conflict, "idempotency_conflict");
        assert_eq!(harness.ledger, before);
        let version = harness.refusal(vec![event("c", 2, received(1)), event("d", 3, adjusted(9))]);
        assert_eq!(version, "version_conflict");
        assert_eq!(harness.ledger, before);
        assert_eq!(harness.ids_remembered(), 1);
        // The forgotten ids are new again, with any body.
        let statuses =
            harness.statuses(vec![event("a", 2, received(7)), event("c", 3, received(1))]);
        assert_eq!(statuses, [EventStatus::Applied, EventStatus::Applied]);
    }

    #[test]
    fn repeats_inside_a_request_and_ids_of_taken_seqs() {
        let mut harness = Harness::new();
        let statuses =
            harness.statuses(vec![event("a", 1, received(1)), event("a", 1, received(1))]);
        assert_eq!(statuses, [EventStatus::Applied, EventStatus::Duplicate]);
        let before = harness.ledger.clone();
        let conflict =
            harness.refusal(vec![event("b", 2, received(1)), event("b", 2, received(2))]);
        assert_eq!(conflict, "idempotency_conflict");
        assert_eq!(harness.ledger, before);
        // A new id claiming a seq already applied is answered duplicate and not remembered: its
        // id may come back with another body.
        assert_eq!(
            harness.statuses(vec![event("x", 1, received(3))]),
            [EventStatus::Duplicate]
        );
        assert_eq!(harness.ids_remembered(), 1);
        assert_eq!(
            harness.statuses(vec![event("x", 2, received(4))]),
            [EventStatus::Applied]
        );
        assert_eq!(harness.ids_remembered(), 2);
    }
}
