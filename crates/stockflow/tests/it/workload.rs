//! A workload streamed by concurrent clients, and what it must find after a restart.
//!
//! Event client `k` is the only producer of source `wms-k` and the only writer of SKU `EV-k`,
//! sending `received` events (alone, and in batches) one request at a time; reservation client
//! `k` reserves one unit of `SKU-R` per request. Every acknowledged request is recorded. A
//! client stops at its first request without a whole answer (the server went away): that
//! request is `lost`, it may or may not have been applied, and each client has at most one.
//!
//! [`check`] then holds the restarted server to invariant 3: every acknowledged change is there
//! exactly once, and a lost request is there entirely or not at all. Re-sending it settles
//! which, and leaves it applied, so that the next round starts from a fully known state.

use crate::support::{Serve, client, post};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub const RESERVED_SKU: &str = "SKU-R";
const LOCATION: &str = "east";
const STOCK: i64 = 1_000_000;

#[derive(Debug, Clone, Default)]
pub struct EventClient {
    pub index: usize,
    pub next_seq: u64,
    /// Every event acknowledged as applied, and the sum of their quantities.
    pub acked: Vec<Value>,
    pub acked_quantity: i64,
    /// The request in flight when the server went away.
    pub lost: Option<Vec<Value>>,
    pub requests: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ReservationClient {
    pub index: usize,
    pub next: u64,
    pub acked: Vec<String>,
    pub lost: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Model {
    pub events: Vec<EventClient>,
    pub reservations: Vec<ReservationClient>,
}

/// Requests acknowledged so far by every client of a stream, and the flag that stops them.
#[derive(Clone, Default)]
pub struct Progress {
    pub acknowledged: Arc<AtomicU64>,
    pub stop: Arc<AtomicBool>,
}

impl Model {
    pub fn new(event_clients: usize, reservation_clients: usize) -> Model {
        Model {
            events: (0..event_clients)
                .map(|index| EventClient {
                    index,
                    next_seq: 1,
                    ..EventClient::default()
                })
                .collect(),
            reservations: (0..reservation_clients)
                .map(|index| ReservationClient {
                    index,
                    ..ReservationClient::default()
                })
                .collect(),
        }
    }

    pub fn acknowledged_requests(&self) -> u64 {
        self.events.iter().map(|c| c.requests).sum::<u64>()
            + self
                .reservations
                .iter()
                .map(|c| c.acked.len() as u64)
                .sum::<u64>()
    }

    pub fn lost_requests(&self) -> usize {
        self.events.iter().filter(|c| c.lost.is_some()).count()
            + self
                .reservations
                .iter()
                .filter(|c| c.lost.is_some())
                .count()
    }
}

/// Receives the stock the reservation clients take from.
pub async fn stock(serve: &Serve) {
    let event = json!({"event_id": "setup-1", "source": "setup", "seq": 1, "type": "received",
        "sku": RESERVED_SKU, "location": LOCATION, "quantity": STOCK});
    let (status, body) = serve.post("/v1/events", &event).await;
    assert_eq!(status, 200, "{body}");
}

fn received(client: usize, seq: u64) -> Value {
    json!({"event_id": format!("wms-{client}-{seq}"), "source": format!("wms-{client}"),
        "seq": seq, "type": "received", "sku": format!("EV-{client}"), "location": LOCATION,
        "quantity": (seq % 5) + 1})
}

fn quantity_of(events: &[Value]) -> i64 {
    events.iter().map(|e| e["quantity"].as_i64().unwrap()).sum()
}

/// Every client streams until its first request without an answer, or until `progress.stop`.
pub async fn stream(url: &str, model: Model, progress: &Progress) -> Model {
    let events: Vec<_> = model
        .events
        .into_iter()
        .map(|client| tokio::spawn(event_client(url.to_owned(), client, progress.clone())))
        .collect();
    let reservations: Vec<_> = model
        .reservations
        .into_iter()
        .map(|client| tokio::spawn(reservation_client(url.to_owned(), client, progress.clone())))
        .collect();
    let mut model = Model::default();
    for task in events {
        model
            .events
            .push(task.await.expect("an event client panicked"));
    }
    for task in reservations {
        model
            .reservations
            .push(task.await.expect("a reservation client panicked"));
    }
    model
}

/// Single events and batches of 2 to 18, in turn.
async fn event_client(url: String, mut state: EventClient, progress: Progress) -> EventClient {
    let http = client();
    while !progress.stop.load(Ordering::Relaxed) {
        let count = if state.requests % 3 == 2 {
            state.requests % 17 + 2
        } else {
            1
        };
        let events: Vec<Value> = (0..count)
            .map(|offset| received(state.index, state.next_seq + offset))
            .collect();
        state.next_seq += count;
        let body = if count == 1 {
            events[0].clone()
        } else {
            json!({ "events": events })
        };
        match post(&http, &url, "/v1/events", &body).await {
            Ok((200, answer)) => {
                let results = answer["results"].as_array().expect("results");
                assert_eq!(results.len(), events.len(), "{answer}");
                assert!(
                    results.iter().all(|r| r["status"] == "applied"),
                    "a fresh event was not applied: {answer}"
                );
                state.acked_quantity += quantity_of(&events);
                state.acked.extend(events);
                state.requests += 1;
                progress.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            // Shutting down: nothing was applied, but keep it as lost (it is re-sent).
            Ok((503, _)) | Err(_) => {
                state.lost = Some(events);
                break;
            }
            Ok((status, answer)) => panic!("events: unexpected answer {status}: {answer}"),
        }
    }
    state
}

async fn reservation_client(
    url: String,
    mut state: ReservationClient,
    progress: Progress,
) -> ReservationClient {
    let http = client();
    while !progress.stop.load(Ordering::Relaxed) {
        let id = format!("r-{}-{}", state.index, state.next);
        state.next += 1;
        match post(&http, &url, "/v1/reservations", &reserve(&id)).await {
            Ok((201, answer)) => {
                assert_eq!(answer["state"], "provisional", "{answer}");
                state.acked.push(id);
                progress.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Ok((503, _)) | Err(_) => {
                state.lost = Some(id);
                break;
            }
            Ok((status, answer)) => panic!("reservation: unexpected answer {status}: {answer}"),
        }
    }
    state
}

fn reserve(id: &str) -> Value {
    json!({"reservation_id": id, "lines": [{"sku": RESERVED_SKU, "location": LOCATION,
        "quantity": 1}], "ttl_seconds": 86_400})
}

async fn on_hand(serve: &Serve, sku: &str) -> i64 {
    match serve.get(&format!("/v1/skus/{sku}")).await {
        (200, view) => view["totals"]["on_hand"].as_i64().expect("on_hand"),
        (404, _) => 0,
        (status, body) => panic!("GET {sku}: {status} {body}"),
    }
}

async fn reserved(serve: &Serve) -> i64 {
    let (status, view) = serve.get(&format!("/v1/skus/{RESERVED_SKU}")).await;
    assert_eq!(status, 200, "{view}");
    view["totals"]["reserved"].as_i64().expect("reserved")
}

/// What the restarted server must show; returns the model with every lost request settled
/// (and applied).
pub async fn check(serve: &Serve, mut model: Model) -> Model {
    for client in &mut model.events {
        let sku = format!("EV-{}", client.index);
        let found = on_hand(serve, &sku).await;
        let lost_quantity = client.lost.as_deref().map_or(0, quantity_of);
        let lost_applied = found != client.acked_quantity;
        if lost_applied {
            assert_eq!(
                found,
                client.acked_quantity + lost_quantity,
                "{sku}: acknowledged {} (+ {lost_quantity} unanswered), found {found}",
                client.acked_quantity
            );
        }
        eprintln!(
            "{sku}: {} events acknowledged, an unanswered request of {} events {}",
            client.acked.len(),
            client.lost.as_ref().map_or(0, Vec::len),
            if lost_applied {
                "applied"
            } else {
                "not applied"
            }
        );
        // Every acknowledged event again: a duplicate, changing nothing.
        for chunk in client.acked.chunks(1000) {
            let (status, answer) = serve.post("/v1/events", &json!({ "events": chunk })).await;
            assert_eq!(status, 200, "{answer}");
            let results = answer["results"].as_array().expect("results");
            assert!(
                results.iter().all(|r| r["status"] == "duplicate"),
                "{sku}: an acknowledged event was not a duplicate: {answer}"
            );
        }
        // The unanswered request: all duplicates if it was applied, all applied if not.
        if let Some(lost) = client.lost.take() {
            let (status, answer) = serve.post("/v1/events", &json!({ "events": lost })).await;
            assert_eq!(status, 200, "{answer}");
            let expected = if lost_applied { "duplicate" } else { "applied" };
            let results = answer["results"].as_array().expect("results");
            assert!(
                results.iter().all(|r| r["status"] == expected),
                "{sku}: the unanswered request was applied in part: expected all {expected}, \
                 got {answer}"
            );
            client.acked_quantity += quantity_of(&lost);
            client.acked.extend(lost);
            client.requests += 1;
        }
        assert_eq!(on_hand(serve, &sku).await, client.acked_quantity, "{sku}");
    }

    let acked: i64 = model
        .reservations
        .iter()
        .map(|c| c.acked.len() as i64)
        .sum();
    let mut lost_present = Vec::new();
    for client in &model.reservations {
        for id in &client.acked {
            let (status, answer) = serve.get(&format!("/v1/reservations/{id}")).await;
            assert_eq!(
                (status, answer["state"].as_str()),
                (200, Some("provisional")),
                "acknowledged reservation {id}: {answer}"
            );
        }
        if let Some(id) = &client.lost {
            let (status, answer) = serve.get(&format!("/v1/reservations/{id}")).await;
            match status {
                200 => lost_present.push(id.clone()),
                404 => {}
                _ => panic!("reservation {id}: {status} {answer}"),
            }
        }
    }
    eprintln!(
        "{RESERVED_SKU}: {acked} reservations acknowledged, {} unanswered, {} of them applied",
        model
            .reservations
            .iter()
            .filter(|c| c.lost.is_some())
            .count(),
        lost_present.len()
    );
    assert_eq!(
        reserved(serve).await,
        acked + lost_present.len() as i64,
        "reserved = acknowledged reservations + the unanswered ones that were applied"
    );
    for client in &mut model.reservations {
        if let Some(id) = client.lost.take() {
            let (status, answer) = serve.post("/v1/reservations", &reserve(&id)).await;
            // A repeat of a reservation that exists answers it (200); one that was never
            // applied is created now (201).
            let expected = if lost_present.contains(&id) { 200 } else { 201 };
            assert_eq!(status, expected, "re-sent reservation {id}: {answer}");
            client.acked.push(id);
        }
    }
    let total: i64 = model
        .reservations
        .iter()
        .map(|c| c.acked.len() as i64)
        .sum();
    assert_eq!(reserved(serve).await, total);
    model
}
