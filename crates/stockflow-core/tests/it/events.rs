//! Every event type, table-driven: setup events and commands, then one event; the rendering
//! shows the reply, every SKU x location, every reservation and the incidents of that event.

use crate::support::*;
use stockflow_core::command::LedgerCommand;
use stockflow_core::event::{Condition, EventKind};
use stockflow_core::quantity::QuantityState::{
    Available, Committed, Damaged, Incoming, QualityControl, Reserved,
};

fn check(setup: Vec<EventKind>, commands: Vec<LedgerCommand>, event: EventKind, expected: &str) {
    let mut harness = Harness::default();
    if !setup.is_empty() {
        harness.wms(setup);
    }
    for command in commands {
        harness.command(command);
    }
    let outcome = harness.wms(vec![event]);
    let mut text = format!(
        "{}\n{}",
        render_reply(&outcome.reply),
        harness.render_stock()
    );
    if let Some(tenant) = harness.ledger.tenant(&harness.tenant) {
        for reservation in tenant.reservations.values() {
            text.push_str(&render_reservation(reservation));
            text.push('\n');
        }
    }
    if !outcome.incidents.is_empty() {
        text.push_str(&format!("incidents: {}\n", render_incidents(&outcome)));
    }
    assert_eq!(text.trim_end(), expected.trim(), "\n--- got:\n{text}");
}

#[test]
fn event_received() {
    check(
        vec![],
        vec![],
        received("A", "east", 5),
        "
applied
A@east on_hand=5 available=5 v1",
    );
    let to_qc = EventKind::Received {
        sku: sku("A"),
        location: loc("east"),
        quantity: 5,
        to: QualityControl,
    };
    check(
        vec![],
        vec![],
        to_qc,
        "
applied
A@east on_hand=5 quality_control=5 v1",
    );
    // Arriving stock is no longer incoming, as far as it was expected.
    check(
        vec![
            received("A", "west", 10),
            transferred("A", "west", "east", 3),
        ],
        vec![],
        received("A", "east", 2),
        "
applied
A@east on_hand=2 available=2 incoming=1 v2
A@west on_hand=7 available=7 v2",
    );
    check(
        vec![
            received("A", "west", 10),
            transferred("A", "west", "east", 3),
        ],
        vec![],
        received("A", "east", 5),
        "
applied
A@east on_hand=5 available=5 v2
A@west on_hand=7 available=7 v2",
    );
}

#[test]
fn event_picked() {
    check(
        vec![received("A", "east", 10)],
        vec![],
        picked("A", "east", 3, None),
        "
applied
A@east on_hand=7 available=7 v2",
    );
    // A pick nobody expected is a fact: available goes negative, an incident says so.
    check(
        vec![received("A", "east", 2)],
        vec![],
        picked("A", "east", 5, None),
        "
applied
A@east on_hand=-3 available=-3 v2
incidents: negative_available A@east 3",
    );
    // From the committed units of a confirmed reservation.
    check(
        vec![received("A", "east", 10)],
        vec![
            reserve("r1", None, &[("A", Some("east"), 4)], 60),
            confirm("r1", None),
        ],
        picked("A", "east", 3, Some("r1")),
        "
applied
A@east on_hand=7 available=6 committed=1 v4
r1 confirmed [A@east 4/c4/p3/h1]",
    );
    // From the reserved units of a provisional one; beyond what it holds, from available.
    check(
        vec![received("A", "east", 10)],
        vec![reserve("r1", None, &[("A", Some("east"), 2)], 60)],
        picked("A", "east", 3, Some("r1")),
        "
applied
A@east on_hand=7 available=7 v3
r1 fulfilled [A@east 2/c0/p2/h0]",
    );
    // A line at another location is not touched: the units came from where they were picked.
    check(
        vec![received("A", "east", 10), received("A", "west", 10)],
        vec![reserve("r1", None, &[("A", Some("west"), 2)], 60)],
        picked("A", "east", 2, Some("r1")),
        "
applied
A@east on_hand=8 available=8 v2
A@west on_hand=10 available=8 reserved=2 v2
r1 provisional [A@west 2/c0/p0/h2]",
    );
    check(
        vec![received("A", "east", 10)],
        vec![],
        picked("A", "east", 3, Some("nope")),
        "
applied
A@east on_hand=7 available=7 v2
incidents: unknown_reservation A@east 0",
    );
    // A released reservation holds nothing: the pick comes from available.
    check(
        vec![received("A", "east", 10)],
        vec![
            reserve("r1", None, &[("A", Some("east"), 2)], 60),
            release("r1"),
        ],
        picked("A", "east", 2, Some("r1")),
        "
applied
A@east on_hand=8 available=8 v4
r1 released [A@east 2/c0/p0/h0]",
    );
}

#[test]
fn event_returned() {
    check(
        vec![received("A", "east", 1)],
        vec![],
        returned("A", "east", 2, Condition::Sellable),
        "
applied
A@east on_hand=3 available=3 v2",
    );
    check(
        vec![],
        vec![],
        returned("A", "east", 2, Condition::Damaged),
        "
applied
A@east on_hand=2 damaged=2 v1",
    );
    check(
        vec![],
        vec![],
        returned("A", "east", 2, Condition::QualityControl),
        "
applied
A@east on_hand=2 quality_control=2 v1",
    );
}

#[test]
fn event_adjusted() {
    check(
        vec![received("A", "east", 10)],
        vec![],
        adjusted("A", "east", -3, None),
        "
applied
A@east on_hand=7 available=7 v2",
    );
    check(
        vec![received("A", "east", 10)],
        vec![],
        adjusted("A", "east", 4, Some(1)),
        "
applied
A@east on_hand=14 available=14 v2",
    );
    check(
        vec![received("A", "east", 10)],
        vec![],
        adjusted("A", "east", 4, Some(7)),
        "
rejected version_conflict
A@east on_hand=10 available=10 v1",
    );
    // Expected version 0 means "never changed": right for a new SKU x location.
    check(
        vec![],
        vec![],
        adjusted("A", "east", 4, Some(0)),
        "
applied
A@east on_hand=4 available=4 v1",
    );
    check(
        vec![received("A", "east", 1)],
        vec![],
        adjusted("A", "east", -3, None),
        "
applied
A@east on_hand=-2 available=-2 v2
incidents: negative_available A@east 2",
    );
}

#[test]
fn event_counted() {
    check(
        vec![received("A", "east", 10)],
        vec![],
        counted("A", "east", 6, Some(1)),
        "
applied
A@east on_hand=6 available=6 v2",
    );
    check(
        vec![received("A", "east", 10)],
        vec![],
        counted("A", "east", 6, Some(0)),
        "
rejected version_conflict
A@east on_hand=10 available=10 v1",
    );
    // A count that agrees changes nothing: no version step.
    check(
        vec![received("A", "east", 10)],
        vec![],
        counted("A", "east", 10, None),
        "
applied
A@east on_hand=10 available=10 v1",
    );
    // The difference goes through available, which may go below zero.
    check(
        vec![received("A", "east", 10)],
        vec![reserve("r1", None, &[("A", Some("east"), 4)], 60)],
        counted("A", "east", 3, None),
        "
applied
A@east on_hand=3 available=-1 reserved=4 v3
r1 provisional [A@east 4/c0/p0/h4]
incidents: negative_available A@east 1",
    );
}

#[test]
fn event_moved() {
    check(
        vec![received("A", "east", 10)],
        vec![],
        moved("A", "east", 2, Available, Damaged),
        "
applied
A@east on_hand=10 available=8 damaged=2 v2",
    );
    check(
        vec![
            received("A", "east", 10),
            moved("A", "east", 2, Available, Damaged),
        ],
        vec![],
        moved("A", "east", 3, Damaged, Available),
        "
applied
A@east on_hand=10 available=11 damaged=-1 v3
incidents: negative_quantity A@east 1",
    );
    check(
        vec![
            received("A", "west", 10),
            transferred("A", "west", "east", 3),
        ],
        vec![],
        moved("A", "east", 3, Incoming, QualityControl),
        "
applied
A@east on_hand=3 quality_control=3 v2
A@west on_hand=7 available=7 v2",
    );
    check(
        vec![received("A", "east", 10)],
        vec![],
        moved("A", "east", 4, Available, Incoming),
        "
applied
A@east on_hand=6 available=6 incoming=4 v2",
    );
    // Moving reserved units is a fact too; the reservation still says it holds them.
    check(
        vec![received("A", "east", 10)],
        vec![reserve("r1", None, &[("A", Some("east"), 2)], 60)],
        moved("A", "east", 2, Reserved, Committed),
        "
applied
A@east on_hand=10 available=8 committed=2 v3
r1 provisional [A@east 2/c0/p0/h2]",
    );
}

#[test]
fn event_transferred() {
    check(
        vec![received("A", "east", 10)],
        vec![],
        transferred("A", "east", "west", 4),
        "
applied
A@east on_hand=6 available=6 v2
A@west on_hand=0 incoming=4 v1",
    );
    check(
        vec![received("A", "east", 1)],
        vec![],
        transferred("A", "east", "west", 4),
        "
applied
A@east on_hand=-3 available=-3 v2
A@west on_hand=0 incoming=4 v1
incidents: negative_available A@east 3",
    );
}

#[test]
fn event_cancelled() {
    let stock = || vec![received("A", "east", 10), received("B", "east", 10)];
    let two_lines = || {
        reserve(
            "r1",
            None,
            &[("A", Some("east"), 3), ("B", Some("east"), 2)],
            60,
        )
    };
    check(
        stock(),
        vec![two_lines(), confirm("r1", None)],
        cancelled("r1", None, None),
        "
applied
A@east on_hand=10 available=10 v4
B@east on_hand=10 available=10 v4
r1 released [A@east 3/c3/p0/h0 B@east 2/c2/p0/h0]",
    );
    check(
        stock(),
        vec![two_lines()],
        cancelled("r1", Some("A"), Some(1)),
        "
applied
A@east on_hand=10 available=8 reserved=2 v3
B@east on_hand=10 available=8 reserved=2 v2
r1 provisional [A@east 3/c0/p0/h2 B@east 2/c0/p0/h2]",
    );
    // The whole line of one SKU; the other still holds.
    check(
        stock(),
        vec![two_lines()],
        cancelled("r1", Some("B"), None),
        "
applied
A@east on_hand=10 available=7 reserved=3 v2
B@east on_hand=10 available=10 v3
r1 provisional [A@east 3/c0/p0/h3 B@east 2/c0/p0/h0]",
    );
    // Picked in part, cancelled for the rest: fulfilled.
    check(
        vec![received("A", "east", 10), picked("B", "east", 1, None)],
        vec![
            reserve("r1", None, &[("A", Some("east"), 3)], 60),
            confirm("r1", None),
        ],
        picked("A", "east", 1, Some("r1")),
        "
applied
A@east on_hand=9 available=7 committed=2 v4
B@east on_hand=-1 available=-1 v1
r1 confirmed [A@east 3/c3/p1/h2]",
    );
    // Cancelling a resolved reservation changes nothing.
    check(
        stock(),
        vec![two_lines(), release("r1")],
        cancelled("r1", None, None),
        "
applied
A@east on_hand=10 available=10 v3
B@east on_hand=10 available=10 v3
r1 released [A@east 3/c0/p0/h0 B@east 2/c0/p0/h0]",
    );
    // Before its reservation: a tombstone.
    check(
        vec![],
        vec![],
        cancelled("r9", None, None),
        "
applied
r9 released []
incidents: unknown_reservation 0",
    );
    check(
        vec![],
        vec![],
        cancelled("r9", Some("A"), Some(1)),
        "
applied
incidents: unknown_reservation A 0",
    );
}

#[test]
fn cancelled_after_partial_pick_is_fulfilled() {
    let mut harness = Harness::default();
    harness.wms(vec![received("A", "east", 10)]);
    harness.reserve("r1", &[("A", Some("east"), 3)], 60);
    harness.command(confirm("r1", None));
    harness.wms(vec![
        picked("A", "east", 1, Some("r1")),
        cancelled("r1", None, None),
    ]);
    assert_eq!(
        render_reservation(harness.reservation("r1").unwrap()),
        "r1 fulfilled [A@east 3/c3/p1/h0]"
    );
    assert_eq!(harness.render_stock(), "A@east on_hand=9 available=9 v5\n");
}

#[test]
fn invalid_values_are_refused_without_panicking() {
    let cases = vec![
        (received("A", "east", 0), "events[0].quantity"),
        (received("A", "east", 1_000_000_001), "events[0].quantity"),
        (picked("A", "east", -1, None), "events[0].quantity"),
        (adjusted("A", "east", 0, None), "events[0].delta"),
        (adjusted("A", "east", i64::MIN, None), "events[0].delta"),
        (counted("A", "east", -1, None), "events[0].counted"),
        (moved("A", "east", 1, Damaged, Damaged), "events[0].to"),
        (transferred("A", "east", "east", 1), "events[0].to_location"),
        (cancelled("r1", None, Some(1)), "events[0].quantity"),
        (cancelled("r1", Some("A"), Some(0)), "events[0].quantity"),
        (
            EventKind::Received {
                sku: sku("A"),
                location: loc("east"),
                quantity: 1,
                to: Reserved,
            },
            "events[0].to",
        ),
    ];
    for (kind, field) in cases {
        let mut harness = Harness::default();
        let outcome = harness.wms(vec![kind.clone()]);
        match &outcome.reply {
            stockflow_core::outcome::Reply::Rejected(
                stockflow_core::outcome::Rejection::Invalid { field: got, .. },
            ) => assert_eq!(got, field, "{kind:?}"),
            other => panic!("{kind:?}: {other:?}"),
        }
        assert!(!outcome.persist);
        assert_eq!(harness.ledger, stockflow_core::ledger::Ledger::new());
    }
    let mut harness = Harness::default();
    let mut zero_seq = event("wms", 1, received("A", "east", 1));
    zero_seq.seq = 0;
    let outcome = harness.events(vec![zero_seq]);
    assert_eq!(render_reply(&outcome.reply), "rejected invalid");
}
