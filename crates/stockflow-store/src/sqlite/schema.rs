//! The SQLite schema and its version. Times are microseconds since the Unix epoch (UTC).

use crate::error::StoreError;
use rusqlite::{Connection, OptionalExtension};

/// The schema version this build writes and reads. A store with a higher version was written by
/// a newer stockflow and is refused rather than misread; a version 1 store is migrated.
pub const SCHEMA_VERSION: u32 = 2;

/// The number of low bits of an audit id below its bucket (8,192 ids per bucket).
pub const AUDIT_BUCKET_BITS: u32 = 13;

/// Version 2. The hot tables carry only what the queries need: every row and every index entry
/// is written for each of the ~200,000 audit entries a second of a busy writer.
const SCHEMA_V2: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per journaled envelope. `input` is the codec's encoding of the Input (see
-- stockflow_store::codec: a compact form for events, MessagePack otherwise); the other columns
-- repeat the envelope for SQL readers. `audit_first_id` is the id of the envelope's first audit
-- entry: the entries of position p are the ids from its audit_first_id up to the next position's.
CREATE TABLE IF NOT EXISTS journal (
    position       INTEGER PRIMARY KEY,
    tenant         TEXT    NOT NULL,
    recorded_at    INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    audit_first_id INTEGER NOT NULL,
    input          BLOB    NOT NULL
);

CREATE TABLE IF NOT EXISTS snapshots (
    position    INTEGER PRIMARY KEY,
    recorded_at INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    ledger      BLOB    NOT NULL
);

-- The audit trail in chunks: up to 64 consecutive entries of one envelope per row, ids
-- first_id .. first_id + count - 1 in journal order. `entries` is the chunk's encoding (see
-- stockflow_store::sqlite::chunk): each entry with its SKU, location, channel, cause, actor,
-- reason and change, quantities before and after. A row per chunk instead of per entry spares
-- SQLite a row, a record and a dozen bound values for each entry.
CREATE TABLE IF NOT EXISTS audit (
    first_id INTEGER PRIMARY KEY,
    position INTEGER NOT NULL,
    tenant   TEXT    NOT NULL,
    at       INTEGER NOT NULL,
    count    INTEGER NOT NULL,
    entries  BLOB    NOT NULL
);

-- The index of the audit trail by SKU: one row per entry, all integers. `key` is a 64-bit hash
-- of the tenant and SKU (queries check the entries they find), `bucket` = id >> 13. An index led
-- by SKU would take each row to a random page of a large B-tree, and WAL writes whole pages at
-- every commit; led by the bucket of consecutive ids, the part being written is small and hot,
-- and a query by SKU seeks once per bucket of its id range. Other filters (location, channel,
-- actor, reason, cause) read the chunks of the id range; time ranges and positions map to id
-- ranges through the journal (recorded_at increases with position; every audit entry's `at` is
-- its envelope's recorded_at).
CREATE TABLE IF NOT EXISTS audit_sku (
    bucket INTEGER NOT NULL,
    key    INTEGER NOT NULL,
    id     INTEGER NOT NULL,
    PRIMARY KEY (bucket, key, id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS incidents (
    id        INTEGER PRIMARY KEY,
    tenant    TEXT    NOT NULL,
    position  INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    sku       TEXT,
    location  TEXT,
    channel   TEXT,
    source    TEXT,
    shortfall INTEGER NOT NULL,
    detail    TEXT    NOT NULL,
    cause     TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_tenant_at ON incidents (tenant, at);
";

/// The audit table of version 1, one row per entry with JSON quantities, as the migration to
/// version 2 reads it.
#[cfg(test)]
pub(crate) const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('schema_version', '1');
CREATE TABLE IF NOT EXISTS journal (
    position INTEGER PRIMARY KEY, tenant TEXT NOT NULL, recorded_at INTEGER NOT NULL,
    kind TEXT NOT NULL, audit_first_id INTEGER NOT NULL, input BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (position INTEGER PRIMARY KEY,
    recorded_at INTEGER NOT NULL, created_at INTEGER NOT NULL, ledger BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, bucket INTEGER NOT NULL, tenant TEXT NOT NULL,
    position INTEGER NOT NULL, at INTEGER NOT NULL, sku TEXT NOT NULL, location TEXT,
    channel TEXT, cause_kind TEXT NOT NULL, cause_id TEXT, cause_name TEXT, cause_source TEXT,
    actor TEXT NOT NULL, reason TEXT, change_kind TEXT NOT NULL, before TEXT, after TEXT,
    detail TEXT);
CREATE INDEX IF NOT EXISTS audit_bucket_tenant_sku ON audit (bucket, tenant, sku);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, position INTEGER NOT NULL,
    at INTEGER NOT NULL, kind TEXT NOT NULL, sku TEXT, location TEXT, channel TEXT,
    source TEXT, shortfall INTEGER NOT NULL, detail TEXT NOT NULL, cause TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS incidents_tenant_at ON incidents (tenant, at);
";

/// Creates the schema in a new database, migrates a version 1 one, or checks the version of
/// an existing one. One transaction: a migration that fails leaves the store as it was.
pub fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let found = stored_version(connection)?;
    if let Some(found) = found
        && found > SCHEMA_VERSION
    {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let transaction = connection
        .transaction()
        .map_err(|e| StoreError::backend("starting the schema transaction", e))?;
    if found == Some(1) {
        super::migrate_v1::rename_audit(&transaction)?;
    }
    transaction
        .execute_batch(SCHEMA_V2)
        .map_err(|e| StoreError::backend("creating the schema", e))?;
    if found == Some(1) {
        super::migrate_v1::convert_audit(&transaction)?;
    }
    transaction
        .execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(|e| StoreError::backend("recording the schema version", e))?;
    transaction
        .commit()
        .map_err(|e| StoreError::backend("committing the schema", e))
}

fn stored_version(connection: &Connection) -> Result<Option<u32>, StoreError> {
    let has_meta: bool = connection
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
            [],
            |row| row.get(0),
        )
        .map_err(|e| StoreError::backend("reading the schema", e))?;
    if !has_meta {
        return Ok(None);
    }
    let value: Option<String> = connection
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| StoreError::backend("reading the schema version", e))?;
    value
        .map(|v| {
            v.parse::<u32>().map_err(|e| {
                StoreError::backend("reading the schema version", format!("{v:?}: {e}"))
            })
        })
        .transpose()
}
