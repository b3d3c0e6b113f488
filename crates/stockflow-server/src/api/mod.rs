//! The HTTP API (DESIGN.md section 5): one module per resource, the OpenAPI document generated
//! from the handlers' annotations, and what handlers share (tenant and actor headers, submitting
//! to the engine, mapping its errors).

pub mod alerts;
pub mod audit;
pub mod availability;
pub mod events;
pub mod kpis;
pub mod reconcile;
pub mod reservations;
pub mod skus;
pub mod system;
pub mod webhooks;

use crate::app::{AppState, wall_clock};
use crate::problem::Problem;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use std::time::Duration;
use stockflow_core::envelope::Input;
use stockflow_core::ids::{ActorId, TenantId};
use stockflow_engine::{EngineError, Submitted};
use tower::ServiceBuilder;
use tower::limit::ConcurrencyLimitLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// The header naming the tenant; absent means `default`.
pub const TENANT_HEADER: &str = "stockflow-tenant";
/// The header naming the person or system issuing a command, for the audit trail.
pub const ACTOR_HEADER: &str = "stockflow-actor";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "stockflow",
        description = "Real-time inventory orchestration: a durable stock ledger with two-step \
                       reservations, buffers per channel, and sync to every sales channel. Errors \
                       are RFC 9457 problem documents with a stable `code`."
    ),
    components(schemas(crate::problem::Problem, crate::problem::FieldError))
)]
struct ApiDoc;

/// The whole router: API routes, `/openapi.json`, limits.
pub fn router(state: AppState) -> axum::Router {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(events::routes())
        .merge(reservations::routes())
        .merge(skus::routes())
        .merge(audit::routes())
        .merge(availability::routes())
        .merge(system::routes())
        .merge(webhooks::routes())
        .merge(kpis::routes())
        .merge(reconcile::routes())
        .merge(alerts::routes())
        .split_for_parts();
    let api = std::sync::Arc::new(api);
    let limits = &state.config.http;
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let api = api.clone();
                async move { axum::Json(api.as_ref().clone()) }
            }),
        )
        .merge(crate::dashboard::routes())
        .fallback(|| async { Problem::not_found("not_found", "no such path") })
        .layer(
            ServiceBuilder::new()
                .layer(DefaultBodyLimit::max(limits.body_limit_bytes))
                .layer(ConcurrencyLimitLayer::new(limits.concurrency_max))
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Duration::from_millis(limits.request_timeout_ms),
                )),
        )
        // After the layers: the request timeout would cut the live stream, which has its own
        // limit on clients.
        .merge(crate::dashboard::stream_routes(&state))
        .with_state(state)
}

/// The tenant a request is for.
pub struct Tenant(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        match parts.headers.get(TENANT_HEADER) {
            None => Ok(Tenant(TenantId::default_tenant())),
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|text| TenantId::parse(text.to_owned()).ok())
                .map(Tenant)
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_tenant",
                        "the tenant header is not a valid id",
                    )
                }),
        }
    }
}

/// Who issues a command (the audit trail's actor).
pub struct Actor(pub ActorId);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        match parts.headers.get(ACTOR_HEADER) {
            None => Ok(Actor(ActorId::parse("api").expect("valid"))),
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|text| ActorId::parse(text.to_owned()).ok())
                .map(Actor)
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_actor",
                        "the actor header is not a valid id",
                    )
                }),
        }
    }
}

/// Hands an input to the writer and waits until it is durable (or refused).
pub async fn submit(
    state: &AppState,
    tenant: TenantId,
    input: Input,
) -> Result<Submitted, Problem> {
    state
        .engine
        .submit(tenant, input, wall_clock())
        .await
        .map_err(|error| engine_problem(&error))
}

pub fn engine_problem(error: &EngineError) -> Problem {
    match error {
        EngineError::Overloaded => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the writer's queue is full; retry shortly",
        )
        .with_retry_after(1),
        EngineError::ShuttingDown => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is shutting down",
        )
        .with_retry_after(5),
        EngineError::Storage(_) => {
            tracing::error!(%error, "journal commit failed");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the journal could not be written; nothing was applied",
            )
            .with_retry_after(1)
        }
        other => {
            tracing::error!(error = %other, "the writer failed");
            Problem::internal("the writer stopped; see the server log")
        }
    }
}

/// Parses a path or query id, answering a problem naming the field.
pub fn parse_path_id<T>(
    field: &str,
    value: &str,
    parse: impl Fn(String) -> Result<T, stockflow_core::ids::IdError>,
) -> Result<T, Problem> {
    parse(value.to_owned()).map_err(|error| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            format!("{field}: {error}"),
        )
    })
}
