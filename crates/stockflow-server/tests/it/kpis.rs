//! `GET /v1/kpis` end to end: channel orders, an operator's release and an oversold order are
//! counted, shown on the API and in the metrics, and still there after a restart.

use crate::support::{App, received, spawn_with};
use serde_json::{Value, json};
use std::time::Duration;
use stockflow_server::{Config, Server};

fn with_shop(config: &mut Config) {
    config.channels.insert(
        "kpi-shop".into(),
        json!({"kind": "shopify", "serves": ["east"]}),
    );
    config.channels.insert(
        "amazon".into(),
        json!({"kind": "amazon", "serves": ["east"]}),
    );
}

/// Polls `GET /v1/kpis` until `ready` says yes (the KPI task reads reservations every second).
async fn kpis_when(app: &App, ready: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..50 {
        let (status, body) = app.get("/v1/kpis").await;
        assert_eq!(status, 200, "{body}");
        if ready(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the KPIs never got there: {last:#}");
}

fn hour(body: &Value) -> &Value {
    &body["windows"][0]
}

fn cancellations(body: &Value, channel: &str) -> Value {
    hour(body)["cancellations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == channel)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn orders_cancellations_and_manual_work_are_counted_and_kept() {
    let app = spawn_with("kpis", with_shop).await;
    app.post("/v1/events", received("e1", 1, "SKU-1", "east", 3))
        .await;
    for (id, quantity) in [("o1", 1), ("o2", 1)] {
        let order = json!({"reservation_id": id, "channel": "kpi-shop",
                           "lines": [{"sku": "SKU-1", "quantity": quantity}]});
        let (status, body) = app.post("/v1/reservations", order).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, _) = app.post("/v1/reservations/o1/release", json!({})).await;
    assert_eq!(status, 200);

    let body = kpis_when(&app, |b| cancellations(b, "kpi-shop")["cancelled"] == 1).await;
    let window = hour(&body);
    assert_eq!(window["window"], "1h");
    assert_eq!(cancellations(&body, "kpi-shop")["orders"], 2);
    assert_eq!(cancellations(&body, "kpi-shop")["rate"], 0.5);
    assert_eq!(
        window["manual_interventions_by_reason"]["released_by_operator"],
        1
    );
    assert_eq!(window["manual_intervention_share"], 0.5);
    let amazon = body["cancellation"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "amazon")
        .unwrap();
    assert_eq!(
        (amazon["limit"].as_f64(), amazon["status"].as_str()),
        (Some(0.025), Some("ok"))
    );
    assert_eq!(amazon["window"], "7d");

    let (_, metrics) = app.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains("stockflow_orders_total{channel=\"kpi-shop\"} 2"),
        "{metrics}"
    );

    // A restart keeps the counts.
    let data_dir = app.data_dir.clone();
    app.shutdown().await;
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir,
        ..Config::default()
    };
    with_shop(&mut config);
    let server = Server::start(config).await.unwrap();
    let kpis = server.state.kpis.report(server.state.now());
    let shop = kpis.windows[0]
        .cancellations
        .iter()
        .find(|c| c.channel == "kpi-shop")
        .expect("kpi-shop survived the restart");
    assert_eq!((shop.orders, shop.cancelled), (2, 1));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_latency_series_has_a_point_per_minute() {
    let app = spawn_with("kpis-latency", with_shop).await;
    let (status, body) = app.get("/v1/kpis/latency").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["points"].as_array().unwrap().len(), 60);
    assert_eq!(body["latency_target_ms"], 1000.0);
    app.shutdown().await;
}
