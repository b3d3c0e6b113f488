//! Two-step reservations: reserve (provisional, with a TTL), confirm (full or partial), release;
//! expiry and fulfilment happen in the ledger.

use super::{Actor, Tenant, parse_path_id, submit};
use crate::app::AppState;
use crate::json::JsonBody;
use crate::problem::Problem;
use crate::wire::reservations::{
    ConfirmIn, ReleaseIn, ReservationOut, ReserveIn, check_release, parse_confirm_lines,
    parse_reserve,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use stockflow_core::command::{Command, LedgerCommand};
use stockflow_core::envelope::Input;
use stockflow_core::ids::ReservationId;
use stockflow_core::outcome::Reply;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reserve))
        .routes(routes!(get_reservation))
        .routes(routes!(confirm))
        .routes(routes!(release))
}

/// Reserve stock for an order: all lines or none, provisional until confirmed or released,
/// expired after `ttl_seconds`. A repeat of the same request answers the same reservation (200).
#[utoipa::path(
    post,
    path = "/v1/reservations",
    tag = "reservations",
    request_body = ReserveIn,
    responses(
        (status = 201, description = "Granted", body = ReservationOut),
        (status = 200, description = "The same request again: the reservation as it is", body = ReservationOut),
        (status = 400, description = "Invalid request", body = Problem),
        (status = 409, description = "insufficient_stock (with what was available) or idempotency_conflict", body = Problem),
        (status = 422, description = "unknown_sku, unknown_location", body = Problem),
    )
)]
async fn reserve(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Actor(actor): Actor,
    JsonBody(body): JsonBody<ReserveIn>,
) -> Result<(StatusCode, Json<ReservationOut>), Problem> {
    let reserve = parse_reserve(body, state.config.ledger.reservation_ttl_seconds_default)?;
    let command = Command::Ledger(LedgerCommand::Reserve(reserve));
    answer(&state, tenant, Input::Command { actor, command }).await
}

#[utoipa::path(
    get,
    path = "/v1/reservations/{id}",
    tag = "reservations",
    params(("id" = String, Path, description = "The reservation id")),
    responses(
        (status = 200, body = ReservationOut),
        (status = 404, description = "unknown_reservation", body = Problem),
    )
)]
async fn get_reservation(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<ReservationOut>, Problem> {
    let id = parse_path_id("reservation_id", &id, ReservationId::parse)?;
    let reservation = state
        .engine
        .reads()
        .reservation(&tenant, &id)
        .ok_or_else(|| {
            Problem::not_found("unknown_reservation", format!("unknown reservation {id}"))
        })?;
    Ok(Json(ReservationOut::from_core(&reservation)))
}

/// Confirm a provisional reservation: in full (no body), or in part (`lines`; the unconfirmed
/// rest returns to available). Confirming a confirmed reservation again answers it unchanged.
#[utoipa::path(
    post,
    path = "/v1/reservations/{id}/confirm",
    tag = "reservations",
    params(("id" = String, Path, description = "The reservation id")),
    request_body(content = Option<ConfirmIn>, description = "Optional: the lines to confirm"),
    responses(
        (status = 200, body = ReservationOut),
        (status = 404, description = "unknown_reservation", body = Problem),
        (status = 409, description = "invalid_reservation_state (released, expired, fulfilled)", body = Problem),
        (status = 422, description = "invalid_confirm_line", body = Problem),
    )
)]
async fn confirm(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Actor(actor): Actor,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ReservationOut>), Problem> {
    let reservation_id = parse_path_id("reservation_id", &id, ReservationId::parse)?;
    let input: ConfirmIn = optional_body(&body)?;
    let lines = match input.lines {
        Some(lines) => Some(parse_confirm_lines(&lines)?),
        None => None,
    };
    let command = Command::Ledger(LedgerCommand::Confirm {
        reservation_id,
        lines,
    });
    answer(&state, tenant, Input::Command { actor, command }).await
}

/// Release a provisional or confirmed reservation: its units return to available.
#[utoipa::path(
    post,
    path = "/v1/reservations/{id}/release",
    tag = "reservations",
    params(("id" = String, Path, description = "The reservation id")),
    request_body(content = Option<ReleaseIn>, description = "Optional: a reason"),
    responses(
        (status = 200, body = ReservationOut),
        (status = 404, description = "unknown_reservation", body = Problem),
        (status = 409, description = "invalid_reservation_state (fulfilled)", body = Problem),
    )
)]
async fn release(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Actor(actor): Actor,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ReservationOut>), Problem> {
    let reservation_id = parse_path_id("reservation_id", &id, ReservationId::parse)?;
    let input: ReleaseIn = optional_body(&body)?;
    check_release(&input)?;
    let command = Command::Ledger(LedgerCommand::Release {
        reservation_id,
        reason: input.reason,
    });
    answer(&state, tenant, Input::Command { actor, command }).await
}

/// An optional JSON body: empty means the default.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        crate::json::parse(body)
    }
}

async fn answer(
    state: &AppState,
    tenant: stockflow_core::ids::TenantId,
    input: Input,
) -> Result<(StatusCode, Json<ReservationOut>), Problem> {
    let submitted = submit(state, tenant, input).await?;
    match submitted.reply {
        Reply::Reservation {
            reservation,
            created,
        } => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(ReservationOut::from_core(&reservation))))
        }
        Reply::Rejected(rejection) => Err(Problem::from_rejection(&rejection)),
        other => Err(Problem::internal(format!(
            "unexpected reply to a reservation step: {other:?}"
        ))),
    }
}
