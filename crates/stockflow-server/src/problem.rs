//! Errors as RFC 9457 problem documents (`application/problem+json`) with a stable `code`.
//! Every failure the HTTP layer returns goes through [`Problem`]; internals never leak to clients.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stockflow_core::outcome::Rejection;
use utoipa::ToSchema;

/// A problem document. `code` is the stable machine-readable part; `title` is fixed per code;
/// `detail` explains this occurrence; `errors` lists every invalid item of a batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Data that helps the caller act (the current version, what was available, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Value>,
    #[serde(skip)]
    pub retry_after_seconds: Option<u32>,
}

/// One invalid item of a request: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Index of the item in a batch, when the request had several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The field at fault, as a JSON path inside the item (`quantity`, `lines[2].sku`).
    pub field: String,
    pub code: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &str, detail: impl Into<String>) -> Self {
        Self {
            index: None,
            field: field.into(),
            code: code.to_owned(),
            detail: detail.into(),
        }
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("https://stockflow.dev/problems/{code}"),
            title: title_of(code).to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
            detail: Some(detail.into()),
            errors: Vec::new(),
            context: None,
            retry_after_seconds: None,
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_context(mut self, context: serde_json::Value) -> Self {
        self.context = Some(context);
        self
    }

    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// A request whose items failed validation: 400 with every item's errors.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.detail),
            many => format!("{} fields are invalid; see errors", many.len()),
        };
        let code = match errors.as_slice() {
            [one] => one.code.clone(),
            _ => "invalid_request".to_owned(),
        };
        Problem::new(StatusCode::BAD_REQUEST, &code, detail).with_errors(errors)
    }

    pub fn not_found(code: &str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    /// The status a business refusal answers with.
    pub fn from_rejection(rejection: &Rejection) -> Self {
        let status = match rejection {
            Rejection::IdempotencyConflict { .. }
            | Rejection::VersionConflict { .. }
            | Rejection::InsufficientStock { .. }
            | Rejection::InvalidReservationState { .. } => StatusCode::CONFLICT,
            Rejection::UnknownReservation { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let context = serde_json::to_value(rejection).ok();
        let mut problem = Problem::new(status, rejection.code(), describe(rejection));
        problem.context = context;
        problem
    }
}

fn describe(rejection: &Rejection) -> String {
    match rejection {
        Rejection::IdempotencyConflict { id } => {
            format!("{id} was used before with a different body")
        }
        Rejection::VersionConflict {
            sku,
            location,
            expected,
            current,
        } => format!("{sku} at {location} is at version {current}, not the expected {expected}"),
        Rejection::InsufficientStock { shortfalls } => {
            let parts: Vec<String> = shortfalls
                .iter()
                .map(|s| {
                    format!(
                        "{}: {} requested, {} available",
                        s.sku, s.requested, s.available
                    )
                })
                .collect();
            format!("not enough stock ({})", parts.join("; "))
        }
        Rejection::UnknownSku { sku } => format!("no stock has ever been recorded for {sku}"),
        Rejection::UnknownLocation { location } => format!("unknown location {location}"),
        Rejection::UnknownChannel { channel } => format!("unknown channel {channel}"),
        Rejection::UnknownReservation { reservation_id } => {
            format!("unknown reservation {reservation_id}")
        }
        Rejection::InvalidReservationState {
            reservation_id,
            state,
            step,
        } => format!(
            "cannot {step} reservation {reservation_id}: it is {}",
            state.name()
        ),
        Rejection::InvalidConfirmLine {
            reservation_id,
            sku,
            detail,
        } => {
            format!("reservation {reservation_id}, line {sku}: {detail}")
        }
        Rejection::Invalid { field, detail } => format!("{field}: {detail}"),
        // Buffer management (channels, policies, holds, signals): words, not Debug output.
        Rejection::InvalidPolicy {
            policy: Some(policy),
            detail,
        } => format!("policy {policy}: {detail}"),
        Rejection::InvalidPolicy {
            policy: None,
            detail,
        } => format!("invalid policy: {detail}"),
        Rejection::InvalidPercentage { field, value } => {
            format!("{field}: {value} is outside 0% to 100%")
        }
        Rejection::InvalidWindow { field, detail } => format!("{field}: {detail}"),
        Rejection::InvalidQuantity { field, value } => {
            format!("{field}: {value} is not a quantity this field accepts")
        }
        Rejection::InvalidChannel { channel, detail }
        | Rejection::InvalidAllocation { channel, detail } => {
            format!("channel {channel}: {detail}")
        }
        Rejection::InvalidAttributes { sku, detail } => format!("attributes of {sku}: {detail}"),
        Rejection::InvalidSignal { detail } => format!("invalid signal: {detail}"),
        Rejection::UnknownPolicy { policy } => format!("unknown policy {policy}"),
        Rejection::UnknownHold { hold } => format!("unknown hold {hold}"),
        Rejection::PolicyInUse { policy, channels } => {
            let channels: Vec<String> = channels.iter().map(ToString::to_string).collect();
            format!("policy {policy} is applied by {}", channels.join(", "))
        }
        Rejection::TooManyItems {
            field,
            count,
            limit,
        } => format!("{field}: {count} is more than the limit of {limit}"),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

/// A short fixed title per code; unknown codes get a generic one.
fn title_of(code: &str) -> &'static str {
    match code {
        "malformed_json" => "The body is not valid JSON",
        "unknown_field" => "The body has a field this endpoint does not take",
        "invalid_request" | "invalid" => "The request is invalid",
        "body_too_large" => "The body is larger than the limit",
        "batch_too_large" => "The batch has more items than the limit",
        "unsupported_media_type" => "The body must be application/json",
        "idempotency_conflict" => "The id was used before with a different body",
        "version_conflict" => "The expected version does not match",
        "insufficient_stock" => "Not enough stock",
        "unknown_sku" => "Unknown SKU",
        "unknown_location" => "Unknown location",
        "unknown_channel" => "Unknown channel",
        "unknown_reservation" => "Unknown reservation",
        "invalid_reservation_state" => "The reservation is not in a state that allows this step",
        "invalid_confirm_line" => "A confirm line does not match the reservation",
        "invalid_policy" => "The buffer policy is not valid",
        "invalid_percentage" => "A percentage is outside its range",
        "invalid_window" => "A time window or expiry is not valid",
        "invalid_quantity" => "A quantity is outside its range",
        "invalid_channel" => "The channel's settings are not valid",
        "invalid_allocation" => "The channel's allocation rules are not valid",
        "invalid_attributes" => "The SKU attributes are not valid",
        "invalid_signal" => "The signal is not valid",
        "unknown_policy" => "Unknown policy",
        "unknown_hold" => "Unknown hold",
        "policy_in_use" => "The policy is applied by channels",
        "too_many_items" => "More items than the limit",
        "overloaded" => "The service is busy; retry after a moment",
        "unavailable" => "The service cannot take requests right now",
        "not_found" => "No such resource",
        "count_too_large" => "The count file is larger than the limit",
        "too_many_rows" => "The count file has more rows than the limit",
        "invalid_count_file" => "The count file cannot be read",
        "malformed_rows" => "Some rows of the count cannot be read; nothing was applied",
        "count_too_old" => "Too much changed since the count time to account for it",
        "no_channels" => "No channel sync is configured",
        "run_in_progress" => "A reconciliation run is in progress",
        "unknown_run" => "Unknown reconciliation run",
        "conflicting_filters" => "Two filters name the same column with different values",
        "internal" => "Internal error",
        _ => "The request was refused",
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after_seconds;
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
