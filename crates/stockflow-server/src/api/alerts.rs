//! Alerts: the open ones and the recently resolved ones, and an evaluation on demand.

use crate::app::{AppState, wall_clock};
use crate::wire::format_time;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use stockflow_core::alerts::{Alert, AlertState};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_alerts))
        .routes(routes!(post_evaluate))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertOut {
    pub id: u64,
    /// sync_lag, rate_limited, demand_spike, sequence_gap, late_event, oversell, reconciliation_mismatch,
    /// cancellation_rate
    pub rule: String,
    /// The channel, SKU or source the alert is about.
    pub subject: String,
    /// `open` or `resolved`.
    pub state: String,
    pub opened_at: String,
    /// The last time the condition was seen to hold.
    pub seen_at: String,
    pub resolved_at: Option<String>,
    pub value: f64,
    pub peak_value: f64,
    pub threshold: f64,
    pub summary: String,
}

impl AlertOut {
    pub fn of(alert: &Alert) -> Self {
        Self {
            id: alert.id,
            rule: alert.rule.name().to_owned(),
            subject: alert.subject.clone(),
            state: match alert.state {
                AlertState::Open => "open".into(),
                AlertState::Resolved => "resolved".into(),
            },
            opened_at: format_time(alert.opened_at),
            seen_at: format_time(alert.seen_at),
            resolved_at: alert.resolved_at.map(format_time),
            value: alert.value,
            peak_value: alert.peak_value,
            threshold: alert.threshold,
            summary: alert.summary.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertsOut {
    pub open: Vec<AlertOut>,
    /// Recently resolved, oldest first.
    pub resolved: Vec<AlertOut>,
    /// Conditions not opened because the most open alerts were open.
    pub suppressed: u64,
    #[schema(value_type = Vec<Object>)]
    pub webhooks: Vec<crate::alerts::webhook::DeliveryStats>,
}

fn alerts_out(state: &AppState) -> AlertsOut {
    let (open, resolved, suppressed) = state.alerts.list();
    AlertsOut {
        open: open.iter().map(AlertOut::of).collect(),
        resolved: resolved.iter().map(AlertOut::of).collect(),
        suppressed,
        webhooks: state.alerts.deliveries.iter().map(|d| d.stats()).collect(),
    }
}

/// Open alerts (one per rule x subject) and the recently resolved ones.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", responses((status = 200, body = AlertsOut)))]
async fn get_alerts(State(state): State<AppState>) -> Json<AlertsOut> {
    Json(alerts_out(&state))
}

/// Evaluates the rules now (they are also evaluated every `alerts.evaluate_every_ms`).
#[utoipa::path(post, path = "/v1/alerts/evaluate", tag = "alerts", responses((status = 200, body = AlertsOut)))]
async fn post_evaluate(State(state): State<AppState>) -> Json<AlertsOut> {
    crate::alerts::evaluate(&state, wall_clock()).await;
    Json(alerts_out(&state))
}
