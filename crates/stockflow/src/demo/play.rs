//! The story's clock: starts the stage, the buyers and the shipping, follows the warehouse's
//! script and the surge, prints a progress line every second or two, samples the hot SKU for
//! the chart, then lets everything settle and reports.

use super::DemoArgs;
use super::chart::{self, Timeline};
use super::report::{self, Report};
use super::stage::{Stage, StageConfig, channel_of};
use anyhow::Context;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use stockflow_sim::buyers::{self, BuyersConfig};
use stockflow_sim::demand::Arrivals;
use stockflow_sim::scenario::{Story, WarehouseStep};
use stockflow_sim::wms::{self, ShippingConfig};
use stockflow_sim::{Platform, amazon};
use tokio::time::Instant;

/// Story time in real time: a story duration divided by the scale.
fn story(scale: f64, story_seconds: f64) -> Duration {
    Duration::from_secs_f64(story_seconds / scale)
}

pub async fn run(args: DemoArgs) -> anyhow::Result<Report> {
    let story = Story::trend(args.duration, args.seed);
    let scale = story.time_scale();
    let (data_dir, temporary) = match &args.data_dir {
        Some(dir) => (dir.clone(), false),
        None => (temporary_dir(args.seed), true),
    };
    println!("stockflow demo: {}", describe(&story));
    println!(
        "  seed {}, {} s of real time for a day of the story: time runs x{scale:.0} \
         (1 real second = {:.0} story minutes)",
        args.seed,
        args.duration.as_secs_f64(),
        scale / 60.0
    );
    let mut config = StageConfig::new(story.clone(), data_dir.clone(), args.seed);
    config.buffers = !args.no_buffers;
    let stage = Stage::start(config).await?;
    print_addresses(&stage).await;
    stage.open_stock().await?;
    settle_channels(&stage, Duration::from_secs(10)).await;
    let mut show = Show::new(&stage, &story);
    let arrivals = Arrivals::draw(&story.demand, story.duration, args.seed);
    println!(
        "  {} buyers will come; buffers {}",
        arrivals.len(),
        if args.no_buffers {
            "off"
        } else {
            "on (dynamic + channel-aware on the hot SKU)"
        }
    );
    let buyers_config = BuyersConfig {
        pay_delay: story_time(scale, 120.0),
        cancel_share: 0.03,
        cancel_within: story_time(scale, 2.0 * 3_600.0),
        oversell_cancel_after: story_time(scale, 30.0 * 60.0),
    };
    let buyers = buyers::start(stage.market.clone(), arrivals, buyers_config);
    let shipping = wms::spawn_shipping(
        stage.wms.clone(),
        stage.market.clone(),
        ShippingConfig {
            pick_delay: story_time(scale, 3_600.0),
            return_after: story_time(scale, 6.0 * 3_600.0),
            ..ShippingConfig::default()
        },
    );
    show.play(&stage, &story).await?;
    buyers.stop();
    // The warehouse ships what was paid; the platforms deliver their last webhooks.
    tokio::time::sleep(story_time(scale, 3_600.0) + Duration::from_millis(500)).await;
    shipping.abort();
    let drained = stage.market.drain(Duration::from_secs(5)).await;
    stage.wms.flush(Duration::from_secs(10)).await;
    stage.inbox_processed(Duration::from_secs(10)).await;
    settle_channels(&stage, Duration::from_secs(10)).await;
    let report = report::collect(&stage, &buyers.stats(), drained).await?;
    report.print();
    let chart_path = args.chart.clone();
    chart::write(&chart_path, &show.timeline, &story).context("writing the chart")?;
    println!("\ntimeline chart written to {}", display_path(&chart_path));
    stage.shutdown().await?;
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    } else {
        println!("journal kept in {}", data_dir.display());
    }
    Ok(report)
}

fn story_time(scale: f64, story_seconds: f64) -> Duration {
    story(scale, story_seconds)
}

fn display_path(path: &std::path::Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

fn temporary_dir(seed: u64) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "stockflow-demo-{}-{seed}-{nanos}",
        std::process::id()
    ))
}

fn describe(story: &Story) -> String {
    format!(
        "{} SKUs at {}; {} turns into a TikTok trend overnight",
        story.stock.len(),
        story.location,
        story.hot_sku
    )
}

async fn print_addresses(stage: &Stage) {
    let dashboard = stage
        .client
        .get(format!("{}/", stage.url))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    if dashboard {
        println!("  dashboard: {}/", stage.url);
    } else {
        println!(
            "  API: {}/ (GET /v1/skus, /v1/sync, /v1/incidents)",
            stage.url
        );
    }
    println!(
        "  sandboxes: shopify {}  amazon {}  tiktok {}",
        stage.shopify.base_url(),
        stage.amazon.base_url(),
        stage.tiktok.base_url()
    );
}

/// Waits until no channel has anything waiting to be sent (or `timeout`).
pub async fn settle_channels(stage: &Stage, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let Ok(sync) = stage.get("/v1/sync").await else {
            break;
        };
        let waiting: u64 = sync["channels"]
            .as_array()
            .map(|channels| {
                channels
                    .iter()
                    .map(|c| c["queue_depth"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        if waiting == 0 {
            // Amazon applies what it accepted a moment later.
            stage.amazon.settle();
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The live part: the script, the surge, progress lines and samples.
struct Show {
    timeline: Timeline,
    started: Instant,
    /// Each sandbox's clock reading at the start, to place its recorder's points.
    offsets: [Duration; 3],
    shopify_location: String,
    tiktok_warehouse: String,
    tiktok_sku: String,
}

impl Show {
    fn new(stage: &Stage, story: &Story) -> Show {
        Show {
            timeline: Timeline::default(),
            started: Instant::now(),
            offsets: [
                stage.shopify.clock().now(),
                stage.amazon.clock().now(),
                stage.tiktok.clock().now(),
            ],
            shopify_location: stage.catalogue.shopify.locations[0].id.clone(),
            tiktok_warehouse: stage.catalogue.tiktok.warehouse_ids[0].clone(),
            tiktok_sku: stage.tiktok_sku_ids[&story.hot_sku].clone(),
        }
    }

    async fn play(&mut self, stage: &Stage, story: &Story) -> anyhow::Result<()> {
        self.started = Instant::now();
        self.offsets = [
            stage.shopify.clock().now(),
            stage.amazon.clock().now(),
            stage.tiktok.clock().now(),
        ];
        let mut script = story.script.clone();
        script.sort_by_key(|(at, _)| *at);
        let mut script = script.into_iter().peekable();
        let mut surged = false;
        let sample_every = (story.duration / 400).max(Duration::from_millis(50));
        let progress_every =
            (story.duration / 40).clamp(Duration::from_secs(1), Duration::from_secs(2));
        let mut next_progress = Duration::ZERO;
        loop {
            let elapsed = self.started.elapsed();
            if elapsed >= story.duration {
                break;
            }
            while script.peek().is_some_and(|(at, _)| *at <= elapsed) {
                let (_, step) = script.next().expect("peeked");
                perform(stage, &step).await;
            }
            if !surged && elapsed >= story.surge.at {
                surged = true;
                self.surge(stage, story).await;
            }
            let sample = self.sample(stage, story, elapsed).await;
            if elapsed >= next_progress {
                next_progress += progress_every;
                print_progress(stage, story, elapsed, &sample);
            }
            tokio::time::sleep(sample_every).await;
        }
        self.read_recorders(stage, story);
        Ok(())
    }

    async fn surge(&self, stage: &Stage, story: &Story) {
        let surge = &story.surge;
        let body = json!({
            "sku": surge.sku, "source": surge.source, "multiplier": surge.multiplier,
            "duration_seconds": surge.lasts.as_secs().max(1),
        });
        match stage.post("/v1/signals", &body).await {
            Ok(_) => println!(
                "  >> {}: {} reports a {}x demand spike on {} for {} s",
                fmt_seconds(self.started.elapsed()),
                surge.source,
                surge.multiplier,
                surge.sku,
                surge.lasts.as_secs().max(1)
            ),
            Err(error) => println!("  >> the surge signal was refused: {error}"),
        }
    }

    async fn sample(&mut self, stage: &Stage, story: &Story, at: Duration) -> Sample {
        let view = stage.sku(&story.hot_sku).await.unwrap_or(Value::Null);
        let sample = Sample::of(&view, stage, story);
        self.timeline.push(at, &sample);
        sample
    }

    /// What each platform showed for the hot SKU, changes only, from its recorder.
    fn read_recorders(&mut self, stage: &Stage, story: &Story) {
        let hot = &story.hot_sku;
        let series = [
            (
                Platform::Shopify,
                stage
                    .shopify
                    .recorder()
                    .timeline(hot, &self.shopify_location),
            ),
            (
                Platform::Amazon,
                stage
                    .amazon
                    .recorder()
                    .timeline(hot, amazon::DEFAULT_CHANNEL),
            ),
            (
                Platform::TikTok,
                stage
                    .tiktok
                    .recorder()
                    .timeline(hot, &self.tiktok_warehouse),
            ),
        ];
        for (index, (platform, points)) in series.into_iter().enumerate() {
            let offset = self.offsets[index];
            let shown = points
                .iter()
                .map(|p| (p.at.saturating_sub(offset), p.quantity))
                .collect();
            self.timeline.shown.insert(platform, shown);
        }
        let _ = &self.tiktok_sku;
    }
}

async fn perform(stage: &Stage, step: &WarehouseStep) {
    let wms = &stage.wms;
    match step {
        WarehouseStep::Receive {
            sku,
            units,
            reference,
        } => {
            wms.received(sku, *units, reference).await;
            println!("  >> receipt {reference}: {units} x {sku}");
        }
        WarehouseStep::WholesalePick {
            sku,
            units,
            reference,
        } => {
            let picked = wms.picked_unreserved(sku, *units, reference).await;
            println!(
                "  >> wholesale shipment {reference}: {picked} x {sku} picked (no channel sold them)"
            );
        }
        WarehouseStep::Adjust { sku, delta, reason } => {
            wms.adjusted(sku, *delta, reason).await;
        }
        WarehouseStep::Count { sku } => {
            wms.counted(sku).await;
        }
    }
}

/// The hot SKU at one instant.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub on_shelf: i64,
    pub on_hand: i64,
    pub available: i64,
    /// Withheld from each channel.
    pub withheld: Vec<(Platform, i64)>,
    pub ats: Vec<(Platform, i64)>,
    pub shown: Vec<(Platform, i64)>,
}

impl Sample {
    fn of(view: &Value, stage: &Stage, story: &Story) -> Sample {
        let mut sample = Sample {
            on_shelf: stage.world.on_shelf(&story.hot_sku, &story.location),
            on_hand: view["totals"]["on_hand"].as_i64().unwrap_or(0),
            available: view["totals"]["available"].as_i64().unwrap_or(0),
            ..Sample::default()
        };
        for platform in Platform::ALL {
            let channel = view["channels"]
                .as_array()
                .and_then(|channels| {
                    channels
                        .iter()
                        .find(|c| c["channel"] == channel_of(platform))
                })
                .cloned()
                .unwrap_or(Value::Null);
            sample
                .withheld
                .push((platform, channel["withheld"].as_i64().unwrap_or(0)));
            sample
                .ats
                .push((platform, channel["available_to_sell"].as_i64().unwrap_or(0)));
            let shown = stage.shown(platform, &story.hot_sku).unwrap_or(0);
            sample.shown.push((platform, shown));
        }
        sample
    }

    pub fn withheld_max(&self) -> i64 {
        self.withheld.iter().map(|(_, w)| *w).max().unwrap_or(0)
    }
}

fn fmt_seconds(at: Duration) -> String {
    format!("{:6.1}s", at.as_secs_f64())
}

fn print_progress(stage: &Stage, story: &Story, at: Duration, sample: &Sample) {
    let wms = stage.wms.stats();
    let delivered: u64 = Platform::ALL
        .iter()
        .map(|p| stage.market.stats(*p).delivery.delivered)
        .sum();
    let orders: u64 = Platform::ALL
        .iter()
        .map(|p| stage.market.stats(*p).ordered)
        .sum();
    let shown: Vec<String> = sample
        .shown
        .iter()
        .map(|(p, q)| format!("{} {q:>3}", short(*p)))
        .collect();
    let withheld: Vec<String> = sample.withheld.iter().map(|(_, w)| w.to_string()).collect();
    println!(
        "{} {:<9} events {:>5} orders {:>4} | {} on hand {:>3} avail {:>3} | shows {} | withheld {}",
        fmt_seconds(at),
        story.phase(at),
        wms.applied + delivered,
        orders,
        story.hot_sku,
        sample.on_hand,
        sample.available,
        shown.join(" "),
        withheld.join("/"),
    );
}

pub fn short(platform: Platform) -> &'static str {
    match platform {
        Platform::Shopify => "shop",
        Platform::Amazon => "amzn",
        Platform::TikTok => "tiktok",
    }
}
