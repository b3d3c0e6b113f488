//! Orders as TikTok Shop keeps them, and `GET /order/202309/orders?ids=<id>,<id>` (Get Order
//! Detail, signed like every call): what a real integration reads after an order status
//! webhook, since the webhook carries no line items.
//!
//! One line item per unit, as TikTok lists them: an order of two units of a SKU has two line
//! items, each with its own id, the `sku_id`, `seller_sku` and `product_id`.

use std::collections::{HashMap, VecDeque};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use serde_json::{Value as Json, json};

use super::{Reply, Shared};
use crate::server::with_held_faults;

const OPERATION: &str = "getOrderDetail";
/// The most ids one Get Order Detail takes.
pub const ORDER_IDS_PER_CALL_MAX: usize = 50;
/// The most orders whose detail is kept; the oldest are forgotten first.
pub const ORDER_DETAILS_KEPT_MAX: usize = 100_000;
const CODE_INVALID_PARAMETER: u64 = 36009004;

/// An order's status as Get Order Detail reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    Unpaid,
    AwaitingShipment,
    InTransit,
    Cancelled,
}

impl OrderStatus {
    /// The name in Get Order Detail.
    pub fn detail_name(self) -> &'static str {
        match self {
            OrderStatus::Unpaid => "UNPAID",
            OrderStatus::AwaitingShipment => "AWAITING_SHIPMENT",
            OrderStatus::InTransit => "IN_TRANSIT",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// The name in the order status webhook (a cancellation is `CANCEL` there).
    pub fn webhook_name(self) -> &'static str {
        match self {
            OrderStatus::Cancelled => "CANCEL",
            other => other.detail_name(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct OrderDetail {
    pub id: String,
    pub status: OrderStatus,
    pub create_time: i64,
    pub update_time: i64,
    pub paid_time: Option<i64>,
    pub warehouse_id: String,
    pub product_id: String,
    pub sku_id: String,
    pub seller_sku: String,
    pub units: i64,
    /// The first line item's number; the others follow.
    pub first_line_item: u64,
}

impl OrderDetail {
    fn json(&self) -> Json {
        let line_items: Vec<Json> = (0..self.units as u64)
            .map(|n| {
                json!({
                    "id": (self.first_line_item + n).to_string(),
                    "sku_id": self.sku_id,
                    "seller_sku": self.seller_sku,
                    "product_id": self.product_id,
                    "product_name": self.seller_sku,
                    "sku_name": "Default",
                    "display_status": self.status.detail_name(),
                    "sale_price": "49.99",
                    "original_price": "49.99",
                    "currency": "USD",
                    "is_gift": false,
                })
            })
            .collect();
        json!({
            "id": self.id,
            "status": self.status.detail_name(),
            "create_time": self.create_time,
            "update_time": self.update_time,
            "paid_time": self.paid_time,
            "warehouse_id": self.warehouse_id,
            "fulfillment_type": "FULFILLMENT_BY_SELLER",
            "shipping_type": "SELLER",
            "is_on_hold_order": false,
            "line_items": line_items,
        })
    }
}

/// Order details by id, bounded.
#[derive(Debug, Default)]
pub struct OrderBook {
    details: HashMap<String, OrderDetail>,
    order: VecDeque<String>,
    line_items: u64,
}

impl OrderBook {
    pub fn insert(&mut self, mut detail: OrderDetail) {
        if self.order.len() >= ORDER_DETAILS_KEPT_MAX
            && let Some(oldest) = self.order.pop_front()
        {
            self.details.remove(&oldest);
        }
        detail.first_line_item = 5_770_000_000_000_000_000 + self.line_items;
        self.line_items += detail.units as u64;
        self.order.push_back(detail.id.clone());
        self.details.insert(detail.id.clone(), detail);
    }

    pub fn get(&self, id: &str) -> Option<&OrderDetail> {
        self.details.get(id)
    }

    /// Moves an order to `status` at `now` (seconds); false for an unknown order.
    pub fn set_status(&mut self, id: &str, status: OrderStatus, now: i64) -> bool {
        let Some(detail) = self.details.get_mut(id) else {
            return false;
        };
        detail.status = status;
        detail.update_time = now;
        if status == OrderStatus::AwaitingShipment {
            detail.paid_time = Some(now);
        }
        true
    }
}

pub(super) async fn get_order_detail(
    State(state): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let reply = match state.gateway(OPERATION, &uri, &headers, body).await {
        Err(reply) => reply,
        Ok(admitted) => {
            let ids = requested_ids(&uri);
            with_held_faults(admitted.draw, || detail_reply(&state, ids)).await
        }
    };
    state.finish(OPERATION, reply)
}

fn requested_ids(uri: &Uri) -> Option<Vec<String>> {
    let query = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri).ok()?;
    let ids = query.0.into_iter().find(|(key, _)| key == "ids")?.1;
    let ids: Vec<String> = ids
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    (!ids.is_empty()).then_some(ids)
}

fn detail_reply(state: &Shared, ids: Option<Vec<String>>) -> Reply {
    let Some(ids) = ids else {
        return Reply::invalid("Invalid parameter. `ids` is required.");
    };
    if ids.len() > ORDER_IDS_PER_CALL_MAX {
        return Reply::refused(
            CODE_INVALID_PARAMETER,
            format!("Invalid parameter. At most {ORDER_IDS_PER_CALL_MAX} order ids."),
        );
    }
    let inner = state.inner.lock().unwrap();
    let orders: Vec<Json> = ids
        .iter()
        .filter_map(|id| inner.order_book.get(id))
        .map(OrderDetail::json)
        .collect();
    Reply::success(json!({ "orders": orders }))
}
