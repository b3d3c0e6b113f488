//! Channel orders heard by webhook: `ReserveOrder` records an oversell instead of a plain
//! refusal, `CancelOrder` leaves a tombstone for an order not seen yet. The rendering shows the
//! reply, the incidents, every SKU x location and every reservation.

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
