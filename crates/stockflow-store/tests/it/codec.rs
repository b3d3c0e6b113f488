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
