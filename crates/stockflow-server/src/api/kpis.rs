//! The operators' KPIs over the last hour, day, 7 days and 30 days, and the latency chart's
//! series (see [`crate::kpis`] for what each counts).

use crate::app::AppState;
use crate::kpis::report::{KpiReport, LatencyPoint};
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_kpis))
        .routes(routes!(get_latency_series))
}

/// Propagation latency per channel (median, p99, share under the target), oversell incidents,
/// reconciliation mismatch rate, buffer release frequency, share of orders that needed a
/// person, and cancellation rates against each platform's limit.
#[utoipa::path(get, path = "/v1/kpis", tag = "kpis", responses((status = 200, body = KpiReport)))]
async fn get_kpis(State(state): State<AppState>) -> Json<KpiReport> {
    Json(state.kpis.report(state.now()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LatencySeriesOut {
    pub latency_target_ms: f64,
    /// One point per minute of the last hour, oldest first.
    pub points: Vec<LatencyPoint>,
}

/// Propagation latency per channel and minute over the last hour.
#[utoipa::path(get, path = "/v1/kpis/latency", tag = "kpis",
    responses((status = 200, body = LatencySeriesOut)))]
async fn get_latency_series(State(state): State<AppState>) -> Json<LatencySeriesOut> {
    Json(LatencySeriesOut {
        latency_target_ms: state.kpis.settings().latency_target_ms as f64,
        points: state.kpis.latency_series(state.now()),
    })
}
