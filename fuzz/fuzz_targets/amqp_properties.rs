//! An AMQP delivery as lapin hands it to the adapter: the `content-type` property, the header
//! table and the body, read by the binding the consumer calls.
//!
//! A line `:content-type: ...` sets the content-type property; any other line is a header, a
//! long string unless its value starts with byte 0x01, in which case the bytes after it choose,
//! through `arbitrary`, a value of another AMQP type. Short strings longer than AMQP allows
//! (255 bytes), which no broker delivers, are left out.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, DecimalValue, FieldArray, FieldTable, LongString, ShortString};
use libfuzzer_sys::fuzz_target;
use tidings_fuzz::{PROPERTY, header_block, text};

/// An AMQP field value other than a long string; arrays and tables hold scalars.
#[derive(Arbitrary, Debug)]
enum Typed {
    Boolean(bool),
    ShortShortInt(i8),
    ShortShortUInt(u8),
    ShortInt(i16),
    ShortUInt(u16),
    LongInt(i32),
    LongUInt(u32),
    LongLongInt(i64),
    Float(f32),
    Double(f64),
    Decimal(u8, u32),
    ShortString(String),
    Timestamp(u64),
    Array(Vec<Scalar>),
    Table(Vec<(String, Scalar)>),
    ByteArray(Vec<u8>),
    Void,
}

#[derive(Arbitrary, Debug)]
enum Scalar {
    Text(Vec<u8>),
    Int(i64),
    Flag(bool),
}

impl Scalar {
    fn value(self) -> AMQPValue {
        match self {
            Scalar::Text(bytes) => AMQPValue::LongString(LongString::from(bytes)),
            Scalar::Int(n) => AMQPValue::LongLongInt(n),
            Scalar::Flag(b) => AMQPValue::Boolean(b),
        }
    }
}

impl Typed {
    fn value(self) -> Option<AMQPValue> {
        Some(match self {
            Typed::Boolean(b) => AMQPValue::Boolean(b),
            Typed::ShortShortInt(n) => AMQPValue::ShortShortInt(n),
            Typed::ShortShortUInt(n) => AMQPValue::ShortShortUInt(n),
            Typed::ShortInt(n) => AMQPValue::ShortInt(n),
            Typed::ShortUInt(n) => AMQPValue::ShortUInt(n),
            Typed::LongInt(n) => AMQPValue::LongInt(n),
            Typed::LongUInt(n) => AMQPValue::LongUInt(n),
            Typed::LongLongInt(n) => AMQPValue::LongLongInt(n),
            Typed::Float(n) => AMQPValue::Float(n),
            Typed::Double(n) => AMQPValue::Double(n),
            Typed::Decimal(scale, value) => AMQPValue::DecimalValue(DecimalValue { scale, value }),
            Typed::ShortString(s) => AMQPValue::ShortString(ShortString::try_new(s).ok()?),
            Typed::Timestamp(n) => AMQPValue::Timestamp(n),
            Typed::Array(items) => AMQPValue::FieldArray(FieldArray::from(
                items.into_iter().map(Scalar::value).collect::<Vec<_>>(),
            )),
            Typed::Table(entries) => {
                let mut table = FieldTable::default();
                for (name, value) in entries {
                    table.insert(ShortString::try_new(name).ok()?, value.value());
                }
                AMQPValue::FieldTable(table)
            }
            Typed::ByteArray(bytes) => AMQPValue::ByteArray(bytes.into()),
            Typed::Void => AMQPValue::Void,
        })
    }
}

fuzz_target!(|input: &[u8]| {
    let (lines, body) = header_block(input);
    let mut properties = BasicProperties::default();
    let mut headers = FieldTable::default();
    let mut any_header = false;
    for (name, value) in lines {
        if name == b":content-type" {
            if let Ok(content_type) = ShortString::try_new(text(value)) {
                properties = properties.with_content_type(content_type);
            }
            continue;
        }
        if name.first() == Some(&PROPERTY) {
            continue;
        }
        let value = match value.split_first() {
            Some((0x01, rest)) => match Typed::arbitrary_take_rest(Unstructured::new(rest)) {
                Ok(typed) => match typed.value() {
                    Some(value) => value,
                    None => continue,
                },
                Err(_) => continue,
            },
            _ => AMQPValue::LongString(LongString::from(value)),
        };
        let Ok(name) = ShortString::try_new(text(name)) else {
            continue;
        };
        headers.insert(name, value);
        any_header = true;
    }
    if any_header {
        properties = properties.with_headers(headers);
    }
    let body = Bytes::copy_from_slice(body);
    if let Err(malformed) = tidings_rabbitmq::binding::read(&properties, body.clone()) {
        assert_eq!(malformed.data, body);
    }
});
