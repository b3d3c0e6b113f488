//! The story the demo tells (a consumer electronics SKU that turns into a TikTok trend
//! overnight), as data: the catalogue and its stock, the buyers' demand on each platform, the
//! warehouse's script, and the surge the outside world notices. Pure: no IO, the same story for
//! the same seed and duration.
//!
//! A day of the story runs in `duration` of real time; every phase scales with it, and
//! [`Story::time_scale`] says how many story seconds pass per real second.
//!
//! | phase | share of the run | what happens |
//! |---|---|---|
//! | evening | 0.00-0.15 | baseline demand on every SKU and platform |
//! | trend | 0.15-0.30 | a video goes viral: demand for the hot SKU climbs, TikTok first |
//! | peak | 0.30-0.50 | the hot SKU sells fast; a wholesale shipment is picked too |
//! | subsiding | 0.50-0.70 | demand decays; the restock arrives |
//! | calm | 0.70-1.00 | baseline again; returns, cycle counts, an adjustment |

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::catalogue::{Catalogue, CatalogueSpec, Quantities};
use crate::demand::{DemandCurve, DemandStream};
use crate::world::Platform;

/// The story's day.
pub const STORY_DAY: Duration = Duration::from_secs(86_400);
/// The SKU that turns into a trend.
pub const HOT_SKU: &str = "SF-EARBUDS-X2";
/// The warehouse.
pub const LOCATION: &str = "east";

const OTHER_SKUS: [&str; 35] = [
    "SF-CABLE-USBC-1M",
    "SF-CABLE-USBC-2M",
    "SF-CABLE-LIGHTNING",
    "SF-CHARGER-20W",
    "SF-CHARGER-65W",
    "SF-POWERBANK-10K",
    "SF-POWERBANK-20K",
    "SF-CASE-PHONE-CLEAR",
    "SF-CASE-PHONE-BLACK",
    "SF-SCREEN-GLASS",
    "SF-STAND-LAPTOP",
    "SF-STAND-PHONE",
    "SF-HUB-USBC-7IN1",
    "SF-MOUSE-WIRELESS",
    "SF-KEYBOARD-MINI",
    "SF-WEBCAM-1080P",
    "SF-SPEAKER-MINI",
    "SF-HEADPHONES-OVER",
    "SF-SMARTWATCH-BAND",
    "SF-TRACKER-TAG",
    "SF-LAMP-DESK-LED",
    "SF-LIGHT-RING-10IN",
    "SF-MIC-USB",
    "SF-SSD-PORTABLE-1TB",
    "SF-SD-CARD-128G",
    "SF-ADAPTER-HDMI",
    "SF-CHARGER-CAR",
    "SF-PAD-WIRELESS",
    "SF-SLEEVE-LAPTOP-13",
    "SF-SLEEVE-LAPTOP-15",
    "SF-ORGANIZER-CABLE",
    "SF-CLEANER-SCREEN",
    "SF-TRIPOD-MINI",
    "SF-GIMBAL-PHONE",
    "SF-CONTROLLER-GAME",
];

/// A SKU and the units on the shelf at the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockedSku {
    pub sku: String,
    pub units: i64,
}

/// What the warehouse does at a moment of the story.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WarehouseStep {
    Receive {
        sku: String,
        units: i64,
        reference: String,
    },
    /// A shipment no channel sold (wholesale), picked without a reservation.
    WholesalePick {
        sku: String,
        units: i64,
        reference: String,
    },
    Adjust {
        sku: String,
        delta: i64,
        reason: String,
    },
    Count {
        sku: String,
    },
}

/// The outside world notices the trend (an influencer traffic spike): `multiplier` times the
/// usual demand, for `lasts`.
#[derive(Clone, Debug, PartialEq)]
pub struct Surge {
    pub at: Duration,
    pub sku: String,
    pub multiplier: f64,
    pub lasts: Duration,
    pub source: String,
}

/// A named stretch of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    pub name: &'static str,
    pub starts_at: Duration,
}

#[derive(Clone, Debug)]
pub struct Story {
    pub seed: u64,
    pub duration: Duration,
    pub hot_sku: String,
    pub location: String,
    pub stock: Vec<StockedSku>,
    pub demand: Vec<DemandStream>,
    pub script: Vec<(Duration, WarehouseStep)>,
    pub surge: Surge,
    pub phases: Vec<Phase>,
}

impl Story {
    /// The trend story over `duration` of real time.
    pub fn trend(duration: Duration, seed: u64) -> Self {
        assert!(
            duration >= Duration::from_secs(1),
            "a story lasts at least a second"
        );
        let at = |share: f64| duration.mul_f64(share);
        let mut random = ChaCha8Rng::seed_from_u64(seed ^ 0x0073_746f_7279);
        let mut stock = vec![StockedSku {
            sku: HOT_SKU.into(),
            units: 100,
        }];
        for sku in OTHER_SKUS {
            stock.push(StockedSku {
                sku: sku.into(),
                units: random.random_range(30..=90),
            });
        }
        // Rates are per real second and follow the run's length, so a shorter run tells the
        // same story with the same number of buyers per phase, faster.
        let per_second = 60.0 / duration.as_secs_f64();
        let mut demand = Vec::new();
        for sku in &OTHER_SKUS {
            for platform in Platform::ALL {
                demand.push(DemandStream {
                    platform,
                    sku: (*sku).into(),
                    rate_per_second: 0.02 * per_second,
                    curve: DemandCurve::flat(1.0),
                    two_unit_share: 0.1,
                });
            }
        }
        for (platform, peak) in [
            (Platform::TikTok, 60.0),
            (Platform::Shopify, 22.0),
            (Platform::Amazon, 16.0),
        ] {
            demand.push(DemandStream {
                platform,
                sku: HOT_SKU.into(),
                rate_per_second: 0.05 * per_second,
                curve: DemandCurve::spike(at(0.15), at(0.15), peak, at(0.20), at(0.20)),
                two_unit_share: 0.05,
            });
        }
        let script = script(&at);
        Self {
            seed,
            duration,
            hot_sku: HOT_SKU.into(),
            location: LOCATION.into(),
            stock,
            demand,
            script,
            surge: Surge {
                at: at(0.16),
                sku: HOT_SKU.into(),
                multiplier: 10.0,
                lasts: at(0.40),
                source: "social-listener".into(),
            },
            phases: vec![
                Phase {
                    name: "evening",
                    starts_at: Duration::ZERO,
                },
                Phase {
                    name: "trend",
                    starts_at: at(0.15),
                },
                Phase {
                    name: "peak",
                    starts_at: at(0.30),
                },
                Phase {
                    name: "subsiding",
                    starts_at: at(0.50),
                },
                Phase {
                    name: "calm",
                    starts_at: at(0.70),
                },
            ],
        }
    }

    /// Story seconds per real second.
    pub fn time_scale(&self) -> f64 {
        STORY_DAY.as_secs_f64() / self.duration.as_secs_f64()
    }

    /// The phase at `at`.
    pub fn phase(&self, at: Duration) -> &'static str {
        self.phases
            .iter()
            .rev()
            .find(|phase| phase.starts_at <= at)
            .map_or("evening", |phase| phase.name)
    }

    pub fn skus(&self) -> Vec<&str> {
        self.stock.iter().map(|s| s.sku.as_str()).collect()
    }

    /// The three platforms' catalogues, every SKU at the story's location, each showing the
    /// units on the shelf (the platforms start in step with the warehouse).
    pub fn catalogue(&self) -> Catalogue {
        let skus = self.skus();
        let mut spec = CatalogueSpec::new(&skus, &[self.location.as_str()], 0);
        spec.tiktok_skus_per_product = 10;
        let mut catalogue = Catalogue::generate(&spec);
        for (item, stocked) in catalogue.shopify.items.iter_mut().zip(&self.stock) {
            for level in &mut item.levels {
                level.quantities = Quantities::available(stocked.units);
            }
        }
        for (listing, stocked) in catalogue.amazon.listings.iter_mut().zip(&self.stock) {
            listing.quantity = stocked.units;
        }
        let skus = catalogue
            .tiktok
            .products
            .iter_mut()
            .flat_map(|p| p.skus.iter_mut());
        for (sku, stocked) in skus.zip(&self.stock) {
            for warehouse in &mut sku.inventory {
                warehouse.quantity = stocked.units;
            }
        }
        catalogue
    }
}

fn script(at: &impl Fn(f64) -> Duration) -> Vec<(Duration, WarehouseStep)> {
    let hot = || HOT_SKU.to_owned();
    vec![
        (
            at(0.40),
            WarehouseStep::WholesalePick {
                sku: hot(),
                units: 12,
                reference: "WHOLESALE-2041".into(),
            },
        ),
        (
            at(0.55),
            WarehouseStep::Receive {
                sku: hot(),
                units: 60,
                reference: "PO-7731".into(),
            },
        ),
        (
            at(0.60),
            WarehouseStep::Receive {
                sku: "SF-CHARGER-65W".into(),
                units: 40,
                reference: "PO-7732".into(),
            },
        ),
        (
            at(0.75),
            WarehouseStep::Adjust {
                sku: "SF-SPEAKER-MINI".into(),
                delta: -2,
                reason: "damaged".into(),
            },
        ),
        (at(0.85), WarehouseStep::Count { sku: hot() }),
        (
            at(0.85),
            WarehouseStep::Count {
                sku: "SF-CABLE-USBC-1M".into(),
            },
        ),
        (
            at(0.90),
            WarehouseStep::Count {
                sku: "SF-POWERBANK-10K".into(),
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_story_scales_with_its_duration_and_seed() {
        let minute = Story::trend(Duration::from_secs(60), 7);
        let short = Story::trend(Duration::from_secs(10), 7);
        assert_eq!(minute.stock, short.stock, "the same shelves");
        assert_eq!(minute.time_scale(), 1_440.0);
        assert_eq!(short.surge.at, Duration::from_secs_f64(1.6));
        assert_eq!(minute.phase(Duration::from_secs(20)), "peak");
        assert_eq!(minute.stock.len(), 36);
        assert_ne!(Story::trend(Duration::from_secs(60), 8).stock, minute.stock);
        let catalogue = minute.catalogue();
        assert_eq!(catalogue.amazon.listings[0].sku, HOT_SKU);
        assert_eq!(catalogue.amazon.listings[0].quantity, 100);
        assert_eq!(
            catalogue.tiktok.products[0].skus[0].inventory[0].quantity,
            100
        );
    }
}
