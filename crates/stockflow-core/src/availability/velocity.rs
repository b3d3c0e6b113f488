//! Demand measurement: the per-SKU velocity tracker (recent hour against the SKU's own trailing
//! daily rate) and the per-channel cancellation rate.
//!
//! Small and bounded: a SKU's tracker is thirteen 5-minute buckets for the recent hour plus one
//! exponentially decayed count for everything older (under 100 bytes), whatever its history. Integers
//! in state; the few computations in floating point use only `+ - * /` (and a series for `exp`),
//! which IEEE 754 defines exactly, so replays agree across machines.

use super::amount::{Percent, Ratio};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The recent window dynamic policies compare with the baseline.
pub const RECENT_WINDOW_SECONDS: i64 = 3_600;
const BUCKET_SECONDS: i64 = 300;
const BUCKET_MICROS: i64 = BUCKET_SECONDS * Timestamp::MICROS_PER_SECOND;
/// Whole buckets covering the recent window, plus the current one: the window read is the last
/// 60 to 65 minutes, so demand of the last hour never leaks into the baseline early.
const RECENT_BUCKETS: usize = (RECENT_WINDOW_SECONDS / BUCKET_SECONDS) as usize + 1;
/// Time constant of the baseline (the "trailing daily rate").
pub const BASELINE_SECONDS: i64 = 86_400;
/// Time constant of the remembered volatility peak, and of the cancellation rate (Amazon judges
/// sellers on 7 days).
pub const LONG_MEMORY_SECONDS: i64 = 7 * 86_400;
/// Ratios are reported up to this (a SKU with no baseline at all).
pub const RATIO_MAX: Ratio = Ratio::whole(1_000);
const MILLI: f64 = 1_000.0;

/// Demand of one SKU. Fed by [`Velocity::record`] with the time passed in; read at any later
/// time without changing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Velocity {
    /// Start of the newest bucket (a multiple of the bucket length); meaningless before the
    /// first demand.
    bucket_start: Timestamp,
    /// Units per bucket, oldest first; the last is the current bucket.
    recent: [u32; RECENT_BUCKETS],
    /// Units that left the recent window, exponentially decayed with [`BASELINE_SECONDS`], in
    /// thousandths of a unit, as of `bucket_start`.
    baseline_milli: u64,
    /// The first demand ever recorded: how much history the baseline has.
    first_at: Option<Timestamp>,
    /// The highest hourly ratio seen, decayed with [`LONG_MEMORY_SECONDS`] as of the last
    /// demand: the SKU's historical volatility.
    peak: Ratio,
}

/// What the tracker says at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VelocityReading {
    /// Units in the recent window (the last 60 to 65 minutes, bucket-aligned).
    pub recent_units: u64,
    /// Units per hour over the recent window.
    pub recent_per_hour: f64,
    /// Units per hour before the recent window (bias-corrected for short histories); `None`
    /// when the SKU has no demand older than the recent window.
    pub baseline_per_hour: Option<f64>,
    /// How long the SKU's demand history reaches back before the recent window.
    pub history_seconds: i64,
}

impl VelocityReading {
    /// The recent rate against the baseline, the baseline being at least
    /// `baseline_units_per_day_min`; `None` when fewer than `recent_units_min` units were seen.
    pub fn ratio(&self, recent_units_min: i64, baseline_units_per_day_min: i64) -> Option<Ratio> {
        if (self.recent_units as i64) < recent_units_min.max(1) {
            return None;
        }
        let floor = baseline_units_per_day_min.max(1) as f64 / 24.0;
        let baseline = self.baseline_per_hour.unwrap_or(0.0).max(floor);
        Some(Ratio::from_f64_floor(
            self.recent_per_hour / baseline,
            RATIO_MAX,
        ))
    }
}

impl Velocity {
    pub fn is_empty(&self) -> bool {
        self.first_at.is_none()
    }

    /// Records `quantity` units of demand at `now`.
    pub fn record(&mut self, quantity: i64, now: Timestamp) {
        if quantity <= 0 {
            return;
        }
        if self.first_at.is_none() {
            self.first_at = Some(now);
            self.bucket_start = bucket_of(now);
        }
        let previous_peak_at = self.bucket_start;
        self.advance(now);
        let last = RECENT_BUCKETS - 1;
        self.recent[last] = self.recent[last].saturating_add(quantity.min(u32::MAX as i64) as u32);
        let hourly = self.read(now).ratio(1, 1).unwrap_or(Ratio::ZERO);
        let decayed = decay(
            self.peak.thousandths().max(0) as u64,
            now.micros_since(previous_peak_at),
            LONG_MEMORY_SECONDS,
        );
        self.peak = Ratio::from_thousandths((decayed as i64).max(hourly.thousandths()));
    }

    /// Historical volatility: the highest hourly ratio recently seen (as of the last demand).
    pub fn volatility(&self) -> Ratio {
        self.peak
    }

    /// The rates at `now` (not before the last recorded demand).
    pub fn read(&self, now: Timestamp) -> VelocityReading {
        let Some(first_at) = self.first_at else {
            return VelocityReading {
                recent_units: 0,
                recent_per_hour: 0.0,
                baseline_per_hour: None,
                history_seconds: 0,
            };
        };
        let mut state = *self;
        state.advance(now);
        let window_start = state
            .bucket_start
            .plus_micros(-BUCKET_MICROS * (RECENT_BUCKETS as i64 - 1));
        let span_micros = now.micros_since(window_start).max(BUCKET_MICROS);
        let recent_units: u64 = state.recent.iter().map(|&units| u64::from(units)).sum();
        let micros_per_hour = 3_600.0 * Timestamp::MICROS_PER_SECOND as f64;
        let recent_per_hour = recent_units as f64 * micros_per_hour / span_micros as f64;
        let history_micros = window_start.micros_since(first_at);
        let baseline_per_hour = (history_micros > 0).then(|| {
            // An exponentially weighted count over a history shorter than its time constant
            // holds only part of the weight; divide by the weight it had time to gather.
            let tau_hours = BASELINE_SECONDS as f64 / 3_600.0;
            let gathered = 1.0 - exp_negative(history_micros as f64 / micros(BASELINE_SECONDS));
            state.baseline_milli as f64 / MILLI / (tau_hours * gathered)
        });
        VelocityReading {
            recent_units,
            recent_per_hour,
            baseline_per_hour,
            history_seconds: history_micros.max(0) / Timestamp::MICROS_PER_SECOND,
        }
    }

    /// Rotates the buckets up to `now`: buckets leaving the recent window fold into the baseline.
    fn advance(&mut self, now: Timestamp) {
        let target = bucket_of(now);
        let buckets = target.micros_since(self.bucket_start) / BUCKET_MICROS;
        if buckets <= 0 {
            return;
        }
        let rotations = buckets.min(RECENT_BUCKETS as i64);
        let per_bucket = exp_negative(BUCKET_MICROS as f64 / micros(BASELINE_SECONDS));
        for _ in 0..rotations {
            let leaving = self.recent[0];
            self.recent.rotate_left(1);
            self.recent[RECENT_BUCKETS - 1] = 0;
            let kept = (self.baseline_milli as f64 * per_bucket) as u64;
            self.baseline_milli = kept.saturating_add(u64::from(leaving) * 1_000);
        }
        let idle = buckets - rotations;
        if idle > 0 {
            self.baseline_milli = decay(
                self.baseline_milli,
                idle.saturating_mul(BUCKET_MICROS),
                BASELINE_SECONDS,
            );
        }
        self.bucket_start = target;
    }
}

fn bucket_of(now: Timestamp) -> Timestamp {
    Timestamp(now.unix_micros().div_euclid(BUCKET_MICROS) * BUCKET_MICROS)
}

fn micros(seconds: i64) -> f64 {
    (seconds * Timestamp::MICROS_PER_SECOND) as f64
}

/// `value * exp(-elapsed / time_constant)`, truncated.
fn decay(value: u64, elapsed_micros: i64, time_constant_seconds: i64) -> u64 {
    if value == 0 || elapsed_micros <= 0 {
        return value;
    }
    let factor = exp_negative(elapsed_micros as f64 / micros(time_constant_seconds));
    (value as f64 * factor) as u64
}

/// `exp(-x)` for `x >= 0` with basic arithmetic only (platform `exp` differs in the last bit
/// between C libraries, which would make replays machine-dependent).
pub(crate) fn exp_negative(x: f64) -> f64 {
    const EXP_MINUS_ONE: f64 = 0.367_879_441_171_442_33;
    if x.is_nan() || x <= 0.0 {
        return 1.0;
    }
    if x > 700.0 {
        return 0.0;
    }
    let whole = x.floor();
    let fraction = x - whole;
    // Taylor series of exp(-f) on [0, 1): 18 terms bring the error under 1e-16. Multiplying
    // by the reciprocals (constants) instead of dividing keeps it cheap and as exact.
    const RECIPROCALS: [f64; 18] = {
        let mut table = [0.0; 18];
        let mut n = 0;
        while n < 18 {
            table[n] = 1.0 / (n + 1) as f64;
            n += 1;
        }
        table
    };
    let mut series = 1.0;
    for reciprocal in RECIPROCALS.iter().rev() {
        series = 1.0 - fraction * series * reciprocal;
    }
    let mut result = series;
    let mut base = EXP_MINUS_ONE;
    let mut exponent = whole as u32;
    while exponent > 0 {
        if exponent & 1 == 1 {
            result *= base;
        }
        base *= base;
        exponent >>= 1;
    }
    result
}

/// A channel's reserved and cancelled units, exponentially decayed over [`LONG_MEMORY_SECONDS`]:
/// their quotient is the measured cancellation rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CancellationTracker {
    updated_at: Timestamp,
    reserved_milli: u64,
    cancelled_milli: u64,
    /// The rate channel-aware policies use: whole percent, changed only when the measurement
    /// moved by a whole point or more (each change re-evaluates the channel's SKUs).
    effective: Option<Percent>,
}

/// Units reserved (decayed) before a channel's cancellation rate counts.
pub const CANCELLATION_SAMPLE_UNITS_MIN: u64 = 50;

impl CancellationTracker {
    pub fn record_reserved(&mut self, quantity: i64, now: Timestamp) -> bool {
        self.record(quantity, 0, now)
    }

    pub fn record_cancelled(&mut self, quantity: i64, now: Timestamp) -> bool {
        self.record(0, quantity, now)
    }

    /// The rate in use (`None` until enough orders were seen).
    pub fn effective_rate(&self) -> Option<Percent> {
        self.effective
    }

    /// Reserved units (decayed) so far, for explanations.
    pub fn sample_units(&self) -> u64 {
        self.reserved_milli / 1_000
    }

    /// Returns whether the effective rate changed.
    fn record(&mut self, reserved: i64, cancelled: i64, now: Timestamp) -> bool {
        let elapsed = now.micros_since(self.updated_at);
        self.reserved_milli = decay(self.reserved_milli, elapsed, LONG_MEMORY_SECONDS)
            .saturating_add(reserved.max(0) as u64 * 1_000);
        self.cancelled_milli = decay(self.cancelled_milli, elapsed, LONG_MEMORY_SECONDS)
            .saturating_add(cancelled.max(0) as u64 * 1_000);
        self.updated_at = self.updated_at.max(now);
        let measured = self.measured();
        let effective = match (self.effective, measured) {
            (_, None) => None,
            (Some(current), Some(rate))
                if (rate.basis_points() - current.basis_points()).abs() < 100 =>
            {
                Some(current)
            }
            (_, Some(rate)) => Some(rate.whole_percent_floor()),
        };
        let changed = effective != self.effective;
        self.effective = effective;
        changed
    }

    fn measured(&self) -> Option<Percent> {
        if self.reserved_milli < CANCELLATION_SAMPLE_UNITS_MIN * 1_000 {
            return None;
        }
        let rate = u128::from(self.cancelled_milli) * 10_000 / u128::from(self.reserved_milli);
        Some(Percent::from_basis_points(rate.min(10_000) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_minutes(minutes: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + minutes * 60)
    }

    /// Feeds `per_hour` units an hour, one order every `60 / per_hour` minutes, from `from` to
    /// `to` minutes.
    fn feed(velocity: &mut Velocity, per_hour: i64, from: i64, to: i64) {
        let step_seconds = 3_600 / per_hour;
        let mut second = from * 60;
        while second < to * 60 {
            velocity.record(1, Timestamp::from_unix_seconds(1_800_000_000 + second));
            second += step_seconds;
        }
    }

    fn check(velocity: &Velocity, minute: i64, expected_ratio_tenths: Option<i64>) {
        let ratio = velocity.read(at_minutes(minute)).ratio(5, 1);
        assert_eq!(
            ratio.map(|r| (r.thousandths() + 50) / 100),
            expected_ratio_tenths,
            "at minute {minute}: {:?}",
            velocity.read(at_minutes(minute))
        );
    }

    #[test]
    fn steady_demand_reads_about_one_times_its_baseline() {
        let mut velocity = Velocity::default();
        feed(&mut velocity, 10, 0, 48 * 60);
        check(&velocity, 48 * 60, Some(10));
    }

    #[test]
    fn a_tenfold_hour_reads_about_ten_times_and_fades_as_it_leaves_the_window() {
        let mut velocity = Velocity::default();
        feed(&mut velocity, 10, 0, 48 * 60);
        feed(&mut velocity, 100, 48 * 60, 49 * 60);
        let ratio = velocity.read(at_minutes(49 * 60)).ratio(5, 1).unwrap();
        assert!(
            (Ratio::whole(9)..=Ratio::whole(11)).contains(&ratio),
            "{ratio}"
        );
        // No demand after: the spike leaves the window bucket by bucket.
        check(&velocity, 49 * 60 + 20, Some(58));
        check(&velocity, 50 * 60, None);
        assert!(velocity.volatility() >= Ratio::whole(9));
    }

    #[test]
    fn a_new_sku_has_no_baseline_and_is_judged_against_the_floor() {
        let mut velocity = Velocity::default();
        feed(&mut velocity, 10, 0, 30);
        let reading = velocity.read(at_minutes(30));
        assert_eq!(reading.baseline_per_hour, None);
        assert_eq!(reading.recent_units, 5);
        assert_eq!(reading.ratio(6, 1), None);
        // 5 units over the 60-minute span, against a floor of 1 a day: 120x.
        let ratio = reading.ratio(5, 1).unwrap();
        assert!(
            (119_990..=120_010).contains(&ratio.thousandths()),
            "{ratio:?}"
        );
    }

    #[test]
    fn reading_does_not_change_the_tracker_and_long_idle_decays_the_baseline() {
        let mut velocity = Velocity::default();
        feed(&mut velocity, 10, 0, 24 * 60);
        let copy = velocity;
        let _ = velocity.read(at_minutes(100 * 24 * 60));
        assert_eq!(copy, velocity);
        let far = velocity.read(at_minutes(100 * 24 * 60));
        assert_eq!(far.recent_units, 0);
        assert!(far.baseline_per_hour.unwrap() < 1e-10);
    }

    #[test]
    fn exp_matches_the_library_closely() {
        for x in [0.0, 1e-9, 0.01, 0.5, 0.999, 1.0, 2.5, 10.0, 50.0] {
            let ours = exp_negative(x);
            let library = (-x).exp();
            assert!(
                (ours - library).abs() <= library * 1e-14,
                "{x}: {ours} {library}"
            );
        }
    }

    #[test]
    fn cancellation_rate_counts_after_a_sample_and_moves_in_whole_points() {
        let mut tracker = CancellationTracker::default();
        let now = at_minutes(0);
        assert!(!tracker.record_reserved(40, now));
        assert!(!tracker.record_cancelled(2, now));
        assert_eq!(tracker.effective_rate(), None);
        assert!(tracker.record_reserved(60, now));
        assert_eq!(tracker.effective_rate(), Some(Percent::whole(2)));
        // 2 of 110 is 1.8%, 3 of 110 is 2.7%: within a point of 2%, no change.
        assert!(!tracker.record_reserved(10, now));
        assert!(!tracker.record_cancelled(1, now));
        assert_eq!(tracker.effective_rate(), Some(Percent::whole(2)));
        // 4 of 110 is 3.6%: a point and more away, so the rate in use becomes 3%.
        assert!(tracker.record_cancelled(1, now));
        assert_eq!(tracker.effective_rate(), Some(Percent::whole(3)));
    }
}
