//! What every adapter does with HTTP: a client with timeouts, answers read up to a limit,
//! Retry-After, and the mapping of transport errors and statuses to failures.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value as Json;

use crate::adapter::{Failure, FailureKind};
use crate::config::HttpSettings;

/// A whole answer, its body read within the limit.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Option<Json> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }

    /// The body as text for an error message, cut short.
    pub fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }
}

/// A client with the channel's timeouts. The TLS provider is the process's default (the binary
/// installs ring's).
pub fn client(settings: &HttpSettings) -> Result<reqwest::Client, crate::adapter::AdapterError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .timeout(Duration::from_millis(settings.request_timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("stockflow/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| crate::adapter::AdapterError::new("http_client", error.to_string()))
}

/// Sends a request and reads the answer, refusing bodies above `body_max` bytes.
pub async fn send(request: RequestBuilder, body_max: usize) -> Result<Answer, Failure> {
    let mut response = request.send().await.map_err(transport_failure)?;
    let status = response.status();
    let headers = response.headers().clone();
    if response
        .content_length()
        .is_some_and(|length| length as usize > body_max)
    {
        return Err(too_large(body_max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_failure)? {
        if body.len() + chunk.len() > body_max {
            return Err(too_large(body_max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn too_large(body_max: usize) -> Failure {
    Failure::new(
        FailureKind::Transient,
        "response_too_large",
        format!("the answer was larger than {body_max} bytes"),
    )
}

fn transport_failure(error: reqwest::Error) -> Failure {
    let code = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "transport"
    };
    // reqwest's errors name the URL, never headers: no credential reaches the message.
    Failure::new(FailureKind::Transient, code, error.to_string())
}

/// `Retry-After` in seconds (an HTTP date is read as "no hint").
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3_600.0)))
}

/// The failure an HTTP status stands for, with the platform's code when it gave one.
pub fn status_failure(answer: &Answer, code: Option<String>, message: Option<String>) -> Failure {
    let status = answer.status;
    let kind = if status == StatusCode::TOO_MANY_REQUESTS {
        FailureKind::Throttled
    } else if status.is_server_error() {
        FailureKind::Transient
    } else {
        FailureKind::Rejected
    };
    let code = code.unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = message.unwrap_or_else(|| answer.snippet());
    Failure::new(kind, code, message).with_retry_after(answer.retry_after())
}

/// The call-counter label of an answered call.
pub fn label(failure: Option<&Failure>) -> &'static str {
    match failure.map(|f| f.kind) {
        None => "ok",
        Some(FailureKind::Throttled) => "throttled",
        Some(FailureKind::Transient) if failure.is_some_and(|f| f.code == "timeout") => "timeout",
        Some(FailureKind::Transient) => "server_error",
        Some(FailureKind::Rejected) => "rejected",
        Some(FailureKind::Conflict) => "conflict",
    }
}

/// A failure for an answer that is not in the platform's format.
pub fn invalid_answer(what: &str, answer: &Answer) -> Failure {
    Failure::new(
        FailureKind::Transient,
        "invalid_response",
        format!(
            "{what}: HTTP {} with a body not in the platform's format: {}",
            answer.status.as_u16(),
            answer.snippet()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
