//! Shares, multipliers and amounts, and the two roundings of the module.
//!
//! State and commands keep integers (basis points, thousandths), so that replaying a journal on
//! any machine gives the same buffers; the serialised form is the readable number (12.5 for
//! 12.5%, 2.5 for 2.5x), read back rounded to the integer unit.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A share in basis points (hundredths of a percent): 10_000 is 100%. Serialised as the
/// percentage (`12.5`). Any value parses; commands are refused with `invalid_percentage` when it
/// is outside 0-100% where a share of stock is meant.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Percent(i64);

impl Percent {
    pub const ZERO: Percent = Percent(0);
    pub const HUNDRED: Percent = Percent(BASIS_POINTS_PER_WHOLE);

    pub const fn from_basis_points(basis_points: i64) -> Self {
        Percent(basis_points)
    }

    /// A whole number of percent.
    pub const fn whole(percent: i64) -> Self {
        Percent(percent.saturating_mul(100))
    }

    pub const fn basis_points(self) -> i64 {
        self.0
    }

    /// Inside 0-100%.
    pub fn is_share(self) -> bool {
        (0..=BASIS_POINTS_PER_WHOLE).contains(&self.0)
    }

    /// The whole units this share of `quantity` withholds: rounded up, so that a buffer never
    /// withholds less than it says (every rounding in this module goes towards showing less).
    /// `quantity` below zero counts as zero.
    #[inline]
    pub fn of_rounded_up(self, quantity: i64) -> i64 {
        let quantity = quantity.max(0);
        let share = self.0.clamp(0, BASIS_POINTS_PER_WHOLE);
        if quantity <= SMALL_QUANTITY_MAX {
            // The common case in 64 bits (128-bit division is a library call).
            return (quantity * share + BASIS_POINTS_PER_WHOLE - 1) / BASIS_POINTS_PER_WHOLE;
        }
        let whole = i128::from(BASIS_POINTS_PER_WHOLE);
        ((i128::from(quantity) * i128::from(share) + whole - 1) / whole) as i64
    }

    /// The whole units this share of `quantity` shows: rounded down (allocation rules).
    pub fn of_rounded_down(self, quantity: i64) -> i64 {
        let quantity = quantity.max(0);
        let share = self.0.clamp(0, BASIS_POINTS_PER_WHOLE);
        if quantity <= SMALL_QUANTITY_MAX {
            return quantity * share / BASIS_POINTS_PER_WHOLE;
        }
        (i128::from(quantity) * i128::from(share) / i128::from(BASIS_POINTS_PER_WHOLE)) as i64
    }

    /// Scales by a ratio, rounded down to a basis point.
    pub fn times(self, ratio: Ratio) -> Percent {
        let scaled = i128::from(self.0) * i128::from(ratio.0) / i128::from(THOUSANDTHS_PER_WHOLE);
        Percent(scaled.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }

    /// Rounded down to a whole percent.
    pub fn whole_percent_floor(self) -> Percent {
        Percent(self.0.div_euclid(100) * 100)
    }
}

const BASIS_POINTS_PER_WHOLE: i64 = 10_000;
/// Quantities up to this times a share fit in 64 bits.
const SMALL_QUANTITY_MAX: i64 = i64::MAX / BASIS_POINTS_PER_WHOLE - 1;
const THOUSANDTHS_PER_WHOLE: i64 = 1_000;

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimal(f, self.0, 100)?;
        f.write_str("%")
    }
}

impl fmt::Debug for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Percent({self})")
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0 as f64 / 100.0)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Percent(scaled_number(deserializer, 100.0)?))
    }
}

/// A dimensionless multiplier in thousandths: 1_000 is 1x. Used for velocity ratios, surge
/// magnitudes and per-channel factors. Serialised as the number (`2.5`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ratio(i64);

impl Ratio {
    pub const ZERO: Ratio = Ratio(0);
    pub const ONE: Ratio = Ratio(THOUSANDTHS_PER_WHOLE);

    pub const fn from_thousandths(thousandths: i64) -> Self {
        Ratio(thousandths)
    }

    pub const fn whole(value: i64) -> Self {
        Ratio(value.saturating_mul(THOUSANDTHS_PER_WHOLE))
    }

    pub const fn thousandths(self) -> i64 {
        self.0
    }

    /// From a computed value, rounded down to a thousandth and kept within `0..=maximum`.
    pub(crate) fn from_f64_floor(value: f64, maximum: Ratio) -> Ratio {
        if value.is_nan() || value <= 0.0 {
            return Ratio::ZERO;
        }
        let thousandths = (value * THOUSANDTHS_PER_WHOLE as f64).floor();
        if thousandths >= maximum.0 as f64 {
            maximum
        } else {
            Ratio(thousandths as i64)
        }
    }
}

impl fmt::Display for Ratio {
    /// One decimal, as operators read it ("12.4x").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimal(f, self.0 / 100, 10)?;
        f.write_str("x")
    }
}

impl fmt::Debug for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ratio({}/1000)", self.0)
    }
}

impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0 as f64 / THOUSANDTHS_PER_WHOLE as f64)
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Ratio(scaled_number(
            deserializer,
            THOUSANDTHS_PER_WHOLE as f64,
        )?))
    }
}

/// Reads a number (integer or float) and scales it to the integer unit, rounded to nearest;
/// out-of-range values saturate (and are then refused by validation).
fn scaled_number<'de, D: Deserializer<'de>>(deserializer: D, scale: f64) -> Result<i64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if !value.is_finite() {
        return Err(serde::de::Error::custom("expected a finite number"));
    }
    Ok((value * scale).round() as i64)
}

/// Writes `value / scale` with as few decimals as it needs (scale is 10 or 100).
fn write_decimal(f: &mut fmt::Formatter<'_>, value: i64, scale: i64) -> fmt::Result {
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.unsigned_abs();
    let scale = scale.unsigned_abs();
    let whole = magnitude / scale;
    let fraction = magnitude % scale;
    if fraction == 0 {
        write!(f, "{sign}{whole}")
    } else if scale == 10 {
        write!(f, "{sign}{whole}.{fraction}")
    } else if fraction.is_multiple_of(10) {
        write!(f, "{sign}{whole}.{}", fraction / 10)
    } else {
        write!(f, "{sign}{whole}.{fraction:02}")
    }
}

/// How much a buffer withholds: whole units, or a share of the available stock at each location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    Units(i64),
    Percent(Percent),
}

impl Amount {
    pub fn is_zero(self) -> bool {
        match self {
            Amount::Units(units) => units == 0,
            Amount::Percent(percent) => percent.basis_points() == 0,
        }
    }

    /// `remaining / steps` of this amount, rounded up (a release step never rounds a buffer away
    /// early).
    pub(crate) fn scaled_up(self, remaining: i64, steps: i64) -> Amount {
        let scale = |value: i64| {
            let product = i128::from(value) * i128::from(remaining);
            let steps = i128::from(steps.max(1));
            ((product + steps - 1) / steps) as i64
        };
        match self {
            Amount::Units(units) => Amount::Units(scale(units)),
            Amount::Percent(percent) => {
                Amount::Percent(Percent::from_basis_points(scale(percent.basis_points())))
            }
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Units(1) => f.write_str("1 unit"),
            Amount::Units(units) => write!(f, "{units} units"),
            Amount::Percent(percent) => write!(f, "{percent}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_share(basis_points: i64, quantity: i64, expected: (i64, i64)) {
        let percent = Percent::from_basis_points(basis_points);
        assert_eq!(
            (
                percent.of_rounded_up(quantity),
                percent.of_rounded_down(quantity)
            ),
            expected,
            "{percent} of {quantity}"
        );
    }

    #[test]
    fn shares_round_up_for_buffers_and_down_for_allocations() {
        check_share(1000, 100, (10, 10));
        check_share(1000, 95, (10, 9));
        check_share(1000, 1, (1, 0));
        check_share(1, 1, (1, 0));
        check_share(0, 1_000, (0, 0));
        check_share(10_000, 7, (7, 7));
        check_share(1000, -5, (0, 0));
        check_share(20_000, 7, (7, 7));
        check_share(1000, 1_000_000_000_000, (100_000_000_000, 100_000_000_000));
    }

    #[test]
    fn numbers_display_as_operators_read_them() {
        assert_eq!(Percent::from_basis_points(1000).to_string(), "10%");
        assert_eq!(Percent::from_basis_points(1250).to_string(), "12.5%");
        assert_eq!(Percent::from_basis_points(1205).to_string(), "12.05%");
        assert_eq!(Ratio::from_thousandths(12_449).to_string(), "12.4x");
        assert_eq!(Ratio::from_thousandths(1_000).to_string(), "1x");
        assert_eq!(Amount::Units(1).to_string(), "1 unit");
        assert_eq!(Amount::Units(3).to_string(), "3 units");
    }

    #[test]
    fn serialised_as_readable_numbers_and_read_back_exactly() {
        for basis_points in [0, 1, 999, 1250, 10_000, 123_456_789] {
            let percent = Percent::from_basis_points(basis_points);
            let json = serde_json::to_string(&percent).unwrap();
            assert_eq!(serde_json::from_str::<Percent>(&json).unwrap(), percent);
        }
        assert_eq!(serde_json::to_string(&Percent::whole(10)).unwrap(), "10.0");
        assert_eq!(
            serde_json::from_str::<Percent>("12.5").unwrap(),
            Percent::from_basis_points(1250)
        );
        assert_eq!(
            serde_json::from_str::<Percent>("7").unwrap(),
            Percent::whole(7)
        );
        assert_eq!(
            serde_json::from_str::<Ratio>("2.5").unwrap(),
            Ratio::from_thousandths(2500)
        );
        let amount: Amount = serde_json::from_str(r#"{"percent": 5}"#).unwrap();
        assert_eq!(amount, Amount::Percent(Percent::whole(5)));
        let amount: Amount = serde_json::from_str(r#"{"units": 3}"#).unwrap();
        assert_eq!(amount, Amount::Units(3));
    }

    #[test]
    fn scaling_rounds_up_so_a_release_step_keeps_a_remainder() {
        assert_eq!(Amount::Units(10).scaled_up(1, 4), Amount::Units(3));
        assert_eq!(Amount::Units(10).scaled_up(4, 4), Amount::Units(10));
        assert_eq!(Amount::Units(10).scaled_up(0, 4), Amount::Units(0));
        assert_eq!(
            Amount::Percent(Percent::whole(10)).scaled_up(1, 3),
            Amount::Percent(Percent::from_basis_points(334))
        );
        assert_eq!(
            Percent::whole(4).times(Ratio::from_thousandths(1500)),
            Percent::whole(6)
        );
    }
}
