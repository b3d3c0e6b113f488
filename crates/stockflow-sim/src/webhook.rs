//! A generic webhook receiver, standing for a channel that takes pushes: it accepts `POST`s of a
//! JSON body signed with HMAC-SHA256 (hex) in a configurable header (by default
//! `X-Stockflow-Signature: sha256=<hex>`), refuses a bad signature with 401, and records what
//! each SKU was told.
//!
//! The body is one update, `{"sku": "SKU-1", "quantity": 5, "location": "east"}`, or several,
//! `{"items": [{"sku", "quantity", "location"?}, ...]}`; `available_to_sell` is read when
//! `quantity` is absent; other fields are kept but not read.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value as Json, json};
use sha2::Sha256;

use crate::SimError;
use crate::clock::SimClock;
use crate::faults::{Fault, FaultInjector};
use crate::limits::{Bucket, RateLimit};
use crate::recorder::{Cause, ItemKey, Outcome, Recorder, ViolationKind};
use crate::server::{
    self, BodyError, CommonConfig, Core, HeldReply, ServerHandle, header, read_body, request_id,
    with_held_faults,
};

/// The most deliveries kept for inspection; older ones are dropped first.
pub const DELIVERIES_KEPT_MAX: usize = 10_000;
/// The most updates one delivery may carry.
pub const ITEMS_PER_DELIVERY_MAX: usize = 10_000;
const OPERATION: &str = "webhook";
const FORCED_THROTTLE_WAIT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub common: CommonConfig,
    /// The shared secret of the HMAC.
    pub secret: String,
    pub signature_header: String,
    /// What precedes the hex digest in the header (`sha256=`; may be empty).
    pub signature_prefix: String,
    /// The path deliveries are posted to.
    pub path: String,
}

impl WebhookConfig {
    pub fn new(secret: &str) -> Self {
        Self {
            common: CommonConfig::default(),
            secret: secret.to_owned(),
            signature_header: "X-Stockflow-Signature".into(),
            signature_prefix: "sha256=".into(),
            path: "/webhook".into(),
        }
    }
}

/// One accepted delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub at: Duration,
    pub body: Json,
}

/// The hex HMAC-SHA256 of a body: what a sender puts after the prefix.
pub fn sign(secret: &str, body: &[u8]) -> String {
    hex::encode(mac(secret, body).finalize().into_bytes())
}

fn mac(secret: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    mac
}

#[derive(Debug)]
struct State {
    core: Core,
    config: WebhookConfig,
    deliveries: Mutex<VecDeque<Delivery>>,
    /// Only a forced throttle uses it: the receiver itself has no rate limit.
    throttle: Mutex<Bucket>,
}

type Shared = Arc<State>;

struct Reply {
    status: StatusCode,
    body: Json,
    outcome: Outcome,
}

impl Reply {
    fn new(status: StatusCode, body: Json, outcome: Outcome) -> Self {
        Self {
            status,
            body,
            outcome,
        }
    }

    fn error(status: StatusCode, message: &str, outcome: Outcome) -> Self {
        Self::new(status, json!({"error": message}), outcome)
    }
}

impl HeldReply for Reply {
    fn held_unprocessed() -> Self {
        Self::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service unavailable",
            Outcome::TimedOut,
        )
    }

    fn timed_out(self) -> Self {
        Self {
            outcome: Outcome::TimedOut,
            ..self
        }
    }
}

/// A running webhook receiver.
#[derive(Debug)]
pub struct WebhookHandle {
    server: ServerHandle,
    state: Shared,
}

pub async fn start(config: WebhookConfig) -> Result<WebhookHandle, SimError> {
    assert!(config.path.starts_with('/'), "a webhook path starts with /");
    let core = Core::new(&config.common);
    let throttle = Bucket::new(RateLimit::new(1.0, 1.0), core.clock.now());
    let path = config.path.clone();
    let state = Arc::new(State {
        core,
        config,
        deliveries: Mutex::new(VecDeque::new()),
        throttle: Mutex::new(throttle),
    });
    let router = Router::new()
        .route(&path, post(receive))
        .with_state(state.clone());
    let listener = server::bind().await?;
    let server = server::spawn(listener, router)?;
    Ok(WebhookHandle { server, state })
}

async fn receive(AxumState(state): AxumState<Shared>, headers: HeaderMap, body: Body) -> Response {
    let reply = handle(&state, &headers, body).await;
    state.core.recorder.record_call(OPERATION, reply.outcome);
    let mut response = (reply.status, axum::Json(reply.body)).into_response();
    if reply.status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(
            "retry-after",
            HeaderValue::from(FORCED_THROTTLE_WAIT.as_secs()),
        );
    }
    response
}

async fn handle(state: &Shared, headers: &HeaderMap, body: Body) -> Reply {
    let draw = state.core.faults.draw();
    match draw.fault {
        Fault::ServerError { unavailable } => {
            let status = if unavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            return Reply::error(status, "server error", Outcome::ServerError);
        }
        Fault::Throttle => return forced_throttle(state),
        Fault::None | Fault::Timeout { .. } => {}
    }
    let maximum = state.core.body_bytes_max;
    let bytes = match read_body(headers, body, maximum).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => {
            state.core.recorder.record_violation(
                OPERATION,
                ViolationKind::LimitExceeded,
                format!("body above {maximum} bytes"),
            );
            return Reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large",
                Outcome::Invalid,
            );
        }
        Err(BodyError::Unreadable) => {
            return Reply::error(StatusCode::BAD_REQUEST, "unreadable body", Outcome::Invalid);
        }
    };
    if !signed(state, headers, &bytes) {
        return Reply::error(
            StatusCode::UNAUTHORIZED,
            "invalid signature",
            Outcome::Unauthorized,
        );
    }
    let (body, updates) = match parse(&bytes) {
        Ok(parsed) => parsed,
        Err(message) => return Reply::error(StatusCode::BAD_REQUEST, &message, Outcome::Invalid),
    };
    with_held_faults(draw, || accept(state, body, &updates)).await
}

fn forced_throttle(state: &Shared) -> Reply {
    let now = state.core.clock.now();
    let while_rejected = state
        .throttle
        .lock()
        .unwrap()
        .reject_for(FORCED_THROTTLE_WAIT, now);
    let recorder = &state.core.recorder;
    recorder.record_rejection(OPERATION);
    if while_rejected {
        recorder.record_violation(
            OPERATION,
            ViolationKind::CalledWhileRejected,
            "delivered again while throttled".into(),
        );
    }
    Reply::error(
        StatusCode::TOO_MANY_REQUESTS,
        "too many requests",
        Outcome::Throttled,
    )
}

/// Whether the signature header holds the prefix and the hex HMAC of the body; checked in
/// constant time.
fn signed(state: &Shared, headers: &HeaderMap, body: &[u8]) -> bool {
    let config = &state.config;
    let Some(value) = header(headers, &config.signature_header) else {
        return false;
    };
    let Some(digest) = value.strip_prefix(config.signature_prefix.as_str()) else {
        return false;
    };
    let Ok(tag) = hex::decode(digest.trim()) else {
        return false;
    };
    mac(&config.secret, body).verify_slice(&tag).is_ok()
}

/// One update of a delivery: SKU, location (empty when none) and quantity.
type Update = (String, String, i64);

fn parse(bytes: &[u8]) -> Result<(Json, Vec<Update>), String> {
    let body: Json =
        serde_json::from_slice(bytes).map_err(|error| format!("invalid JSON: {error}"))?;
    let items: Vec<&Json> = match body.get("items") {
        Some(Json::Array(items)) => items.iter().collect(),
        Some(_) => return Err("items must be a list".into()),
        None => vec![&body],
    };
    if items.is_empty() || items.len() > ITEMS_PER_DELIVERY_MAX {
        return Err(format!(
            "a delivery carries 1 to {ITEMS_PER_DELIVERY_MAX} updates"
        ));
    }
    let updates = items
        .into_iter()
        .map(update)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((body, updates))
}

fn update(item: &Json) -> Result<Update, String> {
    let sku = item
        .get("sku")
        .and_then(Json::as_str)
        .filter(|sku| !sku.is_empty());
    let sku = sku.ok_or("each update needs a non-empty sku")?;
    // Senders that name the number `available_to_sell` are understood too.
    let quantity = item
        .get("quantity")
        .or_else(|| item.get("available_to_sell"))
        .and_then(Json::as_i64)
        .ok_or("each update needs a whole-number quantity")?;
    let location = match item.get("location") {
        None | Some(Json::Null) => "",
        Some(Json::String(location)) => location.as_str(),
        Some(_) => return Err("location must be a string".into()),
    };
    Ok((sku.to_owned(), location.to_owned(), quantity))
}

fn accept(state: &Shared, body: Json, updates: &[Update]) -> Reply {
    let now = state.core.clock.now();
    let reference = request_id();
    for (sku, location, quantity) in updates {
        let cause = Cause::Api {
            operation: OPERATION.into(),
            reference: reference.clone(),
        };
        state
            .core
            .recorder
            .record_quantity(ItemKey::new(sku, location), now, *quantity, cause);
    }
    let mut deliveries = state.deliveries.lock().unwrap();
    if deliveries.len() == DELIVERIES_KEPT_MAX {
        deliveries.pop_front();
    }
    deliveries.push_back(Delivery { at: now, body });
    Reply::new(
        StatusCode::OK,
        json!({"received": updates.len()}),
        Outcome::Ok,
    )
}

impl WebhookHandle {
    pub fn address(&self) -> SocketAddr {
        self.server.address()
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Where deliveries are posted.
    pub fn url(&self) -> String {
        format!("{}{}", self.base_url(), self.state.config.path)
    }

    pub fn recorder(&self) -> &Recorder {
        &self.state.core.recorder
    }

    pub fn faults(&self) -> &FaultInjector {
        &self.state.core.faults
    }

    pub fn clock(&self) -> &SimClock {
        &self.state.core.clock
    }

    /// The last quantity a SKU was told at a location (empty for none).
    pub fn told(&self, sku: &str, location: &str) -> Option<i64> {
        self.state.core.recorder.shown(sku, location)
    }

    /// The accepted deliveries, oldest first (up to [`DELIVERIES_KEPT_MAX`]).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state
            .deliveries
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect()
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
