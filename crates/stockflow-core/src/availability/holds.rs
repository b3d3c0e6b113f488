//! Real-time inputs from people and other systems: an operator's hold on a SKU, and an external
//! surge signal (an influencer's post, a campaign) that dynamic policies take into account.

use super::amount::{Amount, Ratio};
use super::limits::SCHEDULE_SECONDS_MAX;
use super::policy::validate_amount;
use crate::event::TEXT_LENGTH_MAX;
use crate::ids::{ChannelId, LocationId, PolicyId, Sku, SourceId};
use crate::outcome::Rejection;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// An operator's hold: withholds `amount` of a SKU (at one location, or channel-wide) from some
/// or all channels until released or expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    /// Unique per tenant; placing a hold with the id of one on the same SKU replaces it.
    pub id: PolicyId,
    pub sku: Sku,
    /// One location; absent: taken from the channel's locations in priority order (units) or
    /// from each location (a share).
    #[serde(default)]
    pub location: Option<LocationId>,
    /// The channels it applies to; empty: every channel.
    #[serde(default)]
    pub channels: BTreeSet<ChannelId>,
    pub amount: Amount,
    pub reason: String,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

impl Hold {
    pub fn applies_to(&self, channel: &ChannelId) -> bool {
        self.channels.is_empty() || self.channels.contains(channel)
    }

    /// Checks that need no state but the time.
    pub(super) fn validate(&self, now: Timestamp) -> Result<(), Rejection> {
        validate_amount("amount", self.amount)?;
        if self.reason.trim().is_empty() || self.reason.len() > TEXT_LENGTH_MAX {
            return Err(Rejection::Invalid {
                field: "reason".to_owned(),
                detail: format!("a hold needs a reason of 1 to {TEXT_LENGTH_MAX} bytes"),
            });
        }
        if let Some(expires_at) = self.expires_at {
            check_future("expires_at", now, expires_at)?;
        }
        Ok(())
    }
}

fn check_future(field: &str, now: Timestamp, at: Timestamp) -> Result<(), Rejection> {
    let window = |detail: &str| Rejection::InvalidWindow {
        field: field.to_owned(),
        detail: detail.to_owned(),
    };
    if at <= now {
        return Err(window("must be in the future"));
    }
    if at.micros_since(now) > SCHEDULE_SECONDS_MAX * Timestamp::MICROS_PER_SECOND {
        return Err(window("must be within a year"));
    }
    Ok(())
}

/// A hold as kept: with who placed it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedHold {
    pub hold: Hold,
    pub placed_at: Timestamp,
    pub placed_by: String,
}

/// "Expect `multiplier` times the usual demand of `sku` for `duration_seconds`", from `source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    pub sku: Sku,
    pub source: SourceId,
    pub multiplier: Ratio,
    pub duration_seconds: u32,
}

/// The strongest multiplier a signal may announce.
pub const SIGNAL_MULTIPLIER_MAX: Ratio = Ratio::whole(1_000);

impl Signal {
    pub(super) fn validate(&self, now: Timestamp) -> Result<(), Rejection> {
        if !(Ratio::ONE..=SIGNAL_MULTIPLIER_MAX).contains(&self.multiplier) {
            return Err(Rejection::InvalidSignal {
                detail: format!(
                    "multiplier {} is outside 1x to {SIGNAL_MULTIPLIER_MAX}",
                    self.multiplier
                ),
            });
        }
        check_future("duration_seconds", now, self.expires_at(now))
    }

    pub fn expires_at(&self, now: Timestamp) -> Timestamp {
        now.plus_seconds(i64::from(self.duration_seconds))
    }
}

/// A signal as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveSignal {
    pub source: SourceId,
    pub multiplier: Ratio,
    pub recorded_at: Timestamp,
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::availability::Percent;

    fn hold(amount: Amount, reason: &str, expires_in_seconds: Option<i64>) -> Hold {
        Hold {
            id: PolicyId::parse("h1").unwrap(),
            sku: Sku::parse("SKU-1").unwrap(),
            location: None,
            channels: BTreeSet::new(),
            amount,
            reason: reason.to_owned(),
            expires_at: expires_in_seconds.map(|s| Timestamp::from_unix_seconds(1_000 + s)),
        }
    }

    #[test]
    fn hold_and_signal_refusals() {
        let now = Timestamp::from_unix_seconds(1_000);
        let code = |h: Hold| h.validate(now).err().map(|r| r.code());
        assert_eq!(code(hold(Amount::Units(3), "drop", Some(60))), None);
        assert_eq!(
            code(hold(Amount::Percent(Percent::whole(150)), "drop", None)),
            Some("invalid_percentage")
        );
        assert_eq!(
            code(hold(Amount::Units(-1), "drop", None)),
            Some("invalid_quantity")
        );
        assert_eq!(code(hold(Amount::Units(1), " ", None)), Some("invalid"));
        assert_eq!(
            code(hold(Amount::Units(1), "drop", Some(0))),
            Some("invalid_window")
        );
        let signal = |multiplier, duration_seconds| Signal {
            sku: Sku::parse("SKU-1").unwrap(),
            source: SourceId::parse("influencer-feed").unwrap(),
            multiplier: Ratio::from_thousandths(multiplier),
            duration_seconds,
        };
        let code = |s: Signal| s.validate(now).err().map(|r| r.code());
        assert_eq!(code(signal(8_000, 3_600)), None);
        assert_eq!(code(signal(500, 3_600)), Some("invalid_signal"));
        assert_eq!(code(signal(8_000, 0)), Some("invalid_window"));
        assert_eq!(code(signal(8_000, u32::MAX)), Some("invalid_window"));
    }
}
