//! Alerts end to end: each rule opens and resolves, one alert per rule x subject, listed on
//! `GET /v1/alerts` and delivered to a webhook receiver that fails at first (so delivery is
//! retried). Windows are passed by evaluating at a later instant (`alerts::evaluate` takes the
//! time), as the alert state machine is driven by the time handed in.

use crate::support::{App, received, spawn_with};
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stockflow_core::command::{Command, LedgerCommand, ReservationLineRequest, Reserve};
use stockflow_core::envelope::Input;
use stockflow_core::ids::{ActorId, ChannelId, LocationId, ReservationId, Sku, TenantId};
use stockflow_core::time::Timestamp;
use stockflow_server::alerts::webhook::WebhookTarget;

/// A local HTTP receiver: answers `failures` 500s first (or 429s while `throttle` is on), then
/// 200, and keeps the bodies it accepted.
#[derive(Default)]
struct Receiver {
    failures: AtomicU32,
    throttle: AtomicBool,
    bodies: Mutex<Vec<Value>>,
    calls: AtomicU32,
}

async fn receive(State(receiver): State<Arc<Receiver>>, body: String) -> StatusCode {
    receiver.calls.fetch_add(1, Ordering::SeqCst);
    if receiver.throttle.load(Ordering::SeqCst) {
        return StatusCode::TOO_MANY_REQUESTS;
    }
    if receiver
        .failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    receiver.bodies.lock().unwrap().push(value);
    StatusCode::OK
}

async fn start_receiver(receiver: Arc<Receiver>) -> String {
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

async fn until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `rule:subject` of the open (or resolved) alerts.
async fn alerts(app: &App, which: &str) -> Vec<String> {
    let (status, body) = app.get("/v1/alerts").await;
    assert_eq!(status, 200, "{body}");
    let mut found: Vec<String> = body[which]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["rule"].as_str().unwrap(),
                a["subject"].as_str().unwrap()
            )
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

#[tokio::test]
async fn a_lagging_throttled_channel_opens_alerts_that_resolve_and_reach_the_webhook_after_retries()
{
    let channel = Arc::new(Receiver::default());
    channel.throttle.store(true, Ordering::SeqCst);
    let channel_url = start_receiver(channel.clone()).await;
    let hook = Arc::new(Receiver::default());
    hook.failures.store(2, Ordering::SeqCst);
    let hook_url = start_receiver(hook.clone()).await;
    let app = spawn_with("alerts-sync", |config| {
        config.channels.insert(
            "hook".into(),
            json!({"kind": "webhook", "serves": ["east"], "url": channel_url, "secret": "s3cret",
                   "retry": {"attempts_max": 50, "base_ms": 10, "cap_ms": 50, "slow_interval_ms": 100}}),
        );
        let alerts = &mut config.alerts;
        alerts.evaluate_every_ms = 50;
        alerts.resolve_after_seconds = 0;
        alerts.window_seconds = 1;
        alerts.thresholds.sync_lag_ms_max = 300;
        alerts.thresholds.rate_limited_per_window_max = 0;
        let mut target = WebhookTarget::new(hook_url);
        target.backoff_base_ms = 20;
        alerts.webhooks.push(target);
    })
    .await;
    app.post("/v1/events", received("e1", 1, "SKU-1", "east", 5))
        .await;
    until("both alerts to open", async || {
        alerts(&app, "open").await == ["rate_limited:hook", "sync_lag:hook"]
    })
    .await;

    channel.throttle.store(false, Ordering::SeqCst);
    until("both alerts to resolve", async || {
        alerts(&app, "open").await.is_empty()
    })
    .await;
    assert_eq!(
        alerts(&app, "resolved").await,
        ["rate_limited:hook", "sync_lag:hook"]
    );

    until("four deliveries", async || {
        hook.bodies.lock().unwrap().len() >= 4
    })
    .await;
    let bodies = hook.bodies.lock().unwrap().clone();
    let texts: Vec<&str> = bodies.iter().map(|b| b["text"].as_str().unwrap()).collect();
    for (verb, rule) in [
        ("opened", "sync_lag"),
        ("opened", "rate_limited"),
        ("resolved", "sync_lag"),
        ("resolved", "rate_limited"),
    ] {
        assert!(
            texts
                .iter()
                .any(|t| t.contains(&format!("Alert {verb}: {rule} on hook"))),
            "{verb} {rule} in {texts:?}"
        );
    }
    assert_eq!(
        bodies[0]["blocks"][0]["type"], "header",
        "Slack blocks: {}",
        bodies[0]
    );
    assert_eq!(bodies[0]["blocks"][1]["text"]["type"], "mrkdwn");
    let (_, listing) = app.get("/v1/alerts").await;
    let delivery = &listing["webhooks"][0];
    assert!(delivery["retries"].as_u64().unwrap() >= 2, "{delivery}");
    assert_eq!(delivery["failed"], 0, "{delivery}");
    assert!(
        hook.calls.load(Ordering::SeqCst) >= 6,
        "two failed attempts and four deliveries"
    );
    app.shutdown().await;
}

async fn submit(app: &App, command: LedgerCommand) {
    let state = &app.server.as_ref().unwrap().state;
    let input = Input::Command {
        actor: ActorId::parse("amazon").unwrap(),
        command: Command::Ledger(command),
    };
    stockflow_server::api::submit(state, TenantId::default_tenant(), input)
        .await
        .unwrap();
}

async fn submit_order(app: &App, id: &str, units: i64) {
    let command = LedgerCommand::ReserveOrder(Reserve {
        reservation_id: ReservationId::parse(id).unwrap(),
        channel: Some(ChannelId::parse("amazon").unwrap()),
        lines: vec![ReservationLineRequest {
            sku: Sku::parse("SKU-1").unwrap(),
            location: Some(LocationId::parse("east").unwrap()),
            quantity: units,
        }],
        ttl_seconds: 900,
    });
    submit(app, command).await;
}

#[tokio::test]
async fn gaps_oversells_spikes_and_cancellations_open_once_and_resolve_when_their_windows_pass() {
    let app = spawn_with("alerts-ledger", |config| {
        config.ledger.held_events_per_source_max = 1;
        config.channels.insert(
            "amazon".into(),
            json!({"kind": "amazon", "serves": ["east"]}),
        );
        let alerts = &mut config.alerts;
        alerts.evaluate_every_ms = 3_600_000;
        alerts.resolve_after_seconds = 0;
        alerts.thresholds.spike_units_min = 5;
    })
    .await;
    // seq 2 is late: the second held event overflows the limit of one, the gap is given up
    // on, and seq 2 arrives after all (applied late).
    for (id, seq, units) in [("e1", 1, 10), ("e3", 3, 10), ("e4", 4, 10), ("e2", 2, 1)] {
        let (status, body) = app
            .post("/v1/events", received(id, seq, "SKU-1", "east", units))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Demand: an order of six units (31 were received), cancelled by Amazon; two orders that
    // oversell.
    submit_order(&app, "o1", 6).await;
    submit_order(&app, "o2", 30).await;
    submit_order(&app, "o3", 30).await;
    submit(
        &app,
        LedgerCommand::CancelOrder {
            reservation_id: ReservationId::parse("o1").unwrap(),
            reason: Some("buyer cancelled".into()),
        },
    )
    .await;
    let expected = [
        "cancellation_rate:amazon",
        "demand_spike:SKU-1",
        "late_event:wms",
        "oversell:amazon",
        "sequence_gap:wms",
    ];
    until("the five alerts to open", async || {
        app.post("/v1/alerts/evaluate", json!({})).await;
        alerts(&app, "open").await == expected
    })
    .await;
    // Once each: another evaluation updates them.
    app.post("/v1/alerts/evaluate", json!({})).await;
    let (_, listing) = app.get("/v1/alerts").await;
    assert_eq!(listing["open"].as_array().unwrap().len(), 5, "{listing}");
    let oversell = listing["open"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "oversell")
        .unwrap();
    assert_eq!(oversell["value"], 2.0, "two oversold orders: {oversell}");

    let state = &app.server.as_ref().unwrap().state;
    let later = Timestamp(
        stockflow_server::app::wall_clock().0 + 8 * 86_400 * Timestamp::MICROS_PER_SECOND,
    );
    stockflow_server::alerts::evaluate(state, later).await;
    assert!(
        alerts(&app, "open").await.is_empty(),
        "{:?}",
        alerts(&app, "open").await
    );
    assert_eq!(alerts(&app, "resolved").await, expected);
    app.shutdown().await;
}
