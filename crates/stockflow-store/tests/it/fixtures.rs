//! Envelopes, audit entries and incidents built by hand, as the ledger would produce them.

use stockflow_core::availability::{Availability, ChannelConfig, ChannelKind, ChannelLocation};
use stockflow_core::command::{Command, LedgerCommand, ReservationLineRequest, Reserve};
use stockflow_core::envelope::{Envelope, Input, Position};
use stockflow_core::event::{Condition, Event, EventKind};
use stockflow_core::ids::{
    ActorId, ChannelId, EventId, LocationId, PolicyId, ReservationId, Sku, SourceId, TenantId,
};
use stockflow_core::ledger::{Ledger, TenantLedger};
use stockflow_core::outcome::{AuditChange, AuditEntry, Cause, Incident, IncidentKind};
use stockflow_core::quantity::{Quantities, QuantityState};
use stockflow_core::reservation::{Reservation, ReservationLine, ReservationState};
use stockflow_core::time::Timestamp;
use stockflow_store::BatchEntry;

pub fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

pub fn sku(name: &str) -> Sku {
    Sku::parse(name).unwrap()
}

pub fn location(name: &str) -> LocationId {
    LocationId::parse(name).unwrap()
}

pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000 + seconds)
}

pub fn event(id: &str, seq: u64, kind: EventKind) -> Event {
    Event {
        event_id: EventId::parse(id).unwrap(),
        source: SourceId::parse("wms-east").unwrap(),
        seq,
        occurred_at: Some(at(0)),
        reason: Some("test".to_owned()),
        reference: None,
        kind,
    }
}

/// One event of each of the eight types.
pub fn every_event_kind() -> Vec<Event> {
    let s = || sku("SKU-1");
    let l = || location("east");
    let r = || Some(ReservationId::parse("order-1").unwrap());
    let kinds = vec![
        EventKind::Received {
            sku: s(),
            location: l(),
            quantity: 5,
            to: QuantityState::Available,
        },
        EventKind::Picked {
            sku: s(),
            location: l(),
            quantity: 1,
            reservation_id: r(),
        },
        EventKind::Returned {
            sku: s(),
            location: l(),
            quantity: 1,
            condition: Condition::Damaged,
        },
        EventKind::Adjusted {
            sku: s(),
            location: l(),
            delta: -2,
            expected_version: Some(3),
        },
        EventKind::Counted {
            sku: s(),
            location: l(),
            counted: 7,
            expected_version: None,
        },
        EventKind::Moved {
            sku: s(),
            location: l(),
            quantity: 1,
            from: QuantityState::Available,
            to: QuantityState::QualityControl,
        },
        EventKind::Transferred {
            sku: s(),
            location: l(),
            to_location: location("west"),
            quantity: 2,
        },
        EventKind::Cancelled {
            reservation_id: r().unwrap(),
            sku: None,
            quantity: None,
        },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| event(&format!("e-{i}"), i as u64 + 1, kind))
        .collect()
}

pub fn reserve_command() -> Input {
    Input::Command {
        actor: ActorId::parse("shopify").unwrap(),
        command: Command::Ledger(LedgerCommand::Reserve(Reserve {
            reservation_id: ReservationId::parse("order-1").unwrap(),
            channel: Some(ChannelId::parse("shopify").unwrap()),
            lines: vec![ReservationLineRequest {
                sku: sku("SKU-1"),
                location: None,
                quantity: 2,
            }],
            ttl_seconds: 900,
        })),
    }
}

pub fn upsert_channel_command() -> Input {
    Input::Command {
        actor: ActorId::parse("operator").unwrap(),
        command: Command::Availability(
            stockflow_core::availability::AvailabilityCommand::UpsertChannel(channel_config()),
        ),
    }
}

pub fn channel_config() -> ChannelConfig {
    ChannelConfig {
        id: ChannelId::parse("shopify").unwrap(),
        kind: ChannelKind::Shopify,
        locations: vec![ChannelLocation {
            location: location("east"),
            priority: 1,
        }],
        per_location: true,
    }
}

pub fn envelope(position: Position, tenant_name: &str, input: Input) -> Envelope {
    Envelope {
        position,
        tenant: tenant(tenant_name),
        recorded_at: at(position as i64),
        input,
    }
}

pub fn quantities(on_hand: i64, version: u64) -> Quantities {
    Quantities {
        on_hand,
        version,
        ..Quantities::default()
    }
}

/// An audit entry of a received event: `sku` at `location` went from `before` to `after` units.
pub fn audit_quantities(
    position: Position,
    sku_name: &str,
    event_id: &str,
    before: i64,
    after: i64,
) -> AuditEntry {
    AuditEntry {
        at: at(position as i64),
        position,
        sku: sku(sku_name),
        location: Some(location("east")),
        channel: None,
        cause: Cause::Event {
            event_id: EventId::parse(event_id).unwrap(),
            source: SourceId::parse("wms-east").unwrap(),
            event_type: "received".to_owned(),
        },
        actor: "wms-east".to_owned(),
        reason: Some("receipt".to_owned()),
        change: AuditChange::Quantities {
            before: quantities(before, position - 1),
            after: quantities(after, position),
        },
    }
}

/// Audit entries of the other change kinds.
pub fn audit_other_changes(position: Position) -> Vec<AuditEntry> {
    let base = |change: AuditChange, cause: Cause, actor: &str| AuditEntry {
        at: at(position as i64),
        position,
        sku: sku("SKU-2"),
        location: None,
        channel: Some(ChannelId::parse("amazon").unwrap()),
        cause,
        actor: actor.to_owned(),
        reason: None,
        change,
    };
    vec![
        base(
            AuditChange::Buffer {
                policy: PolicyId::parse("viral-guard").unwrap(),
                strategy: "dynamic".to_owned(),
                before: 0,
                after: 3,
                explanation: "12.4x baseline velocity over 60 min -> 10%".to_owned(),
            },
            Cause::Time {
                what: "buffer decay".to_owned(),
            },
            "stockflow",
        ),
        base(
            AuditChange::AvailableToSell {
                before: 10,
                after: 7,
            },
            Cause::Command {
                name: "reserve".to_owned(),
                id: "order-9".to_owned(),
            },
            "shopify",
        ),
        base(
            AuditChange::Setting {
                detail: serde_json::json!({"channel": "amazon", "per_location": false}),
            },
            Cause::Command {
                name: "upsert_channel".to_owned(),
                id: "amazon".to_owned(),
            },
            "operator",
        ),
    ]
}

pub fn incident(position: Position, kind: IncidentKind, sku_name: &str) -> Incident {
    Incident {
        kind,
        at: at(position as i64),
        position,
        sku: Some(sku(sku_name)),
        location: Some(location("east")),
        channel: None,
        source: Some(SourceId::parse("wms-east").unwrap()),
        shortfall: 3,
        detail: "available went to -3".to_owned(),
        cause: Cause::Event {
            event_id: EventId::parse("e-1").unwrap(),
            source: SourceId::parse("wms-east").unwrap(),
            event_type: "picked".to_owned(),
        },
    }
}

/// A ledger with stock, a reservation and a channel: something worth snapshotting.
pub fn sample_ledger(on_hand: i64) -> Ledger {
    let mut tenant_ledger = TenantLedger::default();
    tenant_ledger
        .stock
        .entry(sku("SKU-1"))
        .or_default()
        .insert(location("east"), quantities(on_hand, 4));
    tenant_ledger.reservations.insert(
        ReservationId::parse("order-1").unwrap(),
        Reservation {
            reservation_id: ReservationId::parse("order-1").unwrap(),
            channel: Some(ChannelId::parse("shopify").unwrap()),
            state: ReservationState::Provisional,
            lines: vec![ReservationLine {
                sku: sku("SKU-1"),
                location: location("east"),
                quantity: 2,
                confirmed: 0,
                picked: 0,
                held: 2,
            }],
            created_at: at(1),
            expires_at: at(901),
            resolved_at: None,
            resolution_reason: None,
            request_fingerprint: [7; 16],
        },
    );
    tenant_ledger.availability = Availability::with_channels([channel_config()]);
    let mut ledger = Ledger::new();
    ledger.tenants.insert(tenant("default"), tenant_ledger);
    ledger
}

/// Owns what a [`BatchEntry`] borrows.
pub struct OwnedEntry {
    pub envelope: Envelope,
    pub audit: Vec<AuditEntry>,
    pub incidents: Vec<Incident>,
}

impl OwnedEntry {
    pub fn new(envelope: Envelope) -> Self {
        Self {
            envelope,
            audit: Vec::new(),
            incidents: Vec::new(),
        }
    }

    pub fn with_audit(mut self, audit: Vec<AuditEntry>) -> Self {
        self.audit = audit;
        self
    }

    pub fn with_incidents(mut self, incidents: Vec<Incident>) -> Self {
        self.incidents = incidents;
        self
    }

    pub fn borrow(&self) -> BatchEntry<'_> {
        BatchEntry {
            envelope: &self.envelope,
            audit: &self.audit,
            incidents: &self.incidents,
        }
    }
}

pub fn borrow_all(entries: &[OwnedEntry]) -> Vec<BatchEntry<'_>> {
    entries.iter().map(OwnedEntry::borrow).collect()
}
