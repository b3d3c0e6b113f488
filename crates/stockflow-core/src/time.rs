//! Time as the core sees it: a number handed in by the caller. The core never reads a clock.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Microseconds since the Unix epoch (UTC). Handed in with every input; ordered; cheap to copy.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MICROS_PER_SECOND: i64 = 1_000_000;

    pub fn from_unix_seconds(seconds: i64) -> Self {
        Self(seconds.saturating_mul(Self::MICROS_PER_SECOND))
    }

    pub fn from_unix_millis(millis: i64) -> Self {
        Self(millis.saturating_mul(1_000))
    }

    pub fn unix_micros(self) -> i64 {
        self.0
    }

    pub fn unix_millis(self) -> i64 {
        self.0.div_euclid(1_000)
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(
            self.0
                .saturating_add(seconds.saturating_mul(Self::MICROS_PER_SECOND)),
        )
    }

    pub fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }

    /// Microseconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn micros_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}us)", self.0)
    }
}
