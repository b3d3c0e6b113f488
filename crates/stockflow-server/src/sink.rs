//! The engine's effect sink: after each commit, availability changes go to the channel sync
//! (which coalesces them and never blocks) and effects are counted. Runs on the writer's thread,
//! so everything here is a counter increment or a non-blocking hand-off.

use std::sync::Arc;
use stockflow_channels::SyncEngine;
use stockflow_core::outcome::IncidentKind;
use stockflow_engine::{EffectSink, Effects};

pub const AVAILABILITY_CHANGES_TOTAL: &str = "stockflow_availability_changes_total";
pub const BUFFER_CHANGES_TOTAL: &str = "stockflow_buffer_changes_total";
pub const AUDIT_ENTRIES_TOTAL: &str = "stockflow_audit_entries_total";
pub const OVERSELL_INCIDENTS_TOTAL: &str = "stockflow_oversell_incidents_total";

pub fn describe_metrics() {
    metrics::describe_counter!(
        AVAILABILITY_CHANGES_TOTAL,
        "Changes of what a channel may sell, handed to the channel sync."
    );
    metrics::describe_counter!(
        BUFFER_CHANGES_TOTAL,
        "Buffers of SKU x channel by change: applied, grown, decayed, released. Buffer release \
         frequency is the rate of decayed + released."
    );
    metrics::describe_counter!(AUDIT_ENTRIES_TOTAL, "Audit entries written.");
    metrics::describe_counter!(
        OVERSELL_INCIDENTS_TOTAL,
        "Channel orders that could not be reserved: units sold that did not exist."
    );
}

pub struct ServerSink {
    pub sync: Option<Arc<SyncEngine>>,
    /// Holds back the changes of channels in their first full sync.
    pub full_syncs: Arc<crate::syncstate::FullSyncs>,
    pub live: Arc<crate::app::Live>,
    pub kpis: Arc<crate::kpis::Kpis>,
    pub alerts: Arc<crate::alerts::Alerts>,
}

impl EffectSink for ServerSink {
    fn committed(&self, effects: &[Effects<'_>]) {
        let mut availability = 0u64;
        for effect in effects {
            availability += effect.availability.len() as u64;
            if let Some(sync) = &self.sync
                && !effect.availability.is_empty()
            {
                match self.full_syncs.filter(effect.availability) {
                    None => sync.offer(effect.availability),
                    Some(rest) => sync.offer(&rest),
                }
            }
            let changes = effect.buffer_changes;
            for (kind, count) in [
                ("applied", changes.applied),
                ("grown", changes.grown),
                ("decayed", changes.decayed),
                ("released", changes.released),
            ] {
                if count > 0 {
                    metrics::counter!(BUFFER_CHANGES_TOTAL, "change" => kind).increment(count);
                }
            }
            metrics::counter!(AUDIT_ENTRIES_TOTAL).increment(effect.audit_entries as u64);
            let oversells = effect
                .incidents
                .iter()
                .filter(|incident| incident.kind == IncidentKind::Oversell)
                .count();
            if oversells > 0 {
                metrics::counter!(OVERSELL_INCIDENTS_TOTAL).increment(oversells as u64);
            }
            self.live.touched(effect.tenant, effect.touched_skus);
        }
        if availability > 0 {
            metrics::counter!(AVAILABILITY_CHANGES_TOTAL).increment(availability);
        }
        self.kpis.committed(effects);
        self.alerts.committed(effects);
    }
}
