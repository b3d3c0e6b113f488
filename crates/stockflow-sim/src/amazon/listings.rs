//! Listings Items 2021-08-01: `PATCH` sets the merchant-fulfilled quantity (snake_case in),
//! `GET` reads it back (camelCase out). The patch checks are shared with the feeds.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::reply::Reply;
use super::{DEFAULT_CHANNEL, Inner, Shared};
use crate::recorder::{Outcome, ViolationKind};
use crate::server::{BodyError, header, read_body, with_held_faults};

const PATCH: &str = "patchListingsItem";
const GET: &str = "getListingsItem";
const FULFILLMENT_AVAILABILITY: &str = "/attributes/fulfillment_availability";
/// `includedData` values SP-API defines; the sandbox fills the inventory-related ones.
const INCLUDED_DATA: [&str; 8] = [
    "summaries",
    "attributes",
    "issues",
    "offers",
    "fulfillmentAvailability",
    "procurement",
    "relationships",
    "productTypes",
];
/// Keys a fulfillment_availability entry may carry besides the channel and quantity.
const AVAILABILITY_KEYS: [&str; 6] = [
    "fulfillment_channel_code",
    "quantity",
    "lead_time_to_ship_max_days",
    "restock_date",
    "is_inventory_available",
    "marketplace_id",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[serde(rename = "productType")]
    pub product_type: Option<String>,
    #[serde(default)]
    pub patches: Vec<Patch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    pub op: String,
    pub path: String,
    #[serde(default)]
    pub value: Option<Json>,
}

pub async fn patch_item(
    State(state): State<Shared>,
    Path((seller, sku)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let reply = patch(&state, &seller, &sku, &uri, &headers, body).await;
    state.finish(PATCH, Some(state.config.patch_rate), reply)
}

async fn patch(
    state: &Shared,
    seller: &str,
    sku: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Reply {
    let draw = match state.gate(PATCH, headers, Some(seller), state.config.patch_rate) {
        Ok(draw) => draw,
        Err(reply) => return reply,
    };
    let query = match query_pairs(uri) {
        Ok(query) => query,
        Err(reply) => return reply,
    };
    if let Err(reply) = marketplace_ids(state, &query) {
        return reply;
    }
    let body = match read_json::<PatchBody>(state, PATCH, headers, body).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let preview = value(&query, "mode") == Some("VALIDATION_PREVIEW");
    with_held_faults(draw, || apply_patch(state, sku, &body, preview)).await
}

/// Reads a JSON body of an SP-API call: JSON content type, within the body limit, well formed.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    state: &Shared,
    operation: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Reply> {
    if !header(headers, "content-type").is_some_and(|value| value.starts_with("application/json")) {
        return Err(Reply::unsupported_media_type());
    }
    let bytes = match read_body(headers, body, state.core.body_bytes_max).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => {
            let detail = format!("body above {} bytes", state.core.body_bytes_max);
            state
                .core
                .recorder
                .record_violation(operation, ViolationKind::LimitExceeded, detail);
            return Err(Reply::too_large());
        }
        Err(BodyError::Unreadable) => {
            return Err(Reply::invalid_input("The request body could not be read."));
        }
    };
    serde_json::from_slice(&bytes).map_err(|error| {
        Reply::invalid_input(format!(
            "Request has missing or invalid parameters and cannot be parsed: {error}"
        ))
    })
}

fn apply_patch(state: &Shared, sku: &str, body: &PatchBody, preview: bool) -> Reply {
    if body.product_type.as_deref().is_none_or(str::is_empty) {
        return Reply::invalid_input("Request is missing the required property productType.");
    }
    if body.patches.is_empty() {
        return Reply::invalid_input("Request needs at least one patch.");
    }
    if let Some(patch) = body
        .patches
        .iter()
        .find(|p| !matches!(p.op.as_str(), "add" | "replace" | "merge" | "delete"))
    {
        return Reply::invalid_input(format!("Invalid patch operation '{}'.", patch.op));
    }
    let mut inner = state.inner.lock().unwrap();
    state.settle(&mut inner);
    if !inner.listings.contains_key(sku) {
        return Reply::not_found(format!(
            "SKU '{sku}' not found for seller {}.",
            state.seller_id()
        ));
    }
    let submission =
        |inner: &mut Inner| format!("{:032x}", rand::RngExt::random::<u128>(&mut inner.random));
    match read_patches(&body.patches) {
        Err(issues) => {
            let id = submission(&mut inner);
            let body =
                json!({"sku": sku, "status": "INVALID", "submissionId": id, "issues": issues});
            Reply::ok(StatusCode::OK, body).with_outcome(Outcome::Refused)
        }
        Ok(_) if preview => {
            let id = submission(&mut inner);
            Reply::ok(
                StatusCode::OK,
                json!({"sku": sku, "status": "VALID", "submissionId": id, "issues": []}),
            )
        }
        Ok(quantity) => match state.accept(&mut inner, sku, quantity) {
            Ok(id) => Reply::ok(
                StatusCode::OK,
                json!({"sku": sku, "status": "ACCEPTED", "submissionId": id, "issues": []}),
            ),
            Err(reply) => reply,
        },
    }
}

fn issue(code: &str, message: impl Into<String>, attribute: &str) -> Json {
    json!({"code": code, "message": message.into(), "severity": "ERROR", "attributeNames": [attribute]})
}

/// The quantity a list of patches sets, or the issues that make it INVALID. The sandbox serves
/// only the merchant-fulfilled quantity; a patch to another attribute is an issue, not silently
/// accepted.
pub fn read_patches(patches: &[Patch]) -> Result<i64, Vec<Json>> {
    let mut quantity = None;
    let mut issues = Vec::new();
    for patch in patches {
        match read_patch(patch) {
            Ok(value) => quantity = Some(value),
            Err(issue) => issues.push(issue),
        }
    }
    match quantity {
        Some(quantity) if issues.is_empty() => Ok(quantity),
        _ if issues.is_empty() => Err(vec![issue(
            "MISSING_ATTRIBUTE",
            "No fulfillment_availability patch.",
            "fulfillment_availability",
        )]),
        _ => Err(issues),
    }
}

fn read_patch(patch: &Patch) -> Result<i64, Json> {
    let attribute = patch.path.trim_start_matches("/attributes/");
    if patch.path != FULFILLMENT_AVAILABILITY {
        return Err(issue(
            "UNSUPPORTED_ATTRIBUTE",
            format!(
                "The sandbox serves only {FULFILLMENT_AVAILABILITY}, not {}.",
                patch.path
            ),
            attribute,
        ));
    }
    if patch.op == "delete" {
        return Err(issue(
            "UNSUPPORTED_OPERATION",
            "Deleting fulfillment_availability is not supported; set quantity 0.",
            attribute,
        ));
    }
    let entries = match &patch.value {
        Some(Json::Array(entries)) if entries.len() == 1 => entries,
        _ => {
            return Err(issue(
                "INVALID_VALUE",
                "value must be a list with one fulfillment_availability entry.",
                attribute,
            ));
        }
    };
    let Json::Object(entry) = &entries[0] else {
        return Err(issue(
            "INVALID_VALUE",
            "A fulfillment_availability entry must be an object.",
            attribute,
        ));
    };
    read_availability(entry, attribute)
}

fn read_availability(entry: &Map<String, Json>, attribute: &str) -> Result<i64, Json> {
    if let Some(key) = entry
        .keys()
        .find(|key| !AVAILABILITY_KEYS.contains(&key.as_str()))
    {
        return Err(issue(
            "INVALID_VALUE",
            format!("Unknown property '{key}' in fulfillment_availability."),
            attribute,
        ));
    }
    match entry.get("fulfillment_channel_code").and_then(Json::as_str) {
        Some(DEFAULT_CHANNEL) => {}
        Some(other) => {
            return Err(issue(
                "FBA_NOT_SETTABLE",
                format!(
                    "Quantities of fulfillment channel '{other}' cannot be set through listings."
                ),
                attribute,
            ));
        }
        None => {
            return Err(issue(
                "INVALID_VALUE",
                "fulfillment_channel_code is required.",
                attribute,
            ));
        }
    }
    match entry.get("quantity").and_then(Json::as_i64) {
        Some(quantity) if quantity >= 0 => Ok(quantity),
        Some(quantity) => Err(issue(
            "INVALID_VALUE",
            format!("quantity must not be negative, got {quantity}."),
            attribute,
        )),
        None => Err(issue(
            "INVALID_VALUE",
            "quantity must be a whole number.",
            attribute,
        )),
    }
}

pub async fn get_item(
    State(state): State<Shared>,
    Path((seller, sku)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let reply = read(&state, &seller, &sku, &uri, &headers).await;
    state.finish(GET, Some(state.config.get_rate), reply)
}

async fn read(state: &Shared, seller: &str, sku: &str, uri: &Uri, headers: &HeaderMap) -> Reply {
    let draw = match state.gate(GET, headers, Some(seller), state.config.get_rate) {
        Ok(draw) => draw,
        Err(reply) => return reply,
    };
    let query = match query_pairs(uri) {
        Ok(query) => query,
        Err(reply) => return reply,
    };
    let marketplaces = match marketplace_ids(state, &query) {
        Ok(marketplaces) => marketplaces,
        Err(reply) => return reply,
    };
    let included: Vec<String> = value(&query, "includedData")
        .unwrap_or("summaries")
        .split(',')
        .map(|v| v.trim().to_owned())
        .collect();
    if let Some(unknown) = included
        .iter()
        .find(|v| !INCLUDED_DATA.contains(&v.as_str()))
    {
        return Reply::invalid_input(format!("Invalid includedData value '{unknown}'."));
    }
    with_held_faults(draw, || render_item(state, sku, &marketplaces, &included)).await
}

fn render_item(state: &Shared, sku: &str, marketplaces: &[String], included: &[String]) -> Reply {
    let mut inner = state.inner.lock().unwrap();
    state.settle(&mut inner);
    let Some(listing) = inner.listings.get(sku) else {
        return Reply::not_found(format!(
            "SKU '{sku}' not found for seller {}.",
            state.seller_id()
        ));
    };
    let (quantity, product_type) = (listing.quantity, listing.product_type.clone());
    let mut body = Map::new();
    body.insert("sku".into(), json!(sku));
    for part in included {
        let value = match part.as_str() {
            "summaries" => Json::Array(
                marketplaces
                    .iter()
                    .map(|m| summary(m, sku, &product_type, quantity))
                    .collect(),
            ),
            "attributes" => {
                json!({"fulfillment_availability": [{"fulfillment_channel_code": DEFAULT_CHANNEL, "quantity": quantity}]})
            }
            "fulfillmentAvailability" => {
                json!([{"fulfillmentChannelCode": DEFAULT_CHANNEL, "quantity": quantity}])
            }
            "productTypes" => Json::Array(
                marketplaces
                    .iter()
                    .map(|m| json!({"marketplaceId": m, "productType": product_type}))
                    .collect(),
            ),
            _ => json!([]),
        };
        body.insert(part.clone(), value);
    }
    Reply::ok(StatusCode::OK, Json::Object(body))
}

fn summary(marketplace: &str, sku: &str, product_type: &str, quantity: i64) -> Json {
    let status = if quantity > 0 {
        json!(["BUYABLE", "DISCOVERABLE"])
    } else {
        json!(["DISCOVERABLE"])
    };
    json!({"marketplaceId": marketplace, "asin": format!("B0SANDBOX{:01}", sku.len() % 10), "productType": product_type,
        "conditionType": "new_new", "status": status, "itemName": sku})
}

/// The query of a call as decoded pairs.
pub fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, Reply> {
    match Query::<Vec<(String, String)>>::try_from_uri(uri) {
        Ok(Query(pairs)) => Ok(pairs),
        Err(_) => Err(Reply::invalid_input(
            "The query string could not be parsed.",
        )),
    }
}

pub fn value<'q>(query: &'q [(String, String)], key: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// The `marketplaceIds` of a call: required, each one the seller's.
pub fn marketplace_ids(state: &Shared, query: &[(String, String)]) -> Result<Vec<String>, Reply> {
    let Some(list) = value(query, "marketplaceIds") else {
        return Err(Reply::invalid_input(
            "Missing required parameter marketplaceIds.",
        ));
    };
    let ids: Vec<String> = list
        .split(',')
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .collect();
    let known = &state.config.catalogue.marketplace_ids;
    match ids.iter().find(|id| !known.contains(id)) {
        _ if ids.is_empty() => Err(Reply::invalid_input("marketplaceIds is empty.")),
        Some(unknown) => Err(Reply::invalid_input(format!(
            "Invalid marketplaceIds: {unknown}."
        ))),
        None => Ok(ids),
    }
}
