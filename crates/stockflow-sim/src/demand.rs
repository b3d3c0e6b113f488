//! Demand: how many buyers arrive, when, and what they want. A [`DemandCurve`] is a multiplier
//! of a baseline rate over scenario time (piecewise linear: a baseline, a viral spike, a decay);
//! [`Arrivals`] draws a seeded, time-varying Poisson process from a list of demand streams, so
//! that the same seed gives the same buyers at the same instants wanting the same things.

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::world::Platform;

/// A multiplier over time, linear between points, flat before the first and after the last.
#[derive(Clone, Debug, PartialEq)]
pub struct DemandCurve {
    /// (time since the start, multiplier), in increasing time order.
    pub points: Vec<(Duration, f64)>,
}

impl DemandCurve {
    /// The same multiplier all the time.
    pub fn flat(multiplier: f64) -> Self {
        Self {
            points: vec![(Duration::ZERO, multiplier)],
        }
    }

    /// Baseline 1 until `start`, a linear rise to `peak` over `ramp`, `peak` for `hold`, then a
    /// linear decay back to 1 over `decay`.
    pub fn spike(
        start: Duration,
        ramp: Duration,
        peak: f64,
        hold: Duration,
        decay: Duration,
    ) -> Self {
        let top = start + ramp;
        let fall = top + hold;
        Self {
            points: vec![
                (Duration::ZERO, 1.0),
                (start, 1.0),
                (top, peak),
                (fall, peak),
                (fall + decay, 1.0),
            ],
        }
    }

    /// The multiplier at `at`.
    pub fn at(&self, at: Duration) -> f64 {
        let Some(first) = self.points.first() else {
            return 0.0;
        };
        if at <= first.0 {
            return first.1;
        }
        for pair in self.points.windows(2) {
            let ((t0, m0), (t1, m1)) = (pair[0], pair[1]);
            if at < t1 {
                let span = (t1 - t0).as_secs_f64();
                if span == 0.0 {
                    return m1;
                }
                let into = (at - t0).as_secs_f64() / span;
                return m0 + (m1 - m0) * into;
            }
        }
        self.points.last().map_or(0.0, |p| p.1)
    }

    /// The largest multiplier anywhere on the curve (the thinning bound).
    pub fn max(&self) -> f64 {
        self.points.iter().map(|p| p.1).fold(0.0, f64::max)
    }

    fn validate(&self) {
        assert!(!self.points.is_empty(), "a demand curve needs a point");
        assert!(
            self.points.windows(2).all(|w| w[0].0 <= w[1].0),
            "demand curve points go forward in time"
        );
        assert!(
            self.points.iter().all(|p| p.1 >= 0.0 && p.1.is_finite()),
            "demand multipliers are finite and not negative"
        );
    }
}

/// Buyers of one SKU on one platform: `rate_per_second` times the curve.
#[derive(Clone, Debug, PartialEq)]
pub struct DemandStream {
    pub platform: Platform,
    pub sku: String,
    pub rate_per_second: f64,
    pub curve: DemandCurve,
    /// Share of buyers (0..=1) who take two units instead of one.
    pub two_unit_share: f64,
}

/// One buyer: when they arrive, where, and what they want.
#[derive(Clone, Debug, PartialEq)]
pub struct Arrival {
    pub at: Duration,
    pub platform: Platform,
    pub sku: String,
    pub units: i64,
    /// Drawn once per buyer, for the decisions that come later (cancel or not, and when).
    pub whim: f64,
}

/// The most arrivals drawn for one scenario; a configuration that asks for more is refused.
pub const ARRIVALS_MAX: usize = 1_000_000;

/// A seeded draw of every buyer of a scenario, in time order.
#[derive(Debug)]
pub struct Arrivals;

impl Arrivals {
    /// Draws the buyers of `streams` over `[0, duration)`: a Poisson process per stream with a
    /// time-varying rate (thinning against the curve's maximum), merged in time order.
    ///
    /// # Panics
    /// On an invalid curve or rate, or when more than [`ARRIVALS_MAX`] buyers would arrive.
    pub fn draw(streams: &[DemandStream], duration: Duration, seed: u64) -> Vec<Arrival> {
        let mut random = ChaCha8Rng::seed_from_u64(seed ^ 0x6465_6d61_6e64);
        let mut arrivals = Vec::new();
        for stream in streams {
            stream.curve.validate();
            assert!(
                stream.rate_per_second >= 0.0 && stream.rate_per_second.is_finite(),
                "a demand rate is finite and not negative"
            );
            let bound = stream.rate_per_second * stream.curve.max();
            if bound <= 0.0 {
                continue;
            }
            let mut at = 0.0_f64;
            loop {
                let uniform: f64 = random.random();
                at += -(1.0 - uniform).ln() / bound;
                if at >= duration.as_secs_f64() {
                    break;
                }
                let instant = Duration::from_secs_f64(at);
                let accept: f64 = random.random();
                let whim: f64 = random.random();
                let two: bool = random.random_bool(stream.two_unit_share.clamp(0.0, 1.0));
                let rate = stream.rate_per_second * stream.curve.at(instant);
                if accept * bound >= rate {
                    continue;
                }
                assert!(
                    arrivals.len() < ARRIVALS_MAX,
                    "more than {ARRIVALS_MAX} buyers"
                );
                arrivals.push(Arrival {
                    at: instant,
                    platform: stream.platform,
                    sku: stream.sku.clone(),
                    units: if two { 2 } else { 1 },
                    whim,
                });
            }
        }
        arrivals.sort_by(|a, b| {
            a.at.cmp(&b.at)
                .then(a.platform.cmp(&b.platform))
                .then(a.sku.cmp(&b.sku))
        });
        arrivals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_spike_rises_holds_and_decays() {
        let curve = DemandCurve::spike(
            seconds(10.0),
            seconds(10.0),
            21.0,
            seconds(5.0),
            seconds(10.0),
        );
        assert_eq!(curve.at(seconds(0.0)), 1.0);
        assert_eq!(curve.at(seconds(15.0)), 11.0);
        assert_eq!(curve.at(seconds(22.0)), 21.0);
        assert_eq!(curve.at(seconds(30.0)), 11.0);
        assert_eq!(curve.at(seconds(100.0)), 1.0);
        assert_eq!(curve.max(), 21.0);
    }

    fn stream(platform: Platform, rate: f64, curve: DemandCurve) -> DemandStream {
        DemandStream {
            platform,
            sku: "HOT".into(),
            rate_per_second: rate,
            curve,
            two_unit_share: 0.1,
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_buyers() {
        let streams = [
            stream(Platform::TikTok, 2.0, DemandCurve::flat(1.0)),
            stream(Platform::Amazon, 1.0, DemandCurve::flat(1.0)),
        ];
        let a = Arrivals::draw(&streams, seconds(60.0), 7);
        let b = Arrivals::draw(&streams, seconds(60.0), 7);
        let c = Arrivals::draw(&streams, seconds(60.0), 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at), "in time order");
    }

    #[test]
    fn arrivals_follow_the_rate_and_the_curve() {
        let curve = DemandCurve {
            points: vec![
                (Duration::ZERO, 1.0),
                (seconds(100.0), 1.0),
                (seconds(100.0), 10.0),
            ],
        };
        let arrivals = Arrivals::draw(&[stream(Platform::Shopify, 5.0, curve)], seconds(200.0), 3);
        let before = arrivals.iter().filter(|a| a.at < seconds(100.0)).count();
        let after = arrivals.len() - before;
        // 500 expected before, 5,000 after: the counts of a Poisson process stay well within 20%.
        assert!((400..600).contains(&before), "{before}");
        assert!((4_500..5_500).contains(&after), "{after}");
        let pairs = arrivals.iter().filter(|a| a.units == 2).count();
        assert!(pairs > 0 && pairs < arrivals.len() / 5, "{pairs}");
    }
}
