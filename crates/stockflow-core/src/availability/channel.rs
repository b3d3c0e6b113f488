//! Channels as configuration: what a channel is, which locations serve it, how much of what is
//! sellable it is shown (allocation rules), and which buffer policies apply to it.

use super::amount::Percent;
use super::limits::{CHANNEL_LOCATIONS_MAX, CHANNEL_POLICIES_MAX};
use crate::ids::{ChannelId, LocationId, PolicyId};
use crate::outcome::Rejection;
use crate::quantity::QUANTITY_MAX;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Shopify,
    Amazon,
    Tiktok,
    Webhook,
}

impl ChannelKind {
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Shopify => "shopify",
            ChannelKind::Amazon => "amazon",
            ChannelKind::Tiktok => "tiktok",
            ChannelKind::Webhook => "webhook",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelLocation {
    pub location: LocationId,
    /// Lower is tried first when a reservation line names no location, and keeps its stock
    /// first when a channel-wide buffer or allocation has to be taken from some location.
    pub priority: u32,
}

/// What a channel is and where its stock comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub id: ChannelId,
    pub kind: ChannelKind,
    pub locations: Vec<ChannelLocation>,
    /// Told one quantity per location (Shopify levels, TikTok warehouses) rather than one per SKU
    /// (Amazon).
    pub per_location: bool,
}

/// How much a channel is shown: its allocation rules and the buffer policies it applies. Set
/// with the channel ([`super::AvailabilityCommand::ConfigureChannel`]); a channel created
/// without them shows everything available.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRules {
    #[serde(default)]
    pub allocation: Allocation,
    /// The buffer policies that apply to this channel, in the order their buffers are taken
    /// (the order matters only when buffers together would exceed what is available).
    #[serde(default)]
    pub policies: Vec<PolicyId>,
}

impl ChannelRules {
    /// Checks that need no state (the policies' existence is checked by the caller).
    pub(super) fn validate(&self, channel: &ChannelId) -> Result<(), Rejection> {
        too_many("policies", self.policies.len(), CHANNEL_POLICIES_MAX)?;
        let mut policies: Vec<&PolicyId> = self.policies.iter().collect();
        policies.sort();
        if let Some(pair) = policies.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(Rejection::InvalidChannel {
                channel: channel.clone(),
                detail: format!("policy {} is listed twice", pair[0]),
            });
        }
        self.allocation.validate(channel)
    }
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

    /// Checks that need no other state.
    pub(super) fn validate(&self) -> Result<(), Rejection> {
        let invalid = |detail: String| Rejection::InvalidChannel {
            channel: self.id.clone(),
            detail,
        };
        if self.locations.is_empty() {
            return Err(invalid("a channel needs at least one location".to_owned()));
        }
        too_many("locations", self.locations.len(), CHANNEL_LOCATIONS_MAX)?;
        let mut locations: Vec<&LocationId> = self.locations.iter().map(|l| &l.location).collect();
        locations.sort();
        if let Some(pair) = locations.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(invalid(format!("location {} is listed twice", pair[0])));
        }
        Ok(())
    }
}

pub(super) fn too_many(field: &str, count: usize, limit: usize) -> Result<(), Rejection> {
    if count > limit {
        return Err(Rejection::TooManyItems {
            field: field.to_owned(),
            count: count as u64,
            limit: limit as u64,
        });
    }
    Ok(())
}

/// How much of what is sellable after buffers a channel is shown (DESIGN.md section 2's clamp).
/// Applied to the channel's total; for channels told per location the result is taken from the
/// locations in priority order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// Show this share of what is sellable, rounded down.
    #[serde(default)]
    pub percent: Option<Percent>,
    /// Never show more than this.
    #[serde(default)]
    pub maximum: Option<i64>,
    /// When the quantity to show is below this, show 0 (a marketplace that should not sell the
    /// last few units).
    #[serde(default)]
    pub floor: Option<i64>,
    /// Show exactly this whenever at least this much is sellable, else what is sellable. Excludes
    /// `percent` and `maximum`.
    #[serde(default)]
    pub fixed: Option<i64>,
}

impl Allocation {
    /// The quantity shown for `sellable` (never negative, never more than `sellable`).
    pub fn apply(&self, sellable: i64) -> i64 {
        let sellable = sellable.max(0);
        let mut shown = sellable;
        if let Some(fixed) = self.fixed {
            shown = shown.min(fixed);
        } else {
            if let Some(percent) = self.percent {
                shown = percent.of_rounded_down(shown);
            }
            if let Some(maximum) = self.maximum {
                shown = shown.min(maximum);
            }
        }
        if self.floor.is_some_and(|floor| shown < floor) {
            shown = 0;
        }
        shown.clamp(0, sellable)
    }

    pub fn is_unrestricted(&self) -> bool {
        *self == Allocation::default()
    }

    fn validate(&self, channel: &ChannelId) -> Result<(), Rejection> {
        let invalid = |detail: &str| Rejection::InvalidAllocation {
            channel: channel.clone(),
            detail: detail.to_owned(),
        };
        if let Some(percent) = self.percent
            && !percent.is_share()
        {
            return Err(Rejection::InvalidPercentage {
                field: "allocation.percent".to_owned(),
                value: percent,
            });
        }
        for (name, value) in [
            ("maximum", self.maximum),
            ("floor", self.floor),
            ("fixed", self.fixed),
        ] {
            if value.is_some_and(|v| !(0..=QUANTITY_MAX).contains(&v)) {
                return Err(invalid(&format!(
                    "{name} must be within 0..={QUANTITY_MAX}"
                )));
            }
        }
        if self.fixed.is_some() && (self.percent.is_some() || self.maximum.is_some()) {
            return Err(invalid(
                "a fixed allocation excludes a percentage and a maximum",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(allocation: Allocation, cases: &[(i64, i64)]) {
        for &(sellable, shown) in cases {
            assert_eq!(
                allocation.apply(sellable),
                shown,
                "{allocation:?} of {sellable}"
            );
        }
    }

    #[test]
    fn allocation_rules() {
        check(Allocation::default(), &[(0, 0), (7, 7), (-3, 0)]);
        let half = Allocation {
            percent: Some(Percent::whole(50)),
            ..Allocation::default()
        };
        check(half, &[(9, 4), (10, 5), (1, 0)]);
        let capped = Allocation {
            percent: Some(Percent::whole(50)),
            maximum: Some(3),
            ..Allocation::default()
        };
        check(capped, &[(4, 2), (6, 3), (100, 3)]);
        let floored = Allocation {
            floor: Some(3),
            ..Allocation::default()
        };
        check(floored, &[(2, 0), (3, 3), (10, 10)]);
        let fixed = Allocation {
            fixed: Some(5),
            floor: Some(2),
            ..Allocation::default()
        };
        check(fixed, &[(100, 5), (5, 5), (4, 4), (1, 0)]);
    }

    #[test]
    fn allocation_refusals() {
        let channel = ChannelId::parse("amazon").unwrap();
        let code = |allocation: Allocation| allocation.validate(&channel).err().map(|r| r.code());
        assert_eq!(
            code(Allocation {
                percent: Some(Percent::whole(101)),
                ..Allocation::default()
            }),
            Some("invalid_percentage")
        );
        assert_eq!(
            code(Allocation {
                fixed: Some(3),
                maximum: Some(4),
                ..Allocation::default()
            }),
            Some("invalid_allocation")
        );
        assert_eq!(
            code(Allocation {
                floor: Some(-1),
                ..Allocation::default()
            }),
            Some("invalid_allocation")
        );
        assert_eq!(code(Allocation::default()), None);
    }
}
