//! `stockflow bench sync`: propagation latency from event ingest to the channels'
//! acknowledgements at a sustained rate, through the real server in this process, against the
//! Shopify, Amazon and TikTok Shop sandboxes at their documented limits.
//!
//! 1. The sandboxes start with a catalogue of `--skus` SKUs at two locations: Shopify's Standard
//!    bucket (2,000 points refilling 100 a second; a quantity set costs 10 points and carries at
//!    most 250 quantities), Amazon's patchListingsItem (5 a second, burst 5) and TikTok Shop's
//!    10 calls a second (up to 100 SKUs of one product a call).
//! 2. A server on a temporary data directory takes the opening stock with no channel; restarted
//!    with the three channels, it runs their first full sync through the bulk paths; restarted
//!    again, it primes the channels with what they acknowledged. So the measured server starts
//!    with every channel in step and nothing queued, and its counters hold only the load.
//! 3. `--clients` warehouse producers post events over HTTP (`POST /v1/events`, `--batch` a
//!    request) at `--rate` events/s in total for `--seconds`: picks and receipts of a few units,
//!    `--empties` locations a second emptied and `--sellouts` SKUs a second sold out at both
//!    locations, each restocked 5 s later.
//! 4. Per channel, from the sync's stream of acknowledgements: the time from the change's
//!    ingest (the ledger's time for the event, carried on the availability change) to the
//!    channel's acknowledgement, all changes and drops to zero apart; the backlog and the age of
//!    its oldest change when the load stops. The internal latency, from ingest to the adapter's
//!    call being sent, as the sync engine records it per value sent (from the change's ingest
//!    time to the call's first request leaving).
//! 5. Checks: the sandboxes' own counts of limit violations (must be 0), and after the drain
//!    every Shopify and TikTok quantity equals what the ledger holds.

use super::machine;
use super::report::{LatencyRecorder, millis, thousands};
use anyhow::Context;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use stockflow_channels::{ChannelStats, SyncEngine, SyncEvent};
use stockflow_server::{Config, Server, ServerHandle};
use stockflow_sim::{Catalogue, CatalogueSpec, amazon, shopify, tiktok};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// Where a channel's limit carries the change rate (Shopify, TikTok): median and p99 of
/// ingest to acknowledgement.
const CARRIED_P50_TARGET: Duration = Duration::from_secs(1);
const CARRIED_P99_TARGET: Duration = Duration::from_secs(5);
/// Where it cannot (Amazon): the median of drops to zero.
const ZERO_P50_TARGET: Duration = Duration::from_secs(2);
/// Ingest to the adapter's call being sent, p99.
const INTERNAL_P99_TARGET: Duration = Duration::from_millis(50);

const LOCATIONS: [&str; 2] = ["east", "west"];
const SHOPIFY: &str = "shopify";
const AMAZON: &str = "amazon";
const TIKTOK: &str = "tiktok";
/// Channels in the order the report lists them.
const CHANNELS: [&str; 3] = [SHOPIFY, TIKTOK, AMAZON];
/// Units per SKU and location at the start.
const OPENING_STOCK: i64 = 50;
/// How long an emptied location stays empty before a receipt.
const RESTOCK_AFTER: Duration = Duration::from_secs(5);
/// Fewer keys than this get no bulk first sync (the server's threshold), and the preparation
/// would send the opening stock to Amazon one call at a time.
const SKUS_MIN: usize = 100;
/// How long the first full sync may take.
const FULL_SYNC_TIMEOUT: Duration = Duration::from_secs(180);
/// Attempts of one request answered 503 (the writer's queue full) or not answered at all.
const POST_ATTEMPTS_MAX: u32 = 20;

/// Credentials of the sandboxes, as a merchant would paste them into the configuration.
const SHOPIFY_TOKEN: &str = "shpat_bench";
const AMAZON_TOKEN: &str = "Atza|bench";
const TIKTOK_APP_KEY: &str = "6benchappkey";
const TIKTOK_APP_SECRET: &str = "tiktok-bench-app-secret";
const TIKTOK_TOKEN: &str = "TTP_bench";
const TIKTOK_SHOP_CIPHER: &str = "ROW_bench_cipher";

/// `stockflow bench sync` options. Defaults take about two minutes, more than half of it the
/// channels' first full sync before the measurement.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// A CI-sized run: fewer SKUs, a lower rate, a short load (a smoke test of the command,
    /// not a measurement).
    #[arg(long)]
    pub quick: bool,
    /// Events/s offered, in total [default: 5000, --quick: 500].
    #[arg(long)]
    pub rate: Option<u64>,
    /// Seconds of load [default: 20, --quick: 3].
    #[arg(long)]
    pub seconds: Option<u64>,
    /// SKUs, each at two locations (at least 100) [default: 1000, --quick: 200].
    #[arg(long)]
    pub skus: Option<usize>,
    /// SKUs a second sold out at both locations (drops to zero for Amazon too, which can
    /// carry at most 5 changes a second).
    #[arg(long, default_value_t = 2.0)]
    pub sellouts: f64,
    /// Locations a second emptied by a pick of everything left (drops to zero for Shopify and
    /// TikTok; for Amazon when the SKU's other location is empty too).
    #[arg(long, default_value_t = 10.0)]
    pub empties: f64,
    /// Concurrent producers (event sources), each posting its own SKUs' events in order.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Events per request (at most 1000).
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// Most seconds to wait after the load for Shopify's and TikTok's queues to empty
    /// [default: 15, --quick: 10].
    #[arg(long)]
    pub drain_seconds: Option<u64>,
    /// Where the temporary data directory goes [default: the system's temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The sizes in force, from the options and `--quick`.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    rate: u64,
    load: Duration,
    skus: usize,
    drain: Duration,
    clients: usize,
    batch: usize,
    sellouts: f64,
    empties: f64,
}

impl Plan {
    fn from(args: &SyncArgs) -> anyhow::Result<Plan> {
        let pick = |given: Option<u64>, full: u64, quick: u64| {
            given.unwrap_or(if args.quick { quick } else { full })
        };
        let plan = Plan {
            rate: pick(args.rate, 5_000, 500),
            load: Duration::from_secs(pick(args.seconds, 20, 3)),
            skus: pick(args.skus.map(|s| s as u64), 1_000, 200) as usize,
            drain: Duration::from_secs(pick(args.drain_seconds, 15, 10)),
            clients: args.clients,
            batch: args.batch,
            sellouts: args.sellouts,
            empties: args.empties,
        };
        anyhow::ensure!(plan.rate >= 1, "--rate must be at least 1 event/s");
        anyhow::ensure!(!plan.load.is_zero(), "--seconds must be at least 1");
        anyhow::ensure!(
            plan.skus >= SKUS_MIN,
            "--skus must be at least {SKUS_MIN}: with fewer, new channels get no bulk first sync"
        );
        anyhow::ensure!(
            (1..=1000).contains(&plan.batch),
            "--batch must be 1 to 1000 events (a request's limit)"
        );
        anyhow::ensure!(
            (1..=plan.skus).contains(&plan.clients),
            "--clients must be 1 to --skus (each producer owns some SKUs)"
        );
        anyhow::ensure!(
            plan.sellouts.is_finite() && plan.sellouts >= 0.0,
            "--sellouts must be a number of SKUs a second, 0 or more"
        );
        anyhow::ensure!(
            plan.empties.is_finite() && plan.empties >= 0.0,
            "--empties must be a number of locations a second, 0 or more"
        );
        Ok(plan)
    }

    /// Time between two requests of one producer.
    fn interval(&self) -> Duration {
        Duration::from_secs_f64((self.batch * self.clients) as f64 / self.rate as f64)
    }
}

pub async fn sync(args: SyncArgs) -> anyhow::Result<()> {
    let plan = Plan::from(&args)?;
    let machine = machine::Machine::read();
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let data = tempfile::Builder::new()
        .prefix("stockflow-bench-sync-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a data directory in {}", parent.display()))?;
    println!("stockflow bench sync");
    println!("command:    {}", super::command_line());
    println!("machine:    {machine}");
    println!(
        "data in:    {} on {}",
        data.path().display(),
        machine::filesystem_of(data.path())
    );
    println!(
        "load avg:   {} (1, 5, 15 min) at the start",
        machine::load_average()
    );
    println!(
        "load:       {} events/s for {} s over {} SKUs x {} locations, {} producers x {} events \
         a request over HTTP; {} SKUs/s sold out, {} locations/s emptied (restocked after {} s)",
        thousands(plan.rate as f64),
        plan.load.as_secs(),
        plan.skus,
        LOCATIONS.len(),
        plan.clients,
        plan.batch,
        plan.sellouts,
        plan.empties,
        RESTOCK_AFTER.as_secs()
    );
    if args.quick {
        println!("(--quick: CI-sized; the figures are not a measurement)");
    }

    let names: Vec<String> = (0..plan.skus).map(sku_name).collect();
    let sandboxes = Sandboxes::start(&names).await?;
    println!(
        "sandboxes:  Shopify {} points/s (bucket {}), Amazon {} PATCH/s (burst {}), TikTok {} \
         calls/s (burst {})",
        sandboxes.shopify_limit.rate_per_second,
        sandboxes.shopify_limit.burst,
        sandboxes.amazon_limit.rate_per_second,
        sandboxes.amazon_limit.burst,
        sandboxes.tiktok_limit.rate_per_second,
        sandboxes.tiktok_limit.burst
    );

    let prepared = Instant::now();
    open_stock(data.path(), &plan).await?;
    first_full_sync(data.path(), &sandboxes).await?;
    println!(
        "prepared:   opening stock and the channels' first full sync in {:.1} s",
        prepared.elapsed().as_secs_f64()
    );

    let server = Server::start(server_config(data.path(), &sandboxes, true))
        .await
        .context("starting the measured server")?;
    let sync = server
        .state
        .sync
        .clone()
        .context("the server started without its channel sync")?;
    let (resynced, baseline) = settle(&server, &sync).await?;
    if !resynced.is_empty() {
        println!(
            "note:       {} ran its first full sync again at the measured server's start (its \
             acknowledgements were not kept across the restart); the load began after it",
            resynced.join(", ")
        );
    }
    let (stop_following, stopped) = tokio::sync::watch::channel(false);
    let acknowledgements = tokio::spawn(follow_acknowledgements(sync.subscribe(), stopped));
    let measuring = Instant::now();
    let load = run_load(&server.url(), &plan).await;
    let at_end = sync.stats();
    let drained = drain(&sync, plan.drain).await;
    let after = sync.stats();
    let measured = measuring.elapsed();
    stop_following.send_replace(true);
    let figures = acknowledgements
        .await
        .context("the acknowledgement follower panicked")?;
    let load = load?;
    let check = check_quantities(&sandboxes, &load.stock);
    server.shutdown().await.context("stopping the server")?;

    let report = Report {
        plan: &plan,
        load: &load,
        figures: &figures,
        baseline: &baseline,
        at_end: &at_end,
        after: &after,
        drained,
        measured,
        check: &check,
        sandboxes: &sandboxes,
    };
    report.print();
    println!(
        "load avg:   {} (1, 5, 15 min) at the end",
        machine::load_average()
    );
    Ok(())
}

fn sku_name(index: usize) -> String {
    format!("SKU-{index:05}")
}

/// The three sandboxes and what they were started with.
struct Sandboxes {
    catalogue: Catalogue,
    shopify: shopify::ShopifyHandle,
    amazon: amazon::AmazonHandle,
    tiktok: tiktok::TikTokHandle,
    shopify_limit: stockflow_sim::RateLimit,
    amazon_limit: stockflow_sim::RateLimit,
    tiktok_limit: stockflow_sim::RateLimit,
}

impl Sandboxes {
    async fn start(names: &[String]) -> anyhow::Result<Sandboxes> {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut spec = CatalogueSpec::new(&refs, &LOCATIONS, OPENING_STOCK);
        spec.tiktok_skus_per_product = 100;
        let catalogue = Catalogue::generate(&spec);
        let shopify_config = shopify::ShopifyConfig::new(catalogue.shopify.clone(), SHOPIFY_TOKEN);
        let shopify_limit = shopify_config.cost_limit;
        let mut amazon_config = amazon::AmazonConfig::new(catalogue.amazon.clone(), AMAZON_TOKEN);
        // The listings feed of the first full sync (before the measurement) is processed in
        // seconds rather than Amazon's minutes; the measured path is patchListingsItem.
        amazon_config.feeds.queue_delay = Duration::from_millis(500);
        amazon_config.feeds.processing_delay = Duration::from_secs(1);
        let amazon_limit = amazon_config.patch_rate;
        let tiktok_config = tiktok::TikTokConfig::new(
            catalogue.tiktok.clone(),
            TIKTOK_APP_KEY,
            TIKTOK_APP_SECRET,
            TIKTOK_TOKEN,
            TIKTOK_SHOP_CIPHER,
        );
        let tiktok_limit = tiktok_config.rate_limit;
        Ok(Sandboxes {
            shopify: shopify::start(shopify_config)
                .await
                .context("starting the Shopify sandbox")?,
            amazon: amazon::start(amazon_config)
                .await
                .context("starting the Amazon sandbox")?,
            tiktok: tiktok::start(tiktok_config)
                .await
                .context("starting the TikTok Shop sandbox")?,
            catalogue,
            shopify_limit,
            amazon_limit,
            tiktok_limit,
        })
    }

    /// (sandbox, limit violations, rate-limit rejections)
    fn counters(&self) -> [(&'static str, u64, u64); 3] {
        let count = |recorder: &stockflow_sim::Recorder| {
            (recorder.violation_count(), recorder.rejection_count())
        };
        let (shopify, amazon, tiktok) = (
            count(self.shopify.recorder()),
            count(self.amazon.recorder()),
            count(self.tiktok.recorder()),
        );
        [
            (SHOPIFY, shopify.0, shopify.1),
            (TIKTOK, tiktok.0, tiktok.1),
            (AMAZON, amazon.0, amazon.1),
        ]
    }
}

/// stockflow's configuration: with `channels`, the three channels at the sandboxes, each served
/// by both locations, with the product's defaults (batching, latency budgets, rates).
fn server_config(data_dir: &std::path::Path, sandboxes: &Sandboxes, channels: bool) -> Config {
    let catalogue = &sandboxes.catalogue;
    let mut configured = BTreeMap::new();
    if channels {
        let shopify_locations: BTreeMap<&str, &str> = LOCATIONS
            .iter()
            .zip(&catalogue.shopify.locations)
            .map(|(name, location)| (*name, location.id.as_str()))
            .collect();
        let shopify_items = stockflow::demo::stage::shopify_items(catalogue);
        let tiktok_warehouses: BTreeMap<&str, &str> = LOCATIONS
            .iter()
            .zip(&catalogue.tiktok.warehouse_ids)
            .map(|(name, warehouse)| (*name, warehouse.as_str()))
            .collect();
        let tiktok_items = stockflow::demo::stage::tiktok_items(catalogue);
        configured.insert(
            SHOPIFY.to_owned(),
            json!({
                "kind": "shopify", "serves": LOCATIONS,
                "base_url": sandboxes.shopify.base_url(), "access_token": SHOPIFY_TOKEN,
                "locations": shopify_locations, "items": shopify_items,
            }),
        );
        configured.insert(
            AMAZON.to_owned(),
            json!({
                "kind": "amazon", "serves": LOCATIONS,
                "base_url": sandboxes.amazon.base_url(), "access_token": AMAZON_TOKEN,
                "seller_id": catalogue.amazon.seller_id,
                "marketplace_ids": catalogue.amazon.marketplace_ids,
                "feeds": {"poll_interval_ms": 250},
            }),
        );
        configured.insert(
            TIKTOK.to_owned(),
            json!({
                "kind": "tiktok", "serves": LOCATIONS,
                "base_url": sandboxes.tiktok.base_url(), "app_key": TIKTOK_APP_KEY,
                "app_secret": TIKTOK_APP_SECRET, "access_token": TIKTOK_TOKEN,
                "shop_cipher": TIKTOK_SHOP_CIPHER,
                "locations": tiktok_warehouses, "items": tiktok_items,
            }),
        );
    }
    Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir: data_dir.to_path_buf(),
        channels: configured,
        ..Config::default()
    }
}

/// The opening stock, taken by a server without channels: a `received` per SKU and location.
async fn open_stock(data_dir: &std::path::Path, plan: &Plan) -> anyhow::Result<()> {
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    let server = Server::start(config)
        .await
        .context("starting the server for the opening stock")?;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/events", server.url());
    let mut seq = 0u64;
    let keys: Vec<(usize, usize)> = (0..plan.skus)
        .flat_map(|sku| (0..LOCATIONS.len()).map(move |location| (sku, location)))
        .collect();
    for chunk in keys.chunks(1000) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|&(sku, location)| {
                seq += 1;
                event("opening", seq, "received", sku, location, OPENING_STOCK)
            })
            .collect();
        post(&client, &url, &json!({ "events": events })).await?;
    }
    server.shutdown().await
}

/// A server with the channels for the first time: each gets the whole catalogue through its
/// bulk path; returns once every channel finished it and the server stopped (so that what the
/// channels acknowledged is on disk for the next start).
async fn first_full_sync(data_dir: &std::path::Path, sandboxes: &Sandboxes) -> anyhow::Result<()> {
    let server = Server::start(server_config(data_dir, sandboxes, true))
        .await
        .context("starting the server for the first full sync")?;
    let deadline = Instant::now() + FULL_SYNC_TIMEOUT;
    loop {
        let progress = server.state.full_syncs.progress();
        let finished = progress.values().filter(|p| p.finished).count();
        if finished == CHANNELS.len() {
            for (channel, progress) in &progress {
                anyhow::ensure!(
                    progress.failed == 0 && progress.error.is_none(),
                    "the first full sync of {channel} failed: {} of {} refused, {:?}",
                    progress.failed,
                    progress.total,
                    progress.error
                );
            }
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the channels' first full sync did not finish within {} s: {progress:?}",
            FULL_SYNC_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What the full sync held back and released must reach the channels too.
    let sync = server
        .state
        .sync
        .clone()
        .context("no channel sync after the first full sync")?;
    let idle = wait_idle(&sync, &CHANNELS, FULL_SYNC_TIMEOUT).await;
    anyhow::ensure!(
        idle,
        "the channels' queues did not empty after the full sync"
    );
    server.shutdown().await
}

/// The measured server must start with every channel in step and nothing queued, so that its
/// counters hold only the load. A channel whose first full sync was not recorded as
/// acknowledged runs it again at this start (Amazon's listings feed): it is waited for here.
/// Returns the channels that ran a full sync again, and the counters before the load.
async fn settle(
    server: &ServerHandle,
    sync: &SyncEngine,
) -> anyhow::Result<(Vec<String>, Vec<ChannelStats>)> {
    let deadline = Instant::now() + FULL_SYNC_TIMEOUT;
    // A channel in its first full sync is held from the start until the sync finishes.
    while server.state.full_syncs.filter(&[]).is_some() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "a full sync at the measured server's start did not finish within {} s",
            FULL_SYNC_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(
        wait_idle(sync, &CHANNELS, FULL_SYNC_TIMEOUT).await,
        "the channels' queues did not empty before the load"
    );
    let resynced = server
        .state
        .full_syncs
        .progress()
        .keys()
        .map(ToString::to_string)
        .collect();
    let baseline = sync.stats();
    for stats in &baseline {
        anyhow::ensure!(
            stats.acknowledged == 0 && stats.internal_latency.count == 0,
            "{} acknowledged {} values before the load: its counters would mix them in",
            stats.channel,
            stats.acknowledged
        );
    }
    Ok((resynced, baseline))
}

/// Waits until the named channels have nothing waiting or in flight; false at the timeout.
async fn wait_idle(sync: &SyncEngine, channels: &[&str], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let idle = sync
            .stats()
            .iter()
            .filter(|s| channels.contains(&s.channel.as_str()))
            .all(|s| s.queue_depth == 0 && s.in_flight_keys == 0);
        if idle {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After the load: waits for the channels that carry the rate to catch up. Amazon's backlog
/// takes minutes at 5 calls a second; its drops to zero, first in its queue, count meanwhile.
async fn drain(sync: &SyncEngine, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    wait_idle(sync, &[SHOPIFY, TIKTOK], limit)
        .await
        .then(|| started.elapsed())
}

/// What one channel's acknowledgements showed.
#[derive(Default)]
struct ChannelAcks {
    all: LatencyRecorder,
    zeros: LatencyRecorder,
    under_p50_target: u64,
    under_p99_target: u64,
    zeros_under_target: u64,
}

#[derive(Default)]
struct Acknowledgements {
    channels: BTreeMap<String, ChannelAcks>,
    /// Events the stream dropped because this follower fell behind: the figures are then over
    /// a sample.
    missed: u64,
}

/// Follows the sync's acknowledgements until told to stop, then takes what is still buffered.
async fn follow_acknowledgements(
    mut events: tokio::sync::broadcast::Receiver<SyncEvent>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Acknowledgements {
    let mut figures = Acknowledgements::default();
    loop {
        let received = tokio::select! {
            received = events.recv() => received,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        match received {
            Ok(event) => figures.record(&event),
            Err(RecvError::Lagged(missed)) => figures.missed += missed,
            Err(RecvError::Closed) => return figures,
        }
    }
    loop {
        match events.try_recv() {
            Ok(event) => figures.record(&event),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(missed)) => {
                figures.missed += missed
            }
            Err(_) => return figures,
        }
    }
}

impl Acknowledgements {
    fn record(&mut self, event: &SyncEvent) {
        let SyncEvent::Acknowledged {
            channel,
            quantity,
            latency_ms,
            ..
        } = event
        else {
            return;
        };
        let latency = Duration::from_secs_f64(latency_ms.max(0.0) / 1_000.0);
        let acks = self.channels.entry(channel.to_string()).or_default();
        acks.all.record(latency);
        acks.under_p50_target += u64::from(latency < CARRIED_P50_TARGET);
        acks.under_p99_target += u64::from(latency < CARRIED_P99_TARGET);
        if *quantity == 0 {
            acks.zeros.record(latency);
            acks.zeros_under_target += u64::from(latency < ZERO_P50_TARGET);
        }
    }
}

/// What the producers did.
struct Load {
    events: u64,
    requests: u64,
    /// Requests sent again after a 503 or a lost connection.
    retries: u64,
    /// Events answered other than `applied` (a duplicate after a retry, a held one).
    not_applied: u64,
    /// From the first request to the last answer.
    elapsed: Duration,
    /// Request round trips, the answered attempt only.
    latency: LatencyRecorder,
    /// How late the latest request left, against its schedule.
    behind_max: Duration,
    /// SKUs sold out and locations emptied.
    sellouts: u64,
    empties: u64,
    /// Units per SKU and location at the end, as the ledger holds them.
    stock: Vec<[i64; 2]>,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A small deterministic generator (SplitMix64): the load is the same run after run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One warehouse event source: the SKUs whose index is its own modulo the producer count, so
/// that each SKU's events come from one source, in order.
struct Producer {
    source: String,
    seq: u64,
    skus: Vec<usize>,
    stock: Vec<[i64; 2]>,
    /// When an emptied location gets its receipt.
    restock_at: Vec<[Option<Instant>; 2]>,
    random: SplitMix,
    /// Sell-outs and emptied locations per request, and what is due of each (the fraction
    /// carries over, so that the rates hold on average).
    sellouts_per_request: f64,
    empties_per_request: f64,
    sellouts_due: f64,
    empties_due: f64,
    /// SKUs sold out and locations emptied so far.
    sellouts: u64,
    empties: u64,
}

impl Producer {
    fn new(index: usize, plan: &Plan) -> Producer {
        let skus: Vec<usize> = (index..plan.skus).step_by(plan.clients).collect();
        let requests_per_second = plan.clients as f64 / plan.interval().as_secs_f64();
        let mut random = SplitMix(0x5EED ^ index as u64);
        Producer {
            source: format!("bench-{index}"),
            seq: 0,
            stock: vec![[OPENING_STOCK; 2]; skus.len()],
            restock_at: vec![[None; 2]; skus.len()],
            skus,
            sellouts_per_request: plan.sellouts / requests_per_second,
            empties_per_request: plan.empties / requests_per_second,
            // Producers start apart, so that a short run gets its share too.
            sellouts_due: random.unit(),
            empties_due: random.unit(),
            random,
            sellouts: 0,
            empties: 0,
        }
    }

    fn emit(&mut self, slot: usize, location: usize, kind: &str, units: i64) -> Value {
        let delta = if kind == "picked" { -units } else { units };
        self.stock[slot][location] += delta;
        self.seq += 1;
        event(
            &self.source,
            self.seq,
            kind,
            self.skus[slot],
            location,
            units,
        )
    }

    /// A slot with stock (at any location, or at `location`), if a few draws find one.
    fn stocked(&mut self, location: Option<usize>) -> Option<(usize, usize)> {
        (0..16).find_map(|_| {
            let slot = self.random.below(self.skus.len());
            let at = location.unwrap_or_else(|| self.random.below(LOCATIONS.len()));
            let stocked = match location {
                Some(_) => self.stock[slot][at] > 0,
                None => self.stock[slot].iter().any(|&units| units > 0),
            };
            stocked.then_some((slot, at))
        })
    }

    /// One request's events: the sell-outs (a pick of everything at every location of a SKU)
    /// and emptied locations due, then ordinary picks and receipts.
    fn batch(&mut self, size: usize, now: Instant) -> Vec<Value> {
        let mut events = Vec::with_capacity(size);
        self.sellouts_due += self.sellouts_per_request;
        self.empties_due += self.empties_per_request;
        while self.sellouts_due >= 1.0 && events.len() + LOCATIONS.len() <= size {
            self.sellouts_due -= 1.0;
            let Some((slot, _)) = self.stocked(None) else {
                continue;
            };
            self.sellouts += 1;
            for location in 0..LOCATIONS.len() {
                let units = self.stock[slot][location];
                if units > 0 {
                    events.push(self.emit(slot, location, "picked", units));
                    self.restock_at[slot][location] = Some(now + RESTOCK_AFTER);
                }
            }
        }
        while self.empties_due >= 1.0 && events.len() < size {
            self.empties_due -= 1.0;
            let location = self.random.below(LOCATIONS.len());
            let Some((slot, location)) = self.stocked(Some(location)) else {
                continue;
            };
            self.empties += 1;
            let units = self.stock[slot][location];
            events.push(self.emit(slot, location, "picked", units));
            self.restock_at[slot][location] = Some(now + RESTOCK_AFTER);
        }
        while events.len() < size {
            let next = self.next_event(now);
            events.push(next);
        }
        events
    }

    /// A pick or a receipt of a few units (never emptying a location), or the receipt of a
    /// location empty for [`RESTOCK_AFTER`].
    fn next_event(&mut self, now: Instant) -> Value {
        let mut empty = (0, 0);
        for _ in 0..16 {
            let slot = self.random.below(self.skus.len());
            let location = self.random.below(LOCATIONS.len());
            let units = self.stock[slot][location];
            if units == 0 {
                empty = (slot, location);
                if self.restock_at[slot][location].is_none_or(|at| at <= now) {
                    break;
                }
                continue;
            }
            let few = 1 + self.random.below(3) as i64;
            let kind = if units >= 100 || (units > few && self.random.unit() < 0.5) {
                "picked"
            } else {
                "received"
            };
            return self.emit(slot, location, kind, few);
        }
        // Every location tried is empty: the last one gets its receipt (early, if need be).
        let (slot, location) = empty;
        self.restock_at[slot][location] = None;
        let units = 20 + self.random.below(41) as i64;
        self.emit(slot, location, "received", units)
    }
}

fn event(source: &str, seq: u64, kind: &str, sku: usize, location: usize, units: i64) -> Value {
    json!({"event_id": format!("{source}-{seq}"), "source": source, "seq": seq, "type": kind,
           "sku": sku_name(sku), "location": LOCATIONS[location], "quantity": units})
}

/// What one producer did.
struct Produced {
    events: u64,
    requests: u64,
    retries: u64,
    not_applied: u64,
    last_answer: Instant,
    latency: LatencyRecorder,
    behind_max: Duration,
    sellouts: u64,
    empties: u64,
    skus: Vec<usize>,
    stock: Vec<[i64; 2]>,
}

/// The producers, each on its own schedule, staggered across one interval.
async fn run_load(base: &str, plan: &Plan) -> anyhow::Result<Load> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.clients)
        .build()?;
    let url = format!("{base}/v1/events");
    let interval = plan.interval();
    let start = Instant::now() + Duration::from_millis(50);
    let stop_at = start + plan.load;
    let mut tasks = Vec::new();
    for index in 0..plan.clients {
        let producer = Producer::new(index, plan);
        let first = start + interval.mul_f64(index as f64 / plan.clients as f64);
        tasks.push(tokio::spawn(produce(
            producer,
            client.clone(),
            url.clone(),
            first,
            stop_at,
            interval,
            plan.batch,
        )));
    }
    let mut load = Load {
        events: 0,
        requests: 0,
        retries: 0,
        not_applied: 0,
        elapsed: Duration::ZERO,
        latency: LatencyRecorder::new(),
        behind_max: Duration::ZERO,
        sellouts: 0,
        empties: 0,
        stock: vec![[OPENING_STOCK; 2]; plan.skus],
    };
    let mut last_answer = start;
    for task in tasks {
        let produced = task.await.context("a producer panicked")??;
        load.events += produced.events;
        load.requests += produced.requests;
        load.retries += produced.retries;
        load.not_applied += produced.not_applied;
        load.latency.merge(&produced.latency);
        load.behind_max = load.behind_max.max(produced.behind_max);
        load.sellouts += produced.sellouts;
        load.empties += produced.empties;
        last_answer = last_answer.max(produced.last_answer);
        for (sku, stock) in produced.skus.into_iter().zip(produced.stock) {
            load.stock[sku] = stock;
        }
    }
    load.elapsed = last_answer.saturating_duration_since(start);
    Ok(load)
}

#[allow(clippy::too_many_arguments)]
async fn produce(
    mut producer: Producer,
    client: reqwest::Client,
    url: String,
    first: Instant,
    stop_at: Instant,
    interval: Duration,
    batch: usize,
) -> anyhow::Result<Produced> {
    let mut ticker = tokio::time::interval_at(first, interval);
    // A late request is followed at once by the ones due meanwhile: the rate is kept over the
    // run, and how late they left is reported.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut produced = Produced {
        events: 0,
        requests: 0,
        retries: 0,
        not_applied: 0,
        last_answer: first,
        latency: LatencyRecorder::new(),
        behind_max: Duration::ZERO,
        sellouts: 0,
        empties: 0,
        skus: Vec::new(),
        stock: Vec::new(),
    };
    loop {
        let due = ticker.tick().await;
        if due >= stop_at {
            break;
        }
        let now = Instant::now();
        produced.behind_max = produced.behind_max.max(now.saturating_duration_since(due));
        let events = producer.batch(batch, now);
        let count = events.len() as u64;
        let (latency, answer, retries) =
            post_timed(&client, &url, &json!({ "events": events })).await?;
        produced.latency.record(latency);
        produced.retries += u64::from(retries);
        produced.not_applied += answer["results"].as_array().map_or(count, |results| {
            results
                .iter()
                .filter(|result| result["status"] != "applied")
                .count() as u64
        });
        produced.events += count;
        produced.requests += 1;
        produced.last_answer = Instant::now();
    }
    produced.sellouts = producer.sellouts;
    produced.empties = producer.empties;
    produced.skus = producer.skus;
    produced.stock = producer.stock;
    Ok(produced)
}

/// Posts until answered with success; a 503 (the writer's queue full) or a lost connection is
/// retried with the same body (event ids make that safe). Returns the round trip of the
/// answered attempt, the answer and the retries.
async fn post_timed(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> anyhow::Result<(Duration, Value, u32)> {
    let mut retries = 0;
    loop {
        let started = Instant::now();
        match client.post(url).json(body).send().await {
            Ok(response) if response.status().is_success() => {
                let answer: Value = response.json().await.context("the events' answer")?;
                return Ok((started.elapsed(), answer, retries));
            }
            Ok(response)
                if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
                    && retries < POST_ATTEMPTS_MAX => {}
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                anyhow::bail!("POST /v1/events answered {status}: {text}");
            }
            Err(_) if retries < POST_ATTEMPTS_MAX => {}
            Err(error) => return Err(error).context("POST /v1/events"),
        }
        retries += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<()> {
    post_timed(client, url, body).await.map(|_| ())
}

/// Per platform, the keys whose quantity equals the ledger's, of all keys.
struct QuantityCheck {
    shopify: (usize, usize),
    tiktok: (usize, usize),
}

fn check_quantities(sandboxes: &Sandboxes, stock: &[[i64; 2]]) -> QuantityCheck {
    let catalogue = &sandboxes.catalogue;
    let tiktok_ids: BTreeMap<&str, &str> = catalogue
        .tiktok
        .products
        .iter()
        .flat_map(|p| {
            p.skus
                .iter()
                .map(|s| (s.seller_sku.as_str(), s.id.as_str()))
        })
        .collect();
    let mut check = QuantityCheck {
        shopify: (0, 0),
        tiktok: (0, 0),
    };
    for (index, units) in stock.iter().enumerate() {
        let sku = sku_name(index);
        for (location, &expected) in units.iter().enumerate() {
            let shopify_location = &catalogue.shopify.locations[location].id;
            let shown = sandboxes
                .shopify
                .quantity(&sku, shopify_location, "available");
            check.shopify.0 += usize::from(shown == Some(expected));
            check.shopify.1 += 1;
            let warehouse = &catalogue.tiktok.warehouse_ids[location];
            let shown = tiktok_ids
                .get(sku.as_str())
                .and_then(|id| sandboxes.tiktok.quantity(id, warehouse));
            check.tiktok.0 += usize::from(shown == Some(expected));
            check.tiktok.1 += 1;
        }
    }
    check
}

/// p50 and p99 of a recorder.
fn percentiles(recorder: &LatencyRecorder) -> (Duration, Duration) {
    let figures = recorder.throughput(Duration::from_secs(1));
    (figures.p50, figures.p99)
}

fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

fn seconds(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{:.0} ms", millis(duration))
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

fn met(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "",
    }
}

/// Everything the report shows.
struct Report<'a> {
    plan: &'a Plan,
    load: &'a Load,
    figures: &'a Acknowledgements,
    /// Counters before the load (a full sync's offers), subtracted where they would count.
    baseline: &'a [ChannelStats],
    at_end: &'a [ChannelStats],
    after: &'a [ChannelStats],
    drained: Option<Duration>,
    /// From the load's start to the last counters (the load and the drain).
    measured: Duration,
    check: &'a QuantityCheck,
    sandboxes: &'a Sandboxes,
}

impl Report<'_> {
    fn stats<'s>(stats: &'s [ChannelStats], channel: &str) -> Option<&'s ChannelStats> {
        stats.iter().find(|s| s.channel.as_str() == channel)
    }

    fn print(&self) {
        let load = self.load;
        let offered = self.plan.rate as f64;
        let sustained = load.per_second() >= 0.95 * offered;
        println!();
        println!(
            "load:       {} events/s achieved of {} offered ({} events in {:.1} s, {} \
             requests); request over HTTP p50 {:.1} ms, p99 {:.1} ms; {} retried, {} events \
             not applied; latest request {} behind its schedule; {} SKUs sold out, {} \
             locations emptied{}",
            thousands(load.per_second()),
            thousands(offered),
            load.events,
            load.elapsed.as_secs_f64(),
            load.requests,
            millis(percentiles(&load.latency).0),
            millis(percentiles(&load.latency).1),
            load.retries,
            load.not_applied,
            seconds(load.behind_max),
            load.sellouts,
            load.empties,
            if sustained {
                ""
            } else {
                " -- the rate was NOT sustained on this machine: the figures below are at the \
                 rate achieved"
            }
        );
        println!("\n== results\n");
        print!("{}", self.table());
        println!();
        self.print_details();
    }

    fn table(&self) -> String {
        let mut out = String::from(
            "| measure | count | p50 | p99 | share under target | target | met |\n\
             |---|---:|---:|---:|---|---|---|\n",
        );
        let mut row = |name: String,
                       count: u64,
                       p50: String,
                       p99: String,
                       shares: String,
                       target: &str,
                       met: Option<bool>| {
            out.push_str(&format!(
                "| {name} | {} | {p50} | {p99} | {shares} | {target} | {} |\n",
                thousands(count as f64),
                self::met(met)
            ));
        };
        let empty = ChannelAcks::default();
        for channel in [SHOPIFY, TIKTOK] {
            let acks = self.figures.channels.get(channel).unwrap_or(&empty);
            let count = acks.all.count();
            let (p50, p99) = percentiles(&acks.all);
            row(
                format!("{channel}: ingest -> acknowledged"),
                count,
                seconds(p50),
                seconds(p99),
                format!(
                    "{} < 1 s, {} < 5 s",
                    share(acks.under_p50_target, count),
                    share(acks.under_p99_target, count)
                ),
                "p50 < 1 s, p99 < 5 s",
                Some(count > 0 && p50 < CARRIED_P50_TARGET && p99 < CARRIED_P99_TARGET),
            );
        }
        let amazon = self.figures.channels.get(AMAZON).unwrap_or(&empty);
        let zeros = amazon.zeros.count();
        let (p50, p99) = percentiles(&amazon.zeros);
        row(
            "amazon: ingest -> acknowledged, drops to zero".to_owned(),
            zeros,
            seconds(p50),
            seconds(p99),
            format!("{} < 2 s", share(amazon.zeros_under_target, zeros)),
            "p50 < 2 s",
            Some(zeros > 0 && p50 < ZERO_P50_TARGET),
        );
        let count = amazon.all.count();
        let (p50, p99) = percentiles(&amazon.all);
        row(
            "amazon: ingest -> acknowledged, every change acknowledged".to_owned(),
            count,
            seconds(p50),
            seconds(p99),
            format!(
                "{} < 1 s, {} < 5 s",
                share(amazon.under_p50_target, count),
                share(amazon.under_p99_target, count)
            ),
            "none: 5 calls/s cannot carry the changes (backlog below)",
            None,
        );
        for channel in CHANNELS {
            let Some(stats) = Self::stats(self.after, channel) else {
                continue;
            };
            let internal = &stats.internal_latency;
            let p50 = Duration::from_secs_f64(internal.p50_ms / 1_000.0);
            let p99 = Duration::from_secs_f64(internal.p99_ms / 1_000.0);
            row(
                format!("{channel}: ingest -> call sent (internal)"),
                internal.count,
                seconds(p50),
                seconds(p99),
                String::new(),
                "p99 < 50 ms",
                Some(internal.count > 0 && p99 < INTERNAL_P99_TARGET),
            );
        }
        out
    }

    fn print_details(&self) {
        println!(
            "internal latency, ingest -> call sent, as the sync engine records it per value sent \
             (from the change's ingest time to the call's first request leaving):"
        );
        for stats in CHANNELS
            .iter()
            .filter_map(|channel| Self::stats(self.after, channel))
        {
            let internal = &stats.internal_latency;
            println!(
                "  {}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} values sent",
                stats.channel, internal.p50_ms, internal.p99_ms, internal.max_ms, internal.count
            );
        }
        let (request_p50, request_p99) = percentiles(&self.load.latency);
        println!(
            "  of it, ingest -> durable and handed to the sync is at most the request's round \
             trip (the server answers after the hand-off): p50 {:.1} ms, p99 {:.1} ms over {} \
             requests; the rest is the wait in the sync for the channel's next call, which the \
             platform's limit paces (calls a second below)",
            millis(request_p50),
            millis(request_p99),
            self.load.requests
        );
        println!("backlog when the load stopped (keys waiting, age of the oldest change):");
        for stats in CHANNELS
            .iter()
            .filter_map(|channel| Self::stats(self.at_end, channel))
        {
            println!(
                "  {}: {} keys, oldest {}",
                stats.channel,
                thousands(stats.queue_depth as f64),
                seconds(Duration::from_millis(stats.oldest_pending_age_ms))
            );
        }
        match self.drained {
            Some(took) => println!(
                "drain: Shopify's and TikTok's queues empty {} after the load",
                seconds(took)
            ),
            None => println!(
                "drain: Shopify's and TikTok's queues NOT empty {} after the load",
                seconds(self.plan.drain)
            ),
        }
        println!("after the drain:");
        for stats in CHANNELS
            .iter()
            .filter_map(|channel| Self::stats(self.after, channel))
        {
            let before = Self::stats(self.baseline, stats.channel.as_str());
            let offered = stats.offered - before.map_or(0, |b| b.offered);
            let coalesced = stats.coalesced - before.map_or(0, |b| b.coalesced);
            let calls: u64 = stats.calls.values().sum::<u64>()
                - before.map_or(0, |b| b.calls.values().sum::<u64>());
            println!(
                "  {}: {} changes offered ({} replaced a value still waiting), {} values \
                 acknowledged in {} calls ({:.1} a second; {} answered rate-limited), {} keys \
                 waiting (oldest {})",
                stats.channel,
                thousands(offered as f64),
                thousands(coalesced as f64),
                thousands(stats.acknowledged as f64),
                thousands(calls as f64),
                calls as f64 / self.measured.as_secs_f64().max(1e-9),
                stats.rate_limited,
                thousands(stats.queue_depth as f64),
                seconds(Duration::from_millis(stats.oldest_pending_age_ms))
            );
            if !stats.errors.is_empty() {
                println!("    errors by code: {:?}", stats.errors);
            }
        }
        let followed: u64 = self
            .figures
            .channels
            .values()
            .map(|acks| acks.all.count())
            .sum();
        let counted: u64 = self.after.iter().map(|s| s.acknowledged).sum();
        println!(
            "acknowledgements followed: {} of the {} the sync counted{}",
            thousands(followed as f64),
            thousands(counted as f64),
            if self.figures.missed > 0 {
                format!(
                    " ({} missed by a slow follower: the shares are over a sample)",
                    self.figures.missed
                )
            } else {
                String::new()
            }
        );
        let counters = self.sandboxes.counters();
        let violations: u64 = counters.iter().map(|(_, v, _)| v).sum();
        println!(
            "sandbox limit violations (must be 0): {}: {}",
            counters
                .iter()
                .map(|(name, v, _)| format!("{name} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            if violations == 0 { "ok" } else { "VIOLATED" }
        );
        println!(
            "sandbox rate-limit rejections (allowed, answered with the platform's throttle): {}",
            counters
                .iter()
                .map(|(name, _, r)| format!("{name} {r}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let (shopify, tiktok) = (self.check.shopify, self.check.tiktok);
        println!(
            "quantities after the drain: Shopify shows the ledger's quantity for {} of {} \
             SKU x locations, TikTok for {} of {}{}",
            shopify.0,
            shopify.1,
            tiktok.0,
            tiktok.1,
            if shopify.0 == shopify.1 && tiktok.0 == tiktok.1 {
                ": ok"
            } else {
                ": MISMATCH"
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SyncArgs,
    }

    fn plan(args: &[&str]) -> anyhow::Result<Plan> {
        let command = std::iter::once("sync").chain(args.iter().copied());
        Plan::from(&Cli::try_parse_from(command)?.args)
    }

    #[test]
    fn quick_shrinks_what_was_not_given() {
        let full = plan(&[]).unwrap();
        assert_eq!(
            (
                full.rate,
                full.load.as_secs(),
                full.skus,
                full.drain.as_secs()
            ),
            (5_000, 20, 1_000, 15)
        );
        assert_eq!(
            (full.clients, full.batch, full.sellouts, full.empties),
            (8, 50, 2.0, 10.0)
        );
        // 8 producers x 50 events every 80 ms: 5,000 events/s.
        assert_eq!(full.interval(), Duration::from_millis(80));
        let quick = plan(&["--quick", "--rate", "700", "--sellouts", "0.5"]).unwrap();
        assert_eq!(
            (quick.rate, quick.load.as_secs(), quick.skus, quick.sellouts),
            (700, 3, 200, 0.5)
        );
        let given = plan(&["--seconds", "7", "--skus", "300", "--drain-seconds", "2"]).unwrap();
        assert_eq!(
            (given.load.as_secs(), given.skus, given.drain.as_secs()),
            (7, 300, 2)
        );
    }

    #[test]
    fn bad_sizes_are_refused_naming_the_option() {
        for (args, option) in [
            (&["--skus", "99"][..], "--skus"),
            (&["--batch", "1001"][..], "--batch"),
            (&["--batch", "0"][..], "--batch"),
            (&["--clients", "0"][..], "--clients"),
            (&["--skus", "100", "--clients", "101"][..], "--clients"),
            (&["--rate", "0"][..], "--rate"),
            (&["--seconds", "0"][..], "--seconds"),
            (&["--sellouts=-1"][..], "--sellouts"),
            (&["--empties", "NaN"][..], "--empties"),
        ] {
            let error = plan(args).unwrap_err().to_string();
            assert!(error.contains(option), "{args:?}: {error}");
        }
    }

    /// Replays a producer's events from the opening stock: each SKU belongs to one producer,
    /// sequence numbers have no gap, no location goes below zero, and the producer's own
    /// record of the stock (what the report compares the platforms with) is what the events
    /// make of it.
    #[test]
    fn the_load_keeps_stock_the_events_explain_and_sells_out() {
        let plan = plan(&["--skus", "120", "--clients", "3"]).unwrap();
        let start = Instant::now();
        let mut owners = vec![0usize; plan.skus];
        for index in 0..plan.clients {
            let mut producer = Producer::new(index, &plan);
            let mut replayed: BTreeMap<(String, String), i64> = BTreeMap::new();
            let mut zeros = 0;
            let mut expected_seq = 1;
            // 400 requests of one producer, at its pace (100 requests/s among the three).
            for round in 0..400 {
                let now = start + plan.interval() * round;
                let events = producer.batch(plan.batch, now);
                assert_eq!(events.len(), plan.batch);
                for event in events {
                    assert_eq!(event["seq"], expected_seq);
                    expected_seq += 1;
                    let units = event["quantity"].as_i64().unwrap();
                    assert!(units >= 1, "{event}");
                    let key = (
                        event["sku"].as_str().unwrap().to_owned(),
                        event["location"].as_str().unwrap().to_owned(),
                    );
                    let stock = replayed.entry(key).or_insert(OPENING_STOCK);
                    *stock += match event["type"].as_str().unwrap() {
                        "picked" => -units,
                        "received" => units,
                        other => panic!("unexpected event type {other}"),
                    };
                    assert!(*stock >= 0, "{event}");
                    zeros += usize::from(*stock == 0);
                }
            }
            assert!(zeros > 0, "producer {index} never emptied a location");
            // 2 sell-outs and 10 emptied locations a second among 100 requests a second.
            assert!(
                (7..=9).contains(&producer.sellouts),
                "{}",
                producer.sellouts
            );
            assert!(
                (39..=41).contains(&producer.empties),
                "{}",
                producer.empties
            );
            for (slot, &sku) in producer.skus.iter().enumerate() {
                owners[sku] += 1;
                for (location, name) in LOCATIONS.iter().enumerate() {
                    let key = (sku_name(sku), (*name).to_owned());
                    let replayed = replayed.get(&key).copied().unwrap_or(OPENING_STOCK);
                    assert_eq!(producer.stock[slot][location], replayed, "{key:?}");
                }
            }
        }
        assert!(owners.iter().all(|&owners| owners == 1), "{owners:?}");
    }
}
