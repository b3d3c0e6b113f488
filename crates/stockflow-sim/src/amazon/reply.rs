//! SP-API answers: every one carries `x-amzn-RequestId` and, for rate-limited operations,
//! `x-amzn-RateLimit-Limit`; errors are `{"errors": [{"code", "message", "details"}]}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use crate::recorder::Outcome;
use crate::server::HeldReply;

pub struct Reply {
    pub status: StatusCode,
    pub body: Json,
    pub outcome: Outcome,
    pub retry_after_seconds: Option<u64>,
}

impl Reply {
    pub fn ok(status: StatusCode, body: Json) -> Self {
        Self {
            status,
            body,
            outcome: Outcome::Ok,
            retry_after_seconds: None,
        }
    }

    pub fn with_outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let outcome = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Outcome::Unauthorized,
            StatusCode::TOO_MANY_REQUESTS => Outcome::Throttled,
            status if status.is_server_error() => Outcome::ServerError,
            _ => Outcome::Invalid,
        };
        let body = json!({"errors": [{"code": code, "message": message.into(), "details": ""}]});
        Self {
            status,
            body,
            outcome,
            retry_after_seconds: None,
        }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::error(StatusCode::BAD_REQUEST, "InvalidInput", message)
    }

    pub fn unauthorized() -> Self {
        Self::error(
            StatusCode::FORBIDDEN,
            "Unauthorized",
            "Access to requested resource is denied.",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::error(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn too_large() -> Self {
        Self::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "The request size exceeded the maximum.",
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "The request's Content-Type header is invalid.",
        )
    }

    pub fn quota_exceeded(retry_after_seconds: Option<u64>) -> Self {
        let message = "You exceeded your quota for the requested resource.";
        Self {
            retry_after_seconds,
            ..Self::error(StatusCode::TOO_MANY_REQUESTS, "QuotaExceeded", message)
        }
    }

    pub fn server_error(unavailable: bool) -> Self {
        if unavailable {
            return Self::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "Temporary overloading or maintenance of the server.",
            );
        }
        Self::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "We encountered an internal error. Please try again.",
        )
    }

    /// The response, with the request id and the operation's rate.
    pub fn into_response(self, request_id: &str, rate_limit: Option<f64>) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            "x-amzn-RequestId",
            HeaderValue::from_str(request_id).expect("uuid is a header value"),
        );
        if let Some(rate) = rate_limit {
            let value =
                HeaderValue::from_str(&rate_header(rate)).expect("a number is a header value");
            headers.insert("x-amzn-RateLimit-Limit", value);
        }
        if let Some(seconds) = self.retry_after_seconds {
            headers.insert("retry-after", HeaderValue::from(seconds));
        }
        response
    }
}

impl HeldReply for Reply {
    fn held_unprocessed() -> Self {
        Self::server_error(true).with_outcome(Outcome::TimedOut)
    }

    fn timed_out(self) -> Self {
        self.with_outcome(Outcome::TimedOut)
    }
}

/// How SP-API prints a rate in `x-amzn-RateLimit-Limit` (`5.0`, `0.0083`).
pub fn rate_header(rate: f64) -> String {
    if rate.fract() == 0.0 {
        return format!("{rate:.1}");
    }
    let text = format!("{rate:.4}");
    text.trim_end_matches('0').to_owned()
}
