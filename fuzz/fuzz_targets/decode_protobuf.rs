//! Event data in the protobuf binary encoding, decoded as a subscription decodes every delivery
//! (`tidings::decode`), as each of several generated events: a nested message, a repeated
//! field, an enum, a map, a oneof, bytes, sint64 and the well-known `Timestamp`.
//!
//! What decodes must encode as the publisher would and decode again to the same value.

#![no_main]

use std::borrow::Cow;
use std::fmt::Debug;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tidings::codec::Codec;
use tidings::{ContentType, Envelope, Event};
use tidings_fuzz::events::{inventory, order, payment};

/// The envelope a publisher of `E` writes.
fn envelope<E: Event>() -> Envelope {
    Envelope::new(
        Arc::from("fuzz"),
        Cow::Borrowed(E::TOPIC),
        ContentType::Protobuf,
        Some(Cow::Owned(format!("proto:{}", E::SCHEMA))),
    )
}

fn check<E: Event + PartialEq + Debug>(data: &[u8]) {
    let envelope = envelope::<E>();
    if let Ok(event) = tidings::decode::<E>(&envelope, data) {
        let bytes = E::Codec::to_bytes(&event, E::SCHEMA).expect("a decoded event encodes");
        let again = tidings::decode::<E>(&envelope, &bytes).expect("an encoded event decodes");
        assert_eq!(again, event);
    }
}

fuzz_target!(|data: &[u8]| {
    check::<order::v1::Created>(data);
    check::<order::v1::Cancelled>(data);
    check::<order::v2::Created>(data);
    check::<payment::v1::Authorized>(data);
    check::<inventory::v1::StockAdjusted>(data);
});
