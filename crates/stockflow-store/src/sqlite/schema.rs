//! The SQLite schema and its version. Times are microseconds since the Unix epoch (UTC).

use crate::error::StoreError;
use rusqlite::{Connection, OptionalExtension};

/// The schema version this build writes and reads. A store with a higher version was written by
/// a newer stockflow and is refused rather than misread.
pub const SCHEMA_VERSION: u32 = 1;

/// The number of low bits of an audit id below its bucket (8,192 ids per bucket).
pub const AUDIT_BUCKET_BITS: u32 = 13;

/// Version 1. The hot tables (journal, audit) carry only what the queries need: every index is
/// one more B-tree written for each of the ~200,000 audit rows a second of a busy writer.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per journaled envelope. `input` is the codec's MessagePack of the Input
-- (see stockflow_store::codec); the other columns repeat the envelope for SQL readers.
-- `audit_first_id` is the id of the envelope's first audit row: the audit rows of position p
-- are the ids from its audit_first_id up to the next position's.
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

-- One row per AuditEntry, ids in journal order. before/after are JSON: quantities as an object
-- whose zero states are left out ({\"on_hand\":10,\"reserved\":2,\"version\":7}), counts as a
-- number; detail holds the rest of a buffer or setting change as a JSON object. cause_source
-- is NULL when it equals actor (the source of an event is its actor).
--
-- One index only. An index led by SKU would take each row to a random page of a large B-tree,
-- and WAL writes whole pages at every commit: about one 4 KiB page per audit row. Instead rows
-- are grouped in buckets of consecutive ids (`bucket` = id >> 13); inside the current bucket
-- the index is small and hot, and a query by SKU seeks once per bucket of its id range.
-- Time ranges and positions map to id ranges through the journal (recorded_at increases with
-- position; every audit row's `at` is its envelope's recorded_at).
CREATE TABLE IF NOT EXISTS audit (
    id           INTEGER PRIMARY KEY,
    bucket       INTEGER NOT NULL,
    tenant       TEXT    NOT NULL,
    position     INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    sku          TEXT    NOT NULL,
    location     TEXT,
    channel      TEXT,
    cause_kind   TEXT    NOT NULL,
    cause_id     TEXT,
    cause_name   TEXT,
    cause_source TEXT,
    actor        TEXT    NOT NULL,
    reason       TEXT,
    change_kind  TEXT    NOT NULL,
    before       TEXT,
    after        TEXT,
    detail       TEXT
);
CREATE INDEX IF NOT EXISTS audit_bucket_tenant_sku ON audit (bucket, tenant, sku);

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

/// Creates the schema in a new database, or checks the version of an existing one.
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
    transaction
        .execute_batch(SCHEMA_V1)
        .map_err(|e| StoreError::backend("creating the schema", e))?;
    transaction
        .execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)",
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
