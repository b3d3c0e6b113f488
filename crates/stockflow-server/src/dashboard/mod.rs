//! The dashboard served at `/`: a page, a script and a style sheet compiled into the binary (no
//! CDN, no external library), and its live stream of server-sent events.
//!
//! The stream never forwards events. A hub task drains the server's [`crate::app::Live`] set of
//! touched SKUs once per interval and publishes it; each browser's stream, at most once per
//! `dashboard.stream_interval_ms`, sends one `update` event with what changed since its last
//! one: the rows of its visible page whose view changed (a row is compared by the identity of
//! the published view, so nothing is sent twice), and the summary (KPI tiles, latency chart,
//! channel sync stats, writer state) when it differs. A browser says which SKUs it shows in the
//! query (`skus`, space separated: SKUs never contain spaces) and opens a new stream when its
//! page changes. Streams are limited to `dashboard.stream_clients_max` at once; the route is
//! outside the request timeout.

use crate::app::AppState;
use crate::problem::Problem;
use crate::wire::skus::SkuOut;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stockflow_core::ids::{Sku, TenantId};
use stockflow_core::ledger::SkuView;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// SKUs one stream follows at most (a page of the table).
pub const STREAM_SKUS_MAX: usize = 200;
/// Seconds between keep-alive comments on a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// The page and its assets.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/dashboard/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/dashboard/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route(
            "/dashboard/favicon.svg",
            get(|| asset("image/svg+xml", FAVICON_SVG)),
        )
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The live stream, to be mounted outside the request timeout (it would cut the stream).
pub fn stream_routes(state: &AppState) -> Router<AppState> {
    let hub = Arc::new(Hub::start(state));
    Router::new()
        .route("/v1/dashboard/stream", get(stream))
        .layer(axum::Extension(hub))
}

/// SKUs touched since the previous batch, numbered.
#[derive(Default)]
struct Touched {
    generation: u64,
    skus: HashSet<(TenantId, Sku)>,
    /// More SKUs changed than the server kept: every visible row must be looked at.
    overflowed: bool,
}

/// What every stream shares: the client limit, the touched SKUs, and the summary (computed at
/// most once per interval whatever the number of browsers).
struct Hub {
    clients: Arc<Semaphore>,
    touched: watch::Receiver<Arc<Touched>>,
    summary: Mutex<Option<(Instant, Arc<Summary>)>>,
    interval: Duration,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hub {
    fn start(state: &AppState) -> Self {
        let interval = Duration::from_millis(state.config.dashboard.stream_interval_ms);
        let (sender, touched) = watch::channel(Arc::new(Touched::default()));
        let task = tokio::spawn(drain_live(state.live.clone(), sender, interval));
        Self {
            clients: Arc::new(Semaphore::new(state.config.dashboard.stream_clients_max)),
            touched,
            summary: Mutex::new(None),
            interval,
            task,
        }
    }

    /// The summary as of at most one interval ago.
    fn summary(&self, state: &AppState) -> Arc<Summary> {
        let mut cached = self.summary.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, summary)) = cached.as_ref()
            && at.elapsed() < self.interval
        {
            return summary.clone();
        }
        let fresh = Summary::compute(state);
        // Unchanged content keeps its identity, so that streams do not send it again.
        let summary = match cached.as_ref() {
            Some((_, previous)) if previous.text == fresh.text => previous.clone(),
            _ => Arc::new(fresh),
        };
        *cached = Some((Instant::now(), summary.clone()));
        summary
    }
}

/// Takes the touched SKUs from the writer's side once per interval, while anyone listens.
async fn drain_live(
    live: Arc<crate::app::Live>,
    sender: watch::Sender<Arc<Touched>>,
    interval: Duration,
) {
    let mut changed = live.subscribe();
    let mut generation = 0;
    loop {
        if changed.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(interval).await;
        changed.borrow_and_update();
        let (skus, overflowed) = live.take();
        if sender.receiver_count() <= 1 {
            continue;
        }
        generation += 1;
        sender.send_replace(Arc::new(Touched {
            generation,
            skus: skus.into_iter().collect(),
            overflowed,
        }));
    }
}

/// The tiles, chart and channel panel: the same for every browser.
struct Summary {
    value: Value,
    /// The value as JSON without its time, to tell whether anything changed.
    text: String,
}

impl Summary {
    fn compute(state: &AppState) -> Self {
        let now = state.now();
        let mut kpis = serde_json::to_value(state.kpis.report(now)).unwrap_or(Value::Null);
        if let Some(object) = kpis.as_object_mut() {
            object.remove("at");
        }
        let value = json!({
            "kpis": kpis,
            "latency": state.kpis.latency_series(now),
            "channels": channels(state),
            "writer": writer(state),
        });
        let text = value.to_string();
        Self { value, text }
    }
}

/// Per channel: what the sync panel shows.
fn channels(state: &AppState) -> Value {
    let Some(sync) = &state.sync else {
        return json!([]);
    };
    let full_syncs = state.full_syncs.progress();
    sync.stats()
        .into_iter()
        .map(|c| {
            json!({
                "channel": c.channel,
                "kind": c.kind,
                "queue_depth": c.queue_depth,
                "lag_ms": c.oldest_pending_age_ms,
                "acknowledged": c.acknowledged,
                "rate_limited": c.rate_limited,
                "retries": c.retries,
                "drift": c.drift,
                "errors": c.errors.values().sum::<u64>(),
                "last_error": c.last_error.as_ref().map(|e| format!("{}: {}", e.code, e.message)),
                "p50_ms": c.propagation_latency.p50_ms,
                "p99_ms": c.propagation_latency.p99_ms,
                "full_sync": full_syncs.get(&c.channel),
            })
        })
        .collect()
}

fn writer(state: &AppState) -> Value {
    let stats = state.engine.stats();
    json!({
        "healthy": stats.healthy(),
        "journal_position": stats.shards.iter().map(|s| s.last_position).sum::<u64>(),
        "queue_depth": stats.shards.iter().map(|s| s.queue_depth).sum::<usize>(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// The SKUs of the visible page, separated by spaces.
    #[serde(default)]
    pub skus: String,
    /// The tenant (browsers cannot set headers on an event stream); `default` when absent.
    pub tenant: Option<String>,
}

/// One `update` event.
#[derive(Serialize)]
struct Update {
    seq: u64,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<Value>,
    rows: Vec<SkuOut>,
    /// Visible SKUs that no longer have a view.
    gone: Vec<String>,
}

async fn stream(
    State(state): State<AppState>,
    axum::Extension(hub): axum::Extension<Arc<Hub>>,
    Query(query): Query<StreamQuery>,
) -> Result<Response, Problem> {
    let (tenant, visible) = parse_query(&query)?;
    let permit = hub.clients.clone().try_acquire_owned().map_err(|_| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            "the dashboard stream has as many browsers as it serves; retry later",
        )
        .with_retry_after(5)
    })?;
    let mut ticks = tokio::time::interval(hub.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let client = Client {
        closing: state.live.closing(),
        touched: hub.touched.clone(),
        hub,
        state,
        tenant,
        visible,
        sent_rows: HashMap::new(),
        sent_summary: None,
        generation: None,
        ticks,
        seq: 0,
        _permit: permit,
    };
    let events = futures::stream::unfold(client, |mut client| async move {
        let event = client.next_event().await?;
        Some((Ok::<Event, Infallible>(event), client))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

fn parse_query(query: &StreamQuery) -> Result<(TenantId, Vec<Sku>), Problem> {
    let tenant = match &query.tenant {
        Some(tenant) => crate::api::parse_path_id("tenant", tenant, TenantId::parse)?,
        None => TenantId::default_tenant(),
    };
    let visible: Vec<Sku> = query
        .skus
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| crate::api::parse_path_id("skus", s, Sku::parse))
        .collect::<Result<_, _>>()?;
    if visible.len() > STREAM_SKUS_MAX {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "too_many_skus",
            format!("a stream follows at most {STREAM_SKUS_MAX} SKUs"),
        ));
    }
    Ok((tenant, visible))
}

/// One browser's stream: what it was last sent.
struct Client {
    hub: Arc<Hub>,
    state: AppState,
    tenant: TenantId,
    visible: Vec<Sku>,
    sent_rows: HashMap<Sku, Arc<SkuView>>,
    sent_summary: Option<Arc<Summary>>,
    touched: watch::Receiver<Arc<Touched>>,
    /// The server is stopping: the stream ends.
    closing: watch::Receiver<bool>,
    /// The touched batch last looked at; `None` before the first update (send everything).
    generation: Option<u64>,
    ticks: tokio::time::Interval,
    seq: u64,
    /// Held for the stream's life: the client limit.
    _permit: OwnedSemaphorePermit,
}

impl Client {
    /// Waits for the next tick with something to say, and says it; `None` once the server
    /// stops.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if *self.closing.borrow() {
                return None;
            }
            tokio::select! {
                _ = self.ticks.tick() => {}
                _ = self.closing.changed() => return None,
            }
            if let Some(update) = self.collect() {
                return Some(
                    Event::default()
                        .event("update")
                        .json_data(&update)
                        .unwrap_or_else(|_| Event::default().comment("unserialisable update")),
                );
            }
        }
    }

    fn collect(&mut self) -> Option<Update> {
        let (rows, gone) = self.changed_rows();
        let summary = self.hub.summary(&self.state);
        let summary_changed = self
            .sent_summary
            .as_ref()
            .is_none_or(|sent| !Arc::ptr_eq(sent, &summary));
        if rows.is_empty() && gone.is_empty() && !summary_changed {
            return None;
        }
        self.seq += 1;
        let summary = summary_changed.then(|| {
            self.sent_summary = Some(summary.clone());
            summary.value.clone()
        });
        Some(Update {
            seq: self.seq,
            at: crate::wire::format_time(self.state.now()),
            summary,
            rows,
            gone,
        })
    }

    /// The visible rows whose published view is not the one last sent.
    fn changed_rows(&mut self) -> (Vec<SkuOut>, Vec<String>) {
        let touched = self.touched.borrow_and_update().clone();
        let candidates: Vec<Sku> = match self.generation {
            Some(seen) if touched.generation == seen => Vec::new(),
            Some(seen) if touched.generation == seen + 1 && !touched.overflowed => self
                .visible
                .iter()
                .filter(|sku| {
                    touched
                        .skus
                        .contains(&(self.tenant.clone(), (*sku).clone()))
                })
                .cloned()
                .collect(),
            // The first update, a batch missed, or more changed than was kept: look at all.
            _ => self.visible.clone(),
        };
        self.generation = Some(touched.generation);
        let reads = self.state.engine.reads();
        let (mut rows, mut gone) = (Vec::new(), Vec::new());
        for sku in candidates {
            match reads.sku(&self.tenant, &sku) {
                Some(view) => {
                    let same = self
                        .sent_rows
                        .get(&sku)
                        .is_some_and(|sent| Arc::ptr_eq(sent, &view));
                    if !same {
                        rows.push(SkuOut::from_view(&view));
                        self.sent_rows.insert(sku, view);
                    }
                }
                None => {
                    if self.sent_rows.remove(&sku).is_some() {
                        gone.push(sku.to_string());
                    }
                }
            }
        }
        (rows, gone)
    }
}
