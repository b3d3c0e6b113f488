//! What is particular to the SQLite backend: durability settings, reopening, the schema version,
//! transactions that roll back whole, readers beside the writer.

use crate::fixtures::*;
use std::sync::Arc;
use stockflow_core::envelope::Input;
use stockflow_store::{AuditQuery, Snapshot, SqliteConfig, SqliteStore, Store, StoreError};

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(SqliteConfig::new(dir.path().join("stockflow.db"))).unwrap()
}

fn received(position: u64) -> OwnedEntry {
    let events = vec![event(
        &format!("e-{position}"),
        position,
        every_event_kind()[0].kind.clone(),
    )];
    OwnedEntry::new(envelope(position, "default", Input::Events(events))).with_audit(vec![
        audit_quantities(position, "SKU-1", &format!("e-{position}"), 0, 5),
    ])
}

#[test]
fn writer_runs_in_wal_mode_with_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let settings = store.settings().unwrap();
    assert_eq!(settings.journal_mode, "wal");
    assert_eq!(settings.synchronous, "full");
}

#[test]
fn everything_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        let entries = vec![received(1), received(2)];
        store.append(&borrow_all(&entries)).unwrap();
        store
            .save_snapshot(&Snapshot {
                position: 2,
                recorded_at: at(2),
                ledger: sample_ledger(3),
            })
            .unwrap();
    }
    let store = open(&dir);
    assert_eq!(store.journal_head().unwrap().unwrap().position, 2);
    assert_eq!(store.read_journal(0, 10).unwrap().len(), 2);
    assert_eq!(
        store.latest_snapshot().unwrap().unwrap().ledger,
        sample_ledger(3)
    );
    assert_eq!(
        store
            .query_audit(&AuditQuery::tenant(tenant("default"), 10))
            .unwrap()
            .len(),
        2
    );
    // The reopened writer knows where the journal ends.
    let gap = vec![received(4)];
    assert!(matches!(
        store.append(&borrow_all(&gap)),
        Err(StoreError::PositionGap { last: 2, first: 4 })
    ));
    store.append(&borrow_all(&[received(3)])).unwrap();
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir));
    let raw = rusqlite::Connection::open(dir.path().join("stockflow.db")).unwrap();
    raw.execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(raw);
    let error = SqliteStore::open(SqliteConfig::new(dir.path().join("stockflow.db")))
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 2
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("upgrade stockflow"), "{error}");
}

#[test]
fn a_batch_that_fails_halfway_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.append(&borrow_all(&[received(1)])).unwrap();
    // A trigger makes the audit insert of the batch's second envelope fail, after the batch's
    // first rows went in.
    let raw = rusqlite::Connection::open(dir.path().join("stockflow.db")).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON audit WHEN NEW.position = 3 \
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
    )
    .unwrap();
    let mut poisoned = received(3);
    poisoned.audit = vec![audit_quantities(3, "POISON", "e-3", 0, 1)];
    let batch = vec![received(2), poisoned];
    let error = store.append(&borrow_all(&batch)).unwrap_err();
    assert!(matches!(error, StoreError::Backend { .. }), "{error:?}");
    assert_eq!(store.journal_head().unwrap().unwrap().position, 1);
    assert_eq!(
        store
            .query_audit(&AuditQuery::tenant(tenant("default"), 10))
            .unwrap()
            .len(),
        1
    );
    raw.execute_batch("DROP TRIGGER poison").unwrap();
    store.append(&borrow_all(&[received(2)])).unwrap();
    assert_eq!(store.journal_head().unwrap().unwrap().position, 2);
}

#[test]
fn readers_query_while_the_writer_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for position in 1..=200 {
                store.append(&borrow_all(&[received(position)])).unwrap();
            }
        })
    };
    let mut last_seen = 0;
    while !writer.is_finished() {
        let seen = store.read_journal(0, 1000).unwrap().len();
        assert!(seen >= last_seen, "a reader never sees the journal shrink");
        last_seen = seen;
        store
            .query_audit(&AuditQuery::tenant(tenant("default"), 1000))
            .unwrap();
    }
    writer.join().unwrap();
    assert_eq!(store.read_journal(0, 1000).unwrap().len(), 200);
}

/// The SKU index holds 64-bit hashes: an index row whose key belongs to another SKU (as a
/// collision would give) costs a read, never a wrong row.
#[test]
fn an_index_key_shared_by_two_skus_never_returns_the_other() {
    use stockflow_store::sqlite::chunk::{sku_key, tenant_seed};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .append(&borrow_all(&[received(1), received(2)]))
        .unwrap();
    let raw = rusqlite::Connection::open(dir.path().join("stockflow.db")).unwrap();
    let other = sku("SKU-OTHER");
    let key = sku_key(tenant_seed(&tenant("default")), &other);
    raw.execute(
        "INSERT INTO audit_sku (bucket, key, id) VALUES (0, ?1, 1)",
        [key],
    )
    .unwrap();
    let query = |sku_name: &str| {
        store
            .query_audit(&AuditQuery {
                sku: Some(sku(sku_name)),
                ..AuditQuery::tenant(tenant("default"), 10)
            })
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(query("SKU-OTHER"), Vec::<u64>::new());
    assert_eq!(query("SKU-1"), vec![1, 2]);
}
