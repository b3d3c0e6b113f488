//! Audit chunks: up to [`CHUNK_ENTRIES_MAX`] consecutive audit entries of one envelope in one
//! row, and the keys of the SKU index beside them.
//!
//! A chunk's blob is a format byte, the entry count, one little-endian `u32` offset per entry
//! (so that a query by SKU decodes only the entry it found), then the entries. An entry holds its
//! `at` and `position` as differences from the chunk's (nearly always 0), its SKU, location and
//! channel, its actor, its cause (an event's source only when it is not the actor), its reason
//! and its change: quantities as a bit mask of the states that are not zero, those states and the
//! version; the rarer changes field by field, a setting's detail as JSON text.

use crate::binary::{Reader, Writer};
use crate::error::StoreError;
use stockflow_core::envelope::Position;
use stockflow_core::ids::{ChannelId, EventId, LocationId, PolicyId, Sku, SourceId, TenantId};
use stockflow_core::outcome::{AuditChange, AuditEntry, Cause};
use stockflow_core::quantity::Quantities;
use stockflow_core::time::Timestamp;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The most entries in one chunk: small enough that the row of one entry found by SKU is read
/// and skipped through cheaply, large enough that the per-row cost of SQLite is spread thin.
pub const CHUNK_ENTRIES_MAX: usize = 64;

const FORMAT: u8 = 1;
const WHAT: &str = "an audit chunk";

const CAUSE_EVENT: u8 = 0;
const CAUSE_COMMAND: u8 = 1;
const CAUSE_TIME: u8 = 2;

const CHANGE_QUANTITIES: u8 = 0;
const CHANGE_BUFFER: u8 = 1;
const CHANGE_AVAILABLE_TO_SELL: u8 = 2;
const CHANGE_SETTING: u8 = 3;

/// What every entry of a chunk shares: the envelope's tenant, position and time.
#[derive(Debug, Clone, Copy)]
pub struct ChunkHead {
    pub position: Position,
    pub at: Timestamp,
}

/// The seed of a tenant's SKU index keys.
pub fn tenant_seed(tenant: &TenantId) -> u64 {
    xxh3_64_with_seed(tenant.as_str().as_bytes(), 0x5354_4f43_4b46_4c57)
}

/// The SKU index key of `sku` in the tenant of `seed` ([`tenant_seed`]): 64 bits of XXH3. Two
/// SKUs may share a key; a query checks the entries it finds, so a collision costs a row read,
/// never a wrong answer. Stored, so never to be changed without rebuilding the index.
pub fn sku_key(seed: u64, sku: &Sku) -> i64 {
    xxh3_64_with_seed(sku.as_str().as_bytes(), seed) as i64
}

/// Appends the blob of `entries` to `buffer` (cleared first).
pub fn encode(
    buffer: &mut Vec<u8>,
    head: ChunkHead,
    entries: &[AuditEntry],
) -> Result<(), StoreError> {
    debug_assert!(entries.len() <= CHUNK_ENTRIES_MAX);
    buffer.clear();
    buffer.push(FORMAT);
    Writer { bytes: buffer }.unsigned(entries.len() as u64);
    let offsets_at = buffer.len();
    buffer.resize(offsets_at + 4 * entries.len(), 0);
    let entries_at = buffer.len();
    for (index, entry) in entries.iter().enumerate() {
        let offset = u32::try_from(buffer.len() - entries_at).map_err(|_| StoreError::Codec {
            direction: "encode",
            what: WHAT,
            source: "a chunk over 4 GiB".into(),
        })?;
        let slot = offsets_at + 4 * index;
        buffer[slot..slot + 4].copy_from_slice(&offset.to_le_bytes());
        encode_entry(&mut Writer { bytes: buffer }, head, entry)?;
    }
    Ok(())
}

fn encode_entry(
    writer: &mut Writer<'_>,
    head: ChunkHead,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    let AuditEntry {
        at,
        position,
        sku,
        location,
        channel,
        cause,
        actor,
        reason,
        change,
    } = entry;
    writer.signed(at.0.wrapping_sub(head.at.0));
    writer.signed((*position as i64).wrapping_sub(head.position as i64));
    writer.text(sku.as_str());
    writer.optional_text(location.as_ref().map(|l| l.as_str()));
    writer.optional_text(channel.as_ref().map(|c| c.as_str()));
    writer.text(actor);
    encode_cause(writer, cause, actor);
    writer.optional_text(reason.as_deref());
    encode_change(writer, change)
}

fn encode_cause(writer: &mut Writer<'_>, cause: &Cause, actor: &str) {
    match cause {
        Cause::Event {
            event_id,
            source,
            event_type,
        } => {
            writer.byte(CAUSE_EVENT);
            writer.text(event_id.as_str());
            // The source of an event is its actor: left out then.
            writer.optional_text((source.as_str() != actor).then_some(source.as_str()));
            writer.text(event_type);
        }
        Cause::Command { name, id } => {
            writer.byte(CAUSE_COMMAND);
            writer.text(name);
            writer.text(id);
        }
        Cause::Time { what } => {
            writer.byte(CAUSE_TIME);
            writer.text(what);
        }
    }
}

fn encode_change(writer: &mut Writer<'_>, change: &AuditChange) -> Result<(), StoreError> {
    match change {
        AuditChange::Quantities { before, after } => {
            writer.byte(CHANGE_QUANTITIES);
            encode_quantities(writer, before);
            encode_quantities(writer, after);
        }
        AuditChange::Buffer {
            policy,
            strategy,
            before,
            after,
            explanation,
        } => {
            writer.byte(CHANGE_BUFFER);
            writer.text(policy.as_str());
            writer.text(strategy);
            writer.signed(*before);
            writer.signed(*after);
            writer.text(explanation);
        }
        AuditChange::AvailableToSell { before, after } => {
            writer.byte(CHANGE_AVAILABLE_TO_SELL);
            writer.signed(*before);
            writer.signed(*after);
        }
        AuditChange::Setting { detail } => {
            writer.byte(CHANGE_SETTING);
            let json = serde_json::to_string(detail).map_err(|e| StoreError::Codec {
                direction: "encode",
                what: WHAT,
                source: e.into(),
            })?;
            writer.text(&json);
        }
    }
    Ok(())
}

fn quantity_fields(q: &Quantities) -> [i64; 7] {
    [
        q.on_hand,
        q.reserved,
        q.committed,
        q.damaged,
        q.quality_control,
        q.safety_stock,
        q.incoming,
    ]
}

fn encode_quantities(writer: &mut Writer<'_>, quantities: &Quantities) {
    let fields = quantity_fields(quantities);
    let mask = fields
        .iter()
        .enumerate()
        .filter(|(_, value)| **value != 0)
        .fold(0_u8, |mask, (index, _)| mask | 1 << index);
    writer.byte(mask);
    for value in fields.into_iter().filter(|value| *value != 0) {
        writer.signed(value);
    }
    writer.unsigned(quantities.version);
}

/// A chunk's blob, for reading entries by index.
pub struct Chunk<'a> {
    bytes: &'a [u8],
    offsets: &'a [u8],
    entries: &'a [u8],
    count: usize,
}

impl<'a> Chunk<'a> {
    pub fn open(bytes: &'a [u8]) -> Result<Self, StoreError> {
        let mut reader = Reader::new(bytes, WHAT);
        let format = reader.byte()?;
        if format != FORMAT {
            return Err(reader.error(format!("unknown chunk format {format}")));
        }
        let count = reader.unsigned()?;
        if count > CHUNK_ENTRIES_MAX as u64 {
            return Err(reader.error(format!("{count} entries in one chunk")));
        }
        let count = count as usize;
        let offsets = reader.slice(4 * count)?;
        let start = bytes.len() - reader.remaining();
        Ok(Self {
            bytes,
            offsets,
            entries: &bytes[start..],
            count,
        })
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entry `index` (0-based) of the chunk.
    pub fn entry(&self, head: ChunkHead, index: usize) -> Result<AuditEntry, StoreError> {
        if index >= self.count {
            return Err(Reader::new(self.bytes, WHAT)
                .error(format!("entry {index} of a chunk of {}", self.count)));
        }
        let slot = &self.offsets[4 * index..4 * index + 4];
        let offset = u32::from_le_bytes([slot[0], slot[1], slot[2], slot[3]]) as usize;
        let entries = self
            .entries
            .get(offset..)
            .ok_or_else(|| Reader::new(self.bytes, WHAT).error("an offset past the chunk"))?;
        decode_entry(&mut Reader::new(entries, WHAT), head)
    }
}

fn decode_entry(reader: &mut Reader<'_>, head: ChunkHead) -> Result<AuditEntry, StoreError> {
    let at = Timestamp(head.at.0.wrapping_add(reader.signed()?));
    let position = (head.position as i64).wrapping_add(reader.signed()?) as Position;
    let sku = reader.id(Sku::parse)?;
    let location = reader.optional_id(LocationId::parse)?;
    let channel = reader.optional_id(ChannelId::parse)?;
    let actor = reader.text()?.to_owned();
    let cause = decode_cause(reader, &actor)?;
    let reason = reader.optional_text()?.map(str::to_owned);
    let change = decode_change(reader)?;
    Ok(AuditEntry {
        at,
        position,
        sku,
        location,
        channel,
        cause,
        actor,
        reason,
        change,
    })
}

fn decode_cause(reader: &mut Reader<'_>, actor: &str) -> Result<Cause, StoreError> {
    match reader.byte()? {
        CAUSE_EVENT => {
            let event_id = reader.id(EventId::parse)?;
            let source = match reader.optional_text()? {
                Some(source) => source,
                None => actor,
            };
            let source = SourceId::parse(source).map_err(|e| reader.error(e.to_string()))?;
            Ok(Cause::Event {
                event_id,
                source,
                event_type: reader.text()?.to_owned(),
            })
        }
        CAUSE_COMMAND => Ok(Cause::Command {
            name: reader.text()?.to_owned(),
            id: reader.text()?.to_owned(),
        }),
        CAUSE_TIME => Ok(Cause::Time {
            what: reader.text()?.to_owned(),
        }),
        other => Err(reader.error(format!("unknown cause {other}"))),
    }
}

fn decode_change(reader: &mut Reader<'_>) -> Result<AuditChange, StoreError> {
    match reader.byte()? {
        CHANGE_QUANTITIES => Ok(AuditChange::Quantities {
            before: decode_quantities(reader)?,
            after: decode_quantities(reader)?,
        }),
        CHANGE_BUFFER => Ok(AuditChange::Buffer {
            policy: reader.id(PolicyId::parse)?,
            strategy: reader.text()?.to_owned(),
            before: reader.signed()?,
            after: reader.signed()?,
            explanation: reader.text()?.to_owned(),
        }),
        CHANGE_AVAILABLE_TO_SELL => Ok(AuditChange::AvailableToSell {
            before: reader.signed()?,
            after: reader.signed()?,
        }),
        CHANGE_SETTING => {
            let text = reader.text()?;
            let detail = serde_json::from_str(text).map_err(|e| reader.error(e.to_string()))?;
            Ok(AuditChange::Setting { detail })
        }
        other => Err(reader.error(format!("unknown change {other}"))),
    }
}

fn decode_quantities(reader: &mut Reader<'_>) -> Result<Quantities, StoreError> {
    let mask = reader.byte()?;
    if mask & 0x80 != 0 {
        return Err(reader.error(format!("quantity mask {mask:#x}")));
    }
    let mut fields = [0_i64; 7];
    for (index, field) in fields.iter_mut().enumerate() {
        if mask & (1 << index) != 0 {
            *field = reader.signed()?;
        }
    }
    let [
        on_hand,
        reserved,
        committed,
        damaged,
        quality_control,
        safety_stock,
        incoming,
    ] = fields;
    Ok(Quantities {
        on_hand,
        reserved,
        committed,
        damaged,
        quality_control,
        safety_stock,
        incoming,
        version: reader.unsigned()?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Entries of every change and cause kind, at `position`, for `sku_names` in turn.
    pub(crate) fn sample_entries(position: Position, sku_names: &[&str]) -> Vec<AuditEntry> {
        let at = Timestamp(1_800_000_000_000_000 + position as i64);
        let changes = [
            AuditChange::Quantities {
                before: Quantities {
                    on_hand: 5,
                    reserved: 2,
                    version: 3,
                    ..Quantities::default()
                },
                after: Quantities {
                    on_hand: 4,
                    reserved: 1,
                    committed: -1,
                    incoming: i64::MAX,
                    version: 4,
                    ..Quantities::default()
                },
            },
            AuditChange::Buffer {
                policy: PolicyId::parse("viral-guard").unwrap(),
                strategy: "dynamic".to_owned(),
                before: 0,
                after: 3,
                explanation: "12.4x baseline velocity".to_owned(),
            },
            AuditChange::AvailableToSell {
                before: 10,
                after: -7,
            },
            AuditChange::Setting {
                detail: serde_json::json!({"channel": "amazon", "per_location": false, "n": 1.5}),
            },
        ];
        let causes = [
            Cause::Event {
                event_id: EventId::parse(format!("e-{position}")).unwrap(),
                source: SourceId::parse("wms").unwrap(),
                event_type: "picked".to_owned(),
            },
            Cause::Event {
                event_id: EventId::parse(format!("f-{position}")).unwrap(),
                source: SourceId::parse("other-source").unwrap(),
                event_type: "received".to_owned(),
            },
            Cause::Command {
                name: "reserve".to_owned(),
                id: "order-9".to_owned(),
            },
            Cause::Time {
                what: "buffer decay".to_owned(),
            },
        ];
        sku_names
            .iter()
            .enumerate()
            .map(|(index, name)| AuditEntry {
                at,
                position,
                sku: Sku::parse(*name).unwrap(),
                location: (index % 2 == 0).then(|| LocationId::parse("east").unwrap()),
                channel: (index % 3 == 0).then(|| ChannelId::parse("web").unwrap()),
                cause: causes[index % causes.len()].clone(),
                actor: "wms".to_owned(),
                reason: (index % 2 == 1).then(|| format!("reason {index}")),
                change: changes[index % changes.len()].clone(),
            })
            .collect()
    }

    #[test]
    fn every_entry_of_a_chunk_reads_back_by_its_index() {
        let mut entries = sample_entries(7, &["A", "B", "C", "D", "E", "F", "G", "H"]);
        // An entry of another time and position than the chunk's (not written today, but
        // allowed by the format).
        entries[5].at = Timestamp(3);
        entries[5].position = 2;
        let head = ChunkHead {
            position: 7,
            at: entries[0].at,
        };
        let mut buffer = vec![9; 3];
        encode(&mut buffer, head, &entries).unwrap();
        let chunk = Chunk::open(&buffer).unwrap();
        assert_eq!(chunk.len(), entries.len());
        for (index, entry) in entries.iter().enumerate().rev() {
            assert_eq!(&chunk.entry(head, index).unwrap(), entry);
        }
        assert!(chunk.entry(head, entries.len()).is_err());
        for length in 0..buffer.len() {
            let cut = &buffer[..length];
            let read = Chunk::open(cut).and_then(|c| c.entry(head, entries.len() - 1));
            assert!(read.is_err(), "a chunk cut at {length} bytes");
        }
    }

    #[test]
    fn sku_keys_depend_on_the_tenant_and_the_sku() {
        let a = TenantId::parse("a").unwrap();
        let b = TenantId::parse("b").unwrap();
        let sku = Sku::parse("SKU-1").unwrap();
        assert_eq!(
            sku_key(tenant_seed(&a), &sku),
            sku_key(tenant_seed(&a), &sku)
        );
        assert_ne!(
            sku_key(tenant_seed(&a), &sku),
            sku_key(tenant_seed(&b), &sku)
        );
        assert_ne!(
            sku_key(tenant_seed(&a), &sku),
            sku_key(tenant_seed(&a), &Sku::parse("SKU-2").unwrap())
        );
    }
}
