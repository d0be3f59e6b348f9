//! What arrives from the network may hold anything: reading header names, attributes, times and
//! structured documents out of arbitrary text and bytes never panics, a refusal can always be
//! written, and the size a message counts is what its attributes hold.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::collection::vec;
use proptest::prelude::*;
use tidings_core::adapter::attribute_name;
use tidings_core::envelope::{Envelope, attr, format_time, parse_time};
use tidings_core::{ContentType, Event, ProtobufOrJson, decode};

#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
struct Shipped {
    #[prost(string, tag = "1")]
    #[serde(rename = "orderId")]
    order_id: String,
}

impl Event for Shipped {
    const TOPIC: &'static str = "events.order.shipped.v1";
    const SCHEMA: &'static str = "events.order.v1.Shipped";
    const DATA_SCHEMA: &'static str = "proto:events.order.v1.Shipped";
    type Codec = ProtobufOrJson;
}

/// Any text: arbitrary characters, or arbitrary bytes read as UTF-8 as a transport would.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        vec(any::<char>(), 0..24).prop_map(String::from_iter),
        vec(any::<u8>(), 0..24).prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ]
}

/// Attribute names, mostly the ones tidings reads, in any case, and any text besides.
fn name() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        attr::SPEC_VERSION,
        attr::ID,
        attr::SOURCE,
        attr::TYPE,
        attr::TIME,
        attr::DATA_CONTENT_TYPE,
        attr::DATA_SCHEMA,
        attr::SUBJECT,
        attr::PARTITION_KEY,
        attr::TRACEPARENT,
        attr::CAUSATION_DEPTH,
        "SpecVersion",
        "TYPE",
    ]);
    prop_oneof![3 => known.prop_map(str::to_owned), 1 => text()]
}

/// Attribute values: ones that get a message far (the version, the topic, times at the edges of
/// what RFC 3339 writes, content types, causation depths) and any text besides.
fn value() -> impl Strategy<Value = String> {
    let telling = prop::sample::select(vec![
        "1.0",
        Shipped::TOPIC,
        "events.order.shipped.v2",
        "proto:events.order.v1.Shipped",
        "application/json",
        "application/protobuf; charset=utf-8",
        "9999-12-31T23:59:59.999999999-23:59",
        "0000-01-01T00:00:00+23:59",
        "1969-12-31T23:59:59.5Z",
        "2024-02-29T12:00:00.000000001+01:00",
        "7",
        "4294967295",
    ]);
    prop_oneof![2 => telling.prop_map(str::to_owned), 1 => text()]
}

/// The count of an envelope's attributes as they are written.
fn written_size(envelope: &Envelope) -> usize {
    envelope
        .attributes()
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn header_names_of_any_text_are_read_without_panic(header in text(), prefix in text()) {
        if let Some(attribute) = attribute_name(&header, &prefix) {
            prop_assert!(!attribute.is_empty());
            prop_assert_eq!(prefix.len() + attribute.len(), header.len());
            prop_assert!(header.ends_with(attribute));
            prop_assert!(header[..prefix.len()].eq_ignore_ascii_case(&prefix));
        }
        for prefix in ["ce-", "ce_", "cloudevents_", "cloudevents:"] {
            if let Some(attribute) = attribute_name(&header, prefix) {
                prop_assert_eq!(prefix.len() + attribute.len(), header.len());
            }
        }
    }

    #[test]
    fn attributes_of_any_text_are_read_refused_and_written_without_panic(
        pairs in vec((name(), value()), 0..16),
        data in vec(any::<u8>(), 0..64),
    ) {
        if let Ok(envelope) = Envelope::from_attributes(pairs) {
            prop_assert_eq!(envelope.size(), written_size(&envelope));
            // What a consumer does with a message: decode it or say why not, and write it
            // again (a dead letter, structured mode).
            if let Err(refusal) = decode::<Shipped>(&envelope, &data) {
                prop_assert!(!refusal.to_string().is_empty());
            }
            let document = envelope.to_structured(&data);
            if let Ok((back, _)) = Envelope::from_structured(&document) {
                prop_assert_eq!(back.size(), written_size(&back));
            }
        }
    }

    #[test]
    fn structured_documents_of_any_bytes_are_read_without_panic(
        document in vec(any::<u8>(), 0..256),
    ) {
        if let Ok((envelope, _)) = Envelope::from_structured(&document) {
            prop_assert_eq!(envelope.size(), written_size(&envelope));
        }
    }

    #[test]
    fn structured_documents_of_any_members_are_read_without_panic(
        members in vec((name(), value()), 0..16),
        data in prop_oneof![Just(None), text().prop_map(Some)],
        base64 in prop_oneof![Just(None), text().prop_map(Some)],
    ) {
        let mut document = serde_json::Map::new();
        for (name, value) in members {
            document.insert(name, serde_json::Value::String(value));
        }
        if let Some(data) = data {
            document.insert("data".to_owned(), serde_json::Value::String(data));
        }
        if let Some(base64) = base64 {
            document.insert("data_base64".to_owned(), serde_json::Value::String(base64));
        }
        let bytes = serde_json::to_vec(&document).unwrap();
        if let Ok((envelope, data)) = Envelope::from_structured(&bytes) {
            prop_assert_eq!(envelope.size(), written_size(&envelope));
            if let Err(refusal) = decode::<Shipped>(&envelope, &data) {
                prop_assert!(!refusal.to_string().is_empty());
            }
        }
    }

    #[test]
    fn times_of_any_text_are_read_and_written_without_panic(text in text()) {
        if let Ok(time) = parse_time(&text) {
            prop_assert!(parse_time(&format_time(time)).is_ok());
        }
    }

    #[test]
    fn the_size_counts_time_as_written_at_any_instant(
        seconds in 0u64..400_000_000_000,
        nanos in prop_oneof![0u32..1_000_000_000, Just(0), Just(500_000_000), Just(10)],
        before_1970 in any::<bool>(),
    ) {
        let offset = Duration::new(seconds, nanos);
        let time = if before_1970 {
            UNIX_EPOCH.checked_sub(offset)
        } else {
            UNIX_EPOCH.checked_add(offset)
        };
        let Some(time) = time else { return Ok(()) };
        let mut envelope = Envelope::new(
            Arc::from("tests"),
            Cow::Borrowed(Shipped::TOPIC),
            ContentType::Protobuf,
            None,
        );
        envelope.time = Some(time);
        prop_assert_eq!(envelope.size(), written_size(&envelope), "{}", format_time(time));
    }
}

#[test]
fn a_time_past_what_utc_can_write_is_refused_on_receipt_and_written_as_the_epoch() {
    for text in [
        "9999-12-31T23:59:59.999999999-23:59",
        "0000-01-01T00:00:00+23:59",
    ] {
        assert!(parse_time(text).is_err(), "{text}");
    }
    // Year 10000, which four digits cannot write.
    let far = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_800);
    assert_eq!(format_time(far), "1970-01-01T00:00:00Z");
    let now = SystemTime::now();
    assert_eq!(parse_time(&format_time(now)).unwrap(), now);
}
