//! End to end through real HTTP: a burst of warehouse picks on a hot SKU while simulated buyers
//! buy on Shopify, Amazon and TikTok Shop at once.
//!
//! The channels share the stock by allocation (Shopify 50%, Amazon and TikTok 25% each). The
//! platforms are slow to apply stockflow's updates during the rush (every API call is held
//! for a few seconds), so buyers buy everything each storefront shows after the burst. With
//! the buffer on (a surge signal engages the dynamic buffer, plus the channel-aware one), what
//! the three storefronts show together fits in what remains on the shelf: no oversell. With it
//! off, the storefronts show the units the burst took, and exactly those are oversold. Both
//! are asserted, in the platforms' count (sales accepted for units that did not exist) and in
//! stockflow's ledger (orders that could not be reserved).

use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use stockflow::demo::stage::{Stage, StageConfig, channel_of};
use stockflow_sim::buyers::{self, BuyersConfig};
use stockflow_sim::demand::{Arrivals, DemandCurve, DemandStream};
use stockflow_sim::scenario::{StockedSku, Story};
use stockflow_sim::{FaultConfig, Platform};

const HOT: &str = "SF-EARBUDS-X2";
const STOCK: i64 = 100;
const BURST: i64 = 10;

fn story() -> Story {
    let mut story = Story::trend(Duration::from_secs(60), 7);
    story.stock = vec![
        StockedSku {
            sku: HOT.into(),
            units: STOCK,
        },
        StockedSku {
            sku: "SF-CABLE-USBC-1M".into(),
            units: 20,
        },
    ];
    story.script.clear();
    story
}

async fn stage(buffers: bool) -> Stage {
    let dir = tempfile::tempdir().unwrap().keep();
    let mut config = StageConfig::new(story(), dir, 7);
    config.buffers = buffers;
    config.amazon_apply_delay = Duration::from_millis(100);
    config.allocation = BTreeMap::from([
        (Platform::Shopify, json!({"percent": 50})),
        (Platform::Amazon, json!({"percent": 25})),
        (Platform::TikTok, json!({"percent": 25})),
    ]);
    Stage::start(config).await.expect("the stage starts")
}

/// Waits until every platform shows what stockflow says it may sell of `sku`; returns it.
async fn in_step(stage: &Stage, sku: &str) -> BTreeMap<Platform, i64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        stage.amazon.settle();
        let view = stage.sku(sku).await.unwrap();
        let ats: BTreeMap<Platform, i64> = Platform::ALL
            .iter()
            .map(|p| {
                let channel = view["channels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["channel"] == channel_of(*p))
                    .unwrap();
                (*p, channel["available_to_sell"].as_i64().unwrap())
            })
            .collect();
        let shown: BTreeMap<Platform, i64> = Platform::ALL
            .iter()
            .map(|p| (*p, stage.shown(*p, sku).unwrap()))
            .collect();
        if shown == ats {
            return shown;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the platforms never showed what stockflow computed: {shown:?} vs {ats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn slow_platforms(stage: &Stage, latency: Duration) {
    let faults = FaultConfig {
        latency,
        ..FaultConfig::default()
    };
    stage.shopify.faults().set(faults.clone());
    stage.amazon.faults().set(faults.clone());
    stage.tiktok.faults().set(faults);
}

struct Outcome {
    shown_before: BTreeMap<Platform, i64>,
    sold: i64,
    oversold_units: i64,
    ledger_oversells: usize,
    ledger_shortfall: i64,
}

async fn rush(buffers: bool) -> Outcome {
    let stage = stage(buffers).await;
    stage.open_stock().await.unwrap();
    if buffers {
        let signal = json!({"sku": HOT, "source": "social-listener", "multiplier": 10,
                            "duration_seconds": 600});
        stage.post("/v1/signals", &signal).await.unwrap();
    }
    let shown_before = in_step(&stage, HOT).await;
    slow_platforms(&stage, Duration::from_secs(4));
    for n in 0..BURST {
        let picked = stage
            .wms
            .picked_unreserved(HOT, 1, &format!("WHOLESALE-{n}"))
            .await;
        assert_eq!(picked, 1);
    }
    assert!(
        stage.wms.flush(Duration::from_secs(10)).await,
        "stockflow took the picks"
    );
    let streams: Vec<DemandStream> = Platform::ALL
        .into_iter()
        .map(|platform| DemandStream {
            platform,
            sku: HOT.into(),
            rate_per_second: 200.0,
            curve: DemandCurve::flat(1.0),
            two_unit_share: 0.0,
        })
        .collect();
    let arrivals = Arrivals::draw(&streams, Duration::from_secs(1), 7);
    let config = BuyersConfig {
        pay_delay: Duration::from_millis(50),
        cancel_share: 0.0,
        cancel_within: Duration::ZERO,
        oversell_cancel_after: Duration::from_secs(3_600),
    };
    let handle = buyers::start(Arc::clone(&stage.market), arrivals, config);
    assert!(handle.all_arrived(Duration::from_secs(10)).await);
    let sold: i64 = Platform::ALL
        .iter()
        .map(|p| stage.market.stats(*p).units_ordered)
        .sum();
    let oversold_units = stage.world.oversells_total().units;
    slow_platforms(&stage, Duration::ZERO);
    assert!(
        stage.market.drain(Duration::from_secs(20)).await,
        "webhooks delivered"
    );
    let accepted: u64 = Platform::ALL
        .iter()
        .map(|p| stage.market.stats(*p).delivery.delivered)
        .sum();
    assert!(
        accepted > 0,
        "stockflow accepted none of the platforms' order webhooks \
         (POST /v1/webhooks/{{shopify,amazon,tiktok}}/{{channel}}): the ledger cannot count \
         oversells without them"
    );
    assert!(
        stage.inbox_processed(Duration::from_secs(20)).await,
        "stockflow processed the orders"
    );
    let incidents = stage
        .get(&format!("/v1/incidents?kind=oversell&sku={HOT}&limit=1000"))
        .await
        .unwrap();
    let incidents = incidents["incidents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ledger_shortfall = incidents
        .iter()
        .map(|i| i["shortfall"].as_i64().unwrap_or(0))
        .sum();
    stage.shutdown().await.unwrap();
    Outcome {
        shown_before,
        sold,
        oversold_units,
        ledger_oversells: incidents.len(),
        ledger_shortfall,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pick_burst_during_a_rush_oversells_only_without_the_buffer() {
    let free_after_burst = STOCK - BURST;

    let on = rush(true).await;
    let shown: i64 = on.shown_before.values().sum();
    assert_eq!(
        on.shown_before,
        BTreeMap::from([
            (Platform::Shopify, 45),
            (Platform::Amazon, 21),
            (Platform::TikTok, 22)
        ]),
        "10% dynamic, plus 0%, 3% and 2% channel-aware, then the allocation"
    );
    assert!(shown <= free_after_burst);
    assert_eq!(on.sold, shown, "buyers bought everything shown");
    assert_eq!(on.oversold_units, 0, "no sale without a unit behind it");
    assert_eq!(on.ledger_oversells, 0, "every order was reserved");

    let off = rush(false).await;
    let shown: i64 = off.shown_before.values().sum();
    assert_eq!(shown, STOCK, "50% + 25% + 25% of everything");
    assert_eq!(off.sold, STOCK);
    assert_eq!(off.oversold_units, STOCK - free_after_burst);
    assert!(
        off.ledger_oversells > 0,
        "the ledger recorded the orders it could not reserve"
    );
    assert_eq!(off.ledger_shortfall, STOCK - free_after_burst);
}
