//! The pure part of the KPIs: counts in time buckets, and what a window of them says.
//!
//! Every function takes the time it is about; nothing here reads a clock or does IO. Memory is
//! bounded by construction: a ring of 60 one-minute buckets (the last hour, and the latency
//! chart) and a ring of 720 one-hour buckets (the last day, 7 days and 30 days), each bucket a
//! handful of counters per channel and a fixed array of latency buckets.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use stockflow_core::time::Timestamp;

pub const MINUTE_MICROS: i64 = 60 * Timestamp::MICROS_PER_SECOND;
pub const HOUR_MICROS: i64 = 60 * MINUTE_MICROS;
/// One-minute buckets kept: the last hour.
pub const MINUTES_KEPT: usize = 60;
/// One-hour buckets kept: the last 30 days.
pub const HOURS_KEPT: usize = 30 * 24;

/// Latency buckets: ten per decade from 1 ms to 100 s (upper bounds 10^(i/10) ms), and one
/// above. A fixed array rather than an HDR histogram: 780 buckets per channel must stay small,
/// and ten buckets per decade keep a quantile within about 12% of the truth.
pub const LATENCY_BUCKETS: usize = 52;
const LATENCY_DECADE_STEPS: f64 = 10.0;

/// The index of the latency bucket holding `latency_ms`.
pub fn latency_bucket(latency_ms: f64) -> usize {
    if latency_ms.is_nan() || latency_ms <= 1.0 {
        return 0;
    }
    let index = (LATENCY_DECADE_STEPS * latency_ms.log10()).ceil();
    (index as usize).min(LATENCY_BUCKETS - 1)
}

/// The upper bound of bucket `index` in milliseconds (the last bucket has none: infinity).
pub fn latency_bucket_upper_ms(index: usize) -> f64 {
    if index + 1 >= LATENCY_BUCKETS {
        return f64::INFINITY;
    }
    10f64.powf(index as f64 / LATENCY_DECADE_STEPS)
}

fn latency_bucket_lower_ms(index: usize) -> f64 {
    if index == 0 {
        0.0
    } else {
        latency_bucket_upper_ms(index - 1)
    }
}

/// Propagation latencies of one channel in one bucket of time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latencies {
    /// Empty until the first latency, then [`LATENCY_BUCKETS`] counts.
    pub buckets: Vec<u32>,
    pub count: u64,
    /// Latencies at or under the target in force when they were recorded.
    pub under_target: u64,
}

impl Latencies {
    pub fn record(&mut self, latency_ms: f64, target_ms: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; LATENCY_BUCKETS];
        }
        let bucket = &mut self.buckets[latency_bucket(latency_ms)];
        *bucket = bucket.saturating_add(1);
        self.count += 1;
        if latency_ms <= target_ms {
            self.under_target += 1;
        }
    }

    fn merge(&mut self, other: &Latencies) {
        if other.buckets.is_empty() {
            return;
        }
        if self.buckets.is_empty() {
            self.buckets = vec![0; LATENCY_BUCKETS];
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine = mine.saturating_add(*theirs);
        }
        self.count += other.count;
        self.under_target += other.under_target;
    }

    /// The latency under which a share `quantile` (0 to 1) of the recorded ones fall, in ms,
    /// interpolated inside its bucket (geometrically: the buckets are geometric); `None` when
    /// nothing was recorded.
    pub fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return None;
        }
        let rank = (quantile.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut below = 0u64;
        for (index, &count) in self.buckets.iter().enumerate() {
            let count = u64::from(count);
            if count == 0 || ((below + count) as f64) < rank {
                below += count;
                continue;
            }
            let (lower, upper) = (
                latency_bucket_lower_ms(index),
                latency_bucket_upper_ms(index),
            );
            if upper.is_infinite() {
                return Some(lower);
            }
            let fraction = (rank - below as f64) / count as f64;
            return Some(if lower <= 0.0 {
                upper * fraction
            } else {
                lower * (upper / lower).powf(fraction)
            });
        }
        None
    }

    /// Share of latencies at or under the target, `None` when nothing was recorded.
    pub fn under_target_share(&self) -> Option<f64> {
        (self.count > 0).then(|| self.under_target as f64 / self.count as f64)
    }
}

/// What one channel did in one bucket of time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelCounts {
    pub latency: Latencies,
    /// Orders: reservations granted for the channel, and its orders that could not be reserved.
    pub orders: u64,
    /// Orders cancelled: reservations released or cancelled before they were picked, and orders
    /// that could not be reserved (they will be cancelled).
    pub cancelled: u64,
    /// Keys whose channel value was checked by reconciliation, and those that did not match.
    pub reconciled: u64,
    pub mismatched: u64,
}

impl ChannelCounts {
    fn merge(&mut self, other: &ChannelCounts) {
        self.latency.merge(&other.latency);
        self.orders += other.orders;
        self.cancelled += other.cancelled;
        self.reconciled += other.reconciled;
        self.mismatched += other.mismatched;
    }
}

/// Everything counted in one bucket of time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub channels: BTreeMap<String, ChannelCounts>,
    /// Oversell incidents (with or without a channel).
    pub oversells: u64,
    /// Buffers that gave stock back: decayed or released.
    pub buffer_releases: u64,
    /// Orders that needed a person, by why.
    pub manual: BTreeMap<String, u64>,
}

impl Bucket {
    pub fn channel(&mut self, channel: &str) -> &mut ChannelCounts {
        if !self.channels.contains_key(channel) {
            self.channels
                .insert(channel.to_owned(), ChannelCounts::default());
        }
        self.channels.get_mut(channel).expect("inserted above")
    }

    pub fn merge(&mut self, other: &Bucket) {
        for (channel, counts) in &other.channels {
            self.channel(channel).merge(counts);
        }
        self.oversells += other.oversells;
        self.buffer_releases += other.buffer_releases;
        for (reason, count) in &other.manual {
            *self.manual.entry(reason.clone()).or_default() += count;
        }
    }

    pub fn orders(&self) -> u64 {
        self.channels.values().map(|c| c.orders).sum()
    }

    pub fn manual_total(&self) -> u64 {
        self.manual.values().sum()
    }
}

/// A ring of `slots.len()` buckets of `unit_micros` each; a slot is reused (cleared) when time
/// comes round to it again, so the ring never holds more than its span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ring {
    pub unit_micros: i64,
    /// Each slot: the bucket's index (start time / unit) and its counts.
    pub slots: Vec<Option<(i64, Bucket)>>,
}

impl Ring {
    pub fn new(unit_micros: i64, length: usize) -> Self {
        assert!(unit_micros > 0 && length > 0);
        Self {
            unit_micros,
            slots: vec![None; length],
        }
    }

    fn index(&self, at: Timestamp) -> i64 {
        at.0.div_euclid(self.unit_micros)
    }

    /// The bucket covering `at`, or `None` when `at` is older than what the ring keeps at that
    /// slot (its time has passed out of the ring).
    pub fn bucket(&mut self, at: Timestamp) -> Option<&mut Bucket> {
        let index = self.index(at);
        let length = self.slots.len() as i64;
        let slot = &mut self.slots[index.rem_euclid(length) as usize];
        match slot {
            Some((held, _)) if *held > index => return None,
            Some((held, _)) if *held == index => {}
            _ => *slot = Some((index, Bucket::default())),
        }
        slot.as_mut().map(|(_, bucket)| bucket)
    }

    /// The counts of the `span` buckets ending with the one covering `now` (merged).
    pub fn sum(&self, now: Timestamp, span: usize) -> Bucket {
        let last = self.index(now);
        let first = last - span.min(self.slots.len()) as i64 + 1;
        let mut total = Bucket::default();
        for (index, bucket) in self.slots.iter().flatten() {
            if (first..=last).contains(index) {
                total.merge(bucket);
            }
        }
        total
    }

    /// The `span` buckets ending with the one covering `now`, oldest first, with their start
    /// times; missing buckets are empty.
    pub fn series(&self, now: Timestamp, span: usize) -> Vec<(Timestamp, Bucket)> {
        let last = self.index(now);
        let span = span.min(self.slots.len()) as i64;
        (last - span + 1..=last)
            .map(|index| {
                let slot = &self.slots[index.rem_euclid(self.slots.len() as i64) as usize];
                let bucket = match slot {
                    Some((held, bucket)) if *held == index => bucket.clone(),
                    _ => Bucket::default(),
                };
                (Timestamp(index * self.unit_micros), bucket)
            })
            .collect()
    }
}

/// The windows the KPIs are reported over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
    Week,
    Month,
}

impl Window {
    pub const ALL: [Window; 4] = [Window::Hour, Window::Day, Window::Week, Window::Month];

    /// The name in the API and in the metrics' `window` label.
    pub fn name(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
            Window::Month => "30d",
        }
    }

    pub fn hours(self) -> u64 {
        match self {
            Window::Hour => 1,
            Window::Day => 24,
            Window::Week => 7 * 24,
            Window::Month => 30 * 24,
        }
    }

    /// Whole days, for windows named in days (the cancellation window); `None` otherwise.
    pub fn from_days(days: u64) -> Option<Window> {
        match days {
            1 => Some(Window::Day),
            7 => Some(Window::Week),
            30 => Some(Window::Month),
            _ => None,
        }
    }
}

/// All KPI counts: per minute for the last hour, per hour for the last 30 days. Every record
/// goes into both rings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub minutes: Ring,
    pub hours: Ring,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            minutes: Ring::new(MINUTE_MICROS, MINUTES_KEPT),
            hours: Ring::new(HOUR_MICROS, HOURS_KEPT),
        }
    }
}

impl Counts {
    /// Applies `change` to the minute and the hour bucket covering `at` (when they are still
    /// kept).
    pub fn record(&mut self, at: Timestamp, change: impl Fn(&mut Bucket)) {
        if let Some(bucket) = self.minutes.bucket(at) {
            change(bucket);
        }
        if let Some(bucket) = self.hours.bucket(at) {
            change(bucket);
        }
    }

    /// The counts of `window` ending at `now`: the last 60 minutes from the minute ring, longer
    /// windows from the hour ring (the current hour and the whole hours before it).
    pub fn window(&self, now: Timestamp, window: Window) -> Bucket {
        match window {
            Window::Hour => self.minutes.sum(now, MINUTES_KEPT),
            other => self.hours.sum(now, other.hours() as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_minutes(minutes: i64) -> Timestamp {
        Timestamp(1_800_000_000 * Timestamp::MICROS_PER_SECOND + minutes * MINUTE_MICROS)
    }

    /// Records latencies for channel `c` at the given minutes, then reports p50, p99 and the
    /// share under 1 s over `window` at minute `now`.
    fn check(samples: &[(i64, f64)], now: i64, window: Window, expected: (f64, f64, f64)) {
        let mut counts = Counts::default();
        for &(minute, latency_ms) in samples {
            counts.record(at_minutes(minute), |b| {
                b.channel("c").latency.record(latency_ms, 1000.0)
            });
        }
        let bucket = counts.window(at_minutes(now), window);
        let latency = &bucket
            .channels
            .get("c")
            .cloned()
            .unwrap_or_default()
            .latency;
        let got = (
            latency.quantile_ms(0.5).unwrap_or(-1.0),
            latency.quantile_ms(0.99).unwrap_or(-1.0),
            latency.under_target_share().unwrap_or(-1.0),
        );
        let close = |a: f64, b: f64| (a - b).abs() <= b.abs() * 0.13 + 1e-9;
        assert!(
            close(got.0, expected.0) && close(got.1, expected.1) && close(got.2, expected.2),
            "got {got:?}, expected {expected:?}"
        );
    }

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth() {
        let samples: Vec<(i64, f64)> = (1..=100).map(|i| (0, i as f64 * 20.0)).collect();
        // 20 ms .. 2000 ms evenly: the median is 1000 ms, p99 1980 ms, half is under 1 s.
        check(&samples, 0, Window::Hour, (1000.0, 1980.0, 0.5));
    }

    #[test]
    fn old_samples_leave_the_hour_but_stay_in_the_day() {
        let samples = [(0, 5000.0), (61, 100.0)];
        check(&samples, 61, Window::Hour, (100.0, 100.0, 1.0));
        check(&samples, 61, Window::Day, (100.0, 5000.0, 0.5));
    }

    #[test]
    fn nothing_recorded_reports_nothing() {
        check(&[], 0, Window::Month, (-1.0, -1.0, -1.0));
        check(
            &[(0, 10.0)],
            24 * 60 * 31,
            Window::Month,
            (-1.0, -1.0, -1.0),
        );
    }

    #[test]
    fn a_latency_above_every_bucket_reports_the_last_bound() {
        check(
            &[(0, 500_000.0)],
            0,
            Window::Hour,
            (100_000.0, 100_000.0, 0.0),
        );
    }

    #[test]
    fn rings_reuse_slots_and_refuse_times_that_left_them() {
        let mut ring = Ring::new(MINUTE_MICROS, 3);
        ring.bucket(at_minutes(0)).unwrap().oversells += 1;
        ring.bucket(at_minutes(3)).unwrap().oversells += 10;
        assert!(
            ring.bucket(at_minutes(0)).is_none(),
            "minute 0 left the ring"
        );
        assert_eq!(ring.sum(at_minutes(3), 3).oversells, 10);
        assert_eq!(ring.sum(at_minutes(5), 3).oversells, 10);
        assert_eq!(ring.sum(at_minutes(6), 3).oversells, 0);
        let series = ring.series(at_minutes(4), 3);
        let counts: Vec<u64> = series.iter().map(|(_, b)| b.oversells).collect();
        assert_eq!(counts, [0, 10, 0]);
        assert_eq!(series[0].0, at_minutes(2));
    }

    #[test]
    fn windows_are_bounded_in_memory() {
        let mut counts = Counts::default();
        for minute in 0..(40 * 24 * 60) {
            counts.record(at_minutes(minute), |b| b.buffer_releases += 1);
        }
        assert_eq!(counts.minutes.slots.len(), MINUTES_KEPT);
        assert_eq!(counts.hours.slots.len(), HOURS_KEPT);
        let now = at_minutes(40 * 24 * 60 - 1);
        assert_eq!(counts.window(now, Window::Hour).buffer_releases, 60);
        // The current hour is whole here (its last minute), so 24 hours are 24 * 60 minutes.
        assert_eq!(counts.window(now, Window::Day).buffer_releases, 24 * 60);
        assert_eq!(
            counts.window(now, Window::Month).buffer_releases,
            30 * 24 * 60
        );
    }
}
