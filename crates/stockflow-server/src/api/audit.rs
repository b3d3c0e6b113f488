//! The audit trail and incidents, filtered and paged (newest last).

use super::{Tenant, parse_path_id};
use crate::app::AppState;
use crate::problem::{FieldError, Problem};
use crate::wire::audit::{AuditEntryOut, AuditPageOut, IncidentOut, IncidentPageOut};
use crate::wire::parse_time;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use stockflow_core::ids::{ChannelId, LocationId, Sku};
use stockflow_core::outcome::IncidentKind;
use stockflow_store::{AuditQuery, IncidentQuery, QUERY_LIMIT_MAX, Window};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_audit))
        .routes(routes!(get_incidents))
        .routes(routes!(export_audit))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub sku: Option<String>,
    pub location: Option<String>,
    pub channel: Option<String>,
    /// The producer of an event (the same column as `actor`; both given must agree).
    pub source: Option<String>,
    /// The source of an event, the actor of a command, `stockflow` for time.
    pub actor: Option<String>,
    pub reason: Option<String>,
    /// An event id, reservation id or hold id.
    pub cause_id: Option<String>,
    /// RFC 3339; entries at or after.
    pub since: Option<String>,
    /// RFC 3339; entries before.
    pub until: Option<String>,
    /// The `id` of the last entry of the previous page.
    pub after: Option<u64>,
    /// 1 to 1000; default 100.
    pub limit: Option<usize>,
    /// `earliest` (default; page forward with `after`) or `latest` (the newest entries).
    pub window: Option<String>,
}

/// Every change, with its cause, actor, reason and before/after quantities.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    params(AuditParams),
    responses((status = 200, body = AuditPageOut), (status = 400, body = Problem))
)]
async fn get_audit(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPageOut>, Problem> {
    let query = audit_query(tenant.clone(), &params)?;
    let limit = query.limit;
    let store = state.engine.store_for(&tenant).clone();
    let records = tokio::task::spawn_blocking(move || store.query_audit(&query))
        .await
        .map_err(|_| Problem::internal("the audit query panicked"))?
        .map_err(|error| Problem::internal(format!("audit query failed: {error}")))?;
    let next_after = (records.len() == limit)
        .then(|| records.last().map(|r| r.id))
        .flatten();
    Ok(Json(AuditPageOut {
        entries: records.iter().map(AuditEntryOut::from_record).collect(),
        next_after,
    }))
}

pub fn audit_query(
    tenant: stockflow_core::ids::TenantId,
    params: &AuditParams,
) -> Result<AuditQuery, Problem> {
    let mut errors = Vec::new();
    let mut query = AuditQuery::tenant(tenant, limit(params.limit, &mut errors));
    query.sku = params
        .sku
        .as_deref()
        .map(|s| parse_path_id("sku", s, Sku::parse))
        .transpose()?;
    query.location = params
        .location
        .as_deref()
        .map(|s| parse_path_id("location", s, LocationId::parse))
        .transpose()?;
    query.channel = params
        .channel
        .as_deref()
        .map(|s| parse_path_id("channel", s, ChannelId::parse))
        .transpose()?;
    query.actor = match (&params.source, &params.actor) {
        (Some(source), Some(actor)) if source != actor => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "conflicting_filters",
                "source and actor name the same column and must agree",
            ));
        }
        (source, actor) => source.clone().or_else(|| actor.clone()),
    };
    query.reason = params.reason.clone();
    query.cause_id = params.cause_id.clone();
    query.since = params
        .since
        .as_deref()
        .and_then(|t| parse_time("since", t, &mut errors));
    query.until = params
        .until
        .as_deref()
        .and_then(|t| parse_time("until", t, &mut errors));
    query.after_id = params.after;
    query.window = window(params.window.as_deref(), &mut errors);
    if errors.is_empty() {
        Ok(query)
    } else {
        Err(Problem::invalid(errors))
    }
}

fn limit(limit: Option<usize>, errors: &mut Vec<FieldError>) -> usize {
    match limit {
        None => 100,
        Some(limit) if (1..=QUERY_LIMIT_MAX).contains(&limit) => limit,
        Some(limit) => {
            errors.push(FieldError::new(
                "limit",
                "invalid_limit",
                format!("limit is 1 to {QUERY_LIMIT_MAX}, got {limit}"),
            ));
            1
        }
    }
}

fn window(window: Option<&str>, errors: &mut Vec<FieldError>) -> Window {
    match window {
        None | Some("earliest") => Window::Earliest,
        Some("latest") => Window::Latest,
        Some(other) => {
            errors.push(FieldError::new(
                "window",
                "invalid_window",
                format!("earliest or latest, not {other:?}"),
            ));
            Window::Earliest
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct IncidentParams {
    /// negative_available, negative_quantity, sequence_gap, unknown_reservation, oversell,
    /// version_conflict, late_event, picked_ahead
    pub kind: Option<String>,
    pub sku: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub after: Option<u64>,
    pub limit: Option<usize>,
    pub window: Option<String>,
}

/// Incidents: oversells, negative stock, sequence gaps, unknown reservations.
#[utoipa::path(
    get,
    path = "/v1/incidents",
    tag = "audit",
    params(IncidentParams),
    responses((status = 200, body = IncidentPageOut), (status = 400, body = Problem))
)]
async fn get_incidents(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(params): Query<IncidentParams>,
) -> Result<Json<IncidentPageOut>, Problem> {
    let mut errors = Vec::new();
    let mut query = IncidentQuery::tenant(tenant.clone(), limit(params.limit, &mut errors));
    query.kind = match params.kind.as_deref() {
        None => None,
        Some(kind) => {
            match serde_json::from_value::<IncidentKind>(serde_json::Value::String(kind.to_owned()))
            {
                Ok(kind) => Some(kind),
                Err(_) => {
                    return Err(Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_kind",
                        format!("{kind:?} is not an incident kind"),
                    ));
                }
            }
        }
    };
    query.sku = params
        .sku
        .as_deref()
        .map(|s| parse_path_id("sku", s, Sku::parse))
        .transpose()?;
    query.since = params
        .since
        .as_deref()
        .and_then(|t| parse_time("since", t, &mut errors));
    query.until = params
        .until
        .as_deref()
        .and_then(|t| parse_time("until", t, &mut errors));
    query.after_id = params.after;
    query.window = window(params.window.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let limit = query.limit;
    let store = state.engine.store_for(&tenant).clone();
    let records = tokio::task::spawn_blocking(move || store.query_incidents(&query))
        .await
        .map_err(|_| Problem::internal("the incident query panicked"))?
        .map_err(|error| Problem::internal(format!("incident query failed: {error}")))?;
    let next_after = (records.len() == limit)
        .then(|| records.last().map(|r| r.id))
        .flatten();
    Ok(Json(IncidentPageOut {
        incidents: records.iter().map(IncidentOut::from_record).collect(),
        next_after,
    }))
}

// ---- Export and time travel ----------------------------------------------------------------

/// Rows an export answers at most; a larger trail is exported in parts with `since`/`until` or
/// `after`.
pub const EXPORT_ROWS_MAX: usize = 10_000_000;

/// Pages of one export waiting to be written to the client: a slow client slows the reads.
const EXPORT_PAGES_BUFFERED: usize = 4;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// `csv` (default) or `jsonl` (one entry per line, as `GET /v1/audit` shows it).
    pub format: Option<String>,
    pub sku: Option<String>,
    pub location: Option<String>,
    pub channel: Option<String>,
    /// The producer of an event (the same column as `actor`).
    pub source: Option<String>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub cause_id: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// Entries after this id: resumes an export that stopped.
    pub after: Option<u64>,
    /// Rows at most (default and limit [`EXPORT_ROWS_MAX`]).
    pub limit: Option<usize>,
}

impl ExportParams {
    fn filters(&self) -> AuditParams {
        AuditParams {
            sku: self.sku.clone(),
            location: self.location.clone(),
            channel: self.channel.clone(),
            source: self.source.clone(),
            actor: self.actor.clone(),
            reason: self.reason.clone(),
            cause_id: self.cause_id.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            after: self.after,
            limit: Some(QUERY_LIMIT_MAX),
            window: None,
        }
    }
}

/// The audit trail as a file: CSV or JSON lines, streamed a page at a time in journal order,
/// with the filters of `GET /v1/audit`.
#[utoipa::path(
    get,
    path = "/v1/audit/export",
    tag = "audit",
    params(ExportParams),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        (status = 400, body = Problem),
    )
)]
async fn export_audit(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(params): Query<ExportParams>,
) -> Result<axum::response::Response, Problem> {
    let csv = match params.format.as_deref() {
        None | Some("csv") => true,
        Some("jsonl") => false,
        Some(other) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_format",
                format!("format is csv or jsonl, not {other:?}"),
            ));
        }
    };
    let rows_max = params
        .limit
        .unwrap_or(EXPORT_ROWS_MAX)
        .clamp(1, EXPORT_ROWS_MAX);
    let query = audit_query(tenant.clone(), &params.filters())?;
    let store = state.engine.store_for(&tenant).clone();
    let (sender, receiver) = tokio::sync::mpsc::channel(EXPORT_PAGES_BUFFERED);
    tokio::task::spawn_blocking(move || export_pages(&*store, query, rows_max, csv, sender));
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let (content_type, extension) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "jsonl")
    };
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, content_type)
        .header(
            axum::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"audit.{extension}\""),
        )
        .body(axum::body::Body::from_stream(stream))
        .map_err(|error| Problem::internal(error.to_string()))
}

type ExportChunk = Result<Vec<u8>, std::io::Error>;

/// Reads pages and hands them, encoded, to the response; stops when the client is gone.
fn export_pages(
    store: &dyn stockflow_store::Store,
    mut query: AuditQuery,
    rows_max: usize,
    csv: bool,
    sender: tokio::sync::mpsc::Sender<ExportChunk>,
) {
    let mut written = 0usize;
    if csv && sender.blocking_send(Ok(csv_header())).is_err() {
        return;
    }
    loop {
        query.limit = QUERY_LIMIT_MAX.min(rows_max - written);
        let page = match store.query_audit(&query) {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(%error, "audit export stopped");
                let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
                return;
            }
        };
        written += page.len();
        let full = page.len() == query.limit;
        let chunk = if csv {
            csv_rows(&page)
        } else {
            jsonl_rows(&page)
        };
        if sender.blocking_send(Ok(chunk)).is_err() {
            return;
        }
        match page.last() {
            Some(last) if full && written < rows_max => query.after_id = Some(last.id),
            _ => return,
        }
    }
}

/// The CSV columns: where, when, why, and the on_hand and available before and after (the whole
/// change as JSON in the last column).
const CSV_COLUMNS: [&str; 17] = [
    "id",
    "at",
    "position",
    "sku",
    "location",
    "channel",
    "cause_kind",
    "cause_id",
    "cause_type",
    "actor",
    "reason",
    "change_kind",
    "on_hand_before",
    "on_hand_after",
    "available_before",
    "available_after",
    "change",
];

fn csv_header() -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(CSV_COLUMNS);
    writer.into_inner().unwrap_or_default()
}

fn csv_rows(page: &[stockflow_store::AuditRecord]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(page.len() * 256));
    for record in page {
        let entry = AuditEntryOut::from_record(record);
        let cause = &entry.cause;
        let text = |value: &serde_json::Value| match value {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let change = &entry.change;
        let row = [
            entry.id.to_string(),
            entry.at.clone(),
            entry.position.to_string(),
            entry.sku.clone(),
            entry.location.clone().unwrap_or_default(),
            entry.channel.clone().unwrap_or_default(),
            text(&cause["kind"]),
            text(&cause["event_id"]).max(text(&cause["id"])),
            text(&cause["event_type"])
                .max(text(&cause["name"]))
                .max(text(&cause["what"])),
            entry.actor.clone(),
            entry.reason.clone().unwrap_or_default(),
            text(&change["kind"]),
            text(&change["before"]["on_hand"]),
            text(&change["after"]["on_hand"]),
            text(&change["before"]["available"]),
            text(&change["after"]["available"]),
            change.to_string(),
        ];
        let _ = writer.write_record(&row);
    }
    writer.into_inner().unwrap_or_default()
}

fn jsonl_rows(page: &[stockflow_store::AuditRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(page.len() * 256);
    for record in page {
        if serde_json::to_writer(&mut out, &AuditEntryOut::from_record(record)).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// A SKU's quantities per location as they were at `as_of` (`GET /v1/skus/{sku}?as_of=`).
///
/// Computed from the audit trail rather than by replaying the journal from a snapshot: the
/// audit trail is written in the same transaction as the journal and holds the quantities after
/// every change of every SKU x location (invariant 6), so the state at an instant is the `after`
/// of each location's last entry recorded at or before it: one indexed lookup per location,
/// whatever the journal's length, where a replay would decode a whole-ledger snapshot (only the
/// newest few are kept) and apply up to `snapshot_every_positions` envelopes. Instants are
/// stockflow's recording times (`recorded_at`), the same clock as `GET /v1/audit`'s `at`.
pub async fn sku_as_of(
    state: &AppState,
    tenant: stockflow_core::ids::TenantId,
    sku: Sku,
    as_of: &str,
) -> Result<Json<serde_json::Value>, Problem> {
    let mut errors = Vec::new();
    let Some(at) = parse_time("as_of", as_of, &mut errors) else {
        return Err(Problem::invalid(errors));
    };
    let view = state.engine.reads().sku(&tenant, &sku);
    let locations: Vec<LocationId> = view
        .map(|v| v.stock.keys().cloned().collect())
        .unwrap_or_default();
    let store = state.engine.store_for(&tenant).clone();
    let query_sku = sku.clone();
    let found = tokio::task::spawn_blocking(move || {
        locations
            .into_iter()
            .map(|location| last_quantities(&*store, &tenant, &query_sku, location, at))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|_| Problem::internal("the as_of query panicked"))?
    .map_err(|error| Problem::internal(format!("audit query failed: {error}")))?;
    let rows: Vec<_> = found.into_iter().flatten().collect();
    if rows.is_empty() {
        return Err(Problem::not_found(
            "unknown_sku",
            format!("no stock of {sku} was recorded at or before {as_of}"),
        ));
    }
    Ok(Json(as_of_json(&sku, at, &rows)))
}

/// The location's quantities after its last change at or before `at`, with that entry's id and
/// time; `None` when it had none yet.
fn last_quantities(
    store: &dyn stockflow_store::Store,
    tenant: &stockflow_core::ids::TenantId,
    sku: &Sku,
    location: LocationId,
    at: stockflow_core::time::Timestamp,
) -> Result<
    Option<(
        LocationId,
        stockflow_core::quantity::Quantities,
        u64,
        String,
    )>,
    stockflow_store::StoreError,
> {
    let mut query = AuditQuery::tenant(tenant.clone(), QUERY_LIMIT_MAX);
    query.sku = Some(sku.clone());
    query.location = Some(location.clone());
    query.until = Some(at.plus_micros(1));
    query.window = Window::Latest;
    let page = store.query_audit(&query)?;
    Ok(page
        .iter()
        .rev()
        .find_map(|record| match &record.entry.change {
            stockflow_core::outcome::AuditChange::Quantities { after, .. } => Some((
                location.clone(),
                *after,
                record.id,
                crate::wire::format_time(record.entry.at),
            )),
            _ => None,
        }))
}

fn as_of_json(
    sku: &Sku,
    at: stockflow_core::time::Timestamp,
    rows: &[(
        LocationId,
        stockflow_core::quantity::Quantities,
        u64,
        String,
    )],
) -> serde_json::Value {
    let mut totals = stockflow_core::quantity::Quantities::default();
    let locations: Vec<serde_json::Value> = rows
        .iter()
        .map(|(location, quantities, audit_id, changed_at)| {
            totals.on_hand += quantities.on_hand;
            totals.reserved += quantities.reserved;
            totals.committed += quantities.committed;
            totals.damaged += quantities.damaged;
            totals.quality_control += quantities.quality_control;
            totals.safety_stock += quantities.safety_stock;
            totals.incoming += quantities.incoming;
            let mut out = serde_json::to_value(crate::wire::skus::QuantitiesOut::of(quantities))
                .unwrap_or_default();
            out["location"] = location.to_string().into();
            out["version"] = quantities.version.into();
            out["audit_id"] = (*audit_id).into();
            out["changed_at"] = changed_at.clone().into();
            out
        })
        .collect();
    serde_json::json!({
        "sku": sku.to_string(),
        "as_of": crate::wire::format_time(at),
        "computed_from": "audit_trail",
        "locations": locations,
        "totals": crate::wire::skus::QuantitiesOut::of(&totals),
        // What channels were shown is not kept per instant; see GET /v1/audit for ATS changes.
        "channels": [],
    })
}
