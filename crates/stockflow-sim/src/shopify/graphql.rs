//! The GraphQL layer: the request body, the parsed document, the chosen operation with its
//! variables, field collection through fragments, and the validation walk that also computes
//! the requested query cost.
//!
//! The cost model, the same for the requested and the actual cost: a scalar costs 0; an object
//! field (or a list of objects, counted once) costs 1 plus its selection; `edges` and `pageInfo`
//! are free wrappers; a connection costs 2 plus `first` times the cost of one node (actual: the
//! nodes returned); `nodes(ids:)` costs the number of ids times one node; a mutation costs 10
//! whatever it selects.

use std::collections::HashMap;

use graphql_parser::query::{
    Definition, Directive, Document, Field, FragmentDefinition, OperationDefinition, Selection,
    SelectionSet, Type, TypeCondition, Value,
};
use serde_json::{Map, Value as Json, json};

use super::schema::{self, Kind};

// Documents are parsed with owned strings: borrowed ones tie every AST type to the request
// body's lifetime, which async handlers cannot express.
pub type Doc = Document<'static, String>;
pub type Sel = SelectionSet<'static, String>;
pub type GField = Field<'static, String>;
pub type GValue = Value<'static, String>;
pub type GDirective = Directive<'static, String>;
pub type Fragments<'a> = HashMap<&'a str, &'a FragmentDefinition<'static, String>>;

/// Parses a GraphQL document.
pub fn parse_document(query: &str) -> Result<Doc, graphql_parser::query::ParseError> {
    graphql_parser::query::parse_query::<String>(query).map(Document::into_static)
}

/// Points a mutation costs.
pub const MUTATION_COST: u64 = 10;
/// The most a connection may return at once.
pub const PAGE_SIZE_MAX: u64 = 250;
/// The most ids `nodes(ids:)` takes.
pub const NODE_IDS_MAX: usize = 250;
/// How deeply selections and fragments may nest; bounds the walks over a document.
const DEPTH_MAX: usize = 20;

/// A top-level GraphQL error.
#[derive(Clone, Debug, PartialEq)]
pub struct GqlError {
    pub message: String,
    pub code: &'static str,
    /// The request broke a documented maximum (page size, input size, ids): a violation.
    pub over_limit: bool,
}

impl GqlError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code,
            over_limit: false,
        }
    }

    pub fn over_limit(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            over_limit: true,
            ..Self::new(code, message)
        }
    }

    pub fn to_json(&self) -> Json {
        json!({"message": self.message, "extensions": {"code": self.code}})
    }
}

/// The body of a GraphQL call.
#[derive(Debug)]
pub struct GqlRequest {
    pub query: String,
    pub variables: Map<String, Json>,
    pub operation_name: Option<String>,
}

/// Reads `{"query", "variables", "operationName"}` (application/json) or a bare document
/// (application/graphql).
pub fn parse_request(content_type: &str, body: &[u8]) -> Result<GqlRequest, String> {
    if content_type.starts_with("application/graphql") {
        let query = std::str::from_utf8(body).map_err(|_| "body is not UTF-8")?;
        return Ok(GqlRequest {
            query: query.to_owned(),
            variables: Map::new(),
            operation_name: None,
        });
    }
    let value: Json = serde_json::from_slice(body).map_err(|error| error.to_string())?;
    let query = value["query"]
        .as_str()
        .ok_or("query is missing")?
        .to_owned();
    let variables = match &value["variables"] {
        Json::Null => Map::new(),
        Json::Object(map) => map.clone(),
        _ => return Err("variables must be an object".into()),
    };
    let operation_name = value["operationName"].as_str().map(str::to_owned);
    Ok(GqlRequest {
        query,
        variables,
        operation_name,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
}

/// The operation to run, with its fragments and its variables (defaults filled in).
pub struct Prepared<'a> {
    pub kind: OperationKind,
    pub selection: &'a Sel,
    pub fragments: Fragments<'a>,
    pub variables: Map<String, Json>,
}

impl Prepared<'_> {
    pub fn root_type(&self) -> &'static str {
        match self.kind {
            OperationKind::Query => schema::QUERY_ROOT,
            OperationKind::Mutation => schema::MUTATION_ROOT,
        }
    }
}

pub fn prepare<'a>(document: &'a Doc, request: &GqlRequest) -> Result<Prepared<'a>, GqlError> {
    let mut fragments = Fragments::new();
    let mut operations = Vec::new();
    for definition in &document.definitions {
        match definition {
            Definition::Fragment(fragment) => {
                fragments.insert(fragment.name.as_str(), fragment);
            }
            Definition::Operation(operation) => operations.push(operation),
        }
    }
    let operation = choose_operation(&operations, request.operation_name.as_deref())?;
    let (kind, selection, definitions) = match operation {
        OperationDefinition::SelectionSet(selection) => (OperationKind::Query, selection, &[][..]),
        OperationDefinition::Query(query) => (
            OperationKind::Query,
            &query.selection_set,
            &query.variable_definitions[..],
        ),
        OperationDefinition::Mutation(mutation) => (
            OperationKind::Mutation,
            &mutation.selection_set,
            &mutation.variable_definitions[..],
        ),
        OperationDefinition::Subscription(_) => {
            return Err(GqlError::new(
                "BAD_REQUEST",
                "Subscriptions are not supported",
            ));
        }
    };
    let mut variables = request.variables.clone();
    for definition in definitions {
        let given = variables
            .get(&definition.name)
            .cloned()
            .unwrap_or(Json::Null);
        let value = match (&given, &definition.default_value) {
            (Json::Null, Some(default)) => value_to_json(default, &Map::new()),
            _ => given,
        };
        if value.is_null() && matches!(definition.var_type, Type::NonNullType(_)) {
            return Err(GqlError::new(
                "INVALID_VARIABLE",
                format!(
                    "Variable ${} of type {} was provided invalid value",
                    definition.name, definition.var_type
                ),
            ));
        }
        variables.insert(definition.name.clone(), value);
    }
    Ok(Prepared {
        kind,
        selection,
        fragments,
        variables,
    })
}

fn choose_operation<'a>(
    operations: &[&'a OperationDefinition<'static, String>],
    name: Option<&str>,
) -> Result<&'a OperationDefinition<'static, String>, GqlError> {
    let named = |operation: &&OperationDefinition<'static, String>| {
        let operation_name = match operation {
            OperationDefinition::Query(query) => query.name.as_deref(),
            OperationDefinition::Mutation(mutation) => mutation.name.as_deref(),
            OperationDefinition::Subscription(subscription) => subscription.name.as_deref(),
            OperationDefinition::SelectionSet(_) => None,
        };
        operation_name == name
    };
    match (name, operations) {
        (None, [only]) => Ok(*only),
        (None, _) => Err(GqlError::new(
            "BAD_REQUEST",
            "An operation name is required when the document has several operations",
        )),
        (Some(wanted), _) => operations
            .iter()
            .copied()
            .find(|o| named(o))
            .ok_or_else(|| {
                GqlError::new("BAD_REQUEST", format!("No operation named \"{wanted}\""))
            }),
    }
}

/// A GraphQL value as JSON, with variables substituted (an unknown variable is null).
pub fn value_to_json(value: &GValue, variables: &Map<String, Json>) -> Json {
    match value {
        Value::Variable(name) => variables.get(name).cloned().unwrap_or(Json::Null),
        Value::Int(number) => json!(number.as_i64()),
        Value::Float(number) => json!(number),
        Value::String(text) => Json::String(text.clone()),
        Value::Boolean(flag) => Json::Bool(*flag),
        Value::Null => Json::Null,
        Value::Enum(name) => Json::String(name.clone()),
        Value::List(items) => Json::Array(
            items
                .iter()
                .map(|item| value_to_json(item, variables))
                .collect(),
        ),
        Value::Object(fields) => Json::Object(
            fields
                .iter()
                .map(|(key, item)| (key.clone(), value_to_json(item, variables)))
                .collect(),
        ),
    }
}

/// The value of one argument of a field; None when absent, Some(Null) when given as null.
pub fn argument(field: &GField, name: &str, variables: &Map<String, Json>) -> Option<Json> {
    let (_, value) = field.arguments.iter().find(|(key, _)| key == name)?;
    Some(value_to_json(value, variables))
}

/// The name a field's value is returned under.
pub fn response_key(field: &GField) -> &str {
    field.alias.as_deref().unwrap_or(&field.name)
}

/// Whether `@skip` / `@include` keep a selection; other directives are refused except
/// `@idempotent`, which belongs to mutation fields and is read there.
fn included(directives: &[GDirective], variables: &Map<String, Json>) -> Result<bool, GqlError> {
    let mut keep = true;
    for directive in directives {
        let condition = || {
            let (_, value) = directive.arguments.iter().find(|(key, _)| key == "if")?;
            value_to_json(value, variables).as_bool()
        };
        match directive.name.as_str() {
            "skip" => keep &= !condition().ok_or_else(|| bad_directive(&directive.name))?,
            "include" => keep &= condition().ok_or_else(|| bad_directive(&directive.name))?,
            "idempotent" => {}
            other => {
                return Err(GqlError::new(
                    "undefinedDirective",
                    format!("Directive '@{other}' is not defined"),
                ));
            }
        }
    }
    Ok(keep)
}

fn bad_directive(name: &str) -> GqlError {
    GqlError::new(
        "missingRequiredArguments",
        format!("Directive '@{name}' is missing required argument 'if' (a Boolean)"),
    )
}

/// The fields of a selection set that apply to `type_name`, through fragments.
pub fn collect_fields<'a>(
    selection: &'a Sel,
    type_name: &str,
    fragments: &Fragments<'a>,
    variables: &Map<String, Json>,
) -> Result<Vec<&'a GField>, GqlError> {
    let mut fields = Vec::new();
    collect_into(selection, type_name, fragments, variables, 0, &mut fields)?;
    Ok(fields)
}

fn collect_into<'a>(
    selection: &'a Sel,
    type_name: &str,
    fragments: &Fragments<'a>,
    variables: &Map<String, Json>,
    depth: usize,
    fields: &mut Vec<&'a GField>,
) -> Result<(), GqlError> {
    if depth > DEPTH_MAX {
        return Err(too_deep());
    }
    for item in &selection.items {
        let Some((nested, condition)) = fragment_of(item, fragments, variables)? else {
            if let Selection::Field(field) = item
                && included(&field.directives, variables)?
            {
                fields.push(field);
            }
            continue;
        };
        // On a concrete type, a fragment on another concrete type does not apply.
        if condition.is_none_or(|c| {
            c == type_name || (c == schema::NODE && schema::implements_node(type_name))
        }) {
            collect_into(nested, type_name, fragments, variables, depth + 1, fields)?;
        }
    }
    Ok(())
}

/// The selection and type condition of a fragment item, None for a field or a skipped fragment.
fn fragment_of<'a>(
    item: &'a Selection<'static, String>,
    fragments: &Fragments<'a>,
    variables: &Map<String, Json>,
) -> Result<Option<(&'a Sel, Option<&'a str>)>, GqlError> {
    match item {
        Selection::Field(_) => Ok(None),
        Selection::InlineFragment(fragment) => {
            if !included(&fragment.directives, variables)? {
                return Ok(None);
            }
            let condition = fragment.type_condition.as_ref().map(|condition| {
                let TypeCondition::On(name) = condition;
                name.as_str()
            });
            Ok(Some((&fragment.selection_set, condition)))
        }
        Selection::FragmentSpread(spread) => {
            if !included(&spread.directives, variables)? {
                return Ok(None);
            }
            let fragment = fragments
                .get(spread.fragment_name.as_str())
                .ok_or_else(|| {
                    GqlError::new(
                        "useAndDefineFragment",
                        format!(
                            "Fragment {} was used, but not defined",
                            spread.fragment_name
                        ),
                    )
                })?;
            let TypeCondition::On(name) = &fragment.type_condition;
            Ok(Some((&fragment.selection_set, Some(name.as_str()))))
        }
    }
}

fn too_deep() -> GqlError {
    GqlError::new("BAD_REQUEST", "Selections or fragments nest too deeply")
}

/// Validates a selection against the schema and returns its requested cost.
pub fn requested_cost(prepared: &Prepared<'_>) -> Result<u64, GqlError> {
    let walk = Walk {
        fragments: &prepared.fragments,
        variables: &prepared.variables,
    };
    let cost = walk.selection(prepared.selection, prepared.root_type(), 0)?;
    Ok(match prepared.kind {
        OperationKind::Query => cost,
        OperationKind::Mutation => MUTATION_COST,
    })
}

struct Walk<'w, 'a> {
    fragments: &'w Fragments<'a>,
    variables: &'w Map<String, Json>,
}

impl<'a> Walk<'_, 'a> {
    fn selection(
        &self,
        selection: &'a Sel,
        type_name: &str,
        depth: usize,
    ) -> Result<u64, GqlError> {
        if depth > DEPTH_MAX {
            return Err(too_deep());
        }
        let mut cost = 0;
        for item in &selection.items {
            cost += match fragment_of(item, self.fragments, self.variables)? {
                Some((nested, condition)) => {
                    let on = condition.unwrap_or(type_name);
                    if !schema::fragment_applies(on, type_name) {
                        return Err(GqlError::new(
                            "fragmentSpreadImpossible",
                            format!("Fragment on {on} can't be spread inside {type_name}"),
                        ));
                    }
                    self.selection(nested, on, depth + 1)?
                }
                None => match item {
                    Selection::Field(field) if included(&field.directives, self.variables)? => {
                        self.field(field, type_name, depth)?
                    }
                    _ => 0,
                },
            };
        }
        Ok(cost)
    }

    fn field(&self, field: &'a GField, type_name: &str, depth: usize) -> Result<u64, GqlError> {
        let definition = schema::field(type_name, &field.name).ok_or_else(|| {
            GqlError::new(
                "undefinedField",
                format!("Field '{}' doesn't exist on type '{type_name}'", field.name),
            )
        })?;
        check_arguments(field, definition.arguments)?;
        let has_selection = !field.selection_set.items.is_empty();
        if definition.kind == Kind::Scalar {
            if has_selection {
                return Err(GqlError::new(
                    "selectionMismatch",
                    format!(
                        "Selections can't be made on scalars (field '{}')",
                        field.name
                    ),
                ));
            }
            return Ok(0);
        }
        if !has_selection {
            return Err(GqlError::new(
                "selectionMismatch",
                format!(
                    "Field must have selections (field '{}' returns {})",
                    field.name, definition.type_name
                ),
            ));
        }
        let child = self.selection(&field.selection_set, definition.type_name, depth + 1)?;
        match definition.kind {
            Kind::Scalar => unreachable!("scalars returned above"),
            Kind::Wrapper => Ok(child),
            Kind::Object if field.name == "nodes" && type_name == schema::QUERY_ROOT => {
                Ok(node_ids(field, self.variables)?.len() as u64 * (1 + child))
            }
            Kind::Object => Ok(1 + child),
            Kind::Connection => Ok(2 + page_size(field, self.variables)? * child),
        }
    }
}

fn check_arguments(field: &GField, accepted: &[&str]) -> Result<(), GqlError> {
    match field
        .arguments
        .iter()
        .find(|(name, _)| !accepted.contains(&name.as_str()))
    {
        None => Ok(()),
        Some((name, _)) => Err(GqlError::new(
            "argumentNotAccepted",
            format!("Field '{}' doesn't accept argument '{name}'", field.name),
        )),
    }
}

/// The `first` of a connection: required (the sandbox does not page backwards), 1..=250.
pub fn page_size(field: &GField, variables: &Map<String, Json>) -> Result<u64, GqlError> {
    let has = |name| argument(field, name, variables).is_some_and(|value| !value.is_null());
    if has("last") || has("before") {
        return Err(GqlError::new(
            "BAD_REQUEST",
            "The sandbox pages forwards only: use first and after",
        ));
    }
    let first = argument(field, "first", variables).unwrap_or(Json::Null);
    let Some(first) = first.as_i64() else {
        return Err(GqlError::new(
            "BAD_REQUEST",
            "you must provide one of first or last",
        ));
    };
    if first < 0 || first as u64 > PAGE_SIZE_MAX {
        return Err(GqlError::over_limit(
            "MAX_PAGE_SIZE_EXCEEDED",
            format!("first must be between 0 and {PAGE_SIZE_MAX}, got {first}"),
        ));
    }
    Ok(first as u64)
}

/// The ids of `nodes(ids:)`: at most 250.
pub fn node_ids(field: &GField, variables: &Map<String, Json>) -> Result<Vec<String>, GqlError> {
    let ids = argument(field, "ids", variables).unwrap_or(Json::Null);
    let ids: Vec<String> = match ids {
        Json::Array(items) => items
            .iter()
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect(),
        _ => {
            return Err(GqlError::new(
                "missingRequiredArguments",
                "nodes needs ids: [ID!]!",
            ));
        }
    };
    if ids.len() > NODE_IDS_MAX {
        return Err(GqlError::over_limit(
            "MAX_INPUT_SIZE_EXCEEDED",
            format!(
                "The input array size of {} is greater than the maximum allowed of {NODE_IDS_MAX}.",
                ids.len()
            ),
        ));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost_of(query: &str, variables: Json) -> Result<u64, GqlError> {
        let request = GqlRequest {
            query: query.to_owned(),
            variables: variables.as_object().cloned().unwrap_or_default(),
            operation_name: None,
        };
        let document = parse_document(&request.query).unwrap();
        let prepared = prepare(&document, &request)?;
        requested_cost(&prepared)
    }

    #[test]
    fn connection_cost_is_first_times_node_plus_two() {
        let query = "query($n: Int!) { inventoryItems(first: $n) { edges { node { id sku \
                     inventoryLevels(first: 5) { nodes { quantities(names: [\"available\"]) { quantity } } } } } } }";
        // One level node: 1 + quantities 1 = 2; levels: 2 + 5 * 2 = 12; one item: 1 + 12 = 13.
        assert_eq!(cost_of(query, json!({"n": 10})), Ok(2 + 10 * 13));
    }

    #[test]
    fn fragments_count_like_fields() {
        let query =
            "query { inventoryItem(id: \"x\") { ...F } } fragment F on InventoryItem { id sku }";
        assert_eq!(cost_of(query, json!({})), Ok(1));
    }

    #[test]
    fn mutations_cost_ten() {
        let query = "mutation { inventorySetQuantities(input: {}) { userErrors { code } } }";
        assert_eq!(cost_of(query, json!({})), Ok(MUTATION_COST));
    }

    #[test]
    fn unknown_fields_and_oversized_pages_are_refused() {
        let unknown = cost_of("{ inventoryItem(id: \"x\") { colour } }", json!({}));
        assert_eq!(unknown.unwrap_err().code, "undefinedField");
        let big = cost_of("{ inventoryItems(first: 251) { nodes { id } } }", json!({}));
        assert!(big.unwrap_err().over_limit);
        let no_first = cost_of("{ inventoryItems { nodes { id } } }", json!({}));
        assert_eq!(no_first.unwrap_err().code, "BAD_REQUEST");
    }

    #[test]
    fn missing_required_variable_is_refused() {
        let result = cost_of(
            "query($n: Int!) { inventoryItems(first: $n) { nodes { id } } }",
            json!({}),
        );
        assert_eq!(result.unwrap_err().code, "INVALID_VARIABLE");
    }
}
