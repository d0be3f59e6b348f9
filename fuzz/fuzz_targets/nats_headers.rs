//! A NATS message as the client hands it to the adapter: headers (a name may repeat), then the
//! payload, read by the binding the JetStream and core NATS subscriptions call.
//!
//! Names and values the client would refuse to parse off the wire (control characters, `:` in a
//! name, line breaks in a value) are left out, as no server delivers them.

#![no_main]

use async_nats::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidings_fuzz::{header_block, text};

fuzz_target!(|input: &[u8]| {
    let (lines, payload) = header_block(input);
    let mut headers = HeaderMap::new();
    for (name, value) in lines {
        let (Ok(name), Ok(value)) = (
            text(name).parse::<HeaderName>(),
            text(value).parse::<HeaderValue>(),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let headers = (!headers.is_empty()).then_some(headers);
    let payload = Bytes::copy_from_slice(payload);
    if let Err(malformed) = tidings_nats::binding::read(headers.as_ref(), payload.clone()) {
        // A message that cannot be read is dead-lettered as it arrived.
        assert_eq!(malformed.data, payload);
    }
});
