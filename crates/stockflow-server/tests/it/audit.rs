//! The audit trail: filters (source), export as CSV and JSON lines across pages, and the
//! quantities of a SKU as they were at a past instant.

use crate::support::{App, received, spawn_app};
use serde_json::{Value, json};
use std::time::Duration;

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn text(app: &App, path: &str) -> (u16, String, String) {
    let response = app
        .client
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// Every audit id the paged `GET /v1/audit` answers for `filters`.
async fn audit_ids(app: &App, filters: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = app
            .get(&format!("/v1/audit?limit=1000&{filters}{after}"))
            .await;
        assert_eq!(status, 200, "{page}");
        ids.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_u64().unwrap()),
        );
        match page["next_after"].as_u64() {
            Some(next) => after = format!("&after={next}"),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn the_trail_is_filtered_by_source_and_exported_in_both_formats_across_pages() {
    let app = spawn_app("audit-export").await;
    let events: Vec<Value> = (0..1000)
        .map(|i| received(&format!("a{i}"), i + 1, &format!("SKU-{i:04}"), "east", 1))
        .collect();
    let (status, body) = app.post("/v1/events", json!({"events": events})).await;
    assert_eq!(status, 200, "{body}");
    let events: Vec<Value> = (0..150)
        .map(|i| {
            json!({"event_id": format!("b{i}"), "source": "wms-west", "seq": i + 1, "type": "received",
                   "sku": "SKU-0001", "location": "west", "quantity": 2, "reason": "inbound, \"PO\" 7"})
        })
        .collect();
    app.post("/v1/events", json!({"events": events})).await;

    let west = audit_ids(&app, "source=wms-west").await;
    assert_eq!(west.len(), 150, "one entry per receipt");
    assert_eq!(audit_ids(&app, "actor=wms-west").await, west);
    let (status, problem) = app.get("/v1/audit?source=wms-west&actor=wms").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("conflicting_filters"))
    );

    let all = audit_ids(&app, "").await;
    assert!(all.len() >= 1150, "{}", all.len());
    let (status, content_type, csv) = text(&app, "/v1/audit/export?format=csv").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(&reader.headers().unwrap()[0], "id");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let ids: Vec<u64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(ids, all, "every entry, once, in order, across pages");
    let last = rows.last().unwrap();
    assert_eq!(&last[3], "SKU-0001");
    assert_eq!(&last[9], "wms-west");
    assert_eq!(&last[10], "inbound, \"PO\" 7", "quoting survives");
    assert_eq!((&last[12], &last[13]), ("298", "300"), "{last:?}");

    let (status, content_type, jsonl) = text(
        &app,
        "/v1/audit/export?format=jsonl&source=wms-west&limit=100",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/x-ndjson");
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 100, "the limit holds");
    let ids: Vec<u64> = lines.iter().map(|l| l["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, west[..100]);
    assert_eq!(lines[0]["change"]["after"]["on_hand"], 2);

    let (status, _, _) = text(&app, "/v1/audit/export?format=xml").await;
    assert_eq!(status, 400);
    app.shutdown().await;
}

#[tokio::test]
async fn as_of_answers_the_quantities_captured_at_that_instant() {
    let app = spawn_app("audit-as-of").await;
    let before = now();
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.post("/v1/events", json!({"events": [received("e1", 1, "SKU-1", "east", 10), received("e2", 2, "SKU-1", "west", 5)]}))
        .await;
    let (status, _) = app
        .post("/v1/reservations", json!({"reservation_id": "r1", "channel": null, "lines": [{"sku": "SKU-1", "quantity": 2, "location": "east"}], "ttl_seconds": 900}))
        .await;
    assert!(status == 201 || status == 200, "{status}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (_, captured) = app.get("/v1/skus/SKU-1").await;
    let instant = now();
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.post("/v1/events", json!({"events": [
        {"event_id": "e3", "source": "wms", "seq": 3, "type": "picked", "sku": "SKU-1", "location": "east", "quantity": 3},
        received("e4", 4, "SKU-1", "west", 2),
    ]}))
    .await;

    let (status, past) = app.get(&format!("/v1/skus/SKU-1?as_of={instant}")).await;
    assert_eq!(status, 200, "{past}");
    let fields = [
        "location",
        "on_hand",
        "available",
        "reserved",
        "committed",
        "damaged",
        "quality_control",
        "safety_stock",
        "incoming",
        "version",
    ];
    let pick = |locations: &Value| -> Vec<Value> {
        locations
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                fields
                    .iter()
                    .map(|f| (f.to_string(), l[f].clone()))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            })
            .collect()
    };
    assert_eq!(pick(&past["locations"]), pick(&captured["locations"]));
    assert_eq!(past["totals"]["on_hand"], 15);
    assert_eq!(past["totals"]["reserved"], 2);
    let (_, current) = app.get("/v1/skus/SKU-1").await;
    assert_eq!(
        current["totals"]["on_hand"], 14,
        "the present is unchanged by asking the past"
    );

    let (status, problem) = app.get(&format!("/v1/skus/SKU-1?as_of={before}")).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("unknown_sku"))
    );
    let (status, _) = app.get("/v1/skus/SKU-1?as_of=yesterday").await;
    assert_eq!(status, 400);
    app.shutdown().await;
}
