//! Recovery (snapshot + journal tail) and verification (invariant 4) on the SQLite store.

use crate::support::*;
use std::sync::Arc;
use stockflow_core::envelope::Input;
use stockflow_core::event::EventKind;
use stockflow_core::ledger::{Ledger, LedgerConfig};
use stockflow_core::outcome::{AuditChange, EventStatus};
use stockflow_engine::{Engine, EngineConfig, NoopSink, recover, verify};
use stockflow_store::{AuditQuery, Snapshot, SqliteConfig, SqliteStore, Store, codec};

fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(SqliteConfig::new(dir.path().join("stockflow.db"))).unwrap())
}

fn snapshot_often() -> EngineConfig {
    EngineConfig {
        snapshot_every_positions: 10,
        ..test_config()
    }
}

/// A mixed stream: receipts on three SKUs, channel settings, reservations confirmed, released
/// or left to expire, picks against reservations, a duplicate and an out-of-order event.
async fn workload(engine: &Engine, rounds: u64) {
    let submit =
        |input: Input, seconds: i64| engine.submit(tenant(), input, START.plus_seconds(seconds));
    submit(upsert_channel("web"), 0).await.unwrap();
    let mut seq = 0;
    for round in 0..rounds {
        let t = round as i64 * 10;
        let sku_name = ["A", "B", "C"][(round % 3) as usize];
        seq += 1;
        submit(received("wms", seq, sku_name, 10), t).await.unwrap();
        let order = format!("order-{round}");
        submit(reserve(&order, sku_name, 2, 30), t + 1)
            .await
            .unwrap();
        match round % 3 {
            0 => {
                submit(confirm(&order), t + 2).await.unwrap();
                seq += 1;
                let pick = event(
                    "wms",
                    seq,
                    EventKind::Picked {
                        sku: sku(sku_name),
                        location: location(),
                        quantity: 2,
                        reservation_id: Some(rid(&order)),
                    },
                );
                submit(Input::Events(vec![pick]), t + 3).await.unwrap();
            }
            1 => {
                let release = stockflow_core::command::LedgerCommand::Release {
                    reservation_id: rid(&order),
                    reason: None,
                };
                submit(command(release), t + 2).await.unwrap();
            }
            _ => {} // left to expire 30 s later, by a later envelope's time or a tick
        }
    }
    // A duplicate and an event ahead of its predecessor.
    let duplicate = submit(received("wms", 1, "A", 10), rounds as i64 * 10)
        .await
        .unwrap();
    assert_eq!(statuses(&duplicate), [EventStatus::Duplicate]);
    let ahead = submit(received("other", 2, "B", 1), rounds as i64 * 10)
        .await
        .unwrap();
    assert_eq!(statuses(&ahead), [EventStatus::Held]);
}

fn full_replay(store: &dyn Store) -> Ledger {
    let mut ledger = Ledger::new();
    for envelope in journal(store) {
        ledger.apply(&LedgerConfig::default(), &envelope);
    }
    ledger
}

#[tokio::test]
async fn snapshot_and_tail_give_the_state_of_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir);
    let engine = Engine::open(snapshot_often(), store.clone(), Arc::new(NoopSink))
        .await
        .unwrap();
    workload(&engine, 30).await;
    // A few more positions after the last periodic snapshot, so that recovery replays a tail.
    engine
        .submit(
            tenant(),
            received("late", 1, "D", 1),
            START.plus_seconds(400),
        )
        .await
        .unwrap();
    let running_recovery = recover(&*store, &LedgerConfig::default()).unwrap();
    engine.shutdown().await.unwrap();

    let expected = full_replay(&*store);
    assert_eq!(running_recovery.ledger, expected);
    assert!(
        running_recovery.snapshot_position.is_some(),
        "recovery started from a snapshot"
    );
    assert!(running_recovery.replayed > 0, "and replayed a tail");
    assert_eq!(
        codec::encode_ledger(&recover(&*store, &LedgerConfig::default()).unwrap().ledger).unwrap(),
        codec::encode_ledger(&expected).unwrap(),
        "byte for byte"
    );

    let report = verify(&*store, &LedgerConfig::default()).unwrap();
    assert!(report.is_consistent(), "{report:?}");
    assert!(!report.snapshots.is_empty());
    assert!(
        report.snapshots.len() <= EngineConfig::default().snapshots_kept,
        "old snapshots pruned"
    );
    assert_eq!(report.journal_position, journal(&*store).len() as u64);
    assert_eq!(report.replayed, report.journal_position);
}

#[tokio::test]
async fn a_restarted_engine_continues_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir);
    let engine = Engine::open(snapshot_often(), store.clone(), Arc::new(NoopSink))
        .await
        .unwrap();
    workload(&engine, 12).await;
    let views_before: Vec<_> = engine.reads().skus(&tenant(), None, 100);
    let reservation_before = engine
        .reads()
        .reservation(&tenant(), &rid("order-4"))
        .unwrap();
    let position_before = engine.stats().shards[0].last_position;
    engine.shutdown().await.unwrap();
    drop(engine);

    let store = sqlite(&dir);
    let engine = Engine::open(snapshot_often(), store.clone(), Arc::new(NoopSink))
        .await
        .unwrap();
    assert_eq!(engine.stats().shards[0].last_position, position_before);
    assert_eq!(
        engine.reads().skus(&tenant(), None, 100),
        views_before,
        "the same views are published"
    );
    assert_eq!(
        engine
            .reads()
            .reservation(&tenant(), &rid("order-4"))
            .unwrap(),
        reservation_before
    );
    // Exactly once across the restart: an old event is a duplicate; a new one continues the
    // journal (after the envelope whose time gave up the held event's gap, if any).
    let old = engine
        .submit(
            tenant(),
            received("wms", 1, "A", 10),
            START.plus_seconds(500),
        )
        .await
        .unwrap();
    assert_eq!(statuses(&old), [EventStatus::Duplicate]);
    let new = engine
        .submit(
            tenant(),
            received("new", 1, "A", 1),
            START.plus_seconds(500),
        )
        .await
        .unwrap();
    let new_position = new.position.unwrap();
    assert!(new_position > position_before);
    let positions: Vec<_> = journal(&*store).iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=new_position).collect::<Vec<_>>(), "gapless");
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_audit_trail_of_real_changes_reads_back_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir);
    let engine = Engine::open(test_config(), store.clone(), Arc::new(NoopSink))
        .await
        .unwrap();
    workload(&engine, 3).await;
    engine.shutdown().await.unwrap();
    let query = AuditQuery {
        sku: Some(sku("A")),
        ..AuditQuery::tenant(tenant(), 1000)
    };
    let audit = store.query_audit(&query).unwrap();
    assert!(
        audit.len() >= 4,
        "receipt, reserve, confirm, pick of A: {}",
        audit.len()
    );
    assert!(audit.iter().all(|r| r.entry.sku == sku("A")));
    assert!(
        audit
            .windows(2)
            .all(|w| (w[0].entry.at, w[0].id) < (w[1].entry.at, w[1].id))
    );
    let quantity_changes = audit
        .iter()
        .filter(|r| matches!(r.entry.change, AuditChange::Quantities { .. }))
        .count();
    assert!(quantity_changes >= 4);
    let positions: Vec<_> = audit.iter().map(|r| r.entry.position).collect();
    let journal_positions: Vec<_> = journal(&*store).iter().map(|e| e.position).collect();
    assert!(
        positions.iter().all(|p| journal_positions.contains(p)),
        "every audit row belongs to a journaled envelope"
    );
}

#[tokio::test]
async fn verify_finds_a_snapshot_that_is_not_the_state_of_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir);
    let engine = Engine::open(test_config(), store.clone(), Arc::new(NoopSink))
        .await
        .unwrap();
    workload(&engine, 3).await;
    engine.shutdown().await.unwrap();
    let head = store.journal_head().unwrap().unwrap();
    let mut tampered = full_replay(&*store);
    tampered.tenants.clear();
    store
        .save_snapshot(&Snapshot {
            position: head.position,
            recorded_at: head.recorded_at,
            ledger: tampered,
        })
        .unwrap();
    let report = verify(&*store, &LedgerConfig::default()).unwrap();
    assert!(!report.is_consistent());
    assert!(!report.recovery_matches);
    assert_eq!(
        report.snapshots.last().map(|s| (s.position, s.matches)),
        Some((head.position, false))
    );
}

/// A store whose snapshots were written before body fingerprint schemes were recorded (so with
/// SHA-256 ones): recovery goes on with that scheme, verification replays with it, and a
/// repeated event is still a duplicate.
#[tokio::test]
async fn snapshots_with_sha256_body_fingerprints_stay_consistent() {
    use stockflow_core::ledger::fingerprint::BodyFingerprints;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir);
    let engine = Engine::open(test_config(), store.clone(), Arc::new(NoopSink))
        .await
        .unwrap();
    workload(&engine, 3).await;
    engine.shutdown().await.unwrap();
    let head = store.journal_head().unwrap().unwrap();
    let mut old = Ledger::with_body_fingerprints(BodyFingerprints::Sha256);
    for envelope in journal(&*store) {
        old.apply(&LedgerConfig::default(), &envelope);
    }
    store.prune_snapshots(1).unwrap();
    store
        .save_snapshot(&Snapshot {
            position: head.position,
            recorded_at: head.recorded_at,
            ledger: old.clone(),
        })
        .unwrap();
    assert_ne!(old, full_replay(&*store), "the schemes differ");
    let report = verify(&*store, &LedgerConfig::default()).unwrap();
    assert!(report.is_consistent(), "{report:?}");
    let recovered = recover(&*store, &LedgerConfig::default()).unwrap();
    assert_eq!(recovered.ledger, old);

    let engine = Engine::open(test_config(), store.clone(), Arc::new(NoopSink))
        .await
        .unwrap();
    let repeat = engine
        .submit(
            tenant(),
            received("wms", 1, "A", 10),
            START.plus_seconds(500),
        )
        .await
        .unwrap();
    let stockflow_core::outcome::Reply::Events(results) = repeat.reply else {
        panic!("{:?}", repeat.reply)
    };
    assert_eq!(results[0].status, EventStatus::Duplicate);
    engine.shutdown().await.unwrap();
    assert!(
        verify(&*store, &LedgerConfig::default())
            .unwrap()
            .is_consistent()
    );
}
