//! Reads of channel orders that the inbound side needs. TikTok Shop's order status webhook names
//! the order and its new status but carries no line items: the lines come from Get Order Detail
//! (`GET /order/202309/orders?ids=...`, at most 50 ids), signed like every Partner API call
//! (the body is empty, `ids` is among the signed query parameters).
//!
//! The answer's `data.orders[]` has `id`, `status` and `line_items[]`; TikTok lists one line
//! item per unit (two of a SKU are two line items), each with `sku_id` and `seller_sku`. A
//! `quantity` on a line item, where a payload has one, is honoured.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;

use crate::adapter::{AdapterError, Failure, FailureKind};
use crate::config::{Secret, TiktokConfig};
use crate::http;
use crate::pacing::Gcra;
use crate::tiktok::sign;

/// TikTok's most order ids per Get Order Detail call.
pub const TIKTOK_ORDER_IDS_PER_CALL_MAX: usize = 50;
const ORDER_DETAIL_PATH: &str = "/order/202309/orders";

/// One order as the channel describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelOrder {
    pub order_id: String,
    /// The channel's own status word (`UNPAID`, `AWAITING_SHIPMENT`, `CANCELLED`, ...).
    pub status: String,
    /// One entry per SKU, units summed, in the order the SKU first appears.
    pub lines: Vec<ChannelOrderLine>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelOrderLine {
    /// The merchant's SKU (TikTok's `seller_sku`), when the line has one.
    pub seller_sku: Option<String>,
    /// The channel's own SKU id.
    pub sku_id: Option<String>,
    pub quantity: i64,
}

/// Get Order Detail for one TikTok shop.
pub struct TiktokOrders {
    client: reqwest::Client,
    base_url: String,
    app_key: String,
    app_secret: Secret,
    token: Secret,
    shop_cipher: String,
    body_max: usize,
    rate: Gcra,
}

impl std::fmt::Debug for TiktokOrders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiktokOrders")
            .field("base_url", &self.base_url)
            .field("app_key", &self.app_key)
            .field("app_secret", &self.app_secret)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl TiktokOrders {
    pub fn new(config: &TiktokConfig) -> Result<Self, AdapterError> {
        Ok(Self {
            client: http::client(&config.http)?,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            app_key: config.app_key.clone(),
            app_secret: config.app_secret.clone(),
            token: config.access_token.clone(),
            shop_cipher: config.shop_cipher.clone(),
            body_max: config.http.body_bytes_max,
            rate: Gcra::new(
                config.rate.per_second,
                config.rate.burst,
                Duration::from_millis(config.rate.margin_ms),
            ),
        })
    }

    /// The orders with these ids that the shop knows (unknown ids are left out).
    pub async fn order_detail(&self, order_ids: &[String]) -> Result<Vec<ChannelOrder>, Failure> {
        assert!(
            (1..=TIKTOK_ORDER_IDS_PER_CALL_MAX).contains(&order_ids.len()),
            "1 to {TIKTOK_ORDER_IDS_PER_CALL_MAX} order ids per call"
        );
        self.rate.acquire().await;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut query = vec![
            ("app_key".to_owned(), self.app_key.clone()),
            ("ids".to_owned(), order_ids.join(",")),
            ("shop_cipher".to_owned(), self.shop_cipher.clone()),
            ("timestamp".to_owned(), timestamp.to_string()),
        ];
        let signature = sign(self.app_secret.expose(), ORDER_DETAIL_PATH, &query, b"");
        query.push(("sign".to_owned(), signature));
        let mut url = reqwest::Url::parse(&format!("{}{ORDER_DETAIL_PATH}", self.base_url))
            .map_err(|e| Failure::new(FailureKind::Rejected, "invalid_url", e.to_string()))?;
        url.query_pairs_mut().extend_pairs(query);
        let request = self
            .client
            .get(url)
            .header("x-tts-access-token", self.token.expose());
        let answer = http::send(request, self.body_max).await?;
        let envelope = answer.json();
        match envelope.as_ref().and_then(|e| e["code"].as_u64()) {
            Some(0) if answer.status.is_success() => {
                self.rate.succeeded();
                parse_orders(&envelope.expect("parsed")["data"])
                    .ok_or_else(|| http::invalid_answer(ORDER_DETAIL_PATH, &answer))
            }
            Some(code) => {
                let message = envelope
                    .as_ref()
                    .and_then(|e| e["message"].as_str())
                    .map(str::to_owned);
                Err(http::status_failure(
                    &answer,
                    Some(code.to_string()),
                    message,
                ))
            }
            None if answer.status.is_success() => {
                Err(http::invalid_answer(ORDER_DETAIL_PATH, &answer))
            }
            None => Err(http::status_failure(&answer, None, None)),
        }
    }
}

/// `data` of Get Order Detail; None when it is not in TikTok's format.
pub fn parse_orders(data: &Json) -> Option<Vec<ChannelOrder>> {
    let orders = data.get("orders")?.as_array()?;
    orders.iter().map(parse_order).collect()
}

fn parse_order(order: &Json) -> Option<ChannelOrder> {
    let order_id = text(order.get("id")?)?;
    let status = order
        .get("status")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut lines: Vec<ChannelOrderLine> = Vec::new();
    for item in order.get("line_items")?.as_array()? {
        let seller_sku = item
            .get("seller_sku")
            .and_then(text)
            .filter(|s| !s.is_empty());
        let sku_id = item.get("sku_id").and_then(text).filter(|s| !s.is_empty());
        let quantity = match item.get("quantity") {
            None | Some(Json::Null) => 1,
            Some(quantity) => quantity.as_i64().filter(|q| *q > 0)?,
        };
        match lines
            .iter_mut()
            .find(|line| line.seller_sku == seller_sku && line.sku_id == sku_id)
        {
            Some(line) => line.quantity += quantity,
            None => lines.push(ChannelOrderLine {
                seller_sku,
                sku_id,
                quantity,
            }),
        }
    }
    Some(ChannelOrder {
        order_id,
        status,
        lines,
    })
}

/// A string, or a number written as one (ids are strings in 202309, numbers in older payloads).
fn text(value: &Json) -> Option<String> {
    match value {
        Json::String(text) => Some(text.clone()),
        Json::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_line_item_per_unit_sums_per_sku() {
        let data = json!({"orders": [{"id": "576461413038785752", "status": "AWAITING_SHIPMENT",
        "line_items": [
            {"id": "1", "sku_id": "1730000000000000001", "seller_sku": "SKU-1"},
            {"id": "2", "sku_id": "1730000000000000001", "seller_sku": "SKU-1"},
            {"id": "3", "sku_id": "1730000000000000002", "seller_sku": "SKU-2", "quantity": 3}
        ]}]});
        let orders = parse_orders(&data).unwrap();
        assert_eq!(
            orders,
            vec![ChannelOrder {
                order_id: "576461413038785752".into(),
                status: "AWAITING_SHIPMENT".into(),
                lines: vec![
                    ChannelOrderLine {
                        seller_sku: Some("SKU-1".into()),
                        sku_id: Some("1730000000000000001".into()),
                        quantity: 2
                    },
                    ChannelOrderLine {
                        seller_sku: Some("SKU-2".into()),
                        sku_id: Some("1730000000000000002".into()),
                        quantity: 3
                    },
                ],
            }]
        );
    }

    #[test]
    fn an_answer_not_in_the_format_is_none() {
        assert_eq!(parse_orders(&json!({"order_list": []})), None);
        assert_eq!(
            parse_orders(&json!({"orders": [{"id": "1", "line_items": [{"quantity": 0}]}]})),
            None
        );
        assert_eq!(parse_orders(&json!({"orders": []})), Some(Vec::new()));
    }
}
