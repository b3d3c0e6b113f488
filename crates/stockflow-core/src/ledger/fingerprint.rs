//! Fingerprints: 16 bytes over a canonical encoding. They identify an event id and an event
//! body (deduplication forever) and a reserve request (idempotent retries).
//!
//! The encoding is written by hand, field by field, with every variant destructured in full: a
//! new field is a compile error here rather than a silent change of every stored fingerprint, and
//! the bytes do not depend on serde attributes chosen for the wire or for snapshots. Changing the
//! encoding makes stored fingerprints unequal to new ones, so it is versioned by its prefix.
//!
//! Event ids and reserve requests are fingerprinted with SHA-256: an id is the identity that
//! makes ingestion exactly-once, and a crafted collision would let one producer's event pass for
//! another's. An event body needs no such strength: its fingerprint is only compared with the
//! one remembered under the same id, to tell a retry from a reuse of the id with another body,
//! and a producer that reuses its own id can only confuse itself. Bodies are therefore hashed
//! with XXH3-128 ([`BodyFingerprints::Xxh3`]), about twenty times cheaper; ledgers whose
//! bodies were remembered with SHA-256 keep that scheme ([`BodyFingerprints::Sha256`]), so that
//! every stored fingerprint is compared with one computed the same way.

use crate::command::Reserve;
use crate::event::{Condition, Event, EventKind};
use crate::ids::EventId;
use crate::quantity::QuantityState;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use std::fmt;
use xxhash_rust::xxh3::xxh3_128;

/// 16 bytes of a SHA-256. Serialised as 32 hex digits, so that it can key a JSON map.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint(pub [u8; 16]);

/// Ordered as one big-endian number, which is the byte order, without a call to `memcmp`: the
/// deduplication map compares fingerprints a few dozen times per event.
impl Ord for Fingerprint {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        u128::from_be_bytes(self.0).cmp(&u128::from_be_bytes(other.0))
    }
}

/// Hashed as eight of its own bytes (not the first, which picks a shard of the event index):
/// SHA-256 output is already uniformly distributed.
impl std::hash::Hash for Fingerprint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.0[8..16]);
        state.write_u64(u64::from_le_bytes(bytes));
    }
}

impl PartialOrd for Fingerprint {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", hex::encode(self.0))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; 32];
        hex::encode_to_slice(self.0, &mut text).map_err(serde::ser::Error::custom)?;
        // Hex digits are ASCII.
        serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(&text, &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(Fingerprint(bytes))
    }
}

/// The key under which an event id is remembered. Hashing the id keeps the forever-growing
/// deduplication map at a fixed 32 bytes per event however long producers make their ids.
pub fn event_id_key(event_id: &EventId) -> Fingerprint {
    Fingerprinter::new().id_key(event_id)
}

/// The fingerprints of many events with one scratch buffer for all their encodings: an
/// allocation per fingerprint is a noticeable part of an event's cost.
pub struct Fingerprinter {
    bytes: Vec<u8>,
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprinter {
    pub fn new() -> Self {
        Self {
            bytes: Vec::with_capacity(256),
        }
    }

    /// [`event_id_key`].
    pub fn id_key(&mut self, event_id: &EventId) -> Fingerprint {
        let mut canonical = Canonical::new(&mut self.bytes, "event_id/1");
        canonical.text(event_id.as_str());
        canonical.finish()
    }

    /// [`body_fingerprint`].
    pub fn body(&mut self, scheme: BodyFingerprints, event: &Event) -> Fingerprint {
        match scheme {
            BodyFingerprints::Sha256 => event_canonical(&mut self.bytes, "event/1", event).finish(),
            BodyFingerprints::Xxh3 => {
                event_canonical(&mut self.bytes, "event/2", event).finish_xxh3()
            }
        }
    }
}

/// How a ledger fingerprints event bodies. A ledger keeps one scheme for life (it is part of its
/// snapshots), so that a remembered body is always compared with one computed the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFingerprints {
    /// [`event_fingerprint`]: SHA-256 of the `event/1` encoding. Ledgers snapshotted before the
    /// scheme was recorded used it.
    Sha256,
    /// XXH3-128 of the `event/2` encoding: new ledgers.
    #[default]
    Xxh3,
}

impl BodyFingerprints {
    /// The scheme of a snapshot that does not name one: it was written before schemes existed.
    pub fn unrecorded() -> Self {
        BodyFingerprints::Sha256
    }
}

/// The fingerprint of an event's whole body under `scheme`: same id with another fingerprint
/// is a conflict.
pub fn body_fingerprint(scheme: BodyFingerprints, event: &Event) -> Fingerprint {
    Fingerprinter::new().body(scheme, event)
}

/// The fingerprint of an event's whole body under [`BodyFingerprints::Sha256`].
pub fn event_fingerprint(event: &Event) -> Fingerprint {
    body_fingerprint(BodyFingerprints::Sha256, event)
}

fn event_canonical<'b>(bytes: &'b mut Vec<u8>, domain: &str, event: &Event) -> Canonical<'b> {
    let Event {
        event_id,
        source,
        seq,
        occurred_at,
        reason,
        reference,
        kind,
    } = event;
    let mut canonical = Canonical::new(bytes, domain);
    canonical.text(event_id.as_str());
    canonical.text(source.as_str());
    canonical.unsigned(*seq);
    canonical.optional_signed(occurred_at.map(|t| t.0));
    canonical.optional_text(reason.as_deref());
    canonical.optional_text(reference.as_deref());
    canonical.text(kind.type_name());
    encode_kind(&mut canonical, kind);
    canonical
}

fn encode_kind(canonical: &mut Canonical<'_>, kind: &EventKind) {
    match kind {
        EventKind::Received {
            sku,
            location,
            quantity,
            to,
        } => {
            canonical.text(sku.as_str());
            canonical.text(location.as_str());
            canonical.signed(*quantity);
            canonical.state(*to);
        }
        EventKind::Picked {
            sku,
            location,
            quantity,
            reservation_id,
        } => {
            canonical.text(sku.as_str());
            canonical.text(location.as_str());
            canonical.signed(*quantity);
            canonical.optional_text(reservation_id.as_ref().map(|id| id.as_str()));
        }
        EventKind::Returned {
            sku,
            location,
            quantity,
            condition,
        } => {
            canonical.text(sku.as_str());
            canonical.text(location.as_str());
            canonical.signed(*quantity);
            canonical.text(match condition {
                Condition::Sellable => "sellable",
                Condition::Damaged => "damaged",
                Condition::QualityControl => "quality_control",
            });
        }
        EventKind::Adjusted {
            sku,
            location,
            delta,
            expected_version,
        } => {
            canonical.text(sku.as_str());
            canonical.text(location.as_str());
            canonical.signed(*delta);
            canonical.optional_unsigned(*expected_version);
        }
        EventKind::Counted {
            sku,
            location,
            counted,
            expected_version,
        } => {
            canonical.text(sku.as_str());
            canonical.text(location.as_str());
            canonical.signed(*counted);
            canonical.optional_unsigned(*expected_version);
        }
        EventKind::Moved {
            sku,
            location,
            quantity,
            from,
            to,
        } => {
            canonical.text(sku.as_str());
            canonical.text(location.as_str());
            canonical.signed(*quantity);
            canonical.state(*from);
            canonical.state(*to);
        }
        EventKind::Transferred {
            sku,
            location,
            to_location,
            quantity,
        } => {
            canonical.text(sku.as_str());
            canonical.text(location.as_str());
            canonical.text(to_location.as_str());
            canonical.signed(*quantity);
        }
        EventKind::Cancelled {
            reservation_id,
            sku,
            quantity,
        } => {
            canonical.text(reservation_id.as_str());
            canonical.optional_text(sku.as_ref().map(|s| s.as_str()));
            canonical.optional_signed(*quantity);
        }
    }
}

/// The fingerprint of a reserve request: a retry with the same one answers the same reservation.
pub fn reserve_fingerprint(request: &Reserve) -> Fingerprint {
    let Reserve {
        reservation_id,
        channel,
        lines,
        ttl_seconds,
    } = request;
    let mut bytes = Vec::with_capacity(256);
    let mut canonical = Canonical::new(&mut bytes, "reserve/1");
    canonical.text(reservation_id.as_str());
    canonical.optional_text(channel.as_ref().map(|c| c.as_str()));
    canonical.unsigned(u64::from(*ttl_seconds));
    canonical.unsigned(lines.len() as u64);
    for line in lines {
        canonical.text(line.sku.as_str());
        canonical.optional_text(line.location.as_ref().map(|l| l.as_str()));
        canonical.signed(line.quantity);
    }
    canonical.finish()
}

/// Length-prefixed fields in a fixed order, so that no two different inputs encode alike.
struct Canonical<'b> {
    bytes: &'b mut Vec<u8>,
}

impl<'b> Canonical<'b> {
    /// Starts an encoding in `bytes` (cleared first).
    fn new(bytes: &'b mut Vec<u8>, domain: &str) -> Self {
        bytes.clear();
        let mut canonical = Canonical { bytes };
        canonical.text(domain);
        canonical
    }

    fn text(&mut self, text: &str) {
        self.bytes
            .extend_from_slice(&(text.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(text.as_bytes());
    }

    fn optional_text(&mut self, text: Option<&str>) {
        match text {
            None => self.bytes.push(0),
            Some(text) => {
                self.bytes.push(1);
                self.text(text);
            }
        }
    }

    fn signed(&mut self, value: i64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn optional_signed(&mut self, value: Option<i64>) {
        match value {
            None => self.bytes.push(0),
            Some(value) => {
                self.bytes.push(1);
                self.signed(value);
            }
        }
    }

    fn unsigned(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn optional_unsigned(&mut self, value: Option<u64>) {
        match value {
            None => self.bytes.push(0),
            Some(value) => {
                self.bytes.push(1);
                self.unsigned(value);
            }
        }
    }

    fn state(&mut self, state: QuantityState) {
        self.text(state.name());
    }

    fn finish(self) -> Fingerprint {
        let digest = Sha256::digest(&*self.bytes);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Fingerprint(bytes)
    }

    fn finish_xxh3(self) -> Fingerprint {
        Fingerprint(xxh3_128(self.bytes).to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{LocationId, Sku, SourceId};

    fn received(quantity: i64) -> Event {
        Event {
            event_id: EventId::parse("e-1").unwrap(),
            source: SourceId::parse("wms").unwrap(),
            seq: 1,
            occurred_at: None,
            reason: None,
            reference: None,
            kind: EventKind::Received {
                sku: Sku::parse("A").unwrap(),
                location: LocationId::parse("east").unwrap(),
                quantity,
                to: QuantityState::Available,
            },
        }
    }

    #[test]
    fn fingerprints_differ_with_the_body_and_agree_on_equal_bodies() {
        assert_eq!(
            event_fingerprint(&received(5)),
            event_fingerprint(&received(5))
        );
        assert_ne!(
            event_fingerprint(&received(5)),
            event_fingerprint(&received(6))
        );
        let mut with_reason = received(5);
        with_reason.reason = Some(String::new());
        assert_ne!(
            event_fingerprint(&received(5)),
            event_fingerprint(&with_reason)
        );
    }

    #[test]
    fn xxh3_body_fingerprints_tell_bodies_apart_like_sha256() {
        for scheme in [BodyFingerprints::Sha256, BodyFingerprints::Xxh3] {
            let five = body_fingerprint(scheme, &received(5));
            assert_eq!(five, body_fingerprint(scheme, &received(5)));
            assert_ne!(five, body_fingerprint(scheme, &received(6)));
        }
        assert_eq!(
            body_fingerprint(BodyFingerprints::Sha256, &received(5)),
            event_fingerprint(&received(5))
        );
        assert_ne!(
            body_fingerprint(BodyFingerprints::Sha256, &received(5)),
            body_fingerprint(BodyFingerprints::Xxh3, &received(5))
        );
    }

    /// A ledger keeps its scheme: an event remembered under SHA-256 (a snapshot from before
    /// schemes were recorded) is still a duplicate when repeated and a conflict when its id
    /// comes back with another body.
    #[test]
    fn a_ledger_without_a_recorded_scheme_goes_on_with_sha256() {
        use crate::envelope::{Envelope, Input};
        use crate::ids::TenantId;
        use crate::ledger::{Ledger, LedgerConfig};
        use crate::outcome::{EventStatus, Reply};
        let envelope = |position, quantity| Envelope {
            position,
            tenant: TenantId::default_tenant(),
            recorded_at: crate::time::Timestamp(position as i64),
            input: Input::Events(vec![received(quantity)]),
        };
        let mut old = Ledger::with_body_fingerprints(BodyFingerprints::Sha256);
        assert!(old.apply(&LedgerConfig::default(), &envelope(1, 5)).persist);
        let mut json: serde_json::Value = serde_json::to_value(&old).unwrap();
        assert_eq!(json["body_fingerprints"], "sha256");
        json.as_object_mut().unwrap().remove("body_fingerprints");
        let mut restored: Ledger = serde_json::from_value(json).unwrap();
        assert_eq!(restored, old);
        assert_eq!(restored.body_fingerprints(), BodyFingerprints::Sha256);
        assert_eq!(Ledger::new().body_fingerprints(), BodyFingerprints::Xxh3);
        let config = LedgerConfig::default();
        let repeat = restored.apply(&config, &envelope(2, 5));
        let Reply::Events(results) = repeat.reply else {
            panic!("{:?}", repeat.reply)
        };
        assert_eq!(results[0].status, EventStatus::Duplicate);
        let conflict = restored.apply(&config, &envelope(2, 6)).reply;
        assert!(
            matches!(&conflict, Reply::Rejected(r) if r.code() == "idempotency_conflict"),
            "{conflict:?}"
        );
    }

    #[test]
    fn orders_like_its_bytes() {
        let low = Fingerprint([0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let high = Fingerprint([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(low < high);
        assert_eq!(low.cmp(&high), low.0.cmp(&high.0));
    }

    #[test]
    fn serialises_as_hex_and_back() {
        let fingerprint = event_id_key(&EventId::parse("e-1").unwrap());
        let json = serde_json::to_string(&fingerprint).unwrap();
        assert_eq!(json.len(), 34);
        assert_eq!(
            serde_json::from_str::<Fingerprint>(&json).unwrap(),
            fingerprint
        );
    }
}
