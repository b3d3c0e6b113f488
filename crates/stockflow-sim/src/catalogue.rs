//! What a sandbox is seeded with: the platform's own ids for the merchant's SKUs and the
//! starting quantities. Each platform has its shape; [`Catalogue::generate`] builds consistent
//! ones for a list of SKUs, so a test names SKUs and gets ids the way the platforms print them.

use std::collections::HashSet;

/// Shopify's quantity states at one location. `on_hand` is derived, as on Shopify.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quantities {
    pub available: i64,
    pub committed: i64,
    pub reserved: i64,
    pub damaged: i64,
    pub safety_stock: i64,
    pub quality_control: i64,
    /// On its way; not part of `on_hand`.
    pub incoming: i64,
}

impl Quantities {
    pub fn available(available: i64) -> Self {
        Self {
            available,
            ..Self::default()
        }
    }

    pub fn on_hand(&self) -> i64 {
        self.available
            + self.committed
            + self.reserved
            + self.damaged
            + self.safety_stock
            + self.quality_control
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShopifyLocation {
    /// `gid://shopify/Location/<n>`.
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShopifyLevel {
    /// The location gid; it must be one of the catalogue's locations.
    pub location_id: String,
    pub quantities: Quantities,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShopifyItem {
    pub sku: String,
    /// `gid://shopify/InventoryItem/<n>`.
    pub inventory_item_id: String,
    /// The locations where the item is stocked; elsewhere it is ITEM_NOT_STOCKED_AT_LOCATION.
    pub levels: Vec<ShopifyLevel>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShopifyCatalogue {
    /// Every location of the shop, stocked or not.
    pub locations: Vec<ShopifyLocation>,
    pub items: Vec<ShopifyItem>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmazonListing {
    pub sku: String,
    pub product_type: String,
    /// The merchant-fulfilled (DEFAULT channel) quantity.
    pub quantity: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AmazonCatalogue {
    pub seller_id: String,
    /// Marketplaces the seller sells in; a call naming another one is refused.
    pub marketplace_ids: Vec<String>,
    pub listings: Vec<AmazonListing>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TikTokStock {
    pub warehouse_id: String,
    pub quantity: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TikTokSku {
    pub id: String,
    pub seller_sku: String,
    /// One entry per warehouse the SKU is stocked in; an update must list all of them.
    pub inventory: Vec<TikTokStock>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TikTokProduct {
    pub product_id: String,
    /// At most [`TIKTOK_SKUS_PER_PRODUCT_MAX`].
    pub skus: Vec<TikTokSku>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TikTokCatalogue {
    pub warehouse_ids: Vec<String>,
    pub products: Vec<TikTokProduct>,
}

/// TikTok Shop's documented maximum of SKUs per product.
pub const TIKTOK_SKUS_PER_PRODUCT_MAX: usize = 100;

/// A catalogue that does not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid catalogue: {0}")]
pub struct CatalogueError(pub String);

/// The three platforms' catalogues for one list of SKUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalogue {
    pub shopify: ShopifyCatalogue,
    pub amazon: AmazonCatalogue,
    pub tiktok: TikTokCatalogue,
}

/// What [`Catalogue::generate`] builds.
#[derive(Clone, Debug)]
pub struct CatalogueSpec {
    pub skus: Vec<String>,
    /// Location names; each becomes a Shopify location and a TikTok warehouse stocking every SKU.
    pub locations: Vec<String>,
    /// Starting `available` per SKU and location (Amazon gets the sum over locations).
    pub quantity: i64,
    /// How many SKUs share one TikTok product (1..=100).
    pub tiktok_skus_per_product: usize,
}

impl CatalogueSpec {
    pub fn new(skus: &[&str], locations: &[&str], quantity: i64) -> Self {
        Self {
            skus: skus.iter().map(|s| s.to_string()).collect(),
            locations: locations.iter().map(|s| s.to_string()).collect(),
            quantity,
            tiktok_skus_per_product: 10,
        }
    }
}

impl Catalogue {
    pub fn generate(spec: &CatalogueSpec) -> Self {
        assert!(!spec.locations.is_empty(), "a catalogue needs a location");
        assert!((1..=TIKTOK_SKUS_PER_PRODUCT_MAX).contains(&spec.tiktok_skus_per_product));
        Self {
            shopify: generate_shopify(spec),
            amazon: generate_amazon(spec),
            tiktok: generate_tiktok(spec),
        }
    }
}

/// The numeric tail of a gid (`gid://shopify/Location/12` -> `12`).
pub fn gid_number(gid: &str) -> &str {
    let tail = gid.rsplit('/').next().unwrap_or(gid);
    tail.split('?').next().unwrap_or(tail)
}

fn generate_shopify(spec: &CatalogueSpec) -> ShopifyCatalogue {
    let locations: Vec<ShopifyLocation> = spec
        .locations
        .iter()
        .enumerate()
        .map(|(index, name)| ShopifyLocation {
            id: format!("gid://shopify/Location/{}", 70_001 + index),
            name: name.clone(),
        })
        .collect();
    let items = spec
        .skus
        .iter()
        .enumerate()
        .map(|(index, sku)| ShopifyItem {
            sku: sku.clone(),
            inventory_item_id: format!("gid://shopify/InventoryItem/{}", 40_000_001 + index),
            levels: locations
                .iter()
                .map(|location| ShopifyLevel {
                    location_id: location.id.clone(),
                    quantities: Quantities::available(spec.quantity),
                })
                .collect(),
        })
        .collect();
    ShopifyCatalogue { locations, items }
}

fn generate_amazon(spec: &CatalogueSpec) -> AmazonCatalogue {
    let total = spec.quantity * spec.locations.len() as i64;
    AmazonCatalogue {
        seller_id: "A2SANDBOXSELLER".into(),
        marketplace_ids: vec!["ATVPDKIKX0DER".into()],
        listings: spec
            .skus
            .iter()
            .map(|sku| AmazonListing {
                sku: sku.clone(),
                product_type: "PRODUCT".into(),
                quantity: total,
            })
            .collect(),
    }
}

fn generate_tiktok(spec: &CatalogueSpec) -> TikTokCatalogue {
    let warehouse_ids: Vec<String> = (0..spec.locations.len())
        .map(|index| format!("7294{:011}", 1 + index))
        .collect();
    let products = spec
        .skus
        .chunks(spec.tiktok_skus_per_product)
        .enumerate()
        .map(|(product_index, skus)| TikTokProduct {
            product_id: format!("1729{:015}", 1 + product_index),
            skus: skus
                .iter()
                .enumerate()
                .map(|(sku_index, sku)| TikTokSku {
                    id: format!("1730{:015}", 1 + product_index * 1_000 + sku_index),
                    seller_sku: sku.clone(),
                    inventory: warehouse_ids
                        .iter()
                        .map(|warehouse_id| TikTokStock {
                            warehouse_id: warehouse_id.clone(),
                            quantity: spec.quantity,
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    TikTokCatalogue {
        warehouse_ids,
        products,
    }
}

/// Fails on the first repeated value.
pub fn check_unique<'a>(
    kind: &str,
    values: impl IntoIterator<Item = &'a str>,
) -> Result<(), CatalogueError> {
    let mut seen = HashSet::new();
    for value in values {
        if !seen.insert(value) {
            return Err(CatalogueError(format!("{kind} {value:?} appears twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_consistent() {
        let catalogue =
            Catalogue::generate(&CatalogueSpec::new(&["A", "B", "C"], &["east", "west"], 7));
        assert_eq!(catalogue.shopify.items.len(), 3);
        assert_eq!(catalogue.shopify.items[0].levels.len(), 2);
        assert_eq!(catalogue.amazon.listings[0].quantity, 14);
        assert_eq!(catalogue.tiktok.products.len(), 1);
        assert_eq!(catalogue.tiktok.products[0].skus[2].inventory.len(), 2);
        assert_eq!(gid_number(&catalogue.shopify.locations[1].id), "70002");
        assert_eq!(
            gid_number("gid://shopify/InventoryLevel/9?inventory_item_id=4"),
            "9"
        );
    }

    #[test]
    fn on_hand_excludes_incoming() {
        let quantities = Quantities {
            available: 5,
            committed: 2,
            incoming: 100,
            ..Quantities::default()
        };
        assert_eq!(quantities.on_hand(), 7);
    }
}
