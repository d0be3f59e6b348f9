//! The canonical proto3 JSON mapping of a generated message, through the runtime's JSON codec:
//! camelCase names, enums by name, 64-bit integers as strings, `Timestamp` as RFC 3339,
//! `Duration` as seconds, bytes as base64, defaults omitted, fields in field-number order as
//! protobuf's own JSON printer writes them.

#[allow(clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/mapping/mod.rs"));
}

use generated::events::mapping::v1::{Level, Probed, probed::Reading};
use tidings::codec::Codec;
use tidings::well_known::{Duration, Timestamp};
use tidings::{ContentType, Event, Json};

fn probed() -> Probed {
    Probed {
        probe_name: "probe-7".to_owned(),
        big: -9_007_199_254_740_993,
        unsigned_big: u64::MAX,
        level: Level::High.into(),
        // 2024-05-06T07:08:09.123Z
        at: Some(Timestamp {
            seconds: 1_714_979_289,
            nanos: 123_000_000,
        }),
        payload: vec![0xde, 0xad, 0xbe, 0xef],
        // One entry: a map's entries have no order in the mapping (nor in a `HashMap`).
        counts: [("a".to_owned(), -1)].into(),
        reading: Some(Reading::Number(42)),
        values: vec![1, 2, 3],
        ratio: 0.5,
        flag: true,
        elapsed: Some(Duration {
            seconds: 1,
            nanos: 500_000_000,
        }),
        unset: String::new(),
    }
}

const CANONICAL: &str = concat!(
    r#"{"probeName":"probe-7","big":"-9007199254740993","unsignedBig":"18446744073709551615","#,
    r#""level":"LEVEL_HIGH","at":"2024-05-06T07:08:09.123Z","payload":"3q2+7w==","#,
    r#""counts":{"a":"-1"},"number":"42","values":[1,2,3],"ratio":0.5,"flag":true,"#,
    r#""elapsed":"1.500s"}"#
);

fn encode(value: &Probed) -> String {
    let mut buf = Vec::new();
    <Json as Codec<Probed>>::encode(value, Probed::SCHEMA, &mut buf).expect("encodes");
    String::from_utf8(buf).expect("JSON is UTF-8")
}

#[test]
fn a_generated_message_encodes_to_exactly_the_canonical_text() {
    assert_eq!(encode(&probed()), CANONICAL);
}

#[test]
fn the_canonical_text_reads_back_to_the_same_message() {
    let read =
        <Json as Codec<Probed>>::decode(ContentType::Json, Probed::SCHEMA, CANONICAL.as_bytes());
    assert_eq!(read.expect("decodes"), probed());
}

#[test]
fn the_event_codec_reads_json_from_another_stack_and_writes_protobuf() {
    // The generated event writes protobuf and reads both, as the content type says.
    type Own = <Probed as Event>::Codec;
    assert_eq!(<Own as Codec<Probed>>::CONTENT_TYPE, ContentType::Protobuf);
    let read =
        <Own as Codec<Probed>>::decode(ContentType::Json, Probed::SCHEMA, CANONICAL.as_bytes());
    assert_eq!(read.expect("decodes JSON"), probed());
    let mut wire = Vec::new();
    <Own as Codec<Probed>>::encode(&probed(), Probed::SCHEMA, &mut wire).expect("encodes");
    let back = <Own as Codec<Probed>>::decode(ContentType::Protobuf, Probed::SCHEMA, &wire);
    assert_eq!(back.expect("decodes protobuf"), probed());
}

#[test]
fn parsers_accept_proto_field_names_and_enum_numbers_as_the_mapping_requires() {
    let other = r#"{"probe_name":"probe-7","level":2,"unsigned_big":"18446744073709551615","at":"2024-05-06T09:08:09.123+02:00"}"#;
    let read = <Json as Codec<Probed>>::decode(ContentType::Json, Probed::SCHEMA, other.as_bytes())
        .expect("decodes");
    assert_eq!(read.probe_name, "probe-7");
    assert_eq!(read.level(), Level::High);
    assert_eq!(read.unsigned_big, u64::MAX);
    assert_eq!(read.at, probed().at);
}

#[test]
fn a_default_message_is_an_empty_object() {
    assert_eq!(encode(&Probed::default()), "{}");
}
