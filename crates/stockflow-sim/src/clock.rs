//! The sandbox clock. Every time-dependent rule (rate limits, delayed application, feed
//! processing) reads time from here, so a test can run a sandbox on a manual clock and step it
//! instead of sleeping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Time as seen by one sandbox: the duration since the sandbox started.
///
/// Cloning shares the clock. A real clock follows tokio's clock (so a test may also pause
/// tokio); a manual clock moves only when [`SimClock::advance`] is called.
#[derive(Clone, Debug)]
pub struct SimClock {
    inner: Arc<ClockInner>,
}

#[derive(Debug)]
struct ClockInner {
    mode: ClockMode,
    /// Wall-clock time at the start, so sandbox times can be shown as RFC 3339 timestamps.
    wall_start: OffsetDateTime,
}

#[derive(Debug)]
enum ClockMode {
    Real { start: tokio::time::Instant },
    Manual { elapsed: Mutex<Duration> },
}

impl SimClock {
    /// A clock that follows tokio's clock from now on.
    pub fn real() -> Self {
        Self::with_mode(ClockMode::Real {
            start: tokio::time::Instant::now(),
        })
    }

    /// A clock that stays at zero until advanced.
    pub fn manual() -> Self {
        Self::with_mode(ClockMode::Manual {
            elapsed: Mutex::new(Duration::ZERO),
        })
    }

    fn with_mode(mode: ClockMode) -> Self {
        Self {
            inner: Arc::new(ClockInner {
                mode,
                wall_start: OffsetDateTime::now_utc(),
            }),
        }
    }

    /// Time since the sandbox started.
    pub fn now(&self) -> Duration {
        match &self.inner.mode {
            ClockMode::Real { start } => start.elapsed(),
            ClockMode::Manual { elapsed } => *elapsed.lock().unwrap(),
        }
    }

    pub fn is_manual(&self) -> bool {
        matches!(self.inner.mode, ClockMode::Manual { .. })
    }

    /// Moves a manual clock forward.
    ///
    /// # Panics
    /// On a real clock: it cannot be moved, and a test that tries has a wrong setup.
    pub fn advance(&self, by: Duration) {
        match &self.inner.mode {
            ClockMode::Real { .. } => panic!("advance() needs a sandbox started with manual_clock"),
            ClockMode::Manual { elapsed } => *elapsed.lock().unwrap() += by,
        }
    }

    /// The wall-clock instant of a sandbox time, as RFC 3339 (what the platforms print).
    pub fn wall_time(&self, at: Duration) -> String {
        let instant = self.inner.wall_start + at;
        instant
            .format(&Rfc3339)
            .expect("a UTC timestamp always formats as RFC 3339")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = SimClock::manual();
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::from_millis(250));
        assert_eq!(clock.now(), Duration::from_millis(250));
        assert!(clock.wall_time(clock.now()).ends_with('Z'));
    }
}
