//! The journal and snapshot encoding.

use crate::fixtures::*;
use std::collections::BTreeMap;
use stockflow_core::envelope::Input;
use stockflow_store::{StoreError, codec};

#[test]
fn every_input_round_trips() {
    for input in [
        Input::Events(every_event_kind()),
        reserve_command(),
        upsert_channel_command(),
        Input::Tick,
    ] {
        let bytes = codec::encode("input", &input).unwrap();
        assert_eq!(bytes[0], codec::FORMAT_MESSAGEPACK_NAMED);
        let back: Input = codec::decode("input", &bytes).unwrap();
        assert_eq!(back, input);
    }
}

#[test]
fn ledger_round_trips_byte_for_byte() {
    let ledger = sample_ledger(9);
    let bytes = codec::encode_ledger(&ledger).unwrap();
    let back = codec::decode_ledger(&bytes).unwrap();
    assert_eq!(back, ledger);
    assert_eq!(codec::encode_ledger(&back).unwrap(), bytes);
}

#[test]
fn maps_with_tuple_keys_round_trip() {
    // The ledger's availability keeps such a map; JSON could not encode it.
    let mut map = BTreeMap::new();
    map.insert((sku("A"), Some(location("east"))), 3_i64);
    map.insert((sku("B"), None), -1);
    let bytes = codec::encode("map", &map).unwrap();
    let back: BTreeMap<
        (
            stockflow_core::ids::Sku,
            Option<stockflow_core::ids::LocationId>,
        ),
        i64,
    > = codec::decode("map", &bytes).unwrap();
    assert_eq!(back, map);
}

#[test]
fn unknown_format_and_empty_blobs_are_refused() {
    let mut bytes = codec::encode("input", &Input::Tick).unwrap();
    bytes[0] = 99;
    let error = codec::decode::<Input>("input", &bytes).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Codec {
                direction: "decode",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("decode input"), "{error}");
    assert!(codec::decode::<Input>("input", &[]).is_err());
}

#[test]
fn input_kinds_name_what_the_journal_holds() {
    let kinds: Vec<_> = [
        Input::Events(vec![]),
        reserve_command(),
        upsert_channel_command(),
        Input::Tick,
    ]
    .iter()
    .map(codec::input_kind)
    .collect();
    assert_eq!(kinds, ["events", "reserve", "availability", "tick"]);
}

/// Events in the journal's compact form: every type, every optional field present and absent,
/// extreme values; the blob starts with its own format byte and is a fraction of MessagePack's.
#[test]
fn events_round_trip_in_the_compact_journal_form() {
    use stockflow_core::event::EventKind;
    use stockflow_core::ids::{ReservationId, Sku};
    let mut events = every_event_kind();
    let mut bare = events[0].clone();
    bare.occurred_at = None;
    bare.reason = None;
    bare.reference = Some("PO-7".to_owned());
    events.push(bare);
    events.push(event(
        "e-extreme",
        u64::MAX,
        EventKind::Adjusted {
            sku: sku("SKU-1"),
            location: location("east"),
            delta: i64::MIN,
            expected_version: Some(u64::MAX),
        },
    ));
    events.push(event(
        "e-cancel",
        9,
        EventKind::Cancelled {
            reservation_id: ReservationId::parse("order-2").unwrap(),
            sku: Some(Sku::parse("SKU-2").unwrap()),
            quantity: Some(-3),
        },
    ));
    let input = Input::Events(events);
    let mut compact = Vec::new();
    codec::encode_input_into(&mut compact, &input).unwrap();
    assert_eq!(compact[0], codec::FORMAT_EVENTS_COMPACT);
    assert_eq!(codec::decode_input(&compact).unwrap(), input);
    let named = codec::encode("input", &input).unwrap();
    assert!(
        compact.len() * 2 < named.len(),
        "{} vs {}",
        compact.len(),
        named.len()
    );
    // Journals written before the compact form read as they were.
    assert_eq!(codec::decode_input(&named).unwrap(), input);
    assert_eq!(
        codec::decode_input(&{
            let mut empty = Vec::new();
            codec::encode_input_into(&mut empty, &Input::Events(vec![])).unwrap();
            empty
        })
        .unwrap(),
        Input::Events(vec![])
    );
}

#[test]
fn other_inputs_stay_messagepack_in_the_journal() {
    for input in [reserve_command(), upsert_channel_command(), Input::Tick] {
        let mut bytes = Vec::new();
        codec::encode_input_into(&mut bytes, &input).unwrap();
        assert_eq!(bytes[0], codec::FORMAT_MESSAGEPACK_NAMED);
        assert_eq!(codec::decode_input(&bytes).unwrap(), input);
    }
}

#[test]
fn a_damaged_compact_blob_is_refused_not_misread() {
    let mut bytes = Vec::new();
    codec::encode_input_into(&mut bytes, &Input::Events(every_event_kind())).unwrap();
    for length in 1..bytes.len() {
        assert!(
            codec::decode_input(&bytes[..length]).is_err(),
            "a blob cut at {length} bytes"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(
        codec::decode_input(&longer).is_err(),
        "bytes after the events"
    );
    let mut bad_type = bytes.clone();
    // The format byte, the count (1 byte), then the first event: id "e-0" (4 bytes), source
    // "wms-east" (9), seq (1), flags, occurred_at, reason "test" (5), then the type byte.
    let flags_at = 1 + 1 + 4 + 9 + 1;
    let type_at = flags_at + 1 + varint_length(&bytes[flags_at + 1..]) + 5;
    assert_eq!(bytes[type_at], 0, "received");
    bad_type[type_at] = 42;
    let error = codec::decode_input(&bad_type).unwrap_err();
    assert!(
        format!("{:?}", error).contains("unknown event type 42"),
        "{error:?}"
    );
}

fn varint_length(bytes: &[u8]) -> usize {
    bytes.iter().position(|b| b & 0x80 == 0).unwrap() + 1
}
