//! `POST /v1/events`: warehouse and OMS events, one or a batch, applied all or none.

use super::{Tenant, submit};
use crate::app::AppState;
use crate::json::JsonBody;
use crate::problem::Problem;
use crate::wire::events::{EventIn, EventsOut, parse_request};
use axum::Json;
use axum::extract::State;
use stockflow_core::envelope::Input;
use stockflow_core::outcome::Reply;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_events))
}

/// Ingest one event or `{"events": [...]}` (up to 1000). Each event is deduplicated forever by
/// `event_id` and applied in `seq` order per `source`; a batch is validated whole and applied
/// all or none. Acknowledged only once durable.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    request_body(content = EventIn, description = "An event, or {\"events\": [EventIn, ...]}"),
    responses(
        (status = 200, description = "Per event, in the order given: applied, duplicate or held", body = EventsOut),
        (status = 400, description = "Invalid event(s); nothing applied", body = Problem),
        (status = 409, description = "idempotency_conflict or version_conflict; nothing applied", body = Problem),
        (status = 413, description = "body_too_large or batch_too_large", body = Problem),
        (status = 503, description = "overloaded or unavailable; retry", body = Problem),
    )
)]
async fn post_events(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Json<EventsOut>, Problem> {
    let events = parse_request(body)?;
    let submitted = submit(&state, tenant, Input::Events(events)).await?;
    match submitted.reply {
        Reply::Events(results) => Ok(Json(EventsOut::from_results(&results))),
        Reply::Rejected(rejection) => Err(Problem::from_rejection(&rejection)),
        other => Err(Problem::internal(format!(
            "unexpected reply to events: {other:?}"
        ))),
    }
}
