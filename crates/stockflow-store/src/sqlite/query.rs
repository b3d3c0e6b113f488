//! Audit and incident queries. Results are ordered by (at, id), the order of the indexes
//! `(tenant, sku, at)` and `(tenant, at)` (each ends with the rowid), so that SQLite walks an
//! index range and stops at the limit instead of sorting every matching row.

use super::{AUDIT_COLUMNS, INCIDENT_COLUMNS, rows};
use crate::error::StoreError;
use crate::port::{AuditQuery, AuditRecord, IncidentQuery, IncidentRecord, Window};
use rusqlite::Connection;
use rusqlite::types::Value;
use stockflow_core::ids::TenantId;

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
    let mut filter = Filter::new();
    filter.add_text("tenant", Some(query.tenant.as_str()));
    filter.add_text("sku", query.sku.as_ref().map(|s| s.as_str()));
    filter.add_text("location", query.location.as_ref().map(|l| l.as_str()));
    filter.add_text("channel", query.channel.as_ref().map(|c| c.as_str()));
    filter.add_text("actor", query.actor.as_deref());
    filter.add_text("reason", query.reason.as_deref());
    filter.add_text("cause_id", query.cause_id.as_deref());
    if let Some(position) = query.position {
        filter.add("position = ?", Value::Integer(position as i64));
    }
    add_time_range(&mut filter, query.since, query.until);
    filter.add_cursor("audit", query.after_id);
    let sql = filter.sql(
        &format!("SELECT {AUDIT_COLUMNS} FROM audit"),
        query.window,
        query.limit,
    );
    let mut records = run(connection, &sql, &filter.values, |row| {
        let (id, tenant, entry) = rows::audit_from_row(row)?;
        Ok(AuditRecord {
            id,
            tenant: parse_tenant(tenant)?,
            entry,
        })
    })?;
    if query.window == Window::Latest {
        records.reverse();
    }
    Ok(records)
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

fn add_time_range(
    filter: &mut Filter,
    since: Option<stockflow_core::time::Timestamp>,
    until: Option<stockflow_core::time::Timestamp>,
) {
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
