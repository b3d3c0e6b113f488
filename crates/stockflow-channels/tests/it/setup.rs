//! The engine started from the server's TOML: every kind builds, errors name the channel.

use stockflow_channels::{StartError, SyncConfig, SyncEngine};

use crate::support::install_tls;

const CONFIG: &str = r#"
[channels.shop]
kind = "shopify"
base_url = "https://example.myshopify.com"
access_token = "shpat_x"
locations = { east = "gid://shopify/Location/1" }

[channels.amazon]
kind = "amazon"
base_url = "https://sellingpartnerapi-na.amazon.com"
seller_id = "A2SELLER"
marketplace_ids = ["ATVPDKIKX0DER"]
access_token = "Atza|x"
rate = { per_second = 5.0, burst = 10 }

[channels.tiktok]
kind = "tiktok"
base_url = "https://open-api.tiktokglobalshop.com"
app_key = "k"
app_secret = "s"
access_token = "t"
shop_cipher = "c"
locations = { east = "7294000001" }
product_ids = ["1729000000000000001"]

[channels.outlet]
kind = "webhook"
url = "https://outlet.example/stock"
secret = "whsec"
sync = { batch_max = 10, latency_budget_ms = 500 }
"#;

#[tokio::test]
async fn every_kind_starts_from_toml() {
    install_tls();
    let config: SyncConfig = toml::from_str(CONFIG).unwrap();
    let engine = SyncEngine::from_config(&config).unwrap();
    let kinds: Vec<&str> = engine.stats().iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec!["amazon", "webhook", "shopify", "tiktok"]);
    engine.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_bad_channel_is_named_in_the_error() {
    install_tls();
    let broken = CONFIG.replace("batch_max = 10", "batch_max = 0");
    let config: SyncConfig = toml::from_str(&broken).unwrap();
    let Err(StartError::Config(error)) = SyncEngine::from_config(&config) else {
        panic!("a batch of zero is refused");
    };
    assert_eq!(error.channel, "outlet");
    assert_eq!(error.field, "sync.batch_max");
}
