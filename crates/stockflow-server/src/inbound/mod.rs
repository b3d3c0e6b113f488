//! Inbound channel events: signed webhooks from Shopify, Amazon (posted by the merchant's
//! forwarder) and TikTok Shop become ledger inputs. Accept durably, then process: a verified
//! webhook is written to the inbox and answered within the platform's deadline; a task then
//! turns inbox rows into reservations, confirmations, releases, fulfilment checks and drift
//! repairs, in order, with retries, across restarts.
//!
//! # Layout
//!
//! - [`settings`]: `[webhooks.channels.<id>]` (secrets, rotation) parsed with what
//!   `[channels.<id>]` says.
//! - [`verify`]: signatures on the raw body, in constant time.
//! - [`formats`]: each platform's delivery (its id and topic) and notice (what it says), pure.
//! - [`inbox`]: the durable inbox (SQLite, `inbox.db`): keys kept forever, processing state,
//!   inbound incidents.
//! - [`processor`]: the task that takes inbox rows in order; retries, backoff, quarantine.
//! - [`orders`]: an order notice against the ledger; [`drift`]: a channel-side inventory edit.
//! - [`metrics`]: counters and the backlog gauge.
//!
//! # Invariants
//!
//! - Nothing is recorded for a webhook whose signature does not verify.
//! - A (channel, platform event id) is processed at most once, forever: the inbox key is unique
//!   and never deleted (only bodies are pruned).
//! - Processing is idempotent: a reservation id is derived from the platform's order id
//!   (`<platform>-<channel>-<order id>`), an adjustment's event id and `seq` are kept on the row
//!   before it is submitted, and a row's incidents are written with its end.

pub mod drift;
pub mod formats;
pub mod inbox;
pub mod metrics;
pub mod orders;
pub mod processor;
pub mod settings;
pub mod verify;

use crate::config::Config;
use anyhow::Context;
use inbox::Inbox;
use settings::InboundSettings;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use stockflow_channels::SyncConfig;
use stockflow_channels::orders::TiktokOrders;
use stockflow_core::ids::ChannelId;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// The inbound side of the server: settings, the inbox, the processor task.
pub struct Inbound {
    pub settings: InboundSettings,
    pub inbox: Arc<Inbox>,
    /// Get Order Detail per TikTok channel with adapter settings.
    pub tiktok: HashMap<ChannelId, Arc<TiktokOrders>>,
    /// Tells the processor a row arrived.
    wake: Notify,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Inbound {
    /// Parses the settings and opens the inbox (`inbox.db` in the data directory).
    pub fn open(config: &Config, sync: &SyncConfig) -> anyhow::Result<Inbound> {
        metrics::describe();
        let settings = InboundSettings::from_config(config)?;
        let inbox = Inbox::open(&config.data_dir.join("inbox.db")).context("opening the inbox")?;
        metrics::backlog(inbox.pending_count());
        Ok(Inbound {
            settings,
            inbox: Arc::new(inbox),
            tiktok: settings::tiktok_readers(sync)?,
            wake: Notify::new(),
            stop: watch::Sender::new(false),
            task: Mutex::new(None),
        })
    }

    /// Starts the processor, unless `webhooks.processor_paused` says to only accept.
    pub fn start(&self, state: crate::app::AppState) {
        if state.config.webhooks.processor_paused {
            tracing::warn!("webhooks are accepted but not processed (webhooks.processor_paused)");
            return;
        }
        let task = tokio::spawn(processor::run(state, self.stop.subscribe()));
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// A row was recorded: the processor looks at once.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops the processor after the row in hand; rows left pending wait for the next start.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
