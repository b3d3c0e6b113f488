//! `POST /product/202309/products/{product_id}/inventory/update` (absolute quantities per
//! warehouse; a SKU stocked in several warehouses must list every one; nothing is half-applied)
//! and `POST /product/202309/inventory/search` (quantities per SKU per warehouse).

use std::collections::HashSet;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{Inner, Product, Reply, Shared, Sku};
use crate::catalogue::TIKTOK_SKUS_PER_PRODUCT_MAX;
use crate::recorder::{Cause, ViolationKind};
use crate::server::with_held_faults;

const UPDATE: &str = "updateInventory";
const SEARCH: &str = "searchInventory";
/// Invalid input parameters.
const CODE_INVALID_PARAMETER: u64 = 12052910;
const CODE_PRODUCT_NOT_IN_SHOP: u64 = 12052048;
const CODE_TOO_MANY_SKUS: u64 = 12052050;
const CODE_DUPLICATE_SKU: u64 = 12052553;
const CODE_UNKNOWN_SKU: u64 = 12052556;
const CODE_NO_WAREHOUSE: u64 = 12019022;
const CODE_UNKNOWN_WAREHOUSE: u64 = 12052097;
const CODE_INVALID_STOCK: u64 = 12019024;
/// The largest stock count TikTok accepts.
const STOCK_MAX: i64 = 99_999;

#[derive(Debug, Deserialize)]
struct UpdateBody {
    skus: Vec<SkuUpdate>,
}

#[derive(Debug, Deserialize)]
struct SkuUpdate {
    id: String,
    #[serde(default)]
    inventory: Vec<WarehouseQuantity>,
}

#[derive(Debug, Deserialize)]
struct WarehouseQuantity {
    /// May be left out only when the SKU is stocked in one warehouse.
    #[serde(default)]
    warehouse_id: Option<String>,
    quantity: i64,
}

pub async fn update(
    State(state): State<Shared>,
    Path(product_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let reply = match state.gateway(UPDATE, &uri, &headers, body).await {
        Err(reply) => reply,
        Ok(admitted) => match serde_json::from_slice::<UpdateBody>(&admitted.body) {
            Err(error) => Reply::refused(
                CODE_INVALID_PARAMETER,
                format!("Invalid request body: {error}"),
            ),
            Ok(request) => {
                with_held_faults(admitted.draw, || {
                    apply_update(&state, &product_id, &request)
                })
                .await
            }
        },
    };
    state.finish(UPDATE, reply)
}

fn apply_update(state: &Shared, product_id: &str, request: &UpdateBody) -> Reply {
    let mut inner = state.inner.lock().unwrap();
    let Some(&product) = inner.product_index.get(product_id) else {
        return Reply::refused(
            CODE_PRODUCT_NOT_IN_SHOP,
            format!("Product {product_id} does not belong to this shop."),
        );
    };
    if request.skus.is_empty() {
        return Reply::refused(CODE_INVALID_PARAMETER, "skus must not be empty.");
    }
    if request.skus.len() > TIKTOK_SKUS_PER_PRODUCT_MAX {
        let detail = format!(
            "{} SKUs above {TIKTOK_SKUS_PER_PRODUCT_MAX}",
            request.skus.len()
        );
        state
            .core
            .recorder
            .record_violation(UPDATE, ViolationKind::LimitExceeded, detail);
        return Reply::refused(
            CODE_TOO_MANY_SKUS,
            format!("At most {TIKTOK_SKUS_PER_PRODUCT_MAX} SKUs per product."),
        );
    }
    let plan = match plan_update(
        &inner.products[product],
        request,
        state.config.missing_warehouse_code,
    ) {
        Ok(plan) => plan,
        Err(reply) => return reply,
    };
    for &(sku, warehouse, quantity) in &plan {
        inner.products[product].skus[sku].stock[warehouse].available = quantity;
        let cause = Cause::Api {
            operation: UPDATE.to_owned(),
            reference: product_id.to_owned(),
        };
        state.record(&inner, product, sku, warehouse, cause);
    }
    Reply::success(json!({}))
}

/// Every (sku, warehouse, quantity) to set, or the refusal of the whole call.
fn plan_update(
    product: &Product,
    request: &UpdateBody,
    missing_code: u64,
) -> Result<Vec<(usize, usize, i64)>, Reply> {
    let mut seen = HashSet::new();
    let mut plan = Vec::new();
    for update in &request.skus {
        if !seen.insert(update.id.as_str()) {
            return Err(Reply::refused(
                CODE_DUPLICATE_SKU,
                format!("Sku id duplicate: {}.", update.id),
            ));
        }
        let Some(index) = product.skus.iter().position(|sku| sku.id == update.id) else {
            return Err(Reply::refused(
                CODE_UNKNOWN_SKU,
                format!(
                    "The SKU id {} does not exist in product {}.",
                    update.id, product.id
                ),
            ));
        };
        plan.extend(plan_sku(&product.skus[index], index, update, missing_code)?);
    }
    Ok(plan)
}

fn plan_sku(
    sku: &Sku,
    index: usize,
    update: &SkuUpdate,
    missing_code: u64,
) -> Result<Vec<(usize, usize, i64)>, Reply> {
    if update.inventory.is_empty() {
        return Err(Reply::refused(
            CODE_NO_WAREHOUSE,
            format!("SKU {} must contain a valid warehouse.", sku.id),
        ));
    }
    let every_warehouse = || {
        let message = format!(
            "SKU {} is stocked in {} warehouses; the update must list every one.",
            sku.id,
            sku.stock.len()
        );
        Reply::refused(missing_code, message)
    };
    let mut listed = HashSet::new();
    let mut plan = Vec::with_capacity(update.inventory.len());
    for entry in &update.inventory {
        let warehouse_id = match &entry.warehouse_id {
            Some(id) => id.as_str(),
            None if sku.stock.len() == 1 => sku.stock[0].warehouse_id.as_str(),
            None => return Err(every_warehouse()),
        };
        let Some(warehouse) = sku
            .stock
            .iter()
            .position(|stock| stock.warehouse_id == warehouse_id)
        else {
            return Err(Reply::refused(
                CODE_UNKNOWN_WAREHOUSE,
                format!(
                    "The warehouse {warehouse_id} does not exist for SKU {}.",
                    sku.id
                ),
            ));
        };
        if !listed.insert(warehouse) {
            return Err(Reply::refused(
                CODE_INVALID_PARAMETER,
                format!(
                    "Warehouse {warehouse_id} is listed twice for SKU {}.",
                    sku.id
                ),
            ));
        }
        if !(0..=STOCK_MAX).contains(&entry.quantity) {
            let message = format!(
                "The stock count {} of SKU {} is invalid (0 to {STOCK_MAX}).",
                entry.quantity, sku.id
            );
            return Err(Reply::refused(CODE_INVALID_STOCK, message));
        }
        plan.push((index, warehouse, entry.quantity));
    }
    if listed.len() != sku.stock.len() {
        return Err(every_warehouse());
    }
    Ok(plan)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    #[serde(default)]
    sku_ids: Option<Vec<String>>,
    #[serde(default)]
    product_ids: Option<Vec<String>>,
}

pub async fn search(
    State(state): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let reply = match state.gateway(SEARCH, &uri, &headers, body).await {
        Err(reply) => reply,
        Ok(admitted) => match serde_json::from_slice::<SearchBody>(&admitted.body) {
            Err(error) => Reply::refused(
                CODE_INVALID_PARAMETER,
                format!("Invalid request body: {error}"),
            ),
            Ok(request) => with_held_faults(admitted.draw, || run_search(&state, &request)).await,
        },
    };
    state.finish(SEARCH, reply)
}

fn run_search(state: &Shared, request: &SearchBody) -> Reply {
    let maximum = state.config.search_ids_max;
    let inner = state.inner.lock().unwrap();
    let found: Vec<(usize, Vec<usize>)> = match (&request.sku_ids, &request.product_ids) {
        (Some(ids), None) if !ids.is_empty() && ids.len() <= maximum => by_sku_ids(&inner, ids),
        (None, Some(ids)) if !ids.is_empty() && ids.len() <= maximum => ids
            .iter()
            .filter_map(|id| inner.product_index.get(id))
            .map(|&product| (product, (0..inner.products[product].skus.len()).collect()))
            .collect(),
        _ => {
            let message = format!("Give either sku_ids or product_ids, with 1 to {maximum} ids.");
            return Reply::refused(CODE_INVALID_PARAMETER, message);
        }
    };
    let inventory: Vec<Json> = found
        .into_iter()
        .map(|(product, skus)| {
            let product = &inner.products[product];
            json!({"product_id": product.id, "skus": skus.iter().map(|&s| sku_json(&product.skus[s])).collect::<Vec<_>>()})
        })
        .collect();
    Reply::success(json!({"inventory": inventory}))
}

/// Known SKU ids grouped by product, in the order the products first appear.
fn by_sku_ids(inner: &Inner, ids: &[String]) -> Vec<(usize, Vec<usize>)> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for &(product, sku) in ids.iter().filter_map(|id| inner.sku_index.get(id)) {
        match groups.iter_mut().find(|(p, _)| *p == product) {
            Some((_, skus)) if !skus.contains(&sku) => skus.push(sku),
            Some(_) => {}
            None => groups.push((product, vec![sku])),
        }
    }
    groups
}

fn sku_json(sku: &Sku) -> Json {
    let warehouses: Vec<Json> = sku
        .stock
        .iter()
        .map(|stock| json!({"warehouse_id": stock.warehouse_id, "available_quantity": stock.available, "committed_quantity": stock.committed}))
        .collect();
    json!({
        "id": sku.id,
        "seller_sku": sku.seller_sku,
        "total_available_quantity": sku.stock.iter().map(|s| s.available).sum::<i64>(),
        "total_committed_quantity": sku.stock.iter().map(|s| s.committed).sum::<i64>(),
        "warehouse_inventory": warehouses,
    })
}
