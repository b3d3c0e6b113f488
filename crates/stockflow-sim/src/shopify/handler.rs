//! The HTTP flow of one GraphQL call: version, token, body, document, validation and cost,
//! injected faults, the cost bucket, idempotency, execution, and the answer with
//! `extensions.cost`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::graphql::{
    self, Doc, GField, GqlError, GqlRequest, OperationKind, Prepared, argument, collect_fields,
    response_key,
};
use super::mutations::{MutationInput, plan_adjust, plan_set};
use super::resolve::Exec;
use super::store::{Begin, MutationResult, Store};
use super::{State, ThrottledStatus, record_level};
use crate::faults::{Draw, Fault};
use crate::limits::Admission;
use crate::recorder::{Cause, Outcome, ViolationKind};
use crate::server::{BodyError, header, read_body, request_id};

type Shared = Arc<State>;

/// How long a forced throttle tells the client to wait.
const FORCED_THROTTLE_WAIT: Duration = Duration::from_secs(1);
const RATE_LIMIT_DOCS: &str = "https://shopify.dev/api/usage/rate-limits";

/// An answer on its way out.
struct Reply {
    status: StatusCode,
    body: Json,
    outcome: Outcome,
    retry_after_seconds: Option<u64>,
}

impl Reply {
    fn new(status: StatusCode, body: Json, outcome: Outcome) -> Self {
        Self {
            status,
            body,
            outcome,
            retry_after_seconds: None,
        }
    }

    fn into_response(self, request_id: &str) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            "x-request-id",
            HeaderValue::from_str(request_id).expect("uuid is a header value"),
        );
        if let Some(seconds) = self.retry_after_seconds {
            headers.insert("retry-after", HeaderValue::from(seconds));
        }
        response
    }
}

/// `throttleStatus` of a bucket.
#[derive(Clone, Copy)]
struct Status {
    maximum: f64,
    available: f64,
    restore_rate: f64,
}

fn cost_json(requested: u64, actual: Option<u64>, status: Status) -> Json {
    json!({"cost": {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": {
            "maximumAvailable": status.maximum,
            "currentlyAvailable": status.available.floor() as u64,
            "restoreRate": status.restore_rate,
        },
    }})
}

pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"errors": "Not Found"})),
    )
        .into_response()
}

pub async fn graphql(
    AxumState(state): AxumState<Shared>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = request_id();
    let (operation, reply) = serve(&state, &version, &headers, body).await;
    state.core.recorder.record_call(&operation, reply.outcome);
    reply.into_response(&request_id)
}

async fn serve(state: &Shared, version: &str, headers: &HeaderMap, body: Body) -> (String, Reply) {
    let operation = "graphql".to_owned();
    if !state
        .config
        .api_versions
        .iter()
        .any(|known| known == version)
    {
        return (
            operation,
            Reply::new(
                StatusCode::NOT_FOUND,
                json!({"errors": "Not Found"}),
                Outcome::Invalid,
            ),
        );
    }
    let token = header(headers, "x-shopify-access-token").unwrap_or_default();
    if !state
        .config
        .access_tokens
        .iter()
        .any(|known| known == token)
    {
        let message =
            "[API] Invalid API key or access token (unrecognized login or wrong password)";
        return (
            operation,
            Reply::new(
                StatusCode::UNAUTHORIZED,
                json!({"errors": message}),
                Outcome::Unauthorized,
            ),
        );
    }
    let request = match read_request(state, headers, body).await {
        Ok(request) => request,
        Err(reply) => return (operation, reply),
    };
    let document = match graphql::parse_document(&request.query) {
        Ok(document) => document,
        Err(error) => {
            return (
                operation,
                errors_reply(
                    state,
                    token,
                    &GqlError::new("PARSE_ERROR", error.to_string()),
                ),
            );
        }
    };
    let plan = match analyse(&document, &request) {
        Ok(plan) => plan,
        Err(error) => {
            if error.over_limit {
                state.core.recorder.record_violation(
                    &operation,
                    ViolationKind::LimitExceeded,
                    error.message.clone(),
                );
            }
            return (operation, errors_reply(state, token, &error));
        }
    };
    let reply = run(state, token, &plan).await;
    (plan.operation, reply)
}

async fn read_request(
    state: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<GqlRequest, Reply> {
    let bytes = match read_body(headers, body, state.core.body_bytes_max).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => {
            let detail = format!("body above {} bytes", state.core.body_bytes_max);
            state
                .core
                .recorder
                .record_violation("graphql", ViolationKind::LimitExceeded, detail);
            return Err(Reply::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"errors": "Payload Too Large"}),
                Outcome::Invalid,
            ));
        }
        Err(BodyError::Unreadable) => {
            return Err(Reply::new(
                StatusCode::BAD_REQUEST,
                json!({"errors": "Bad Request"}),
                Outcome::Invalid,
            ));
        }
    };
    let content_type = header(headers, "content-type").unwrap_or("application/json");
    graphql::parse_request(content_type, &bytes).map_err(|_| {
        let body = json!({"errors": {"query": "Required parameter missing or invalid"}});
        Reply::new(StatusCode::BAD_REQUEST, body, Outcome::Invalid)
    })
}

/// What a validated call will do.
struct Plan<'a> {
    prepared: Prepared<'a>,
    requested: u64,
    /// The mutation's name, or `query`.
    operation: String,
    mutation: Option<MutationPlan<'a>>,
}

struct MutationPlan<'a> {
    field: &'a GField,
    input: MutationInput,
    key: String,
    /// The mutation and its resolved input: what a repeat of the key must match.
    fingerprint: String,
    payload_type: &'static str,
}

fn analyse<'a>(document: &'a Doc, request: &GqlRequest) -> Result<Plan<'a>, GqlError> {
    let prepared = graphql::prepare(document, request)?;
    let requested = graphql::requested_cost(&prepared)?;
    let mutation = match prepared.kind {
        OperationKind::Query => None,
        OperationKind::Mutation => Some(analyse_mutation(&prepared)?),
    };
    let operation = mutation
        .as_ref()
        .map_or("query".to_owned(), |m| m.field.name.clone());
    Ok(Plan {
        prepared,
        requested,
        operation,
        mutation,
    })
}

fn analyse_mutation<'a>(prepared: &Prepared<'a>) -> Result<MutationPlan<'a>, GqlError> {
    let fields = collect_fields(
        prepared.selection,
        "Mutation",
        &prepared.fragments,
        &prepared.variables,
    )?;
    let fields: Vec<_> = fields
        .into_iter()
        .filter(|field| field.name != "__typename")
        .collect();
    let [field] = fields[..] else {
        return Err(GqlError::new(
            "BAD_REQUEST",
            "The sandbox runs one mutation field per request",
        ));
    };
    let key = idempotency_key(field, prepared)?;
    let input = argument(field, "input", &prepared.variables).unwrap_or(Json::Null);
    let fingerprint = format!("{}:{input}", field.name);
    let payload_type = match field.name.as_str() {
        "inventorySetQuantities" => "InventorySetQuantitiesPayload",
        _ => "InventoryAdjustQuantitiesPayload",
    };
    let input = MutationInput::parse(&field.name, input)?;
    Ok(MutationPlan {
        field,
        input,
        key,
        fingerprint,
        payload_type,
    })
}

/// The key of `@idempotent(key: ...)`, required on inventory mutations since 2026-04.
fn idempotency_key(field: &GField, prepared: &Prepared<'_>) -> Result<String, GqlError> {
    let directive = field
        .directives
        .iter()
        .find(|directive| directive.name == "idempotent");
    let key = directive
        .and_then(|directive| directive.arguments.iter().find(|(name, _)| name == "key"))
        .map(|(_, value)| graphql::value_to_json(value, &prepared.variables));
    match key {
        Some(Json::String(key)) if !key.is_empty() && key.len() <= 255 => Ok(key),
        _ => Err(GqlError::new(
            "IDEMPOTENCY_KEY_REQUIRED",
            format!(
                "The @idempotent(key:) directive is required on {} (a non-empty key of at most 255 characters)",
                field.name
            ),
        )),
    }
}

async fn run(state: &Shared, token: &str, plan: &Plan<'_>) -> Reply {
    let draw = state.core.faults.draw();
    match draw.fault {
        Fault::ServerError { unavailable } => return server_error(unavailable),
        Fault::Throttle => return forced_throttle(state, token, plan),
        Fault::None | Fault::Timeout { .. } => {}
    }
    if plan.requested > state.config.query_cost_max {
        return max_cost(state, token, plan);
    }
    if let Err(reply) = admit(state, token, plan) {
        return reply;
    }
    let result = match &plan.mutation {
        None => run_query(state, plan, draw).await,
        Some(mutation) => run_mutation(state, &plan.prepared, mutation, draw).await,
    };
    let (data, actual, outcome) = match result {
        Ok(done) => done,
        Err(Some(error)) => return errors_after_charge(state, token, plan.requested, &error),
        Err(None) => {
            refund(state, token, plan.requested);
            return held_unprocessed();
        }
    };
    refund(state, token, plan.requested.saturating_sub(actual));
    // A held call is recorded as timed out even when processed: the client gave up on it.
    let outcome = if matches!(draw.fault, Fault::Timeout { .. }) {
        Outcome::TimedOut
    } else {
        outcome
    };
    let status = status(state, token);
    let body = json!({"data": data, "extensions": cost_json(plan.requested, Some(actual), status)});
    Reply::new(StatusCode::OK, body, outcome)
}

/// Executed: data, actual cost, outcome. Err(Some) is a GraphQL error, Err(None) a held call
/// that was not processed.
type Executed = Result<(Json, u64, Outcome), Option<GqlError>>;

async fn run_query(state: &Shared, plan: &Plan<'_>, draw: Draw) -> Executed {
    tokio::time::sleep(draw.latency).await;
    if let Fault::Timeout {
        hold,
        processes: false,
    } = draw.fault
    {
        tokio::time::sleep(hold).await;
        return Err(None);
    }
    let executed = {
        let store = state.store.lock().unwrap();
        let mut exec = exec(&store, &plan.prepared);
        exec.query_root(plan.prepared.selection)
            .map(|data| (data, exec.cost))
    };
    if let Fault::Timeout {
        hold,
        processes: true,
    } = draw.fault
    {
        tokio::time::sleep(hold).await;
    }
    let (data, actual) = executed.map_err(Some)?;
    Ok((data, actual, Outcome::Ok))
}

fn exec<'e, 'a>(store: &'e Store, prepared: &'e Prepared<'a>) -> Exec<'e, 'a> {
    Exec {
        store,
        fragments: &prepared.fragments,
        variables: &prepared.variables,
        cost: 0,
    }
}

async fn run_mutation(
    state: &Shared,
    prepared: &Prepared<'_>,
    mutation: &MutationPlan<'_>,
    draw: Draw,
) -> Executed {
    let begun = state
        .store
        .lock()
        .unwrap()
        .idempotency
        .begin(&mutation.key, &mutation.fingerprint);
    let replayed = match begun {
        Begin::Proceed => None,
        Begin::Replay(result) => Some(result),
        Begin::Refuse(error) => Some(MutationResult {
            group: None,
            user_errors: vec![error],
        }),
    };
    if let Some(result) = replayed {
        let store = state.store.lock().unwrap();
        return payload(&store, prepared, mutation, &result);
    }
    // The key stays in flight during the latency: a second call with it meanwhile is concurrent.
    tokio::time::sleep(draw.latency).await;
    if let Fault::Timeout {
        hold,
        processes: false,
    } = draw.fault
    {
        tokio::time::sleep(hold).await;
        state
            .store
            .lock()
            .unwrap()
            .idempotency
            .abandon(&mutation.key);
        return Err(None);
    }
    let executed = apply(state, prepared, mutation);
    if let Fault::Timeout {
        hold,
        processes: true,
    } = draw.fault
    {
        tokio::time::sleep(hold).await;
    }
    executed
}

fn apply(state: &Shared, prepared: &Prepared<'_>, mutation: &MutationPlan<'_>) -> Executed {
    let created_at = state.core.clock.wall_time(state.core.clock.now());
    let mut store = state.store.lock().unwrap();
    let (planned, reason, uri) = match &mutation.input {
        MutationInput::Set(input) => (
            plan_set(&store, input),
            &input.reason,
            &input.reference_document_uri,
        ),
        MutationInput::Adjust(input) => (
            plan_adjust(&store, input),
            &input.reason,
            &input.reference_document_uri,
        ),
    };
    let result = match planned {
        Err(user_errors) => MutationResult {
            group: None,
            user_errors,
        },
        // An adjustment that changes nothing returns a null group (as Shopify's all-zero deltas).
        Ok(planned) if planned.is_empty() && matches!(mutation.input, MutationInput::Adjust(_)) => {
            MutationResult::default()
        }
        Ok(planned) => {
            let group = store.commit(reason, uri.clone(), created_at, &planned);
            let cause = Cause::Api {
                operation: mutation.field.name.clone(),
                reference: mutation.key.clone(),
            };
            for plan in &planned {
                record_level(&state.core, &store, plan.item, plan.level, cause.clone());
            }
            MutationResult {
                group: Some(group),
                user_errors: Vec::new(),
            }
        }
    };
    store.idempotency.finish(&mutation.key, &result);
    payload(&store, prepared, mutation, &result)
}

fn payload(
    store: &Store,
    prepared: &Prepared<'_>,
    mutation: &MutationPlan<'_>,
    result: &MutationResult,
) -> Executed {
    let mut exec = exec(store, prepared);
    let data = exec
        .payload(mutation.payload_type, result, &mutation.field.selection_set)
        .map_err(Some)?;
    let outcome = if result.user_errors.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Refused
    };
    let key = response_key(mutation.field).to_owned();
    Ok((json!({ key: data }), graphql::MUTATION_COST, outcome))
}

/// Takes the requested cost from the token's bucket, or answers THROTTLED.
fn admit(state: &Shared, token: &str, plan: &Plan<'_>) -> Result<(), Reply> {
    let now = state.core.clock.now();
    let mut throttle = state.throttle.lock().unwrap();
    let bucket = throttle.bucket(token, now);
    let Admission::Rejected {
        retry_after,
        while_rejected,
    } = bucket.try_take(plan.requested as f64, now)
    else {
        return Ok(());
    };
    let limit = bucket.limit();
    let status = Status {
        maximum: limit.burst,
        available: bucket.available(now),
        restore_rate: limit.rate_per_second,
    };
    drop(throttle);
    note_rejection(state, &plan.operation, while_rejected, retry_after);
    Err(throttled(state, plan.requested, status, retry_after))
}

fn note_rejection(state: &Shared, operation: &str, while_rejected: bool, retry_after: Duration) {
    let recorder = &state.core.recorder;
    recorder.record_rejection(operation);
    if while_rejected {
        let detail = format!("called again while throttled (capacity back in {retry_after:?})");
        recorder.record_violation(operation, ViolationKind::CalledWhileRejected, detail);
    }
}

/// The platform refuses whatever the bucket holds (an injected fault).
fn forced_throttle(state: &Shared, token: &str, plan: &Plan<'_>) -> Reply {
    let now = state.core.clock.now();
    let (while_rejected, limit) = {
        let mut throttle = state.throttle.lock().unwrap();
        let bucket = throttle.bucket(token, now);
        (bucket.reject_for(FORCED_THROTTLE_WAIT, now), bucket.limit())
    };
    note_rejection(state, &plan.operation, while_rejected, FORCED_THROTTLE_WAIT);
    let status = Status {
        maximum: limit.burst,
        available: 0.0,
        restore_rate: limit.rate_per_second,
    };
    throttled(state, plan.requested, status, FORCED_THROTTLE_WAIT)
}

fn throttled(state: &Shared, requested: u64, status: Status, retry_after: Duration) -> Reply {
    let body = json!({
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": RATE_LIMIT_DOCS}}],
        "extensions": cost_json(requested, None, status),
    });
    match state.config.throttled_status {
        ThrottledStatus::Ok => Reply::new(StatusCode::OK, body, Outcome::Throttled),
        ThrottledStatus::TooManyRequests => Reply {
            retry_after_seconds: Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
            ..Reply::new(StatusCode::TOO_MANY_REQUESTS, body, Outcome::Throttled)
        },
    }
}

fn max_cost(state: &Shared, token: &str, plan: &Plan<'_>) -> Reply {
    let maximum = state.config.query_cost_max;
    let detail = format!("query cost {} above {maximum}", plan.requested);
    state
        .core
        .recorder
        .record_violation(&plan.operation, ViolationKind::LimitExceeded, detail);
    let message = format!(
        "Query cost is {}, which exceeds the single query max cost limit ({maximum}).",
        plan.requested
    );
    let body = json!({
        "errors": [{"message": message, "extensions": {
            "code": "MAX_COST_EXCEEDED", "cost": plan.requested, "maxCost": maximum, "documentation": RATE_LIMIT_DOCS,
        }}],
        "extensions": cost_json(plan.requested, None, status(state, token)),
    });
    Reply::new(StatusCode::OK, body, Outcome::Invalid)
}

fn refund(state: &Shared, token: &str, amount: u64) {
    let now = state.core.clock.now();
    let mut throttle = state.throttle.lock().unwrap();
    throttle.bucket(token, now).refund(amount as f64, now);
}

fn status(state: &Shared, token: &str) -> Status {
    let now = state.core.clock.now();
    let mut throttle = state.throttle.lock().unwrap();
    let bucket = throttle.bucket(token, now);
    let limit = bucket.limit();
    Status {
        maximum: limit.burst,
        available: bucket.available(now),
        restore_rate: limit.rate_per_second,
    }
}

/// A GraphQL error before anything was charged: nothing is taken from the bucket.
fn errors_reply(state: &Shared, token: &str, error: &GqlError) -> Reply {
    let body = json!({"errors": [error.to_json()], "extensions": cost_json(0, Some(0), status(state, token))});
    Reply::new(StatusCode::OK, body, Outcome::Invalid)
}

/// A GraphQL error found while executing: the whole charge is refunded.
fn errors_after_charge(state: &Shared, token: &str, requested: u64, error: &GqlError) -> Reply {
    refund(state, token, requested);
    let body = json!({"errors": [error.to_json()], "extensions": cost_json(requested, Some(0), status(state, token))});
    Reply::new(StatusCode::OK, body, Outcome::Invalid)
}

fn server_error(unavailable: bool) -> Reply {
    if unavailable {
        return Reply::new(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"errors": "Service Unavailable"}),
            Outcome::ServerError,
        );
    }
    let body = json!({"errors": [{
        "message": "Internal error. Looks like something went wrong on our end.",
        "extensions": {"code": "INTERNAL_SERVER_ERROR"},
    }]});
    Reply::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        body,
        Outcome::ServerError,
    )
}

/// The answer to a held call that was not processed, sent after the hold.
fn held_unprocessed() -> Reply {
    Reply::new(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"errors": "Service Unavailable"}),
        Outcome::TimedOut,
    )
}
