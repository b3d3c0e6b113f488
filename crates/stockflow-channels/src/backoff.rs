//! Retry timing: exponential backoff with full jitter, the platform's Retry-After as a floor,
//! and a slow cadence once an attempt series is used up (the entry stays pending; nothing is
//! dropped).

use std::time::Duration;

use rand::RngExt;

use crate::config::RetrySettings;

/// When to try a failed entry again.
#[derive(Clone, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Failures in a row before the slow cadence.
    pub attempts_max: u32,
    pub slow: Duration,
}

impl Backoff {
    pub fn from_settings(settings: &RetrySettings) -> Self {
        Self {
            base: Duration::from_millis(settings.base_ms),
            cap: Duration::from_millis(settings.cap_ms),
            attempts_max: settings.attempts_max,
            slow: Duration::from_millis(settings.slow_interval_ms),
        }
    }

    /// The wait before attempt `attempts + 1` after `attempts` failures in a row (1 = the first
    /// failure). `floor` is what the platform asked for (Retry-After, a rate-limit interval).
    /// `unit` in 0..1 is the jitter draw, handed in so tests are deterministic.
    pub fn delay(&self, attempts: u32, floor: Option<Duration>, unit: f64) -> Duration {
        debug_assert!((0.0..=1.0).contains(&unit));
        if attempts > self.attempts_max {
            return self.slow.max(floor.unwrap_or_default());
        }
        let exponent = attempts.saturating_sub(1).min(30);
        let ceiling = self.base.saturating_mul(1u32 << exponent).min(self.cap);
        let jittered = ceiling.mul_f64(unit);
        jittered.max(floor.unwrap_or_default())
    }

    /// [`Backoff::delay`] with a fresh jitter draw.
    pub fn next(&self, attempts: u32, floor: Option<Duration>) -> Duration {
        let unit: f64 = rand::rng().random_range(0.0..=1.0);
        self.delay(attempts, floor, unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            attempts_max: 5,
            slow: Duration::from_secs(60),
        }
    }

    #[test]
    fn grows_exponentially_up_to_the_cap_with_full_jitter() {
        let b = backoff();
        assert_eq!(b.delay(1, None, 1.0), Duration::from_millis(100));
        assert_eq!(b.delay(3, None, 1.0), Duration::from_millis(400));
        assert_eq!(b.delay(5, None, 1.0), Duration::from_millis(1600));
        assert_eq!(b.delay(5, None, 0.5), Duration::from_millis(800));
        assert_eq!(b.delay(4, None, 0.0), Duration::ZERO);
        let capped = Backoff {
            attempts_max: 50,
            ..backoff()
        };
        assert_eq!(capped.delay(40, None, 1.0), Duration::from_secs(2));
    }

    #[test]
    fn retry_after_is_a_floor_and_a_used_up_series_goes_slow() {
        let b = backoff();
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(3)), 0.2),
            Duration::from_secs(3)
        );
        assert_eq!(b.delay(6, None, 0.9), Duration::from_secs(60));
        assert_eq!(
            b.delay(6, Some(Duration::from_secs(90)), 0.9),
            Duration::from_secs(90)
        );
    }
}
