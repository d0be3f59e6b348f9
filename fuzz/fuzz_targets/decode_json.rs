//! Event data in JSON, decoded as a subscription decodes every delivery (`tidings::decode`), as
//! generated events (the canonical proto3 JSON mapping, through the schemas' descriptors) and as
//! a hand-written serde event with the JSON codec.
//!
//! What decodes must encode as JSON and decode again to the same value.

#![no_main]

use std::borrow::Cow;
use std::fmt::Debug;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tidings::codec::Codec;
use tidings::{ContentType, Envelope, Event, Json};
use tidings_fuzz::Refunded;
use tidings_fuzz::events::{inventory, order, payment};

/// The envelope a publisher of `E` writes with JSON data.
fn envelope<E: Event>() -> Envelope {
    Envelope::new(
        Arc::from("fuzz"),
        Cow::Borrowed(E::TOPIC),
        ContentType::Json,
        Some(Cow::Owned(format!("proto:{}", E::SCHEMA))),
    )
}

fn check<E>(data: &[u8])
where
    E: Event + PartialEq + Debug,
    Json: Codec<E>,
{
    let envelope = envelope::<E>();
    if let Ok(event) = tidings::decode::<E>(&envelope, data) {
        let bytes =
            <Json as Codec<E>>::to_bytes(&event, E::SCHEMA).expect("a decoded event encodes");
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
    check::<Refunded>(data);
});
