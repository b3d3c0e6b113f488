//! Amazon `ORDER_CHANGE` notifications (payload version 1.0), as the Notifications API puts
//! them on an SQS queue or an EventBridge bus, posted by the merchant's forwarder. The forwarder
//! signs the raw body: `<header>: <prefix><hex HMAC-SHA256(secret, body)>`, by default
//! `X-Stockflow-Signature: sha256=<hex>`.
//!
//! Order statuses follow the order's life: `Pending` (placed, payment not yet authorised),
//! `Unshipped` (paid), `Shipped`, `Canceled`. Every notification carries the order's items with
//! `SellerSKU` and `Quantity`.

use axum::body::Bytes;
use serde_json::{Value as Json, json};

use super::{hmac_sha256, rfc3339_millis, uuid_from};
use crate::delivery::Notification;

/// How the notification reaches the receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Envelope {
    /// The SQS message body: the notification JSON itself.
    #[default]
    Sqs,
    /// An EventBridge event whose `detail` is the notification.
    EventBridge,
}

#[derive(Clone, Debug)]
pub struct AmazonNotifications {
    pub seller_id: String,
    pub marketplace_id: String,
    pub application_id: String,
    pub subscription_id: String,
    pub envelope: Envelope,
    /// The forwarder's signing secret.
    pub secret: String,
    pub signature_header: String,
    pub signature_prefix: String,
    pub seed: u64,
}

impl AmazonNotifications {
    pub fn new(seller_id: &str, marketplace_id: &str, secret: &str, seed: u64) -> Self {
        Self {
            seller_id: seller_id.to_owned(),
            marketplace_id: marketplace_id.to_owned(),
            application_id: "amzn1.sellerapps.app.0f1e2d3c-sandbox".into(),
            subscription_id: uuid_from(seed, u64::MAX),
            envelope: Envelope::Sqs,
            secret: secret.to_owned(),
            signature_header: "X-Stockflow-Signature".into(),
            signature_prefix: "sha256=".into(),
            seed,
        }
    }
}

/// A merchant-fulfilled order of one item.
#[derive(Clone, Debug, PartialEq)]
pub struct AmazonOrder {
    /// `3-7-7` digits.
    pub amazon_order_id: String,
    pub order_item_id: String,
    pub seller_sku: String,
    pub quantity: i64,
    pub purchase_ms: i64,
}

/// `Pending`, `Unshipped`, `Shipped` or `Canceled`, and what triggered the change.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub order_status: &'static str,
    /// `OrderStatusChange` or `BuyerRequestedChange`.
    pub change_type: &'static str,
    pub change_reason: String,
    pub at_ms: i64,
    pub buyer_requested_cancel: bool,
}

impl Change {
    pub fn status(order_status: &'static str, at_ms: i64) -> Self {
        Self {
            order_status,
            change_type: "OrderStatusChange",
            change_reason: "OrderStatusChange".into(),
            at_ms,
            buyer_requested_cancel: false,
        }
    }
}

impl AmazonNotifications {
    /// The notification JSON (what the SQS message body holds).
    pub fn notification_json(&self, order: &AmazonOrder, change: &Change, number: u64) -> Json {
        let shipped = if change.order_status == "Shipped" {
            order.quantity
        } else {
            0
        };
        let unshipped = if matches!(change.order_status, "Pending" | "Unshipped") {
            order.quantity
        } else {
            0
        };
        json!({
            "NotificationVersion": "1.0",
            "NotificationType": "ORDER_CHANGE",
            "PayloadVersion": "1.0",
            "EventTime": rfc3339_millis(change.at_ms),
            "Payload": {
                "OrderChangeNotification": {
                    "NotificationLevel": "OrderLevel",
                    "SellerId": self.seller_id,
                    "AmazonOrderId": order.amazon_order_id,
                    "OrderChangeType": change.change_type,
                    "OrderChangeTrigger": {
                        "TimeOfOrderChange": rfc3339_millis(change.at_ms),
                        "ChangeReason": change.change_reason,
                    },
                    "Summary": {
                        "MarketplaceId": self.marketplace_id,
                        "OrderStatus": change.order_status,
                        "PurchaseDate": rfc3339_millis(order.purchase_ms),
                        "DestinationPostalCode": "98101",
                        "FulfillmentType": "MFN",
                        "OrderType": "StandardOrder",
                        "NumberOfItemsShipped": shipped,
                        "NumberOfItemsUnshipped": unshipped,
                        "OrderItems": [{
                            "OrderItemId": order.order_item_id,
                            "SellerSKU": order.seller_sku,
                            "Quantity": order.quantity,
                            "QuantityShipped": shipped,
                            "OrderItemStatus": change.order_status,
                            "IsBuyerRequestedCancel": change.buyer_requested_cancel,
                        }],
                    },
                },
            },
            "NotificationMetadata": {
                "ApplicationId": self.application_id,
                "SubscriptionId": self.subscription_id,
                "PublishTime": rfc3339_millis(change.at_ms),
                "NotificationId": uuid_from(self.seed, number),
            },
        })
    }

    /// The delivery of one change, notification number `number` (unique per seller).
    pub fn notification(&self, order: &AmazonOrder, change: &Change, number: u64) -> Notification {
        let notification = self.notification_json(order, change, number);
        let body = match self.envelope {
            Envelope::Sqs => notification,
            Envelope::EventBridge => json!({
                "version": "0",
                "id": uuid_from(self.seed ^ 0xeb, number),
                "detail-type": "ORDER_CHANGE",
                "source": format!("aws.partner/sellingpartnerapi.amazon.com/{}", self.application_id),
                "account": "123456789012",
                "time": rfc3339_millis(change.at_ms),
                "region": "us-east-1",
                "resources": [],
                "detail": notification,
            }),
        };
        let body = serde_json::to_vec(&body).expect("JSON serialises");
        let signature = format!(
            "{}{}",
            self.signature_prefix,
            hex::encode(hmac_sha256(&self.secret, &[&body]))
        );
        Notification {
            topic: format!("ORDER_CHANGE:{}", change.order_status),
            subject: order.amazon_order_id.clone(),
            headers: vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                (self.signature_header.clone(), signature),
            ],
            body: Bytes::from(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> AmazonOrder {
        AmazonOrder {
            amazon_order_id: "113-0000001-5550001".into(),
            order_item_id: "OI0000001".into(),
            seller_sku: "HOT".into(),
            quantity: 1,
            purchase_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn an_order_change_is_signed_over_the_raw_body() {
        let notify = AmazonNotifications::new("A2SANDBOXSELLER", "ATVPDKIKX0DER", "fwd", 3);
        let n = notify.notification(&order(), &Change::status("Unshipped", 1_700_000_001_000), 1);
        let expected = format!("sha256={}", hex::encode(hmac_sha256("fwd", &[&n.body])));
        assert!(
            n.headers
                .contains(&("X-Stockflow-Signature".to_owned(), expected))
        );
        let body: Json = serde_json::from_slice(&n.body).unwrap();
        let change = &body["Payload"]["OrderChangeNotification"];
        assert_eq!(body["NotificationType"], "ORDER_CHANGE");
        assert_eq!(change["AmazonOrderId"], "113-0000001-5550001");
        assert_eq!(change["Summary"]["OrderStatus"], "Unshipped");
        assert_eq!(change["Summary"]["OrderItems"][0]["SellerSKU"], "HOT");
        assert_eq!(change["Summary"]["OrderItems"][0]["Quantity"], 1);
        assert!(body["NotificationMetadata"]["NotificationId"].is_string());
    }

    #[test]
    fn eventbridge_wraps_the_notification_in_detail() {
        let mut notify = AmazonNotifications::new("A2SANDBOXSELLER", "ATVPDKIKX0DER", "fwd", 3);
        notify.envelope = Envelope::EventBridge;
        let n = notify.notification(&order(), &Change::status("Canceled", 1_700_000_001_000), 2);
        let body: Json = serde_json::from_slice(&n.body).unwrap();
        assert_eq!(body["detail-type"], "ORDER_CHANGE");
        assert_eq!(
            body["detail"]["Payload"]["OrderChangeNotification"]["Summary"]["OrderStatus"],
            "Canceled"
        );
    }
}
