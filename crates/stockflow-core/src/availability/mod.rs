//! Availability per channel: channel settings, SKU attributes, buffer policies, holds, signals,
//! the velocity tracker, and the available-to-sell (ATS) computation with its explanation
//! (DESIGN.md section 2). Pure: a function of ledger stock, these settings and the time passed in.
//!
//! This first cut knows channels and their locations and computes ATS without buffers; the
//! buffer strategies come on top of the same interface.

use crate::envelope::Position;
use crate::ids::{ChannelId, LocationId, Sku, TenantId};
use crate::outcome::{AtsChange, Outcome, Rejection};
use crate::quantity::Quantities;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The stock of one SKU at every location that has held it, as the ledger keeps it.
pub type SkuStock = BTreeMap<LocationId, Quantities>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Shopify,
    Amazon,
    Tiktok,
    Webhook,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelLocation {
    pub location: LocationId,
    /// Lower is tried first when a reservation line names no location.
    pub priority: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelConfig {
    pub id: ChannelId,
    pub kind: ChannelKind,
    pub locations: Vec<ChannelLocation>,
    /// Told one quantity per location (Shopify levels, TikTok warehouses) rather than one per SKU.
    pub per_location: bool,
}

impl ChannelConfig {
    /// The channel's locations, highest priority first.
    pub fn locations_by_priority(&self) -> Vec<&LocationId> {
        let mut locations: Vec<&ChannelLocation> = self.locations.iter().collect();
        locations.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then(a.location.cmp(&b.location))
        });
        locations.into_iter().map(|l| &l.location).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AvailabilityCommand {
    UpsertChannel(ChannelConfig),
    RemoveChannel { channel: ChannelId },
}

/// What one channel may sell of one SKU, and why (for `GET /v1/skus/{sku}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelAvailability {
    pub channel: ChannelId,
    pub available_to_sell: i64,
    pub withheld: i64,
    /// Per location, for channels told per location.
    pub locations: Vec<LocationAvailability>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationAvailability {
    pub location: LocationId,
    pub available_to_sell: i64,
    pub withheld: i64,
}

/// Where and when a recomputation happens: handed in by the ledger.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub tenant: &'a TenantId,
    /// The envelope's time.
    pub now: Timestamp,
    /// The envelope's journal position: the version of every value computed here.
    pub position: Position,
    /// When the input that caused this reached stockflow (equal to `now` except for work that
    /// a later input triggered).
    pub caused_at: Timestamp,
    /// Who caused it, for audit entries ("stockflow" for time).
    pub actor: &'a str,
}

/// Availability state of one tenant.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Availability {
    pub channels: BTreeMap<ChannelId, ChannelConfig>,
    /// The last ATS emitted per channel x SKU x location (None: per SKU), so that only real
    /// changes are emitted.
    #[serde(with = "map_entries")]
    last_emitted: BTreeMap<(ChannelId, Sku, Option<LocationId>), i64>,
}

impl Availability {
    pub fn channel(&self, id: &ChannelId) -> Option<&ChannelConfig> {
        self.channels.get(id)
    }

    /// Applies a channel, policy, hold or signal command. `stocks` is the tenant's stock, for
    /// recomputing what the command changes; effects go into `out`.
    pub fn apply_command(
        &mut self,
        context: &Context<'_>,
        command: &AvailabilityCommand,
        stocks: &BTreeMap<Sku, SkuStock>,
        out: &mut Outcome,
    ) -> Result<(), Rejection> {
        match command {
            AvailabilityCommand::UpsertChannel(config) => {
                self.channels.insert(config.id.clone(), config.clone());
            }
            AvailabilityCommand::RemoveChannel { channel } => {
                if self.channels.remove(channel).is_none() {
                    return Err(Rejection::UnknownChannel {
                        channel: channel.clone(),
                    });
                }
            }
        }
        for (sku, stock) in stocks {
            self.recompute(context, sku, stock, out);
        }
        Ok(())
    }

    /// Demand seen by the ledger (a reservation granted, a pick applied), for velocity tracking.
    pub fn record_demand(
        &mut self,
        _sku: &Sku,
        _channel: Option<&ChannelId>,
        _quantity: i64,
        _now: Timestamp,
    ) {
    }

    /// Time passed: decay steps and time windows that are due at `context.now`.
    pub fn tick(
        &mut self,
        _context: &Context<'_>,
        _stocks: &BTreeMap<Sku, SkuStock>,
        _out: &mut Outcome,
    ) {
    }

    /// Recomputes what every channel may sell of `sku` and appends the values that changed (and
    /// the buffer changes, as audit entries) to `out`.
    pub fn recompute(
        &mut self,
        context: &Context<'_>,
        sku: &Sku,
        stock: &SkuStock,
        out: &mut Outcome,
    ) {
        for view in self.explain(sku, stock, context.now) {
            let channel = &self.channels[&view.channel];
            let values: Vec<(Option<LocationId>, i64, i64)> = if channel.per_location {
                view.locations
                    .iter()
                    .map(|l| (Some(l.location.clone()), l.available_to_sell, l.withheld))
                    .collect()
            } else {
                vec![(None, view.available_to_sell, view.withheld)]
            };
            for (location, ats, withheld) in values {
                let key = (view.channel.clone(), sku.clone(), location.clone());
                if self.last_emitted.get(&key) == Some(&ats) {
                    continue;
                }
                self.last_emitted.insert(key, ats);
                out.availability.push(AtsChange {
                    tenant: context.tenant.clone(),
                    channel: view.channel.clone(),
                    sku: sku.clone(),
                    location,
                    available_to_sell: ats,
                    withheld,
                    position: context.position,
                    caused_at: context.caused_at,
                });
            }
        }
    }

    /// What each channel may sell of `sku` now.
    pub fn explain(
        &self,
        _sku: &Sku,
        stock: &SkuStock,
        _now: Timestamp,
    ) -> Vec<ChannelAvailability> {
        self.channels
            .values()
            .map(|channel| {
                let locations: Vec<LocationAvailability> = channel
                    .locations_by_priority()
                    .into_iter()
                    .map(|location| LocationAvailability {
                        location: location.clone(),
                        available_to_sell: stock.get(location).map_or(0, |q| q.available().max(0)),
                        withheld: 0,
                    })
                    .collect();
                ChannelAvailability {
                    channel: channel.id.clone(),
                    available_to_sell: locations.iter().map(|l| l.available_to_sell).sum(),
                    withheld: 0,
                    locations,
                }
            })
            .collect()
    }

    /// The next instant at which time alone changes something here (a decay step, a window).
    pub fn next_deadline(&self) -> Option<Timestamp> {
        None
    }
}

/// A map with tuple keys, stored as a list of `[key, value]` entries: JSON maps need string keys,
/// and snapshots of the whole ledger are JSON as well as MessagePack.
mod map_entries {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer, K: Serialize, V: Serialize>(
        map: &BTreeMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}
