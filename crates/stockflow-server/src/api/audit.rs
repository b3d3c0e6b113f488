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
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub sku: Option<String>,
    pub location: Option<String>,
    pub channel: Option<String>,
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
    query.actor = params.actor.clone();
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
    /// version_conflict
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
