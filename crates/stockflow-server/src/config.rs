//! Configuration: defaults, then a TOML file, then `STOCKFLOW_`-prefixed environment variables
//! (nested keys separated by `__`, e.g. `STOCKFLOW_HTTP__BODY_LIMIT_BYTES=1000000`), then the
//! command line. Validated once at start; a bad value stops the start with a message naming it.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The top-level keys of [`Config`].
const SECTIONS: [&str; 12] = [
    "listen",
    "data_dir",
    "http",
    "engine",
    "ledger",
    "channels",
    "policies",
    "kpis",
    "dashboard",
    "reconcile",
    "alerts",
    "webhooks",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub engine: EngineSection,
    pub ledger: LedgerSection,
    /// Channels by id: inventory settings and adapter settings (see [`crate::settings`]).
    #[serde(default)]
    pub channels: std::collections::BTreeMap<String, serde_json::Value>,
    /// Buffer policies (see [`crate::settings`]).
    #[serde(default)]
    pub policies: Vec<serde_json::Value>,
    #[serde(default)]
    pub kpis: KpisSection,
    #[serde(default)]
    pub dashboard: DashboardSection,
    /// Cycle counts and channel reconciliation (see [`crate::reconcile`]).
    #[serde(default)]
    pub reconcile: crate::reconcile::ReconcileSection,
    /// Alert rules, thresholds and webhooks (see [`crate::alerts`]).
    #[serde(default)]
    pub alerts: crate::alerts::AlertsSection,
    /// Inbound channel webhooks (see [`crate::inbound`]).
    #[serde(default)]
    pub webhooks: WebhooksSection,
}

/// `[webhooks]`: inbound channel webhooks, accepted durably then processed (see
/// [`crate::inbound`]). Per channel, `[webhooks.channels.<id>]` holds its secrets (see
/// [`crate::inbound::settings`]); a channel's drift policy is `[reconcile.channels]`'.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksSection {
    /// Accept and record webhooks, process none (maintenance; tests of the inbox).
    pub processor_paused: bool,
    /// Webhooks accepted and not processed yet; beyond it new ones are answered 503 with
    /// Retry-After, so the platform retries.
    pub backlog_max: u64,
    /// The bodies of processed webhooks are deleted after this; their keys stay forever.
    pub body_retention_hours: u64,
    /// The previous secret of a channel is accepted this long after its `rotated_at`.
    pub rotation_grace_seconds: u64,
    /// Bodies above these are refused with 413 before they are read whole.
    pub body_limit_bytes: WebhookBodyLimits,
    /// Failed processing is retried after `retry_base_ms`, doubling up to `retry_cap_ms`; after
    /// `attempts_max` attempts the row is quarantined.
    pub retry_base_ms: u64,
    pub retry_cap_ms: u64,
    pub attempts_max: u32,
    /// TTL of the provisional reservation of an order not paid yet.
    pub order_ttl_seconds: u32,
    /// A channel-side inventory edit is re-read this long after it was heard, so that the
    /// order webhooks sent around it are processed first.
    pub drift_delay_ms: u64,
    /// How long a fulfilment waits for the warehouse's picks before a mismatch is recorded.
    pub fulfilment_grace_seconds: u64,
    /// Channels that take webhooks, by id: secrets and rotation.
    pub channels: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Body limits per platform.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookBodyLimits {
    pub shopify: usize,
    pub amazon: usize,
    pub tiktok: usize,
}

impl Default for WebhookBodyLimits {
    fn default() -> Self {
        Self {
            // Shopify orders with many lines run to hundreds of kilobytes; SQS caps a message
            // at 1 MiB; TikTok's webhooks are small.
            shopify: 2 * 1024 * 1024,
            amazon: 1024 * 1024,
            tiktok: 256 * 1024,
        }
    }
}

impl WebhookBodyLimits {
    pub fn of(&self, platform: crate::inbound::settings::Platform) -> usize {
        use crate::inbound::settings::Platform;
        match platform {
            Platform::Shopify => self.shopify,
            Platform::Amazon => self.amazon,
            Platform::Tiktok => self.tiktok,
        }
    }
}

impl Default for WebhooksSection {
    fn default() -> Self {
        Self {
            processor_paused: false,
            backlog_max: 100_000,
            body_retention_hours: 30 * 24,
            rotation_grace_seconds: 3_600,
            body_limit_bytes: WebhookBodyLimits::default(),
            retry_base_ms: 500,
            retry_cap_ms: 300_000,
            attempts_max: 50,
            order_ttl_seconds: 7 * 24 * 3_600,
            drift_delay_ms: 10_000,
            fulfilment_grace_seconds: 900,
            channels: std::collections::BTreeMap::new(),
        }
    }
}

impl WebhooksSection {
    pub fn validate(&self) -> Result<(), String> {
        let limits = self.body_limit_bytes;
        let checks = [
            (
                self.backlog_max >= 1,
                "webhooks.backlog_max must be at least 1",
            ),
            (
                limits.shopify >= 1024 && limits.amazon >= 1024 && limits.tiktok >= 1024,
                "webhooks.body_limit_bytes must be at least 1024 for every platform",
            ),
            (
                self.retry_base_ms >= 1 && self.retry_cap_ms >= self.retry_base_ms,
                "webhooks.retry_base_ms must be at least 1 and at most retry_cap_ms",
            ),
            (
                self.attempts_max >= 1,
                "webhooks.attempts_max must be at least 1",
            ),
            (
                (1..=stockflow_core::command::RESERVATION_TTL_SECONDS_MAX)
                    .contains(&self.order_ttl_seconds),
                "webhooks.order_ttl_seconds is out of range",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err((*message).to_owned()),
            None => Ok(()),
        }
    }
}

/// The operators' KPIs (see [`crate::kpis`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KpisSection {
    /// Propagation latency at or under this is on target.
    pub latency_target_ms: u64,
    /// The counts are saved to `kpis.json` this often (and at shutdown).
    pub save_every_seconds: u64,
    /// The window of the cancellation rates held against the platforms' limits: 1, 7 or 30.
    pub cancellation_window_days: u64,
    /// Cancellation rate limits in percent, by channel id or channel kind.
    pub cancellation_limits_percent: std::collections::BTreeMap<String, f64>,
}

impl Default for KpisSection {
    fn default() -> Self {
        Self {
            latency_target_ms: 1000,
            save_every_seconds: 30,
            cancellation_window_days: 7,
            // Amazon: seller cancellation rate below 2.5% over 7 days; TikTok Shop: 10% over 7
            // days caps the shop's order volume (CHANNELS.md).
            cancellation_limits_percent: [("amazon".to_owned(), 2.5), ("tiktok".to_owned(), 10.0)]
                .into_iter()
                .collect(),
        }
    }
}

/// The dashboard's live stream (see [`crate::dashboard`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardSection {
    /// Browsers streaming at once; more are answered 503.
    pub stream_clients_max: usize,
    /// A browser is sent at most one update per interval.
    pub stream_interval_ms: u64,
}

impl Default for DashboardSection {
    fn default() -> Self {
        Self {
            stream_clients_max: 32,
            stream_interval_ms: 500,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Bodies above this are refused with 413 before they are read whole.
    pub body_limit_bytes: usize,
    /// A request that takes longer is answered 503.
    pub request_timeout_ms: u64,
    /// Connections served at once; more wait in the kernel's backlog.
    pub concurrency_max: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Requests waiting for the writer; when full, new ones are answered 503 at once.
    pub queue_capacity: usize,
    /// Requests the writer takes into one batch (one journal transaction).
    pub batch_requests_max: usize,
    /// Events the writer takes into one batch.
    pub batch_events_max: usize,
    pub snapshot_every_positions: u64,
    pub snapshot_every_seconds: u64,
    pub snapshots_kept: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSection {
    pub held_events_per_source_max: usize,
    pub held_timeout_seconds: u64,
    /// Given-up gaps remembered per source, so that an event of one arriving after all is
    /// applied late (0: none).
    pub given_up_ranges_per_source_max: usize,
    /// Reservations remembered per tenant with units picked before they arrived (0: none).
    pub picked_ahead_max: usize,
    /// How long units picked ahead of their reservation are remembered.
    pub picked_ahead_max_age_seconds: u64,
    /// TTL of a reservation that does not say.
    pub reservation_ttl_seconds_default: u32,
    /// Locations in the order they are tried for reservation lines without a location, when the
    /// channel has no priority of its own.
    pub location_priority: Vec<String>,
}

impl LedgerSection {
    /// The ledger's settings. The server and `stockflow verify` must use the same: replaying a
    /// journal under other limits can give another state.
    pub fn ledger_config(&self) -> stockflow_core::ledger::LedgerConfig {
        let micros = |seconds: u64| {
            i64::try_from(seconds)
                .unwrap_or(i64::MAX)
                .saturating_mul(stockflow_core::time::Timestamp::MICROS_PER_SECOND)
        };
        stockflow_core::ledger::LedgerConfig {
            held_events_per_source_max: self.held_events_per_source_max,
            held_timeout_micros: micros(self.held_timeout_seconds),
            given_up_ranges_per_source_max: self.given_up_ranges_per_source_max,
            picked_ahead_max: self.picked_ahead_max,
            picked_ahead_max_age_micros: micros(self.picked_ahead_max_age_seconds),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        // The ledger's limits default to the core's own.
        let ledger = stockflow_core::ledger::LedgerConfig::default();
        let seconds = |micros: i64| {
            u64::try_from(micros / stockflow_core::time::Timestamp::MICROS_PER_SECOND).unwrap_or(0)
        };
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            http: HttpConfig {
                body_limit_bytes: 4 * 1024 * 1024,
                request_timeout_ms: 10_000,
                concurrency_max: 1024,
            },
            engine: EngineSection {
                queue_capacity: 16_384,
                batch_requests_max: 1024,
                batch_events_max: 16_384,
                snapshot_every_positions: 200_000,
                snapshot_every_seconds: 300,
                snapshots_kept: 3,
            },
            ledger: LedgerSection {
                held_events_per_source_max: ledger.held_events_per_source_max,
                held_timeout_seconds: seconds(ledger.held_timeout_micros),
                given_up_ranges_per_source_max: ledger.given_up_ranges_per_source_max,
                picked_ahead_max: ledger.picked_ahead_max,
                picked_ahead_max_age_seconds: seconds(ledger.picked_ahead_max_age_micros),
                reservation_ttl_seconds_default: 900,
                location_priority: Vec::new(),
            },
            channels: Default::default(),
            policies: Vec::new(),
            kpis: KpisSection::default(),
            dashboard: DashboardSection::default(),
            reconcile: Default::default(),
            alerts: Default::default(),
            webhooks: WebhooksSection::default(),
        }
    }
}

/// What the command line says; each present value overrides the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

impl Config {
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        // Only variables that name a configuration section are read, so that other STOCKFLOW_
        // variables (test settings, the log filter) do not trip the unknown-key check.
        let env = Env::prefixed("STOCKFLOW_").split("__").filter(|key| {
            let top = key.as_str().split('.').next().unwrap_or("");
            SECTIONS.contains(&top)
        });
        figment = figment.merge(env);
        let mut config: Config = figment
            .extract()
            .map_err(|error| ConfigError(error.to_string()))?;
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(data_dir) = &overrides.data_dir {
            config.data_dir = data_dir.clone();
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(bool, &str); 10] = [
            (
                self.http.body_limit_bytes >= 1024,
                "http.body_limit_bytes must be at least 1024",
            ),
            (
                self.http.concurrency_max >= 1,
                "http.concurrency_max must be at least 1",
            ),
            (
                self.engine.queue_capacity >= 1,
                "engine.queue_capacity must be at least 1",
            ),
            (
                self.engine.batch_requests_max >= 1,
                "engine.batch_requests_max must be at least 1",
            ),
            (
                self.engine.batch_events_max >= stockflow_core::envelope::EVENTS_PER_REQUEST_MAX,
                "engine.batch_events_max must hold at least one full request (1000 events)",
            ),
            (
                self.ledger.held_events_per_source_max >= 1,
                "ledger.held_events_per_source_max must be at least 1",
            ),
            (
                (1..=stockflow_core::command::RESERVATION_TTL_SECONDS_MAX)
                    .contains(&self.ledger.reservation_ttl_seconds_default),
                "ledger.reservation_ttl_seconds_default is out of range",
            ),
            (
                crate::kpis::window::Window::from_days(self.kpis.cancellation_window_days)
                    .is_some(),
                "kpis.cancellation_window_days must be 1, 7 or 30",
            ),
            (
                self.dashboard.stream_clients_max >= 1,
                "dashboard.stream_clients_max must be at least 1",
            ),
            (
                self.dashboard.stream_interval_ms >= 100,
                "dashboard.stream_interval_ms must be at least 100",
            ),
        ];
        for (ok, message) in checks {
            if !ok {
                return Err(ConfigError(message.to_owned()));
            }
        }
        self.reconcile.validate().map_err(ConfigError)?;
        self.alerts.validate().map_err(ConfigError)?;
        self.webhooks.validate().map_err(ConfigError)?;
        for location in &self.ledger.location_priority {
            stockflow_core::ids::LocationId::parse(location.clone())
                .map_err(|error| ConfigError(format!("ledger.location_priority: {error}")))?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_a_file_overrides_them() {
        Config::default().validate().unwrap();
        let dir = std::env::temp_dir().join(format!("stockflow-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("stockflow.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9999\"\n[http]\nbody_limit_bytes = 2048\n",
        )
        .unwrap();
        let config = Config::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.http.body_limit_bytes, 2048);
        assert_eq!(config.http.request_timeout_ms, 10_000);
    }

    #[test]
    fn the_ledgers_limits_come_from_the_file_and_default_to_the_ledgers_own() {
        assert_eq!(
            Config::default().ledger.ledger_config(),
            stockflow_core::ledger::LedgerConfig::default()
        );
        let dir =
            std::env::temp_dir().join(format!("stockflow-config-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("stockflow.toml");
        std::fs::write(
            &file,
            [
                "[ledger]",
                "given_up_ranges_per_source_max = 0",
                "picked_ahead_max = 5",
                "picked_ahead_max_age_seconds = 60",
                "held_timeout_seconds = 2",
            ]
            .join("\n"),
        )
        .unwrap();
        let ledger = Config::load(Some(&file), &Overrides::default())
            .unwrap()
            .ledger
            .ledger_config();
        assert_eq!(ledger.given_up_ranges_per_source_max, 0);
        assert_eq!(ledger.picked_ahead_max, 5);
        assert_eq!(ledger.picked_ahead_max_age_micros, 60_000_000);
        assert_eq!(ledger.held_timeout_micros, 2_000_000);
        assert_eq!(ledger.held_events_per_source_max, 1000);
    }

    #[test]
    fn an_unknown_key_or_a_bad_value_names_itself() {
        let dir = std::env::temp_dir().join(format!("stockflow-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("stockflow.toml");
        std::fs::write(&file, "[http]\nbody_limit_byte = 2048\n").unwrap();
        let error = Config::load(Some(&file), &Overrides::default()).unwrap_err();
        assert!(error.0.contains("body_limit_byte"), "{error}");
        std::fs::write(&file, "[http]\nbody_limit_bytes = 10\n").unwrap();
        let error = Config::load(Some(&file), &Overrides::default()).unwrap_err();
        assert!(error.0.contains("body_limit_bytes"), "{error}");
    }
}
