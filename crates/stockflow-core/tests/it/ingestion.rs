//! Exactly-once, ordered ingestion: deduplication forever, per-source order, the held buffer and
//! its limits, atomic requests, and the effects a request reports.

use crate::support::*;
use stockflow_core::availability::{
    AvailabilityCommand, ChannelConfig, ChannelKind, ChannelLocation,
};
use stockflow_core::command::Command;
use stockflow_core::envelope::Input;
use stockflow_core::event::Event;
use stockflow_core::ids::{ActorId, ChannelId, SourceId};
use stockflow_core::ledger::LedgerConfig;
use stockflow_core::outcome::{Cause, IncidentKind, Outcome, Reply};

fn wms(seq: u64, quantity: i64) -> Event {
    event("wms", seq, received("A", "east", quantity))
}

/// The reply and the incidents of one request, and the stock after it.
fn check(harness: &mut Harness, events: Vec<Event>, expected: &str) -> Outcome {
    let outcome = harness.events(events);
    let mut text = format!(
        "{}\n{}",
        render_reply(&outcome.reply),
        harness.render_stock()
    );
    if !outcome.incidents.is_empty() {
        text.push_str(&format!("incidents: {}\n", render_incidents(&outcome)));
    }
    assert_eq!(text.trim_end(), expected.trim(), "\n--- got:\n{text}");
    outcome
}

#[test]
fn duplicates_change_nothing_forever() {
    let mut harness = Harness::default();
    check(
        &mut harness,
        vec![wms(1, 5)],
        "applied\nA@east on_hand=5 available=5 v1",
    );
    for _ in 0..3 {
        harness.events(vec![wms(2, 1), wms(3, 1)]);
    }
    let before = harness.snapshot();
    harness.advance_seconds(365 * 24 * 3600);
    let outcome = check(
        &mut harness,
        vec![wms(1, 5), wms(3, 1)],
        "
duplicate,duplicate
A@east on_hand=7 available=7 v3",
    );
    assert!(!outcome.persist);
    assert!(outcome.audit.is_empty() && outcome.touched_skus.is_empty());
    assert_eq!(harness.snapshot(), before);
    // A different event claiming an applied seq: the first one won.
    let mut other = wms(2, 9);
    other.event_id = stockflow_core::ids::EventId::parse("other").unwrap();
    check(
        &mut harness,
        vec![other],
        "duplicate\nA@east on_hand=7 available=7 v3",
    );
}

#[test]
fn same_id_different_body_refuses_the_whole_request() {
    let mut harness = Harness::default();
    harness.events(vec![wms(1, 5)]);
    let before = harness.snapshot();
    let outcome = check(
        &mut harness,
        vec![wms(2, 1), wms(1, 6)],
        "
rejected idempotency_conflict
A@east on_hand=5 available=5 v1",
    );
    assert!(!outcome.persist);
    assert!(outcome.audit.is_empty() && outcome.touched_skus.is_empty());
    assert_eq!(harness.snapshot(), before);
    // Within one request too.
    let outcome = harness.events(vec![wms(2, 1), wms(2, 2)]);
    assert_eq!(
        render_reply(&outcome.reply),
        "rejected idempotency_conflict"
    );
    assert_eq!(harness.snapshot(), before);
}

#[test]
fn events_apply_in_seq_order() {
    let mut harness = Harness::default();
    check(
        &mut harness,
        vec![wms(1, 1)],
        "applied\nA@east on_hand=1 available=1 v1",
    );
    check(
        &mut harness,
        vec![wms(3, 3)],
        "held\nA@east on_hand=1 available=1 v1",
    );
    // A retry of a held event is still held.
    check(
        &mut harness,
        vec![wms(3, 3)],
        "held\nA@east on_hand=1 available=1 v1",
    );
    check(
        &mut harness,
        vec![wms(5, 5)],
        "held\nA@east on_hand=1 available=1 v1",
    );
    let outcome = check(
        &mut harness,
        vec![wms(2, 2)],
        "applied\nA@east on_hand=6 available=6 v3",
    );
    // The released event's audit entry names its own event.
    assert_eq!(outcome.audit.len(), 2);
    assert_eq!(
        outcome.audit[1].cause,
        Cause::Event {
            event_id: stockflow_core::ids::EventId::parse("wms-3").unwrap(),
            source: SourceId::parse("wms").unwrap(),
            event_type: "received".to_owned(),
        }
    );
    check(
        &mut harness,
        vec![wms(4, 4)],
        "applied\nA@east on_hand=15 available=15 v5",
    );
    assert_eq!(
        harness
            .ledger
            .source_last_seq(&harness.tenant, &SourceId::parse("wms").unwrap()),
        5
    );
    // Held and released by a later event of the same request: both applied.
    check(
        &mut harness,
        vec![wms(8, 1), wms(7, 1), wms(6, 1)],
        "
applied,applied,applied
A@east on_hand=18 available=18 v8",
    );
    // Sources are independent.
    check(
        &mut harness,
        vec![event("oms", 1, received("A", "east", 1)), wms(10, 1)],
        "
applied,held
A@east on_hand=19 available=19 v9",
    );
}

#[test]
fn a_full_held_buffer_gives_up_the_gap() {
    let mut harness = Harness::new(LedgerConfig {
        held_events_per_source_max: 2,
        ..LedgerConfig::default()
    });
    harness.events(vec![wms(1, 1)]);
    check(
        &mut harness,
        vec![wms(3, 1), wms(4, 1)],
        "held,held\nA@east on_hand=1 available=1 v1",
    );
    let outcome = check(
        &mut harness,
        vec![wms(6, 1)],
        "
held
A@east on_hand=3 available=3 v3
incidents: sequence_gap 1",
    );
    let gap = &outcome.incidents[0];
    assert_eq!(gap.source, Some(SourceId::parse("wms").unwrap()));
    assert!(gap.detail.contains("seq 2..=2"), "{}", gap.detail);
    // The event of the given-up gap is behind the source now, but it is a fact that happened:
    // applied late.
    check(
        &mut harness,
        vec![wms(2, 1)],
        "
applied
A@east on_hand=4 available=4 v4
incidents: late_event A@east 0",
    );
    // seq 6 still waits for 5.
    check(
        &mut harness,
        vec![wms(5, 1)],
        "applied\nA@east on_hand=6 available=6 v6",
    );
    // An event that overflows the buffer is applied with the others once the gap is given up.
    check(
        &mut harness,
        vec![wms(9, 1), wms(10, 1)],
        "held,held\nA@east on_hand=6 available=6 v6",
    );
    check(
        &mut harness,
        vec![wms(8, 1)],
        "
applied
A@east on_hand=9 available=9 v9
incidents: sequence_gap 1",
    );
}

#[test]
fn a_held_event_past_its_time_limit_gives_up_the_gap() {
    let mut harness = Harness::default();
    harness.events(vec![wms(1, 1)]);
    harness.events(vec![wms(3, 1)]);
    harness.advance_seconds(10);
    harness.events(vec![wms(5, 1)]);
    assert_eq!(harness.ledger.next_deadline(), Some(START.plus_seconds(30)));
    harness.advance_seconds(19);
    assert!(!harness.tick().persist);

    harness.advance_seconds(1);
    let outcome = harness.tick();
    assert!(outcome.persist);
    assert_eq!(render_incidents(&outcome), "sequence_gap 1");
    assert_eq!(
        outcome.incidents[0].cause,
        Cause::Time {
            what: "held_event_timeout".to_owned()
        }
    );
    assert_eq!(harness.render_stock(), "A@east on_hand=2 available=2 v2\n");
    // seq 5 waits for 4 until its own limit.
    assert_eq!(harness.ledger.next_deadline(), Some(START.plus_seconds(40)));
    harness.advance_seconds(10);
    let outcome = check(
        &mut harness,
        vec![wms(6, 1)],
        "
applied
A@east on_hand=4 available=4 v4
incidents: sequence_gap 1",
    );
    assert_eq!(
        outcome.incidents[0].cause,
        Cause::Time {
            what: "held_event_timeout".to_owned()
        }
    );
    assert_eq!(harness.ledger.next_deadline(), None);
}

#[test]
fn a_refused_request_leaves_the_state_byte_for_byte() {
    let mut harness = Harness::new(LedgerConfig {
        held_events_per_source_max: 2,
        ..LedgerConfig::default()
    });
    harness.events(vec![wms(1, 10), event("wms", 3, received("B", "west", 1))]);
    harness.reserve("r1", &[("A", Some("east"), 4)], 60);
    harness.events(vec![
        event("wms", 5, received("A", "east", 1)),
        event("wms", 6, received("A", "east", 1)),
    ]);
    let before = harness.snapshot();
    let cases: Vec<(Vec<Event>, &str)> = vec![
        // Fills a gap (draining held events), overflows the buffer (giving up a gap), picks
        // from a reservation, leaves a tombstone, picks ahead of a reservation not seen yet,
        // then fails a version check.
        (
            vec![
                event("wms", 2, picked("A", "east", 4, Some("r1"))),
                event("wms", 9, received("C", "north", 1)),
                event("oms", 1, cancelled("r2", None, None)),
                event("oms", 2, picked("A", "east", 1, Some("r3"))),
                event("oms", 3, adjusted("A", "east", 1, Some(99))),
            ],
            "rejected version_conflict",
        ),
        (
            vec![event("wms", 2, received("A", "east", 1)), wms(1, 11)],
            "rejected idempotency_conflict",
        ),
        (
            vec![
                event("wms", 2, received("A", "east", 1)),
                event("wms", 4, received("A", "east", 0)),
            ],
            "rejected invalid",
        ),
        // The event held in this request and drained by a later one fails its check.
        (
            vec![
                event("wms", 4, counted("A", "east", 3, Some(1))),
                event("wms", 2, received("A", "east", 1)),
            ],
            "rejected version_conflict",
        ),
    ];
    for (events, expected) in cases {
        let outcome = harness.events(events);
        assert_eq!(render_reply(&outcome.reply), expected);
        assert!(!outcome.persist);
        assert!(outcome.audit.is_empty() && outcome.incidents.is_empty());
        assert!(outcome.touched_skus.is_empty() && outcome.touched_reservations.is_empty());
        assert_eq!(
            String::from_utf8(harness.snapshot()).unwrap(),
            String::from_utf8(before.clone()).unwrap()
        );
    }
    // A refused first request of a new tenant leaves no tenant behind.
    harness.tenant = stockflow_core::ids::TenantId::parse("other").unwrap();
    harness.reserve("r1", &[("A", None, 1)], 60);
    assert!(harness.ledger.tenant(&harness.tenant).is_none());
}

#[test]
fn a_held_event_failing_its_version_later_is_skipped_with_an_incident() {
    let mut harness = Harness::default();
    harness.events(vec![wms(1, 10)]);
    check(
        &mut harness,
        vec![event("wms", 3, counted("A", "east", 4, Some(1)))],
        "
held
A@east on_hand=10 available=10 v1",
    );
    check(
        &mut harness,
        vec![wms(2, 1)],
        "
applied
A@east on_hand=11 available=11 v2
incidents: version_conflict A@east 0",
    );
    let mut same_seq = wms(3, 1);
    same_seq.event_id = stockflow_core::ids::EventId::parse("wms-3-again").unwrap();
    check(
        &mut harness,
        vec![wms(4, 1), same_seq],
        "
applied,duplicate
A@east on_hand=12 available=12 v3",
    );
    assert_eq!(harness.quantities("A", "east").version, 3);
}

#[test]
fn a_request_reports_each_effect_once() {
    let mut harness = Harness::default();
    harness.apply(Input::Command {
        actor: ActorId::parse("tester").unwrap(),
        command: Command::Availability(AvailabilityCommand::UpsertChannel(ChannelConfig {
            id: ChannelId::parse("shop").unwrap(),
            kind: ChannelKind::Webhook,
            locations: vec![ChannelLocation {
                location: loc("east"),
                priority: 1,
            }],
            per_location: false,
        })),
    });
    let mut first = wms(1, 2);
    first.reason = Some("PO delivery".to_owned());
    first.reference = Some("PO-9".to_owned());
    let outcome = harness.events(vec![
        first,
        wms(2, 3),
        event("wms", 3, received("B", "east", 1)),
        wms(4, 1),
    ]);
    assert_eq!(outcome.touched_skus, vec![sku("A"), sku("B")]);
    assert_eq!(outcome.audit.len(), 4);
    assert_eq!(
        outcome.audit[0].reason.as_deref(),
        Some("PO delivery (reference PO-9)")
    );
    assert_eq!(outcome.audit[0].actor, "wms");
    assert_eq!(outcome.audit[0].position, harness.position);
    // One availability change per SKU, computed after the whole request.
    let changes: Vec<(String, i64)> = outcome
        .availability
        .iter()
        .map(|c| (c.sku.to_string(), c.available_to_sell))
        .collect();
    assert_eq!(changes, vec![("A".to_owned(), 6), ("B".to_owned(), 1)]);
    assert!(
        outcome
            .availability
            .iter()
            .all(|c| c.position == harness.position && c.caused_at == harness.now)
    );
    // A reservation is a change of the reservation and of the SKU.
    let outcome = harness.reserve("r1", &[("A", None, 2), ("A", None, 1)], 60);
    assert_eq!(outcome.touched_reservations, vec![rid("r1")]);
    assert_eq!(outcome.touched_skus, vec![sku("A")]);
    // Two lines on one SKU x location: one change, one version step, one audit entry.
    assert_eq!(outcome.audit.len(), 1);
    assert_eq!(harness.quantities("A", "east").version, 4);
    assert_eq!(outcome.availability.len(), 1);
    assert!(matches!(
        outcome.reply,
        Reply::Reservation { created: true, .. }
    ));
}

#[test]
fn a_cancellation_before_its_reservation_is_not_lost() {
    let mut harness = Harness::default();
    harness.events(vec![wms(1, 5)]);
    let outcome = harness.events(vec![event("oms", 1, cancelled("order-1", None, None))]);
    assert_eq!(outcome.incidents[0].kind, IncidentKind::UnknownReservation);
    assert_eq!(outcome.touched_reservations, vec![rid("order-1")]);
    let before = harness.snapshot();
    let outcome = harness.reserve("order-1", &[("A", None, 2)], 60);
    assert_eq!(render_reply(&outcome.reply), "order-1 released []");
    assert!(!outcome.persist);
    assert_eq!(harness.snapshot(), before);
    assert_eq!(harness.render_stock(), "A@east on_hand=5 available=5 v1\n");
}

#[test]
fn tenants_are_independent() {
    let mut harness = Harness::default();
    harness.events(vec![wms(1, 5)]);
    harness.reserve("r1", &[("A", None, 2)], 60);
    let default_tenant = harness.tenant.clone();
    harness.tenant = stockflow_core::ids::TenantId::parse("merchant-2").unwrap();
    // The same event id and seq mean nothing to another tenant.
    check(
        &mut harness,
        vec![wms(1, 7)],
        "applied\nA@east on_hand=7 available=7 v1",
    );
    harness.reserve("r1", &[("A", None, 1)], 120);
    harness.advance_seconds(60);
    assert_eq!(
        harness.ledger.tenants_due(harness.now),
        vec![default_tenant.clone()]
    );
    // A tick for one tenant does not expire another tenant's reservations.
    assert!(!harness.tick().persist);
    assert_eq!(
        render_reservation(harness.reservation("r1").unwrap()),
        "r1 provisional [A@east 1/c0/p0/h1]"
    );
    harness.tenant = default_tenant;
    assert!(harness.tick().persist);
    assert_eq!(
        render_reservation(harness.reservation("r1").unwrap()),
        "r1 expired [A@east 2/c0/p0/h0]"
    );
    assert_eq!(
        harness.ledger.next_deadline(),
        Some(START.plus_seconds(120))
    );
}

// ---------------------------------------------------------------------------------------------
// Late events of a given-up gap

/// An event of `wms` with another id than `wms(seq, ..)`: a second event claiming that seq.
fn again(seq: u64, quantity: i64) -> Event {
    let mut event = wms(seq, quantity);
    event.event_id = stockflow_core::ids::EventId::parse(format!("wms-{seq}-again")).unwrap();
    event
}

/// The given-up ranges of `wms`: `2..=2 4..=4`, or `-`.
fn given_up(harness: &Harness) -> String {
    let ranges: Vec<String> = harness
        .ledger
        .tenant(&harness.tenant)
        .and_then(|t| t.sources.get(&SourceId::parse("wms").unwrap()))
        .map(|s| {
            s.given_up
                .iter()
                .map(|r| format!("{}..={}", r.first, r.last))
                .collect()
        })
        .unwrap_or_default();
    if ranges.is_empty() {
        "-".to_owned()
    } else {
        ranges.join(" ")
    }
}

/// Runs requests in order on one harness; after each, checks the reply, the stock, the
/// incidents and the given-up ranges of `wms`, and that a request changes the state exactly
/// when it asks to be journaled. Ends with a replay of the journal. Returns the incidents.
fn late_table(config: LedgerConfig, steps: Vec<(Vec<Event>, &str)>) -> Vec<Outcome> {
    let mut harness = Harness::new(config.clone());
    let mut outcomes = Vec::new();
    for (index, (events, expected)) in steps.into_iter().enumerate() {
        let before = harness.snapshot();
        let outcome = harness.events(events);
        let mut text = format!(
            "{}\n{}given up: {}\n",
            render_reply(&outcome.reply),
            harness.render_stock(),
            given_up(&harness)
        );
        if !outcome.incidents.is_empty() {
            text.push_str(&format!("incidents: {}\n", render_incidents(&outcome)));
        }
        assert_eq!(
            text.trim_end(),
            expected.trim(),
            "\n--- step {index}, got:\n{text}"
        );
        assert_eq!(
            outcome.persist,
            harness.snapshot() != before,
            "step {index}"
        );
        outcomes.push(outcome);
    }
    let mut replayed = Harness::new(config);
    for envelope in harness.journal.clone() {
        replayed.now = envelope.recorded_at;
        replayed.apply(envelope.input);
    }
    assert_eq!(replayed.snapshot(), harness.snapshot(), "replay differs");
    outcomes
}

#[test]
fn a_late_event_of_a_given_up_gap_is_applied_once() {
    let config = LedgerConfig {
        held_events_per_source_max: 2,
        ..LedgerConfig::default()
    };
    let outcomes = late_table(
        config,
        vec![
            (
                vec![wms(1, 1)],
                "applied\nA@east on_hand=1 available=1 v1\ngiven up: -",
            ),
            // seq 2..=4 never arrive; the buffer overflows at seq 7, which releases the
            // three.
            (
                vec![wms(5, 1), wms(6, 1), wms(7, 1)],
                "
applied,applied,applied
A@east on_hand=4 available=4 v4
given up: 2..=4
incidents: sequence_gap 3",
            ),
            // seq 3 after all: applied late, the range split around it.
            (
                vec![wms(3, 10)],
                "
applied
A@east on_hand=14 available=14 v5
given up: 2..=2 4..=4
incidents: late_event A@east 0",
            ),
            // Its repeat, and another event claiming seq 3: duplicates, nothing changes.
            (
                vec![wms(3, 10), again(3, 20)],
                "
duplicate,duplicate
A@east on_hand=14 available=14 v5
given up: 2..=2 4..=4",
            ),
            // The rest of the gap in one request, with a claim on a seq filled in it.
            (
                vec![wms(4, 100), wms(2, 1000), again(2, 1)],
                "
applied,applied,duplicate
A@east on_hand=1114 available=1114 v7
given up: -
incidents: late_event A@east 0; late_event A@east 0",
            ),
            (
                vec![again(4, 1), wms(8, 1)],
                "
duplicate,applied
A@east on_hand=1115 available=1115 v8
given up: -",
            ),
        ],
    );
    let gap = &outcomes[1].incidents[0];
    assert!(
        gap.detail
            .contains("an event of it that arrives late is applied"),
        "{}",
        gap.detail
    );
    let late = &outcomes[2].incidents[0];
    assert_eq!(late.source, Some(SourceId::parse("wms").unwrap()));
    assert_eq!(
        late.detail,
        "seq 3 of wms arrived after its gap (seq 2..=4) was given up on: applied late"
    );
    assert_eq!(
        late.cause,
        Cause::Event {
            event_id: stockflow_core::ids::EventId::parse("wms-3").unwrap(),
            source: SourceId::parse("wms").unwrap(),
            event_type: "received".to_owned(),
        }
    );
}

#[test]
fn late_events_beyond_the_remembered_gaps_are_dropped() {
    // One range remembered per source: the lowest is forgotten when a gap is given up or a
    // range splits past the limit.
    let config = LedgerConfig {
        held_events_per_source_max: 1,
        given_up_ranges_per_source_max: 1,
        ..LedgerConfig::default()
    };
    let outcomes = late_table(
        config,
        vec![
            (
                vec![wms(1, 1), wms(3, 1), wms(4, 1)],
                "
applied,applied,applied
A@east on_hand=3 available=3 v3
given up: 2..=2
incidents: sequence_gap 1",
            ),
            (
                vec![wms(6, 1), wms(7, 1)],
                "
applied,applied
A@east on_hand=5 available=5 v5
given up: 5..=5
incidents: sequence_gap 1",
            ),
            // Forgotten: dropped as any seq behind the source.
            (
                vec![wms(2, 10)],
                "duplicate\nA@east on_hand=5 available=5 v5\ngiven up: 5..=5",
            ),
            (
                vec![wms(13, 1), wms(14, 1)],
                "
applied,applied
A@east on_hand=7 available=7 v7
given up: 8..=12
incidents: sequence_gap 5",
            ),
            // Splitting 8..=12 around 10 would make two ranges: 8..=9 is forgotten.
            (
                vec![wms(10, 10)],
                "
applied
A@east on_hand=17 available=17 v8
given up: 11..=12
incidents: late_event A@east 0",
            ),
            (
                vec![wms(9, 100), wms(12, 100)],
                "
duplicate,applied
A@east on_hand=117 available=117 v9
given up: 11..=11
incidents: late_event A@east 0",
            ),
        ],
    );
    assert!(
        outcomes[1].incidents[0]
            .detail
            .ends_with("seq 2..=2 no longer awaited (the limit of 1 given-up gaps per source)"),
        "{}",
        outcomes[1].incidents[0].detail
    );
    assert!(
        outcomes[4].incidents[0]
            .detail
            .contains("applied late; seq 8..=9 no longer awaited"),
        "{}",
        outcomes[4].incidents[0].detail
    );

    // None remembered: a late event is dropped, and the gap's incident says so.
    let config = LedgerConfig {
        held_events_per_source_max: 1,
        given_up_ranges_per_source_max: 0,
        ..LedgerConfig::default()
    };
    let outcomes = late_table(
        config,
        vec![
            (
                vec![wms(1, 1), wms(3, 1), wms(4, 1)],
                "
applied,applied,applied
A@east on_hand=3 available=3 v3
given up: -
incidents: sequence_gap 1",
            ),
            (
                vec![wms(2, 10)],
                "duplicate\nA@east on_hand=3 available=3 v3\ngiven up: -",
            ),
        ],
    );
    assert!(
        outcomes[0].incidents[0]
            .detail
            .ends_with("dropped (no given-up gaps are remembered)"),
        "{}",
        outcomes[0].incidents[0].detail
    );
}

#[test]
fn a_late_event_after_a_timed_out_gap_and_refusals() {
    let mut harness = Harness::default();
    harness.events(vec![wms(1, 10), wms(3, 1)]);
    harness.advance_seconds(30);
    assert_eq!(render_incidents(&harness.tick()), "sequence_gap 1");
    assert_eq!(given_up(&harness), "2..=2");
    let before = harness.snapshot();
    // A request refused after the late event changed things leaves it all as it was, the
    // range included.
    let refused = harness.events(vec![
        event("wms", 2, picked("A", "east", 4, None)),
        event("wms", 4, adjusted("A", "east", 1, Some(99))),
    ]);
    assert_eq!(render_reply(&refused.reply), "rejected version_conflict");
    assert_eq!(harness.snapshot(), before);
    // A late event is checked against the version it finds, like any other.
    let refused = harness.events(vec![event("wms", 2, adjusted("A", "east", -4, Some(1)))]);
    assert_eq!(render_reply(&refused.reply), "rejected version_conflict");
    assert_eq!(harness.snapshot(), before);
    check(
        &mut harness,
        vec![event("wms", 2, adjusted("A", "east", -4, Some(2)))],
        "
applied
A@east on_hand=7 available=7 v3
incidents: late_event A@east 0",
    );
    assert_eq!(given_up(&harness), "-");
    // Replays to the same state.
    let mut replayed = Harness::default();
    for envelope in harness.journal.clone() {
        replayed.now = envelope.recorded_at;
        replayed.apply(envelope.input);
    }
    assert_eq!(replayed.snapshot(), harness.snapshot());
}

/// A snapshot written before given-up gaps were remembered (no `given_up` field) loads, with
/// none remembered.
#[test]
fn a_snapshot_without_given_up_gaps_loads() {
    let mut harness = Harness::new(LedgerConfig {
        held_events_per_source_max: 1,
        ..LedgerConfig::default()
    });
    harness.events(vec![wms(1, 1), wms(3, 1), wms(4, 1)]);
    assert_eq!(given_up(&harness), "2..=2");
    let mut value: serde_json::Value = serde_json::from_slice(&harness.snapshot()).unwrap();
    let source = &mut value["tenants"]["default"]["sources"]["wms"];
    assert!(source.as_object_mut().unwrap().remove("given_up").is_some());
    harness.ledger = serde_json::from_value(value).unwrap();
    assert_eq!(given_up(&harness), "-");
    check(
        &mut harness,
        vec![wms(2, 1)],
        "duplicate\nA@east on_hand=3 available=3 v3",
    );
}
