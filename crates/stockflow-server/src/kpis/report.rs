//! What the counts say: the KPI report of `GET /v1/kpis`, the latency chart's series, and the
//! cancellation rates against each platform's limit. Pure functions of the counts, the time and
//! the settings.

use super::window::{Bucket, Counts, Window};
use crate::config::KpisSection;
use serde::Serialize;
use std::collections::BTreeMap;
use stockflow_core::time::Timestamp;
use utoipa::ToSchema;

/// A cancellation rate at or above this share of its limit is `approaching`.
pub const CANCELLATION_APPROACHING_SHARE: f64 = 0.8;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KpiReport {
    pub at: String,
    /// Propagation latencies at or under this count as on target.
    pub latency_target_ms: f64,
    /// When the counts begin: KPIs over a longer window cover only the time since then.
    pub counting_since: String,
    pub windows: Vec<WindowReport>,
    /// Per channel, the cancellation rate over the platforms' window against its limit.
    pub cancellation: Vec<CancellationReport>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WindowReport {
    /// `1h`, `24h`, `7d` or `30d`.
    pub window: String,
    pub propagation: Vec<ChannelLatency>,
    pub oversell_incidents: u64,
    pub reconciliation: Reconciliation,
    /// Buffers that gave stock back (decayed or released), and how often per hour.
    pub buffer_releases: u64,
    pub buffer_releases_per_hour: f64,
    pub orders: u64,
    pub manual_interventions: u64,
    pub manual_interventions_by_reason: BTreeMap<String, u64>,
    /// Orders that needed a person, as a share of orders (0 to 1); absent without orders.
    pub manual_intervention_share: Option<f64>,
    pub cancellations: Vec<ChannelCancellations>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelLatency {
    pub channel: String,
    pub acknowledged: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Share of acknowledgements within the target (0 to 1).
    pub under_target_share: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reconciliation {
    pub checked: u64,
    pub mismatched: u64,
    /// mismatched / checked (0 to 1); absent when nothing was checked.
    pub mismatch_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelCancellations {
    pub channel: String,
    pub orders: u64,
    pub cancelled: u64,
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CancellationReport {
    pub channel: String,
    /// shopify, amazon, tiktok, webhook (empty when the channel is not configured).
    pub kind: String,
    pub window: String,
    pub orders: u64,
    pub cancelled: u64,
    pub rate: Option<f64>,
    /// The platform's limit (0 to 1), when it has one.
    pub limit: Option<f64>,
    /// `ok`, `approaching` (at 80% of the limit or more), `over`, or `no_limit`.
    pub status: String,
}

/// One minute of the latency chart.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LatencyPoint {
    pub at: String,
    pub channels: Vec<ChannelLatency>,
}

/// Everything `report` needs besides the counts.
pub struct ReportInput<'a> {
    pub now: Timestamp,
    pub counting_since: Timestamp,
    pub settings: &'a KpisSection,
    /// Channel id -> kind, for the platform limits.
    pub kinds: &'a BTreeMap<String, String>,
}

/// The report over every window. `counts` is the sum of every source of counts.
pub fn report(counts: &[&Counts], input: &ReportInput<'_>) -> KpiReport {
    let windows = Window::ALL
        .iter()
        .map(|&window| window_report(&merged(counts, input.now, window), window))
        .collect();
    let cancellation_window =
        Window::from_days(input.settings.cancellation_window_days).unwrap_or(Window::Week);
    let cancellation = cancellation_report(
        &merged(counts, input.now, cancellation_window),
        cancellation_window,
        input,
    );
    KpiReport {
        at: crate::wire::format_time(input.now),
        latency_target_ms: input.settings.latency_target_ms as f64,
        counting_since: crate::wire::format_time(input.counting_since),
        windows,
        cancellation,
    }
}

fn merged(counts: &[&Counts], now: Timestamp, window: Window) -> Bucket {
    let mut total = Bucket::default();
    for counts in counts {
        total.merge(&counts.window(now, window));
    }
    total
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

pub fn channel_latencies(bucket: &Bucket) -> Vec<ChannelLatency> {
    bucket
        .channels
        .iter()
        .filter(|(_, counts)| counts.latency.count > 0)
        .map(|(channel, counts)| ChannelLatency {
            channel: channel.clone(),
            acknowledged: counts.latency.count,
            p50_ms: counts.latency.quantile_ms(0.5),
            p99_ms: counts.latency.quantile_ms(0.99),
            under_target_share: counts.latency.under_target_share(),
        })
        .collect()
}

pub fn window_report(bucket: &Bucket, window: Window) -> WindowReport {
    let checked: u64 = bucket.channels.values().map(|c| c.reconciled).sum();
    let mismatched: u64 = bucket.channels.values().map(|c| c.mismatched).sum();
    let orders = bucket.orders();
    let manual = bucket.manual_total();
    WindowReport {
        window: window.name().to_owned(),
        propagation: channel_latencies(bucket),
        oversell_incidents: bucket.oversells,
        reconciliation: Reconciliation {
            checked,
            mismatched,
            mismatch_rate: ratio(mismatched, checked),
        },
        buffer_releases: bucket.buffer_releases,
        buffer_releases_per_hour: bucket.buffer_releases as f64 / window.hours() as f64,
        orders,
        manual_interventions: manual,
        manual_interventions_by_reason: bucket.manual.clone(),
        // A quarantined webhook may be an order the ledger never saw: never above 1.
        manual_intervention_share: ratio(manual.min(orders), orders),
        cancellations: bucket
            .channels
            .iter()
            .filter(|(_, c)| c.orders > 0 || c.cancelled > 0)
            .map(|(channel, c)| ChannelCancellations {
                channel: channel.clone(),
                orders: c.orders,
                cancelled: c.cancelled,
                rate: ratio(c.cancelled.min(c.orders), c.orders),
            })
            .collect(),
    }
}

/// Every configured channel and every channel with orders, against its limit: the limit of its
/// id in the settings, else that of its kind.
pub fn cancellation_report(
    bucket: &Bucket,
    window: Window,
    input: &ReportInput<'_>,
) -> Vec<CancellationReport> {
    let mut channels: Vec<&String> = input.kinds.keys().collect();
    for channel in bucket.channels.keys() {
        if !input.kinds.contains_key(channel) {
            channels.push(channel);
        }
    }
    channels.sort();
    channels
        .into_iter()
        .map(|channel| {
            let kind = input.kinds.get(channel).cloned().unwrap_or_default();
            let counts = bucket.channels.get(channel).cloned().unwrap_or_default();
            let limits = &input.settings.cancellation_limits_percent;
            let limit = limits
                .get(channel)
                .or_else(|| limits.get(&kind))
                .map(|percent| percent / 100.0);
            let rate = ratio(counts.cancelled.min(counts.orders), counts.orders);
            CancellationReport {
                channel: channel.clone(),
                kind,
                window: window.name().to_owned(),
                orders: counts.orders,
                cancelled: counts.cancelled,
                rate,
                limit,
                status: cancellation_status(rate, limit).to_owned(),
            }
        })
        .collect()
}

pub fn cancellation_status(rate: Option<f64>, limit: Option<f64>) -> &'static str {
    match (rate, limit) {
        (_, None) => "no_limit",
        (None, Some(_)) => "ok",
        (Some(rate), Some(limit)) if rate >= limit => "over",
        (Some(rate), Some(limit)) if rate >= limit * CANCELLATION_APPROACHING_SHARE => {
            "approaching"
        }
        _ => "ok",
    }
}

/// Per minute of the last hour, each channel's latency: the dashboard's chart.
pub fn latency_series(counts: &Counts, now: Timestamp) -> Vec<LatencyPoint> {
    counts
        .minutes
        .series(now, super::window::MINUTES_KEPT)
        .into_iter()
        .map(|(at, bucket)| LatencyPoint {
            at: crate::wire::format_time(at),
            channels: channel_latencies(&bucket),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpis::window::MINUTE_MICROS;

    fn at_minutes(minutes: i64) -> Timestamp {
        Timestamp(1_800_000_000 * Timestamp::MICROS_PER_SECOND + minutes * MINUTE_MICROS)
    }

    /// Orders and cancellations of channel `amazon` (kind amazon) and `shop` (kind shopify) at
    /// minute 0, reported at `now_minutes`: the cancellation statuses by channel.
    fn check_cancellations(
        amazon: (u64, u64),
        shop: (u64, u64),
        now_minutes: i64,
        expected: &[(&str, &str)],
    ) {
        let mut counts = Counts::default();
        counts.record(at_minutes(0), |bucket| {
            for (channel, (orders, cancelled)) in [("amazon", amazon), ("shop", shop)] {
                let c = bucket.channel(channel);
                c.orders += orders;
                c.cancelled += cancelled;
            }
        });
        let kinds: BTreeMap<String, String> = [("amazon", "amazon"), ("shop", "shopify")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        let settings = KpisSection::default();
        let input = ReportInput {
            now: at_minutes(now_minutes),
            counting_since: at_minutes(0),
            settings: &settings,
            kinds: &kinds,
        };
        let report = report(&[&counts], &input);
        let got: Vec<(&str, &str)> = report
            .cancellation
            .iter()
            .map(|c| (c.channel.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn amazon_is_held_to_two_and_a_half_percent_over_seven_days() {
        check_cancellations(
            (1000, 10),
            (10, 5),
            0,
            &[("amazon", "ok"), ("shop", "no_limit")],
        );
        check_cancellations(
            (1000, 21),
            (0, 0),
            0,
            &[("amazon", "approaching"), ("shop", "no_limit")],
        );
        check_cancellations(
            (1000, 25),
            (0, 0),
            0,
            &[("amazon", "over"), ("shop", "no_limit")],
        );
        // Eight days later the orders have left the 7-day window.
        check_cancellations(
            (1000, 25),
            (0, 0),
            8 * 24 * 60,
            &[("amazon", "ok"), ("shop", "no_limit")],
        );
    }

    #[test]
    fn tiktok_is_held_to_ten_percent() {
        assert_eq!(
            KpisSection::default().cancellation_limits_percent["tiktok"],
            10.0
        );
        assert_eq!(cancellation_status(Some(0.09), Some(0.10)), "approaching");
        assert_eq!(cancellation_status(Some(0.10), Some(0.10)), "over");
        assert_eq!(cancellation_status(None, Some(0.10)), "ok");
    }

    #[test]
    fn a_window_reports_rates_and_frequencies() {
        let mut bucket = Bucket {
            oversells: 2,
            buffer_releases: 48,
            ..Bucket::default()
        };
        bucket.manual.insert("oversold".into(), 2);
        bucket.manual.insert("released_by_operator".into(), 1);
        let shop = bucket.channel("shop");
        shop.orders = 30;
        shop.cancelled = 3;
        shop.reconciled = 200;
        shop.mismatched = 5;
        shop.latency.record(200.0, 1000.0);
        shop.latency.record(3000.0, 1000.0);
        let report = window_report(&bucket, Window::Day);
        assert_eq!(report.window, "24h");
        assert_eq!(report.buffer_releases_per_hour, 2.0);
        assert_eq!(report.manual_interventions, 3);
        assert_eq!(report.manual_intervention_share, Some(0.1));
        assert_eq!(report.reconciliation.mismatch_rate, Some(0.025));
        assert_eq!(report.cancellations[0].rate, Some(0.1));
        assert_eq!(report.propagation[0].under_target_share, Some(0.5));
        assert_eq!(report.oversell_incidents, 2);
    }

    #[test]
    fn the_chart_has_one_point_per_minute_of_the_last_hour() {
        let mut counts = Counts::default();
        counts.record(at_minutes(10), |b| {
            b.channel("shop").latency.record(40.0, 1000.0)
        });
        let series = latency_series(&counts, at_minutes(30));
        assert_eq!(series.len(), 60);
        let with_data: Vec<usize> = series
            .iter()
            .enumerate()
            .filter(|(_, point)| !point.channels.is_empty())
            .map(|(index, _)| index)
            .collect();
        assert_eq!(with_data, [39], "minute 10 is 20 minutes before minute 30");
    }
}
