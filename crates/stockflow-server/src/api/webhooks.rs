//! Channel webhooks: `POST /v1/webhooks/{shopify|amazon|tiktok}/{channel}`, and what became of
//! them: `GET /v1/webhooks/inbox`, `GET /v1/webhooks/incidents`.
//!
//! A delivery is read up to the platform's body limit (413 beyond), its signature checked on
//! the raw body (401 and nothing recorded when it is missing or wrong), its id and topic read
//! (400 when it is not what the platform sends and a retry would not change that), then
//! recorded in the inbox before it is answered 200, within the platform's deadline. A key seen
//! before answers 200 `duplicate`; a full backlog 503 with Retry-After, so the platform retries.
//! Processing happens afterwards (see [`crate::inbound`]).

use super::Tenant;
use crate::app::{AppState, wall_clock};
use crate::inbound::formats;
use crate::inbound::inbox::{Accepted, ListQuery, NewIncident, NewRow, RowState};
use crate::inbound::metrics;
use crate::inbound::processor::blocking;
use crate::inbound::settings::Platform;
use crate::inbound::verify::verify;
use crate::problem::Problem;
use crate::wire::format_time;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use stockflow_core::time::Timestamp;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Seconds a platform is asked to wait when the backlog is full.
const BACKLOG_RETRY_AFTER_SECONDS: u32 = 30;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(shopify))
        .routes(routes!(amazon))
        .routes(routes!(tiktok))
        .routes(routes!(get_inbox))
        .routes(routes!(get_incidents))
}

/// What a delivery became.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivedOut {
    /// `accepted` (recorded, to be processed), `duplicate` (its key was recorded before) or
    /// `quarantined` (recorded, not the platform's format: see the incidents).
    pub status: &'static str,
    /// The inbox row.
    pub id: i64,
}

/// A Shopify webhook. Headers: `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body with
/// the app's client secret), `X-Shopify-Topic` (`orders/create`, `orders/paid`,
/// `orders/cancelled`, `orders/fulfilled`, `inventory_levels/update`; others are recorded and
/// ignored), `X-Shopify-Event-Id` (else `X-Shopify-Webhook-Id`): the key a retry is
/// recognised by. Body: the REST order resource, or the inventory level.
#[utoipa::path(
    post,
    path = "/v1/webhooks/shopify/{channel}",
    tag = "webhooks",
    params(("channel" = String, Path, description = "The channel id")),
    request_body(content = Object, description = "The platform's webhook body, as it sent it"),
    responses(
        (status = 200, body = ReceivedOut),
        (status = 400, description = "missing_header, invalid_header", body = Problem),
        (status = 401, description = "missing_signature, invalid_signature", body = Problem),
        (status = 404, description = "unknown_channel", body = Problem),
        (status = 413, description = "body_too_large", body = Problem),
        (status = 503, description = "backlog_full, unavailable (Retry-After)", body = Problem),
    )
)]
async fn shopify(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ReceivedOut>, Problem> {
    receive(&state, Platform::Shopify, &channel, &headers, body).await
}

/// An Amazon `ORDER_CHANGE` notification, posted by the merchant's forwarder as SQS delivered
/// it (the notification JSON, or an SNS/SQS envelope around it) or as EventBridge delivered it
/// (`detail-type`, `detail`). Amazon does not sign these for us: the forwarder signs the raw
/// body, `X-Stockflow-Signature: sha256=<hex HMAC-SHA256(secret, body)>` (header and prefix
/// configurable). Key: `NotificationMetadata.NotificationId`. A notification that cannot be
/// read is refused 400, which tells the forwarder to dead-letter it.
#[utoipa::path(
    post,
    path = "/v1/webhooks/amazon/{channel}",
    tag = "webhooks",
    params(("channel" = String, Path, description = "The channel id")),
    request_body(content = Object, description = "The notification, as the forwarder got it"),
    responses(
        (status = 200, body = ReceivedOut),
        (status = 400, description = "malformed_notification", body = Problem),
        (status = 401, description = "missing_signature, invalid_signature", body = Problem),
        (status = 404, description = "unknown_channel", body = Problem),
        (status = 413, description = "body_too_large", body = Problem),
        (status = 503, description = "backlog_full, unavailable (Retry-After)", body = Problem),
    )
)]
async fn amazon(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ReceivedOut>, Problem> {
    receive(&state, Platform::Amazon, &channel, &headers, body).await
}

/// A TikTok Shop webhook. `Authorization` = hex HMAC-SHA256 of `app_key + raw body` keyed with
/// the app secret. Key: `tts_notification_id`. Order status changes (type 1) are processed;
/// their lines are read with Get Order Detail. A body that is not TikTok's format is recorded
/// quarantined (TikTok would retry a refusal for 72 hours).
#[utoipa::path(
    post,
    path = "/v1/webhooks/tiktok/{channel}",
    tag = "webhooks",
    params(("channel" = String, Path, description = "The channel id")),
    request_body(content = Object, description = "The platform's webhook body, as it sent it"),
    responses(
        (status = 200, body = ReceivedOut),
        (status = 401, description = "missing_signature, invalid_signature", body = Problem),
        (status = 404, description = "unknown_channel", body = Problem),
        (status = 413, description = "body_too_large", body = Problem),
        (status = 503, description = "backlog_full, unavailable (Retry-After)", body = Problem),
    )
)]
async fn tiktok(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ReceivedOut>, Problem> {
    receive(&state, Platform::Tiktok, &channel, &headers, body).await
}

async fn receive(
    state: &AppState,
    platform: Platform,
    channel: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Json<ReceivedOut>, Problem> {
    let received_at = wall_clock();
    let name = platform.name();
    let Some(webhook) = state.inbound.settings.channel(platform, channel) else {
        return Err(Problem::not_found(
            "unknown_channel",
            format!("channel {channel} takes no {name} webhooks"),
        ));
    };
    let limit = state.config.webhooks.body_limit_bytes.of(platform);
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        metrics::received(name, channel, "too_large");
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a {name} webhook body is at most {limit} bytes"),
        ));
    };
    if let Err(error) = verify(webhook, headers, &bytes, received_at) {
        // Never the secret or the signature: which check failed, for which channel.
        tracing::warn!(platform = name, %channel, reason = %error, bytes = bytes.len(),
            "webhook refused: signature");
        metrics::received(name, channel, "unauthorized");
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            error.code(),
            error.to_string(),
        ));
    }
    let delivery = formats::delivery(platform, headers, &bytes).map_err(|malformed| {
        tracing::warn!(platform = name, %channel, code = malformed.code, detail = %malformed.detail,
            "webhook refused: not the platform's format");
        metrics::received(name, channel, "malformed");
        Problem::new(StatusCode::BAD_REQUEST, malformed.code, malformed.detail)
    })?;
    let quarantined = delivery.malformed.is_some();
    let row = NewRow {
        tenant: webhook.tenant.to_string(),
        channel: webhook.channel.to_string(),
        platform: name,
        event_id: delivery.event_id,
        topic: delivery.topic,
        received_at: received_at.0,
        body: bytes.to_vec(),
        quarantine: delivery
            .malformed
            .map(|reason| NewIncident::new("malformed", reason)),
    };
    let backlog_max = state.config.webhooks.backlog_max;
    let inbox = &state.inbound.inbox;
    // Answer within the platform's deadline even if the disk stalls: a 503 makes it retry, and
    // the retry is a duplicate if the write did land.
    let within = platform.deadline().mul_f64(0.8);
    let accepted = tokio::time::timeout(
        within,
        blocking(inbox, move |inbox| inbox.accept(&row, backlog_max)),
    )
    .await;
    let unavailable = |detail: &str| {
        metrics::received(name, channel, "unavailable");
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail).with_retry_after(1)
    };
    let accepted = match accepted {
        Err(_) => return Err(unavailable("the inbox did not commit in time; retry")),
        Ok(Err(error)) => {
            tracing::error!(%error, "the inbox refused a webhook");
            return Err(unavailable("the inbox cannot record webhooks right now"));
        }
        Ok(Ok(accepted)) => accepted,
    };
    let (status, id) = match accepted {
        Accepted::Full => {
            metrics::received(name, channel, "backlog_full");
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backlog_full",
                format!("{backlog_max} webhooks wait to be processed; retry later"),
            )
            .with_retry_after(BACKLOG_RETRY_AFTER_SECONDS));
        }
        Accepted::Duplicate(id) => ("duplicate", id),
        Accepted::New(id) if quarantined => {
            state
                .kpis
                .manual_intervention("quarantined_webhook", state.now());
            ("quarantined", id)
        }
        Accepted::New(id) => {
            state.inbound.wake();
            metrics::backlog(inbox.pending_count());
            ("accepted", id)
        }
    };
    metrics::received(name, channel, status);
    Ok(Json(ReceivedOut { status, id }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InboxParams {
    pub channel: Option<String>,
    /// pending, done, ignored, quarantined
    pub state: Option<String>,
    /// The `id` of the last row of the previous page.
    pub after: Option<i64>,
    /// 1 to 1000; default 100.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboxRowOut {
    pub id: i64,
    pub channel: String,
    pub platform: String,
    pub event_id: String,
    pub topic: String,
    pub state: String,
    pub received_at: String,
    pub attempts: u32,
    /// When a pending row is looked at next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<String>,
    /// What processing did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub body_bytes: i64,
    /// False once the body was pruned (the key stays).
    pub body_kept: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboxPageOut {
    pub rows: Vec<InboxRowOut>,
    /// Rows waiting to be processed, all channels.
    pub pending: u64,
    pub next_after: Option<i64>,
}

fn list_query(
    tenant: &str,
    channel: Option<String>,
    kind: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
) -> Result<ListQuery, Problem> {
    let limit = limit.unwrap_or(100);
    if !(1..=crate::inbound::inbox::LIST_LIMIT_MAX).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            format!(
                "limit is 1 to {}, got {limit}",
                crate::inbound::inbox::LIST_LIMIT_MAX
            ),
        ));
    }
    Ok(ListQuery {
        tenant: Some(tenant.to_owned()),
        channel,
        kind,
        after,
        limit,
    })
}

/// Webhooks recorded, oldest first, with what processing did (bodies are not shown).
#[utoipa::path(
    get,
    path = "/v1/webhooks/inbox",
    tag = "webhooks",
    params(InboxParams),
    responses((status = 200, body = InboxPageOut), (status = 400, body = Problem))
)]
async fn get_inbox(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(params): Query<InboxParams>,
) -> Result<Json<InboxPageOut>, Problem> {
    if let Some(name) = &params.state
        && RowState::parse(name).is_none()
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_state",
            format!("{name:?} is not pending, done, ignored or quarantined"),
        ));
    }
    let query = list_query(
        tenant.as_str(),
        params.channel,
        params.state,
        params.after,
        params.limit,
    )?;
    let limit = query.limit;
    let inbox = &state.inbound.inbox;
    let rows = blocking(inbox, move |inbox| inbox.rows(&query))
        .await
        .map_err(Problem::internal)?;
    let next_after = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(InboxPageOut {
        rows: rows
            .into_iter()
            .map(|row| InboxRowOut {
                id: row.id,
                channel: row.channel,
                platform: row.platform,
                event_id: row.event_id,
                topic: row.topic,
                received_at: format_time(Timestamp(row.received_at)),
                attempts: row.attempts,
                next_attempt_at: (row.state == "pending")
                    .then(|| format_time(Timestamp(row.next_attempt_at))),
                processed_at: row.processed_at.map(|at| format_time(Timestamp(at))),
                state: row.state,
                outcome: row.outcome,
                last_error: row.last_error,
                body_bytes: row.body_bytes,
                body_kept: row.body_kept,
            })
            .collect(),
        pending: inbox.pending_count(),
        next_after,
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WebhookIncidentParams {
    pub channel: Option<String>,
    /// malformed, unknown_sku, fulfilment_mismatch, order_state, order_changed, drift,
    /// unmapped_item, unmapped_location, order_unreadable, processing_failed, ...
    pub kind: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookIncidentOut {
    pub id: i64,
    /// The inbox row that found it.
    pub row_id: i64,
    pub at: String,
    pub channel: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Units concerned (the unknown SKU's, the unpicked, the drift).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookIncidentPageOut {
    pub incidents: Vec<WebhookIncidentOut>,
    pub next_after: Option<i64>,
}

/// What processing webhooks found that needs a person. Oversells are ledger incidents:
/// `GET /v1/incidents?kind=oversell`.
#[utoipa::path(
    get,
    path = "/v1/webhooks/incidents",
    tag = "webhooks",
    params(WebhookIncidentParams),
    responses((status = 200, body = WebhookIncidentPageOut), (status = 400, body = Problem))
)]
async fn get_incidents(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(params): Query<WebhookIncidentParams>,
) -> Result<Json<WebhookIncidentPageOut>, Problem> {
    let query = list_query(
        tenant.as_str(),
        params.channel,
        params.kind,
        params.after,
        params.limit,
    )?;
    let limit = query.limit;
    let incidents = blocking(&state.inbound.inbox, move |inbox| inbox.incidents(&query))
        .await
        .map_err(Problem::internal)?;
    let next_after = (incidents.len() == limit)
        .then(|| incidents.last().map(|i| i.id))
        .flatten();
    Ok(Json(WebhookIncidentPageOut {
        incidents: incidents
            .into_iter()
            .map(|incident| WebhookIncidentOut {
                id: incident.id,
                row_id: incident.row_id,
                at: format_time(Timestamp(incident.at)),
                channel: incident.channel,
                kind: incident.kind,
                order_id: incident.order_id,
                sku: incident.sku,
                quantity: incident.quantity,
                detail: incident.detail,
            })
            .collect(),
        next_after,
    }))
}
