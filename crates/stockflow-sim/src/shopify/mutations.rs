//! `inventorySetQuantities` and `inventoryAdjustQuantities`: their inputs, and the planning
//! that checks every rule before anything is applied. A call with any user error applies
//! nothing: one stale entry fails the whole call.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;

use super::graphql::GqlError;
use super::store::{Planned, Store, UserError, quantity, with_quantity};
use crate::catalogue::Quantities;

/// The most quantities (or changes) one call may carry.
pub const QUANTITIES_PER_CALL_MAX: usize = 250;
/// Shopify's bounds on a quantity.
pub const QUANTITY_MAX: i64 = 1_000_000_000;

/// The reasons Shopify accepts for an inventory change.
const REASONS: [&str; 17] = [
    "correction",
    "cycle_count_available",
    "damaged",
    "movement_canceled",
    "movement_created",
    "movement_received",
    "movement_updated",
    "other",
    "promotion",
    "quality_control",
    "received",
    "reservation_created",
    "reservation_deleted",
    "reservation_updated",
    "restock",
    "safety_stock",
    "shrinkage",
];

/// Names `inventoryAdjustQuantities` may change (committed moves only through orders).
const ADJUSTABLE_NAMES: [&str; 6] = [
    "available",
    "damaged",
    "incoming",
    "quality_control",
    "reserved",
    "safety_stock",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetInput {
    pub name: String,
    pub reason: String,
    #[serde(default)]
    pub reference_document_uri: Option<String>,
    /// The pre-2026-04 opt-out; accepted and ignored, since a null `changeFromQuantity` is now
    /// the opt-out.
    #[serde(default)]
    pub ignore_compare_quantity: Option<bool>,
    pub quantities: Vec<SetQuantity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetQuantity {
    pub inventory_item_id: String,
    pub location_id: String,
    pub quantity: i64,
    /// None when omitted (refused), Some(None) when null (no check), Some(Some(n)) to check.
    #[serde(default, deserialize_with = "present")]
    pub change_from_quantity: Option<Option<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustInput {
    pub name: String,
    pub reason: String,
    #[serde(default)]
    pub reference_document_uri: Option<String>,
    pub changes: Vec<AdjustChange>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustChange {
    pub inventory_item_id: String,
    pub location_id: String,
    pub delta: i64,
    #[serde(default, deserialize_with = "present")]
    pub change_from_quantity: Option<Option<i64>>,
    #[serde(default)]
    pub ledger_document_uri: Option<String>,
}

/// Tells an explicit null apart from an omitted field.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(deserializer).map(Some)
}

#[derive(Debug)]
pub enum MutationInput {
    Set(SetInput),
    Adjust(AdjustInput),
}

impl MutationInput {
    /// Reads the `input` argument of a mutation; a malformed input or more than 250 entries is a
    /// top-level error, as in Shopify's schema.
    pub fn parse(mutation: &str, input: Json) -> Result<Self, GqlError> {
        let invalid = |error: serde_json::Error| {
            GqlError::new(
                "INVALID_VARIABLE",
                format!("Argument 'input' on Field '{mutation}' has an invalid value: {error}"),
            )
        };
        let parsed = match mutation {
            "inventorySetQuantities" => {
                MutationInput::Set(serde_json::from_value(input).map_err(invalid)?)
            }
            "inventoryAdjustQuantities" => {
                MutationInput::Adjust(serde_json::from_value(input).map_err(invalid)?)
            }
            other => {
                unreachable!("schema validation lets only known mutations through, got {other}")
            }
        };
        let (count, list) = match &parsed {
            MutationInput::Set(input) => (input.quantities.len(), "quantities"),
            MutationInput::Adjust(input) => (input.changes.len(), "changes"),
        };
        if count > QUANTITIES_PER_CALL_MAX {
            return Err(GqlError::over_limit(
                "MAX_INPUT_SIZE_EXCEEDED",
                format!(
                    "The input array size of {count} is greater than the maximum allowed of {QUANTITIES_PER_CALL_MAX}. (input.{list})"
                ),
            ));
        }
        Ok(parsed)
    }
}

fn path(parts: &[&str]) -> Option<Vec<String>> {
    Some(parts.iter().map(|part| part.to_string()).collect())
}

fn check_common(reason: &str, uri: Option<&str>, errors: &mut Vec<UserError>) {
    if !REASONS.contains(&reason) {
        errors.push(UserError::new(
            path(&["input", "reason"]),
            "INVALID_REASON",
            "The specified reason is invalid.",
        ));
    }
    let uri_valid = |uri: &str| uri.contains(':') && !uri.chars().any(char::is_whitespace);
    if uri.is_some_and(|uri| !uri_valid(uri)) {
        errors.push(UserError::new(
            path(&["input", "referenceDocumentUri"]),
            "INVALID_REFERENCE_DOCUMENT",
            "The specified reference document is invalid.",
        ));
    }
}

/// Finds the level an entry names, or the user error that says why it cannot.
fn locate(
    store: &Store,
    item_id: &str,
    location_id: &str,
    base: &[&str],
) -> Result<(usize, usize), UserError> {
    let field = |last: &str| path(&[base, &[last]].concat());
    let item = store.item_by_id(item_id).ok_or_else(|| {
        UserError::new(
            field("inventoryItemId"),
            "INVALID_INVENTORY_ITEM",
            "The specified inventory item could not be found.",
        )
    })?;
    let location = store.location_by_id(location_id).ok_or_else(|| {
        UserError::new(
            field("locationId"),
            "INVALID_LOCATION",
            "The specified location could not be found.",
        )
    })?;
    let level = store.level_at(item, location).ok_or_else(|| {
        UserError::new(
            field("locationId"),
            "ITEM_NOT_STOCKED_AT_LOCATION",
            "The specified inventory item is not stocked at the location.",
        )
    })?;
    Ok((item, level))
}

/// Checks the compare-and-set value of an entry against the stored quantity.
fn check_change_from(
    change_from: Option<Option<i64>>,
    stored: i64,
    base: &[&str],
) -> Result<(), UserError> {
    let field = path(&[base, &["changeFromQuantity"]].concat());
    match change_from {
        None => Err(UserError::new(
            field,
            "COMPARE_QUANTITY_REQUIRED",
            "changeFromQuantity must be given for each quantity; pass null to opt out of the check.",
        )),
        Some(Some(expected)) if expected != stored => Err(UserError::new(
            field,
            "CHANGE_FROM_QUANTITY_STALE",
            format!(
                "The changeFromQuantity value does not match persisted value (expected {expected}, persisted {stored})."
            ),
        )),
        Some(_) => Ok(()),
    }
}

pub fn plan_set(store: &Store, input: &SetInput) -> Result<Vec<Planned>, Vec<UserError>> {
    let mut errors = Vec::new();
    if !matches!(input.name.as_str(), "available" | "on_hand") {
        errors.push(UserError::new(
            path(&["input", "name"]),
            "INVALID_NAME",
            "The quantity name must be either 'available' or 'on_hand'.",
        ));
    }
    check_common(
        &input.reason,
        input.reference_document_uri.as_deref(),
        &mut errors,
    );
    let mut seen = HashSet::new();
    let mut planned = Vec::new();
    for (index, entry) in input.quantities.iter().enumerate() {
        let index = index.to_string();
        let base = ["input", "quantities", index.as_str()];
        match plan_set_entry(store, &input.name, entry, &base, &mut seen) {
            Ok(Some(plan)) => planned.push(plan),
            Ok(None) => {}
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(planned)
    } else {
        Err(errors)
    }
}

fn plan_set_entry(
    store: &Store,
    name: &str,
    entry: &SetQuantity,
    base: &[&str],
    seen: &mut HashSet<(usize, usize)>,
) -> Result<Option<Planned>, UserError> {
    let field = |last: &str| path(&[base, &[last]].concat());
    let (item, level) = locate(store, &entry.inventory_item_id, &entry.location_id, base)?;
    if !seen.insert((item, level)) {
        return Err(UserError::new(
            field("locationId"),
            "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
            "The combination of inventoryItemId and locationId must be unique.",
        ));
    }
    if entry.quantity < 0 {
        return Err(UserError::new(
            field("quantity"),
            "INVALID_QUANTITY_NEGATIVE",
            "The quantity can't be negative.",
        ));
    }
    if entry.quantity > QUANTITY_MAX {
        return Err(UserError::new(
            field("quantity"),
            "INVALID_QUANTITY_TOO_HIGH",
            "The total quantity can't be higher than 1,000,000,000.",
        ));
    }
    let before = store.quantities(item, level);
    // An invalid name was reported once for the input; no entry can be planned with it.
    let Some(stored) = quantity(&before, name) else {
        return Ok(None);
    };
    check_change_from(entry.change_from_quantity, stored, base)?;
    let after = with_quantity(before, name, entry.quantity).expect("name checked above");
    Ok(Some(Planned {
        item,
        level,
        before,
        after,
    }))
}

pub fn plan_adjust(store: &Store, input: &AdjustInput) -> Result<Vec<Planned>, Vec<UserError>> {
    let mut errors = Vec::new();
    let name_valid = ADJUSTABLE_NAMES.contains(&input.name.as_str());
    if !name_valid {
        errors.push(UserError::new(
            path(&["input", "name"]),
            "INVALID_QUANTITY_NAME",
            format!(
                "The quantity name must be one of: {}.",
                ADJUSTABLE_NAMES.join(", ")
            ),
        ));
    }
    check_common(
        &input.reason,
        input.reference_document_uri.as_deref(),
        &mut errors,
    );
    // Deltas to the same level add up, so later entries see the earlier ones.
    let mut working: HashMap<(usize, usize), (Quantities, Quantities)> = HashMap::new();
    let mut order = Vec::new();
    for (index, change) in input.changes.iter().enumerate() {
        let index = index.to_string();
        let base = ["input", "changes", index.as_str()];
        let located = locate(store, &change.inventory_item_id, &change.location_id, &base);
        let (item, level) = match located {
            Ok(found) => found,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        if !name_valid {
            continue;
        }
        let entry = working.entry((item, level)).or_insert_with(|| {
            order.push((item, level));
            let stored = store.quantities(item, level);
            (stored, stored)
        });
        if let Err(error) = adjust_entry(&input.name, change, &mut entry.1, &base) {
            errors.push(error);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(order
        .into_iter()
        .map(|(item, level)| {
            let (before, after) = working[&(item, level)];
            Planned {
                item,
                level,
                before,
                after,
            }
        })
        .filter(|plan| plan.before != plan.after)
        .collect())
}

fn adjust_entry(
    name: &str,
    change: &AdjustChange,
    current: &mut Quantities,
    base: &[&str],
) -> Result<(), UserError> {
    let stored = quantity(current, name).expect("adjustable names are known");
    check_change_from(change.change_from_quantity, stored, base)?;
    let next = stored.saturating_add(change.delta);
    let field = path(&[base, &["delta"]].concat());
    if next > QUANTITY_MAX {
        return Err(UserError::new(
            field,
            "INVALID_QUANTITY_TOO_HIGH",
            "The total quantity can't be higher than 1,000,000,000.",
        ));
    }
    if next < -QUANTITY_MAX {
        return Err(UserError::new(
            field,
            "INVALID_QUANTITY_TOO_LOW",
            "The total quantity can't be lower than -1,000,000,000.",
        ));
    }
    *current = with_quantity(*current, name, next).expect("adjustable names are known");
    Ok(())
}
