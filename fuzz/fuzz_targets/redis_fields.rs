//! A Redis Stream entry as the adapter reads it: fields as `(String, bytes)` pairs, the data in
//! the field `data`, read by the binding the subscription calls. Each line is a field; the
//! payload, when there is one, is one more field named `data`.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidings_fuzz::{header_block, text};
use tidings_redis::fields::{DATA, Fields, decode};

fuzz_target!(|input: &[u8]| {
    let (lines, payload) = header_block(input);
    let mut fields: Fields = lines
        .into_iter()
        .map(|(name, value)| (text(name), Bytes::copy_from_slice(value)))
        .collect();
    if !payload.is_empty() {
        fields.push((DATA.to_owned(), Bytes::copy_from_slice(payload)));
    }
    if let Err(malformed) = decode(&fields) {
        // A dead letter keeps the fields as headers and the data as its payload.
        assert!(malformed.headers.iter().all(|(field, _)| field != DATA));
    }
});
