//! The in-memory store: the same contract as SQLite, nothing durable. For tests and simulations.

use crate::codec;
use crate::error::StoreError;
use crate::port::{
    AuditQuery, AuditRecord, BatchEntry, IncidentQuery, IncidentRecord, JOURNAL_PAGE_MAX,
    JournalHead, Snapshot, SnapshotInfo, Store, audit_matches, check_batch, check_limit,
    incident_matches, select_window,
};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use stockflow_core::envelope::{Envelope, Position};
use stockflow_core::time::Timestamp;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    journal: Vec<Envelope>,
    /// Encoded, as a durable store keeps them, so that the snapshot codec is exercised by every
    /// test that uses this store.
    snapshots: BTreeMap<Position, (Timestamp, Vec<u8>)>,
    audit: Vec<AuditRecord>,
    incidents: Vec<IncidentRecord>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves whole values behind (every mutation below is a
        // push or an insert), so the data is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store for MemoryStore {
    fn append(&self, batch: &[BatchEntry<'_>]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let last = inner.journal.last().map_or(0, |e| e.position);
        check_batch(last, batch)?;
        for entry in batch {
            let tenant = &entry.envelope.tenant;
            inner.journal.push(entry.envelope.clone());
            for audit in entry.audit {
                let id = inner.audit.len() as u64 + 1;
                inner.audit.push(AuditRecord {
                    id,
                    tenant: tenant.clone(),
                    entry: audit.clone(),
                });
            }
            for incident in entry.incidents {
                let id = inner.incidents.len() as u64 + 1;
                inner.incidents.push(IncidentRecord {
                    id,
                    tenant: tenant.clone(),
                    incident: incident.clone(),
                });
            }
        }
        Ok(())
    }

    fn journal_head(&self) -> Result<Option<JournalHead>, StoreError> {
        Ok(self.lock().journal.last().map(|e| JournalHead {
            position: e.position,
            recorded_at: e.recorded_at,
        }))
    }

    fn read_journal(&self, after: Position, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let inner = self.lock();
        // Positions start at 1 and are consecutive, so position p is at index p - 1.
        let start = (after as usize).min(inner.journal.len());
        let end = start + limit.min(JOURNAL_PAGE_MAX);
        Ok(inner.journal[start..end.min(inner.journal.len())].to_vec())
    }

    fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let bytes = codec::encode_ledger(&snapshot.ledger)?;
        self.lock()
            .snapshots
            .insert(snapshot.position, (snapshot.recorded_at, bytes));
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        let inner = self.lock();
        inner
            .snapshots
            .iter()
            .next_back()
            .map(|(position, (recorded_at, bytes))| decode(*position, *recorded_at, bytes))
            .transpose()
    }

    fn snapshot_at(&self, position: Position) -> Result<Option<Snapshot>, StoreError> {
        let inner = self.lock();
        inner
            .snapshots
            .get(&position)
            .map(|(recorded_at, bytes)| decode(position, *recorded_at, bytes))
            .transpose()
    }

    fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        Ok(self
            .lock()
            .snapshots
            .iter()
            .map(|(position, (recorded_at, bytes))| SnapshotInfo {
                position: *position,
                recorded_at: *recorded_at,
                size_bytes: bytes.len() as u64,
            })
            .collect())
    }

    fn prune_snapshots(&self, keep: usize) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let keep = keep.max(1);
        let mut deleted = 0;
        while inner.snapshots.len() > keep {
            inner.snapshots.pop_first();
            deleted += 1;
        }
        Ok(deleted)
    }

    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        check_limit(query.limit)?;
        let inner = self.lock();
        let matching = inner.audit.iter().filter(|r| audit_matches(query, r));
        Ok(select_window(
            matching,
            query.after_id,
            |r| r.id,
            query.limit,
            query.window,
        )
        .into_iter()
        .cloned()
        .collect())
    }

    fn query_incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRecord>, StoreError> {
        check_limit(query.limit)?;
        let inner = self.lock();
        let matching = inner
            .incidents
            .iter()
            .filter(|r| incident_matches(query, r));
        let cursor = query
            .after_id
            .and_then(|id| inner.incidents.get((id as usize).checked_sub(1)?))
            .map(|r| (r.incident.at, r.id));
        Ok(select_window(
            matching,
            cursor,
            |r| (r.incident.at, r.id),
            query.limit,
            query.window,
        )
        .into_iter()
        .cloned()
        .collect())
    }
}

fn decode(
    position: Position,
    recorded_at: Timestamp,
    bytes: &[u8],
) -> Result<Snapshot, StoreError> {
    Ok(Snapshot {
        position,
        recorded_at,
        ledger: codec::decode_ledger(bytes)?,
    })
}
