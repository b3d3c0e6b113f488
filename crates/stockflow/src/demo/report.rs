//! The KPI table the demo ends with: events, propagation latency per channel (median, p99,
//! share under 1 s, from the channel sync's stats), oversells as the platforms counted them
//! (sales accepted for units that did not exist) and as stockflow's ledger recorded them,
//! buffer releases, rate-limit rejections, reconciliation mismatches (what each platform shows
//! at the end against what stockflow says it may sell), cancellations, webhooks.

use super::stage::{Stage, channel_of};
use serde::Serialize;
use serde_json::Value;
use stockflow_sim::Platform;
use stockflow_sim::buyers::BuyersStats;

/// One channel's row.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChannelKpis {
    pub channel: String,
    pub acknowledged: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub under_target_percent: Option<f64>,
    pub rate_limited: u64,
    /// Throttling answers the platform gave (the sandbox's count).
    pub platform_rejections: u64,
    pub orders: u64,
    pub oversold_orders: u64,
    pub oversold_units: i64,
    pub ledger_oversells: u64,
    pub cancelled_by_buyer: u64,
    pub cancelled_by_merchant: u64,
    pub webhooks_sent: u64,
    pub webhooks_accepted: u64,
    pub webhook_retries: u64,
    pub mismatches: u64,
    pub keys: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub events_applied: u64,
    pub wms_events: u64,
    pub buyers: u64,
    pub turned_away: u64,
    pub buffer_applied: u64,
    pub buffer_releases: u64,
    pub negative_available_incidents: u64,
    pub channels: Vec<ChannelKpis>,
    /// Whether every webhook was delivered (or given up) before the report.
    pub webhooks_drained: bool,
}

impl Report {
    pub fn oversold_units(&self) -> i64 {
        self.channels.iter().map(|c| c.oversold_units).sum()
    }

    pub fn print(&self) {
        println!("\n== KPIs ==");
        let row = |label: &str, values: Vec<String>, total: String| {
            let cells: Vec<String> = values.iter().map(|v| format!("{v:>10}")).collect();
            println!("{label:<40}{} {total:>10}", cells.join(" "));
        };
        let names: Vec<String> = self.channels.iter().map(|c| c.channel.clone()).collect();
        row("KPI", names, "total".into());
        let per = |f: &dyn Fn(&ChannelKpis) -> String| self.channels.iter().map(f).collect();
        let opt = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.1}"));
        let sum_u =
            |f: &dyn Fn(&ChannelKpis) -> u64| self.channels.iter().map(f).sum::<u64>().to_string();
        let webhooks: u64 = self.channels.iter().map(|c| c.webhooks_accepted).sum();
        row(
            "events ingested",
            per(&|_| String::new()),
            (self.events_applied + webhooks).to_string(),
        );
        row(
            "  warehouse events applied",
            per(&|_| String::new()),
            self.events_applied.to_string(),
        );
        row(
            "  order webhooks accepted",
            per(&|c| c.webhooks_accepted.to_string()),
            webhooks.to_string(),
        );
        row(
            "changes acknowledged by the channel",
            per(&|c| c.acknowledged.to_string()),
            sum_u(&|c| c.acknowledged),
        );
        row(
            "propagation latency p50 (ms)",
            per(&|c| opt(c.latency_p50_ms)),
            String::new(),
        );
        row(
            "propagation latency p99 (ms)",
            per(&|c| opt(c.latency_p99_ms)),
            String::new(),
        );
        row(
            "under 1 s target (%)",
            per(&|c| opt(c.under_target_percent)),
            String::new(),
        );
        row(
            "orders",
            per(&|c| c.orders.to_string()),
            sum_u(&|c| c.orders),
        );
        row(
            "oversells, platforms (orders)",
            per(&|c| c.oversold_orders.to_string()),
            sum_u(&|c| c.oversold_orders),
        );
        row(
            "oversells, platforms (units short)",
            per(&|c| c.oversold_units.to_string()),
            self.oversold_units().to_string(),
        );
        row(
            "oversell incidents, ledger",
            per(&|c| c.ledger_oversells.to_string()),
            sum_u(&|c| c.ledger_oversells),
        );
        row(
            "negative-available incidents, ledger",
            per(&|_| String::new()),
            self.negative_available_incidents.to_string(),
        );
        row(
            "buffer releases (decays + releases)",
            per(&|_| String::new()),
            self.buffer_releases.to_string(),
        );
        row(
            "buffers applied",
            per(&|_| String::new()),
            self.buffer_applied.to_string(),
        );
        row(
            "rate-limit rejections (sync)",
            per(&|c| c.rate_limited.to_string()),
            sum_u(&|c| c.rate_limited),
        );
        row(
            "rate-limit answers (platform)",
            per(&|c| c.platform_rejections.to_string()),
            sum_u(&|c| c.platform_rejections),
        );
        row(
            "reconciliation mismatches",
            per(&|c| format!("{}/{}", c.mismatches, c.keys)),
            sum_u(&|c| c.mismatches),
        );
        row(
            "cancellations, buyer",
            per(&|c| c.cancelled_by_buyer.to_string()),
            sum_u(&|c| c.cancelled_by_buyer),
        );
        row(
            "cancellations, merchant (no stock)",
            per(&|c| c.cancelled_by_merchant.to_string()),
            sum_u(&|c| c.cancelled_by_merchant),
        );
        row(
            "webhooks accepted / sent",
            per(&|c| format!("{}/{}", c.webhooks_accepted, c.webhooks_sent)),
            String::new(),
        );
        row(
            "webhook retries",
            per(&|c| c.webhook_retries.to_string()),
            sum_u(&|c| c.webhook_retries),
        );
        println!(
            "buyers: {} came, {} found the hot item sold out or short{}",
            self.buyers,
            self.turned_away,
            if self.webhooks_drained {
                ""
            } else {
                "; some webhooks were still waiting"
            }
        );
    }
}

pub async fn collect(stage: &Stage, buyers: &BuyersStats, drained: bool) -> anyhow::Result<Report> {
    let sync = stage.get("/v1/sync").await?;
    let metrics = stage
        .client
        .get(format!("{}/metrics", stage.url))
        .send()
        .await?
        .text()
        .await?;
    let oversells = stage
        .get("/v1/incidents?kind=oversell&limit=1000")
        .await
        .unwrap_or(Value::Null);
    let negative = stage
        .get("/v1/incidents?kind=negative_available&limit=1000")
        .await
        .unwrap_or(Value::Null);
    let mismatches = mismatches(stage).await?;
    let mut channels = Vec::new();
    for platform in Platform::ALL {
        let channel = channel_of(platform);
        let stats = sync["channels"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["channel"] == channel))
            .cloned()
            .unwrap_or(Value::Null);
        let latency = &stats["propagation_latency"];
        let measured = latency["count"].as_u64().unwrap_or(0) > 0;
        let storefront = stage.market.stats(platform);
        let oversold = stage.world.oversells(platform);
        let (mismatched, keys) = mismatches
            .iter()
            .find(|(p, _, _)| *p == platform)
            .map(|(_, m, k)| (*m, *k))
            .unwrap_or((0, 0));
        channels.push(ChannelKpis {
            channel: channel.to_owned(),
            acknowledged: stats["acknowledged"].as_u64().unwrap_or(0),
            latency_p50_ms: measured.then(|| latency["p50_ms"].as_f64().unwrap_or(0.0)),
            latency_p99_ms: measured.then(|| latency["p99_ms"].as_f64().unwrap_or(0.0)),
            under_target_percent: measured
                .then(|| stats["under_1s_share"].as_f64().unwrap_or(0.0) * 100.0),
            rate_limited: stats["rate_limited"].as_u64().unwrap_or(0),
            platform_rejections: platform_rejections(stage, platform),
            orders: storefront.ordered,
            oversold_orders: oversold.orders,
            oversold_units: oversold.units,
            ledger_oversells: count_for(&oversells, channel),
            cancelled_by_buyer: storefront.cancelled_by_buyer,
            cancelled_by_merchant: storefront.cancelled_by_merchant,
            webhooks_sent: storefront.delivery.queued,
            webhooks_accepted: storefront.delivery.delivered,
            webhook_retries: storefront.delivery.retries,
            mismatches: mismatched,
            keys,
        });
    }
    let wms = stage.wms.stats();
    Ok(Report {
        events_applied: metric_sum(&metrics, "stockflow_events_applied_total", None),
        wms_events: wms.applied,
        buyers: buyers.arrived,
        turned_away: buyers.turned_away,
        buffer_applied: metric_sum(&metrics, "stockflow_buffer_changes_total", Some("applied")),
        buffer_releases: metric_sum(&metrics, "stockflow_buffer_changes_total", Some("decayed"))
            + metric_sum(&metrics, "stockflow_buffer_changes_total", Some("released")),
        negative_available_incidents: negative["incidents"]
            .as_array()
            .map_or(0, |all| all.len() as u64),
        channels,
        webhooks_drained: drained,
    })
}

fn platform_rejections(stage: &Stage, platform: Platform) -> u64 {
    match platform {
        Platform::Shopify => stage.shopify.recorder().rejection_count(),
        Platform::Amazon => stage.amazon.recorder().rejection_count(),
        Platform::TikTok => stage.tiktok.recorder().rejection_count(),
    }
}

fn count_for(incidents: &Value, channel: &str) -> u64 {
    incidents["incidents"].as_array().map_or(0, |all| {
        all.iter().filter(|i| i["channel"] == channel).count() as u64
    })
}

/// Sums a Prometheus counter's samples, optionally those with `change="<label>"`.
fn metric_sum(text: &str, name: &str, change: Option<&str>) -> u64 {
    text.lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter(|line| {
            let rest = &line[name.len()..];
            rest.starts_with(' ') || rest.starts_with('{')
        })
        .filter(|line| change.is_none_or(|c| line.contains(&format!("change=\"{c}\""))))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

/// Per platform: SKUs whose shown quantity differs from what stockflow says the channel may
/// sell, and the SKUs compared.
async fn mismatches(stage: &Stage) -> anyhow::Result<Vec<(Platform, u64, u64)>> {
    let mut counts = vec![
        (Platform::Shopify, 0, 0),
        (Platform::Amazon, 0, 0),
        (Platform::TikTok, 0, 0),
    ];
    stage.amazon.settle();
    for stocked in &stage.story.stock {
        let view = stage.sku(&stocked.sku).await?;
        for (platform, mismatched, keys) in counts.iter_mut() {
            let channel = channel_of(*platform);
            let Some(ats) = view["channels"].as_array().and_then(|all| {
                all.iter()
                    .find(|c| c["channel"] == channel)
                    .and_then(|c| c["available_to_sell"].as_i64())
            }) else {
                continue;
            };
            *keys += 1;
            if stage.shown(*platform, &stocked.sku) != Some(ats) {
                *mismatched += 1;
            }
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_from_the_exposition_text() {
        let text = "# TYPE stockflow_buffer_changes_total counter\n\
            stockflow_buffer_changes_total{change=\"applied\"} 3\n\
            stockflow_buffer_changes_total{change=\"decayed\"} 5\n\
            stockflow_events_applied_total 120\n\
            stockflow_events_applied_total_other 9\n";
        assert_eq!(
            metric_sum(text, "stockflow_buffer_changes_total", Some("decayed")),
            5
        );
        assert_eq!(metric_sum(text, "stockflow_buffer_changes_total", None), 8);
        assert_eq!(
            metric_sum(text, "stockflow_events_applied_total", None),
            120
        );
    }
}
