//! The part of Shopify's Admin GraphQL schema the sandbox serves. A document is validated
//! against it before anything runs (so a mutation with a misspelt field applies nothing), and
//! the query cost is computed from it.

/// How a field contributes to the shape and the cost of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A leaf: no selection, no cost.
    Scalar,
    /// An object or a list of objects: 1 point plus its selection, once per field.
    Object,
    /// A free wrapper around objects (`edges`, `pageInfo`): its selection only.
    Wrapper,
    /// A paginated connection: 2 points plus `first` times the cost of one node.
    Connection,
}

#[derive(Clone, Copy, Debug)]
pub struct FieldDef {
    pub type_name: &'static str,
    pub kind: Kind,
    /// The arguments the field accepts.
    pub arguments: &'static [&'static str],
}

pub const QUERY_ROOT: &str = "QueryRoot";
pub const MUTATION_ROOT: &str = "Mutation";
/// The interface of objects with a global id, returned by `nodes`.
pub const NODE: &str = "Node";

const PAGING: &[&str] = &["first", "after", "last", "before", "reverse", "query"];

const fn scalar() -> FieldDef {
    FieldDef {
        type_name: "",
        kind: Kind::Scalar,
        arguments: &[],
    }
}

const fn object(type_name: &'static str, arguments: &'static [&'static str]) -> FieldDef {
    FieldDef {
        type_name,
        kind: Kind::Object,
        arguments,
    }
}

const fn wrapper(type_name: &'static str) -> FieldDef {
    FieldDef {
        type_name,
        kind: Kind::Wrapper,
        arguments: &[],
    }
}

const fn connection(type_name: &'static str) -> FieldDef {
    FieldDef {
        type_name,
        kind: Kind::Connection,
        arguments: PAGING,
    }
}

/// The definition of `name` on `parent`, or None when the type has no such field.
pub fn field(parent: &str, name: &str) -> Option<FieldDef> {
    if name == "__typename" {
        return Some(scalar());
    }
    match parent {
        QUERY_ROOT => query_root(name),
        MUTATION_ROOT => mutation_root(name),
        "InventorySetQuantitiesPayload" => payload(name, "InventorySetQuantitiesUserError"),
        "InventoryAdjustQuantitiesPayload" => payload(name, "InventoryAdjustQuantitiesUserError"),
        "InventorySetQuantitiesUserError" | "InventoryAdjustQuantitiesUserError" => {
            matches!(name, "field" | "message" | "code").then(scalar)
        }
        "InventoryAdjustmentGroup" => adjustment_group(name),
        "InventoryChange" => inventory_change(name),
        "InventoryItem" => inventory_item(name),
        "InventoryLevel" => inventory_level(name),
        "InventoryQuantity" => matches!(name, "name" | "quantity").then(scalar),
        "Location" => matches!(name, "id" | "legacyResourceId" | "name").then(scalar),
        "InventoryItemConnection" => connection_fields(name, "InventoryItemEdge", "InventoryItem"),
        "InventoryLevelConnection" => {
            connection_fields(name, "InventoryLevelEdge", "InventoryLevel")
        }
        "InventoryItemEdge" => edge_fields(name, "InventoryItem"),
        "InventoryLevelEdge" => edge_fields(name, "InventoryLevel"),
        "PageInfo" => matches!(
            name,
            "hasNextPage" | "hasPreviousPage" | "startCursor" | "endCursor"
        )
        .then(scalar),
        NODE => (name == "id").then(scalar),
        _ => None,
    }
}

/// Whether a concrete type implements `Node` (can appear in `nodes(ids:)`).
pub fn implements_node(type_name: &str) -> bool {
    matches!(type_name, "InventoryItem" | "InventoryLevel" | "Location")
}

/// Whether a fragment on `condition` applies where `type_name` is expected.
pub fn fragment_applies(condition: &str, type_name: &str) -> bool {
    condition == type_name
        || (condition == NODE && implements_node(type_name))
        || (type_name == NODE && implements_node(condition))
}

fn query_root(name: &str) -> Option<FieldDef> {
    match name {
        "inventoryItems" => Some(connection("InventoryItemConnection")),
        "inventoryItem" => Some(object("InventoryItem", &["id"])),
        "inventoryLevel" => Some(object("InventoryLevel", &["id"])),
        "location" => Some(object("Location", &["id"])),
        "nodes" => Some(object(NODE, &["ids"])),
        _ => None,
    }
}

fn mutation_root(name: &str) -> Option<FieldDef> {
    match name {
        "inventorySetQuantities" => Some(object("InventorySetQuantitiesPayload", &["input"])),
        "inventoryAdjustQuantities" => Some(object("InventoryAdjustQuantitiesPayload", &["input"])),
        _ => None,
    }
}

fn payload(name: &str, user_error: &'static str) -> Option<FieldDef> {
    match name {
        "inventoryAdjustmentGroup" => Some(object("InventoryAdjustmentGroup", &[])),
        "userErrors" => Some(object(user_error, &[])),
        _ => None,
    }
}

fn adjustment_group(name: &str) -> Option<FieldDef> {
    match name {
        "id" | "createdAt" | "reason" | "referenceDocumentUri" => Some(scalar()),
        "changes" => Some(object(
            "InventoryChange",
            &["inventoryItemIds", "locationIds", "quantityNames"],
        )),
        _ => None,
    }
}

fn inventory_change(name: &str) -> Option<FieldDef> {
    match name {
        "name" | "delta" | "quantityAfterChange" | "ledgerDocumentUri" => Some(scalar()),
        "item" => Some(object("InventoryItem", &[])),
        "location" => Some(object("Location", &[])),
        _ => None,
    }
}

fn inventory_item(name: &str) -> Option<FieldDef> {
    match name {
        "id" | "legacyResourceId" | "sku" | "tracked" => Some(scalar()),
        "inventoryLevels" => Some(connection("InventoryLevelConnection")),
        "inventoryLevel" => Some(object("InventoryLevel", &["locationId"])),
        _ => None,
    }
}

fn inventory_level(name: &str) -> Option<FieldDef> {
    match name {
        "id" => Some(scalar()),
        "item" => Some(object("InventoryItem", &[])),
        "location" => Some(object("Location", &[])),
        "quantities" => Some(object("InventoryQuantity", &["names"])),
        _ => None,
    }
}

fn connection_fields(name: &str, edge: &'static str, node: &'static str) -> Option<FieldDef> {
    match name {
        "edges" => Some(wrapper(edge)),
        "nodes" => Some(object(node, &[])),
        "pageInfo" => Some(wrapper("PageInfo")),
        _ => None,
    }
}

fn edge_fields(name: &str, node: &'static str) -> Option<FieldDef> {
    match name {
        "cursor" => Some(scalar()),
        "node" => Some(object(node, &[])),
        _ => None,
    }
}
