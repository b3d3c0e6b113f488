//! The processor: one task that takes pending inbox rows in id order, turns each into ledger
//! inputs ([`super::orders`], [`super::drift`]) and ends it, in one inbox transaction with the
//! incidents it found. A failure (the writer overloaded, a channel unreachable) leaves the row
//! pending, retried with exponential backoff up to `webhooks.attempts_max`, then quarantined;
//! a row that must wait on purpose (a drift re-read, picks not in yet) is looked at again later
//! without counting an attempt. Rows left pending at shutdown are processed after the restart.

use super::formats::{self, Notice};
use super::inbox::{Inbox, InboxError, NewIncident, Row, RowState};
use super::settings::{ChannelWebhook, Platform};
use crate::app::{AppState, wall_clock};
use std::sync::Arc;
use std::time::Duration;
use stockflow_core::time::Timestamp;
use tokio::sync::watch;

/// Rows taken per look at the inbox.
const ROWS_PER_LOOK: usize = 64;
/// The longest the processor sleeps without looking (a safety net; a new row wakes it).
const IDLE_LOOK_INTERVAL: Duration = Duration::from_secs(30);
/// How often bodies past their retention are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// What processing one row came to.
#[derive(Debug)]
pub enum Step {
    /// The row ends (done, ignored or quarantined) with what was done and what was found.
    Finish {
        state: RowState,
        outcome: String,
        incidents: Vec<NewIncident>,
    },
    /// A failure that another attempt may not meet.
    Retry(String),
    /// Not yet: look again at `at` (microseconds); no attempt is counted.
    Later { at: Timestamp, note: String },
}

/// What a row's processing did so far, and what it found.
#[derive(Debug, Default)]
pub struct Report {
    pub done: Vec<String>,
    pub incidents: Vec<NewIncident>,
}

impl Report {
    pub fn note(&mut self, what: impl Into<String>) {
        self.done.push(what.into());
    }

    pub fn incident(&mut self, incident: NewIncident) {
        self.done
            .push(format!("{}: {}", incident.kind, incident.detail));
        self.incidents.push(incident);
    }

    pub fn finish(self, state: RowState) -> Step {
        Step::Finish {
            state,
            outcome: self.done.join("; "),
            incidents: self.incidents,
        }
    }
}

/// What the processing of one row works with.
pub struct Context<'a> {
    pub state: &'a AppState,
    pub webhook: &'a ChannelWebhook,
    pub row: &'a Row,
    pub now: Timestamp,
}

impl Context<'_> {
    pub fn received_at(&self) -> Timestamp {
        Timestamp(self.row.received_at)
    }
}

/// Runs a blocking inbox call on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    inbox: &Arc<Inbox>,
    call: impl FnOnce(&Inbox) -> Result<T, InboxError> + Send + 'static,
) -> Result<T, String> {
    let inbox = inbox.clone();
    match tokio::task::spawn_blocking(move || call(&inbox)).await {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(_) => Err("the inbox call panicked".to_owned()),
    }
}

pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let inbound = state.inbound.clone();
    let mut prune_at = tokio::time::Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        if tokio::time::Instant::now() >= prune_at {
            prune(&state).await;
            prune_at = tokio::time::Instant::now() + PRUNE_INTERVAL;
        }
        let now = wall_clock();
        let rows = blocking(&inbound.inbox, move |inbox| inbox.due(now.0, ROWS_PER_LOOK)).await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(error) => {
                tracing::error!(%error, "the processor cannot read the inbox");
                Vec::new()
            }
        };
        if rows.is_empty() {
            let wait = idle_wait(&inbound.inbox).await;
            tokio::select! {
                () = inbound.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        for row in rows {
            if *stop.borrow() {
                return;
            }
            process_row(&state, row).await;
        }
    }
}

/// How long until the earliest pending row is due (bounded).
async fn idle_wait(inbox: &Arc<Inbox>) -> Duration {
    let next = blocking(inbox, Inbox::next_due_at).await.ok().flatten();
    match next {
        Some(at) => {
            let micros = (at - wall_clock().0).max(0) as u64;
            Duration::from_micros(micros).min(IDLE_LOOK_INTERVAL)
        }
        None => IDLE_LOOK_INTERVAL,
    }
}

async fn prune(state: &AppState) {
    let retention = state.config.webhooks.body_retention_hours as i64 * 3_600_000_000;
    let before = wall_clock().0.saturating_sub(retention);
    match blocking(&state.inbound.inbox, move |inbox| {
        inbox.prune_bodies(before)
    })
    .await
    {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "pruned the bodies of processed webhooks"),
        Err(error) => tracing::warn!(%error, "pruning webhook bodies failed"),
    }
}

async fn process_row(state: &AppState, row: Row) {
    let step = step(state, &row).await;
    let inbox = &state.inbound.inbox;
    let now = wall_clock();
    let settings = &state.config.webhooks;
    let platform = row.platform.clone();
    let channel = row.channel.clone();
    let result = match step {
        Step::Finish {
            state: end,
            outcome,
            incidents,
        } => {
            for incident in &incidents {
                super::metrics::incident(&channel, incident.kind);
            }
            metrics_end(&platform, &channel, end);
            if end == RowState::Quarantined {
                state.kpis.manual_intervention("quarantined_webhook", now);
            }
            tracing::debug!(row = row.id, %channel, state = end.name(), %outcome, "webhook processed");
            blocking(inbox, move |inbox| {
                inbox.finish(&row, end, &outcome, now.0, &incidents)
            })
            .await
        }
        Step::Retry(error) if row.attempts + 1 >= settings.attempts_max => {
            tracing::warn!(row = row.id, %channel, %error, "webhook quarantined after its last attempt");
            super::metrics::incident(&channel, "processing_failed");
            metrics_end(&platform, &channel, RowState::Quarantined);
            state.kpis.manual_intervention("quarantined_webhook", now);
            let incident = NewIncident::new(
                "processing_failed",
                format!("{} attempts failed; the last: {error}", row.attempts + 1),
            );
            blocking(inbox, move |inbox| {
                inbox.finish(&row, RowState::Quarantined, &error, now.0, &[incident])
            })
            .await
        }
        Step::Retry(error) => {
            tracing::info!(row = row.id, %channel, %error, attempts = row.attempts + 1, "webhook processing will be retried");
            super::metrics::processed(&platform, &channel, "retried");
            let delay = backoff(settings.retry_base_ms, settings.retry_cap_ms, row.attempts);
            let at = now.plus_micros(delay.as_micros() as i64);
            let id = row.id;
            blocking(inbox, move |inbox| inbox.postpone(id, at.0, &error, true)).await
        }
        Step::Later { at, note } => {
            let id = row.id;
            blocking(inbox, move |inbox| inbox.postpone(id, at.0, &note, false)).await
        }
    };
    if let Err(error) = result {
        tracing::error!(%error, "the processor cannot record a row's end; it is taken again");
    }
    super::metrics::backlog(inbox.pending_count());
}

fn metrics_end(platform: &str, channel: &str, end: RowState) {
    let outcome = match end {
        RowState::Done | RowState::Pending => "done",
        RowState::Ignored => "ignored",
        RowState::Quarantined => "quarantined",
    };
    super::metrics::processed(platform, channel, outcome);
}

/// Exponential: `base * 2^attempts`, at most `cap`.
pub fn backoff(base_ms: u64, cap_ms: u64, attempts: u32) -> Duration {
    let factor = 1u64 << attempts.min(20);
    Duration::from_millis(base_ms.saturating_mul(factor).min(cap_ms))
}

async fn step(state: &AppState, row: &Row) -> Step {
    let quarantine = |kind: &'static str, detail: String| {
        let mut report = Report::default();
        report.incident(NewIncident::new(kind, detail));
        report.finish(RowState::Quarantined)
    };
    let Some(platform) = Platform::parse(&row.platform) else {
        return quarantine("malformed", format!("unknown platform {}", row.platform));
    };
    let Some(webhook) = state.inbound.settings.channel(platform, &row.channel) else {
        return quarantine(
            "unknown_channel",
            format!("{} no longer takes {} webhooks", row.channel, row.platform),
        );
    };
    let Some(body) = &row.body else {
        return quarantine("malformed", "the body was pruned before processing".into());
    };
    let context = Context {
        state,
        webhook,
        row,
        now: wall_clock(),
    };
    match formats::notice(platform, &row.topic, body) {
        Err(reason) => quarantine("malformed", reason),
        Ok(Notice::Ignored(reason)) => {
            let mut report = Report::default();
            report.note(format!("not acted on: {reason}"));
            report.finish(RowState::Ignored)
        }
        Ok(Notice::Order(order)) => super::orders::process(&context, &order).await,
        Ok(Notice::InventoryLevel {
            inventory_item_id,
            location_id,
            available,
        }) => super::drift::process(&context, &inventory_item_id, &location_id, available).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(100, 1_000, 0), Duration::from_millis(100));
        assert_eq!(backoff(100, 1_000, 3), Duration::from_millis(800));
        assert_eq!(backoff(100, 1_000, 4), Duration::from_millis(1_000));
        assert_eq!(backoff(100, 1_000, 60), Duration::from_millis(1_000));
    }
}
