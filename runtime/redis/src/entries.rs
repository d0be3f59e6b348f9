//! Stream entries read from the server's raw reply.
//!
//! The client's typed stream replies take field names as UTF-8 strings and refuse a whole reply
//! when one name is not, so one entry written by another producer would stop every read of the
//! stream. Read here from the raw value, a name that is not UTF-8 is kept with its invalid bytes
//! replaced, and the entry reaches the subscription, which dead-letters what it cannot read.

use bytes::Bytes;
use redis::{ErrorKind, RedisError, Value};

use crate::fields::Fields;

/// One stream entry: its id, and its fields in the order they were written.
#[derive(Debug, PartialEq)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) fields: Fields,
}

/// The entries of an `XREAD` or `XREADGROUP` reply over one stream: nil when the wait ended
/// with nothing new, otherwise each stream with its entries (an array of pairs, or a map in
/// RESP3).
pub(crate) fn read_reply(reply: Value) -> Result<Vec<Entry>, RedisError> {
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|stream| match stream {
                Value::Array(pair) => pair.into_iter().nth(1).ok_or_else(|| shape("a stream")),
                _ => Err(shape("a stream")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        _ => return Err(shape("the reply")),
    };
    let mut out = Vec::new();
    for entries in streams {
        out.extend(claim_reply(entries)?);
    }
    Ok(out)
}

/// The entries of an `XCLAIM` reply, or of one stream in a read: an array of `[id, fields]`.
/// An entry deleted while pending comes back without fields (nil) and is left out, as there is
/// nothing left to deliver.
pub(crate) fn claim_reply(reply: Value) -> Result<Vec<Entry>, RedisError> {
    let Value::Array(entries) = reply else {
        return Err(shape("the entries"));
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(parts) = entry else {
            return Err(shape("an entry"));
        };
        let mut parts = parts.into_iter();
        let id = match parts.next() {
            Some(Value::BulkString(id)) => String::from_utf8_lossy(&id).into_owned(),
            Some(Value::SimpleString(id)) => id,
            _ => return Err(shape("an entry id")),
        };
        let fields = match parts.next() {
            Some(Value::Array(flat)) => pairs(flat)?,
            Some(Value::Map(map)) => map
                .into_iter()
                .map(|(name, value)| Ok((name_of(name)?, bytes_of(value)?)))
                .collect::<Result<_, RedisError>>()?,
            Some(Value::Nil) | None => continue,
            Some(_) => return Err(shape("the fields of an entry")),
        };
        out.push(Entry { id, fields });
    }
    Ok(out)
}

/// Fields from a flat `name, value, name, value...` array.
fn pairs(flat: Vec<Value>) -> Result<Fields, RedisError> {
    if !flat.len().is_multiple_of(2) {
        return Err(shape("the fields of an entry (a name without a value)"));
    }
    let mut fields = Vec::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
        fields.push((name_of(name)?, bytes_of(value)?));
    }
    Ok(fields)
}

fn name_of(value: Value) -> Result<String, RedisError> {
    Ok(String::from_utf8_lossy(&bytes_of(value)?).into_owned())
}

fn bytes_of(value: Value) -> Result<Bytes, RedisError> {
    match value {
        Value::BulkString(bytes) => Ok(Bytes::from(bytes)),
        Value::SimpleString(text) => Ok(Bytes::from(text)),
        _ => Err(shape("a field name or value")),
    }
}

/// The error for a reply not shaped as a stream reply is.
fn shape(what: &'static str) -> RedisError {
    RedisError::from((
        ErrorKind::UnexpectedReturnType,
        "a stream reply not shaped as Redis writes one",
        format!("unexpected shape of {what}"),
    ))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn bulk(bytes: &[u8]) -> Value {
        Value::BulkString(bytes.to_vec())
    }

    fn entry(id: &str, fields: &[(&[u8], &[u8])]) -> Value {
        let flat = fields
            .iter()
            .flat_map(|(n, v)| [bulk(n), bulk(v)])
            .collect();
        Value::Array(vec![bulk(id.as_bytes()), Value::Array(flat)])
    }

    #[test]
    fn a_name_that_is_not_utf8_is_kept_and_the_other_entries_read() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"stream"),
            Value::Array(vec![
                entry(
                    "1-0",
                    &[(b"ce_id", b"a"), (b"\xff\xfe", b"x"), (b"data", b"\x08")],
                ),
                entry("2-0", &[(b"ce_id", b"b")]),
            ]),
        ])]);
        let entries = read_reply(reply).unwrap();
        assert_eq!(
            entries,
            [
                Entry {
                    id: "1-0".into(),
                    fields: vec![
                        ("ce_id".into(), Bytes::from_static(b"a")),
                        ("\u{fffd}\u{fffd}".into(), Bytes::from_static(b"x")),
                        ("data".into(), Bytes::from_static(b"\x08")),
                    ],
                },
                Entry {
                    id: "2-0".into(),
                    fields: vec![("ce_id".into(), Bytes::from_static(b"b"))],
                },
            ]
        );
    }

    #[test]
    fn nothing_new_a_resp3_map_and_a_deleted_entry() {
        assert_eq!(read_reply(Value::Nil).unwrap(), []);
        let map = Value::Map(vec![(
            bulk(b"stream"),
            Value::Array(vec![
                entry("3-0", &[(b"data", b"")]),
                Value::Array(vec![bulk(b"4-0"), Value::Nil]),
            ]),
        )]);
        let entries = read_reply(map).unwrap();
        assert_eq!(entries.len(), 1, "the deleted entry is left out");
        assert_eq!(entries[0].id, "3-0");
    }

    #[test]
    fn a_reply_of_another_shape_is_an_error() {
        for reply in [
            Value::Int(1),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Array(vec![bulk(b"s")])]),
            Value::Array(vec![Value::Array(vec![
                bulk(b"s"),
                Value::Array(vec![Value::Array(vec![
                    bulk(b"1-0"),
                    Value::Array(vec![bulk(b"odd")]),
                ])]),
            ])]),
        ] {
            let error = read_reply(reply).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::UnexpectedReturnType, "{error}");
        }
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::BulkString),
            "[a-z0-9-]{0,4}".prop_map(Value::SimpleString),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((inner.clone(), inner), 0..3).prop_map(Value::Map),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_reply_is_read_or_refused_without_a_panic(reply in any_value()) {
            let _entries_or_error = read_reply(reply);
        }
    }
}
