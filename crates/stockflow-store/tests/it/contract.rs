//! The contract every [`Store`] keeps. Each check takes a store; the macro at the bottom runs all
//! of them against every backend (a PostgreSQL backend adds one line).

use crate::fixtures::*;
use stockflow_core::envelope::{Input, Position};
use stockflow_core::outcome::IncidentKind;
use stockflow_store::{
    AuditQuery, IncidentQuery, MemoryStore, Snapshot, SqliteConfig, SqliteStore, Store, StoreError,
    Window,
};

/// A store of one backend, with whatever must live as long as it (a temporary directory).
pub struct TestStore {
    pub store: Box<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

pub fn memory() -> TestStore {
    TestStore {
        store: Box::new(MemoryStore::new()),
        _dir: None,
    }
}

pub fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("stockflow.db"))).unwrap();
    TestStore {
        store: Box::new(store),
        _dir: Some(dir),
    }
}

fn append(store: &dyn Store, entries: &[OwnedEntry]) {
    store.append(&borrow_all(entries)).unwrap();
}

/// Journals `count` envelopes of received events from position `first`, one audit row each.
fn append_received(store: &dyn Store, first: Position, count: u64, tenant_name: &str) {
    let entries: Vec<OwnedEntry> = (first..first + count)
        .map(|position| {
            let events = vec![event(
                &format!("{tenant_name}-{position}"),
                position,
                every_event_kind()[0].kind.clone(),
            )];
            OwnedEntry::new(envelope(position, tenant_name, Input::Events(events))).with_audit(
                vec![audit_quantities(
                    position,
                    if position % 2 == 0 {
                        "SKU-even"
                    } else {
                        "SKU-odd"
                    },
                    &format!("{tenant_name}-{position}"),
                    position as i64 - 1,
                    position as i64,
                )],
            )
        })
        .collect();
    append(store, &entries);
}

pub fn empty_store_has_nothing(store: &dyn Store) {
    assert_eq!(store.journal_head().unwrap(), None);
    assert!(store.read_journal(0, 100).unwrap().is_empty());
    assert_eq!(store.latest_snapshot().unwrap(), None);
    assert!(store.snapshots().unwrap().is_empty());
    let audit = store
        .query_audit(&AuditQuery::tenant(tenant("default"), 10))
        .unwrap();
    assert!(audit.is_empty());
}

pub fn journal_round_trips_every_input(store: &dyn Store) {
    let entries = [
        OwnedEntry::new(envelope(1, "default", Input::Events(every_event_kind()))),
        OwnedEntry::new(envelope(2, "default", reserve_command())),
        OwnedEntry::new(envelope(3, "other", upsert_channel_command())),
        OwnedEntry::new(envelope(4, "default", Input::Tick)),
    ];
    append(store, &entries[..2]);
    append(store, &entries[2..]);
    let read = store.read_journal(0, 100).unwrap();
    let expected: Vec<_> = entries.iter().map(|e| e.envelope.clone()).collect();
    assert_eq!(read, expected);
    let head = store.journal_head().unwrap().unwrap();
    assert_eq!(
        (head.position, head.recorded_at),
        (4, expected[3].recorded_at)
    );
}

pub fn journal_reads_in_pages(store: &dyn Store) {
    append_received(store, 1, 25, "default");
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let page = store.read_journal(after, 10).unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap().position;
        pages.push(page.iter().map(|e| e.position).collect::<Vec<_>>());
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 5]
    );
    assert_eq!(pages.concat(), (1..=25).collect::<Vec<_>>());
    assert_eq!(store.read_journal(20, 1000).unwrap().len(), 5);
    assert!(store.read_journal(25, 10).unwrap().is_empty());
}

pub fn append_refuses_a_gap_and_keeps_nothing_of_it(store: &dyn Store) {
    append_received(store, 1, 2, "default");
    let entries = vec![
        OwnedEntry::new(envelope(3, "default", Input::Tick)),
        OwnedEntry::new(envelope(5, "default", Input::Tick)),
    ];
    let error = store.append(&borrow_all(&entries)).unwrap_err();
    assert!(
        matches!(error, StoreError::PositionGap { last: 3, first: 5 }),
        "{error:?}"
    );
    let repeat = vec![OwnedEntry::new(envelope(2, "default", Input::Tick))];
    assert!(matches!(
        store.append(&borrow_all(&repeat)),
        Err(StoreError::PositionGap { .. })
    ));
    assert_eq!(store.journal_head().unwrap().unwrap().position, 2);
    // The refused batch left the journal as it was: the next batch continues at 3.
    append(
        store,
        &[OwnedEntry::new(envelope(3, "default", Input::Tick))],
    );
    assert_eq!(store.read_journal(0, 10).unwrap().len(), 3);
}

pub fn snapshots_round_trip_and_prune(store: &dyn Store) {
    for (position, on_hand) in [(10, 5), (20, 6), (30, 7)] {
        store
            .save_snapshot(&Snapshot {
                position,
                recorded_at: at(position as i64),
                ledger: sample_ledger(on_hand),
            })
            .unwrap();
    }
    let latest = store.latest_snapshot().unwrap().unwrap();
    assert_eq!((latest.position, latest.recorded_at), (30, at(30)));
    assert_eq!(latest.ledger, sample_ledger(7));
    assert_eq!(
        store.snapshot_at(20).unwrap().unwrap().ledger,
        sample_ledger(6)
    );
    assert_eq!(store.snapshot_at(21).unwrap(), None);
    let positions: Vec<_> = store
        .snapshots()
        .unwrap()
        .iter()
        .map(|s| s.position)
        .collect();
    assert_eq!(positions, vec![10, 20, 30]);
    assert!(store.snapshots().unwrap().iter().all(|s| s.size_bytes > 0));
    assert_eq!(store.prune_snapshots(2).unwrap(), 1);
    assert_eq!(
        store.prune_snapshots(0).unwrap(),
        1,
        "at least one snapshot is kept"
    );
    let positions: Vec<_> = store
        .snapshots()
        .unwrap()
        .iter()
        .map(|s| s.position)
        .collect();
    assert_eq!(positions, vec![30]);
}

pub fn audit_round_trips_every_change_kind(store: &dyn Store) {
    let mut audit = vec![audit_quantities(1, "SKU-1", "e-1", 0, 5)];
    audit.extend(audit_other_changes(1));
    let entries =
        vec![OwnedEntry::new(envelope(1, "default", reserve_command())).with_audit(audit.clone())];
    append(store, &entries);
    let records = store
        .query_audit(&AuditQuery::tenant(tenant("default"), 100))
        .unwrap();
    let read: Vec<_> = records.iter().map(|r| r.entry.clone()).collect();
    assert_eq!(read, audit);
    assert!(records.iter().all(|r| r.tenant == tenant("default")));
    assert!(
        records.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase"
    );
}

/// The ids of the audit rows `query` returns, written as the event ids that caused them.
fn audit_ids(store: &dyn Store, query: &AuditQuery) -> Vec<u64> {
    store
        .query_audit(query)
        .unwrap()
        .iter()
        .map(|r| r.entry.position)
        .collect()
}

pub fn audit_filters(store: &dyn Store) {
    append_received(store, 1, 10, "default");
    append_received(store, 11, 2, "other");
    let all = AuditQuery::tenant(tenant("default"), 100);
    assert_eq!(audit_ids(store, &all), (1..=10).collect::<Vec<_>>());
    let check = |query: AuditQuery, expected: &[u64]| {
        assert_eq!(audit_ids(store, &query), expected, "{query:?}")
    };
    check(
        AuditQuery {
            sku: Some(sku("SKU-even")),
            ..all.clone()
        },
        &[2, 4, 6, 8, 10],
    );
    check(
        AuditQuery {
            sku: Some(sku("SKU-none")),
            ..all.clone()
        },
        &[],
    );
    check(
        AuditQuery {
            location: Some(location("east")),
            limit: 2,
            ..all.clone()
        },
        &[1, 2],
    );
    check(
        AuditQuery {
            location: Some(location("west")),
            ..all.clone()
        },
        &[],
    );
    check(
        AuditQuery {
            actor: Some("wms-east".to_owned()),
            limit: 1,
            ..all.clone()
        },
        &[1],
    );
    check(
        AuditQuery {
            actor: Some("someone".to_owned()),
            ..all.clone()
        },
        &[],
    );
    check(
        AuditQuery {
            reason: Some("receipt".to_owned()),
            limit: 1,
            ..all.clone()
        },
        &[1],
    );
    check(
        AuditQuery {
            cause_id: Some("default-7".to_owned()),
            ..all.clone()
        },
        &[7],
    );
    check(
        AuditQuery {
            position: Some(3),
            ..all.clone()
        },
        &[3],
    );
    check(
        AuditQuery {
            since: Some(at(4)),
            until: Some(at(7)),
            ..all.clone()
        },
        &[4, 5, 6],
    );
    check(
        AuditQuery {
            sku: Some(sku("SKU-odd")),
            since: Some(at(4)),
            until: Some(at(9)),
            ..all.clone()
        },
        &[5, 7],
    );
    check(
        AuditQuery {
            tenant: tenant("other"),
            ..all.clone()
        },
        &[11, 12],
    );
    check(
        AuditQuery {
            tenant: tenant("nobody"),
            ..all.clone()
        },
        &[],
    );
    check(
        AuditQuery {
            limit: 3,
            window: Window::Latest,
            ..all.clone()
        },
        &[8, 9, 10],
    );
    check(
        AuditQuery {
            sku: Some(sku("SKU-odd")),
            limit: 2,
            window: Window::Latest,
            ..all.clone()
        },
        &[7, 9],
    );
    for limit in [0, 1001] {
        let error = store
            .query_audit(&AuditQuery {
                limit,
                ..all.clone()
            })
            .unwrap_err();
        assert!(matches!(error, StoreError::InvalidQuery(_)), "{error:?}");
    }
}

pub fn audit_cursor_pages_through_everything_once(store: &dyn Store) {
    append_received(store, 1, 23, "default");
    for sku_filter in [None, Some(sku("SKU-odd"))] {
        let mut query = AuditQuery {
            sku: sku_filter.clone(),
            ..AuditQuery::tenant(tenant("default"), 5)
        };
        let mut seen = Vec::new();
        loop {
            let page = store.query_audit(&query).unwrap();
            let Some(last) = page.last() else { break };
            query.after_id = Some(last.id);
            seen.extend(page.iter().map(|r| r.entry.position));
        }
        let expected: Vec<u64> = (1..=23)
            .filter(|p| sku_filter.is_none() || p % 2 == 1)
            .collect();
        assert_eq!(seen, expected);
    }
}

pub fn incidents_round_trip_and_filter(store: &dyn Store) {
    let first = vec![
        incident(1, IncidentKind::NegativeAvailable, "SKU-1"),
        incident(1, IncidentKind::SequenceGap, "SKU-2"),
    ];
    let second = vec![incident(2, IncidentKind::Oversell, "SKU-1")];
    let entries = vec![
        OwnedEntry::new(envelope(1, "default", Input::Tick)).with_incidents(first.clone()),
        OwnedEntry::new(envelope(2, "default", Input::Tick)).with_incidents(second.clone()),
        OwnedEntry::new(envelope(3, "other", Input::Tick)).with_incidents(vec![incident(
            3,
            IncidentKind::Oversell,
            "SKU-1",
        )]),
    ];
    append(store, &entries);
    let all = IncidentQuery::tenant(tenant("default"), 100);
    let read: Vec<_> = store
        .query_incidents(&all)
        .unwrap()
        .into_iter()
        .map(|r| r.incident)
        .collect();
    assert_eq!(read, [first.clone(), second.clone()].concat());
    let kinds = |query: IncidentQuery| -> Vec<IncidentKind> {
        store
            .query_incidents(&query)
            .unwrap()
            .into_iter()
            .map(|r| r.incident.kind)
            .collect()
    };
    assert_eq!(
        kinds(IncidentQuery {
            kind: Some(IncidentKind::Oversell),
            ..all.clone()
        }),
        [IncidentKind::Oversell]
    );
    assert_eq!(
        kinds(IncidentQuery {
            sku: Some(sku("SKU-2")),
            ..all.clone()
        }),
        [IncidentKind::SequenceGap]
    );
    assert_eq!(
        kinds(IncidentQuery {
            since: Some(at(2)),
            ..all.clone()
        }),
        [IncidentKind::Oversell]
    );
    assert_eq!(
        kinds(IncidentQuery {
            until: Some(at(2)),
            ..all.clone()
        })
        .len(),
        2
    );
    assert_eq!(
        kinds(IncidentQuery {
            limit: 1,
            window: Window::Latest,
            ..all.clone()
        }),
        [IncidentKind::Oversell]
    );
    let first_id = store
        .query_incidents(&IncidentQuery {
            limit: 1,
            ..all.clone()
        })
        .unwrap()[0]
        .id;
    assert_eq!(
        kinds(IncidentQuery {
            after_id: Some(first_id),
            ..all.clone()
        })
        .len(),
        2
    );
}

/// More rows than one SQLite audit bucket (8,192 ids) holds, so that queries cross buckets.
pub fn audit_queries_cross_many_buckets(store: &dyn Store) {
    let per_envelope = 9_000;
    let entries: Vec<OwnedEntry> = (1..=3)
        .map(|position| {
            let audit = (0..per_envelope)
                .map(|i| {
                    audit_quantities(
                        position,
                        if i % 1000 == 7 {
                            "SKU-rare"
                        } else {
                            "SKU-common"
                        },
                        "e",
                        i,
                        i + 1,
                    )
                })
                .collect();
            OwnedEntry::new(envelope(position, "default", Input::Tick)).with_audit(audit)
        })
        .collect();
    append(store, &entries);
    let all = AuditQuery::tenant(tenant("default"), 1000);
    let rare = AuditQuery {
        sku: Some(sku("SKU-rare")),
        ..all.clone()
    };
    let rare_rows = store.query_audit(&rare).unwrap();
    assert_eq!(rare_rows.len(), 27, "9 per envelope");
    assert!(rare_rows.windows(2).all(|w| w[0].id < w[1].id));
    let latest = store
        .query_audit(&AuditQuery {
            limit: 4,
            window: Window::Latest,
            ..rare.clone()
        })
        .unwrap();
    assert_eq!(
        latest.iter().map(|r| r.id).collect::<Vec<_>>(),
        rare_rows[23..].iter().map(|r| r.id).collect::<Vec<_>>()
    );
    let page = store
        .query_audit(&AuditQuery {
            after_id: Some(rare_rows[10].id),
            limit: 3,
            ..rare.clone()
        })
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        rare_rows[11..14].iter().map(|r| r.id).collect::<Vec<_>>()
    );
    let second = store
        .query_audit(&AuditQuery {
            position: Some(2),
            ..rare.clone()
        })
        .unwrap();
    assert_eq!(second.len(), 9);
    assert!(second.iter().all(|r| r.entry.position == 2));
    let since = store
        .query_audit(&AuditQuery {
            since: Some(at(3)),
            limit: 1000,
            ..all.clone()
        })
        .unwrap();
    assert_eq!((since.len(), since[0].entry.position), (1000, 3));
    let until = store
        .query_audit(&AuditQuery {
            until: Some(at(2)),
            window: Window::Latest,
            ..all.clone()
        })
        .unwrap();
    assert!(until.iter().all(|r| r.entry.position == 1));
    assert_eq!(
        until.last().unwrap().entry.change,
        audit_quantities(1, "x", "e", 8_999, 9_000).change
    );
}

macro_rules! contract {
    ($backend:ident: $($check:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $check() {
                    let test_store = super::$backend();
                    super::$check(&*test_store.store);
                }
            )*
        }
    };
}

macro_rules! contract_for_every_backend {
    ($($check:ident),* $(,)?) => {
        contract!(memory: $($check),*);
        contract!(sqlite: $($check),*);
    };
}

contract_for_every_backend!(
    empty_store_has_nothing,
    journal_round_trips_every_input,
    journal_reads_in_pages,
    append_refuses_a_gap_and_keeps_nothing_of_it,
    snapshots_round_trip_and_prune,
    audit_round_trips_every_change_kind,
    audit_filters,
    audit_cursor_pages_through_everything_once,
    incidents_round_trip_and_filter,
    audit_queries_cross_many_buckets,
);
