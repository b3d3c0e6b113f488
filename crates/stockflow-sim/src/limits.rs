//! The capacity bucket behind every platform's rate limit. Amazon's token bucket, TikTok's
//! requests per second and Shopify's leaky bucket of query-cost points are the same arithmetic:
//! a capacity that refills at a fixed rate up to a maximum, and a call that must fit in what is
//! left. The bucket also remembers when a rejected client was told capacity would be back, so
//! that calling again before then can be recorded as a violation.

use std::time::Duration;

/// A rate limit: sustained rate and burst (the bucket size).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub rate_per_second: f64,
    pub burst: f64,
}

impl RateLimit {
    pub fn new(rate_per_second: f64, burst: f64) -> Self {
        assert!(rate_per_second > 0.0, "a rate limit needs a positive rate");
        assert!(burst >= 1.0, "a rate limit needs room for one call");
        Self {
            rate_per_second,
            burst,
        }
    }
}

/// The answer to one call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Admission {
    Admitted,
    Rejected {
        /// When the call would fit, from now.
        retry_after: Duration,
        /// The client called while an earlier rejection still stood: a violation.
        while_rejected: bool,
    },
}

#[derive(Clone, Debug)]
pub struct Bucket {
    limit: RateLimit,
    available: f64,
    refilled_at: Duration,
    /// Until when the last rejection told the client to wait.
    rejected_until: Option<Duration>,
}

impl Bucket {
    /// A full bucket at time `now`.
    pub fn new(limit: RateLimit, now: Duration) -> Self {
        Self {
            limit,
            available: limit.burst,
            refilled_at: now,
            rejected_until: None,
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Capacity left at `now`.
    pub fn available(&mut self, now: Duration) -> f64 {
        self.refill(now);
        self.available
    }

    /// Changes the limit (Shopify lowering limits for a while); what is left is capped to the
    /// new size.
    pub fn set_limit(&mut self, limit: RateLimit, now: Duration) {
        self.refill(now);
        self.limit = limit;
        self.available = self.available.min(limit.burst);
    }

    /// Takes `cost` if it fits at `now`.
    pub fn try_take(&mut self, cost: f64, now: Duration) -> Admission {
        self.refill(now);
        if cost <= self.available {
            self.available -= cost;
            return Admission::Admitted;
        }
        let while_rejected = self.rejected_until.is_some_and(|until| now < until);
        let missing = cost.min(self.limit.burst) - self.available;
        let retry_after = Duration::from_secs_f64(missing.max(0.0) / self.limit.rate_per_second);
        self.rejected_until = Some(now + retry_after);
        Admission::Rejected {
            retry_after,
            while_rejected,
        }
    }

    /// Gives back capacity that was taken but not used (Shopify refunds requested minus actual
    /// cost).
    pub fn refund(&mut self, amount: f64, now: Duration) {
        self.refill(now);
        self.available = (self.available + amount).min(self.limit.burst);
    }

    /// Empties the bucket: a forced throttle tells the client it has nothing left.
    pub fn reject_for(&mut self, retry_after: Duration, now: Duration) -> bool {
        self.refill(now);
        let while_rejected = self.rejected_until.is_some_and(|until| now < until);
        self.rejected_until = Some(now + retry_after);
        while_rejected
    }

    fn refill(&mut self, now: Duration) {
        // Time never goes back; a call that read the clock before another may arrive second.
        let elapsed = now.saturating_sub(self.refilled_at);
        self.available = (self.available + elapsed.as_secs_f64() * self.limit.rate_per_second)
            .min(self.limit.burst);
        self.refilled_at = self.refilled_at.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn burst_then_rate() {
        let mut bucket = Bucket::new(RateLimit::new(5.0, 5.0), Duration::ZERO);
        for _ in 0..5 {
            assert_eq!(bucket.try_take(1.0, Duration::ZERO), Admission::Admitted);
        }
        let Admission::Rejected {
            retry_after,
            while_rejected,
        } = bucket.try_take(1.0, Duration::ZERO)
        else {
            panic!("the sixth call must be rejected");
        };
        assert_eq!(retry_after, MS(200));
        assert!(!while_rejected);
        assert!(matches!(
            bucket.try_take(1.0, MS(100)),
            Admission::Rejected {
                while_rejected: true,
                ..
            }
        ));
        assert_eq!(bucket.try_take(1.0, MS(300)), Admission::Admitted);
    }

    #[test]
    fn refund_is_capped_at_the_size() {
        let mut bucket = Bucket::new(RateLimit::new(100.0, 2_000.0), Duration::ZERO);
        assert_eq!(bucket.try_take(500.0, Duration::ZERO), Admission::Admitted);
        bucket.refund(600.0, Duration::ZERO);
        assert_eq!(bucket.available(Duration::ZERO), 2_000.0);
    }

    #[test]
    fn lowering_caps_what_is_left() {
        let mut bucket = Bucket::new(RateLimit::new(100.0, 2_000.0), Duration::ZERO);
        bucket.set_limit(RateLimit::new(10.0, 100.0), Duration::ZERO);
        assert_eq!(bucket.available(Duration::ZERO), 100.0);
        assert_eq!(bucket.available(MS(1_000_000)), 100.0);
    }
}
