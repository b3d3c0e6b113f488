//! The embedded default: SQLite through rusqlite (bundled), in WAL mode with `synchronous=FULL`,
//! one transaction per batch.
//!
//! Three kinds of connection, so that nobody waits on a Rust mutex behind somebody else's work:
//! the writer's (journal appends, used by the shard's writer thread only), a maintenance one
//! (snapshots and pruning, used by the snapshot thread; SQLite serialises it with the writer and
//! the busy timeout absorbs the wait), and a small pool of read connections (audit and journal
//! reads: WAL lets them read while the writer writes).

pub mod chunk;
mod migrate_v1;
mod query;
mod rows;
pub mod schema;

use crate::codec;
use crate::error::StoreError;
use crate::port::{
    AuditQuery, AuditRecord, BatchEntry, IncidentQuery, IncidentRecord, JOURNAL_PAGE_MAX,
    JournalHead, Snapshot, SnapshotInfo, Store, check_batch, check_limit,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stockflow_core::envelope::{Envelope, Input, Position};
use stockflow_core::ids::TenantId;
use stockflow_core::time::Timestamp;

pub(crate) const INCIDENT_COLUMNS: &str =
    "id, tenant, position, at, kind, sku, location, channel, source, shortfall, detail, cause";

#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file; created with its schema when absent.
    pub path: PathBuf,
    /// Idle read connections kept open for queries. More may be open while queries overlap;
    /// those are closed after use.
    pub read_connections_idle_max: usize,
    /// How long a connection waits for another's write lock before failing.
    pub busy_timeout: Duration,
    /// Page cache of the writer's connection, in KiB. The audit indexes are updated at random
    /// places; a larger cache keeps their inner pages in memory.
    pub writer_cache_kib: u32,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            read_connections_idle_max: 4,
            busy_timeout: Duration::from_secs(5),
            writer_cache_kib: 64 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSettings {
    pub journal_mode: String,
    pub synchronous: String,
    pub page_size_bytes: u64,
}

pub struct SqliteStore {
    config: SqliteConfig,
    writer: Mutex<Writer>,
    maintenance: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

struct Writer {
    connection: Connection,
    /// The last journaled position, kept here so that an append is checked without a query.
    last_position: Position,
    /// The id of the next audit entry: ids are assigned here, in journal order.
    next_audit_id: i64,
    /// Reused for every envelope's encoding and every audit chunk's.
    buffers: Buffers,
}

#[derive(Default)]
struct Buffers {
    input: Vec<u8>,
    chunk: Vec<u8>,
}

impl SqliteStore {
    /// Opens (creating when absent) the database at `config.path`.
    pub fn open(config: SqliteConfig) -> Result<Self, StoreError> {
        let open_error = |source: StoreError| StoreError::Open {
            path: config.path.clone(),
            source: source.into(),
        };
        let mut connection = open_connection(&config.path, &config).map_err(open_error)?;
        // Before anything else, so that a newer schema is refused before this build touches it.
        schema::migrate(&mut connection).map_err(|e| match e {
            StoreError::SchemaTooNew { .. } => e,
            other => open_error(other),
        })?;
        pragma(
            &connection,
            "cache_size",
            -i64::from(config.writer_cache_kib),
        )
        .map_err(open_error)?;
        let last_position: i64 = connection
            .query_row("SELECT COALESCE(MAX(position), 0) FROM journal", [], |r| {
                r.get(0)
            })
            .map_err(|e| open_error(StoreError::backend("reading the journal head", e)))?;
        let next_audit_id: i64 = connection
            .query_row(
                "SELECT COALESCE((SELECT first_id + count FROM audit \
                 ORDER BY first_id DESC LIMIT 1), 1)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| open_error(StoreError::backend("reading the last audit id", e)))?;
        let maintenance = open_connection(&config.path, &config).map_err(open_error)?;
        Ok(Self {
            writer: Mutex::new(Writer {
                connection,
                last_position: last_position as Position,
                next_audit_id,
                buffers: Buffers {
                    input: Vec::with_capacity(64 * 1024),
                    chunk: Vec::with_capacity(16 * 1024),
                },
            }),
            maintenance: Mutex::new(maintenance),
            readers: Mutex::new(Vec::new()),
            config,
        })
    }

    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// The durability settings in force on the writer's connection, for health reports and
    /// tests: `journal_mode` is `wal` and `synchronous` is `full`.
    pub fn settings(&self) -> Result<SqliteSettings, StoreError> {
        let writer = lock(&self.writer);
        let read = |sql: &str| -> Result<i64, StoreError> {
            writer
                .connection
                .query_row(sql, [], |row| row.get(0))
                .map_err(|e| StoreError::backend("reading the settings", e))
        };
        let journal_mode: String = writer
            .connection
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .map_err(|e| StoreError::backend("reading the settings", e))?;
        let synchronous = match read("PRAGMA synchronous")? {
            0 => "off",
            1 => "normal",
            2 => "full",
            3 => "extra",
            _ => "unknown",
        };
        Ok(SqliteSettings {
            journal_mode: journal_mode.to_ascii_lowercase(),
            synchronous: synchronous.to_owned(),
            page_size_bytes: read("PRAGMA page_size")? as u64,
        })
    }

    /// Runs `f` on a pooled read connection.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = lock(&self.readers).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => open_reader(&self.config.path, &self.config)?,
        };
        let result = f(&connection);
        let mut readers = lock(&self.readers);
        if readers.len() < self.config.read_connections_idle_max {
            readers.push(connection);
        }
        result
    }
}

/// A mutex poisoned by a panic elsewhere still guards a usable connection: SQLite rolls back a
/// transaction that was open when its `Transaction` guard was dropped during the unwind.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn pragma(
    connection: &Connection,
    name: &str,
    value: impl rusqlite::ToSql,
) -> Result<(), StoreError> {
    connection
        .pragma_update(None, name, value)
        .map_err(|e| StoreError::backend("setting a pragma", e))
}

fn open_connection(path: &Path, config: &SqliteConfig) -> Result<Connection, StoreError> {
    let connection =
        Connection::open(path).map_err(|e| StoreError::backend("opening the database", e))?;
    connection
        .busy_timeout(config.busy_timeout)
        .map_err(|e| StoreError::backend("setting the busy timeout", e))?;
    // WAL: readers do not block the writer and the writer does not block readers; one fsync
    // of the log per commit. FULL: that fsync happens at every commit, so an acknowledged batch
    // survives power loss, not only a process crash.
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| StoreError::backend("switching to WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::backend(
            "switching to WAL",
            format!("the database stays in journal mode {mode:?}"),
        ));
    }
    pragma(&connection, "synchronous", "FULL")?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

fn open_reader(path: &Path, config: &SqliteConfig) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::backend("opening a read connection", e))?;
    connection
        .busy_timeout(config.busy_timeout)
        .map_err(|e| StoreError::backend("setting the busy timeout", e))?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

impl Store for SqliteStore {
    fn append(&self, batch: &[BatchEntry<'_>]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut writer = lock(&self.writer);
        check_batch(writer.last_position, batch)?;
        let Writer {
            connection,
            buffers,
            next_audit_id,
            ..
        } = &mut *writer;
        // Only a committed batch moves the ids on: a failed one leaves them for the next.
        *next_audit_id = append_batch(connection, buffers, *next_audit_id, batch)?;
        writer.last_position = batch[batch.len() - 1].envelope.position;
        Ok(())
    }

    fn journal_head(&self) -> Result<Option<JournalHead>, StoreError> {
        self.read(|connection| {
            connection
                .query_row(
                    "SELECT position, recorded_at FROM journal ORDER BY position DESC LIMIT 1",
                    [],
                    |row| {
                        Ok(JournalHead {
                            position: row.get::<_, i64>(0)? as Position,
                            recorded_at: Timestamp(row.get(1)?),
                        })
                    },
                )
                .optional()
                .map_err(|e| StoreError::backend("reading the journal head", e))
        })
    }

    fn read_journal(&self, after: Position, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let limit = limit.min(JOURNAL_PAGE_MAX);
        self.read(|connection| read_journal(connection, after, limit))
    }

    fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let bytes = codec::encode_ledger(&snapshot.ledger)?;
        let created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        lock(&self.maintenance)
            .execute(
                "INSERT OR REPLACE INTO snapshots (position, recorded_at, created_at, ledger) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    snapshot.position as i64,
                    snapshot.recorded_at.0,
                    created_at,
                    bytes
                ],
            )
            .map_err(|e| StoreError::backend("saving a snapshot", e))?;
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        self.read(|connection| {
            read_snapshot(
                connection,
                "SELECT position, recorded_at, ledger FROM snapshots \
                 ORDER BY position DESC LIMIT 1",
                [],
            )
        })
    }

    fn snapshot_at(&self, position: Position) -> Result<Option<Snapshot>, StoreError> {
        self.read(|connection| {
            read_snapshot(
                connection,
                "SELECT position, recorded_at, ledger FROM snapshots WHERE position = ?1",
                [position as i64],
            )
        })
    }

    fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        self.read(|connection| {
            let error = |e| StoreError::backend("listing snapshots", e);
            let mut statement = connection
                .prepare_cached(
                    "SELECT position, recorded_at, length(ledger) FROM snapshots \
                     ORDER BY position",
                )
                .map_err(error)?;
            let rows = statement
                .query_map([], |row| {
                    Ok(SnapshotInfo {
                        position: row.get::<_, i64>(0)? as Position,
                        recorded_at: Timestamp(row.get(1)?),
                        size_bytes: row.get::<_, i64>(2)? as u64,
                    })
                })
                .map_err(error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(error)
        })
    }

    fn prune_snapshots(&self, keep: usize) -> Result<usize, StoreError> {
        let keep = keep.max(1) as i64;
        lock(&self.maintenance)
            .execute(
                "DELETE FROM snapshots WHERE position NOT IN \
                 (SELECT position FROM snapshots ORDER BY position DESC LIMIT ?1)",
                [keep],
            )
            .map_err(|e| StoreError::backend("pruning snapshots", e))
    }

    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        check_limit(query.limit)?;
        self.read(|connection| query::audit(connection, query))
    }

    fn query_incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRecord>, StoreError> {
        check_limit(query.limit)?;
        self.read(|connection| query::incidents(connection, query))
    }
}

/// One transaction for the whole batch: journal rows, audit chunks and their SKU index,
/// incidents. Dropping the transaction on an error rolls all of it back.
/// Returns the next audit id after the batch.
fn append_batch(
    connection: &mut Connection,
    buffers: &mut Buffers,
    mut audit_id: i64,
    batch: &[BatchEntry<'_>],
) -> Result<i64, StoreError> {
    let transaction = connection
        .transaction()
        .map_err(|e| StoreError::backend("starting a batch transaction", e))?;
    {
        let error = |e| StoreError::backend("appending a batch", e);
        let mut statements = AppendStatements {
            journal: transaction
                .prepare_cached(
                    "INSERT INTO journal (position, tenant, recorded_at, kind, audit_first_id, \
                     input) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(error)?,
            chunk: transaction
                .prepare_cached(
                    "INSERT INTO audit (first_id, position, tenant, at, count, entries) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(error)?,
            sku_index: transaction
                .prepare_cached("INSERT INTO audit_sku (bucket, key, id) VALUES (?1, ?2, ?3)")
                .map_err(error)?,
        };
        for entry in batch {
            let envelope = entry.envelope;
            buffers.input.clear();
            codec::encode_input_into(&mut buffers.input, &envelope.input)?;
            statements
                .journal
                .execute(params![
                    envelope.position as i64,
                    envelope.tenant.as_str(),
                    envelope.recorded_at.0,
                    codec::input_kind(&envelope.input),
                    audit_id,
                    &buffers.input[..],
                ])
                .map_err(error)?;
            audit_id = statements.audit(&mut buffers.chunk, envelope, entry.audit, audit_id)?;
            if !entry.incidents.is_empty() {
                insert_incidents(&transaction, &envelope.tenant, entry.incidents)?;
            }
        }
    }
    transaction
        .commit()
        .map_err(|e| StoreError::backend("committing a batch", e))?;
    Ok(audit_id)
}

/// The prepared inserts of a batch.
struct AppendStatements<'c> {
    journal: rusqlite::CachedStatement<'c>,
    chunk: rusqlite::CachedStatement<'c>,
    sku_index: rusqlite::CachedStatement<'c>,
}

impl AppendStatements<'_> {
    /// Writes the audit entries of one envelope from id `first_id`, a chunk row per
    /// [`chunk::CHUNK_ENTRIES_MAX`] entries and an index row per entry. Returns the next id.
    fn audit(
        &mut self,
        buffer: &mut Vec<u8>,
        envelope: &Envelope,
        audit: &[stockflow_core::outcome::AuditEntry],
        mut first_id: i64,
    ) -> Result<i64, StoreError> {
        let error = |e| StoreError::backend("appending audit entries", e);
        if audit.is_empty() {
            return Ok(first_id);
        }
        let head = chunk::ChunkHead {
            position: envelope.position,
            at: envelope.recorded_at,
        };
        let seed = chunk::tenant_seed(&envelope.tenant);
        for entries in audit.chunks(chunk::CHUNK_ENTRIES_MAX) {
            chunk::encode(buffer, head, entries)?;
            self.chunk
                .execute(params![
                    first_id,
                    envelope.position as i64,
                    envelope.tenant.as_str(),
                    envelope.recorded_at.0,
                    entries.len() as i64,
                    &buffer[..],
                ])
                .map_err(error)?;
            for entry in entries {
                self.sku_index
                    .execute(params![
                        first_id >> schema::AUDIT_BUCKET_BITS,
                        chunk::sku_key(seed, &entry.sku),
                        first_id,
                    ])
                    .map_err(error)?;
                first_id += 1;
            }
        }
        Ok(first_id)
    }
}

fn insert_incidents(
    transaction: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    incidents: &[stockflow_core::outcome::Incident],
) -> Result<(), StoreError> {
    let error = |e| StoreError::backend("appending incidents", e);
    let mut statement = transaction
        .prepare_cached(
            "INSERT INTO incidents (tenant, position, at, kind, sku, location, channel, source, \
             shortfall, detail, cause) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(error)?;
    for incident in incidents {
        statement
            .execute(params![
                tenant.as_str(),
                incident.position as i64,
                incident.at.0,
                rows::incident_kind_name(incident.kind)?,
                incident.sku.as_ref().map(|s| s.as_str()),
                incident.location.as_ref().map(|l| l.as_str()),
                incident.channel.as_ref().map(|c| c.as_str()),
                incident.source.as_ref().map(|s| s.as_str()),
                incident.shortfall,
                incident.detail,
                rows::to_json(&incident.cause)?,
            ])
            .map_err(error)?;
    }
    Ok(())
}

fn read_journal(
    connection: &Connection,
    after: Position,
    limit: usize,
) -> Result<Vec<Envelope>, StoreError> {
    let error = |e| StoreError::backend("reading the journal", e);
    let mut statement = connection
        .prepare_cached(
            "SELECT position, tenant, recorded_at, input FROM journal \
             WHERE position > ?1 ORDER BY position LIMIT ?2",
        )
        .map_err(error)?;
    let mut rows = statement
        .query(params![after as i64, limit as i64])
        .map_err(error)?;
    let mut envelopes = Vec::with_capacity(limit.min(64));
    while let Some(row) = rows.next().map_err(error)? {
        let position: i64 = row.get(0).map_err(error)?;
        let tenant: String = row.get(1).map_err(error)?;
        let recorded_at: i64 = row.get(2).map_err(error)?;
        let input: Input = codec::decode_input(
            row.get_ref(3)
                .map_err(error)?
                .as_blob()
                .map_err(|e| error(e.into()))?,
        )?;
        envelopes.push(Envelope {
            position: position as Position,
            tenant: TenantId::parse(tenant).map_err(|e| StoreError::Codec {
                direction: "decode",
                what: "journal tenant",
                source: e.into(),
            })?,
            recorded_at: Timestamp(recorded_at),
            input,
        });
    }
    Ok(envelopes)
}

fn read_snapshot<P: rusqlite::Params>(
    connection: &Connection,
    sql: &str,
    params: P,
) -> Result<Option<Snapshot>, StoreError> {
    let error = |e| StoreError::backend("reading a snapshot", e);
    let row = connection
        .query_row(sql, params, |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Vec<u8>>(2)?,
            ))
        })
        .optional()
        .map_err(error)?;
    row.map(|(position, recorded_at, bytes)| {
        Ok(Snapshot {
            position: position as Position,
            recorded_at: Timestamp(recorded_at),
            ledger: codec::decode_ledger(&bytes)?,
        })
    })
    .transpose()
}
