//! Audit and incident queries.
//!
//! Audit: the filters become an id range (cursor, position and time through the journal). With
//! a SKU, the buckets of that range are searched one at a time through the `audit_sku` index,
//! from the window's end, and each entry found is read from its chunk; without one, the chunks
//! of the range are read in order. Either way every entry is checked against every filter
//! before it is returned, so an index key shared by two SKUs costs a read, never a wrong row.
//! Incidents (rare rows) use a plain `(tenant, at)` index.

use super::chunk::{self, CHUNK_ENTRIES_MAX, Chunk, ChunkHead};
use super::schema::AUDIT_BUCKET_BITS;
use super::{INCIDENT_COLUMNS, rows};
use crate::error::StoreError;
use crate::port::{AuditQuery, AuditRecord, IncidentQuery, IncidentRecord, Window, audit_matches};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use stockflow_core::envelope::Position;
use stockflow_core::ids::TenantId;
use stockflow_core::time::Timestamp;

/// A WHERE clause under construction with its positional parameters.
struct Filter {
    clauses: Vec<String>,
    values: Vec<Value>,
}

impl Filter {
    fn new() -> Self {
        Self {
            clauses: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Adds `clause` with its one parameter written as `?`.
    fn add(&mut self, clause: &str, value: Value) {
        self.values.push(value);
        let index = self.values.len();
        self.clauses.push(clause.replace('?', &format!("?{index}")));
    }

    fn add_text(&mut self, column: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.add(&format!("{column} = ?"), Value::Text(value.to_owned()));
        }
    }

    /// The cursor: rows after `(at, id)` of the row `after_id`. Since rows are appended in time
    /// order, `at >= that row's at` bounds the index range and `id` orders within one instant.
    fn add_cursor(&mut self, table: &str, after_id: Option<u64>) {
        if let Some(id) = after_id {
            let id = id as i64;
            self.values.push(Value::Integer(id));
            let index = self.values.len();
            self.clauses.push(format!(
                "(at, id) > (COALESCE((SELECT at FROM {table} WHERE id = ?{index}), 0), ?{index})"
            ));
        }
    }

    fn sql(&self, select: &str, window: Window, limit: usize) -> String {
        let order = match window {
            Window::Earliest => "at ASC, id ASC",
            Window::Latest => "at DESC, id DESC",
        };
        format!(
            "{select} WHERE {} ORDER BY {order} LIMIT {limit}",
            self.clauses.join(" AND ")
        )
    }
}

pub fn audit(connection: &Connection, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
    let Some(range) = audit_id_range(connection, query)? else {
        return Ok(Vec::new());
    };
    let mut found = Found {
        query,
        records: Vec::new(),
    };
    match &query.sku {
        Some(sku) => audit_by_sku(connection, &mut found, sku, range)?,
        None => audit_by_range(connection, &mut found, range)?,
    }
    let mut records = found.records;
    if query.window == Window::Latest {
        records.reverse();
    }
    Ok(records)
}

/// The records found so far, in window order.
struct Found<'q> {
    query: &'q AuditQuery,
    records: Vec<AuditRecord>,
}

impl Found<'_> {
    fn full(&self) -> bool {
        self.records.len() >= self.query.limit
    }

    /// Keeps entry `id` of `chunk` when it matches every filter.
    fn offer(&mut self, chunk: &ChunkRow, id: i64) -> Result<(), StoreError> {
        let index = (id - chunk.first_id) as usize;
        let entry = Chunk::open(&chunk.entries)?.entry(chunk.head, index)?;
        let record = AuditRecord {
            id: id as u64,
            tenant: chunk.tenant.clone(),
            entry,
        };
        if audit_matches(self.query, &record) {
            self.records.push(record);
        }
        Ok(())
    }
}

/// One row of the audit table.
struct ChunkRow {
    first_id: i64,
    count: i64,
    tenant: TenantId,
    head: ChunkHead,
    entries: Vec<u8>,
}

const CHUNK_COLUMNS: &str = "first_id, count, tenant, position, at, entries";

fn chunk_row(row: &rusqlite::Row<'_>) -> Result<ChunkRow, StoreError> {
    let get = |e: rusqlite::Error| StoreError::backend("reading an audit chunk", e);
    Ok(ChunkRow {
        first_id: row.get(0).map_err(get)?,
        count: row.get(1).map_err(get)?,
        tenant: parse_tenant(row.get(2).map_err(get)?)?,
        head: ChunkHead {
            position: row.get::<_, i64>(3).map_err(get)? as Position,
            at: Timestamp(row.get(4).map_err(get)?),
        },
        entries: row.get(5).map_err(get)?,
    })
}

/// The entries of the ids `[low, high)` of the query's tenant, chunk by chunk in window order.
fn audit_by_range(
    connection: &Connection,
    found: &mut Found<'_>,
    (low, high): (i64, i64),
) -> Result<(), StoreError> {
    let error = |e| StoreError::backend("querying the audit trail", e);
    let order = match found.query.window {
        Window::Earliest => "ASC",
        Window::Latest => "DESC",
    };
    // A chunk holding `low` starts at most CHUNK_ENTRIES_MAX - 1 ids before it.
    let sql = format!(
        "SELECT {CHUNK_COLUMNS} FROM audit WHERE first_id > ?1 AND first_id < ?2 \
         AND tenant = ?3 ORDER BY first_id {order}"
    );
    let mut statement = connection.prepare_cached(&sql).map_err(error)?;
    let mut rows = statement
        .query(params![
            low - CHUNK_ENTRIES_MAX as i64,
            high,
            found.query.tenant.as_str()
        ])
        .map_err(error)?;
    while let Some(row) = rows.next().map_err(error)? {
        let chunk = chunk_row(row)?;
        let first = chunk.first_id.max(low);
        let end = (chunk.first_id + chunk.count).min(high);
        let ids: Box<dyn Iterator<Item = i64>> = match found.query.window {
            Window::Earliest => Box::new(first..end),
            Window::Latest => Box::new((first..end).rev()),
        };
        for id in ids {
            found.offer(&chunk, id)?;
            if found.full() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The entries of one SKU in the ids `[low, high)`: the index, bucket by bucket from the
/// window's end, then each entry's chunk (read once for consecutive entries of one chunk).
fn audit_by_sku(
    connection: &Connection,
    found: &mut Found<'_>,
    sku: &stockflow_core::ids::Sku,
    (low, high): (i64, i64),
) -> Result<(), StoreError> {
    let error = |e| StoreError::backend("querying the audit trail by SKU", e);
    let key = chunk::sku_key(chunk::tenant_seed(&found.query.tenant), sku);
    let order = match found.query.window {
        Window::Earliest => "ASC",
        Window::Latest => "DESC",
    };
    let sql = format!(
        "SELECT id FROM audit_sku WHERE bucket = ?1 AND key = ?2 AND id >= ?3 AND id < ?4 \
         ORDER BY id {order}"
    );
    let first_bucket = low >> AUDIT_BUCKET_BITS;
    let last_bucket = (high - 1) >> AUDIT_BUCKET_BITS;
    let buckets: Box<dyn Iterator<Item = i64>> = match found.query.window {
        Window::Earliest => Box::new(first_bucket..=last_bucket),
        Window::Latest => Box::new((first_bucket..=last_bucket).rev()),
    };
    let mut cached: Option<ChunkRow> = None;
    for bucket in buckets {
        let ids: Vec<i64> = {
            let mut statement = connection.prepare_cached(&sql).map_err(error)?;
            let rows = statement
                .query_map(
                    params![
                        bucket,
                        key,
                        low.max(bucket << AUDIT_BUCKET_BITS),
                        high.min((bucket + 1) << AUDIT_BUCKET_BITS)
                    ],
                    |row| row.get(0),
                )
                .map_err(error)?;
            rows.collect::<Result<_, _>>().map_err(error)?
        };
        for id in ids {
            let holds = |c: &ChunkRow| c.first_id <= id && id < c.first_id + c.count;
            if !cached.as_ref().is_some_and(holds) {
                cached = Some(chunk_of(connection, id)?);
            }
            let chunk = cached.as_ref().expect("read above");
            if holds(chunk) {
                found.offer(chunk, id)?;
            }
            if found.full() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The chunk that holds audit id `id`.
fn chunk_of(connection: &Connection, id: i64) -> Result<ChunkRow, StoreError> {
    let error = |e| StoreError::backend("reading an audit chunk", e);
    let sql = format!(
        "SELECT {CHUNK_COLUMNS} FROM audit WHERE first_id <= ?1 ORDER BY first_id DESC LIMIT 1"
    );
    let mut statement = connection.prepare_cached(&sql).map_err(error)?;
    let mut rows = statement.query([id]).map_err(error)?;
    match rows.next().map_err(error)? {
        Some(row) => chunk_row(row),
        None => Err(StoreError::Codec {
            direction: "decode",
            what: "the audit trail",
            source: format!("the SKU index names id {id}, which no chunk holds").into(),
        }),
    }
}

/// The ids `[low, high)` the cursor, position and time filters allow; `None` when empty.
fn audit_id_range(
    connection: &Connection,
    query: &AuditQuery,
) -> Result<Option<(i64, i64)>, StoreError> {
    let error = |e| StoreError::backend("querying the audit trail", e);
    let max_id: i64 = connection
        .query_row(
            "SELECT COALESCE((SELECT first_id + count - 1 FROM audit \
             ORDER BY first_id DESC LIMIT 1), 0)",
            [],
            |row| row.get(0),
        )
        .map_err(error)?;
    let mut low = 1_i64;
    let mut high = max_id + 1;
    if let Some(after) = query.after_id {
        low = low.max(after as i64 + 1);
    }
    if let Some(position) = query.position {
        let Some(first) = audit_first_id(connection, position)? else {
            return Ok(None);
        };
        low = low.max(first);
        if let Some(next) = audit_first_id(connection, position + 1)? {
            high = high.min(next);
        }
    }
    if let Some(since) = query.since {
        match first_position_at_or_after(connection, since)? {
            Some(position) => low = low.max(audit_first_id(connection, position)?.unwrap_or(high)),
            None => return Ok(None),
        }
    }
    if let Some(until) = query.until
        && let Some(position) = first_position_at_or_after(connection, until)?
    {
        high = high.min(audit_first_id(connection, position)?.unwrap_or(high));
    }
    Ok((low < high).then_some((low, high)))
}

fn audit_first_id(connection: &Connection, position: Position) -> Result<Option<i64>, StoreError> {
    connection
        .prepare_cached("SELECT audit_first_id FROM journal WHERE position = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([position as i64], |row| row.get(0))
                .optional()
        })
        .map_err(|e| StoreError::backend("reading the journal", e))
}

/// The first journal position recorded at or after `at`: a binary search over positions, since
/// `recorded_at` never decreases along the journal (about 30 primary-key lookups for a journal
/// of a billion envelopes, and no index on the hot table).
fn first_position_at_or_after(
    connection: &Connection,
    at: Timestamp,
) -> Result<Option<Position>, StoreError> {
    let error = |e| StoreError::backend("searching the journal by time", e);
    let head: i64 = connection
        .query_row(
            "SELECT COALESCE(MAX(position), 0) FROM journal",
            [],
            |row| row.get(0),
        )
        .map_err(error)?;
    let mut statement = connection
        .prepare_cached("SELECT recorded_at FROM journal WHERE position = ?1")
        .map_err(error)?;
    let (mut low, mut high) = (1_i64, head + 1);
    while low < high {
        let middle = low + (high - low) / 2;
        let recorded_at: i64 = statement
            .query_row([middle], |row| row.get(0))
            .map_err(error)?;
        if recorded_at >= at.0 {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    Ok((low <= head).then_some(low as Position))
}

pub fn incidents(
    connection: &Connection,
    query: &IncidentQuery,
) -> Result<Vec<IncidentRecord>, StoreError> {
    let mut filter = Filter::new();
    filter.add_text("tenant", Some(query.tenant.as_str()));
    if let Some(kind) = query.kind {
        filter.add("kind = ?", Value::Text(rows::incident_kind_name(kind)?));
    }
    filter.add_text("sku", query.sku.as_ref().map(|s| s.as_str()));
    add_time_range(&mut filter, query.since, query.until);
    filter.add_cursor("incidents", query.after_id);
    let sql = filter.sql(
        &format!("SELECT {INCIDENT_COLUMNS} FROM incidents"),
        query.window,
        query.limit,
    );
    let mut records = run(connection, &sql, &filter.values, |row| {
        let (id, tenant, incident) = rows::incident_from_row(row)?;
        Ok(IncidentRecord {
            id,
            tenant: parse_tenant(tenant)?,
            incident,
        })
    })?;
    if query.window == Window::Latest {
        records.reverse();
    }
    Ok(records)
}

fn add_time_range(filter: &mut Filter, since: Option<Timestamp>, until: Option<Timestamp>) {
    if let Some(since) = since {
        filter.add("at >= ?", Value::Integer(since.0));
    }
    if let Some(until) = until {
        filter.add("at < ?", Value::Integer(until.0));
    }
}

fn run<T>(
    connection: &Connection,
    sql: &str,
    values: &[Value],
    mut map: impl FnMut(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let error = |e| StoreError::backend("querying", e);
    let mut statement = connection.prepare_cached(sql).map_err(error)?;
    let mut rows = statement
        .query(rusqlite::params_from_iter(values.iter()))
        .map_err(error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(error)? {
        out.push(map(row)?);
    }
    Ok(out)
}

fn parse_tenant(tenant: String) -> Result<TenantId, StoreError> {
    TenantId::parse(tenant).map_err(|e| StoreError::Codec {
        direction: "decode",
        what: "a tenant",
        source: e.into(),
    })
}
