//! Resolves a validated selection against the store: one function per object type, each
//! answering only the fields asked for, under their aliases. Counts the actual query cost by the
//! same model as the requested cost (see `graphql.rs`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value as Json, json};

use super::graphql::{
    Fragments, GField, GqlError, Sel, argument, collect_fields, node_ids, page_size, response_key,
};
use super::store::{Change, Group, MutationResult, Store, UserError, quantity};
use crate::catalogue::gid_number;

pub struct Exec<'e, 'a> {
    pub store: &'e Store,
    pub fragments: &'e Fragments<'a>,
    pub variables: &'e Map<String, Json>,
    /// Actual cost so far.
    pub cost: u64,
}

fn unexpected(field: &str, type_name: &str) -> GqlError {
    GqlError::new(
        "INTERNAL_SERVER_ERROR",
        format!("Field '{field}' cannot be resolved on '{type_name}'"),
    )
}

impl<'e, 'a> Exec<'e, 'a> {
    fn fields(&self, selection: &'a Sel, type_name: &str) -> Result<Vec<&'a GField>, GqlError> {
        collect_fields(selection, type_name, self.fragments, self.variables)
    }

    fn argument(&self, field: &GField, name: &str) -> Json {
        argument(field, name, self.variables).unwrap_or(Json::Null)
    }

    pub fn query_root(&mut self, selection: &'a Sel) -> Result<Json, GqlError> {
        let store = self.store;
        let mut out = Map::new();
        for field in self.fields(selection, "QueryRoot")? {
            let value = match field.name.as_str() {
                "__typename" => json!("QueryRoot"),
                "inventoryItems" => self.inventory_items(field)?,
                "inventoryItem" => {
                    match store.item_by_id(self.argument(field, "id").as_str().unwrap_or("")) {
                        Some(item) => self.item(item, &field.selection_set)?,
                        None => Json::Null,
                    }
                }
                "inventoryLevel" => {
                    match store.level_by_id(self.argument(field, "id").as_str().unwrap_or("")) {
                        Some((item, level)) => self.level(item, level, &field.selection_set)?,
                        None => Json::Null,
                    }
                }
                "location" => {
                    match store.location_by_id(self.argument(field, "id").as_str().unwrap_or("")) {
                        Some(location) => self.location(location, &field.selection_set)?,
                        None => Json::Null,
                    }
                }
                "nodes" => {
                    let ids = node_ids(field, self.variables)?;
                    let nodes: Result<Vec<Json>, GqlError> = ids
                        .iter()
                        .map(|id| self.node(id, &field.selection_set))
                        .collect();
                    Json::Array(nodes?)
                }
                other => return Err(unexpected(other, "QueryRoot")),
            };
            out.insert(response_key(field).to_owned(), value);
        }
        Ok(Json::Object(out))
    }

    fn inventory_items(&mut self, field: &'a GField) -> Result<Json, GqlError> {
        let store = self.store;
        let terms = match self.argument(field, "query") {
            Json::String(query) => search_terms(&query)?,
            _ => Vec::new(),
        };
        let mut items: Vec<usize> = (0..store.items.len())
            .filter(|&index| {
                terms.is_empty()
                    || terms
                        .iter()
                        .any(|term| term.matches(&store.items[index].id, &store.items[index].sku))
            })
            .collect();
        if self.argument(field, "reverse").as_bool() == Some(true) {
            items.reverse();
        }
        self.connection(
            field,
            "InventoryItemConnection",
            &items,
            |store, item| store.items[item].id.clone(),
            |exec, item, selection| exec.item(item, selection),
        )
    }

    /// A page of a connection: `first` nodes after the `after` cursor.
    fn connection<T: Copy>(
        &mut self,
        field: &'a GField,
        type_name: &str,
        all: &[T],
        id_of: impl Fn(&Store, T) -> String,
        resolve: impl Fn(&mut Self, T, &'a Sel) -> Result<Json, GqlError>,
    ) -> Result<Json, GqlError> {
        self.cost += 2;
        let first = page_size(field, self.variables)? as usize;
        let start = self.page_start(field, all, &id_of)?;
        let page = &all[start.min(all.len())..(start + first).min(all.len())];
        let store = self.store;
        let cursor = |node: &T| Json::String(BASE64.encode(id_of(store, *node)));
        let page_info = json!({
            "__typename": "PageInfo",
            "hasNextPage": start + page.len() < all.len(),
            "hasPreviousPage": start > 0,
            "startCursor": page.first().map(cursor),
            "endCursor": page.last().map(cursor),
        });
        let mut out = Map::new();
        for part in self.fields(&field.selection_set, type_name)? {
            let value = match part.name.as_str() {
                "__typename" => json!(type_name),
                "pageInfo" => project(&page_info, &part.selection_set, "PageInfo", self)?,
                "nodes" => {
                    let nodes: Result<Vec<Json>, GqlError> = page
                        .iter()
                        .map(|&node| resolve(self, node, &part.selection_set))
                        .collect();
                    Json::Array(nodes?)
                }
                "edges" => {
                    let edge_type = type_name.replace("Connection", "Edge");
                    self.edges(page, &part.selection_set, &edge_type, &cursor, &resolve)?
                }
                other => return Err(unexpected(other, type_name)),
            };
            out.insert(response_key(part).to_owned(), value);
        }
        Ok(Json::Object(out))
    }

    /// Where a page starts: after the node the `after` cursor names, or at the beginning.
    fn page_start<T: Copy>(
        &self,
        field: &GField,
        all: &[T],
        id_of: &impl Fn(&Store, T) -> String,
    ) -> Result<usize, GqlError> {
        let invalid =
            || GqlError::new("BAD_REQUEST", "Invalid cursor for current pagination sort.");
        match self.argument(field, "after") {
            Json::Null => Ok(0),
            Json::String(cursor) => {
                let id = decode_cursor(&cursor)?;
                let position = all.iter().position(|&node| id_of(self.store, node) == id);
                Ok(position.ok_or_else(invalid)? + 1)
            }
            _ => Err(invalid()),
        }
    }

    fn edges<T: Copy>(
        &mut self,
        page: &[T],
        selection: &'a Sel,
        edge_type: &str,
        cursor: &impl Fn(&T) -> Json,
        resolve: &impl Fn(&mut Self, T, &'a Sel) -> Result<Json, GqlError>,
    ) -> Result<Json, GqlError> {
        let mut edges = Vec::with_capacity(page.len());
        for node in page {
            let mut edge = Map::new();
            for edge_field in self.fields(selection, edge_type)? {
                let value = match edge_field.name.as_str() {
                    "__typename" => json!(edge_type),
                    "cursor" => cursor(node),
                    "node" => resolve(self, *node, &edge_field.selection_set)?,
                    other => return Err(unexpected(other, edge_type)),
                };
                edge.insert(response_key(edge_field).to_owned(), value);
            }
            edges.push(Json::Object(edge));
        }
        Ok(Json::Array(edges))
    }

    fn item(&mut self, index: usize, selection: &'a Sel) -> Result<Json, GqlError> {
        self.cost += 1;
        let store = self.store;
        let item = &store.items[index];
        let mut out = Map::new();
        for field in self.fields(selection, "InventoryItem")? {
            let value = match field.name.as_str() {
                "__typename" => json!("InventoryItem"),
                "id" => json!(item.id),
                "legacyResourceId" => json!(gid_number(&item.id)),
                "sku" => json!(item.sku),
                "tracked" => json!(true),
                "inventoryLevels" => {
                    let levels: Vec<usize> = (0..item.levels.len()).collect();
                    self.connection(
                        field,
                        "InventoryLevelConnection",
                        &levels,
                        move |store, level| store.items[index].levels[level].id.clone(),
                        move |exec, level, selection| exec.level(index, level, selection),
                    )?
                }
                "inventoryLevel" => {
                    let location = store
                        .location_by_id(self.argument(field, "locationId").as_str().unwrap_or(""));
                    match location.and_then(|location| store.level_at(index, location)) {
                        Some(level) => self.level(index, level, &field.selection_set)?,
                        None => Json::Null,
                    }
                }
                other => return Err(unexpected(other, "InventoryItem")),
            };
            out.insert(response_key(field).to_owned(), value);
        }
        Ok(Json::Object(out))
    }

    fn level(&mut self, item: usize, level: usize, selection: &'a Sel) -> Result<Json, GqlError> {
        self.cost += 1;
        let stored = &self.store.items[item].levels[level];
        let mut out = Map::new();
        for field in self.fields(selection, "InventoryLevel")? {
            let value = match field.name.as_str() {
                "__typename" => json!("InventoryLevel"),
                "id" => json!(stored.id),
                "item" => self.item(item, &field.selection_set)?,
                "location" => self.location(stored.location, &field.selection_set)?,
                "quantities" => self.quantities(item, level, field)?,
                other => return Err(unexpected(other, "InventoryLevel")),
            };
            out.insert(response_key(field).to_owned(), value);
        }
        Ok(Json::Object(out))
    }

    fn quantities(
        &mut self,
        item: usize,
        level: usize,
        field: &'a GField,
    ) -> Result<Json, GqlError> {
        self.cost += 1;
        let stored = self.store.quantities(item, level);
        let Json::Array(names) = self.argument(field, "names") else {
            return Err(GqlError::new(
                "missingRequiredArguments",
                "quantities needs names: [String!]!",
            ));
        };
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_str().unwrap_or_default();
            let value = quantity(&stored, name).ok_or_else(|| {
                GqlError::new(
                    "BAD_REQUEST",
                    format!("'{name}' is not a valid quantity name"),
                )
            })?;
            let full = json!({"__typename": "InventoryQuantity", "name": name, "quantity": value});
            out.push(project(
                &full,
                &field.selection_set,
                "InventoryQuantity",
                self,
            )?);
        }
        Ok(Json::Array(out))
    }

    fn location(&mut self, index: usize, selection: &'a Sel) -> Result<Json, GqlError> {
        self.cost += 1;
        let location = &self.store.locations[index];
        let full = json!({
            "__typename": "Location",
            "id": location.id,
            "legacyResourceId": gid_number(&location.id),
            "name": location.name,
        });
        project(&full, selection, "Location", self)
    }

    fn node(&mut self, id: &str, selection: &'a Sel) -> Result<Json, GqlError> {
        let store = self.store;
        if id.starts_with("gid://shopify/InventoryItem/")
            && let Some(item) = store.item_by_id(id)
        {
            return self.item(item, selection);
        }
        if id.starts_with("gid://shopify/InventoryLevel/")
            && let Some((item, level)) = store.level_by_id(id)
        {
            return self.level(item, level, selection);
        }
        if id.starts_with("gid://shopify/Location/")
            && let Some(location) = store.location_by_id(id)
        {
            return self.location(location, selection);
        }
        Ok(Json::Null)
    }

    /// The payload of a mutation: the group when it applied, and the user errors.
    pub fn payload(
        &mut self,
        type_name: &str,
        result: &MutationResult,
        selection: &'a Sel,
    ) -> Result<Json, GqlError> {
        let error_type = type_name.replace("Payload", "UserError");
        let mut out = Map::new();
        for field in self.fields(selection, type_name)? {
            let value = match field.name.as_str() {
                "__typename" => json!(type_name),
                "inventoryAdjustmentGroup" => match &result.group {
                    Some(group) => self.group(group, &field.selection_set)?,
                    None => Json::Null,
                },
                "userErrors" => {
                    let errors: Result<Vec<Json>, GqlError> = result
                        .user_errors
                        .iter()
                        .map(|error| {
                            project(
                                &user_error_json(error, &error_type),
                                &field.selection_set,
                                &error_type,
                                self,
                            )
                        })
                        .collect();
                    Json::Array(errors?)
                }
                other => return Err(unexpected(other, type_name)),
            };
            out.insert(response_key(field).to_owned(), value);
        }
        Ok(Json::Object(out))
    }

    fn group(&mut self, group: &Group, selection: &'a Sel) -> Result<Json, GqlError> {
        let mut out = Map::new();
        for field in self.fields(selection, "InventoryAdjustmentGroup")? {
            let value = match field.name.as_str() {
                "__typename" => json!("InventoryAdjustmentGroup"),
                "id" => json!(group.id),
                "createdAt" => json!(group.created_at),
                "reason" => json!(group.reason),
                "referenceDocumentUri" => json!(group.reference_document_uri),
                "changes" => {
                    let wanted: Vec<&Change> = group
                        .changes
                        .iter()
                        .filter(|change| self.change_wanted(field, change))
                        .collect();
                    let mut changes = Vec::with_capacity(wanted.len());
                    for change in wanted {
                        changes.push(self.change(change, &field.selection_set)?);
                    }
                    Json::Array(changes)
                }
                other => return Err(unexpected(other, "InventoryAdjustmentGroup")),
            };
            out.insert(response_key(field).to_owned(), value);
        }
        Ok(Json::Object(out))
    }

    /// The optional filters of `changes(inventoryItemIds:, locationIds:, quantityNames:)`.
    fn change_wanted(&self, field: &GField, change: &Change) -> bool {
        let listed = |name: &str, value: &str| match self.argument(field, name) {
            Json::Array(values) => values.iter().any(|listed| listed.as_str() == Some(value)),
            _ => true,
        };
        listed("inventoryItemIds", &self.store.items[change.item].id)
            && listed("locationIds", &self.store.locations[change.location].id)
            && listed("quantityNames", change.name)
    }

    fn change(&mut self, change: &Change, selection: &'a Sel) -> Result<Json, GqlError> {
        let mut out = Map::new();
        for field in self.fields(selection, "InventoryChange")? {
            let value = match field.name.as_str() {
                "__typename" => json!("InventoryChange"),
                "name" => json!(change.name),
                "delta" => json!(change.delta),
                "quantityAfterChange" => json!(change.quantity_after_change),
                "ledgerDocumentUri" => Json::Null,
                "item" => self.item(change.item, &field.selection_set)?,
                "location" => self.location(change.location, &field.selection_set)?,
                other => return Err(unexpected(other, "InventoryChange")),
            };
            out.insert(response_key(field).to_owned(), value);
        }
        Ok(Json::Object(out))
    }
}

fn user_error_json(error: &UserError, type_name: &str) -> Json {
    json!({"__typename": type_name, "field": error.field, "message": error.message, "code": error.code})
}

/// Picks the asked fields of an object whose fields are all scalars.
fn project<'a>(
    full: &Json,
    selection: &'a Sel,
    type_name: &str,
    exec: &Exec<'_, 'a>,
) -> Result<Json, GqlError> {
    let mut out = Map::new();
    for field in exec.fields(selection, type_name)? {
        let value = full
            .get(field.name.as_str())
            .ok_or_else(|| unexpected(&field.name, type_name))?;
        out.insert(response_key(field).to_owned(), value.clone());
    }
    Ok(Json::Object(out))
}

fn decode_cursor(cursor: &str) -> Result<String, GqlError> {
    let invalid = || GqlError::new("BAD_REQUEST", "Invalid cursor for current pagination sort.");
    let bytes = BASE64.decode(cursor).map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// One `key:value` term of a search query.
#[derive(Debug, PartialEq, Eq)]
pub struct SearchTerm {
    key: String,
    value: String,
}

impl SearchTerm {
    fn matches(&self, id: &str, sku: &str) -> bool {
        match self.key.as_str() {
            "sku" => sku == self.value,
            _ => id == self.value || gid_number(id) == self.value,
        }
    }
}

/// Reads Shopify search syntax for inventory items: `sku:A`, `sku:'A B'`, `id:123`, joined by
/// spaces or `OR` (any term matches). Other filters are refused rather than ignored, so a query
/// the sandbox does not understand cannot pass for one that matched.
pub fn search_terms(query: &str) -> Result<Vec<SearchTerm>, GqlError> {
    let mut terms = Vec::new();
    for token in tokens(query) {
        if token == "OR" {
            continue;
        }
        let Some((key, value)) = token.split_once(':') else {
            return Err(GqlError::new(
                "BAD_REQUEST",
                format!("The sandbox supports only sku: and id: search terms, got '{token}'"),
            ));
        };
        if !matches!(key, "sku" | "id") {
            return Err(GqlError::new(
                "BAD_REQUEST",
                format!("The sandbox supports only sku: and id: search terms, got '{key}:'"),
            ));
        }
        let value = value.trim_matches(|c| c == '\'' || c == '"');
        terms.push(SearchTerm {
            key: key.to_owned(),
            value: value.to_owned(),
        });
    }
    Ok(terms)
}

/// Splits on whitespace outside quotes.
fn tokens(query: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in query.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                current.push(c);
            }
            (Some(open), _) if c == open => {
                quote = None;
                current.push(c);
            }
            (None, c) if c.is_whitespace() => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_read_quotes_and_or() {
        let terms = search_terms("sku:A OR sku:'B C' id:12").unwrap();
        assert_eq!(terms.len(), 3);
        assert_eq!(terms[1].value, "B C");
        assert!(terms[2].matches("gid://shopify/InventoryItem/12", "x"));
        assert!(search_terms("title:shirt").is_err());
    }
}
