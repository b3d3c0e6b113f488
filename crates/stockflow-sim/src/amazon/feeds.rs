//! Feeds 2021-06-30, for a first full sync: create a feed document (an upload URL the sandbox
//! serves), upload the `JSON_LISTINGS_FEED` to it, create the feed, poll it through IN_QUEUE and
//! IN_PROGRESS to DONE (or FATAL), then read the processing report.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::listings::{Patch, read_json, read_patches};
use super::reply::Reply;
use super::{Inner, Shared, State as AmazonState};
use crate::limits::RateLimit;
use crate::recorder::{Cause, Outcome, ViolationKind};
use crate::server::{BodyError, header, read_body, with_held_faults};

const CREATE_DOCUMENT: &str = "createFeedDocument";
const GET_DOCUMENT: &str = "getFeedDocument";
const CREATE_FEED: &str = "createFeed";
const GET_FEED: &str = "getFeed";
const UPLOAD: &str = "uploadFeedDocument";
const DOWNLOAD: &str = "downloadFeedDocument";
const LISTINGS_FEED: &str = "JSON_LISTINGS_FEED";

#[derive(Clone, Debug)]
pub struct FeedsConfig {
    /// createFeed: about one per two minutes, burst 15.
    pub create_feed_rate: RateLimit,
    /// createFeedDocument: 0.5/s, burst 15.
    pub create_document_rate: RateLimit,
    /// getFeed: 2/s, burst 15.
    pub get_feed_rate: RateLimit,
    /// getFeedDocument: 0.0222/s, burst 10.
    pub get_document_rate: RateLimit,
    /// How long a feed stays IN_QUEUE.
    pub queue_delay: Duration,
    /// How long it then stays IN_PROGRESS before DONE or FATAL.
    pub processing_delay: Duration,
    /// The most messages one feed may hold (10,000); above it the feed is FATAL.
    pub messages_max: usize,
    /// The largest uploaded document.
    pub document_bytes_max: usize,
    /// The most documents and feeds the sandbox keeps.
    pub kept_max: usize,
}

impl Default for FeedsConfig {
    fn default() -> Self {
        Self {
            create_feed_rate: RateLimit::new(1.0 / 120.0, 15.0),
            create_document_rate: RateLimit::new(0.5, 15.0),
            get_feed_rate: RateLimit::new(2.0, 15.0),
            get_document_rate: RateLimit::new(0.0222, 10.0),
            queue_delay: Duration::from_secs(30),
            processing_delay: Duration::from_secs(120),
            messages_max: 10_000,
            document_bytes_max: 10 << 20,
            kept_max: 1_000,
        }
    }
}

#[derive(Debug)]
struct Document {
    content_type: String,
    content: Option<Vec<u8>>,
    /// A processing report the sandbox wrote; it cannot be uploaded to.
    is_result: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finished {
    Done,
    Fatal,
}

#[derive(Debug)]
struct Feed {
    id: String,
    marketplace_ids: Vec<String>,
    input_document_id: String,
    created_at: Duration,
    result: Option<(Finished, String)>,
}

#[derive(Debug, Default)]
pub struct FeedStore {
    documents: HashMap<String, Document>,
    feeds: Vec<Feed>,
    documents_made: u64,
}

impl FeedStore {
    fn new_document(
        &mut self,
        content_type: String,
        content: Option<Vec<u8>>,
        is_result: bool,
    ) -> String {
        self.documents_made += 1;
        let id = format!("amzn1.tortuga.4.na.{:08}", self.documents_made);
        self.documents.insert(
            id.clone(),
            Document {
                content_type,
                content,
                is_result,
            },
        );
        id
    }

    fn feed(&self, id: &str) -> Option<&Feed> {
        self.feeds.iter().find(|feed| feed.id == id)
    }
}

/// Processes the feeds whose processing time is over.
pub(super) fn settle(state: &AmazonState, inner: &mut Inner, now: Duration) {
    let feeds = &state.config.feeds;
    let span = feeds.queue_delay + feeds.processing_delay;
    let due: Vec<usize> = (0..inner.feeds.feeds.len())
        .filter(|&i| {
            inner.feeds.feeds[i].result.is_none() && inner.feeds.feeds[i].created_at + span <= now
        })
        .collect();
    for index in due {
        let done_at = inner.feeds.feeds[index].created_at + span;
        let input = &inner.feeds.feeds[index].input_document_id;
        let content = inner.feeds.documents[input]
            .content
            .clone()
            .unwrap_or_default();
        let feed_id = inner.feeds.feeds[index].id.clone();
        let evaluation = evaluate(state, &content, |sku| inner.listings.contains_key(sku));
        for (sku, quantity) in &evaluation.updates {
            state.set_quantity(
                inner,
                sku,
                *quantity,
                done_at,
                Cause::Feed {
                    feed_id: feed_id.clone(),
                },
            );
        }
        let report = evaluation.report(state.seller_id(), &feed_id);
        let report_id = inner.feeds.new_document(
            "application/json".into(),
            Some(report.to_string().into_bytes()),
            true,
        );
        let finished = if evaluation.fatal {
            Finished::Fatal
        } else {
            Finished::Done
        };
        inner.feeds.feeds[index].result = Some((finished, report_id));
    }
}

#[derive(Debug, Default)]
struct Evaluation {
    fatal: bool,
    updates: Vec<(String, i64)>,
    issues: Vec<Json>,
    processed: u64,
    invalid: u64,
}

impl Evaluation {
    fn fatal(message: impl Into<String>) -> Self {
        let issue = json!({"messageId": 0, "code": "FATAL", "severity": "ERROR", "message": message.into()});
        Self {
            fatal: true,
            issues: vec![issue],
            ..Self::default()
        }
    }

    fn report(&self, seller_id: &str, feed_id: &str) -> Json {
        json!({
            "header": {"sellerId": seller_id, "version": "2.0", "feedId": feed_id},
            "issues": self.issues,
            "summary": {
                "errors": self.issues.len(), "warnings": 0, "messagesProcessed": self.processed,
                "messagesAccepted": self.processed - self.invalid, "messagesInvalid": self.invalid,
            },
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FeedHeader {
    seller_id: String,
    version: String,
}

#[derive(Debug, Deserialize)]
struct ListingsFeed {
    header: FeedHeader,
    messages: Vec<Json>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Message {
    message_id: u64,
    sku: String,
    operation_type: String,
    product_type: Option<String>,
    #[serde(default)]
    patches: Vec<Patch>,
}

fn evaluate(state: &AmazonState, content: &[u8], known: impl Fn(&str) -> bool) -> Evaluation {
    let feed: ListingsFeed = match serde_json::from_slice(content) {
        Ok(feed) => feed,
        Err(error) => {
            return Evaluation::fatal(format!(
                "The feed is not a JSON_LISTINGS_FEED document: {error}"
            ));
        }
    };
    if feed.header.seller_id != state.seller_id() || feed.header.version != "2.0" {
        return Evaluation::fatal("The header must name this seller and version 2.0.");
    }
    let maximum = state.config.feeds.messages_max;
    if feed.messages.len() > maximum {
        return Evaluation::fatal(format!(
            "The feed has {} messages; the maximum is {maximum}.",
            feed.messages.len()
        ));
    }
    let mut evaluation = Evaluation::default();
    for (index, raw) in feed.messages.into_iter().enumerate() {
        evaluation.processed += 1;
        match evaluate_message(raw, &known) {
            Ok(update) => evaluation.updates.push(update),
            Err((message_id, issues)) => {
                evaluation.invalid += 1;
                let message_id = message_id.unwrap_or(index as u64 + 1);
                evaluation
                    .issues
                    .extend(issues.into_iter().map(|mut issue| {
                        issue["messageId"] = json!(message_id);
                        issue
                    }));
            }
        }
    }
    evaluation
}

type MessageIssues = (Option<u64>, Vec<Json>);

fn evaluate_message(
    raw: Json,
    known: impl Fn(&str) -> bool,
) -> Result<(String, i64), MessageIssues> {
    let message_id = raw.get("messageId").and_then(Json::as_u64);
    let invalid = |code: &str, text: String| {
        (
            message_id,
            vec![json!({"code": code, "severity": "ERROR", "message": text})],
        )
    };
    let message: Message = serde_json::from_value(raw)
        .map_err(|error| invalid("INVALID_MESSAGE", error.to_string()))?;
    let message_id = Some(message.message_id);
    let invalid = |code: &str, text: String| {
        (
            message_id,
            vec![json!({"code": code, "severity": "ERROR", "message": text})],
        )
    };
    if message.operation_type != "PATCH" {
        return Err(invalid(
            "UNSUPPORTED_OPERATION",
            format!(
                "The sandbox processes PATCH messages, not {}.",
                message.operation_type
            ),
        ));
    }
    if message.product_type.as_deref().is_none_or(str::is_empty) || message.patches.is_empty() {
        return Err(invalid(
            "INVALID_MESSAGE",
            "A PATCH message needs productType and at least one patch.".into(),
        ));
    }
    if !known(&message.sku) {
        return Err(invalid(
            "SKU_NOT_FOUND",
            format!("SKU '{}' not found.", message.sku),
        ));
    }
    let quantity = read_patches(&message.patches).map_err(|issues| (message_id, issues))?;
    Ok((message.sku, quantity))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateDocument {
    content_type: String,
}

pub async fn create_document(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let rate = state.config.feeds.create_document_rate;
    let reply = match state.gate(CREATE_DOCUMENT, &headers, None, rate) {
        Err(reply) => reply,
        Ok(draw) => {
            match read_json::<CreateDocument>(&state, CREATE_DOCUMENT, &headers, body).await {
                Err(reply) => reply,
                Ok(request) => {
                    with_held_faults(draw, || new_document(&state, request.content_type)).await
                }
            }
        }
    };
    state.finish(CREATE_DOCUMENT, Some(rate), reply)
}

fn new_document(state: &Shared, content_type: String) -> Reply {
    let mut inner = state.inner.lock().unwrap();
    if inner.feeds.documents.len() >= state.config.feeds.kept_max {
        return Reply::invalid_input("The sandbox keeps no more feed documents.");
    }
    let id = inner.feeds.new_document(content_type, None, false);
    let url = format!("{}/sandbox-storage/{id}", state.base_url);
    Reply::ok(
        StatusCode::CREATED,
        json!({"feedDocumentId": id, "url": url}),
    )
}

pub async fn get_document(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let rate = state.config.feeds.get_document_rate;
    let reply = match state.gate(GET_DOCUMENT, &headers, None, rate) {
        Err(reply) => reply,
        Ok(draw) => with_held_faults(draw, || {
            let inner = state.inner.lock().unwrap();
            match inner.feeds.documents.get(&id) {
                None => Reply::not_found(format!("Feed document {id} not found.")),
                Some(_) => Reply::ok(StatusCode::OK, json!({"feedDocumentId": id, "url": format!("{}/sandbox-storage/{id}", state.base_url)})),
            }
        })
        .await,
    };
    state.finish(GET_DOCUMENT, Some(rate), reply)
}

/// The upload URL: a presigned-URL stand-in that checks the declared content type, as the
/// signature of the real URL does.
pub async fn upload(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let maximum = state.config.feeds.document_bytes_max;
    let content_type = header(&headers, "content-type")
        .unwrap_or_default()
        .to_owned();
    let (status, outcome) = match read_body(&headers, body, maximum).await {
        Err(BodyError::TooLarge) => {
            state.core.recorder.record_violation(
                UPLOAD,
                ViolationKind::LimitExceeded,
                format!("document above {maximum} bytes"),
            );
            (StatusCode::PAYLOAD_TOO_LARGE, Outcome::Invalid)
        }
        Err(BodyError::Unreadable) => (StatusCode::BAD_REQUEST, Outcome::Invalid),
        Ok(bytes) => store_upload(&state, &id, &content_type, bytes.to_vec()),
    };
    state.core.recorder.record_call(UPLOAD, outcome);
    status.into_response()
}

fn store_upload(
    state: &Shared,
    id: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Outcome) {
    let mut inner = state.inner.lock().unwrap();
    let Some(document) = inner.feeds.documents.get_mut(id) else {
        return (StatusCode::NOT_FOUND, Outcome::Invalid);
    };
    let same_type = |a: &str, b: &str| a.replace(' ', "").eq_ignore_ascii_case(&b.replace(' ', ""));
    if document.is_result || !same_type(&document.content_type, content_type) {
        return (StatusCode::FORBIDDEN, Outcome::Unauthorized);
    }
    document.content = Some(bytes);
    (StatusCode::OK, Outcome::Ok)
}

pub async fn download(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let found = {
        let mut inner = state.inner.lock().unwrap();
        state.settle(&mut inner);
        let document = inner.feeds.documents.get(&id);
        document.and_then(|d| {
            d.content
                .clone()
                .map(|content| (d.content_type.clone(), content))
        })
    };
    let Some((content_type, content)) = found else {
        state.core.recorder.record_call(DOWNLOAD, Outcome::Invalid);
        return StatusCode::NOT_FOUND.into_response();
    };
    state.core.recorder.record_call(DOWNLOAD, Outcome::Ok);
    let mut response = content.into_response();
    let value = HeaderValue::from_str(&content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    response.headers_mut().insert("content-type", value);
    response
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateFeed {
    feed_type: String,
    marketplace_ids: Vec<String>,
    input_feed_document_id: String,
    /// Accepted as SP-API defines it; no option changes how a JSON_LISTINGS_FEED is processed.
    #[serde(default)]
    #[allow(dead_code)]
    feed_options: Option<Map<String, Json>>,
}

pub async fn create_feed(State(state): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let rate = state.config.feeds.create_feed_rate;
    let reply = match state.gate(CREATE_FEED, &headers, None, rate) {
        Err(reply) => reply,
        Ok(draw) => match read_json::<CreateFeed>(&state, CREATE_FEED, &headers, body).await {
            Err(reply) => reply,
            Ok(request) => with_held_faults(draw, || new_feed(&state, request)).await,
        },
    };
    state.finish(CREATE_FEED, Some(rate), reply)
}

fn new_feed(state: &Shared, request: CreateFeed) -> Reply {
    if request.feed_type != LISTINGS_FEED {
        return Reply::invalid_input(format!(
            "The sandbox processes {LISTINGS_FEED} only, not {}.",
            request.feed_type
        ));
    }
    let known = &state.config.catalogue.marketplace_ids;
    if request.marketplace_ids.is_empty()
        || request.marketplace_ids.iter().any(|id| !known.contains(id))
    {
        return Reply::invalid_input("Invalid marketplaceIds.");
    }
    let mut inner = state.inner.lock().unwrap();
    let content = match inner.feeds.documents.get(&request.input_feed_document_id) {
        Some(Document {
            content: Some(content),
            is_result: false,
            ..
        }) => content,
        _ => return Reply::invalid_input("inputFeedDocumentId names no uploaded feed document."),
    };
    note_oversized(state, content);
    if inner.feeds.feeds.len() >= state.config.feeds.kept_max {
        return Reply::invalid_input("The sandbox keeps no more feeds.");
    }
    let id = format!("{}", 50_000_000_000u64 + inner.feeds.feeds.len() as u64 + 1);
    inner.feeds.feeds.push(Feed {
        id: id.clone(),
        marketplace_ids: request.marketplace_ids,
        input_document_id: request.input_feed_document_id,
        created_at: state.core.clock.now(),
        result: None,
    });
    Reply::ok(StatusCode::ACCEPTED, json!({"feedId": id}))
}

/// A feed above the message maximum is accepted and fails later (FATAL), but sending it broke a
/// documented limit, which is recorded when it is sent.
fn note_oversized(state: &Shared, content: &[u8]) {
    let count = serde_json::from_slice::<Json>(content)
        .ok()
        .and_then(|feed| feed.get("messages").and_then(Json::as_array).map(Vec::len));
    let maximum = state.config.feeds.messages_max;
    if let Some(count) = count.filter(|&count| count > maximum) {
        state.core.recorder.record_violation(
            CREATE_FEED,
            ViolationKind::LimitExceeded,
            format!("{count} messages above {maximum}"),
        );
    }
}

pub async fn get_feed(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let rate = state.config.feeds.get_feed_rate;
    let reply = match state.gate(GET_FEED, &headers, None, rate) {
        Err(reply) => reply,
        Ok(draw) => with_held_faults(draw, || render_feed(&state, &id)).await,
    };
    state.finish(GET_FEED, Some(rate), reply)
}

fn render_feed(state: &Shared, id: &str) -> Reply {
    let mut inner = state.inner.lock().unwrap();
    state.settle(&mut inner);
    let Some(feed) = inner.feeds.feed(id) else {
        return Reply::not_found(format!("Feed {id} not found."));
    };
    let clock = &state.core.clock;
    let config = &state.config.feeds;
    let now = clock.now();
    let started_at = feed.created_at + config.queue_delay;
    let mut body = json!({
        "feedId": feed.id, "feedType": LISTINGS_FEED, "marketplaceIds": feed.marketplace_ids,
        "createdTime": clock.wall_time(feed.created_at),
    });
    let status = match &feed.result {
        Some((finished, report)) => {
            body["processingEndTime"] =
                json!(clock.wall_time(started_at + config.processing_delay));
            body["resultFeedDocumentId"] = json!(report);
            if *finished == Finished::Done {
                "DONE"
            } else {
                "FATAL"
            }
        }
        None if now < started_at => "IN_QUEUE",
        None => "IN_PROGRESS",
    };
    if status != "IN_QUEUE" {
        body["processingStartTime"] = json!(clock.wall_time(started_at));
    }
    body["processingStatus"] = json!(status);
    Reply::ok(StatusCode::OK, body)
}
