//! The SQLite schema and its version. Times are microseconds since the Unix epoch (UTC).

use crate::error::StoreError;
use rusqlite::{Connection, OptionalExtension};

/// The schema version this build writes and reads. A store with a higher version was written by
/// a newer stockflow and is refused rather than misread.
pub const SCHEMA_VERSION: u32 = 1;

/// Version 1. The hot tables (journal, audit) carry only the indexes the queries need: every
/// index is one more B-tree written for each of the ~200,000 audit rows a second of a busy
/// writer.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per journaled envelope. `input` is the codec's MessagePack of the Input
-- (see stockflow_store::codec); the other columns repeat the envelope for SQL readers.
CREATE TABLE IF NOT EXISTS journal (
    position    INTEGER PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    input       BLOB    NOT NULL
);

CREATE TABLE IF NOT EXISTS snapshots (
    position    INTEGER PRIMARY KEY,
    recorded_at INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    ledger      BLOB    NOT NULL
);

-- One row per AuditEntry. before/after are JSON (quantities as an object, counts as a number);
-- detail holds the rest of a buffer or setting change as a JSON object.
CREATE TABLE IF NOT EXISTS audit (
    id           INTEGER PRIMARY KEY,
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
CREATE INDEX IF NOT EXISTS audit_tenant_sku_at ON audit (tenant, sku, at);
CREATE INDEX IF NOT EXISTS audit_tenant_at ON audit (tenant, at);
CREATE INDEX IF NOT EXISTS audit_position ON audit (position);

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
