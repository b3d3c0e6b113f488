//! Cycle counts through `POST /v1/reconcile/counts`: malformed rows, dry run against apply
//! against apply-valid-rows, the threshold policy, and on_hand as of the count's time with
//! moves after it (and one scanned before it but reported after).

use crate::support::{App, received, spawn_app, spawn_with};
use serde_json::{Value, json};
use stockflow_core::reconcile::CountPolicy;

async fn post_count(app: &App, query: &str, content_type: &str, body: String) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/v1/reconcile/counts{query}", app.url))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn on_hand(app: &App, sku: &str) -> i64 {
    let (status, body) = app.get(&format!("/v1/skus/{sku}")).await;
    assert_eq!(status, 200, "{body}");
    body["locations"][0]["on_hand"].as_i64().unwrap()
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// What a report says, in a few words per discrepancy: `line:sku:difference:status`.
fn summary(report: &Value) -> Vec<String> {
    report["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}:{}:{}:{}",
                d["line"],
                d["sku"].as_str().unwrap(),
                d["difference"],
                d["status"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_malformed_row_is_named_and_stops_the_apply_unless_valid_rows_are_asked_for() {
    let app = spawn_app("count-malformed").await;
    app.post("/v1/events", json!({"events": [received("e1", 1, "SKU-1", "east", 10), received("e2", 2, "SKU-2", "east", 5)]}))
        .await;
    let at = now();
    let csv = format!(
        "sku,location,counted,counted_at,unit_cost\n\
         SKU-1,east,8,{at},2.50\n\
         SKU-2,east,5,{at},\n\
         SKU-3,east,lots,{at},\n"
    );

    let (status, report) = post_count(&app, "", "text/csv", csv.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["mode"], "dry_run");
    assert_eq!(report["malformed"][0]["line"], 4, "{report}");
    assert_eq!(summary(&report), ["2:SKU-1:-2:reported"]);
    assert_eq!(report["matched"], 1);
    assert_eq!(report["difference_value"], -5.0);
    assert_eq!(
        on_hand(&app, "SKU-1").await,
        10,
        "a dry run changes nothing"
    );

    let (status, problem) = post_count(&app, "?apply=all", "text/csv", csv.clone()).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "malformed_rows");
    assert_eq!(problem["context"]["malformed"][0]["line"], 4);
    assert_eq!(
        on_hand(&app, "SKU-1").await,
        10,
        "nothing of the file was applied"
    );

    let (status, report) =
        post_count(&app, "?apply=all&apply_valid_rows=true", "text/csv", csv).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(summary(&report), ["2:SKU-1:-2:applied"]);
    assert_eq!(report["discrepancies"][0]["correction"]["type"], "count");
    assert_eq!(on_hand(&app, "SKU-1").await, 8);
    let count_id = report["count_id"].as_str().unwrap();
    let (_, audit) = app
        .get(&format!(
            "/v1/audit?sku=SKU-1&reason=cycle%20count%20{count_id}"
        ))
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["change"]["before"]["on_hand"], 10);
    assert_eq!(entries[0]["change"]["after"]["on_hand"], 8);
    assert_eq!(entries[0]["cause"]["event_type"], "counted");

    // The same count again finds nothing left to do.
    let json_rows = format!(
        "[\n {{\"sku\": \"SKU-1\", \"location\": \"east\", \"counted\": 8, \"counted_at\": \"{}\"}}\n]",
        now()
    );
    let (status, report) = post_count(&app, "?apply=all", "application/json", json_rows).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["matched"], 1, "{report}");
    app.shutdown().await;
}

#[tokio::test]
async fn moves_after_the_count_time_are_accounted_for_and_carried_forward() {
    let app = spawn_app("count-time").await;
    let before_count = now();
    app.post("/v1/events", received("e1", 1, "SKU-1", "east", 10))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let counted_at = now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // After the count: three picked. And one picked before the count, reported only now.
    let picks = json!({"events": [
        {"event_id": "p1", "source": "wms", "seq": 2, "type": "picked", "sku": "SKU-1",
         "location": "east", "quantity": 3},
        {"event_id": "p2", "source": "wms", "seq": 3, "type": "picked", "sku": "SKU-1",
         "location": "east", "quantity": 1, "occurred_at": before_count},
    ]});
    let (status, body) = app.post("/v1/events", picks).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(on_hand(&app, "SKU-1").await, 6);

    // The counter saw 10 - 1 (the early pick) = 9: a match.
    let rows = |counted: i64| {
        format!(
            "{{\"sku\":\"SKU-1\",\"location\":\"east\",\"counted\":{counted},\"counted_at\":\"{counted_at}\"}}\n"
        )
    };
    let (status, report) = post_count(&app, "?apply=all", "application/x-ndjson", rows(9)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["matched"], 1, "{report}");
    assert_eq!(on_hand(&app, "SKU-1").await, 6);

    // The counter found 8: one unit short at the count, and still short now.
    let (_, report) = post_count(&app, "?apply=all", "application/x-ndjson", rows(8)).await;
    let found = &report["discrepancies"][0];
    assert_eq!(found["expected"], 9, "{report}");
    assert_eq!(found["on_hand_now"], 6);
    assert_eq!(found["difference"], -1);
    assert_eq!(found["correction"], json!({"type": "adjust", "delta": -1}));
    assert_eq!(found["status"], "applied");
    assert_eq!(on_hand(&app, "SKU-1").await, 5);
    app.shutdown().await;
}

#[tokio::test]
async fn the_threshold_policy_applies_small_differences_and_flags_the_rest() {
    let app = spawn_with("count-policy", |config| {
        config.reconcile.counts.policy = CountPolicy {
            units_max: Some(1),
            percent_max: None,
        };
    })
    .await;
    app.post(
        "/v1/events",
        json!({"events": [received("e1", 1, "A", "east", 10), received("e2", 2, "B", "east", 10)]}),
    )
    .await;
    let at = now();
    let csv = format!("sku,location,counted,counted_at\nA,east,9,{at}\nB,east,4,{at}\n");
    let (status, report) = post_count(&app, "?apply=policy", "text/csv", csv).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(summary(&report), ["2:A:-1:applied", "3:B:-6:flagged"]);
    assert_eq!(report["applied"], 1);
    assert_eq!(report["flagged"], 1);
    assert_eq!(on_hand(&app, "A").await, 9);
    assert_eq!(
        on_hand(&app, "B").await,
        10,
        "a flagged difference waits for a person"
    );
    let (_, stats) = app.get("/v1/reconcile/stats").await;
    assert_eq!(stats["counts"]["flagged"], 1, "{stats}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_change_between_the_comparison_and_the_apply_is_a_conflict_not_an_overwrite() {
    use stockflow_core::ids::TenantId;
    use stockflow_core::reconcile::ApplyMode;
    use stockflow_server::reconcile::counts::{self, CountFormat, ImportOptions};
    let app = spawn_app("count-conflict").await;
    app.post(
        "/v1/events",
        json!({"events": [received("e1", 1, "A", "east", 10), received("e2", 2, "B", "east", 10)]}),
    )
    .await;
    let at = now();
    let file = format!("sku,location,counted,counted_at\nA,east,8,{at}\nB,east,7,{at}\n");
    let (rows, malformed) = counts::parse(file.as_bytes(), CountFormat::Csv, None, 10).unwrap();
    let state = &app.server.as_ref().unwrap().state;
    let tenant = TenantId::default_tenant();
    let options = ImportOptions {
        mode: ApplyMode::All,
        apply_valid_rows: false,
    };
    let plan = counts::plan(state, &tenant, rows, malformed, options)
        .await
        .unwrap();
    assert_eq!(plan.discrepancies.len(), 2);
    // A receipt of A lands after the comparison and before the apply.
    app.post("/v1/events", received("e3", 3, "A", "east", 5))
        .await;
    let report = counts::execute(state, &tenant, plan).await.unwrap();
    let report = serde_json::to_value(&report).unwrap();
    assert_eq!(summary(&report), ["2:A:-2:conflict", "3:B:-3:applied"]);
    assert_eq!(report["conflicts"], 1);
    assert_eq!(
        on_hand(&app, "A").await,
        15,
        "the receipt stands; the count did not overwrite it"
    );
    assert_eq!(on_hand(&app, "B").await, 7);
    app.shutdown().await;
}

/// Over 200 keys the trail is read once from the earliest count time rather than key by key;
/// the accounting is the same.
#[tokio::test]
async fn a_large_count_accounts_for_moves_after_it_the_same_way() {
    let app = spawn_app("count-large").await;
    let skus: Vec<String> = (0..250).map(|i| format!("SKU-{i:04}")).collect();
    let events: Vec<Value> = skus
        .iter()
        .enumerate()
        .map(|(i, sku)| received(&format!("e{i}"), i as u64 + 1, sku, "east", 5))
        .collect();
    app.post("/v1/events", json!({"events": events})).await;
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let at = now();
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let pick = json!({"event_id": "p1", "source": "wms", "seq": 251, "type": "picked", "sku": "SKU-0007", "location": "east", "quantity": 2});
    app.post("/v1/events", pick).await;
    let mut csv = String::from("sku,location,counted,counted_at\n");
    for sku in &skus {
        let counted = if sku == "SKU-0100" { 4 } else { 5 };
        csv.push_str(&format!("{sku},east,{counted},{at}\n"));
    }
    let (status, report) = post_count(&app, "", "text/csv", csv).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["matched"], 249,
        "SKU-0007's pick came after the count"
    );
    assert_eq!(summary(&report), ["102:SKU-0100:-1:reported"]);
    app.shutdown().await;
}

#[tokio::test]
async fn a_count_over_the_size_limit_is_refused_while_it_streams() {
    let app = spawn_with("count-limit", |config| {
        config.reconcile.counts.bytes_max = 1024
    })
    .await;
    let big = format!("sku,location,counted\n{}", "SKU-1,east,1\n".repeat(200));
    let (status, problem) = post_count(&app, "", "text/csv", big).await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(problem["code"], "count_too_large");
    app.shutdown().await;
}

#[tokio::test]
async fn a_count_may_be_larger_than_the_limit_on_json_bodies() {
    let app = spawn_with("count-big", |config| config.http.body_limit_bytes = 2048).await;
    let at = now();
    let rows: String = (0..500)
        .map(|i| format!("SKU-{i:04},east,0,{at}\n"))
        .collect();
    let csv = format!("sku,location,counted,counted_at\n{rows}");
    assert!(csv.len() > 2048 * 10);
    let (status, report) = post_count(&app, "", "text/csv", csv).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["matched"], 500);
    app.shutdown().await;
}

mod channels {
    use crate::support::{App, received, spawn_with};
    use serde_json::{Value, json};
    use std::time::{Duration, Instant};
    use stockflow_core::reconcile::DriftPolicy;
    use stockflow_sim::shopify::{self, ShopifyConfig, ShopifyHandle};
    use stockflow_sim::{Catalogue, CatalogueSpec};

    const TOKEN: &str = "shpat_sandbox";
    const EAST: &str = "gid://shopify/Location/70001";

    async fn sandbox() -> ShopifyHandle {
        let catalogue = Catalogue::generate(&CatalogueSpec::new(&["SKU-1", "SKU-2"], &["east"], 0));
        shopify::start(ShopifyConfig::new(catalogue.shopify, TOKEN))
            .await
            .unwrap()
    }

    async fn app(name: &str, sandbox: &ShopifyHandle, policy: DriftPolicy) -> App {
        scheduled(name, sandbox, policy, 0).await
    }

    async fn scheduled(
        name: &str,
        sandbox: &ShopifyHandle,
        policy: DriftPolicy,
        interval_seconds: u64,
    ) -> App {
        let base_url = sandbox.base_url();
        spawn_with(name, |config| {
            config.channels.insert(
                "shop".into(),
                json!({"kind": "shopify", "serves": ["east"], "base_url": base_url,
                       "access_token": TOKEN, "locations": {"east": EAST},
                       "sync": {"batch_linger_ms": 10}}),
            );
            config
                .reconcile
                .channels
                .drift_policies
                .insert("shop".into(), policy);
            config.reconcile.channels.page_keys = 1;
            config.reconcile.channels.interval_seconds = interval_seconds;
            config.alerts.resolve_after_seconds = 0;
            config.alerts.evaluate_every_ms = 3_600_000;
        })
        .await
    }

    async fn until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stocked(app: &App, sandbox: &ShopifyHandle) {
        let events = json!({"events": [received("e1", 1, "SKU-1", "east", 7), received("e2", 2, "SKU-2", "east", 4)]});
        let (status, body) = app.post("/v1/events", events).await;
        assert_eq!(status, 200, "{body}");
        until("the channel to show the stock", || {
            sandbox.quantity("SKU-1", EAST, "available") == Some(7)
                && sandbox.quantity("SKU-2", EAST, "available") == Some(4)
        })
        .await;
    }

    fn classes(run: &Value) -> Value {
        let report = &run["channels"][0];
        json!({"checked": report["checked"], "matches": report["matches"], "drift": report["drift"],
               "mismatched": report["mismatched"], "mismatch_rate": report["mismatch_rate"]})
    }

    #[tokio::test]
    async fn a_merchant_edit_is_found_as_drift_overwritten_and_counted() {
        let sandbox = sandbox().await;
        let app = app("reconcile-overwrite", &sandbox, DriftPolicy::Overwrite).await;
        stocked(&app, &sandbox).await;
        let (status, run) = app.post("/v1/reconcile/channels", json!({})).await;
        assert_eq!(status, 200, "{run}");
        assert_eq!(
            classes(&run),
            json!({"checked": 2, "matches": 2, "drift": 0, "mismatched": 0, "mismatch_rate": 0.0})
        );

        sandbox
            .merchant_set("SKU-1", EAST, "available", 12)
            .unwrap();
        let (status, run) = app.post("/v1/reconcile/channels/shop", json!({})).await;
        assert_eq!(status, 200, "{run}");
        assert_eq!(
            classes(&run),
            json!({"checked": 2, "matches": 1, "drift": 1, "mismatched": 1, "mismatch_rate": 0.5})
        );
        let mismatch = &run["channels"][0]["mismatches"][0];
        assert_eq!(mismatch["sku"], "SKU-1");
        assert_eq!(mismatch["shown"], 12);
        assert_eq!(mismatch["acknowledged"], 7);
        assert_eq!(mismatch["repair"], "overwritten");
        until("the ledger's value to be sent again", || {
            sandbox.quantity("SKU-1", EAST, "available") == Some(7)
        })
        .await;
        let (_, alerts) = app.post("/v1/alerts/evaluate", json!({})).await;
        let open = &alerts["open"][0];
        assert_eq!(
            (&open["rule"], &open["subject"]),
            (&json!("reconciliation_mismatch"), &json!("shop")),
            "{alerts}"
        );
        assert_eq!(open["value"], 0.5);
        // Once the channel shows the ledger's value again, a run finds nothing and the alert
        // resolves.
        let (_, clean) = app.post("/v1/reconcile/channels/shop", json!({})).await;
        assert_eq!(clean["mismatched"], 0, "{clean}");
        let (_, alerts) = app.post("/v1/alerts/evaluate", json!({})).await;
        assert_eq!(alerts["open"], json!([]), "{alerts}");
        assert_eq!(alerts["resolved"][0]["rule"], "reconciliation_mismatch");

        let (_, runs) = app.get("/v1/reconcile/runs").await;
        let rates: Vec<&Value> = runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["mismatch_rate"])
            .collect();
        assert_eq!(rates, [&json!(0.0), &json!(0.5), &json!(0.0)]);
        let (_, stats) = app.get("/v1/reconcile/stats").await;
        assert_eq!(stats["channels"]["shop"]["checked"], 6, "{stats}");
        assert_eq!(stats["channels"]["shop"]["mismatched"], 1);
        assert_eq!(stats["channels"]["shop"]["last_mismatch_rate"], 0.0);
        let (_, kpis) = app.get("/v1/kpis").await;
        assert_eq!(
            kpis["windows"][0]["reconciliation"]["mismatched"], 1,
            "{kpis}"
        );
        let (status, problem) = app.post("/v1/reconcile/channels/nowhere", json!({})).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (404, Some("unknown_channel"))
        );
        app.shutdown().await;
    }

    #[tokio::test]
    async fn a_channel_whose_edits_are_accepted_moves_the_ledger() {
        let sandbox = sandbox().await;
        let app = app("reconcile-accept", &sandbox, DriftPolicy::Accept).await;
        stocked(&app, &sandbox).await;
        sandbox.merchant_set("SKU-2", EAST, "available", 1).unwrap();
        let (status, run) = app.post("/v1/reconcile/channels/shop", json!({})).await;
        assert_eq!(status, 200, "{run}");
        assert_eq!(run["channels"][0]["accepted"], 1, "{run}");
        let (_, sku) = app.get("/v1/skus/SKU-2").await;
        assert_eq!(sku["locations"][0]["on_hand"], 1, "{sku}");
        let (_, audit) = app
            .get("/v1/audit?sku=SKU-2&reason=channel%20drift%20accepted%20from%20shop")
            .await;
        assert_eq!(audit["entries"].as_array().unwrap().len(), 1, "{audit}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            sandbox.quantity("SKU-2", EAST, "available"),
            Some(1),
            "the edit stands"
        );
        app.shutdown().await;
    }

    #[tokio::test]
    async fn runs_also_happen_on_a_schedule_and_repair_what_they_find() {
        let sandbox = sandbox().await;
        let app = scheduled("reconcile-schedule", &sandbox, DriftPolicy::Overwrite, 1).await;
        stocked(&app, &sandbox).await;
        sandbox
            .merchant_set("SKU-2", EAST, "available", 40)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, runs) = app.get("/v1/reconcile/runs").await;
            let found = runs["runs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|run| run["trigger"] == "schedule" && run["channels"][0]["drift"] == 1);
            if found {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no scheduled run found the drift: {runs}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        until("the scheduled run's repair", || {
            sandbox.quantity("SKU-2", EAST, "available") == Some(4)
        })
        .await;
        app.shutdown().await;
    }

    /// Amazon is told one quantity per SKU (its listing), read back through the Listings Items
    /// API. An order Amazon took that stockflow never heard of shows as drift; accepted, it
    /// becomes an adjustment at the channel's one location.
    #[tokio::test]
    async fn amazon_listing_quantities_are_read_back_and_an_unreported_sale_is_found() {
        use stockflow_sim::amazon::{self, AmazonConfig};
        let catalogue = Catalogue::generate(&CatalogueSpec::new(&["SKU-1", "SKU-2"], &["east"], 0));
        let mut config = AmazonConfig::new(catalogue.amazon, "token");
        config.apply_delay = Duration::from_millis(50);
        config.never_applied_share = 0.0;
        let sandbox = amazon::start(config).await.unwrap();
        let base_url = sandbox.base_url();
        let app = spawn_with("reconcile-amazon", |config| {
            config.channels.insert(
                "amazon".into(),
                json!({"kind": "amazon", "serves": ["east"], "base_url": base_url,
                       "seller_id": "A2SANDBOXSELLER", "marketplace_ids": ["ATVPDKIKX0DER"],
                       "access_token": "token"}),
            );
            config
                .reconcile
                .channels
                .drift_policies
                .insert("amazon".into(), DriftPolicy::Accept);
        })
        .await;
        let events = json!({"events": [received("e1", 1, "SKU-1", "east", 7), received("e2", 2, "SKU-2", "east", 4)]});
        app.post("/v1/events", events).await;
        until("Amazon to list the stock", || {
            sandbox.quantity("SKU-1") == Some(7) && sandbox.quantity("SKU-2") == Some(4)
        })
        .await;
        // Let the engine's own read-back of the queued values settle before reconciling.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, run) = app.post("/v1/reconcile/channels/amazon", json!({})).await;
        assert_eq!(status, 200, "{run}");
        assert_eq!(
            classes(&run),
            json!({"checked": 2, "matches": 2, "drift": 0, "mismatched": 0, "mismatch_rate": 0.0})
        );

        sandbox.place_order("SKU-1", 2).unwrap();
        let (_, run) = app.post("/v1/reconcile/channels/amazon", json!({})).await;
        assert_eq!(
            classes(&run),
            json!({"checked": 2, "matches": 1, "drift": 1, "mismatched": 1, "mismatch_rate": 0.5})
        );
        let mismatch = &run["channels"][0]["mismatches"][0];
        assert_eq!(
            (
                &mismatch["location"],
                &mismatch["shown"],
                &mismatch["repair"]
            ),
            (&Value::Null, &json!(5), &json!("accepted")),
            "{run}"
        );
        let (_, sku) = app.get("/v1/skus/SKU-1").await;
        assert_eq!(sku["locations"][0]["on_hand"], 5, "{sku}");
        app.shutdown().await;
    }

    /// TikTok is told per warehouse and read back through its inventory search.
    #[tokio::test]
    async fn tiktok_warehouse_quantities_are_read_back_and_drift_overwritten() {
        use stockflow_sim::tiktok::{self, TikTokConfig};
        let catalogue = Catalogue::generate(&CatalogueSpec::new(&["SKU-1"], &["east"], 0)).tiktok;
        let sandbox = tiktok::start(TikTokConfig::new(
            catalogue.clone(),
            "key",
            "secret",
            "ROW_token",
            "GCP_cipher",
        ))
        .await
        .unwrap();
        let warehouse = catalogue.warehouse_ids[0].clone();
        let sku_id = catalogue.products[0].skus[0].id.clone();
        let base_url = sandbox.base_url();
        let product_id = catalogue.products[0].product_id.clone();
        let app = spawn_with("reconcile-tiktok", |config| {
            config.channels.insert(
                "tt".into(),
                json!({"kind": "tiktok", "base_url": base_url, "app_key": "key",
                       "app_secret": "secret", "access_token": "ROW_token",
                       "shop_cipher": "GCP_cipher", "locations": {"east": warehouse},
                       "items": {"SKU-1": {"product_id": product_id, "sku_id": sku_id}}}),
            );
        })
        .await;
        app.post("/v1/events", received("e1", 1, "SKU-1", "east", 6))
            .await;
        until("TikTok to show the stock", || {
            sandbox.quantity(&sku_id, &warehouse) == Some(6)
        })
        .await;
        let (status, run) = app.post("/v1/reconcile/channels/tt", json!({})).await;
        assert_eq!(status, 200, "{run}");
        assert_eq!(
            classes(&run),
            json!({"checked": 1, "matches": 1, "drift": 0, "mismatched": 0, "mismatch_rate": 0.0})
        );
        // A sale stockflow never heard of (no order webhook): the warehouse shows 4.
        sandbox.place_order(&sku_id, &warehouse, 2).unwrap();
        let (_, run) = app.post("/v1/reconcile/channels/tt", json!({})).await;
        assert_eq!(
            classes(&run),
            json!({"checked": 1, "matches": 0, "drift": 1, "mismatched": 1, "mismatch_rate": 1.0})
        );
        assert_eq!(
            run["channels"][0]["mismatches"][0]["location"], "east",
            "{run}"
        );
        until("the ledger's value to be sent again", || {
            sandbox.quantity(&sku_id, &warehouse) == Some(6)
        })
        .await;
        app.shutdown().await;
    }
}
