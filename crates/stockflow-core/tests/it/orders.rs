//! Channel orders heard by webhook: `ReserveOrder` records an oversell instead of a plain
//! refusal, `CancelOrder` leaves a tombstone for an order not seen yet, units picked before their
//! order arrived count as picked. The rendering shows the reply, the incidents, every SKU x
//! location, every reservation and the units remembered as picked ahead.

use crate::support::*;
use stockflow_core::command::{LedgerCommand, Reserve};
use stockflow_core::ids::ChannelId;
use stockflow_core::outcome::{Cause, IncidentKind, Reply};

fn render(harness: &Harness, reply: &Reply, incidents: &str) -> String {
    let mut text = format!("{}\nincidents: {incidents}\n", render_reply(reply));
    text.push_str(&harness.render_stock());
    if let Some(tenant) = harness.ledger.tenant(&harness.tenant) {
        for reservation in tenant.reservations.values() {
            text.push_str(&render_reservation(reservation));
            text.push('\n');
        }
        for (id, record) in &tenant.picked_ahead {
            let lines: Vec<String> = record
                .lines
                .iter()
                .map(|l| format!("{}@{} {}", l.sku, l.location, l.quantity))
                .collect();
            text.push_str(&format!("picked ahead for {id}: {}\n", lines.join(" ")));
        }
    }
    text
}

/// Runs `commands` after `setup`; renders the last one's reply and everything the commands
/// recorded. Checks that a command changes the state exactly when it asks to be journaled, and
/// that replaying the journal gives the same state byte for byte.
fn check(setup: impl FnOnce(&mut Harness), commands: Vec<LedgerCommand>, expected: &str) {
    let mut harness = Harness::default();
    setup(&mut harness);
    let mut reply = Reply::Done;
    let mut incidents = Vec::new();
    for command in commands {
        let before = harness.snapshot();
        let outcome = harness.command(command);
        assert_eq!(outcome.persist, harness.snapshot() != before);
        if !outcome.incidents.is_empty() {
            incidents.push(render_incidents(&outcome));
        }
        reply = outcome.reply;
    }
    let text = render(&harness, &reply, &incidents.join(" | "));
    assert_eq!(text.trim_end(), expected.trim(), "\n--- got:\n{text}");
    let mut replayed = Harness::default();
    for envelope in harness.journal.clone() {
        replayed.now = envelope.recorded_at;
        replayed.apply(envelope.input);
    }
    assert_eq!(replayed.snapshot(), harness.snapshot(), "replay differs");
}

fn stocked(harness: &mut Harness) {
    harness.wms(vec![received("A", "east", 2), received("B", "east", 5)]);
}

fn order(id: &str, lines: &[(&str, Option<&str>, i64)]) -> LedgerCommand {
    LedgerCommand::ReserveOrder(Reserve {
        reservation_id: rid(id),
        channel: Some(ChannelId::parse("shop").unwrap()),
        lines: line_requests(lines),
        ttl_seconds: 600,
    })
}

fn cancel_order(id: &str) -> LedgerCommand {
    LedgerCommand::CancelOrder {
        reservation_id: rid(id),
        reason: Some("cancelled on shop".to_owned()),
    }
}

#[test]
fn an_order_with_stock_is_a_plain_reservation() {
    check(
        stocked,
        vec![order("o1", &[("A", None, 2), ("B", None, 1)])],
        "
o1 provisional [A@east 2/c0/p0/h2 B@east 1/c0/p0/h1] (created)
incidents: 
A@east on_hand=2 reserved=2 v2
B@east on_hand=5 available=4 reserved=1 v2
o1 provisional [A@east 2/c0/p0/h2 B@east 1/c0/p0/h1]",
    );
}

#[test]
fn an_order_beyond_available_is_an_oversell_recorded_once() {
    // All or nothing: B could be reserved, A cannot; nothing is granted, A's shortfall is
    // recorded, and a retry of the same order answers the tombstone without a second incident.
    check(
        stocked,
        vec![
            order("o1", &[("A", None, 3), ("B", None, 1)]),
            order("o1", &[("A", None, 3), ("B", None, 1)]),
        ],
        "
o1 released []
incidents: oversell A 1
A@east on_hand=2 available=2 v1
B@east on_hand=5 available=5 v1
o1 released []",
    );
    check(
        stocked,
        vec![order("o1", &[("A", Some("east"), 4)])],
        "
rejected insufficient_stock A@east 4>2
incidents: oversell A@east 2
A@east on_hand=2 available=2 v1
B@east on_hand=5 available=5 v1
o1 released []",
    );
}

#[test]
fn an_oversell_incident_names_the_channel_and_the_order() {
    let mut harness = Harness::default();
    stocked(&mut harness);
    let outcome = harness.command(order("o1", &[("A", None, 5)]));
    let [incident] = outcome.incidents.as_slice() else {
        panic!("one incident: {:?}", outcome.incidents)
    };
    assert_eq!(incident.kind, IncidentKind::Oversell);
    assert_eq!(incident.channel.as_ref().map(|c| c.as_str()), Some("shop"));
    assert_eq!(incident.shortfall, 3);
    assert_eq!(
        incident.detail,
        "order o1 on shop: 5 of A sold, 2 available"
    );
    assert_eq!(
        incident.cause,
        Cause::Command {
            name: "reserve_order".to_owned(),
            id: "o1".to_owned()
        }
    );
    let reservation = harness.reservation("o1").unwrap();
    assert!(reservation.is_tombstone());
}

#[test]
fn other_refusals_of_an_order_record_nothing() {
    check(
        stocked,
        vec![order("o1", &[("C", None, 1)])],
        "
rejected unknown_sku
incidents: 
A@east on_hand=2 available=2 v1
B@east on_hand=5 available=5 v1",
    );
}

#[test]
fn a_cancellation_before_its_order_leaves_a_tombstone() {
    check(
        stocked,
        vec![cancel_order("o1"), order("o1", &[("A", None, 1)])],
        "
o1 released []
incidents: 
A@east on_hand=2 available=2 v1
B@east on_hand=5 available=5 v1
o1 released []",
    );
}

#[test]
fn a_cancellation_releases_a_known_order_and_repeats_change_nothing() {
    check(
        stocked,
        vec![
            order("o1", &[("A", None, 1)]),
            confirm("o1", None),
            cancel_order("o1"),
            cancel_order("o1"),
        ],
        "
o1 released [A@east 1/c1/p0/h0]
incidents: 
A@east on_hand=2 available=2 v4
B@east on_hand=5 available=5 v1
o1 released [A@east 1/c1/p0/h0]",
    );
}

#[test]
fn a_cancellation_of_a_fulfilled_order_is_refused() {
    let picked_in_full = |h: &mut Harness| {
        stocked(h);
        h.command(order("o1", &[("A", None, 1)]));
        h.wms(vec![picked("A", "east", 1, Some("o1"))]);
    };
    check(
        picked_in_full,
        vec![cancel_order("o1")],
        "
rejected invalid_reservation_state
incidents: 
A@east on_hand=1 available=1 v3
B@east on_hand=5 available=5 v1
o1 fulfilled [A@east 1/c0/p1/h0]",
    );
}

// ---------------------------------------------------------------------------------------------
// Picked ahead: the warehouse picked for an order whose webhook had not arrived yet

/// `stocked`, then picks for orders not seen yet: (SKU, location, quantity, order).
fn picked_ahead(picks: &'static [(&str, &str, i64, &str)]) -> impl FnOnce(&mut Harness) {
    move |harness: &mut Harness| {
        stocked(harness);
        harness.wms(vec![received("A", "west", 3)]);
        let kinds = picks
            .iter()
            .map(|&(s, l, q, order)| picked(s, l, q, Some(order)))
            .collect();
        let outcome = harness.wms(kinds);
        assert!(
            outcome
                .incidents
                .iter()
                .all(|i| i.kind == IncidentKind::UnknownReservation)
        );
    }
}

#[test]
fn an_order_picked_in_full_before_it_arrived_reserves_nothing() {
    // A@east 2 picked for o1: the order, when it arrives, is fulfilled at once; a repeat
    // answers the same; its payment confirms nothing more and its cancellation is refused
    // (the units left the warehouse: nothing returns to available).
    let expected_stock = "
A@east on_hand=0 v2
A@west on_hand=3 available=3 v1
B@east on_hand=5 available=5 v1";
    check(
        picked_ahead(&[("A", "east", 2, "o1")]),
        vec![order("o1", &[("A", None, 2)])],
        &format!(
            "
o1 fulfilled [A@east 2/c0/p2/h0] (created)
incidents: picked_ahead A@east 0{expected_stock}
o1 fulfilled [A@east 2/c0/p2/h0]"
        ),
    );
    for then in [
        order("o1", &[("A", None, 2)]),
        confirm("o1", None),
        cancel_order("o1"),
        release("o1"),
    ] {
        let answer = match then {
            LedgerCommand::ReserveOrder(_) => "o1 fulfilled [A@east 2/c0/p2/h0]",
            _ => "rejected invalid_reservation_state",
        };
        check(
            picked_ahead(&[("A", "east", 2, "o1")]),
            vec![order("o1", &[("A", None, 2)]), then],
            &format!(
                "
{answer}
incidents: picked_ahead A@east 0{expected_stock}
o1 fulfilled [A@east 2/c0/p2/h0]"
            ),
        );
    }
}

#[test]
fn an_order_picked_in_part_holds_the_rest() {
    // One of two A picked at east: the line holds the other; B is reserved as usual.
    check(
        picked_ahead(&[("A", "east", 1, "o1")]),
        vec![order("o1", &[("A", None, 2), ("B", None, 1)])],
        "
o1 provisional [A@east 2/c0/p1/h1 B@east 1/c0/p0/h1] (created)
incidents: picked_ahead A@east 0
A@east on_hand=1 reserved=1 v3
A@west on_hand=3 available=3 v1
B@east on_hand=5 available=4 reserved=1 v2
o1 provisional [A@east 2/c0/p1/h1 B@east 1/c0/p0/h1]",
    );
    // Cancelled: what it holds returns, the unit picked does not.
    check(
        picked_ahead(&[("A", "east", 1, "o1")]),
        vec![
            order("o1", &[("A", None, 2), ("B", None, 1)]),
            confirm("o1", None),
            cancel_order("o1"),
        ],
        "
o1 released [A@east 2/c1/p1/h0 B@east 1/c1/p0/h0]
incidents: picked_ahead A@east 0
A@east on_hand=1 available=1 v5
A@west on_hand=3 available=3 v1
B@east on_hand=5 available=5 v4
o1 released [A@east 2/c1/p1/h0 B@east 1/c1/p0/h0]",
    );
    // The rest needs stock: one more A than east has, picked at west ahead.
    check(
        picked_ahead(&[("A", "west", 1, "o1")]),
        vec![order("o1", &[("A", None, 3)])],
        "
o1 provisional [A@east 2/c0/p0/h2 A@west 1/c0/p1/h0] (created)
incidents: picked_ahead A@west 0
A@east on_hand=2 reserved=2 v2
A@west on_hand=2 available=2 v2
B@east on_hand=5 available=5 v1
o1 provisional [A@east 2/c0/p0/h2 A@west 1/c0/p1/h0]",
    );
}

#[test]
fn units_picked_ahead_that_the_order_does_not_count() {
    // More picked than ordered: the order is fulfilled, the extra stays picked (it left the
    // warehouse) and the incident says so.
    let mut harness = Harness::default();
    picked_ahead(&[("A", "east", 2, "o1"), ("B", "east", 1, "o1")])(&mut harness);
    let outcome = harness.command(order("o1", &[("A", None, 1)]));
    assert_eq!(
        render_reply(&outcome.reply),
        "o1 fulfilled [A@east 1/c0/p1/h0] (created)"
    );
    let details: Vec<&str> = outcome
        .incidents
        .iter()
        .map(|i| i.detail.as_str())
        .collect();
    assert_eq!(
        details,
        [
            "reservation o1 arrived after 2 of A at east were picked for it: 1 counted as \
             picked, not reserved again; 1 beyond what its lines order there (they stay picked)",
            "reservation o1 arrived after 1 of B at east were picked for it: 1 beyond what its \
             lines order there (they stay picked)",
        ]
    );
    assert_eq!(
        outcome.incidents[0].cause,
        Cause::Command {
            name: "reserve".to_owned(),
            id: "o1".to_owned()
        }
    );
    assert_eq!(
        harness.render_stock(),
        "A@east on_hand=0 v2\nA@west on_hand=3 available=3 v1\nB@east on_hand=4 available=4 v2\n"
    );
    // A line that names a location counts only the units picked there, as a pick against a
    // known reservation's line does.
    check(
        picked_ahead(&[("A", "west", 1, "o1")]),
        vec![order("o1", &[("A", Some("east"), 1)])],
        "
o1 provisional [A@east 1/c0/p0/h1] (created)
incidents: picked_ahead A@west 0
A@east on_hand=2 available=1 reserved=1 v2
A@west on_hand=2 available=2 v2
B@east on_hand=5 available=5 v1
o1 provisional [A@east 1/c0/p0/h1]",
    );
}

#[test]
fn a_refused_order_and_picks_ahead() {
    // An oversell of the rest: nothing reserved, the tombstone consumes the record.
    check(
        picked_ahead(&[("A", "east", 1, "o1")]),
        vec![order("o1", &[("A", Some("east"), 3)])],
        "
rejected insufficient_stock A@east 2>1
incidents: oversell A@east 1
A@east on_hand=1 available=1 v2
A@west on_hand=3 available=3 v1
B@east on_hand=5 available=5 v1
o1 released []",
    );
    // A plain reserve refused changes nothing: the record waits for a reserve that fits.
    check(
        picked_ahead(&[("A", "east", 1, "o1")]),
        vec![reserve("o1", None, &[("A", Some("east"), 3)], 60)],
        "
rejected insufficient_stock A@east 2>1
incidents: 
A@east on_hand=1 available=1 v2
A@west on_hand=3 available=3 v1
B@east on_hand=5 available=5 v1
picked ahead for o1: A@east 1",
    );
    // A cancellation before the order: the tombstone consumes the record too.
    check(
        picked_ahead(&[("A", "east", 1, "o1")]),
        vec![cancel_order("o1"), order("o1", &[("A", None, 1)])],
        "
o1 released []
incidents: 
A@east on_hand=1 available=1 v2
A@west on_hand=3 available=3 v1
B@east on_hand=5 available=5 v1
o1 released []",
    );
}

#[test]
fn picks_ahead_then_picks_against_the_reservation() {
    // Picked ahead in part, confirmed, then the rest picked against it: fulfilled; later steps
    // change nothing. The on_hand identity holds at every step and no unit is counted twice.
    let mut harness = Harness::default();
    picked_ahead(&[("A", "east", 1, "o1")])(&mut harness);
    harness.command(order("o1", &[("A", None, 2), ("B", None, 2)]));
    harness.command(confirm("o1", None));
    assert_eq!(
        harness.render_stock(),
        "A@east on_hand=1 committed=1 v4\nA@west on_hand=3 available=3 v1\nB@east on_hand=5 available=3 committed=2 v3\n"
    );
    harness.wms(vec![
        picked("A", "east", 1, Some("o1")),
        picked("B", "east", 2, Some("o1")),
    ]);
    assert_eq!(
        render_reservation(harness.reservation("o1").unwrap()),
        "o1 fulfilled [A@east 2/c1/p2/h0 B@east 2/c2/p2/h0]"
    );
    assert_eq!(
        harness.render_stock(),
        "A@east on_hand=0 v5\nA@west on_hand=3 available=3 v1\nB@east on_hand=3 available=3 v4\n"
    );
    let before = harness.snapshot();
    let outcome = harness.wms(vec![cancelled("o1", None, None)]);
    assert!(outcome.incidents.is_empty());
    assert_eq!(
        harness.render_stock(),
        "A@east on_hand=0 v5\nA@west on_hand=3 available=3 v1\nB@east on_hand=3 available=3 v4\n"
    );
    assert_ne!(harness.snapshot(), before, "the event's id is remembered");
    for q in harness
        .ledger
        .tenant(&harness.tenant)
        .unwrap()
        .stock
        .values()
        .flat_map(|s| s.values())
    {
        assert_eq!(
            q.on_hand,
            q.available()
                + q.reserved
                + q.committed
                + q.damaged
                + q.quality_control
                + q.safety_stock
        );
    }
}

#[test]
fn picks_ahead_are_remembered_within_limits() {
    let config = stockflow_core::ledger::LedgerConfig {
        picked_ahead_max: 2,
        picked_ahead_max_age_micros: 3600 * 1_000_000,
        ..Default::default()
    };
    let mut harness = Harness::new(config);
    harness.wms(vec![received("A", "east", 10)]);
    harness.wms(vec![picked("A", "east", 1, Some("o1"))]);
    harness.advance_seconds(60);
    harness.wms(vec![picked("A", "east", 1, Some("o2"))]);
    harness.advance_seconds(60);
    // A second pick for a remembered order adds to it; a third order forgets the oldest.
    harness.wms(vec![picked("A", "east", 1, Some("o2"))]);
    let third = harness.wms(vec![picked("A", "east", 1, Some("o3"))]);
    assert!(
        third.incidents[0].detail.ends_with(
            "(the picks for o1 were forgotten: the limit of 2 reservations picked ahead)"
        ),
        "{}",
        third.incidents[0].detail
    );
    let remembered = |h: &Harness| -> Vec<String> {
        let tenant = h.ledger.tenant(&h.tenant).unwrap();
        assert_eq!(tenant.picked_ahead.len(), tenant.picked_ahead_by_time.len());
        tenant
            .picked_ahead
            .iter()
            .map(|(id, r)| format!("{id}:{}", r.lines[0].quantity))
            .collect()
    };
    assert_eq!(remembered(&harness), ["o2:2", "o3:1"]);
    // o1 was forgotten: its order reserves in full.
    let outcome = harness.command(order("o1", &[("A", None, 1)]));
    assert_eq!(
        render_reply(&outcome.reply),
        "o1 provisional [A@east 1/c0/p0/h1] (created)"
    );
    // An hour after o2's first pick its record is forgotten, at the tenant's next input.
    harness.advance_seconds(3600 - 60);
    let outcome = harness.tick();
    assert!(outcome.persist);
    assert_eq!(remembered(&harness), ["o3:1"]);
    let outcome = harness.command(order("o2", &[("A", None, 2)]));
    assert_eq!(
        render_reply(&outcome.reply),
        "o2 provisional [A@east 2/c0/p0/h2] (created)"
    );
    let outcome = harness.command(order("o3", &[("A", None, 2)]));
    assert_eq!(
        render_reply(&outcome.reply),
        "o3 provisional [A@east 2/c0/p1/h1] (created)"
    );
    assert!(remembered(&harness).is_empty());
    // 10 received, 4 picked; o1 expired meanwhile; o2 holds 2, o3 the one not picked ahead.
    assert_eq!(
        harness.render_stock(),
        "A@east on_hand=6 available=3 reserved=3 v9\n"
    );
    // Replays to the same state; a snapshot from before picks were remembered loads.
    let mut replayed = Harness::new(harness.config.clone());
    for envelope in harness.journal.clone() {
        replayed.now = envelope.recorded_at;
        replayed.apply(envelope.input);
    }
    assert_eq!(replayed.snapshot(), harness.snapshot());
    let mut value: serde_json::Value = serde_json::from_slice(&harness.snapshot()).unwrap();
    let tenant = value["tenants"]["default"].as_object_mut().unwrap();
    assert!(!tenant.contains_key("picked_ahead"));
    let loaded: stockflow_core::ledger::Ledger = serde_json::from_value(value).unwrap();
    assert_eq!(loaded, harness.ledger);
}
