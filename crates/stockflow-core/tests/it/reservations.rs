//! Every reservation step, table-driven: a setup, then one command (or tick); the rendering
//! shows the reply, every SKU x location and every reservation.

use crate::support::*;
use stockflow_core::availability::{
    AvailabilityCommand, ChannelConfig, ChannelKind, ChannelLocation,
};
use stockflow_core::command::{Command, LedgerCommand, RESERVATION_TTL_SECONDS_MAX};
use stockflow_core::envelope::Input;
use stockflow_core::ids::{ActorId, ChannelId};
use stockflow_core::outcome::{AuditChange, Cause, Reply};

fn render(harness: &Harness, reply: &Reply) -> String {
    let mut text = format!("{}\n{}", render_reply(reply), harness.render_stock());
    if let Some(tenant) = harness.ledger.tenant(&harness.tenant) {
        for reservation in tenant.reservations.values() {
            text.push_str(&render_reservation(reservation));
            text.push('\n');
        }
    }
    text
}

fn check(setup: impl FnOnce(&mut Harness), command: LedgerCommand, expected: &str) {
    let mut harness = Harness::default();
    setup(&mut harness);
    let before = harness.snapshot();
    let outcome = harness.command(command);
    let text = render(&harness, &outcome.reply);
    assert_eq!(text.trim_end(), expected.trim(), "\n--- got:\n{text}");
    // A refusal or a repeat changes nothing, byte for byte.
    assert_eq!(outcome.persist, harness.snapshot() != before);
}

/// A at east 5 and west 3, B at east 2.
fn stocked(harness: &mut Harness) {
    harness.wms(vec![
        received("A", "east", 5),
        received("A", "west", 3),
        received("B", "east", 2),
    ]);
}

fn channel(harness: &mut Harness, id: &str, locations: &[(&str, u32)]) {
    let config = ChannelConfig {
        id: ChannelId::parse(id).unwrap(),
        kind: ChannelKind::Webhook,
        locations: locations
            .iter()
            .map(|&(l, priority)| ChannelLocation {
                location: loc(l),
                priority,
            })
            .collect(),
        per_location: false,
    };
    harness.apply(Input::Command {
        actor: ActorId::parse("tester").unwrap(),
        command: Command::Availability(AvailabilityCommand::UpsertChannel(config)),
    });
}

#[test]
fn step_reserve() {
    check(
        stocked,
        reserve(
            "r1",
            None,
            &[("A", Some("east"), 3), ("B", Some("east"), 2)],
            60,
        ),
        "
r1 provisional [A@east 3/c0/p0/h3 B@east 2/c0/p0/h2] (created)
A@east on_hand=5 available=2 reserved=3 v2
A@west on_hand=3 available=3 v1
B@east on_hand=2 reserved=2 v2
r1 provisional [A@east 3/c0/p0/h3 B@east 2/c0/p0/h2]",
    );
    // Without a location: the first location, in name order, that can fill the line whole.
    check(
        stocked,
        reserve("r1", None, &[("A", None, 3)], 60),
        "
r1 provisional [A@east 3/c0/p0/h3] (created)
A@east on_hand=5 available=2 reserved=3 v2
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1
r1 provisional [A@east 3/c0/p0/h3]",
    );
    // ... else split across locations in that order.
    check(
        stocked,
        reserve("r1", None, &[("A", None, 7)], 60),
        "
r1 provisional [A@east 5/c0/p0/h5 A@west 2/c0/p0/h2] (created)
A@east on_hand=5 reserved=5 v2
A@west on_hand=3 available=1 reserved=2 v2
B@east on_hand=2 available=2 v1
r1 provisional [A@east 5/c0/p0/h5 A@west 2/c0/p0/h2]",
    );
    // The tenant's priority list comes before name order.
    let west_first = |h: &mut Harness| {
        stocked(h);
        h.command(LedgerCommand::SetLocationPriority {
            locations: vec![loc("west"), loc("east")],
        });
    };
    check(
        west_first,
        reserve("r1", None, &[("A", None, 3)], 60),
        "
r1 provisional [A@west 3/c0/p0/h3] (created)
A@east on_hand=5 available=5 v1
A@west on_hand=3 reserved=3 v2
B@east on_hand=2 available=2 v1
r1 provisional [A@west 3/c0/p0/h3]",
    );
    // A channel's own priority comes first, and only its locations serve it.
    let shop = |h: &mut Harness| {
        stocked(h);
        channel(h, "shop", &[("east", 2), ("west", 1)]);
        channel(h, "east-only", &[("east", 1)]);
    };
    check(
        shop,
        reserve("r1", Some("shop"), &[("A", None, 2)], 60),
        "
r1 provisional [A@west 2/c0/p0/h2] (created)
A@east on_hand=5 available=5 v1
A@west on_hand=3 available=1 reserved=2 v2
B@east on_hand=2 available=2 v1
r1 provisional [A@west 2/c0/p0/h2]",
    );
    check(
        shop,
        reserve("r1", Some("east-only"), &[("A", None, 6)], 60),
        "
rejected insufficient_stock A 6>5
A@east on_hand=5 available=5 v1
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1",
    );
    // A channel that is not configured reserves like no channel.
    check(
        stocked,
        reserve("r1", Some("unknown"), &[("A", None, 3)], 60),
        "
r1 provisional [A@east 3/c0/p0/h3] (created)
A@east on_hand=5 available=2 reserved=3 v2
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1
r1 provisional [A@east 3/c0/p0/h3]",
    );
}

#[test]
fn reserve_refusals() {
    // All or nothing: one short line refuses the others.
    check(
        stocked,
        reserve(
            "r1",
            None,
            &[("A", Some("east"), 3), ("B", Some("east"), 3)],
            60,
        ),
        "
rejected insufficient_stock B@east 3>2
A@east on_hand=5 available=5 v1
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1",
    );
    // Lines on one SKU x location are accounted together, located lines before the others.
    check(
        stocked,
        reserve(
            "r1",
            None,
            &[
                ("A", None, 4),
                ("A", Some("east"), 3),
                ("A", Some("east"), 3),
            ],
            60,
        ),
        "
rejected insufficient_stock A@east 6>5; A 4>3
A@east on_hand=5 available=5 v1
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1",
    );
    check(
        stocked,
        reserve("r1", None, &[("A", Some("east"), 3), ("A", None, 6)], 60),
        "
rejected insufficient_stock A 6>5
A@east on_hand=5 available=5 v1
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1",
    );
    check(
        stocked,
        reserve("r1", None, &[("C", None, 1)], 60),
        "
rejected unknown_sku
A@east on_hand=5 available=5 v1
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1",
    );
    check(
        stocked,
        reserve("r1", None, &[("A", Some("north"), 1)], 60),
        "
rejected unknown_location
A@east on_hand=5 available=5 v1
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1",
    );
    check(
        stocked,
        reserve("r1", None, &[("B", Some("west"), 1)], 60),
        "
rejected insufficient_stock B@west 1>0
A@east on_hand=5 available=5 v1
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1",
    );
    for bad in [
        reserve("r1", None, &[], 60),
        reserve("r1", None, &[("A", None, 0)], 60),
        reserve("r1", None, &[("A", None, 1)], 0),
        reserve(
            "r1",
            None,
            &[("A", None, 1)],
            RESERVATION_TTL_SECONDS_MAX + 1,
        ),
        reserve("r1", None, &vec![("A", None, 1); 101], 60),
    ] {
        let mut harness = Harness::default();
        stocked(&mut harness);
        let outcome = harness.command(bad);
        assert_eq!(render_reply(&outcome.reply), "rejected invalid");
    }
}

#[test]
fn reserve_is_idempotent() {
    let reserved = |h: &mut Harness| {
        stocked(h);
        h.reserve("r1", &[("A", None, 3)], 60);
    };
    check(
        reserved,
        reserve("r1", None, &[("A", None, 3)], 60),
        "
r1 provisional [A@east 3/c0/p0/h3]
A@east on_hand=5 available=2 reserved=3 v2
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1
r1 provisional [A@east 3/c0/p0/h3]",
    );
    check(
        reserved,
        reserve("r1", None, &[("A", None, 2)], 60),
        "
rejected idempotency_conflict
A@east on_hand=5 available=2 reserved=3 v2
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1
r1 provisional [A@east 3/c0/p0/h3]",
    );
    // The cancellation came first: the reservation answers released and grants nothing.
    let tombstone = |h: &mut Harness| {
        stocked(h);
        h.wms(vec![cancelled("r1", None, None)]);
    };
    check(
        tombstone,
        reserve("r1", None, &[("A", None, 3)], 60),
        "
r1 released []
A@east on_hand=5 available=5 v1
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1
r1 released []",
    );
}

#[test]
fn step_confirm() {
    let reserved = |h: &mut Harness| {
        stocked(h);
        h.reserve(
            "r1",
            &[
                ("A", Some("east"), 3),
                ("A", Some("west"), 2),
                ("B", None, 2),
            ],
            60,
        );
    };
    check(
        reserved,
        confirm("r1", None),
        "
r1 confirmed [A@east 3/c3/p0/h3 A@west 2/c2/p0/h2 B@east 2/c2/p0/h2]
A@east on_hand=5 available=2 committed=3 v3
A@west on_hand=3 available=1 committed=2 v3
B@east on_hand=2 committed=2 v3
r1 confirmed [A@east 3/c3/p0/h3 A@west 2/c2/p0/h2 B@east 2/c2/p0/h2]",
    );
    // Partial: a line without a location spreads over the SKU's lines in order; the rest of
    // every line returns to available.
    check(
        reserved,
        confirm("r1", Some(&[("A", None, 4)])),
        "
r1 confirmed [A@east 3/c3/p0/h3 A@west 2/c1/p0/h1 B@east 2/c0/p0/h0]
A@east on_hand=5 available=2 committed=3 v3
A@west on_hand=3 available=2 committed=1 v3
B@east on_hand=2 available=2 v3
r1 confirmed [A@east 3/c3/p0/h3 A@west 2/c1/p0/h1 B@east 2/c0/p0/h0]",
    );
    check(
        reserved,
        confirm("r1", Some(&[("A", Some("west"), 1), ("B", None, 0)])),
        "
r1 confirmed [A@east 3/c0/p0/h0 A@west 2/c1/p0/h1 B@east 2/c0/p0/h0]
A@east on_hand=5 available=5 v3
A@west on_hand=3 available=2 committed=1 v3
B@east on_hand=2 available=2 v3
r1 confirmed [A@east 3/c0/p0/h0 A@west 2/c1/p0/h1 B@east 2/c0/p0/h0]",
    );
    let unchanged = "
A@east on_hand=5 available=2 reserved=3 v2
A@west on_hand=3 available=1 reserved=2 v2
B@east on_hand=2 reserved=2 v2
r1 provisional [A@east 3/c0/p0/h3 A@west 2/c0/p0/h2 B@east 2/c0/p0/h2]";
    let refused = [
        (
            confirm("r1", Some(&[("A", Some("west"), 3)])),
            "invalid_confirm_line",
        ),
        (
            confirm("r1", Some(&[("C", None, 1)])),
            "invalid_confirm_line",
        ),
        (confirm("r1", Some(&[("A", None, 0)])), "invalid"),
        (confirm("r1", Some(&[])), "invalid"),
        (confirm("r2", None), "unknown_reservation"),
    ];
    for (command, code) in refused {
        check(
            reserved,
            command,
            &format!("rejected {code}\n{}", unchanged.trim()),
        );
    }
}

#[test]
fn confirm_after_resolution() {
    let confirmed = |h: &mut Harness| {
        stocked(h);
        h.reserve("r1", &[("A", Some("east"), 3)], 60);
        h.command(confirm("r1", Some(&[("A", None, 2)])));
    };
    // A repeat answers the reservation as it is, whatever lines it names.
    check(
        confirmed,
        confirm("r1", None),
        "
r1 confirmed [A@east 3/c2/p0/h2]
A@east on_hand=5 available=3 committed=2 v3
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1
r1 confirmed [A@east 3/c2/p0/h2]",
    );
    let released = |h: &mut Harness| {
        stocked(h);
        h.reserve("r1", &[("A", Some("east"), 3)], 60);
        h.command(release("r1"));
    };
    check(
        released,
        confirm("r1", None),
        "
rejected invalid_reservation_state
A@east on_hand=5 available=5 v3
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1
r1 released [A@east 3/c0/p0/h0]",
    );
    let expired = |h: &mut Harness| {
        stocked(h);
        h.reserve("r1", &[("A", Some("east"), 3)], 60);
        h.advance_seconds(60);
        h.tick();
    };
    check(
        expired,
        confirm("r1", None),
        "
rejected invalid_reservation_state
A@east on_hand=5 available=5 v3
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1
r1 expired [A@east 3/c0/p0/h0]",
    );
    let fulfilled = |h: &mut Harness| {
        stocked(h);
        h.reserve("r1", &[("A", Some("east"), 3)], 60);
        h.wms(vec![picked("A", "east", 3, Some("r1"))]);
    };
    check(
        fulfilled,
        confirm("r1", None),
        "
rejected invalid_reservation_state
A@east on_hand=2 available=2 v3
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1
r1 fulfilled [A@east 3/c0/p3/h0]",
    );
}

#[test]
fn step_release() {
    let reserved = |h: &mut Harness| {
        stocked(h);
        h.reserve("r1", &[("A", Some("east"), 3)], 60);
    };
    let released = "
A@east on_hand=5 available=5 v3
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1
r1 released [A@east 3/c0/p0/h0]";
    check(
        reserved,
        release("r1"),
        &format!("r1 released [A@east 3/c0/p0/h0]{released}"),
    );
    let confirmed = |h: &mut Harness| {
        reserved(h);
        h.command(confirm("r1", None));
    };
    check(
        confirmed,
        release("r1"),
        "
r1 released [A@east 3/c3/p0/h0]
A@east on_hand=5 available=5 v4
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1
r1 released [A@east 3/c3/p0/h0]",
    );
    // A repeat answers the same, changing nothing.
    let twice = |h: &mut Harness| {
        reserved(h);
        h.command(release("r1"));
    };
    check(
        twice,
        release("r1"),
        &format!("r1 released [A@east 3/c0/p0/h0]{released}"),
    );
    // Expired first: already free, answered as it is.
    let expired = |h: &mut Harness| {
        reserved(h);
        h.advance_seconds(61);
        h.tick();
    };
    check(
        expired,
        release("r1"),
        "
r1 expired [A@east 3/c0/p0/h0]
A@east on_hand=5 available=5 v3
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1
r1 expired [A@east 3/c0/p0/h0]",
    );
    let fulfilled = |h: &mut Harness| {
        reserved(h);
        h.wms(vec![picked("A", "east", 3, Some("r1"))]);
    };
    check(
        fulfilled,
        release("r1"),
        "
rejected invalid_reservation_state
A@east on_hand=2 available=2 v3
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1
r1 fulfilled [A@east 3/c0/p3/h0]",
    );
    check(
        stocked,
        release("r1"),
        "
rejected unknown_reservation
A@east on_hand=5 available=5 v1
A@west on_hand=3 available=3 v1
B@east on_hand=2 available=2 v1",
    );
}

#[test]
fn expiry_by_tick() {
    let mut harness = Harness::default();
    stocked(&mut harness);
    harness.reserve("r1", &[("A", Some("east"), 3)], 60);
    harness.reserve("r2", &[("A", Some("east"), 1)], 90);
    harness.command(confirm("r2", None));
    let expires_at = START.plus_seconds(60);
    assert_eq!(harness.ledger.next_deadline(), Some(expires_at));
    assert!(
        harness
            .ledger
            .tenants_due(expires_at.plus_micros(-1))
            .is_empty()
    );
    assert_eq!(
        harness.ledger.tenants_due(expires_at),
        vec![harness.tenant.clone()]
    );

    harness.advance_seconds(59);
    let early = harness.tick();
    assert!(!early.persist);
    assert_eq!(
        render_reservation(harness.reservation("r1").unwrap()),
        "r1 provisional [A@east 3/c0/p0/h3]"
    );

    harness.advance_seconds(1);
    let due = harness.tick();
    assert!(due.persist);
    assert_eq!(due.touched_reservations, vec![rid("r1")]);
    assert_eq!(due.touched_skus, vec![sku("A")]);
    assert_eq!(
        render_reservation(harness.reservation("r1").unwrap()),
        "r1 expired [A@east 3/c0/p0/h0]"
    );
    assert_eq!(
        harness.reservation("r1").unwrap().resolved_at,
        Some(expires_at)
    );
    assert_eq!(due.audit.len(), 1);
    let entry = &due.audit[0];
    assert_eq!(
        entry.cause,
        Cause::Time {
            what: "reservation_ttl".to_owned()
        }
    );
    assert_eq!(
        (entry.actor.as_str(), entry.reason.as_deref()),
        ("stockflow", Some("expired"))
    );
    match &entry.change {
        AuditChange::Quantities { before, after } => {
            assert_eq!(
                render_quantities(before),
                "on_hand=5 available=1 reserved=3 committed=1 v4"
            );
            assert_eq!(
                render_quantities(after),
                "on_hand=5 available=4 committed=1 v5"
            );
        }
        other => panic!("{other:?}"),
    }
    // Confirmed reservations do not expire: nothing is left to do.
    assert_eq!(harness.ledger.next_deadline(), None);
    harness.advance_seconds(3600);
    assert!(!harness.tick().persist);
    assert_eq!(
        render_reservation(harness.reservation("r2").unwrap()),
        "r2 confirmed [A@east 1/c1/p0/h1]"
    );
}

#[test]
fn expiry_happens_before_the_input() {
    let mut harness = Harness::default();
    harness.wms(vec![received("A", "east", 3)]);
    harness.reserve("r1", &[("A", Some("east"), 3)], 60);
    harness.advance_seconds(60);
    // No tick in between: the reserve itself finds r1 due and frees its stock first.
    let outcome = harness.reserve("r2", &[("A", Some("east"), 3)], 60);
    assert_eq!(
        render_reply(&outcome.reply),
        "r2 provisional [A@east 3/c0/p0/h3] (created)"
    );
    assert_eq!(
        render_reservation(harness.reservation("r1").unwrap()),
        "r1 expired [A@east 3/c0/p0/h0]"
    );
    assert_eq!(outcome.audit.len(), 2);
    // Deadline work stays even when the request is refused.
    harness.advance_seconds(60);
    let refused = harness.reserve("r3", &[("A", Some("east"), 4)], 60);
    assert_eq!(
        render_reply(&refused.reply),
        "rejected insufficient_stock A@east 4>3"
    );
    assert!(refused.persist);
    assert_eq!(
        render_reservation(harness.reservation("r2").unwrap()),
        "r2 expired [A@east 3/c0/p0/h0]"
    );
    assert_eq!(harness.render_stock(), "A@east on_hand=3 available=3 v5\n");
}

#[test]
fn fulfil_by_picks() {
    let mut harness = Harness::default();
    stocked(&mut harness);
    harness.reserve("r1", &[("A", Some("east"), 3), ("B", Some("east"), 1)], 60);
    harness.command(confirm("r1", None));
    let first = harness.wms(vec![picked("A", "east", 3, Some("r1"))]);
    assert_eq!(first.touched_reservations, vec![rid("r1")]);
    assert_eq!(
        render_reservation(harness.reservation("r1").unwrap()),
        "r1 confirmed [A@east 3/c3/p3/h0 B@east 1/c1/p0/h1]"
    );
    harness.wms(vec![picked("B", "east", 1, Some("r1"))]);
    let reservation = harness.reservation("r1").unwrap();
    assert_eq!(
        render_reservation(reservation),
        "r1 fulfilled [A@east 3/c3/p3/h0 B@east 1/c1/p1/h0]"
    );
    assert_eq!(reservation.resolution_reason.as_deref(), Some("picked"));
    assert_eq!(
        harness.render_stock(),
        "A@east on_hand=2 available=2 v4\nA@west on_hand=3 available=3 v1\nB@east on_hand=1 available=1 v4\n"
    );
}
