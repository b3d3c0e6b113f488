//! Shopify: Admin GraphQL `inventorySetQuantities` (name `available`), with
//! `changeFromQuantity` on every entry and `@idempotent(key:)`.
//!
//! - Compare-and-set: each entry carries the value the engine believes Shopify shows; when it is
//!   unknown the levels are read first. On `CHANGE_FROM_QUANTITY_STALE` the levels are read
//!   again, reported (the engine decides whether it is drift or an order it was told about), and
//!   the set is retried with the values read, up to [`CAS_ROUNDS_MAX`] rounds in one call.
//! - Idempotency: a new key per new input; the same key when the same input is sent again after
//!   an answer that left its fate unknown (timeout, 5xx), so a retry of a call that did apply is
//!   answered with the original result instead of failing its compare-and-set.
//! - Pacing: a local cost bucket corrected by every answer's `extensions.cost.throttleStatus`;
//!   `THROTTLED` is handled whether it comes with HTTP 200 or 429 (Retry-After honoured).
//! - Items: SKU -> inventory item gid from configuration, else looked up with
//!   `inventoryItems(query: "sku:...")` and cached; locations from configuration.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use futures::future::BoxFuture;
use serde_json::{Value as Json, json};
use stockflow_core::ids::{LocationId, Sku};
use tokio::time::Instant;

use crate::adapter::{
    AdapterError, Batch, CallReport, ChannelAdapter, Entry, EntryOutcome, Failure, FailureKind,
    Observation, Placement, ReadValue, SyncKey,
};
use crate::config::{HttpSettings, Secret, ShopifyConfig};
use crate::http::{self, Answer};
use crate::pacing::{CostBucket, ThrottleStatus};

/// What one `inventorySetQuantities` costs.
const MUTATION_COST: f64 = 10.0;
/// The most a single query may cost.
const QUERY_COST_MAX: u64 = 1_000;
/// Compare-and-set repairs within one call before the entries go back to the engine.
pub const CAS_ROUNDS_MAX: usize = 3;
/// Inputs remembered with their idempotency key while their fate is unknown.
const UNCERTAIN_MAX: usize = 1_024;

const SET_MUTATION: &str =
    "mutation SetAvailable($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}";

/// Adapter for one Shopify shop.
pub struct ShopifyAdapter {
    client: reqwest::Client,
    url: String,
    token: Secret,
    reason: String,
    body_max: usize,
    locations: HashMap<LocationId, String>,
    /// SKU -> inventory item gid (configured, or found by lookup).
    items: Mutex<HashMap<Sku, String>>,
    bucket: CostBucket,
    /// Inputs whose answer was lost, with their idempotency key (oldest first).
    uncertain_keys: Mutex<VecDeque<(String, String)>>,
    /// Values sent in calls whose answer was lost: if a read finds one, it is ours, not drift.
    uncertain_values: Mutex<HashMap<SyncKey, i64>>,
}

impl std::fmt::Debug for ShopifyAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifyAdapter")
            .field("url", &self.url)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// A resolved entry: the gids it is sent with.
struct Target {
    index: usize,
    item: String,
    location: String,
}

impl ShopifyAdapter {
    pub fn new(config: &ShopifyConfig) -> Result<Self, AdapterError> {
        Ok(Self {
            client: http::client(&config.http)?,
            url: format!(
                "{}/admin/api/{}/graphql.json",
                config.base_url.trim_end_matches('/'),
                config.api_version
            ),
            token: config.access_token.clone(),
            reason: config.reason.clone(),
            body_max: HttpSettings::clone(&config.http).body_bytes_max,
            locations: config.locations.clone().into_iter().collect(),
            items: Mutex::new(config.items.clone().into_iter().collect()),
            bucket: CostBucket::new(
                config.cost.maximum,
                config.cost.restore_per_second,
                std::time::Duration::from_millis(config.cost.throttle_wait_min_ms),
            ),
            uncertain_keys: Mutex::new(VecDeque::new()),
            uncertain_values: Mutex::new(HashMap::new()),
        })
    }

    fn location_gid(&self, key: &SyncKey) -> Result<&String, Failure> {
        let location = key.location.as_ref().ok_or_else(|| {
            Failure::new(
                FailureKind::Rejected,
                "location_required",
                "Shopify is told per location; the change named none",
            )
        })?;
        self.locations.get(location).ok_or_else(|| {
            Failure::new(
                FailureKind::Rejected,
                "unmapped_location",
                format!("location {location} has no Shopify location gid in the configuration"),
            )
        })
    }

    /// One GraphQL call: paced, answered, its cost status fed back to the bucket.
    async fn graphql(
        &self,
        query: &str,
        variables: Json,
        cost: f64,
        acquired: bool,
    ) -> Result<Json, Failure> {
        if !acquired {
            self.bucket.acquire(cost).await;
        }
        let request = self
            .client
            .post(&self.url)
            .header("X-Shopify-Access-Token", self.token.expose())
            .json(&json!({"query": query, "variables": variables}));
        let answer = http::send(request, self.body_max).await?;
        let body = answer.json();
        let status = body.as_ref().and_then(throttle_status);
        if is_throttled(&answer, body.as_ref()) {
            let retry_after = answer.retry_after();
            self.bucket.throttled(status, cost, retry_after);
            return Err(
                Failure::new(FailureKind::Throttled, "THROTTLED", "Throttled")
                    .with_retry_after(retry_after),
            );
        }
        if let Some(status) = status {
            self.bucket.observe(status);
        }
        if !answer.status.is_success() {
            let code = body.as_ref().and_then(first_error_code);
            return Err(http::status_failure(&answer, code, None));
        }
        let body = body.ok_or_else(|| http::invalid_answer("graphql", &answer))?;
        if let Some(code) = first_error_code(&body) {
            let message = body["errors"][0]["message"].as_str().unwrap_or_default();
            return Err(Failure::new(FailureKind::Rejected, code, message));
        }
        if !body["data"].is_object() {
            return Err(http::invalid_answer("graphql", &answer));
        }
        Ok(body)
    }

    /// Finds item gids for SKUs not known yet; returns the levels read on the way.
    async fn look_up(&self, skus: &[Sku]) -> Result<Vec<ReadValue>, Failure> {
        let location_count = self.locations.len().clamp(1, 250);
        let node_cost = 3 + 3 * location_count as u64;
        let per_query = (((QUERY_COST_MAX - 2) / node_cost) as usize).clamp(1, 60);
        let per_chunk = per_query.saturating_sub(5).max(1);
        let mut found = Vec::new();
        for chunk in skus.chunks(per_chunk) {
            let search = chunk
                .iter()
                .map(|sku| format!("sku:'{}'", sku.as_str().replace('\'', "")))
                .collect::<Vec<_>>()
                .join(" OR ");
            // A search may match more items than asked for (other SKUs sharing a prefix): ask
            // for a few more, and pay only for what is asked.
            let first = (chunk.len() + 5).min(per_query);
            let query = format!(
                "query FindItems($search: String!) {{ inventoryItems(first: {first}, query: $search) {{ nodes {{ id sku inventoryLevels(first: {location_count}) {{ nodes {{ location {{ id }} quantities(names: [\"available\"]) {{ name quantity }} }} }} }} }} }}"
            );
            let cost = 2.0 + (first as u64 * node_cost) as f64;
            let body = self
                .graphql(&query, json!({"search": search}), cost, false)
                .await?;
            let nodes = body["data"]["inventoryItems"]["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for node in &nodes {
                let (Some(id), Some(sku)) = (node["id"].as_str(), node["sku"].as_str()) else {
                    continue;
                };
                let Some(sku) = chunk.iter().find(|s| s.as_str() == sku) else {
                    continue;
                };
                self.items
                    .lock()
                    .unwrap()
                    .insert(sku.clone(), id.to_owned());
                found.extend(self.levels_of(sku, node));
            }
        }
        Ok(found)
    }

    /// The `available` of every mapped location in an InventoryItem node.
    fn levels_of(&self, sku: &Sku, node: &Json) -> Vec<ReadValue> {
        let levels = node["inventoryLevels"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut values = Vec::new();
        for level in levels {
            let Some(gid) = level["location"]["id"].as_str() else {
                continue;
            };
            let quantity = level["quantities"]
                .as_array()
                .and_then(|q| q.iter().find(|q| q["name"] == "available"))
                .and_then(|q| q["quantity"].as_i64());
            for (location, mapped) in &self.locations {
                if mapped == gid {
                    values.push(ReadValue {
                        key: SyncKey::new(sku.clone(), Some(location.clone())),
                        quantity,
                    });
                }
            }
        }
        values
    }

    /// Reads the levels of items with known gids.
    async fn read_known(&self, skus: &[(Sku, String)]) -> Result<Vec<ReadValue>, Failure> {
        let location_count = self.locations.len().clamp(1, 250);
        let node_cost = 3 + 3 * location_count as u64;
        let per_query = ((QUERY_COST_MAX / node_cost) as usize).clamp(1, 250);
        let mut values = Vec::new();
        for chunk in skus.chunks(per_query) {
            let query = format!(
                "query ReadLevels($ids: [ID!]!) {{ nodes(ids: $ids) {{ ... on InventoryItem {{ id sku inventoryLevels(first: {location_count}) {{ nodes {{ location {{ id }} quantities(names: [\"available\"]) {{ name quantity }} }} }} }} }} }}"
            );
            let ids: Vec<&str> = chunk.iter().map(|(_, gid)| gid.as_str()).collect();
            let cost = (chunk.len() as u64 * node_cost) as f64;
            let body = self
                .graphql(&query, json!({"ids": ids}), cost, false)
                .await?;
            let nodes = body["data"]["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for ((sku, _), node) in chunk.iter().zip(nodes) {
                if node.is_null() {
                    continue;
                }
                values.extend(self.levels_of(sku, &node));
            }
        }
        Ok(values)
    }

    /// Reads what Shopify shows for these keys (looking items up when needed).
    async fn read_keys(&self, keys: &[SyncKey]) -> Result<Vec<ReadValue>, Failure> {
        let mut skus: Vec<Sku> = keys.iter().map(|k| k.sku.clone()).collect();
        skus.sort();
        skus.dedup();
        let (known, unknown): (Vec<Sku>, Vec<Sku>) = {
            let items = self.items.lock().unwrap();
            skus.into_iter().partition(|sku| items.contains_key(sku))
        };
        let known: Vec<(Sku, String)> = {
            let items = self.items.lock().unwrap();
            known
                .into_iter()
                .map(|sku| {
                    let gid = items[&sku].clone();
                    (sku, gid)
                })
                .collect()
        };
        let mut values = self.read_known(&known).await?;
        if !unknown.is_empty() {
            values.extend(self.look_up(&unknown).await?);
        }
        Ok(keys
            .iter()
            .map(|key| ReadValue {
                key: key.clone(),
                quantity: values
                    .iter()
                    .find(|v| v.key == *key)
                    .and_then(|v| v.quantity),
            })
            .collect())
    }

    /// Read values as observations against what was believed; a value we sent in a call whose
    /// answer was lost is ours, not drift.
    fn observe(&self, entries: &mut [Entry], values: &[ReadValue], report: &mut CallReport) {
        let uncertain = self.uncertain_values.lock().unwrap();
        for entry in entries.iter_mut() {
            let Some(found) = values
                .iter()
                .find(|v| v.key == entry.key)
                .and_then(|v| v.quantity)
            else {
                continue;
            };
            let believed = if uncertain.get(&entry.key) == Some(&found) {
                Some(found)
            } else {
                entry.believed
            };
            if believed != Some(found) || entry.believed.is_none() {
                report.observations.push(Observation {
                    key: entry.key.clone(),
                    believed,
                    found,
                });
            }
            entry.believed = Some(found);
        }
    }

    fn idempotency_key(&self, fingerprint: &str) -> String {
        let keys = self.uncertain_keys.lock().unwrap();
        keys.iter()
            .find(|(f, _)| f == fingerprint)
            .map(|(_, key)| key.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    }

    fn remember_uncertain(
        &self,
        fingerprint: String,
        key: String,
        entries: &[(usize, i64, SyncKey)],
    ) {
        let mut keys = self.uncertain_keys.lock().unwrap();
        if !keys.iter().any(|(f, _)| *f == fingerprint) {
            if keys.len() == UNCERTAIN_MAX {
                keys.pop_front();
            }
            keys.push_back((fingerprint, key));
        }
        let mut values = self.uncertain_values.lock().unwrap();
        if values.len() >= UNCERTAIN_MAX {
            values.clear();
        }
        for (_, quantity, sync_key) in entries {
            values.insert(sync_key.clone(), *quantity);
        }
    }

    fn forget_uncertain(&self, fingerprint: &str, entries: &[(usize, i64, SyncKey)]) {
        self.uncertain_keys
            .lock()
            .unwrap()
            .retain(|(f, _)| f != fingerprint);
        let mut values = self.uncertain_values.lock().unwrap();
        for (_, _, key) in entries {
            values.remove(key);
        }
    }

    async fn send_batch(&self, batch: Batch) -> CallReport {
        let mut report = CallReport {
            outcomes: vec![
                EntryOutcome::Failed(Failure::new(
                    FailureKind::Transient,
                    "not_sent",
                    "not sent"
                ));
                batch.entries.len()
            ],
            sent_at: Some(Instant::now()),
            ..CallReport::default()
        };
        let mut entries = batch.entries;
        let mut open: Vec<usize> = (0..entries.len()).collect();
        // The engine took one mutation's worth of points; reads take their own.
        let mut acquired = true;
        if let Err(failure) = self.prepare(&mut entries, &mut open, &mut report).await {
            report.calls.push(http::label(Some(&failure)));
            for index in open {
                report.outcomes[index] = EntryOutcome::Failed(failure.clone());
            }
            return report;
        }
        for _round in 0..=CAS_ROUNDS_MAX {
            if open.is_empty() {
                break;
            }
            let result = self.set_round(&entries, &open, acquired, &mut report).await;
            acquired = false;
            match result {
                Round::Done => {
                    open.clear();
                }
                Round::Failed(failure) => {
                    for index in open.drain(..) {
                        report.outcomes[index] = EntryOutcome::Failed(failure.clone());
                    }
                }
                Round::Stale(stale) => {
                    // One stale entry fails the whole call: read the stale levels again, then
                    // set everything with the values read.
                    let keys: Vec<SyncKey> =
                        stale.iter().map(|&i| entries[i].key.clone()).collect();
                    match self.read_keys(&keys).await {
                        Ok(values) => {
                            report.calls.push("ok");
                            let mut subset: Vec<Entry> =
                                stale.iter().map(|&i| entries[i].clone()).collect();
                            self.observe(&mut subset, &values, &mut report);
                            for (&i, entry) in stale.iter().zip(subset) {
                                entries[i] = entry;
                            }
                        }
                        Err(failure) => {
                            report.calls.push(http::label(Some(&failure)));
                            for index in open.drain(..) {
                                report.outcomes[index] = EntryOutcome::Failed(failure.clone());
                            }
                        }
                    }
                }
                Round::Refused(refused) => {
                    for (index, failure) in refused {
                        report.outcomes[index] = EntryOutcome::Failed(failure);
                        open.retain(|&i| i != index);
                    }
                }
            }
        }
        for index in open {
            report.outcomes[index] = EntryOutcome::Failed(Failure::new(
                FailureKind::Conflict,
                "CHANGE_FROM_QUANTITY_STALE",
                format!("the level kept moving through {CAS_ROUNDS_MAX} re-reads"),
            ));
        }
        report
    }

    /// Resolves item gids and reads values nobody knows; entries that cannot be sent fail here.
    async fn prepare(
        &self,
        entries: &mut [Entry],
        open: &mut Vec<usize>,
        report: &mut CallReport,
    ) -> Result<(), Failure> {
        let needs_read: Vec<SyncKey> = open
            .iter()
            .map(|&i| &entries[i])
            .filter(|e| {
                e.believed.is_none() || !self.items.lock().unwrap().contains_key(&e.key.sku)
            })
            .map(|e| e.key.clone())
            .collect();
        if needs_read.is_empty() {
            return Ok(());
        }
        let values = self.read_keys(&needs_read).await?;
        report.calls.push("ok");
        self.observe(entries, &values, report);
        let items = self.items.lock().unwrap();
        open.retain(|&index| {
            let entry = &entries[index];
            let failure = if !items.contains_key(&entry.key.sku) {
                Some(Failure::new(
                    FailureKind::Rejected,
                    "unknown_sku",
                    format!("no Shopify inventory item has SKU {}", entry.key.sku),
                ))
            } else if entry.believed.is_none() {
                Some(Failure::new(
                    FailureKind::Rejected,
                    "ITEM_NOT_STOCKED_AT_LOCATION",
                    format!("{} has no inventory level at this location", entry.key),
                ))
            } else {
                None
            };
            match failure {
                Some(failure) => {
                    report.outcomes[index] = EntryOutcome::Failed(failure);
                    false
                }
                None => true,
            }
        });
        Ok(())
    }

    /// One `inventorySetQuantities` of the open entries.
    async fn set_round(
        &self,
        entries: &[Entry],
        open: &[usize],
        acquired: bool,
        report: &mut CallReport,
    ) -> Round {
        let mut targets = Vec::new();
        for &index in open {
            let entry = &entries[index];
            let item = self.items.lock().unwrap().get(&entry.key.sku).cloned();
            let location = self.location_gid(&entry.key).cloned();
            match (item, location) {
                (Some(item), Ok(location)) => targets.push(Target {
                    index,
                    item,
                    location,
                }),
                (_, Err(failure)) => return Round::Refused(vec![(index, failure)]),
                (None, _) => {
                    return Round::Refused(vec![(
                        index,
                        Failure::new(FailureKind::Rejected, "unknown_sku", "no item gid"),
                    )]);
                }
            }
        }
        let sent: Vec<(usize, i64, SyncKey)> = targets
            .iter()
            .map(|t| {
                let entry = &entries[t.index];
                (
                    t.index,
                    entry.quantity.unwrap_or(0).max(0),
                    entry.key.clone(),
                )
            })
            .collect();
        let quantities: Vec<Json> = targets
            .iter()
            .zip(&sent)
            .map(|(t, (_, quantity, _))| {
                json!({"inventoryItemId": t.item, "locationId": t.location, "quantity": quantity,
                       "changeFromQuantity": entries[t.index].believed})
            })
            .collect();
        let input = json!({"name": "available", "reason": self.reason,
                           "referenceDocumentUri": "gid://stockflow/Sync/outbound", "quantities": quantities});
        let fingerprint = input.to_string();
        let key = self.idempotency_key(&fingerprint);
        let result = self
            .graphql(
                SET_MUTATION,
                json!({"input": input, "key": key}),
                MUTATION_COST,
                acquired,
            )
            .await;
        let body = match result {
            Ok(body) => body,
            Err(failure) => {
                report.calls.push(http::label(Some(&failure)));
                if failure.kind == FailureKind::Transient {
                    // The call may have applied: the same input goes with the same key.
                    self.remember_uncertain(fingerprint, key, &sent);
                }
                return Round::Failed(failure);
            }
        };
        self.forget_uncertain(&fingerprint, &sent);
        let payload = &body["data"]["inventorySetQuantities"];
        let Some(user_errors) = payload["userErrors"].as_array() else {
            report.calls.push("invalid");
            return Round::Failed(Failure::new(
                FailureKind::Transient,
                "invalid_response",
                "inventorySetQuantities answered without userErrors",
            ));
        };
        if user_errors.is_empty() {
            report.calls.push("ok");
            for (index, quantity, _) in sent {
                report.outcomes[index] = EntryOutcome::Applied { quantity };
            }
            return Round::Done;
        }
        report.calls.push("rejected");
        classify_user_errors(user_errors, &targets)
    }
}

/// What one set round came to.
enum Round {
    Done,
    /// The whole call failed the same way for every open entry.
    Failed(Failure),
    /// Compare-and-set failed for these entries: read and try again.
    Stale(Vec<usize>),
    /// These entries were refused (the others were not applied and go again).
    Refused(Vec<(usize, Failure)>),
}

fn classify_user_errors(user_errors: &[Json], targets: &[Target]) -> Round {
    let mut stale = Vec::new();
    let mut refused = Vec::new();
    for error in user_errors {
        let code = error["code"].as_str().unwrap_or("USER_ERROR").to_owned();
        let message = error["message"].as_str().unwrap_or_default().to_owned();
        // field: ["input", "quantities", "<i>", ...]: the entry it is about.
        let position = error["field"]
            .as_array()
            .and_then(|f| f.get(2))
            .and_then(|i| {
                i.as_str()
                    .and_then(|s| s.parse::<usize>().ok())
                    .or(i.as_u64().map(|n| n as usize))
            });
        let target = position.and_then(|p| targets.get(p));
        match (code.as_str(), target) {
            ("CHANGE_FROM_QUANTITY_STALE", Some(target)) => stale.push(target.index),
            ("IDEMPOTENCY_CONCURRENT_REQUEST" | "IDEMPOTENCY_KEY_PARAMETER_MISMATCH", _) => {
                return Round::Failed(Failure::new(FailureKind::Transient, code, message));
            }
            (_, Some(target)) => {
                refused.push((
                    target.index,
                    Failure::new(FailureKind::Rejected, code, message),
                ));
            }
            (_, None) => return Round::Failed(Failure::new(FailureKind::Rejected, code, message)),
        }
    }
    if !refused.is_empty() {
        return Round::Refused(refused);
    }
    Round::Stale(stale)
}

fn throttle_status(body: &Json) -> Option<ThrottleStatus> {
    let status = &body["extensions"]["cost"]["throttleStatus"];
    Some(ThrottleStatus {
        maximum_available: status["maximumAvailable"].as_f64()?,
        currently_available: status["currentlyAvailable"].as_f64()?,
        restore_rate: status["restoreRate"].as_f64()?,
    })
}

fn first_error_code(body: &Json) -> Option<String> {
    let errors = body.get("errors")?;
    match errors {
        Json::Array(list) => list.first().map(|e| {
            e["extensions"]["code"]
                .as_str()
                .unwrap_or("GRAPHQL_ERROR")
                .to_owned()
        }),
        // `{"errors": "Not Found"}` and the like come with an HTTP error status, which names
        // the failure better.
        _ => None,
    }
}

fn is_throttled(answer: &Answer, body: Option<&Json>) -> bool {
    answer.status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || body.and_then(first_error_code).as_deref() == Some("THROTTLED")
}

impl ChannelAdapter for ShopifyAdapter {
    fn place(&self, key: &SyncKey) -> Result<Placement, Failure> {
        self.location_gid(key)?;
        Ok(Placement {
            group: String::new(),
            unit: key.to_string(),
            companions: Vec::new(),
        })
    }

    fn units_per_call(&self) -> usize {
        crate::config::SHOPIFY_QUANTITIES_PER_CALL_MAX
    }

    fn acquire(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.bucket.acquire(MUTATION_COST))
    }

    fn send(&self, batch: Batch) -> BoxFuture<'_, CallReport> {
        Box::pin(self.send_batch(batch))
    }

    fn read(&self, keys: Vec<SyncKey>) -> BoxFuture<'_, Result<Vec<ReadValue>, AdapterError>> {
        Box::pin(async move { self.read_keys(&keys).await.map_err(AdapterError::from) })
    }
}
