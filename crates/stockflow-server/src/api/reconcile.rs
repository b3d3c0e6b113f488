//! Reconciliation: cycle count imports, channel runs (on demand; scheduled ones are listed too)
//! and the counts the KPIs read.

use super::{Tenant, parse_path_id};
use crate::app::AppState;
use crate::problem::Problem;
use crate::reconcile::counts::{self, CountFormat, CountReport, ImportOptions};
use crate::reconcile::stats::{ChannelRun, ReconciliationSnapshot};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use stockflow_core::ids::ChannelId;
use stockflow_core::reconcile::ApplyMode;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_counts))
        .routes(routes!(post_channels))
        .routes(routes!(post_channel))
        .routes(routes!(get_runs))
        .routes(routes!(get_run))
        .routes(routes!(get_stats))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CountParams {
    /// `csv` or `json` (a JSON array or JSON lines); by default from the content type.
    pub format: Option<String>,
    /// `dry_run` (the configured default), `policy` (apply differences within the threshold
    /// policy, flag the rest), `all` (or `true`).
    pub apply: Option<String>,
    /// Apply the valid rows even when some rows are malformed.
    pub apply_valid_rows: Option<bool>,
    /// RFC 3339: the count time of rows that do not give one.
    pub counted_at: Option<String>,
}

/// Imports a cycle count (CSV or JSON), compares each row with on_hand as of its count time,
/// and applies the differences when asked (as `counted` or `adjusted` events carrying the
/// version they were computed from). A malformed row is reported with its line; nothing is
/// applied then unless `apply_valid_rows=true` (422 `malformed_rows` carries the report).
#[utoipa::path(
    post,
    path = "/v1/reconcile/counts",
    tag = "reconcile",
    params(CountParams),
    request_body(content = String, content_type = "text/csv", description = "sku,location,counted,counted_at[,unit_cost]"),
    responses(
        (status = 200, body = Object, description = "the count report"),
        (status = 400, body = Problem),
        (status = 413, description = "count_too_large, too_many_rows", body = Problem),
        (status = 422, description = "malformed_rows, count_too_old", body = Problem),
    )
)]
async fn post_counts(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(params): Query<CountParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CountReport>, Problem> {
    let settings = &state.config.reconcile.counts;
    let format = format(params.format.as_deref(), &headers)?;
    let mode = match params.apply.as_deref() {
        None => settings.default_apply,
        Some("dry_run" | "false") => ApplyMode::DryRun,
        Some("policy") => ApplyMode::Policy,
        Some("all" | "true") => ApplyMode::All,
        Some(other) => {
            return Err(bad(
                "invalid_apply",
                format!("apply is dry_run, policy or all, not {other:?}"),
            ));
        }
    };
    let default_counted_at = params
        .counted_at
        .as_deref()
        .map(counts::parse_time)
        .transpose()
        .map_err(|e| bad("invalid_time", e))?;
    let bytes = read_limited(body, settings.bytes_max).await?;
    let rows_max = settings.rows_max;
    let (rows, malformed) = tokio::task::spawn_blocking(move || {
        counts::parse(&bytes, format, default_counted_at, rows_max)
    })
    .await
    .map_err(|_| Problem::internal("reading the count panicked"))??;
    let options = ImportOptions {
        mode,
        apply_valid_rows: params.apply_valid_rows.unwrap_or(false),
    };
    // In a task of its own: a count that outlasts the request's timeout is still carried out
    // whole rather than cut between two of its requests to the writer. Sending the same file
    // again is safe: rows already applied then match.
    let state = state.clone();
    tokio::spawn(async move { counts::import(&state, tenant, rows, malformed, options).await })
        .await
        .map_err(|_| Problem::internal("the count import panicked"))?
        .map(Json)
}

fn bad(code: &str, detail: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, code, detail)
}

fn format(format: Option<&str>, headers: &HeaderMap) -> Result<CountFormat, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match format {
        Some("csv") => Ok(CountFormat::Csv),
        Some("json" | "jsonl") => Ok(CountFormat::Json),
        Some(other) => Err(bad(
            "invalid_format",
            format!("format is csv or json, not {other:?}"),
        )),
        None if content_type.contains("json") => Ok(CountFormat::Json),
        None => Ok(CountFormat::Csv),
    }
}

/// Reads a streamed body up to `limit` bytes; past it, 413 before the rest is read.
async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, Problem> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| bad("invalid_body", format!("reading the body: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "count_too_large",
                format!("the count file is larger than {limit} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Reads back every channel now, classifies each key, repairs drift per policy.
#[utoipa::path(
    post,
    path = "/v1/reconcile/channels",
    tag = "reconcile",
    responses((status = 200, body = Object, description = "the run"), (status = 409, description = "no_channels, run_in_progress", body = Problem))
)]
async fn post_channels(State(state): State<AppState>) -> Result<Json<ChannelRun>, Problem> {
    run_detached(state, None).await
}

/// Runs in a task of its own, so that a run that outlasts the request's timeout still finishes
/// and is recorded (`GET /v1/reconcile/runs`).
async fn run_detached(
    state: AppState,
    channel: Option<ChannelId>,
) -> Result<Json<ChannelRun>, Problem> {
    tokio::spawn(async move { crate::reconcile::channels::run(&state, channel, "on_demand").await })
        .await
        .map_err(|_| Problem::internal("the reconciliation run panicked"))?
        .map(Json)
}

/// Reads back one channel now.
#[utoipa::path(
    post,
    path = "/v1/reconcile/channels/{channel}",
    tag = "reconcile",
    params(("channel" = String, Path)),
    responses((status = 200, body = Object, description = "the run"), (status = 404, body = Problem))
)]
async fn post_channel(
    State(state): State<AppState>,
    Path(channel): Path<String>,
) -> Result<Json<ChannelRun>, Problem> {
    let channel = parse_path_id("channel", &channel, ChannelId::parse)?;
    run_detached(state, Some(channel)).await
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunsParams {
    /// 1 to 100; default 20.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunsOut {
    /// Newest last.
    #[schema(value_type = Vec<Object>)]
    pub runs: Vec<ChannelRun>,
}

/// Recent channel runs with their reports, newest last.
#[utoipa::path(
    get,
    path = "/v1/reconcile/runs",
    tag = "reconcile",
    params(RunsParams),
    responses((status = 200, body = RunsOut))
)]
async fn get_runs(
    State(state): State<AppState>,
    Query(params): Query<RunsParams>,
) -> Json<RunsOut> {
    let limit = params.limit.unwrap_or(20).clamp(1, 100);
    Json(RunsOut {
        runs: state.reconciliation.runs(limit),
    })
}

#[utoipa::path(
    get,
    path = "/v1/reconcile/runs/{id}",
    tag = "reconcile",
    params(("id" = u64, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem))
)]
async fn get_run(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<ChannelRun>, Problem> {
    state
        .reconciliation
        .run(id)
        .map(Json)
        .ok_or_else(|| Problem::not_found("unknown_run", format!("no run {id} is remembered")))
}

/// Mismatch counts per channel and cycle count totals since the start.
#[utoipa::path(
    get,
    path = "/v1/reconcile/stats",
    tag = "reconcile",
    responses((status = 200, body = Object))
)]
async fn get_stats(State(state): State<AppState>) -> Json<ReconciliationSnapshot> {
    Json(state.reconciliation.snapshot())
}
