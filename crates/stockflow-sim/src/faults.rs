//! Seeded fault injection shared by every sandbox: server errors, held requests (timeouts),
//! forced throttling and added latency. Each call draws from a ChaCha stream seeded by the
//! sandbox seed, so a sequential client sees the same faults on every run.

use std::sync::Mutex;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What faults a sandbox injects. The default injects none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Share of calls (0.0..=1.0) answered with a 5xx before anything is processed.
    pub server_error_rate: f64,
    /// Share of calls (0.0..=1.0) held for `timeout_hold` before being answered.
    pub timeout_rate: f64,
    /// How long a timed-out call is held; set it above the client's timeout.
    pub timeout_hold: Duration,
    /// Whether a held call was processed before being held. True reproduces the hard case: the
    /// client gave up, but the platform applied the change.
    pub timeout_processes: bool,
    /// Answer every call with the platform's throttling answer, whatever the client's capacity.
    pub throttle_all: bool,
    /// Added to every call before it is processed.
    pub latency: Duration,
}

/// The fault drawn for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Answer 500, or 503 when `unavailable`; process nothing.
    ServerError {
        unavailable: bool,
    },
    /// Hold the call for `hold`; when `processes` is false answer 503 afterwards and process
    /// nothing, otherwise process it and answer normally after the hold.
    Timeout {
        hold: Duration,
        processes: bool,
    },
    /// Answer with the platform's throttling answer.
    Throttle,
}

/// A seeded fault source that tests may reconfigure while the sandbox runs.
#[derive(Debug)]
pub struct FaultInjector {
    state: Mutex<InjectorState>,
}

#[derive(Debug)]
struct InjectorState {
    config: FaultConfig,
    random: ChaCha8Rng,
}

/// One call's draw: the fault and the latency to add first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draw {
    pub fault: Fault,
    pub latency: Duration,
}

impl FaultInjector {
    pub fn new(seed: u64, config: FaultConfig) -> Self {
        assert_rates(&config);
        Self {
            state: Mutex::new(InjectorState {
                config,
                // A distinct stream from the sandbox's other random choices with the same seed.
                random: ChaCha8Rng::seed_from_u64(seed ^ 0x6661_756c_7473),
            }),
        }
    }

    /// Replaces the configuration; the random stream continues.
    pub fn set(&self, config: FaultConfig) {
        assert_rates(&config);
        self.state.lock().unwrap().config = config;
    }

    pub fn config(&self) -> FaultConfig {
        self.state.lock().unwrap().config.clone()
    }

    /// Draws the fault for one call.
    pub fn draw(&self) -> Draw {
        let mut state = self.state.lock().unwrap();
        // Exactly two numbers per call whatever the configuration, so turning a fault on does not
        // shift the stream of the calls that follow.
        let roll: f64 = state.random.random();
        let variant: bool = state.random.random();
        let config = &state.config;
        let fault = if config.throttle_all {
            Fault::Throttle
        } else if roll < config.server_error_rate {
            Fault::ServerError {
                unavailable: variant,
            }
        } else if roll < config.server_error_rate + config.timeout_rate {
            Fault::Timeout {
                hold: config.timeout_hold,
                processes: config.timeout_processes,
            }
        } else {
            Fault::None
        };
        Draw {
            fault,
            latency: config.latency,
        }
    }
}

fn assert_rates(config: &FaultConfig) {
    assert!(
        (0.0..=1.0).contains(&config.server_error_rate),
        "server_error_rate must be within 0..=1"
    );
    assert!(
        (0.0..=1.0).contains(&config.timeout_rate),
        "timeout_rate must be within 0..=1"
    );
    assert!(
        config.server_error_rate + config.timeout_rate <= 1.0,
        "server_error_rate + timeout_rate must not exceed 1"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(seed: u64, count: usize) -> Vec<Fault> {
        let injector = FaultInjector::new(
            seed,
            FaultConfig {
                server_error_rate: 0.3,
                timeout_rate: 0.2,
                ..FaultConfig::default()
            },
        );
        (0..count).map(|_| injector.draw().fault).collect()
    }

    #[test]
    fn same_seed_same_faults() {
        assert_eq!(faults(7, 200), faults(7, 200));
        assert_ne!(faults(7, 200), faults(8, 200));
    }

    #[test]
    fn rates_are_roughly_kept() {
        let drawn = faults(42, 2_000);
        let errors = drawn
            .iter()
            .filter(|f| matches!(f, Fault::ServerError { .. }))
            .count();
        let timeouts = drawn
            .iter()
            .filter(|f| matches!(f, Fault::Timeout { .. }))
            .count();
        assert!((500..700).contains(&errors), "{errors}");
        assert!((300..500).contains(&timeouts), "{timeouts}");
    }

    #[test]
    fn no_faults_by_default() {
        let injector = FaultInjector::new(1, FaultConfig::default());
        assert!((0..100).all(|_| injector.draw().fault == Fault::None));
    }
}
