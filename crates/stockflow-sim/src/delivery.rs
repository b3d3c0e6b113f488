//! Webhook delivery the way platforms deliver: at least once (a share delivered twice),
//! out of order (each notification waits a drawn delay), sometimes late (a share waits much
//! longer), retried with a schedule when the receiver does not answer 2xx within the deadline,
//! given up after the last retry, from a bounded queue.
//!
//! The body and headers of a notification are built by the platform's module
//! ([`crate::notify`]); the [`Deliverer`] only decides when each copy leaves and what became of
//! it. Every draw comes from a ChaCha stream seeded by the config, taken when the notification
//! is queued, so the same sequence of notifications gets the same delays and duplicates.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// One webhook as the platform sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The platform's topic or status (`orders/create`, `ORDER_CHANGE:Unshipped`, ...), for
    /// counting and for the acknowledgement callback.
    pub topic: String,
    /// The order (or other resource) it is about.
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// When and how a platform delivers.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// Where notifications are posted.
    pub url: String,
    /// Each notification waits a delay drawn uniformly from this range before its first
    /// attempt: two notifications close together may arrive in either order.
    pub delay_min: Duration,
    pub delay_max: Duration,
    /// Share (0..=1) of notifications delivered late, after `late_delay` instead.
    pub late_share: f64,
    pub late_delay: Duration,
    /// Share (0..=1) of notifications delivered a second time (at least once), the copy leaving
    /// `duplicate_after` after the first successful delivery.
    pub duplicate_share: f64,
    pub duplicate_after: Duration,
    /// The receiver must answer 2xx within this, else the attempt failed.
    pub attempt_timeout: Duration,
    /// The waits after each failed attempt; after the last, the platform gives up.
    pub retry_schedule: Vec<Duration>,
    /// Notifications waiting (first attempts, retries and duplicates); a new one beyond it is
    /// dropped and counted.
    pub queue_max: usize,
    /// Attempts in flight at once.
    pub concurrency: usize,
    pub seed: u64,
}

impl DeliveryConfig {
    /// Shopify: 5 s to answer, 8 retries over about 4 hours, a few percent duplicated, a few
    /// late.
    pub fn shopify(url: impl Into<String>) -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Self {
            url: url.into(),
            delay_min: Duration::from_millis(5),
            delay_max: Duration::from_millis(400),
            late_share: 0.02,
            late_delay: minutes(30),
            duplicate_share: 0.05,
            duplicate_after: Duration::from_secs(20),
            attempt_timeout: Duration::from_secs(5),
            retry_schedule: [1, 2, 4, 8, 16, 32, 64, 113].map(minutes).to_vec(),
            queue_max: 100_000,
            concurrency: 16,
            seed: 0,
        }
    }

    /// Amazon, through an SQS queue and a forwarder: a message not acknowledged becomes visible
    /// again after the visibility timeout (30 s), up to a receive count, then goes to the
    /// dead-letter queue. Standard queues deliver at least once and out of order.
    pub fn amazon(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            delay_min: Duration::from_millis(20),
            delay_max: Duration::from_millis(800),
            late_share: 0.01,
            late_delay: Duration::from_secs(600),
            duplicate_share: 0.03,
            duplicate_after: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
            retry_schedule: vec![Duration::from_secs(30); 9],
            queue_max: 100_000,
            concurrency: 16,
            seed: 0,
        }
    }

    /// TikTok Shop: 3 s to answer; retried with backoff (the count is not published).
    pub fn tiktok(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            delay_min: Duration::from_millis(5),
            delay_max: Duration::from_millis(300),
            late_share: 0.01,
            late_delay: Duration::from_secs(300),
            duplicate_share: 0.05,
            duplicate_after: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(3),
            retry_schedule: [10, 30, 60, 300, 900, 3_600, 10_800]
                .map(Duration::from_secs)
                .to_vec(),
            queue_max: 100_000,
            concurrency: 16,
            seed: 0,
        }
    }

    /// Every wait divided by `factor`: a story that runs `factor` times faster than real time.
    /// The attempt timeout is kept (it is the receiver's real deadline).
    pub fn scaled(mut self, factor: f64) -> Self {
        assert!(
            factor > 0.0 && factor.is_finite(),
            "a time scale is positive"
        );
        let scale = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() / factor);
        self.late_delay = scale(self.late_delay);
        self.duplicate_after = scale(self.duplicate_after);
        self.retry_schedule = self.retry_schedule.iter().map(|d| scale(*d)).collect();
        self
    }

    fn validate(&self) {
        assert!(self.delay_min <= self.delay_max, "delay_min <= delay_max");
        for share in [self.late_share, self.duplicate_share] {
            assert!((0.0..=1.0).contains(&share), "shares are within 0..=1");
        }
        assert!(self.queue_max >= 1 && self.concurrency >= 1);
    }
}

/// What became of the notifications so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    pub queued: u64,
    /// Notifications acknowledged (2xx) at least once.
    pub delivered: u64,
    pub attempts: u64,
    /// Attempts answered with something other than 2xx, or not in time.
    pub failed_attempts: u64,
    pub retries: u64,
    /// Second copies sent after a successful delivery.
    pub duplicates: u64,
    pub late: u64,
    /// Refused because the queue was full.
    pub dropped: u64,
    /// Notifications whose last retry failed.
    pub gave_up: u64,
    /// Waiting or in flight.
    pub pending: u64,
}

/// Called once per notification, at its first 2xx.
pub type OnDelivered = Arc<dyn Fn(&Notification) + Send + Sync>;

#[derive(Debug)]
struct Entry {
    notification: Arc<Notification>,
    attempt: usize,
    /// A second copy of a delivered notification: its outcome changes nothing.
    copy: bool,
    duplicate: bool,
}

struct Queue {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    entries: std::collections::HashMap<u64, Entry>,
    random: ChaCha8Rng,
    closed: bool,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    delivered: AtomicU64,
    attempts: AtomicU64,
    failed_attempts: AtomicU64,
    retries: AtomicU64,
    duplicates: AtomicU64,
    late: AtomicU64,
    dropped: AtomicU64,
    gave_up: AtomicU64,
    in_flight: AtomicU64,
}

struct Shared {
    config: DeliveryConfig,
    client: reqwest::Client,
    queue: Mutex<Queue>,
    wake: Notify,
    idle: Notify,
    counters: Counters,
    next_id: AtomicU64,
    on_delivered: Option<OnDelivered>,
    slots: Arc<Semaphore>,
}

/// A platform's outgoing webhook queue, with its own task. Dropping it stops the task.
pub struct Deliverer {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("url", &self.shared.config.url)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The HTTP client the simulated senders use: short connect timeout, rustls' ring provider.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(timeout)
        .build()
        .expect("an HTTP client builds")
}

impl Deliverer {
    pub fn start(config: DeliveryConfig, on_delivered: Option<OnDelivered>) -> Self {
        config.validate();
        let shared = Arc::new(Shared {
            client: http_client(config.attempt_timeout),
            queue: Mutex::new(Queue {
                heap: BinaryHeap::new(),
                entries: std::collections::HashMap::new(),
                random: ChaCha8Rng::seed_from_u64(config.seed ^ 0x0064_656c_6976_6572),
                closed: false,
            }),
            slots: Arc::new(Semaphore::new(config.concurrency)),
            config,
            wake: Notify::new(),
            idle: Notify::new(),
            counters: Counters::default(),
            next_id: AtomicU64::new(0),
            on_delivered,
        });
        let task = tokio::spawn(run(shared.clone()));
        Self { shared, task }
    }

    /// Queues a notification; false when the queue was full (it is dropped and counted).
    pub fn send(&self, notification: Notification) -> bool {
        let shared = &self.shared;
        let config = &shared.config;
        let mut queue = shared.queue.lock().unwrap();
        if queue.entries.len() >= config.queue_max || queue.closed {
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        // Three draws per notification whatever the configuration, so changing one share does
        // not shift the others' stream.
        let spread: f64 = queue.random.random();
        let late = queue.random.random_bool(config.late_share);
        let duplicate = queue.random.random_bool(config.duplicate_share);
        let delay = if late {
            shared.counters.late.fetch_add(1, Ordering::Relaxed);
            config.late_delay
        } else {
            config.delay_min + (config.delay_max - config.delay_min).mul_f64(spread)
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        queue.entries.insert(
            id,
            Entry {
                notification: Arc::new(notification),
                attempt: 0,
                copy: false,
                duplicate,
            },
        );
        queue.heap.push(Reverse((Instant::now() + delay, id)));
        shared.counters.queued.fetch_add(1, Ordering::Relaxed);
        drop(queue);
        shared.wake.notify_one();
        true
    }

    pub fn stats(&self) -> DeliveryStats {
        let c = &self.shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let waiting = self.shared.queue.lock().unwrap().entries.len() as u64;
        DeliveryStats {
            queued: load(&c.queued),
            delivered: load(&c.delivered),
            attempts: load(&c.attempts),
            failed_attempts: load(&c.failed_attempts),
            retries: load(&c.retries),
            duplicates: load(&c.duplicates),
            late: load(&c.late),
            dropped: load(&c.dropped),
            gave_up: load(&c.gave_up),
            pending: waiting,
        }
    }

    /// Waits until nothing is waiting nor in flight, or `timeout` passed; true when drained.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let idle = self.shared.idle.notified();
            if self.stats().pending == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.stats().pending == 0;
            }
        }
    }

    /// Stops sending; what is waiting stays undelivered.
    pub fn close(&self) {
        self.shared.queue.lock().unwrap().closed = true;
        self.shared.wake.notify_one();
    }
}

impl Drop for Deliverer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The scheduler: sleeps until the earliest due entry (or a new one), then starts its attempt.
async fn run(shared: Arc<Shared>) {
    loop {
        let wake = shared.wake.notified();
        let next = {
            let queue = shared.queue.lock().unwrap();
            if queue.closed {
                return;
            }
            queue.heap.peek().map(|Reverse((at, _))| *at)
        };
        match next {
            Some(at) if at <= Instant::now() => {
                let permit = shared
                    .slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("never closed");
                let due = {
                    let mut queue = shared.queue.lock().unwrap();
                    queue.heap.pop().map(|Reverse((_, id))| id)
                };
                if let Some(id) = due {
                    shared.counters.in_flight.fetch_add(1, Ordering::Relaxed);
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        attempt(&shared, id).await;
                        drop(permit);
                        shared.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                        shared.idle.notify_waiters();
                        shared.wake.notify_one();
                    });
                }
            }
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = wake => {}
                }
            }
            None => wake.await,
        }
    }
}

async fn attempt(shared: &Shared, id: u64) {
    let (notification, number) = {
        let mut queue = shared.queue.lock().unwrap();
        let Some(entry) = queue.entries.get_mut(&id) else {
            return;
        };
        entry.attempt += 1;
        (entry.notification.clone(), entry.attempt)
    };
    shared.counters.attempts.fetch_add(1, Ordering::Relaxed);
    if number > 1 {
        shared.counters.retries.fetch_add(1, Ordering::Relaxed);
    }
    let mut request = shared.client.post(&shared.config.url);
    for (name, value) in &notification.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let answer = request.body(notification.body.clone()).send().await;
    let delivered = answer.is_ok_and(|response| response.status().is_success());
    settle(shared, id, delivered);
}

/// Records an attempt's outcome and schedules what follows: a retry, a duplicate, or nothing.
fn settle(shared: &Shared, id: u64, delivered: bool) {
    let config = &shared.config;
    let counters = &shared.counters;
    let mut queue = shared.queue.lock().unwrap();
    let Some(entry) = queue.entries.remove(&id) else {
        return;
    };
    let now = Instant::now();
    if delivered {
        if entry.copy {
            return;
        }
        counters.delivered.fetch_add(1, Ordering::Relaxed);
        if let Some(callback) = &shared.on_delivered {
            callback(&entry.notification);
        }
        if entry.duplicate {
            counters.duplicates.fetch_add(1, Ordering::Relaxed);
            let copy = Entry {
                notification: entry.notification,
                attempt: 0,
                copy: true,
                duplicate: false,
            };
            queue.entries.insert(id, copy);
            queue.heap.push(Reverse((now + config.duplicate_after, id)));
        }
        return;
    }
    counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
    match config.retry_schedule.get(entry.attempt - 1) {
        Some(wait) if !entry.copy => {
            let wait = *wait;
            queue.entries.insert(id, entry);
            queue.heap.push(Reverse((now + wait, id)));
        }
        _ if entry.copy => {}
        _ => {
            counters.gave_up.fetch_add(1, Ordering::Relaxed);
        }
    }
}
