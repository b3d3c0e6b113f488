//! The webhook adapter through real HTTP against the webhook receiver: signed deliveries
//! accepted and recorded, a wrong secret refused with the items kept pending.

use std::sync::Arc;
use std::time::Duration;

use stockflow_channels::config::{HttpSettings, RateSettings, Secret, SyncSettings, WebhookConfig};
use stockflow_channels::webhook::WebhookAdapter;
use stockflow_channels::{ChannelStats, SyncEngine};
use stockflow_core::ids::TenantId;
use stockflow_sim::webhook::{self, WebhookConfig as ReceiverConfig, WebhookHandle};

use crate::support::{change, channel_id, install_tls, key, retry, settings, spec, wait_until};

const CHANNEL: &str = "outlet";

struct Rig {
    receiver: WebhookHandle,
    engine: SyncEngine,
}

impl Rig {
    async fn start(secret: &str) -> Self {
        install_tls();
        let receiver = webhook::start(ReceiverConfig::new("whsec")).await.unwrap();
        let config = WebhookConfig {
            tenant: TenantId::default_tenant(),
            url: receiver.url(),
            secret: Secret::new(secret),
            signature_header: "X-Stockflow-Signature".into(),
            timestamp_header: "X-Stockflow-Timestamp".into(),
            rate: RateSettings::new(20.0, 20),
            sync: SyncSettings::default(),
            retry: retry(),
            http: HttpSettings::default(),
        };
        let adapter = WebhookAdapter::new(channel_id(CHANNEL), &config).unwrap();
        let engine = SyncEngine::start(vec![spec(
            CHANNEL,
            Arc::new(adapter),
            settings(50, 50),
            retry(),
        )]);
        Self { receiver, engine }
    }

    fn stats(&self) -> ChannelStats {
        self.engine.stats().remove(0)
    }
}

#[tokio::test]
async fn signed_deliveries_are_accepted_and_carry_the_values() {
    let rig = Rig::start("whsec").await;
    let changes: Vec<_> = (1..=30u64)
        .map(|i| {
            change(
                &rig.engine,
                CHANNEL,
                &key(&format!("SKU-{i}"), Some("east")),
                i as i64,
                i,
            )
        })
        .collect();
    rig.engine.offer(&changes);
    assert!(wait_until(Duration::from_secs(5), || rig.stats().queue_depth == 0).await);
    assert_eq!(rig.receiver.told("SKU-30", "east"), Some(30));
    let deliveries = rig.receiver.deliveries();
    assert!(
        deliveries.len() < 30,
        "batched: {} deliveries",
        deliveries.len()
    );
    let first = &deliveries[0].body;
    assert_eq!(first["channel"], CHANNEL);
    assert!(first["sent_at"].as_u64().is_some());
    assert!(
        first["items"][0]["caused_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_the_items_stay_pending() {
    let rig = Rig::start("wrong").await;
    rig.engine
        .offer(&[change(&rig.engine, CHANNEL, &key("SKU-1", None), 3, 1)]);
    assert!(
        wait_until(Duration::from_secs(5), || rig
            .stats()
            .errors
            .contains_key("http_401"))
        .await
    );
    assert_eq!(rig.stats().queue_depth, 1);
    assert_eq!(rig.receiver.told("SKU-1", ""), None);
}
