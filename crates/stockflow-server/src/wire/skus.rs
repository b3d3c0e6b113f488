//! `GET /v1/skus/{sku}`: quantities per location, totals, and per channel what it may sell and
//! why (every buffer explained).

use serde::Serialize;
use stockflow_core::availability::ChannelAvailability;
use stockflow_core::ledger::SkuView;
use stockflow_core::quantity::Quantities;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct SkuOut {
    pub sku: String,
    pub locations: Vec<LocationOut>,
    pub totals: QuantitiesOut,
    /// Per channel: available_to_sell, withheld, and each buffer with its reason.
    #[schema(value_type = Vec<Object>)]
    pub channels: Vec<ChannelAvailability>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LocationOut {
    pub location: String,
    #[serde(flatten)]
    pub quantities: QuantitiesOut,
    pub version: u64,
}

#[derive(Debug, Default, Clone, Copy, Serialize, ToSchema)]
pub struct QuantitiesOut {
    pub on_hand: i64,
    pub available: i64,
    pub reserved: i64,
    pub committed: i64,
    pub damaged: i64,
    pub quality_control: i64,
    pub safety_stock: i64,
    pub incoming: i64,
}

impl QuantitiesOut {
    pub fn of(q: &Quantities) -> Self {
        Self {
            on_hand: q.on_hand,
            available: q.available(),
            reserved: q.reserved,
            committed: q.committed,
            damaged: q.damaged,
            quality_control: q.quality_control,
            safety_stock: q.safety_stock,
            incoming: q.incoming,
        }
    }

    fn add(&mut self, other: &QuantitiesOut) {
        self.on_hand += other.on_hand;
        self.available += other.available;
        self.reserved += other.reserved;
        self.committed += other.committed;
        self.damaged += other.damaged;
        self.quality_control += other.quality_control;
        self.safety_stock += other.safety_stock;
        self.incoming += other.incoming;
    }
}

impl SkuOut {
    pub fn from_view(view: &SkuView) -> Self {
        let mut totals = QuantitiesOut::default();
        let locations = view
            .stock
            .iter()
            .map(|(location, quantities)| {
                let out = QuantitiesOut::of(quantities);
                totals.add(&out);
                LocationOut {
                    location: location.to_string(),
                    quantities: out,
                    version: quantities.version,
                }
            })
            .collect();
        Self {
            sku: view.sku.to_string(),
            locations,
            totals,
            channels: view.channels().to_vec(),
        }
    }
}

/// One row of the SKU listing: totals and what each channel shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkuRowOut {
    pub sku: String,
    pub totals: QuantitiesOut,
    pub channels: Vec<ChannelRowOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelRowOut {
    pub channel: String,
    pub available_to_sell: i64,
    pub withheld: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SkuPageOut {
    pub skus: Vec<SkuRowOut>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
    /// SKUs the tenant has in all.
    pub total: usize,
}

impl SkuRowOut {
    pub fn from_view(view: &SkuView) -> Self {
        let out = SkuOut::from_view(view);
        Self {
            sku: out.sku,
            totals: out.totals,
            channels: view
                .channels()
                .iter()
                .map(|c| ChannelRowOut {
                    channel: c.channel.to_string(),
                    available_to_sell: c.available_to_sell,
                    withheld: c.withheld,
                })
                .collect(),
        }
    }
}
