//! Audit entries and incidents as JSON.

use super::format_time;
use crate::wire::skus::QuantitiesOut;
use serde::Serialize;
use serde_json::{Value, json};
use stockflow_core::outcome::{AuditChange, Incident};
use stockflow_store::{AuditRecord, IncidentRecord};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryOut {
    /// Increasing in journal order; pass the last one as `after` for the next page.
    pub id: u64,
    pub at: String,
    /// The journal position of the input that caused it.
    pub position: u64,
    pub sku: String,
    pub location: Option<String>,
    pub channel: Option<String>,
    /// The event (event_id, source, type), command (name, id) or time that caused the change.
    #[schema(value_type = Object)]
    pub cause: Value,
    pub actor: String,
    pub reason: Option<String>,
    /// quantities (before/after), buffer (policy, before/after units, explanation),
    /// available_to_sell (before/after) or setting.
    #[schema(value_type = Object)]
    pub change: Value,
}

impl AuditEntryOut {
    pub fn from_record(record: &AuditRecord) -> Self {
        let entry = &record.entry;
        Self {
            id: record.id,
            at: format_time(entry.at),
            position: entry.position,
            sku: entry.sku.to_string(),
            location: entry.location.as_ref().map(ToString::to_string),
            channel: entry.channel.as_ref().map(ToString::to_string),
            cause: serde_json::to_value(&entry.cause).unwrap_or(Value::Null),
            actor: entry.actor.clone(),
            reason: entry.reason.clone(),
            change: change_json(&entry.change),
        }
    }
}

fn change_json(change: &AuditChange) -> Value {
    match change {
        AuditChange::Quantities { before, after } => json!({
            "kind": "quantities",
            "before": QuantitiesOut::of(before),
            "after": QuantitiesOut::of(after),
            "version_before": before.version,
            "version_after": after.version,
        }),
        other => serde_json::to_value(other).unwrap_or(Value::Null),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageOut {
    pub entries: Vec<AuditEntryOut>,
    /// Pass as `after` for the next page; absent when this page was not full.
    pub next_after: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentOut {
    pub id: u64,
    pub kind: String,
    pub at: String,
    pub position: u64,
    pub sku: Option<String>,
    pub location: Option<String>,
    pub channel: Option<String>,
    pub source: Option<String>,
    pub shortfall: i64,
    pub detail: String,
    #[schema(value_type = Object)]
    pub cause: Value,
}

impl IncidentOut {
    pub fn from_record(record: &IncidentRecord) -> Self {
        let incident: &Incident = &record.incident;
        Self {
            id: record.id,
            kind: serde_json::to_value(incident.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            at: format_time(incident.at),
            position: incident.position,
            sku: incident.sku.as_ref().map(ToString::to_string),
            location: incident.location.as_ref().map(ToString::to_string),
            channel: incident.channel.as_ref().map(ToString::to_string),
            source: incident.source.as_ref().map(ToString::to_string),
            shortfall: incident.shortfall,
            detail: incident.detail.clone(),
            cause: serde_json::to_value(&incident.cause).unwrap_or(Value::Null),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentPageOut {
    pub incidents: Vec<IncidentOut>,
    pub next_after: Option<u64>,
}
