//! Audit and incident queries.
//!
//! Audit: the filters become an id range (cursor, position and time through the journal), then
//! the buckets of that range are searched one at a time through the `(bucket, tenant, sku)`
//! index, from the window's end, until the limit is reached. Incidents (rare rows) use a plain
//! `(tenant, at)` index.

use super::schema::AUDIT_BUCKET_BITS;
use super::{AUDIT_COLUMNS, INCIDENT_COLUMNS, rows};
use crate::error::StoreError;
use crate::port::{AuditQuery, AuditRecord, IncidentQuery, IncidentRecord, Window};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};
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
    let Some((low, high)) = audit_id_range(connection, query)? else {
        return Ok(Vec::new());
    };
    // Parameters 1 to 3 are the bucket and the id range inside it, set per bucket below.
    let mut filter = Filter::new();
    filter.add("bucket = ?", Value::Integer(0));
    filter.add("id >= ?", Value::Integer(0));
    filter.add("id < ?", Value::Integer(0));
    filter.add_text("tenant", Some(query.tenant.as_str()));
    filter.add_text("sku", query.sku.as_ref().map(|s| s.as_str()));
    filter.add_text("location", query.location.as_ref().map(|l| l.as_str()));
    filter.add_text("channel", query.channel.as_ref().map(|c| c.as_str()));
    filter.add_text("actor", query.actor.as_deref());
    filter.add_text("reason", query.reason.as_deref());
    filter.add_text("cause_id", query.cause_id.as_deref());
    add_time_range(&mut filter, query.since, query.until);
    let order = match query.window {
        Window::Earliest => "ASC",
        Window::Latest => "DESC",
    };
    let sql = format!(
        "SELECT {AUDIT_COLUMNS} FROM audit WHERE {} ORDER BY id {order} LIMIT ?",
        filter.clauses.join(" AND ")
    );
    filter.values.push(Value::Integer(0));
    let limit_parameter = filter.values.len() - 1;
    let first_bucket = low >> AUDIT_BUCKET_BITS;
    let last_bucket = (high - 1) >> AUDIT_BUCKET_BITS;
    let buckets: Box<dyn Iterator<Item = i64>> = match query.window {
        Window::Earliest => Box::new(first_bucket..=last_bucket),
        Window::Latest => Box::new((first_bucket..=last_bucket).rev()),
    };
    let mut records = Vec::new();
    for bucket in buckets {
        filter.values[0] = Value::Integer(bucket);
        filter.values[1] = Value::Integer(low.max(bucket << AUDIT_BUCKET_BITS));
        filter.values[2] = Value::Integer(high.min((bucket + 1) << AUDIT_BUCKET_BITS));
        filter.values[limit_parameter] = Value::Integer((query.limit - records.len()) as i64);
        records.extend(run(connection, &sql, &filter.values, |row| {
            let (id, tenant, entry) = rows::audit_from_row(row)?;
            Ok(AuditRecord {
                id,
                tenant: parse_tenant(tenant)?,
                entry,
            })
        })?);
        if records.len() >= query.limit {
            break;
        }
    }
    if query.window == Window::Latest {
        records.reverse();
    }
    Ok(records)
}

/// The ids `[low, high)` the cursor, position and time filters allow; `None` when empty.
fn audit_id_range(
    connection: &Connection,
    query: &AuditQuery,
) -> Result<Option<(i64, i64)>, StoreError> {
    let error = |e| StoreError::backend("querying the audit trail", e);
    let max_id: i64 = connection
        .query_row("SELECT COALESCE(MAX(id), 0) FROM audit", [], |row| {
            row.get(0)
        })
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
