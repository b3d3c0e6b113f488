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
