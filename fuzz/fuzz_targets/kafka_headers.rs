//! A Kafka record as the adapter copies it out of librdkafka's buffers: headers as
//! `(String, bytes)` pairs (a name may repeat, a value need not be text), the key and the value,
//! read by the binding the consumer calls.
//!
//! A line `:key: ...` sets the record's key; any other line is a header.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidings_fuzz::{PROPERTY, header_block, text};
use tidings_kafka::binding::Record;

fuzz_target!(|input: &[u8]| {
    let (lines, value) = header_block(input);
    let mut record = Record {
        key: None,
        headers: Vec::with_capacity(lines.len()),
        value: Bytes::copy_from_slice(value),
        unreadable: 0,
    };
    for (name, value) in lines {
        if name == b":key" {
            record.key = Some(Bytes::copy_from_slice(value));
        } else if name.first() != Some(&PROPERTY) {
            record
                .headers
                .push((text(name), Bytes::copy_from_slice(value)));
        }
    }
    if let Err(malformed) = record.read() {
        assert_eq!(malformed.data, record.value);
    }
});
