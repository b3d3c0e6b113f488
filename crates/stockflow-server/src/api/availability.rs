//! Channels, buffer policies, SKU attributes, operator holds, surge signals, the withheld
//! listing and the location priority: the settings of buffer management, each change a
//! journaled, audited command.
//!
//! Policies and channel rules travel in the core's own JSON form (documented on the types in
//! `stockflow_core::availability`), with one convenience: times may be RFC 3339 strings.

use super::{Actor, Tenant, parse_path_id, submit};
use crate::app::AppState;
use crate::json::JsonBody;
use crate::problem::{FieldError, Problem};
use crate::wire::parse_time;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use stockflow_core::availability::{
    Amount, AvailabilityCommand, ChannelConfig, ChannelKind, ChannelLocation, ChannelRules,
    ChannelSettings, Percent, PlacedHold, Policy, Ratio, Signal, SkuAttributes, SkuAttributesItem,
};
use stockflow_core::command::{Command, LedgerCommand};
use stockflow_core::envelope::Input;
use stockflow_core::ids::{ChannelId, LocationId, PolicyId, Sku, SourceId, TenantId};
use stockflow_core::outcome::Reply;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_channels))
        .routes(routes!(get_channel, put_channel, delete_channel))
        .routes(routes!(list_policies))
        .routes(routes!(put_policy, delete_policy))
        .routes(routes!(put_attributes))
        .routes(routes!(post_attributes))
        .routes(routes!(list_holds, place_hold))
        .routes(routes!(release_hold))
        .routes(routes!(post_signal))
        .routes(routes!(list_buffers))
        .routes(routes!(put_location_priority))
}

/// Submits a settings command; a refusal becomes its problem document.
async fn command(
    state: &AppState,
    tenant: TenantId,
    actor: stockflow_core::ids::ActorId,
    command: Command,
) -> Result<(), Problem> {
    let submitted = submit(state, tenant, Input::Command { actor, command }).await?;
    match submitted.reply {
        Reply::Rejected(rejection) => Err(Problem::from_rejection(&rejection)),
        _ => Ok(()),
    }
}

fn availability(command: AvailabilityCommand) -> Command {
    Command::Availability(command)
}

fn settings(
    state: &AppState,
    tenant: &TenantId,
) -> std::sync::Arc<stockflow_engine::TenantSettings> {
    state.engine.reads().settings(tenant).unwrap_or_default()
}

/// Replaces RFC 3339 strings by Unix microseconds in the named fields, anywhere in `value`.
fn times_to_micros(value: &mut Value, fields: &[&str], errors: &mut Vec<FieldError>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if fields.contains(&key.as_str())
                    && let Value::String(text) = inner
                    && let Some(at) = parse_time(key, text, errors)
                {
                    *inner = Value::from(at.0);
                } else {
                    times_to_micros(inner, fields, errors);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| times_to_micros(item, fields, errors)),
        _ => {}
    }
}

/// Parses a core settings type from JSON, with a problem that quotes serde's reason.
fn from_json<T: serde::de::DeserializeOwned>(code: &str, value: Value) -> Result<T, Problem> {
    serde_json::from_value(value)
        .map_err(|error| Problem::new(StatusCode::BAD_REQUEST, code, error.to_string()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelsOut {
    /// Each channel with its locations, allocation rules, policies and measured cancellation rate.
    #[schema(value_type = Vec<Object>)]
    pub channels: Vec<ChannelSettings>,
    /// A channel or policy change is still being applied to the SKUs, a batch at a time: until
    /// this is false, `GET /v1/skus/{sku}` may not show it yet.
    pub sweeping: bool,
}

/// Every channel with its settings.
#[utoipa::path(get, path = "/v1/channels", tag = "channels", responses((status = 200, body = ChannelsOut)))]
async fn list_channels(State(state): State<AppState>, Tenant(tenant): Tenant) -> Json<ChannelsOut> {
    let settings = settings(&state, &tenant);
    Json(ChannelsOut {
        channels: settings.availability.channels.clone(),
        sweeping: settings.availability.sweeping,
    })
}

#[utoipa::path(get, path = "/v1/channels/{id}", tag = "channels", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, description = "unknown_channel", body = Problem)))]
async fn get_channel(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<ChannelSettings>, Problem> {
    let id = parse_path_id("channel", &id, ChannelId::parse)?;
    settings(&state, &tenant)
        .availability
        .channels
        .iter()
        .find(|c| c.config.id == id)
        .cloned()
        .map(Json)
        .ok_or_else(|| Problem::not_found("unknown_channel", format!("unknown channel {id}")))
}

/// A channel's settings. `serves` lists its locations, highest priority first.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelIn {
    /// shopify | amazon | tiktok | webhook
    pub kind: String,
    pub serves: Vec<String>,
    /// Told one quantity per location; default: true for shopify and tiktok.
    pub per_location: Option<bool>,
    /// `{percent, maximum, floor, fixed}`, all optional.
    #[schema(value_type = Option<Object>)]
    pub allocation: Option<Value>,
    /// Buffer policies in the order their buffers are taken.
    #[serde(default)]
    pub policies: Vec<String>,
}

/// Creates or replaces a channel's settings (its kind, locations, allocation and policies).
#[utoipa::path(put, path = "/v1/channels/{id}", tag = "channels", params(("id" = String, Path)),
    request_body = ChannelIn,
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn put_channel(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Actor(actor): Actor,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ChannelIn>,
) -> Result<Json<ChannelSettings>, Problem> {
    let id = parse_path_id("channel", &id, ChannelId::parse)?;
    let kind: ChannelKind = from_json("invalid_channel", Value::String(body.kind.clone()))?;
    let mut locations = Vec::with_capacity(body.serves.len());
    for (priority, location) in body.serves.iter().enumerate() {
        let location = parse_path_id("serves", location, LocationId::parse)?;
        locations.push(ChannelLocation {
            location,
            priority: priority as u32,
        });
    }
    let rules: ChannelRules = from_json(
        "invalid_allocation",
        serde_json::json!({
            "allocation": body.allocation.clone().unwrap_or_else(|| serde_json::json!({})),
            "policies": body.policies,
        }),
    )?;
    let per_location = body
        .per_location
        .unwrap_or(matches!(kind, ChannelKind::Shopify | ChannelKind::Tiktok));
    let config = ChannelConfig {
        id: id.clone(),
        kind,
        locations,
        per_location,
    };
    command(
        &state,
        tenant.clone(),
        actor,
        availability(AvailabilityCommand::ConfigureChannel { config, rules }),
    )
    .await?;
    get_channel(State(state), Tenant(tenant), Path(id.to_string())).await
}

#[utoipa::path(delete, path = "/v1/channels/{id}", tag = "channels", params(("id" = String, Path)),
    responses((status = 204), (status = 422, description = "unknown_channel", body = Problem)))]
async fn delete_channel(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Actor(actor): Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let channel = parse_path_id("channel", &id, ChannelId::parse)?;
    command(
        &state,
        tenant,
        actor,
        availability(AvailabilityCommand::RemoveChannel { channel }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PoliciesOut {
    #[schema(value_type = Vec<Object>)]
    pub policies: Vec<Policy>,
    /// As in `GET /v1/channels`: a change is still being applied to the SKUs.
    pub sweeping: bool,
}

/// Every buffer policy.
#[utoipa::path(get, path = "/v1/policies", tag = "buffers", responses((status = 200, body = PoliciesOut)))]
async fn list_policies(State(state): State<AppState>, Tenant(tenant): Tenant) -> Json<PoliciesOut> {
    let settings = settings(&state, &tenant);
    Json(PoliciesOut {
        policies: settings.availability.policies.clone(),
        sweeping: settings.availability.sweeping,
    })
}

/// Creates or replaces a buffer policy: `{selector, strategy}` where strategy is one of
/// `{"kind": "static", "amount": {"units": n} | {"percent": p}}`, `{"kind": "dynamic", "curve":
/// [{"ratio", "percent"}], ...}`, `{"kind": "channel_aware", "base", "factors", ...}`,
/// `{"kind": "time_window", "starts_at", "ends_at", "amount", "release"}`.
#[utoipa::path(put, path = "/v1/policies/{id}", tag = "buffers", params(("id" = String, Path)),
    request_body(content = Object, description = "The policy (its id is the path's)"),
    responses((status = 200, body = Object), (status = 400, description = "invalid_policy", body = Problem),
        (status = 422, description = "invalid_percentage, invalid_window, ...", body = Problem)))]
async fn put_policy(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Actor(actor): Actor,
    Path(id): Path<String>,
    JsonBody(mut body): JsonBody<Value>,
) -> Result<Json<Policy>, Problem> {
    let id = parse_path_id("policy", &id, PolicyId::parse)?;
    let Value::Object(map) = &mut body else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_policy",
            "a policy is a JSON object",
        ));
    };
    match map.get("id") {
        Some(Value::String(given)) if given != id.as_str() => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_policy",
                "the body's id differs from the path's",
            ));
        }
        _ => {
            map.insert("id".to_owned(), Value::String(id.to_string()));
        }
    }
    let mut errors = Vec::new();
    times_to_micros(&mut body, &["starts_at", "ends_at"], &mut errors);
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let policy: Policy = from_json("invalid_policy", body)?;
    command(
        &state,
        tenant,
        actor,
        availability(AvailabilityCommand::UpsertPolicy(Box::new(policy.clone()))),
    )
    .await?;
    Ok(Json(policy))
}

#[utoipa::path(delete, path = "/v1/policies/{id}", tag = "buffers", params(("id" = String, Path)),
    responses((status = 204), (status = 422, description = "unknown_policy, policy_in_use", body = Problem)))]
async fn delete_policy(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Actor(actor): Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let policy = parse_path_id("policy", &id, PolicyId::parse)?;
    command(
        &state,
        tenant,
        actor,
        availability(AvailabilityCommand::RemovePolicy { policy }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// SKU attributes as buffer policies select on them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributesIn {
    /// e.g. A, B, C
    pub tier: Option<String>,
    pub criticality: Option<u32>,
    /// Percent (e.g. 35.5).
    #[schema(value_type = Option<f64>)]
    pub margin: Option<Value>,
    #[serde(default)]
    pub tags: BTreeSet<String>,
}

impl AttributesIn {
    fn into_core(self) -> Result<SkuAttributes, Problem> {
        let margin: Option<Percent> = match self.margin {
            Some(value) => Some(from_json("invalid_attributes", value)?),
            None => None,
        };
        Ok(SkuAttributes {
            tier: self.tier,
            criticality: self.criticality,
            margin,
            tags: self.tags,
        })
    }
}

/// Sets (replaces) one SKU's attributes.
#[utoipa::path(put, path = "/v1/skus/{sku}/attributes", tag = "buffers", params(("sku" = String, Path)),
    request_body = AttributesIn,
    responses((status = 204), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn put_attributes(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Actor(actor): Actor,
    Path(sku): Path<String>,
    JsonBody(body): JsonBody<AttributesIn>,
) -> Result<StatusCode, Problem> {
    let sku = parse_path_id("sku", &sku, Sku::parse)?;
    let items = vec![SkuAttributesItem {
        sku,
        attributes: body.into_core()?,
    }];
    command(
        &state,
        tenant,
        actor,
        availability(AvailabilityCommand::SetSkuAttributes { items }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributesBulkIn {
    /// Up to 1000 SKUs, applied all or none.
    pub items: Vec<AttributesItemIn>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributesItemIn {
    pub sku: String,
    pub attributes: AttributesIn,
}

/// Sets the attributes of many SKUs at once.
#[utoipa::path(post, path = "/v1/sku-attributes", tag = "buffers", request_body = AttributesBulkIn,
    responses((status = 204), (status = 400, body = Problem), (status = 422, description = "too_many_items, unknown_sku, ...", body = Problem)))]
async fn post_attributes(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Actor(actor): Actor,
    JsonBody(body): JsonBody<AttributesBulkIn>,
) -> Result<StatusCode, Problem> {
    let mut items = Vec::with_capacity(body.items.len());
    for (index, item) in body.items.into_iter().enumerate() {
        let sku = parse_path_id(&format!("items[{index}].sku"), &item.sku, Sku::parse)?;
        items.push(SkuAttributesItem {
            sku,
            attributes: item.attributes.into_core()?,
        });
    }
    command(
        &state,
        tenant,
        actor,
        availability(AvailabilityCommand::SetSkuAttributes { items }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An operator's hold: withhold a quantity or a percentage of a SKU from some or all channels.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldIn {
    /// Generated when absent; a hold with an existing id replaces it.
    pub id: Option<String>,
    pub sku: String,
    /// One location; absent: across the channel's locations.
    pub location: Option<String>,
    /// Channels it applies to; absent or empty: every channel.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Units withheld (give this or `percent`).
    pub quantity: Option<i64>,
    /// Share of available withheld, 0 to 100.
    pub percent: Option<f64>,
    pub reason: String,
    /// RFC 3339 (give this or `expires_in_seconds`, or neither for no expiry).
    pub expires_at: Option<String>,
    pub expires_in_seconds: Option<u32>,
}

/// Holds in force.
#[utoipa::path(get, path = "/v1/buffers/holds", tag = "buffers", responses((status = 200, body = Object)))]
async fn list_holds(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Json<Vec<PlacedHold>> {
    Json(settings(&state, &tenant).availability.holds.clone())
}

/// Places (or replaces) a manual hold; audited, released by `DELETE` or at its expiry.
#[utoipa::path(post, path = "/v1/buffers/holds", tag = "buffers", request_body = HoldIn,
    responses((status = 201, body = Object), (status = 400, body = Problem),
        (status = 422, description = "unknown_sku, unknown_channel, invalid_percentage, invalid_window", body = Problem)))]
async fn place_hold(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Actor(actor): Actor,
    JsonBody(body): JsonBody<HoldIn>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let now = state.now();
    let mut errors = Vec::new();
    let amount = match (body.quantity, body.percent) {
        (Some(units), None) => Some(Amount::Units(units)),
        (None, Some(percent)) => {
            match from_json::<Percent>("invalid_percentage", Value::from(percent)) {
                Ok(percent) => Some(Amount::Percent(percent)),
                Err(problem) => return Err(problem),
            }
        }
        _ => {
            errors.push(FieldError::new(
                "quantity",
                "invalid_amount",
                "give exactly one of quantity and percent",
            ));
            None
        }
    };
    let expires_at = match (&body.expires_at, body.expires_in_seconds) {
        (Some(at), None) => parse_time("expires_at", at, &mut errors),
        (None, Some(seconds)) => Some(now.plus_seconds(i64::from(seconds))),
        (None, None) => None,
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "expires_at",
                "invalid_window",
                "give expires_at or expires_in_seconds, not both",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let id = match &body.id {
        Some(id) => parse_path_id("id", id, PolicyId::parse)?,
        None => PolicyId::parse(format!("hold-{}", uuid_like(now))).expect("a valid id"),
    };
    let mut channels = BTreeSet::new();
    for channel in &body.channels {
        channels.insert(parse_path_id("channels", channel, ChannelId::parse)?);
    }
    let hold = stockflow_core::availability::Hold {
        id: id.clone(),
        sku: parse_path_id("sku", &body.sku, Sku::parse)?,
        location: body
            .location
            .as_deref()
            .map(|l| parse_path_id("location", l, LocationId::parse))
            .transpose()?,
        channels,
        amount: amount.expect("checked above"),
        reason: body.reason,
        expires_at,
    };
    command(
        &state,
        tenant,
        actor,
        availability(AvailabilityCommand::PlaceHold(hold.clone())),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(&hold).unwrap_or(Value::Null)),
    ))
}

/// A hold id from the time and a counter: readable, and unique even for holds placed in the
/// same microsecond (the time alone gave two such holds one id, so that the second replaced
/// the first, or was refused as "on another SKU").
fn uuid_like(now: stockflow_core::time::Timestamp) -> String {
    static PLACED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = PLACED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}-{count}", now.0)
}

/// Releases a hold before its expiry.
#[utoipa::path(delete, path = "/v1/buffers/holds/{id}", tag = "buffers", params(("id" = String, Path)),
    responses((status = 204), (status = 422, description = "unknown_hold", body = Problem)))]
async fn release_hold(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Actor(actor): Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let hold = parse_path_id("hold", &id, PolicyId::parse)?;
    command(
        &state,
        tenant,
        actor,
        availability(AvailabilityCommand::ReleaseHold { hold }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An external surge signal: expect `multiplier` times the usual demand of a SKU.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalIn {
    pub sku: String,
    /// Who says so (e.g. `social-listener`).
    pub source: String,
    /// 1 to 1000.
    pub multiplier: f64,
    pub duration_seconds: u32,
}

/// Records a surge signal that dynamic buffer policies take into account.
#[utoipa::path(post, path = "/v1/signals", tag = "buffers", request_body = SignalIn,
    responses((status = 202), (status = 400, body = Problem), (status = 422, description = "unknown_sku, invalid_signal", body = Problem)))]
async fn post_signal(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Actor(actor): Actor,
    JsonBody(body): JsonBody<SignalIn>,
) -> Result<StatusCode, Problem> {
    let signal = Signal {
        sku: parse_path_id("sku", &body.sku, Sku::parse)?,
        source: parse_path_id("source", &body.source, SourceId::parse)?,
        multiplier: from_json::<Ratio>("invalid_signal", Value::from(body.multiplier))?,
        duration_seconds: body.duration_seconds,
    };
    command(
        &state,
        tenant,
        actor,
        availability(AvailabilityCommand::RecordSignal(signal)),
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BuffersQuery {
    /// 1 to 1000; default 100.
    pub limit: Option<usize>,
    /// Only this channel.
    pub channel: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WithheldRowOut {
    pub sku: String,
    pub channel: String,
    pub withheld: i64,
    pub available_to_sell: i64,
    #[schema(value_type = Vec<Object>)]
    pub buffers: Vec<stockflow_core::availability::BufferComponent>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BuffersOut {
    pub withheld_total: i64,
    pub rows: Vec<WithheldRowOut>,
}

/// What is withheld across SKUs and channels, largest first, with every buffer explained.
#[utoipa::path(get, path = "/v1/buffers", tag = "buffers", params(BuffersQuery),
    responses((status = 200, body = BuffersOut)))]
async fn list_buffers(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(query): Query<BuffersQuery>,
) -> Result<Json<BuffersOut>, Problem> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let channel = query
        .channel
        .as_deref()
        .map(|c| parse_path_id("channel", c, ChannelId::parse))
        .transpose()?;
    let reads = state.engine.reads().clone();
    let rows = tokio::task::spawn_blocking(move || {
        withheld_rows(&reads, &tenant, channel.as_ref(), limit)
    })
    .await
    .map_err(|_| Problem::internal("the buffer listing panicked"))?;
    Ok(Json(rows))
}

/// Walks the published SKU views page by page, keeping the largest `limit` rows.
fn withheld_rows(
    reads: &stockflow_engine::ReadModel,
    tenant: &TenantId,
    channel: Option<&ChannelId>,
    limit: usize,
) -> BuffersOut {
    let mut rows: Vec<WithheldRowOut> = Vec::new();
    let mut total = 0;
    let mut after: Option<Sku> = None;
    loop {
        let page = reads.skus(
            tenant,
            after.as_ref(),
            stockflow_engine::reads::SKU_PAGE_MAX,
        );
        let Some(last) = page.last() else { break };
        after = Some(last.sku.clone());
        for view in &page {
            for c in view.channels().iter().filter(|c| c.withheld > 0) {
                if channel.is_some_and(|wanted| wanted != &c.channel) {
                    continue;
                }
                total += c.withheld;
                rows.push(WithheldRowOut {
                    sku: view.sku.to_string(),
                    channel: c.channel.to_string(),
                    withheld: c.withheld,
                    available_to_sell: c.available_to_sell,
                    buffers: c.buffers.clone(),
                });
            }
        }
        if rows.len() > limit * 4 {
            rows.sort_by(|a, b| b.withheld.cmp(&a.withheld).then(a.sku.cmp(&b.sku)));
            rows.truncate(limit);
        }
    }
    rows.sort_by(|a, b| b.withheld.cmp(&a.withheld).then(a.sku.cmp(&b.sku)));
    rows.truncate(limit);
    BuffersOut {
        withheld_total: total,
        rows,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationPriorityIn {
    /// Highest priority first.
    pub locations: Vec<String>,
}

/// The order locations are tried for reservation lines without a location, when the channel has
/// no order of its own.
#[utoipa::path(put, path = "/v1/location-priority", tag = "reservations", request_body = LocationPriorityIn,
    responses((status = 204), (status = 400, body = Problem)))]
async fn put_location_priority(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Actor(actor): Actor,
    JsonBody(body): JsonBody<LocationPriorityIn>,
) -> Result<StatusCode, Problem> {
    let mut locations = Vec::with_capacity(body.locations.len());
    for location in &body.locations {
        locations.push(parse_path_id("locations", location, LocationId::parse)?);
    }
    command(
        &state,
        tenant,
        actor,
        Command::Ledger(LedgerCommand::SetLocationPriority { locations }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
