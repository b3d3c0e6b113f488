//! Incidents to and from rows, and the audit rows of schema version 1 (one row per entry, JSON
//! quantities), which the migration to version 2 reads. Quantity changes (nearly every audit row)
//! take a direct path; the rarer buffer, setting and ATS changes go through serde's generic form.
//! Writing version 1 rows is kept for the migration's tests.

use crate::error::StoreError;
use serde_json::{Map, Value};
use stockflow_core::ids::{ChannelId, EventId, IdError, LocationId, Sku, SourceId};
use stockflow_core::outcome::{AuditChange, AuditEntry, Cause, Incident, IncidentKind};
use stockflow_core::quantity::Quantities;
use stockflow_core::time::Timestamp;

/// The columns of the audit table describing the cause.
#[cfg(test)]
pub struct CauseColumns<'a> {
    pub kind: &'static str,
    pub id: Option<&'a str>,
    /// The event type, the command name, or what time did.
    pub name: &'a str,
    pub source: Option<&'a str>,
}

#[cfg(test)]
/// The cause's columns; the source of an event is left NULL when it is `actor` (as it always is
/// for events today), which saves repeating it in every row.
pub fn cause_columns<'a>(cause: &'a Cause, actor: &str) -> CauseColumns<'a> {
    match cause {
        Cause::Event {
            event_id,
            source,
            event_type,
        } => CauseColumns {
            kind: "event",
            id: Some(event_id.as_str()),
            name: event_type,
            source: (source.as_str() != actor).then_some(source.as_str()),
        },
        Cause::Command { name, id } => CauseColumns {
            kind: "command",
            id: Some(id),
            name,
            source: None,
        },
        Cause::Time { what } => CauseColumns {
            kind: "time",
            id: None,
            name: what,
            source: None,
        },
    }
}

/// `source` is the cause_source column, NULL when the source is the actor (`actor`).
pub fn cause_from_columns(
    kind: &str,
    id: Option<String>,
    name: Option<String>,
    source: Option<String>,
    actor: &str,
) -> Result<Cause, StoreError> {
    let name = name.unwrap_or_default();
    match kind {
        "event" => Ok(Cause::Event {
            event_id: EventId::parse(id.unwrap_or_default()).map_err(id_error)?,
            source: SourceId::parse(source.unwrap_or_else(|| actor.to_owned()))
                .map_err(id_error)?,
            event_type: name,
        }),
        "command" => Ok(Cause::Command {
            name,
            id: id.unwrap_or_default(),
        }),
        "time" => Ok(Cause::Time { what: name }),
        other => Err(corrupt(format!("unknown cause kind {other:?}"))),
    }
}

/// The change_kind, before, after and detail columns of an audit row.
#[cfg(test)]
pub struct ChangeColumns {
    pub kind: std::borrow::Cow<'static, str>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub detail: Option<String>,
}

#[cfg(test)]
pub fn change_columns(change: &AuditChange) -> Result<ChangeColumns, StoreError> {
    if let AuditChange::Quantities { before, after } = change {
        return Ok(ChangeColumns {
            kind: "quantities".into(),
            before: Some(quantities_json(before)),
            after: Some(quantities_json(after)),
            detail: None,
        });
    }
    // Generic form: serde's tagged object, with `before` and `after` lifted into their columns.
    let Value::Object(mut object) = serde_json::to_value(change).map_err(encode_error)? else {
        return Err(encode_error("an audit change is not a JSON object"));
    };
    let kind = match object.remove("kind") {
        Some(Value::String(kind)) => kind,
        _ => return Err(encode_error("an audit change has no kind")),
    };
    let before = object.remove("before").map(|v| v.to_string());
    let after = object.remove("after").map(|v| v.to_string());
    let detail = (!object.is_empty()).then(|| Value::Object(object).to_string());
    Ok(ChangeColumns {
        kind: kind.into(),
        before,
        after,
        detail,
    })
}

pub fn change_from_columns(
    kind: &str,
    before: Option<&str>,
    after: Option<&str>,
    detail: Option<&str>,
) -> Result<AuditChange, StoreError> {
    if kind == "quantities" {
        return Ok(AuditChange::Quantities {
            before: quantities_from_json(before)?,
            after: quantities_from_json(after)?,
        });
    }
    let mut object = match detail {
        Some(text) => match serde_json::from_str(text).map_err(decode_error)? {
            Value::Object(object) => object,
            _ => return Err(corrupt("audit detail is not a JSON object")),
        },
        None => Map::new(),
    };
    object.insert("kind".to_owned(), Value::String(kind.to_owned()));
    for (name, text) in [("before", before), ("after", after)] {
        if let Some(text) = text {
            object.insert(
                name.to_owned(),
                serde_json::from_str(text).map_err(decode_error)?,
            );
        }
    }
    serde_json::from_value(Value::Object(object)).map_err(decode_error)
}

/// Reads one version 1 audit row (columns in the order of `migrate_v1::AUDIT_V1_COLUMNS`).
pub fn audit_from_row(row: &rusqlite::Row<'_>) -> Result<(u64, String, AuditEntry), StoreError> {
    let get = |e: rusqlite::Error| StoreError::backend("reading an audit row", e);
    let id: i64 = row.get(0).map_err(get)?;
    let tenant: String = row.get(1).map_err(get)?;
    let position: i64 = row.get(2).map_err(get)?;
    let at: i64 = row.get(3).map_err(get)?;
    let sku: String = row.get(4).map_err(get)?;
    let location: Option<String> = row.get(5).map_err(get)?;
    let channel: Option<String> = row.get(6).map_err(get)?;
    let cause_kind: String = row.get(7).map_err(get)?;
    let actor: String = row.get(11).map_err(get)?;
    let cause = cause_from_columns(
        &cause_kind,
        row.get(8).map_err(get)?,
        row.get(9).map_err(get)?,
        row.get(10).map_err(get)?,
        &actor,
    )?;
    let change_kind: String = row.get(13).map_err(get)?;
    let before: Option<String> = row.get(14).map_err(get)?;
    let after: Option<String> = row.get(15).map_err(get)?;
    let detail: Option<String> = row.get(16).map_err(get)?;
    let entry = AuditEntry {
        at: Timestamp(at),
        position: position as u64,
        sku: Sku::parse(sku).map_err(id_error)?,
        location: location
            .map(LocationId::parse)
            .transpose()
            .map_err(id_error)?,
        channel: channel
            .map(ChannelId::parse)
            .transpose()
            .map_err(id_error)?,
        cause,
        actor,
        reason: row.get(12).map_err(get)?,
        change: change_from_columns(
            &change_kind,
            before.as_deref(),
            after.as_deref(),
            detail.as_deref(),
        )?,
    };
    Ok((id as u64, tenant, entry))
}

#[cfg(test)]
/// The states of `quantities` that are not zero, and its version, as a JSON object: short for
/// the ~200,000 rows a second of a busy writer, and still plain JSON for SQL readers.
pub fn quantities_json(quantities: &Quantities) -> String {
    // Written by hand with itoa: `write!` costs about ten times as much, twice per audit row.
    let fields = [
        ("\"on_hand\":", quantities.on_hand),
        ("\"reserved\":", quantities.reserved),
        ("\"committed\":", quantities.committed),
        ("\"damaged\":", quantities.damaged),
        ("\"quality_control\":", quantities.quality_control),
        ("\"safety_stock\":", quantities.safety_stock),
        ("\"incoming\":", quantities.incoming),
    ];
    let mut digits = itoa::Buffer::new();
    let mut json = String::with_capacity(64);
    json.push('{');
    for (name, value) in fields.iter().filter(|(_, value)| *value != 0) {
        json.push_str(name);
        json.push_str(digits.format(*value));
        json.push(',');
    }
    json.push_str("\"version\":");
    json.push_str(digits.format(quantities.version));
    json.push('}');
    json
}

fn quantities_from_json(text: Option<&str>) -> Result<Quantities, StoreError> {
    let Some(text) = text else {
        return Err(corrupt("quantities without a value"));
    };
    let object: Map<String, Value> = serde_json::from_str(text).map_err(decode_error)?;
    let field = |name: &str| object.get(name).and_then(Value::as_i64).unwrap_or(0);
    Ok(Quantities {
        on_hand: field("on_hand"),
        reserved: field("reserved"),
        committed: field("committed"),
        damaged: field("damaged"),
        quality_control: field("quality_control"),
        safety_stock: field("safety_stock"),
        incoming: field("incoming"),
        version: object
            .get("version")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt("quantities without a version"))?,
    })
}

pub fn incident_kind_name(kind: IncidentKind) -> Result<String, StoreError> {
    match serde_json::to_value(kind).map_err(encode_error)? {
        Value::String(name) => Ok(name),
        _ => Err(encode_error("an incident kind is not a string")),
    }
}

/// Reads one incident row (columns in the order of `INCIDENT_COLUMNS`).
pub fn incident_from_row(row: &rusqlite::Row<'_>) -> Result<(u64, String, Incident), StoreError> {
    let get = |e: rusqlite::Error| StoreError::backend("reading an incident row", e);
    let id: i64 = row.get(0).map_err(get)?;
    let tenant: String = row.get(1).map_err(get)?;
    let position: i64 = row.get(2).map_err(get)?;
    let at: i64 = row.get(3).map_err(get)?;
    let kind: String = row.get(4).map_err(get)?;
    let sku: Option<String> = row.get(5).map_err(get)?;
    let location: Option<String> = row.get(6).map_err(get)?;
    let channel: Option<String> = row.get(7).map_err(get)?;
    let source: Option<String> = row.get(8).map_err(get)?;
    let cause: String = row.get(11).map_err(get)?;
    let incident = Incident {
        kind: serde_json::from_value(Value::String(kind)).map_err(decode_error)?,
        at: Timestamp(at),
        position: position as u64,
        sku: sku.map(Sku::parse).transpose().map_err(id_error)?,
        location: location
            .map(LocationId::parse)
            .transpose()
            .map_err(id_error)?,
        channel: channel
            .map(ChannelId::parse)
            .transpose()
            .map_err(id_error)?,
        source: source.map(SourceId::parse).transpose().map_err(id_error)?,
        shortfall: row.get(9).map_err(get)?,
        detail: row.get(10).map_err(get)?,
        cause: serde_json::from_str(&cause).map_err(decode_error)?,
    };
    Ok((id as u64, tenant, incident))
}

pub fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(encode_error)
}

fn encode_error(source: impl Into<crate::error::BoxError>) -> StoreError {
    StoreError::Codec {
        direction: "encode",
        what: "an audit or incident row",
        source: source.into(),
    }
}

fn decode_error(source: impl Into<crate::error::BoxError>) -> StoreError {
    StoreError::Codec {
        direction: "decode",
        what: "an audit or incident row",
        source: source.into(),
    }
}

fn id_error(error: IdError) -> StoreError {
    decode_error(error)
}

fn corrupt(detail: impl Into<String>) -> StoreError {
    decode_error(detail.into())
}
