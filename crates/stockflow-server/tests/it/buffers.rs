//! Buffer management over HTTP (the channel, policy, attribute, hold, signal and withheld
//! endpoints), end to end: every strategy configured through the API shows in what channels
//! may sell, with its reason; every bad input answers its own code and changes nothing.

use crate::support::{App, received, spawn_app};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

impl App {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

/// RFC 3339, `seconds` from now.
fn at(seconds: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .format(&Rfc3339)
        .unwrap()
}

fn micros_of(rfc3339: &str) -> i64 {
    (OffsetDateTime::parse(rfc3339, &Rfc3339)
        .unwrap()
        .unix_timestamp_nanos()
        / 1_000) as i64
}

/// Waits until the last channel or policy change reached every SKU (a settings change is
/// applied to the SKUs by the writer after it is answered, a batch of SKUs at a time).
async fn settled(app: &App) {
    for _ in 0..500 {
        let (status, channels) = app.get("/v1/channels").await;
        assert_eq!(status, 200, "{channels}");
        if channels["sweeping"] == false {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the settings change never reached every SKU");
}

/// The channel's entry of `GET /v1/skus/{sku}`.
async fn channel_view(app: &App, sku: &str, channel: &str) -> Value {
    let (status, view) = app.get(&format!("/v1/skus/{sku}")).await;
    assert_eq!(status, 200, "{view}");
    view["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == channel)
        .cloned()
        .unwrap_or_else(|| panic!("no channel {channel} in {view}"))
}

fn buffer<'a>(channel: &'a Value, policy: &str) -> Option<&'a Value> {
    channel["buffers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["policy"] == policy)
}

fn quantity_of(channel: &Value, policy: &str) -> i64 {
    buffer(channel, policy).map_or(0, |b| b["quantity"].as_i64().unwrap())
}

/// What a channel shows adds up: the components sum to `withheld`, and without allocation
/// rules the ATS is what its locations have available less `withheld`.
fn assert_adds_up(channel: &Value, available: i64) {
    let components: i64 = channel["buffers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(
        channel["withheld"].as_i64().unwrap(),
        components,
        "{channel}"
    );
    assert_eq!(
        channel["available_to_sell"].as_i64().unwrap(),
        available - components,
        "{channel}"
    );
}

/// Stock: 100 of SKU-1 at east and west, 50 of SKU-2 at east.
async fn stocked(name: &str) -> App {
    let app = spawn_app(name).await;
    for (seq, (sku, location, quantity)) in [
        ("SKU-1", "east", 100),
        ("SKU-1", "west", 100),
        ("SKU-2", "east", 50),
    ]
    .into_iter()
    .enumerate()
    {
        let seq = seq as u64 + 1;
        let event = received(&format!("e{seq}"), seq, sku, location, quantity);
        let (status, body) = app.post("/v1/events", event).await;
        assert_eq!(status, 200, "{body}");
    }
    app
}

#[tokio::test]
async fn every_strategy_configured_over_http_shows_with_its_reason() {
    let app = stocked("buffers-e2e").await;
    let window_start = at(-3_600);
    let window_end = at(2 * 3_600);
    let policies = [
        (
            "static-5",
            json!({"strategy": {"kind": "static", "amount": {"percent": 5}}}),
        ),
        (
            "fragile-3",
            json!({"selector": {"tags_any": ["fragile"]},
                   "strategy": {"kind": "static", "amount": {"units": 3}}}),
        ),
        ("viral", json!({"strategy": {"kind": "dynamic"}})),
        (
            "risk",
            json!({"strategy": {"kind": "channel_aware", "base": 2, "factors": {"amazon": 2.5}}}),
        ),
        (
            "flash",
            json!({"strategy": {"kind": "time_window", "starts_at": window_start,
                   "ends_at": window_end, "amount": {"units": 4},
                   "release": {"mode": "gradual", "period_seconds": 3600, "steps": 4}}}),
        ),
    ];
    for (id, body) in policies {
        let (status, policy) = app.put(&format!("/v1/policies/{id}"), body).await;
        assert_eq!(status, 200, "{id}: {policy}");
        assert_eq!(policy["id"], id);
    }
    let (_, listed) = app.get("/v1/policies").await;
    let flash = listed["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "flash")
        .unwrap()
        .clone();
    assert_eq!(
        flash["strategy"]["starts_at"].as_i64(),
        Some(micros_of(&window_start)),
        "the RFC 3339 start is kept to the microsecond: {flash}"
    );
    assert_eq!(
        flash["strategy"]["ends_at"].as_i64(),
        Some(micros_of(&window_end))
    );

    let (status, channel) = app
        .put(
            "/v1/channels/amazon",
            json!({"kind": "amazon", "serves": ["east", "west"],
                   "policies": ["static-5", "viral", "risk", "flash"]}),
        )
        .await;
    assert_eq!(status, 200, "{channel}");
    assert_eq!(channel["rules"]["policies"].as_array().unwrap().len(), 4);
    assert_eq!(channel["config"]["per_location"], false);
    let (status, channel) = app
        .put(
            "/v1/channels/shopify",
            json!({"kind": "shopify", "serves": ["east"], "allocation": {"maximum": 80},
                   "policies": ["fragile-3"]}),
        )
        .await;
    assert_eq!(status, 200, "{channel}");
    assert_eq!(channel["config"]["per_location"], true);
    settled(&app).await;
    let (_, channels) = app.get("/v1/channels").await;
    assert_eq!(channels["channels"].as_array().unwrap().len(), 2);
    assert_eq!(channels["sweeping"], false);

    // Amazon: static 5% and channel-aware 2% x 2.5 of 100 at each location, 4 units of the
    // open window; nothing dynamic yet (no demand, no signal).
    let amazon = channel_view(&app, "SKU-1", "amazon").await;
    assert_eq!(quantity_of(&amazon, "static-5"), 10, "{amazon}");
    assert_eq!(quantity_of(&amazon, "risk"), 10, "{amazon}");
    assert_eq!(quantity_of(&amazon, "flash"), 4, "{amazon}");
    assert_eq!(quantity_of(&amazon, "viral"), 0, "{amazon}");
    assert_adds_up(&amazon, 200);
    for (policy, strategy) in [
        ("static-5", "static"),
        ("risk", "channel_aware"),
        ("flash", "time_window"),
    ] {
        let component = buffer(&amazon, policy).unwrap();
        assert_eq!(component["strategy"], strategy, "{component}");
        assert!(
            !component["reason"].as_str().unwrap().is_empty(),
            "{component}"
        );
    }
    // Shopify: the tag selector picks nothing until the SKU is tagged.
    let shopify = channel_view(&app, "SKU-1", "shopify").await;
    assert_eq!(
        (
            shopify["withheld"].as_i64(),
            shopify["available_to_sell"].as_i64()
        ),
        (Some(0), Some(80)),
        "the maximum of 80 applies: {shopify}"
    );

    // Attributes, one SKU and in bulk.
    let (status, body) = app
        .put(
            "/v1/skus/SKU-1/attributes",
            json!({"tier": "A", "tags": ["fragile"], "margin": 35.5}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        quantity_of(&channel_view(&app, "SKU-1", "shopify").await, "fragile-3"),
        3
    );
    let (status, body) = app
        .post(
            "/v1/sku-attributes",
            json!({"items": [{"sku": "SKU-2", "attributes": {"tags": ["fragile"]}},
                             {"sku": "SKU-1", "attributes": {"tier": "A"}}]}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        quantity_of(&channel_view(&app, "SKU-2", "shopify").await, "fragile-3"),
        3
    );
    assert_eq!(
        quantity_of(&channel_view(&app, "SKU-1", "shopify").await, "fragile-3"),
        0,
        "the bulk set replaced SKU-1's attributes (no tag any more)"
    );

    // Holds: units on one channel with an expiry; a percentage on every channel without one;
    // one with an RFC 3339 expiry.
    let amazon_before = channel_view(&app, "SKU-1", "amazon").await;
    let (status, hold) = app
        .post(
            "/v1/buffers/holds",
            json!({"id": "launch", "sku": "SKU-1", "channels": ["amazon"], "quantity": 7,
                   "reason": "launch reserve", "expires_in_seconds": 3600}),
        )
        .await;
    assert_eq!(status, 201, "{hold}");
    assert_eq!(hold["id"], "launch");
    let (status, hold) = app
        .post(
            "/v1/buffers/holds",
            json!({"id": "recount", "sku": "SKU-1", "location": "east", "percent": 10,
                   "reason": "cycle count pending"}),
        )
        .await;
    assert_eq!(status, 201, "{hold}");
    assert_eq!(hold["expires_at"], Value::Null);
    let expires_at = at(86_400);
    let (status, hold) = app
        .post(
            "/v1/buffers/holds",
            json!({"sku": "SKU-2", "quantity": 2, "reason": "photo shoot",
                   "expires_at": expires_at}),
        )
        .await;
    assert_eq!(status, 201, "{hold}");
    assert_eq!(hold["expires_at"].as_i64(), Some(micros_of(&expires_at)));
    let generated = hold["id"].as_str().unwrap().to_owned();

    let amazon = channel_view(&app, "SKU-1", "amazon").await;
    let launch = buffer(&amazon, "launch").expect("the hold shows on amazon");
    assert_eq!(
        (launch["strategy"].as_str(), launch["quantity"].as_i64()),
        (Some("hold"), Some(7))
    );
    let reason = launch["reason"].as_str().unwrap();
    assert!(
        reason.contains("launch reserve") && reason.contains("expires in"),
        "{reason}"
    );
    let recount = buffer(&amazon, "recount").expect("a hold without channels is on every one");
    assert_eq!(recount["location"], "east");
    assert!(
        recount["reason"]
            .as_str()
            .unwrap()
            .contains("cycle count pending")
    );
    assert!(!recount["reason"].as_str().unwrap().contains("expires"));
    assert_adds_up(&amazon, 200);
    assert!(amazon["withheld"].as_i64().unwrap() > amazon_before["withheld"].as_i64().unwrap() + 7);
    let shopify = channel_view(&app, "SKU-1", "shopify").await;
    assert_eq!(
        quantity_of(&shopify, "launch"),
        0,
        "launch is for amazon only"
    );
    assert_eq!(quantity_of(&shopify, "recount"), 10, "{shopify}");

    let (_, holds) = app.get("/v1/buffers/holds").await;
    let mut ids: Vec<&str> = holds
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hold"]["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec!["launch", "recount", generated.as_str()];
    expected.sort();
    assert_eq!(ids, expected);

    // The withheld listing: largest first, the total its rows' sum.
    let (status, buffers) = app.get("/v1/buffers").await;
    assert_eq!(status, 200, "{buffers}");
    let rows = buffers["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "SKU-1 and SKU-2 on both channels: {buffers}");
    let withheld: Vec<i64> = rows
        .iter()
        .map(|r| r["withheld"].as_i64().unwrap())
        .collect();
    assert!(
        withheld.windows(2).all(|pair| pair[0] >= pair[1]),
        "{withheld:?}"
    );
    assert_eq!(
        buffers["withheld_total"].as_i64().unwrap(),
        withheld.iter().sum::<i64>()
    );
    assert_eq!(
        (rows[0]["sku"].as_str(), rows[0]["channel"].as_str()),
        (Some("SKU-1"), Some("amazon"))
    );
    let (_, only) = app.get("/v1/buffers?channel=shopify&limit=1").await;
    assert_eq!(only["rows"].as_array().unwrap().len(), 1, "{only}");
    assert_eq!(only["rows"][0]["channel"], "shopify");

    // Releasing a hold gives its units back, once.
    let (status, body) = app.delete("/v1/buffers/holds/launch").await;
    assert_eq!(status, 204, "{body}");
    let amazon_released = channel_view(&app, "SKU-1", "amazon").await;
    assert!(buffer(&amazon_released, "launch").is_none());
    assert_eq!(
        amazon_released["withheld"].as_i64().unwrap(),
        amazon["withheld"].as_i64().unwrap() - 7
    );
    let (status, body) = app.delete("/v1/buffers/holds/launch").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("unknown_hold")),
        "{body}"
    );

    // A surge signal: the dynamic policy withholds at the signal's 10x (10% on the default
    // curve, at each location).
    let (status, body) = app
        .post(
            "/v1/signals",
            json!({"sku": "SKU-1", "source": "social-listener", "multiplier": 10,
                   "duration_seconds": 3600}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let surged = channel_view(&app, "SKU-1", "amazon").await;
    let viral = buffer(&surged, "viral").expect("the dynamic buffer shows");
    assert_eq!(viral["strategy"], "dynamic");
    assert_eq!(viral["quantity"].as_i64(), Some(20), "{surged}");
    assert!(viral["reason"].as_str().unwrap().contains("10"), "{viral}");
    assert_eq!(
        surged["withheld"].as_i64().unwrap(),
        amazon_released["withheld"].as_i64().unwrap() + 20
    );
    assert_adds_up(&surged, 200);

    // Each hold placed and released is audited, with its reason.
    let (_, audit) = app.get("/v1/audit?sku=SKU-1&limit=1000").await;
    let entries = audit["entries"].as_array().unwrap();
    let by_command = |name: &str| {
        entries
            .iter()
            .filter(|e| e["cause"]["name"] == name || e["cause"]["command"] == name)
            .count()
    };
    assert!(by_command("place_hold") >= 2, "{audit}");
    assert!(by_command("release_hold") >= 1, "{audit}");
    assert!(
        entries
            .iter()
            .any(|e| e["reason"] == "launch reserve" && e["change"]["kind"] != "quantities"),
        "{audit}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_placed_at_once_without_an_id_each_get_their_own() {
    let app = stocked("buffers-ids").await;
    let tasks: Vec<_> = (0..16)
        .map(|index| {
            let client = app.client.clone();
            let url = app.url.clone();
            tokio::spawn(async move {
                let sku = if index % 2 == 0 { "SKU-1" } else { "SKU-2" };
                let response = client
                    .post(format!("{url}/v1/buffers/holds"))
                    .json(&json!({"sku": sku, "quantity": 1, "reason": format!("hold {index}")}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        let (status, hold) = task.await.unwrap();
        assert_eq!(status, 201, "{hold}");
        ids.insert(hold["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 16);
    let (_, holds) = app.get("/v1/buffers/holds").await;
    assert_eq!(holds.as_array().unwrap().len(), 16, "{holds}");
    app.shutdown().await;
}

/// Everything a bad settings request could have changed.
async fn settings_state(app: &App) -> Value {
    let (_, policies) = app.get("/v1/policies").await;
    let (_, channels) = app.get("/v1/channels").await;
    let (_, holds) = app.get("/v1/buffers/holds").await;
    let (_, sku) = app.get("/v1/skus/SKU-1").await;
    let (_, audit) = app.get("/v1/audit?sku=SKU-1&limit=1000").await;
    json!({"policies": policies, "channels": channels, "holds": holds, "sku": sku,
           "audit": audit["entries"].as_array().unwrap().len()})
}

#[tokio::test]
async fn bad_buffer_settings_answer_their_code_and_change_nothing() {
    let app = stocked("buffers-bad").await;
    let (status, body) = app
        .put(
            "/v1/policies/static-5",
            json!({"strategy": {"kind": "static", "amount": {"percent": 5}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .put(
            "/v1/channels/amazon",
            json!({"kind": "amazon", "serves": ["east", "west"], "policies": ["static-5"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    settled(&app).await;
    let before = settings_state(&app).await;

    let window = |starts: i64, ends: i64| {
        json!({"strategy": {"kind": "time_window", "starts_at": at(starts), "ends_at": at(ends),
               "amount": {"units": 2}, "release": {"mode": "as_picked", "period_seconds": 600}}})
    };
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;
    let cases: Vec<(reqwest::Method, &str, Value, u16, &str)> = vec![
        // Policies that do not parse.
        (
            put.clone(),
            "/v1/policies/p",
            json!({"strategy": {"kind": "sometimes"}}),
            400,
            "invalid_policy",
        ),
        (
            put.clone(),
            "/v1/policies/p",
            json!({"strategy": {"kind": "static"}}),
            400,
            "invalid_policy",
        ),
        (
            put.clone(),
            "/v1/policies/p",
            json!({"strategy": {"kind": "static", "amount": {"units": 1}}, "colour": "red"}),
            400,
            "invalid_policy",
        ),
        (
            put.clone(),
            "/v1/policies/p",
            json!([1, 2]),
            400,
            "invalid_policy",
        ),
        (
            put.clone(),
            "/v1/policies/p",
            json!({"id": "q", "strategy": {"kind": "static", "amount": {"units": 1}}}),
            400,
            "invalid_policy",
        ),
        // Percentages outside 0-100.
        (
            put.clone(),
            "/v1/policies/p",
            json!({"strategy": {"kind": "static", "amount": {"percent": 150}}}),
            422,
            "invalid_percentage",
        ),
        (
            put.clone(),
            "/v1/policies/p",
            json!({"strategy": {"kind": "static", "amount": {"percent": -5}}}),
            422,
            "invalid_percentage",
        ),
        (
            put.clone(),
            "/v1/policies/p",
            json!({"strategy": {"kind": "channel_aware", "base": 101}}),
            422,
            "invalid_percentage",
        ),
        (
            put.clone(),
            "/v1/channels/amazon",
            json!({"kind": "amazon", "serves": ["east"], "allocation": {"percent": 120}}),
            422,
            "invalid_percentage",
        ),
        (
            put.clone(),
            "/v1/skus/SKU-1/attributes",
            json!({"margin": 250}),
            422,
            "invalid_percentage",
        ),
        (
            post.clone(),
            "/v1/buffers/holds",
            json!({"sku": "SKU-1", "percent": 101, "reason": "r"}),
            422,
            "invalid_percentage",
        ),
        (
            post.clone(),
            "/v1/buffers/holds",
            json!({"sku": "SKU-1", "percent": -1, "reason": "r"}),
            422,
            "invalid_percentage",
        ),
        // Windows that end before they start (or are over).
        (
            put.clone(),
            "/v1/policies/p",
            window(3_600, 60),
            422,
            "invalid_window",
        ),
        (
            put.clone(),
            "/v1/policies/p",
            window(-7_200, -3_600),
            422,
            "invalid_window",
        ),
        (
            put.clone(),
            "/v1/policies/p",
            json!({"strategy": {"kind": "time_window", "starts_at": "next tuesday", "ends_at": at(60), "amount": {"units": 2}, "release": {"mode": "as_picked", "period_seconds": 600}}}),
            400,
            "invalid_time",
        ),
        (
            post.clone(),
            "/v1/buffers/holds",
            json!({"sku": "SKU-1", "quantity": 1, "reason": "r", "expires_at": at(-60)}),
            422,
            "invalid_window",
        ),
        // Unknown channels and SKUs in a hold.
        (
            post.clone(),
            "/v1/buffers/holds",
            json!({"sku": "SKU-1", "channels": ["ebay"], "quantity": 1, "reason": "r"}),
            422,
            "unknown_channel",
        ),
        (
            post.clone(),
            "/v1/buffers/holds",
            json!({"sku": "NOPE", "quantity": 1, "reason": "r"}),
            422,
            "unknown_sku",
        ),
        // And around them.
        (
            post.clone(),
            "/v1/buffers/holds",
            json!({"sku": "SKU-1", "quantity": 1, "percent": 5, "reason": "r"}),
            400,
            "invalid_amount",
        ),
        (
            post.clone(),
            "/v1/buffers/holds",
            json!({"sku": "SKU-1", "reason": "r"}),
            400,
            "invalid_amount",
        ),
        (
            put.clone(),
            "/v1/channels/amazon",
            json!({"kind": "amazon", "serves": ["east"], "policies": ["nope"]}),
            422,
            "unknown_policy",
        ),
        (
            put.clone(),
            "/v1/channels/amazon",
            json!({"kind": "marketplace", "serves": ["east"]}),
            400,
            "invalid_channel",
        ),
        (
            post.clone(),
            "/v1/signals",
            json!({"sku": "NOPE", "source": "s", "multiplier": 5, "duration_seconds": 60}),
            422,
            "unknown_sku",
        ),
        (
            post.clone(),
            "/v1/signals",
            json!({"sku": "SKU-1", "source": "s", "multiplier": 0.5, "duration_seconds": 60}),
            422,
            "invalid_signal",
        ),
        (
            post.clone(),
            "/v1/signals",
            json!({"sku": "SKU-1", "source": "s", "multiplier": 5, "duration_seconds": 0}),
            422,
            "invalid_window",
        ),
        (
            post.clone(),
            "/v1/buffers/holds",
            json!({"sku": "SKU-1", "quantity": 0, "reason": "r"}),
            422,
            "invalid_quantity",
        ),
        (
            post.clone(),
            "/v1/buffers/holds",
            json!({"sku": "SKU-1", "percent": 0, "reason": "r"}),
            422,
            "invalid_percentage",
        ),
        (
            post.clone(),
            "/v1/buffers/holds",
            json!({"sku": "SKU-1", "location": "north", "quantity": 1, "reason": "r"}),
            422,
            "unknown_location",
        ),
        (
            post.clone(),
            "/v1/buffers/holds",
            json!({"sku": "SKU-1", "quantity": 1, "reason": " "}),
            422,
            "invalid",
        ),
        (
            post.clone(),
            "/v1/buffers/holds",
            json!({"id": "bad id!", "sku": "SKU-1", "quantity": 1, "reason": "r"}),
            400,
            "invalid_id",
        ),
        (
            post.clone(),
            "/v1/buffers/holds",
            json!({"sku": "SKU-1", "quantity": 1, "reason": "r", "expires_in_seconds": 60, "expires_at": at(60)}),
            400,
            "invalid_window",
        ),
        (
            put.clone(),
            "/v1/channels/amazon",
            json!({"kind": "amazon", "serves": []}),
            422,
            "invalid_channel",
        ),
        (
            reqwest::Method::DELETE,
            "/v1/channels/ebay",
            Value::Null,
            422,
            "unknown_channel",
        ),
        (
            reqwest::Method::DELETE,
            "/v1/policies/static-5",
            Value::Null,
            422,
            "policy_in_use",
        ),
        (
            reqwest::Method::DELETE,
            "/v1/policies/nope",
            Value::Null,
            422,
            "unknown_policy",
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, status, code) in cases {
        let body = (!body.is_null()).then_some(body);
        let (answered, problem) = app.send(method.clone(), path, body.clone()).await;
        if (answered, problem["code"].as_str()) != (status, Some(code)) {
            wrong.push(format!("{method} {path} {body:?}: {answered} {problem}"));
        }
        // The detail is written for people, not a debug dump of the refusal.
        let detail = problem["detail"].as_str().unwrap_or_default();
        if detail.is_empty() || detail.contains(" { ") || detail.contains("Id(") {
            wrong.push(format!("{method} {path}: detail {detail:?}"));
        }
        assert_eq!(
            settings_state(&app).await,
            before,
            "{method} {path} {body:?} changed something"
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    app.shutdown().await;
}
