//! Keeping inside a platform's limit. Two algorithms:
//!
//! - [`Gcra`]: a plain request rate with a burst (Amazon's token bucket, TikTok, webhooks), on
//!   the `governor` crate's GCRA, driven by tokio's clock so tests can pause time.
//! - [`CostBucket`]: Shopify's leaky bucket of query-cost points, paced from the
//!   `throttleStatus` the platform returns with every answer.
//!
//! Both also take a "not before" from the platform (a throttled answer, Retry-After): no call
//! leaves before it, since calling again while rejected is what platforms penalise.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// governor's clock on tokio's time (paused in tests, real otherwise).
#[derive(Clone, Debug)]
pub struct TokioClock {
    start: Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.start.elapsed())
    }
}

/// A request-rate limit with a burst, and the platform's "not before".
pub struct Gcra {
    limiter: RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>,
    clock: TokioClock,
    /// One request's share of the rate (the smallest wait after a rejection).
    interval: Duration,
    not_before: Mutex<Option<Instant>>,
    /// Set by a rejection, cleared by the next success: while set, calls go one at a time, so
    /// that calls queued behind a rejection do not all arrive while the platform still refuses.
    probing: std::sync::atomic::AtomicBool,
    probe: tokio::sync::Mutex<()>,
    /// When the platform last refused; calls stay one at a time until it has been quiet for
    /// [`PROBE_QUIET`].
    rejected_at: Mutex<Option<Instant>>,
}

/// How long after the last rejection calls go one at a time.
const PROBE_QUIET: Duration = Duration::from_secs(5);

impl std::fmt::Debug for Gcra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gcra")
            .field("interval", &self.interval)
            .finish()
    }
}

impl Gcra {
    /// `rate_per_second` requests per second on average, `burst` at once. `margin` is added to
    /// each request's interval, so that calls that leave evenly paced but arrive a little
    /// bunched up still fit the platform's bucket.
    pub fn new(rate_per_second: f64, burst: u32, margin: Duration) -> Self {
        assert!(rate_per_second > 0.0, "a rate must be positive");
        let interval = Duration::from_secs_f64(1.0 / rate_per_second) + margin;
        let quota = Quota::with_period(interval)
            .expect("a positive interval")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("at least one"));
        let clock = TokioClock::new();
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            interval,
            not_before: Mutex::new(None),
            probing: std::sync::atomic::AtomicBool::new(false),
            probe: tokio::sync::Mutex::new(()),
            rejected_at: Mutex::new(None),
        }
    }

    /// Waits out a hold-off that began after the share was taken, and while the platform has
    /// recently refused, lets one call through at a time. Hold the guard until the answer.
    pub async fn clear(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let guard = if self.probing.load(std::sync::atomic::Ordering::Acquire) {
            Some(self.probe.lock().await)
        } else {
            None
        };
        loop {
            let blocked = self
                .not_before
                .lock()
                .unwrap()
                .map(|at| at.saturating_duration_since(Instant::now()));
            match blocked.filter(|w| !w.is_zero()) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return guard,
            }
        }
    }

    /// The platform took a call: back to concurrent calls.
    pub fn succeeded(&self) {
        let quiet = self
            .rejected_at
            .lock()
            .unwrap()
            .is_none_or(|at| at.elapsed() >= PROBE_QUIET);
        if quiet {
            self.probing
                .store(false, std::sync::atomic::Ordering::Release);
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Takes one request, waiting as long as needed.
    pub async fn acquire(&self) {
        loop {
            let blocked = self
                .not_before
                .lock()
                .unwrap()
                .map(|at| at.saturating_duration_since(Instant::now()));
            if let Some(wait) = blocked.filter(|w| !w.is_zero()) {
                tokio::time::sleep(wait).await;
                continue;
            }
            match self.limiter.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    tokio::time::sleep(wait.max(Duration::from_micros(100))).await;
                }
            }
        }
    }

    /// The platform said no call before `after` from now.
    pub fn hold_off(&self, after: Duration) {
        self.probing
            .store(true, std::sync::atomic::Ordering::Release);
        *self.rejected_at.lock().unwrap() = Some(Instant::now());
        let until = Instant::now() + after;
        let mut not_before = self.not_before.lock().unwrap();
        if not_before.is_none_or(|at| at < until) {
            *not_before = Some(until);
        }
    }
}

/// What Shopify says about the bucket in `extensions.cost.throttleStatus`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

/// A local model of a leaky bucket of cost points, corrected by every answer's
/// `throttleStatus`.
#[derive(Debug)]
pub struct CostBucket {
    state: Mutex<CostState>,
    /// The least wait after a throttled answer: the status that comes with it may say capacity
    /// is back sooner than the platform will let a call through.
    throttle_wait_min: Duration,
}

#[derive(Debug)]
struct CostState {
    maximum: f64,
    available: f64,
    restore_rate: f64,
    refilled_at: Instant,
    not_before: Option<Instant>,
}

impl CostState {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.available =
            (self.available + elapsed.as_secs_f64() * self.restore_rate).min(self.maximum);
        self.refilled_at = self.refilled_at.max(now);
    }

    /// How long until `cost` fits; takes it when it fits now.
    fn try_take(&mut self, cost: f64, now: Instant) -> Option<Duration> {
        self.refill(now);
        if let Some(at) = self.not_before.filter(|at| *at > now) {
            return Some(at - now);
        }
        let cost = cost.min(self.maximum);
        if cost <= self.available {
            self.available -= cost;
            return None;
        }
        let missing = cost - self.available;
        Some(Duration::from_secs_f64(missing / self.restore_rate))
    }
}

impl CostBucket {
    /// A full bucket of `maximum` points restoring `restore_rate` per second (what the plan is
    /// believed to be until the first answer says otherwise).
    pub fn new(maximum: f64, restore_rate: f64, throttle_wait_min: Duration) -> Self {
        assert!(maximum > 0.0 && restore_rate > 0.0);
        Self {
            throttle_wait_min,
            state: Mutex::new(CostState {
                maximum,
                available: maximum,
                restore_rate,
                refilled_at: Instant::now(),
                not_before: None,
            }),
        }
    }

    /// Takes `cost` points, waiting until they are there.
    pub async fn acquire(&self, cost: f64) {
        loop {
            let wait = self.state.lock().unwrap().try_take(cost, Instant::now());
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait.max(Duration::from_millis(1))).await,
            }
        }
    }

    /// An answer's status: the platform's numbers win where they are lower (it counts calls we
    /// do not see, and may lower limits for a while); limits follow it both ways.
    pub fn observe(&self, status: ThrottleStatus) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        state.refill(now);
        if status.maximum_available > 0.0 {
            state.maximum = status.maximum_available;
        }
        if status.restore_rate > 0.0 {
            state.restore_rate = status.restore_rate;
        }
        state.available = state
            .available
            .min(status.currently_available)
            .min(state.maximum);
    }

    /// A throttled answer: nothing leaves until `cost` fits by the platform's numbers, nor before
    /// `retry_after` when it gave one.
    pub fn throttled(
        &self,
        status: Option<ThrottleStatus>,
        cost: f64,
        retry_after: Option<Duration>,
    ) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        if let Some(status) = status {
            if status.maximum_available > 0.0 {
                state.maximum = status.maximum_available;
            }
            if status.restore_rate > 0.0 {
                state.restore_rate = status.restore_rate;
            }
            state.available = status.currently_available.min(state.maximum);
            state.refilled_at = now;
        }
        let missing = (cost.min(state.maximum) - state.available).max(0.0);
        let refill = Duration::from_secs_f64(missing / state.restore_rate);
        let wait = refill
            .max(retry_after.unwrap_or_default())
            .max(self.throttle_wait_min);
        let until = now + wait;
        if state.not_before.is_none_or(|at| at < until) {
            state.not_before = Some(until);
        }
    }

    /// Points available now, by the local model.
    pub fn available(&self) -> f64 {
        let mut state = self.state.lock().unwrap();
        state.refill(Instant::now());
        state.available
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gcra_lets_a_burst_through_then_paces() {
        let gcra = Gcra::new(5.0, 5, Duration::ZERO);
        let start = Instant::now();
        for _ in 0..5 {
            gcra.acquire().await;
        }
        assert_eq!(Instant::now(), start);
        gcra.acquire().await;
        let waited = Instant::now() - start;
        assert!(waited >= Duration::from_millis(199), "{waited:?}");
        assert!(waited <= Duration::from_millis(201), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn gcra_holds_off_when_the_platform_says_so() {
        let gcra = Gcra::new(100.0, 10, Duration::ZERO);
        gcra.hold_off(Duration::from_secs(2));
        let start = Instant::now();
        gcra.acquire().await;
        assert!(Instant::now() - start >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn cost_bucket_waits_for_points_and_follows_the_platform() {
        let bucket = CostBucket::new(100.0, 10.0, Duration::ZERO);
        let start = Instant::now();
        bucket.acquire(100.0).await;
        assert_eq!(Instant::now(), start);
        bucket.acquire(10.0).await;
        assert!(Instant::now() - start >= Duration::from_millis(999));
        // The platform lowered the limits: the local model follows.
        bucket.observe(ThrottleStatus {
            maximum_available: 50.0,
            currently_available: 5.0,
            restore_rate: 5.0,
        });
        assert!(bucket.available() <= 5.0);
        let before = Instant::now();
        bucket.throttled(None, 10.0, Some(Duration::from_secs(3)));
        bucket.acquire(10.0).await;
        assert!(Instant::now() - before >= Duration::from_secs(3));
    }
}
