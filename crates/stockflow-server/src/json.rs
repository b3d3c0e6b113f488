//! The JSON body extractor: like `axum::Json`, but every way a body can be wrong answers a problem
//! document with a specific code (malformed_json, unknown_field, invalid_request,
//! unsupported_media_type, body_too_large) instead of axum's plain-text rejections.

use crate::problem::Problem;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                let essence = value.split(';').next().unwrap_or("").trim();
                essence.eq_ignore_ascii_case("application/json")
                    || essence.to_ascii_lowercase().ends_with("+json")
            });
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "the body is larger than the configured limit",
                    )
                } else {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "unreadable_body",
                        rejection.body_text(),
                    )
                }
            })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body, mapping serde's errors to problem documents.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes).map_err(|error| problem_of(&error))
}

fn problem_of(error: &serde_json::Error) -> Problem {
    use serde_json::error::Category;
    let message = error.to_string();
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            Problem::new(StatusCode::BAD_REQUEST, "malformed_json", message)
        }
        Category::Data if message.starts_with("unknown field") => {
            Problem::new(StatusCode::BAD_REQUEST, "unknown_field", message)
        }
        Category::Data => Problem::new(StatusCode::BAD_REQUEST, "invalid_request", message),
    }
}
