//! Health, metrics, channel sync status.

use crate::app::AppState;
use crate::wire::format_time;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(sync_status))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    /// `ok`, or `failing` when a writer stopped (then the answer is 503).
    pub status: String,
    pub shards: Vec<ShardOut>,
    pub started_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShardOut {
    pub shard: usize,
    pub state: String,
    pub journal_position: u64,
    pub queue_depth: usize,
    pub queue_capacity: usize,
    pub last_commit_at: Option<String>,
    pub last_snapshot_position: u64,
}

/// Liveness and the writers' state.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, body = HealthOut), (status = 503, body = HealthOut)))]
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<HealthOut>) {
    let stats = state.engine.stats();
    let healthy = stats.healthy();
    let shards = stats
        .shards
        .iter()
        .map(|shard| ShardOut {
            shard: shard.shard,
            state: format!("{:?}", shard.state).to_lowercase(),
            journal_position: shard.last_position,
            queue_depth: shard.queue_depth,
            queue_capacity: shard.queue_capacity,
            last_commit_at: shard.last_commit_at.map(format_time),
            last_snapshot_position: shard.last_snapshot_position,
        })
        .collect();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = HealthOut {
        status: if healthy { "ok" } else { "failing" }.to_owned(),
        shards,
        started_at: format_time(state.started_at),
    };
    (status, Json(body))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.prometheus.render(),
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncStatusOut {
    /// Per channel: queue depth, oldest pending age (sync lag), calls, rate-limit rejections,
    /// retries, drift, last error, propagation latency percentiles.
    #[schema(value_type = Vec<Object>)]
    pub channels: Vec<stockflow_channels::ChannelStats>,
    /// First full syncs of new channels: total, done, failed, finished.
    #[schema(value_type = Object)]
    pub full_syncs: std::collections::BTreeMap<
        stockflow_core::ids::ChannelId,
        stockflow_channels::FullSyncProgress,
    >,
}

/// The channel sync: per channel queue, lag, calls, errors and latency.
#[utoipa::path(get, path = "/v1/sync", tag = "channels", responses((status = 200, body = SyncStatusOut)))]
async fn sync_status(State(state): State<AppState>) -> Json<SyncStatusOut> {
    let channels = state
        .sync
        .as_ref()
        .map(|sync| sync.stats())
        .unwrap_or_default();
    Json(SyncStatusOut {
        channels,
        full_syncs: state.full_syncs.progress(),
    })
}
