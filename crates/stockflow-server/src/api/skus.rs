//! SKUs: one SKU's quantities and channel availability, and a paged listing.

use super::{Tenant, parse_path_id};
use crate::app::AppState;
use crate::problem::Problem;
use crate::wire::skus::{SkuOut, SkuPageOut, SkuRowOut};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use stockflow_core::ids::Sku;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_sku))
        .routes(routes!(list_skus))
}

/// Quantities per location and in total, and per channel what it may sell, what is withheld,
/// and why.
#[utoipa::path(
    get,
    path = "/v1/skus/{sku}",
    tag = "skus",
    params(("sku" = String, Path), AsOfQuery),
    responses(
        (status = 200, body = SkuOut),
        (status = 404, description = "unknown_sku", body = Problem),
    )
)]
async fn get_sku(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(sku): Path<String>,
    Query(query): Query<AsOfQuery>,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse;
    let sku = parse_path_id("sku", &sku, Sku::parse)?;
    if let Some(as_of) = &query.as_of {
        return Ok(super::audit::sku_as_of(&state, tenant, sku, as_of)
            .await?
            .into_response());
    }
    let view = state.engine.reads().sku(&tenant, &sku).ok_or_else(|| {
        Problem::not_found(
            "unknown_sku",
            format!("no stock has ever been recorded for {sku}"),
        )
    })?;
    Ok(Json(SkuOut::from_view(&view)).into_response())
}

/// Unknown parameters are ignored here, as they were before `as_of` existed.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AsOfQuery {
    /// RFC 3339: the quantities per location as they were at this instant (from the audit
    /// trail; `channels` is empty).
    pub as_of: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The last SKU of the previous page.
    pub after: Option<String>,
    /// Only SKUs starting with this.
    pub prefix: Option<String>,
    /// 1 to 1000; default 50.
    pub limit: Option<usize>,
}

/// SKUs in name order, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/skus",
    tag = "skus",
    params(ListQuery),
    responses((status = 200, body = SkuPageOut), (status = 400, body = Problem))
)]
async fn list_skus(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(query): Query<ListQuery>,
) -> Result<Json<SkuPageOut>, Problem> {
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let reads = state.engine.reads();
    let prefix = query.prefix.unwrap_or_default();
    // Start at the prefix (or after the cursor, whichever is later) and stop past it.
    let start = match (query.after, prefix.is_empty()) {
        (Some(after), _) => Some(parse_path_id("after", &after, Sku::parse)?),
        (None, false) => {
            // The SKU just before the prefix in order: every SKU with the prefix sorts after it.
            let before = prefix_predecessor(&prefix);
            before
                .map(|b| parse_path_id("prefix", &b, Sku::parse))
                .transpose()?
        }
        (None, true) => None,
    };
    let views = reads.skus(&tenant, start.as_ref(), limit + 1);
    let mut rows: Vec<SkuRowOut> = Vec::with_capacity(limit);
    let mut more = false;
    for view in &views {
        if !view.sku.as_str().starts_with(&prefix) {
            if view.sku.as_str() > prefix.as_str() {
                break;
            }
            continue;
        }
        if rows.len() == limit {
            more = true;
            break;
        }
        rows.push(SkuRowOut::from_view(view));
    }
    let next_after = if more {
        rows.last().map(|r| r.sku.clone())
    } else {
        None
    };
    Ok(Json(SkuPageOut {
        skus: rows,
        next_after,
        total: reads.sku_count(&tenant),
    }))
}

/// A string that sorts just before every string starting with `prefix` (the prefix with its
/// last character lowered by one, or `None` when nothing sorts before it).
fn prefix_predecessor(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    let last = bytes.pop()?;
    if last <= b'!' {
        return if bytes.is_empty() {
            None
        } else {
            String::from_utf8(bytes).ok()
        };
    }
    bytes.push(last - 1);
    bytes.push(b'~');
    String::from_utf8(bytes).ok()
}
