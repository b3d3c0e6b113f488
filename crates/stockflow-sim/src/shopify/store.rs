//! The shop's inventory: items, locations, the quantities at each level, the adjustment groups
//! that changed them, and the table of idempotency keys. Pure state; the HTTP layer locks it.

use std::collections::{HashMap, VecDeque};

use crate::catalogue::{
    CatalogueError, Quantities, ShopifyCatalogue, ShopifyLocation, check_unique, gid_number,
};

/// Every quantity name Shopify knows, in the order changes are listed.
pub const QUANTITY_NAMES: [&str; 8] = [
    "available",
    "on_hand",
    "committed",
    "reserved",
    "damaged",
    "safety_stock",
    "quality_control",
    "incoming",
];

/// The most idempotency keys remembered; the oldest completed ones are forgotten first.
pub const IDEMPOTENCY_KEYS_MAX: usize = 10_000;

#[derive(Debug)]
pub struct StoredLevel {
    /// `gid://shopify/InventoryLevel/<location>?inventory_item_id=<item>`.
    pub id: String,
    pub location: usize,
    pub quantities: Quantities,
}

#[derive(Debug)]
pub struct StoredItem {
    pub id: String,
    pub sku: String,
    pub levels: Vec<StoredLevel>,
}

/// One line of an adjustment group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub name: &'static str,
    pub delta: i64,
    pub quantity_after_change: i64,
    pub item: usize,
    pub location: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub created_at: String,
    pub reason: String,
    pub reference_document_uri: Option<String>,
    pub changes: Vec<Change>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserError {
    pub field: Option<Vec<String>>,
    pub message: String,
    pub code: &'static str,
}

impl UserError {
    pub fn new(field: Option<Vec<String>>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
            code,
        }
    }
}

/// What a mutation returned: a group when it applied, user errors when it did not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MutationResult {
    pub group: Option<Group>,
    pub user_errors: Vec<UserError>,
}

/// A level's quantities before and after a planned change.
#[derive(Clone, Debug)]
pub struct Planned {
    pub item: usize,
    pub level: usize,
    pub before: Quantities,
    pub after: Quantities,
}

#[derive(Debug)]
pub struct Store {
    pub locations: Vec<ShopifyLocation>,
    pub items: Vec<StoredItem>,
    location_index: HashMap<String, usize>,
    item_index: HashMap<String, usize>,
    sku_index: HashMap<String, usize>,
    level_index: HashMap<String, (usize, usize)>,
    pub idempotency: Idempotency,
    groups_created: u64,
}

impl Store {
    pub fn new(catalogue: &ShopifyCatalogue) -> Result<Self, CatalogueError> {
        check_unique(
            "location",
            catalogue.locations.iter().map(|l| l.id.as_str()),
        )?;
        check_unique(
            "inventory item",
            catalogue.items.iter().map(|i| i.inventory_item_id.as_str()),
        )?;
        check_unique("sku", catalogue.items.iter().map(|i| i.sku.as_str()))?;
        let location_index: HashMap<String, usize> = catalogue
            .locations
            .iter()
            .enumerate()
            .map(|(index, location)| (location.id.clone(), index))
            .collect();
        let mut items = Vec::with_capacity(catalogue.items.len());
        for item in &catalogue.items {
            check_unique(
                "level location",
                item.levels.iter().map(|l| l.location_id.as_str()),
            )?;
            let mut levels = Vec::with_capacity(item.levels.len());
            for level in &item.levels {
                let location = *location_index.get(&level.location_id).ok_or_else(|| {
                    CatalogueError(format!(
                        "{} is stocked at unknown {}",
                        item.sku, level.location_id
                    ))
                })?;
                levels.push(StoredLevel {
                    id: format!(
                        "gid://shopify/InventoryLevel/{}?inventory_item_id={}",
                        gid_number(&level.location_id),
                        gid_number(&item.inventory_item_id)
                    ),
                    location,
                    quantities: level.quantities,
                });
            }
            items.push(StoredItem {
                id: item.inventory_item_id.clone(),
                sku: item.sku.clone(),
                levels,
            });
        }
        Ok(Self::indexed(
            catalogue.locations.clone(),
            items,
            location_index,
        ))
    }

    fn indexed(
        locations: Vec<ShopifyLocation>,
        items: Vec<StoredItem>,
        location_index: HashMap<String, usize>,
    ) -> Self {
        let item_index = items
            .iter()
            .enumerate()
            .map(|(i, item)| (item.id.clone(), i))
            .collect();
        let sku_index = items
            .iter()
            .enumerate()
            .map(|(i, item)| (item.sku.clone(), i))
            .collect();
        let level_index = items
            .iter()
            .enumerate()
            .flat_map(|(i, item)| {
                item.levels
                    .iter()
                    .enumerate()
                    .map(move |(l, level)| (level.id.clone(), (i, l)))
            })
            .collect();
        Self {
            locations,
            items,
            location_index,
            item_index,
            sku_index,
            level_index,
            idempotency: Idempotency::default(),
            groups_created: 0,
        }
    }

    pub fn item_by_id(&self, id: &str) -> Option<usize> {
        self.item_index.get(id).copied()
    }

    pub fn item_by_sku(&self, sku: &str) -> Option<usize> {
        self.sku_index.get(sku).copied()
    }

    pub fn location_by_id(&self, id: &str) -> Option<usize> {
        self.location_index.get(id).copied()
    }

    pub fn level_by_id(&self, id: &str) -> Option<(usize, usize)> {
        self.level_index.get(id).copied()
    }

    /// The level of an item at a location, if the item is stocked there.
    pub fn level_at(&self, item: usize, location: usize) -> Option<usize> {
        self.items[item]
            .levels
            .iter()
            .position(|level| level.location == location)
    }

    pub fn quantities(&self, item: usize, level: usize) -> Quantities {
        self.items[item].levels[level].quantities
    }

    /// Applies planned changes as one adjustment group.
    pub fn commit(
        &mut self,
        reason: &str,
        reference_document_uri: Option<String>,
        created_at: String,
        planned: &[Planned],
    ) -> Group {
        self.groups_created += 1;
        let mut changes = Vec::new();
        for plan in planned {
            let stored = &mut self.items[plan.item].levels[plan.level];
            assert_eq!(
                stored.quantities, plan.before,
                "a plan must be committed under the lock it was made under"
            );
            stored.quantities = plan.after;
            let location = stored.location;
            for name in QUANTITY_NAMES {
                let before = quantity(&plan.before, name).expect("known name");
                let after = quantity(&plan.after, name).expect("known name");
                if before != after {
                    changes.push(Change {
                        name,
                        delta: after - before,
                        quantity_after_change: after,
                        item: plan.item,
                        location,
                    });
                }
            }
        }
        Group {
            id: format!(
                "gid://shopify/InventoryAdjustmentGroup/{}",
                90_000_000 + self.groups_created
            ),
            created_at,
            reason: reason.to_owned(),
            reference_document_uri,
            changes,
        }
    }
}

/// A named quantity of a level; None for a name Shopify does not know.
pub fn quantity(quantities: &Quantities, name: &str) -> Option<i64> {
    Some(match name {
        "available" => quantities.available,
        "on_hand" => quantities.on_hand(),
        "committed" => quantities.committed,
        "reserved" => quantities.reserved,
        "damaged" => quantities.damaged,
        "safety_stock" => quantities.safety_stock,
        "quality_control" => quantities.quality_control,
        "incoming" => quantities.incoming,
        _ => return None,
    })
}

/// Quantities with one name set to `value`. Setting `on_hand` moves the difference into
/// `available`, as Shopify does.
pub fn with_quantity(quantities: Quantities, name: &str, value: i64) -> Option<Quantities> {
    let mut next = quantities;
    match name {
        "available" => next.available = value,
        "on_hand" => next.available += value - quantities.on_hand(),
        "committed" => next.committed = value,
        "reserved" => next.reserved = value,
        "damaged" => next.damaged = value,
        "safety_stock" => next.safety_stock = value,
        "quality_control" => next.quality_control = value,
        "incoming" => next.incoming = value,
        _ => return None,
    }
    Some(next)
}

#[derive(Debug)]
enum KeyState {
    /// The first call with the key is still running.
    InFlight,
    Done(MutationResult),
}

#[derive(Debug)]
struct KeyEntry {
    /// The mutation and its resolved arguments; another call with the key must match it.
    fingerprint: String,
    state: KeyState,
}

/// What a call with an idempotency key should do.
#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    Proceed,
    Replay(MutationResult),
    Refuse(UserError),
}

/// Idempotency keys of the shop, bounded by [`IDEMPOTENCY_KEYS_MAX`].
#[derive(Debug, Default)]
pub struct Idempotency {
    entries: HashMap<String, KeyEntry>,
    order: VecDeque<String>,
}

impl Idempotency {
    pub fn begin(&mut self, key: &str, fingerprint: &str) -> Begin {
        if let Some(entry) = self.entries.get(key) {
            if entry.fingerprint != fingerprint {
                return Begin::Refuse(UserError::new(
                    None,
                    "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                    "The same idempotency key cannot be used with different operation parameters.",
                ));
            }
            return match &entry.state {
                KeyState::InFlight => Begin::Refuse(UserError::new(
                    None,
                    "IDEMPOTENCY_CONCURRENT_REQUEST",
                    "This request is currently in progress, please try again.",
                )),
                KeyState::Done(result) => Begin::Replay(result.clone()),
            };
        }
        self.make_room();
        self.order.push_back(key.to_owned());
        self.entries.insert(
            key.to_owned(),
            KeyEntry {
                fingerprint: fingerprint.to_owned(),
                state: KeyState::InFlight,
            },
        );
        Begin::Proceed
    }

    pub fn finish(&mut self, key: &str, result: &MutationResult) {
        let entry = self.entries.get_mut(key).expect("finish follows begin");
        assert!(
            matches!(entry.state, KeyState::InFlight),
            "a key finishes once"
        );
        entry.state = KeyState::Done(result.clone());
    }

    /// Forgets a key whose call never ran (it failed before the mutation, or was dropped).
    pub fn abandon(&mut self, key: &str) {
        if self
            .entries
            .get(key)
            .is_some_and(|entry| matches!(entry.state, KeyState::InFlight))
        {
            self.entries.remove(key);
            self.order.retain(|k| k != key);
        }
    }

    fn make_room(&mut self) {
        while self.entries.len() >= IDEMPOTENCY_KEYS_MAX {
            let position = self
                .order
                .iter()
                .position(|key| matches!(self.entries[key].state, KeyState::Done(_)));
            // Every remembered key in flight at once: the bound is a misconfiguration.
            let position = position.expect("more keys in flight than IDEMPOTENCY_KEYS_MAX");
            let key = self.order.remove(position).expect("position is in range");
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_on_hand_moves_available() {
        let start = Quantities {
            available: 5,
            committed: 3,
            ..Quantities::default()
        };
        let next = with_quantity(start, "on_hand", 10).unwrap();
        assert_eq!(next.available, 7);
        assert_eq!(next.on_hand(), 10);
        assert_eq!(with_quantity(start, "bogus", 1), None);
    }

    #[test]
    fn idempotency_lifecycle() {
        let mut keys = Idempotency::default();
        assert_eq!(keys.begin("k", "a"), Begin::Proceed);
        assert!(
            matches!(keys.begin("k", "a"), Begin::Refuse(e) if e.code == "IDEMPOTENCY_CONCURRENT_REQUEST")
        );
        assert!(
            matches!(keys.begin("k", "b"), Begin::Refuse(e) if e.code == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH")
        );
        keys.finish("k", &MutationResult::default());
        assert_eq!(
            keys.begin("k", "a"),
            Begin::Replay(MutationResult::default())
        );
        assert_eq!(keys.begin("j", "a"), Begin::Proceed);
        keys.abandon("j");
        assert_eq!(keys.begin("j", "b"), Begin::Proceed);
    }
}
