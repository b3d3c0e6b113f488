//! A harness that numbers envelopes, keeps the journal of persisted ones, and renders state
//! compactly so that tests compare short strings.

use std::fmt::Write as _;
use stockflow_core::command::{Command, LedgerCommand, ReservationLineRequest, Reserve};
use stockflow_core::envelope::{Envelope, Input};
use stockflow_core::event::{Condition, Event, EventKind};
use stockflow_core::ids::{
    ActorId, ChannelId, EventId, LocationId, ReservationId, Sku, SourceId, TenantId,
};
use stockflow_core::ledger::{Ledger, LedgerConfig};
use stockflow_core::outcome::{Incident, Outcome, Rejection, Reply};
use stockflow_core::quantity::{Quantities, QuantityState};
use stockflow_core::reservation::Reservation;
use stockflow_core::time::Timestamp;

pub fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}
pub fn loc(s: &str) -> LocationId {
    LocationId::parse(s).unwrap()
}
pub fn rid(s: &str) -> ReservationId {
    ReservationId::parse(s).unwrap()
}

pub const START: Timestamp = Timestamp(1_800_000_000_000_000);

pub struct Harness {
    pub ledger: Ledger,
    pub config: LedgerConfig,
    pub tenant: TenantId,
    pub now: Timestamp,
    pub position: u64,
    /// The envelopes whose outcome asked to be persisted, in order.
    pub journal: Vec<Envelope>,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new(LedgerConfig::default())
    }
}

impl Harness {
    pub fn new(config: LedgerConfig) -> Self {
        Harness {
            ledger: Ledger::new(),
            config,
            tenant: TenantId::default_tenant(),
            now: START,
            position: 0,
            journal: Vec::new(),
        }
    }

    pub fn apply(&mut self, input: Input) -> Outcome {
        self.position += 1;
        let envelope = Envelope {
            position: self.position,
            tenant: self.tenant.clone(),
            recorded_at: self.now,
            input,
        };
        let outcome = self.ledger.apply(&self.config, &envelope);
        if outcome.persist {
            self.journal.push(envelope);
        }
        outcome
    }

    pub fn events(&mut self, events: Vec<Event>) -> Outcome {
        self.apply(Input::Events(events))
    }

    pub fn command(&mut self, command: LedgerCommand) -> Outcome {
        self.apply(Input::Command {
            actor: ActorId::parse("tester").unwrap(),
            command: Command::Ledger(command),
        })
    }

    pub fn tick(&mut self) -> Outcome {
        self.apply(Input::Tick)
    }

    pub fn advance_seconds(&mut self, seconds: i64) {
        self.now = self.now.plus_seconds(seconds);
    }

    /// Shorthand: events of source `wms`, numbered from the source's next `seq`.
    pub fn wms(&mut self, kinds: Vec<EventKind>) -> Outcome {
        let source = SourceId::parse("wms").unwrap();
        let first = self.ledger.source_last_seq(&self.tenant, &source) + 1;
        let events = kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| event("wms", first + i as u64, kind))
            .collect();
        self.events(events)
    }

    pub fn reserve(&mut self, id: &str, lines: &[(&str, Option<&str>, i64)], ttl: u32) -> Outcome {
        self.command(reserve(id, None, lines, ttl))
    }

    pub fn quantities(&self, s: &str, l: &str) -> Quantities {
        self.ledger
            .tenant(&self.tenant)
            .and_then(|t| t.stock.get(&sku(s)))
            .and_then(|stock| stock.get(&loc(l)))
            .copied()
            .unwrap_or_default()
    }

    pub fn reservation(&self, id: &str) -> Option<&Reservation> {
        self.ledger.reservation(&self.tenant, &rid(id))
    }

    /// Every SKU x location, one per line.
    pub fn render_stock(&self) -> String {
        let mut text = String::new();
        if let Some(tenant) = self.ledger.tenant(&self.tenant) {
            for (sku, stock) in &tenant.stock {
                for (location, q) in stock {
                    writeln!(text, "{sku}@{location} {}", render_quantities(q)).unwrap();
                }
            }
        }
        text
    }

    pub fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&self.ledger).unwrap()
    }
}

pub fn event(source: &str, seq: u64, kind: EventKind) -> Event {
    Event {
        event_id: EventId::parse(format!("{source}-{seq}")).unwrap(),
        source: SourceId::parse(source).unwrap(),
        seq,
        occurred_at: None,
        reason: None,
        reference: None,
        kind,
    }
}

pub fn reserve(
    id: &str,
    channel: Option<&str>,
    lines: &[(&str, Option<&str>, i64)],
    ttl: u32,
) -> LedgerCommand {
    LedgerCommand::Reserve(Reserve {
        reservation_id: rid(id),
        channel: channel.map(|c| ChannelId::parse(c).unwrap()),
        lines: line_requests(lines),
        ttl_seconds: ttl,
    })
}

pub fn line_requests(lines: &[(&str, Option<&str>, i64)]) -> Vec<ReservationLineRequest> {
    lines
        .iter()
        .map(|&(s, l, quantity)| ReservationLineRequest {
            sku: sku(s),
            location: l.map(loc),
            quantity,
        })
        .collect()
}

pub fn confirm(id: &str, lines: Option<&[(&str, Option<&str>, i64)]>) -> LedgerCommand {
    LedgerCommand::Confirm {
        reservation_id: rid(id),
        lines: lines.map(line_requests),
    }
}

pub fn release(id: &str) -> LedgerCommand {
    LedgerCommand::Release {
        reservation_id: rid(id),
        reason: None,
    }
}

pub fn received(s: &str, l: &str, quantity: i64) -> EventKind {
    EventKind::Received {
        sku: sku(s),
        location: loc(l),
        quantity,
        to: QuantityState::Available,
    }
}

pub fn picked(s: &str, l: &str, quantity: i64, reservation: Option<&str>) -> EventKind {
    EventKind::Picked {
        sku: sku(s),
        location: loc(l),
        quantity,
        reservation_id: reservation.map(rid),
    }
}

pub fn returned(s: &str, l: &str, quantity: i64, condition: Condition) -> EventKind {
    EventKind::Returned {
        sku: sku(s),
        location: loc(l),
        quantity,
        condition,
    }
}

pub fn adjusted(s: &str, l: &str, delta: i64, expected_version: Option<u64>) -> EventKind {
    EventKind::Adjusted {
        sku: sku(s),
        location: loc(l),
        delta,
        expected_version,
    }
}

pub fn counted(s: &str, l: &str, counted: i64, expected_version: Option<u64>) -> EventKind {
    EventKind::Counted {
        sku: sku(s),
        location: loc(l),
        counted,
        expected_version,
    }
}

pub fn moved(s: &str, l: &str, quantity: i64, from: QuantityState, to: QuantityState) -> EventKind {
    EventKind::Moved {
        sku: sku(s),
        location: loc(l),
        quantity,
        from,
        to,
    }
}

pub fn transferred(s: &str, from: &str, to: &str, quantity: i64) -> EventKind {
    EventKind::Transferred {
        sku: sku(s),
        location: loc(from),
        to_location: loc(to),
        quantity,
    }
}

pub fn cancelled(reservation: &str, s: Option<&str>, quantity: Option<i64>) -> EventKind {
    EventKind::Cancelled {
        reservation_id: rid(reservation),
        sku: s.map(sku),
        quantity,
    }
}

/// The non-zero states and the version: `on_hand=10 available=6 reserved=4 v3`.
pub fn render_quantities(q: &Quantities) -> String {
    let mut text = format!("on_hand={}", q.on_hand);
    for state in QuantityState::ALL {
        let value = q.get(state);
        if value != 0 {
            write!(text, " {}={value}", state.name()).unwrap();
        }
    }
    write!(text, " v{}", q.version).unwrap();
    text
}

/// The reply: a status per event, the reservation, a rejection code, or `done`.
pub fn render_reply(reply: &Reply) -> String {
    match reply {
        Reply::Done => "done".to_owned(),
        Reply::Events(results) => results
            .iter()
            .map(|r| format!("{:?}", r.status).to_lowercase())
            .collect::<Vec<_>>()
            .join(","),
        Reply::Reservation {
            reservation,
            created,
        } => format!(
            "{}{}",
            render_reservation(reservation),
            if *created { " (created)" } else { "" }
        ),
        Reply::Rejected(Rejection::InsufficientStock { shortfalls }) => {
            let shortfalls: Vec<String> = shortfalls
                .iter()
                .map(|s| {
                    let place = s
                        .location
                        .as_ref()
                        .map_or(String::new(), |l| format!("@{l}"));
                    format!("{}{place} {}>{}", s.sku, s.requested, s.available)
                })
                .collect();
            format!("rejected insufficient_stock {}", shortfalls.join("; "))
        }
        Reply::Rejected(rejection) => format!("rejected {}", rejection.code()),
    }
}

/// `r1 provisional [A@east 3/c0/p0/h3]`: per line quantity, confirmed, picked, held.
pub fn render_reservation(reservation: &Reservation) -> String {
    let lines: Vec<String> = reservation
        .lines
        .iter()
        .map(|l| {
            format!(
                "{}@{} {}/c{}/p{}/h{}",
                l.sku, l.location, l.quantity, l.confirmed, l.picked, l.held
            )
        })
        .collect();
    format!(
        "{} {} [{}]",
        reservation.reservation_id,
        reservation.state.name(),
        lines.join(" ")
    )
}

/// `negative_available A@east 2`.
pub fn render_incident(incident: &Incident) -> String {
    let kind = serde_json::to_value(incident.kind).unwrap();
    let place = match (&incident.sku, &incident.location) {
        (Some(s), Some(l)) => format!(" {s}@{l}"),
        (Some(s), None) => format!(" {s}"),
        _ => String::new(),
    };
    format!("{}{place} {}", kind.as_str().unwrap(), incident.shortfall)
}

pub fn render_incidents(outcome: &Outcome) -> String {
    outcome
        .incidents
        .iter()
        .map(render_incident)
        .collect::<Vec<_>>()
        .join("; ")
}
