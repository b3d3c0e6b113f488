//! Exactly-once, ordered ingestion per tenant and source.
//!
//! An event id is remembered forever (the fingerprint of its body beside it). Per source, events
//! apply in `seq` order from 1: a `seq` at or below the last applied is a duplicate, the next one
//! applies and then releases the held events that follow it, a later one waits in a bounded
//! buffer. When the buffer overflows or its earliest event waits past its time limit, the first
//! gap is given up on (a `SequenceGap` incident) and the source continues after it.

use super::fingerprint::{Fingerprint, Fingerprinter};
use super::transaction::{Origin, Transaction};
use super::{HeldEvent, validate};
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

/// An event's id key and body fingerprint, and whether its id is already known.
struct Fingerprints {
    key: Fingerprint,
    body: Fingerprint,
    known: bool,
}

impl Transaction<'_> {
    /// Applies one request of events, all or nothing. Stateless checks come first, for the
    /// whole request; a conflict found on the way is refused by the caller's rollback.
    pub(super) fn ingest(&mut self, events: &[Event]) -> Result<Vec<EventResult>, Rejection> {
        validate::events(events)?;
        let fingerprints = self.check_idempotency(events)?;
        // Past the checks above, only a failed `expected_version` can refuse the request once it
        // has changed something; without one, no undo log is needed.
        self.undo_enabled = events.iter().any(has_expected_version);
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
    fn check_idempotency(&self, events: &[Event]) -> Result<Vec<Fingerprints>, Rejection> {
        let conflict = |event: &Event| Rejection::IdempotencyConflict {
            id: event.event_id.to_string(),
        };
        let mut fingerprints = Vec::with_capacity(events.len());
        let mut fingerprinter = Fingerprinter::new();
        for event in events {
            let key = fingerprinter.id_key(&event.event_id);
            let body = fingerprinter.body(self.body_fingerprints, event);
            let stored = self.tenant.events_seen.get(&key);
            if stored.is_some_and(|stored| *stored != body) {
                return Err(conflict(event));
            }
            fingerprints.push(Fingerprints {
                key,
                body,
                known: stored.is_some(),
            });
        }
        if events.len() > 1 {
            let mut sorted: Vec<(Fingerprint, usize)> = fingerprints
                .iter()
                .enumerate()
                .map(|(index, f)| (f.key, index))
                .collect();
            sorted.sort_unstable();
            for pair in sorted.windows(2) {
                let ((key, first), (other, later)) = (pair[0], pair[1]);
                if key != other {
                    continue;
                }
                if fingerprints[first].body != fingerprints[later].body {
                    return Err(conflict(&events[later]));
                }
                fingerprints[later].known = true;
            }
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
        // A second event claiming a `seq` already applied or held: the first one wins.
        if event.seq <= last_seq || seq_held {
            return Ok(());
        }
        self.remember_event(fingerprints.key, fingerprints.body);
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

    /// Gives up on the gap before the lowest held `seq` of `source`: records it, moves the source
    /// past it and applies what follows.
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
                 continuing at seq {first_held}",
                first_held - 1
            ),
            cause: origin.cause(),
        });
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

fn describe_conflict(rejection: &Rejection) -> String {
    match rejection {
        Rejection::VersionConflict {
            expected, current, ..
        } => format!("expected version {expected}, current {current}"),
        other => other.code().to_owned(),
    }
}
