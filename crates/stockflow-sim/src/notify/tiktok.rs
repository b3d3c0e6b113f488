//! TikTok Shop order status change webhooks (type 1):
//!
//! ```json
//! {"type": 1, "tts_notification_id": "7327112393057371910", "shop_id": "7494049642642441621",
//!  "timestamp": 1644412885,
//!  "data": {"order_id": "576486316948490001", "order_status": "UNPAID",
//!           "is_on_hold_order": false, "update_time": 1644412885}}
//! ```
//!
//! `Authorization: <hex HMAC-SHA256(app_secret, app_key + raw body)>`. The webhook carries no
//! line items: a receiver reads them with Get Order Detail (`GET /order/202309/orders?ids=`),
//! which the TikTok sandbox serves. Webhook statuses: `UNPAID`, `AWAITING_SHIPMENT`,
//! `IN_TRANSIT`, `CANCEL` (Get Order Detail says `CANCELLED`).

use axum::body::Bytes;
use serde_json::json;

use super::hmac_sha256;
use crate::delivery::Notification;

pub const ORDER_STATUS_CHANGE: u64 = 1;

#[derive(Clone, Debug)]
pub struct TikTokWebhooks {
    pub app_key: String,
    pub app_secret: String,
    pub shop_id: String,
}

impl TikTokWebhooks {
    /// The order status webhook, notification number `number` (unique per app).
    pub fn notification(
        &self,
        order_id: &str,
        order_status: &str,
        update_time_s: i64,
        number: u64,
    ) -> Notification {
        let body = json!({
            "type": ORDER_STATUS_CHANGE,
            "tts_notification_id": (7_327_112_393_057_000_000_u64 + number).to_string(),
            "shop_id": self.shop_id,
            "timestamp": update_time_s,
            "data": {
                "order_id": order_id,
                "order_status": order_status,
                "is_on_hold_order": false,
                "update_time": update_time_s,
            },
        });
        let body = serde_json::to_vec(&body).expect("JSON serialises");
        let authorization = signature(&self.app_key, &self.app_secret, &body);
        Notification {
            topic: format!("ORDER_STATUS_CHANGE:{order_status}"),
            subject: order_id.to_owned(),
            headers: vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("Authorization".to_owned(), authorization),
            ],
            body: Bytes::from(body),
        }
    }
}

/// The `Authorization` value of a webhook body.
pub fn signature(app_key: &str, app_secret: &str, body: &[u8]) -> String {
    hex::encode(hmac_sha256(app_secret, &[app_key.as_bytes(), body]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_signs_app_key_and_body() {
        let hooks = TikTokWebhooks {
            app_key: "key".into(),
            app_secret: "secret".into(),
            shop_id: "7494049642642441621".into(),
        };
        let n = hooks.notification("576486316948490001", "UNPAID", 1_644_412_885, 1);
        let body: serde_json::Value = serde_json::from_slice(&n.body).unwrap();
        assert_eq!(body["type"], 1);
        assert_eq!(body["data"]["order_status"], "UNPAID");
        let mut signed = b"key".to_vec();
        signed.extend_from_slice(&n.body);
        let expected = hex::encode(hmac_sha256("secret", &[&signed]));
        assert!(n.headers.contains(&("Authorization".to_owned(), expected)));
    }
}
