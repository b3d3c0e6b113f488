//! Every limit of the availability module in one place. Each bounds the work of one call: the
//! recompute path runs on fixed-size arrays sized by these, and commands beyond them are refused
//! with `too_many_items`.

/// Channels per tenant.
pub const CHANNELS_MAX: usize = 32;
/// Locations one channel is served by.
pub const CHANNEL_LOCATIONS_MAX: usize = 16;
/// Distinct locations across all channels of a tenant.
pub const LOCATIONS_MAX: usize = 64;
/// Buffer policies one channel applies.
pub const CHANNEL_POLICIES_MAX: usize = 8;
/// Buffer policies per tenant (selection is a 64-bit mask).
pub const POLICIES_MAX: usize = 64;
/// Points of a dynamic policy's curve.
pub const CURVE_POINTS_MAX: usize = 16;
/// SKUs a selector may name one by one.
pub const SELECTOR_SKUS_MAX: usize = 1_000;
/// Tiers or tags a selector may name.
pub const SELECTOR_VALUES_MAX: usize = 32;
/// Tags per SKU.
pub const SKU_TAGS_MAX: usize = 16;
/// Bytes of one tier or tag name.
pub const LABEL_LENGTH_MAX: usize = 64;
/// SKUs one `SetSkuAttributes` command may carry (all recomputed inside the command).
pub const ATTRIBUTE_ITEMS_MAX: usize = 1_000;
/// Operator holds on one SKU.
pub const SKU_HOLDS_MAX: usize = 8;
/// Operator holds per tenant.
pub const HOLDS_MAX: usize = 100_000;
/// Active surge signals on one SKU (one per source).
pub const SKU_SIGNALS_MAX: usize = 4;
/// SKUs one tick recomputes (expiries, decay steps and settings sweeps together); what is left
/// stays due, and the writer ticks again.
pub const TICK_SKUS_MAX: usize = 512;
/// Entries one `withheld` listing returns.
pub const LISTING_LIMIT_MAX: usize = 1_000;
/// The longest a hold, a signal or a time window may last.
pub const SCHEDULE_SECONDS_MAX: i64 = 366 * 24 * 3600;
/// Steps of a gradual release.
pub const RELEASE_STEPS_MAX: u32 = 100;
/// Interned channel, location and policy ids over a tenant's life.
pub const SLOTS_MAX: usize = u16::MAX as usize - 1;
