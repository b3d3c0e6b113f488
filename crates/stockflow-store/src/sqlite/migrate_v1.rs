//! The migration of a version 1 store: its audit table (one row per entry, JSON quantities)
//! becomes chunks and the SKU index of version 2, with the same ids. Run inside the schema
//! transaction of [`super::schema::migrate`].

use super::chunk::{self, CHUNK_ENTRIES_MAX, ChunkHead};
use super::rows;
use super::schema::AUDIT_BUCKET_BITS;
use crate::error::StoreError;
use rusqlite::{Transaction, params};
use stockflow_core::ids::TenantId;
use stockflow_core::outcome::AuditEntry;

/// The columns of the version 1 audit table, in the order [`rows::audit_from_row`] reads.
const AUDIT_V1_COLUMNS: &str = "id, tenant, position, at, sku, location, channel, cause_kind, \
    cause_id, cause_name, cause_source, actor, reason, change_kind, before, after, detail";

/// Moves the version 1 audit table aside, before the version 2 one is created.
pub fn rename_audit(transaction: &Transaction<'_>) -> Result<(), StoreError> {
    transaction
        .execute_batch(
            "DROP INDEX IF EXISTS audit_bucket_tenant_sku; \
             ALTER TABLE audit RENAME TO audit_v1;",
        )
        .map_err(|e| StoreError::backend("migrating the audit trail", e))
}

/// Writes every version 1 entry into chunks and the SKU index, then drops the old table.
pub fn convert_audit(transaction: &Transaction<'_>) -> Result<(), StoreError> {
    let error = |e| StoreError::backend("migrating the audit trail", e);
    let mut select = transaction
        .prepare(&format!(
            "SELECT {AUDIT_V1_COLUMNS} FROM audit_v1 ORDER BY id"
        ))
        .map_err(error)?;
    let mut rows = select.query([]).map_err(error)?;
    let mut pending = Pending::default();
    while let Some(row) = rows.next().map_err(error)? {
        let (id, tenant, entry) = rows::audit_from_row(row)?;
        let tenant = TenantId::parse(tenant).map_err(|e| StoreError::Codec {
            direction: "decode",
            what: "a tenant",
            source: e.into(),
        })?;
        let continues = pending.tenant.as_ref() == Some(&tenant)
            && pending.first_id + pending.entries.len() as u64 == id
            && pending.entries[0].position == entry.position
            && pending.entries.len() < CHUNK_ENTRIES_MAX;
        if !continues {
            pending.flush(transaction)?;
            pending.first_id = id;
            pending.tenant = Some(tenant);
        }
        pending.entries.push(entry);
    }
    pending.flush(transaction)?;
    drop(rows);
    drop(select);
    transaction
        .execute_batch("DROP TABLE audit_v1;")
        .map_err(error)
}

/// Consecutive entries of one envelope, not yet written.
#[derive(Default)]
struct Pending {
    first_id: u64,
    tenant: Option<TenantId>,
    entries: Vec<AuditEntry>,
}

impl Pending {
    fn flush(&mut self, transaction: &Transaction<'_>) -> Result<(), StoreError> {
        let (Some(tenant), Some(first)) = (&self.tenant, self.entries.first()) else {
            return Ok(());
        };
        let error = |e| StoreError::backend("migrating the audit trail", e);
        let head = ChunkHead {
            position: first.position,
            at: first.at,
        };
        let mut bytes = Vec::new();
        chunk::encode(&mut bytes, head, &self.entries)?;
        transaction
            .prepare_cached(
                "INSERT INTO audit (first_id, position, tenant, at, count, entries) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    self.first_id as i64,
                    head.position as i64,
                    tenant.as_str(),
                    head.at.0,
                    self.entries.len() as i64,
                    bytes
                ])
            })
            .map_err(error)?;
        let seed = chunk::tenant_seed(tenant);
        let mut index = transaction
            .prepare_cached("INSERT INTO audit_sku (bucket, key, id) VALUES (?1, ?2, ?3)")
            .map_err(error)?;
        for (offset, entry) in self.entries.iter().enumerate() {
            let id = (self.first_id + offset as u64) as i64;
            index
                .execute(params![
                    id >> AUDIT_BUCKET_BITS,
                    chunk::sku_key(seed, &entry.sku),
                    id
                ])
                .map_err(error)?;
        }
        self.entries.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::chunk::tests::sample_entries;
    use super::super::{SqliteConfig, SqliteStore, schema};
    use super::*;
    use crate::port::{AuditQuery, BatchEntry, Store, Window};
    use stockflow_core::envelope::{Envelope, Input};
    use stockflow_core::ids::Sku;

    /// Writes `entries` as version 1 rows from id `first_id`, the way version 1 did.
    fn insert_v1(connection: &rusqlite::Connection, first_id: i64, entries: &[AuditEntry]) {
        for (offset, row) in entries.iter().enumerate() {
            let id = first_id + offset as i64;
            let cause = rows::cause_columns(&row.cause, &row.actor);
            let change = rows::change_columns(&row.change).unwrap();
            connection
                .execute(
                    "INSERT INTO audit (id, bucket, tenant, position, at, sku, location, \
                     channel, cause_kind, cause_id, cause_name, cause_source, actor, reason, \
                     change_kind, before, after, detail) VALUES (?1, ?2, 'default', ?3, ?4, \
                     ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                    params![
                        id,
                        id >> AUDIT_BUCKET_BITS,
                        row.position as i64,
                        row.at.0,
                        row.sku.as_str(),
                        row.location.as_ref().map(|l| l.as_str()),
                        row.channel.as_ref().map(|c| c.as_str()),
                        cause.kind,
                        cause.id,
                        cause.name,
                        cause.source,
                        row.actor,
                        row.reason,
                        change.kind.as_ref(),
                        change.before,
                        change.after,
                        change.detail,
                    ],
                )
                .unwrap();
        }
    }

    #[test]
    fn a_version_1_audit_trail_is_migrated_with_its_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stockflow.db");
        let skus: Vec<String> = (0..100).map(|i| format!("SKU-{}", i % 7)).collect();
        let names: Vec<&str> = skus.iter().map(String::as_str).collect();
        let mut expected = Vec::new();
        {
            let connection = rusqlite::Connection::open(&path).unwrap();
            connection.execute_batch(schema::SCHEMA_V1).unwrap();
            let mut id = 1;
            for position in 1..=3_u64 {
                let entries = sample_entries(position, &names[..30 + position as usize]);
                connection
                    .execute(
                        "INSERT INTO journal (position, tenant, recorded_at, kind, \
                         audit_first_id, input) VALUES (?1, 'default', ?2, 'events', ?3, ?4)",
                        params![
                            position as i64,
                            entries[0].at.0,
                            id,
                            crate::codec::encode("input", &Input::Events(vec![])).unwrap()
                        ],
                    )
                    .unwrap();
                insert_v1(&connection, id, &entries);
                id += entries.len() as i64;
                expected.extend(entries);
            }
        }
        let store = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
        let tenant = TenantId::default_tenant();
        let all = store
            .query_audit(&AuditQuery::tenant(tenant.clone(), 1000))
            .unwrap();
        assert_eq!(all.len(), expected.len());
        for (index, (record, entry)) in all.iter().zip(&expected).enumerate() {
            assert_eq!(record.id, index as u64 + 1);
            assert_eq!(&record.entry, entry);
        }
        let by_sku = store
            .query_audit(&AuditQuery {
                sku: Some(Sku::parse("SKU-3").unwrap()),
                window: Window::Latest,
                limit: 5,
                ..AuditQuery::tenant(tenant.clone(), 5)
            })
            .unwrap();
        let expected_ids: Vec<u64> = all
            .iter()
            .filter(|r| r.entry.sku.as_str() == "SKU-3")
            .map(|r| r.id)
            .collect();
        let found_ids: Vec<u64> = by_sku.iter().map(|r| r.id).collect();
        assert_eq!(found_ids, expected_ids[expected_ids.len() - 5..]);
        // The migrated store continues the ids and the journal.
        let next = sample_entries(4, &["SKU-3"]);
        let envelope = Envelope {
            position: 4,
            tenant: tenant.clone(),
            recorded_at: next[0].at,
            input: Input::Tick,
        };
        store
            .append(&[BatchEntry {
                envelope: &envelope,
                audit: &next,
                incidents: &[],
            }])
            .unwrap();
        let last = store
            .query_audit(&AuditQuery {
                window: Window::Latest,
                ..AuditQuery::tenant(tenant, 1)
            })
            .unwrap();
        assert_eq!(last[0].id, expected.len() as u64 + 1);
        assert_eq!(last[0].entry, next[0]);
        drop(store);
        let raw = rusqlite::Connection::open(&path).unwrap();
        let version: String = raw
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(version, "2");
        let old_tables: i64 = raw
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_v1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old_tables, 0);
    }
}
