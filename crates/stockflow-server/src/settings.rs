//! Channels and buffer policies from the configuration file.
//!
//! One `[channels.<id>]` table describes a channel whole: what the inventory side needs (which
//! locations serve it and in what order, its allocation rules, its buffer policies) and, when it
//! has a `base_url` (or `url` for webhooks), how to reach it (`stockflow-channels`' settings).
//!
//! ```toml
//! [channels.amazon]
//! kind = "amazon"
//! serves = ["east", "west"]                      # locations, highest priority first
//! allocation = { percent = 90, floor = 2 }
//! policies = ["viral-guard"]
//! base_url = "https://sellingpartnerapi-na.amazon.com"
//! seller_id = "A2SELLER"
//! marketplace_ids = ["ATVPDKIKX0DER"]
//! access_token = "env:AMAZON_TOKEN"
//!
//! [[policies]]
//! id = "viral-guard"
//! selector = { tiers = ["A"] }
//! strategy = { kind = "dynamic", curve = [{ ratio = 3, percent = 5 }, { ratio = 10, percent = 10 }] }
//! ```
//!
//! At every start the configured settings are applied as journaled commands (actor `config`), so
//! that the state stays a function of the journal; applying unchanged settings changes nothing.

use crate::app::{AppState, wall_clock};
use crate::config::Config;
use anyhow::{Context, bail};
use serde_json::{Map, Value};
use stockflow_channels::SyncConfig;
use stockflow_core::availability::{
    AvailabilityCommand, ChannelConfig, ChannelKind, ChannelLocation, ChannelRules, Policy,
};
use stockflow_core::command::{Command, LedgerCommand};
use stockflow_core::envelope::Input;
use stockflow_core::ids::{ActorId, ChannelId, LocationId, TenantId};
use stockflow_core::outcome::Reply;

/// Keys of a channel table that belong to the inventory side; the rest configure the adapter.
const INVENTORY_KEYS: [&str; 4] = ["serves", "allocation", "policies", "per_location"];

pub struct ConfiguredSettings {
    pub sync: SyncConfig,
    pub commands: Vec<(TenantId, Command)>,
}

impl ConfiguredSettings {
    pub fn from_config(config: &Config) -> anyhow::Result<ConfiguredSettings> {
        let mut commands = Vec::new();
        for (index, raw) in config.policies.iter().enumerate() {
            let (tenant, policy) = parse_policy(raw)
                .with_context(|| format!("policies[{index}] in the configuration"))?;
            commands.push((
                tenant,
                Command::Availability(AvailabilityCommand::UpsertPolicy(Box::new(policy))),
            ));
        }
        let mut sync_channels = Map::new();
        for (id, raw) in &config.channels {
            let parsed = parse_channel(id, raw, &config.ledger.location_priority)
                .with_context(|| format!("channels.{id} in the configuration"))?;
            commands.push((parsed.tenant, parsed.command));
            if let Some(adapter) = parsed.adapter {
                sync_channels.insert(id.clone(), adapter);
            }
        }
        let sync: SyncConfig =
            serde_json::from_value(serde_json::json!({ "channels": sync_channels }))
                .context("channel adapter settings in the configuration")?;
        if !config.ledger.location_priority.is_empty() {
            let locations = config
                .ledger
                .location_priority
                .iter()
                .map(|l| LocationId::parse(l.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            commands.push((
                TenantId::default_tenant(),
                Command::Ledger(LedgerCommand::SetLocationPriority { locations }),
            ));
        }
        Ok(ConfiguredSettings { sync, commands })
    }

    /// Submits every configured setting; a refusal stops the start with the reason.
    pub async fn apply(self, state: &AppState) -> anyhow::Result<()> {
        let actor = ActorId::parse("config").expect("a valid actor");
        for (tenant, command) in self.commands {
            let describe = format!("{command:?}");
            let input = Input::Command {
                actor: actor.clone(),
                command,
            };
            let submitted = state
                .engine
                .submit(tenant, input, wall_clock())
                .await
                .context("applying the configured settings")?;
            if let Reply::Rejected(rejection) = submitted.reply {
                bail!(
                    "the configuration was refused ({}): {rejection:?}\n  while applying {}",
                    rejection.code(),
                    truncate(&describe, 300)
                );
            }
        }
        Ok(())
    }
}

fn truncate(text: &str, length: usize) -> &str {
    match text.char_indices().nth(length) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

fn take_tenant(table: &mut Map<String, Value>) -> anyhow::Result<TenantId> {
    match table.get("tenant") {
        Some(Value::String(tenant)) => Ok(TenantId::parse(tenant.clone())?),
        Some(_) => bail!("tenant must be a string"),
        None => Ok(TenantId::default_tenant()),
    }
}

fn parse_policy(raw: &Value) -> anyhow::Result<(TenantId, Policy)> {
    let Value::Object(table) = raw else {
        bail!("a policy is a table")
    };
    let mut table = table.clone();
    let tenant = take_tenant(&mut table)?;
    table.remove("tenant");
    let policy: Policy = serde_json::from_value(Value::Object(table))?;
    Ok((tenant, policy))
}

struct ParsedChannel {
    tenant: TenantId,
    command: Command,
    /// The adapter's settings, when the channel is reachable.
    adapter: Option<Value>,
}

fn parse_channel(
    id: &str,
    raw: &Value,
    default_priority: &[String],
) -> anyhow::Result<ParsedChannel> {
    let Value::Object(table) = raw else {
        bail!("a channel is a table")
    };
    let mut table = table.clone();
    let channel = ChannelId::parse(id.to_owned())?;
    let tenant = take_tenant(&mut table)?;
    let kind: ChannelKind = serde_json::from_value(
        table
            .get("kind")
            .cloned()
            .context("kind is required (shopify, amazon, tiktok, webhook)")?,
    )
    .context("kind")?;
    let mut inventory = Map::new();
    for key in INVENTORY_KEYS {
        if let Some(value) = table.remove(key) {
            inventory.insert(key.to_owned(), value);
        }
    }
    let serves = serves(&inventory, &table, default_priority)?;
    let per_location = match inventory.get("per_location") {
        Some(Value::Bool(per_location)) => *per_location,
        Some(_) => bail!("per_location must be true or false"),
        None => matches!(kind, ChannelKind::Shopify | ChannelKind::Tiktok),
    };
    let rules: ChannelRules = serde_json::from_value(serde_json::json!({
        "allocation": inventory.get("allocation").cloned().unwrap_or(Value::Object(Map::new())),
        "policies": inventory.get("policies").cloned().unwrap_or(Value::Array(Vec::new())),
    }))
    .context("allocation or policies")?;
    let config = ChannelConfig {
        id: channel,
        kind,
        locations: serves
            .into_iter()
            .enumerate()
            .map(|(priority, location)| ChannelLocation {
                location,
                priority: priority as u32,
            })
            .collect(),
        per_location,
    };
    let reachable = table.contains_key("base_url") || table.contains_key("url");
    Ok(ParsedChannel {
        tenant,
        command: Command::Availability(AvailabilityCommand::ConfigureChannel { config, rules }),
        adapter: reachable.then_some(Value::Object(table)),
    })
}

/// The locations serving a channel: `serves` when given; else the adapter's location map (in
/// name order); else the configured location priority.
fn serves(
    inventory: &Map<String, Value>,
    adapter: &Map<String, Value>,
    default_priority: &[String],
) -> anyhow::Result<Vec<LocationId>> {
    let names: Vec<String> = match (inventory.get("serves"), adapter.get("locations")) {
        (Some(serves), _) => {
            serde_json::from_value(serves.clone()).context("serves is a list of locations")?
        }
        (None, Some(Value::Object(map))) => map.keys().cloned().collect(),
        _ => default_priority.to_vec(),
    };
    if names.is_empty() {
        bail!("no location serves this channel: list them in `serves`");
    }
    Ok(names
        .into_iter()
        .map(LocationId::parse)
        .collect::<Result<Vec<_>, _>>()?)
}
