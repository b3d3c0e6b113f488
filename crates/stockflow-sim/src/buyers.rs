//! Simulated buyers: they arrive as drawn by [`crate::demand::Arrivals`], look at what the
//! storefront shows, and order when it shows enough (the platform decrements on its own). Then
//! they pay a moment later, and a share of them cancel before the order ships. Orders that the
//! platform accepted for units that did not exist are cancelled by the merchant, who finds
//! nothing to ship.
//!
//! One task drives everything, in time order: arrivals and the payments and cancellations they
//! scheduled. The same arrivals give the same attempts at the same instants; which attempts
//! find stock depends on what the platforms show, which depends on how fast stockflow updates
//! them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::demand::Arrival;
use crate::market::{Canceller, Market, Placed};
use crate::world::OrderKey;

#[derive(Clone, Debug)]
pub struct BuyersConfig {
    /// How long after ordering a buyer pays.
    pub pay_delay: Duration,
    /// Share (0..=1) of buyers who cancel before the order ships.
    pub cancel_share: f64,
    /// The latest a cancelling buyer cancels, after ordering (spread evenly up to it).
    pub cancel_within: Duration,
    /// How long the merchant takes to cancel an order no unit was left for.
    pub oversell_cancel_after: Duration,
}

impl Default for BuyersConfig {
    fn default() -> Self {
        Self {
            pay_delay: Duration::from_millis(200),
            cancel_share: 0.03,
            cancel_within: Duration::from_secs(5),
            oversell_cancel_after: Duration::from_secs(2),
        }
    }
}

/// What the buyers did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuyersStats {
    pub arrived: u64,
    pub ordered: u64,
    /// Buyers who found fewer units shown than they wanted.
    pub turned_away: u64,
    pub cancelled_by_buyer: u64,
    pub cancelled_by_merchant: u64,
    /// Cancellations that came too late (the order had shipped).
    pub cancel_too_late: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Pay(OrderKey),
    Cancel(OrderKey, bool),
}

/// The running buyers.
#[derive(Debug)]
pub struct BuyersHandle {
    stats: Arc<Mutex<BuyersStats>>,
    arrivals_total: u64,
    task: tokio::task::JoinHandle<()>,
}

impl BuyersHandle {
    pub fn stats(&self) -> BuyersStats {
        *self.stats.lock().unwrap()
    }

    /// Waits until every buyer arrived (what they scheduled may still be waiting), at most
    /// `timeout`; true when all arrived.
    pub async fn all_arrived(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.stats().arrived < self.arrivals_total {
            if Instant::now() >= deadline || self.task.is_finished() {
                return self.stats().arrived >= self.arrivals_total;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Waits until every arrival and everything it scheduled happened.
    pub async fn finished(&mut self) {
        let _ = (&mut self.task).await;
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the buyers: later arrivals never come.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for BuyersHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the buyers now: arrival times count from this instant.
pub fn start(market: Arc<Market>, arrivals: Vec<Arrival>, config: BuyersConfig) -> BuyersHandle {
    assert!((0.0..=1.0).contains(&config.cancel_share));
    let stats = Arc::new(Mutex::new(BuyersStats::default()));
    let arrivals_total = arrivals.len() as u64;
    let task = tokio::spawn(run(market, arrivals, config, stats.clone()));
    BuyersHandle {
        stats,
        arrivals_total,
        task,
    }
}

async fn run(
    market: Arc<Market>,
    arrivals: Vec<Arrival>,
    config: BuyersConfig,
    stats: Arc<Mutex<BuyersStats>>,
) {
    let start = Instant::now();
    let mut arrivals = arrivals.into_iter().peekable();
    let mut scheduled: BinaryHeap<Reverse<(Instant, u64, Action)>> = BinaryHeap::new();
    let mut sequence = 0u64;
    loop {
        let next_arrival = arrivals.peek().map(|a| start + a.at);
        let next_action = scheduled.peek().map(|Reverse((at, _, _))| *at);
        let due = match (next_arrival, next_action) {
            (None, None) => return,
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
        };
        tokio::time::sleep_until(due).await;
        if next_action.is_some_and(|at| at <= due) {
            let Reverse((_, _, action)) = scheduled.pop().expect("peeked");
            perform(&market, action, &stats);
            continue;
        }
        let arrival = arrivals.next().expect("peeked");
        let now = Instant::now();
        for (after, action) in arrive(&market, &arrival, &config, &stats) {
            sequence += 1;
            scheduled.push(Reverse((now + after, sequence, action)));
        }
    }
}

/// One buyer looks and maybe orders; returns what the order schedules.
fn arrive(
    market: &Market,
    arrival: &Arrival,
    config: &BuyersConfig,
    stats: &Mutex<BuyersStats>,
) -> Vec<(Duration, Action)> {
    stats.lock().unwrap().arrived += 1;
    match market.place(arrival.platform, &arrival.sku, arrival.units) {
        Placed::Ordered { order, claim } => {
            stats.lock().unwrap().ordered += 1;
            let mut follow = vec![(config.pay_delay, Action::Pay(order.clone()))];
            if claim.is_oversell() {
                follow.push((config.oversell_cancel_after, Action::Cancel(order, false)));
            } else if arrival.whim < config.cancel_share {
                let spread = arrival.whim / config.cancel_share;
                let after = config.pay_delay + config.cancel_within.mul_f64(spread);
                follow.push((after, Action::Cancel(order, true)));
            }
            follow
        }
        Placed::NotShown { .. } => {
            stats.lock().unwrap().turned_away += 1;
            Vec::new()
        }
        Placed::NotListed => Vec::new(),
    }
}

fn perform(market: &Market, action: Action, stats: &Mutex<BuyersStats>) {
    match action {
        Action::Pay(order) => market.pay(&order),
        Action::Cancel(order, by_buyer) => {
            let by = if by_buyer {
                Canceller::Buyer
            } else {
                Canceller::Merchant
            };
            let cancelled = market.cancel(&order, by);
            let mut stats = stats.lock().unwrap();
            match (cancelled, by) {
                (true, Canceller::Buyer) => stats.cancelled_by_buyer += 1,
                (true, Canceller::Merchant) => stats.cancelled_by_merchant += 1,
                (false, _) => stats.cancel_too_late += 1,
            }
        }
    }
}
