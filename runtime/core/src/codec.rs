//! Codecs: protobuf binary and the canonical proto3 JSON mapping.
//!
//! A subscriber decodes by the content type a message carries, whatever codec its publisher
//! chose, so an event type names the codec it writes with and the content types it can read.
//! Canonical proto3 JSON comes from the type's serde implementation: the code generator emits
//! one that follows the mapping (camelCase names, enums as names, 64-bit integers as strings,
//! `Timestamp` as RFC 3339), and a hand-written serde struct is JSON by definition.

use std::fmt;

use bytes::Bytes;

/// The content types tidings writes and reads (`datacontenttype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// `application/protobuf`: protobuf binary encoding.
    Protobuf,
    /// `application/json`: the canonical proto3 JSON mapping (or plain serde JSON).
    Json,
}

impl ContentType {
    /// The media type written into `datacontenttype`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ContentType::Protobuf => "application/protobuf",
            ContentType::Json => "application/json",
        }
    }

    /// Reads a media type, ignoring parameters such as `; charset=utf-8` and case.
    ///
    /// `application/x-protobuf` and `application/vnd.google.protobuf` are accepted as protobuf
    /// because other stacks write them.
    pub fn parse(media_type: &str) -> Option<Self> {
        // What tidings writes itself, matched before the general parse: it is every message,
        // and within this process it is the very string `as_str` gives.
        for known in [ContentType::Protobuf, ContentType::Json] {
            if std::ptr::eq(media_type, known.as_str()) {
                return Some(known);
            }
        }
        match media_type {
            "application/protobuf" => return Some(ContentType::Protobuf),
            "application/json" => return Some(ContentType::Json),
            _ => {}
        }
        let essence = media_type.split(';').next().unwrap_or("").trim();
        let is = |s: &str| essence.eq_ignore_ascii_case(s);
        if is("application/protobuf")
            || is("application/x-protobuf")
            || is("application/vnd.google.protobuf")
        {
            Some(ContentType::Protobuf)
        } else if is("application/json") || is("text/json") {
            Some(ContentType::Json)
        } else {
            None
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a payload could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The payload is not valid for its content type.
    #[error("cannot decode {content_type} payload as `{schema}`: {reason}")]
    Decode {
        /// The content type the payload claimed.
        content_type: ContentType,
        /// The schema it was decoded as.
        schema: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The event could not be encoded.
    #[error("cannot encode `{schema}` as {content_type}: {reason}")]
    Encode {
        /// The content type asked for.
        content_type: ContentType,
        /// The schema being encoded.
        schema: &'static str,
        /// The encoder's message.
        reason: String,
    },
    /// The event type does not read this content type.
    #[error("`{schema}` cannot be read from {content_type}; it reads {accepted}")]
    Unsupported {
        /// The content type the payload claimed.
        content_type: ContentType,
        /// The schema asked for.
        schema: &'static str,
        /// What it can read, comma-separated.
        accepted: &'static str,
    },
}

/// How an event type is written and read.
pub trait Codec<T>: Send + Sync + 'static {
    /// The content type the event is published with.
    const CONTENT_TYPE: ContentType;
    /// Writes `value` into `buf`.
    fn encode(value: &T, schema: &'static str, buf: &mut Vec<u8>) -> Result<(), CodecError>;
    /// `value` encoded, as the data of a message: what [`Codec::encode`] writes, unless the
    /// codec has a cheaper way to the same bytes.
    fn to_bytes(value: &T, schema: &'static str) -> Result<Bytes, CodecError> {
        let mut buf = Vec::new();
        Self::encode(value, schema, &mut buf)?;
        Ok(Bytes::from(buf))
    }
    /// Reads a value from `data`, which carries `content_type`.
    fn decode(
        content_type: ContentType,
        schema: &'static str,
        data: &[u8],
    ) -> Result<T, CodecError>;
}

/// Protobuf binary only. Needs `prost::Message`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Protobuf;

/// JSON only. Needs serde's `Serialize` and `Deserialize`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

/// Writes protobuf, reads protobuf and JSON. Needs both prost and serde; generated events use it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProtobufOrJson;

/// Writes JSON, reads JSON and protobuf. Needs both prost and serde.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonOrProtobuf;

fn encode_protobuf<T: prost::Message>(value: &T, buf: &mut Vec<u8>) {
    let len = value.encoded_len();
    if buf.capacity() == 0 {
        // The usual case, a fresh buffer: allocated at its size, without the growth path.
        *buf = Vec::with_capacity(len);
    } else {
        buf.reserve(len);
    }
    // Encoding into a Vec only fails for lack of capacity, which `reserve` just provided.
    value.encode_raw(buf);
}

/// A message's data of up to `N` bytes, kept in the allocation that `Bytes::from_owner` makes
/// for its reference count anyway: one allocation per message instead of a buffer and, once the
/// message is shared, a count of its own.
struct Small<const N: usize> {
    len: usize,
    bytes: [u8; N],
}

impl<const N: usize> AsRef<[u8]> for Small<N> {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Encodes `value` into a [`Small`] of `N` bytes, which its encoded length fits.
fn small_protobuf<const N: usize, T: prost::Message>(value: &T) -> Bytes {
    let mut bytes = [0; N];
    let mut free = &mut bytes[..];
    value.encode_raw(&mut free);
    // The length written, not the one announced: a hand-written `encoded_len` may be short.
    let len = N - free.len();
    Bytes::from_owner(Small { len, bytes })
}

fn protobuf_bytes<T: prost::Message>(value: &T) -> Bytes {
    // Size classes, so a small event does not carry the largest class's allocation.
    match value.encoded_len() {
        0..=112 => small_protobuf::<112, T>(value),
        113..=240 => small_protobuf::<240, T>(value),
        241..=496 => small_protobuf::<496, T>(value),
        len => {
            let mut buf = Vec::with_capacity(len);
            value.encode_raw(&mut buf);
            Bytes::from(buf)
        }
    }
}

fn decode_protobuf<T: prost::Message + Default>(
    schema: &'static str,
    data: &[u8],
) -> Result<T, CodecError> {
    T::decode(data).map_err(|e| CodecError::Decode {
        content_type: ContentType::Protobuf,
        schema,
        reason: e.to_string(),
    })
}

fn encode_json<T: serde::Serialize>(
    value: &T,
    schema: &'static str,
    buf: &mut Vec<u8>,
) -> Result<(), CodecError> {
    serde_json::to_writer(buf, value).map_err(|e| CodecError::Encode {
        content_type: ContentType::Json,
        schema,
        reason: e.to_string(),
    })
}

fn decode_json<T: serde::de::DeserializeOwned>(
    schema: &'static str,
    data: &[u8],
) -> Result<T, CodecError> {
    serde_json::from_slice(data).map_err(|e| CodecError::Decode {
        content_type: ContentType::Json,
        schema,
        reason: e.to_string(),
    })
}

impl<T: prost::Message + Default> Codec<T> for Protobuf {
    const CONTENT_TYPE: ContentType = ContentType::Protobuf;
    fn encode(value: &T, _: &'static str, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        encode_protobuf(value, buf);
        Ok(())
    }
    fn to_bytes(value: &T, _: &'static str) -> Result<Bytes, CodecError> {
        Ok(protobuf_bytes(value))
    }
    fn decode(ct: ContentType, schema: &'static str, data: &[u8]) -> Result<T, CodecError> {
        match ct {
            ContentType::Protobuf => decode_protobuf(schema, data),
            _ => Err(CodecError::Unsupported {
                content_type: ct,
                schema,
                accepted: "application/protobuf",
            }),
        }
    }
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> for Json {
    const CONTENT_TYPE: ContentType = ContentType::Json;
    fn encode(value: &T, schema: &'static str, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        encode_json(value, schema, buf)
    }
    fn decode(ct: ContentType, schema: &'static str, data: &[u8]) -> Result<T, CodecError> {
        match ct {
            ContentType::Json => decode_json(schema, data),
            _ => Err(CodecError::Unsupported {
                content_type: ct,
                schema,
                accepted: "application/json",
            }),
        }
    }
}

impl<T> Codec<T> for ProtobufOrJson
where
    T: prost::Message + Default + serde::Serialize + serde::de::DeserializeOwned,
{
    const CONTENT_TYPE: ContentType = ContentType::Protobuf;
    fn encode(value: &T, _: &'static str, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        encode_protobuf(value, buf);
        Ok(())
    }
    fn to_bytes(value: &T, _: &'static str) -> Result<Bytes, CodecError> {
        Ok(protobuf_bytes(value))
    }
    fn decode(ct: ContentType, schema: &'static str, data: &[u8]) -> Result<T, CodecError> {
        match ct {
            ContentType::Protobuf => decode_protobuf(schema, data),
            ContentType::Json => decode_json(schema, data),
        }
    }
}

impl<T> Codec<T> for JsonOrProtobuf
where
    T: prost::Message + Default + serde::Serialize + serde::de::DeserializeOwned,
{
    const CONTENT_TYPE: ContentType = ContentType::Json;
    fn encode(value: &T, schema: &'static str, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        encode_json(value, schema, buf)
    }
    fn decode(ct: ContentType, schema: &'static str, data: &[u8]) -> Result<T, CodecError> {
        <ProtobufOrJson as Codec<T>>::decode(ct, schema, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Blob {
        #[prost(bytes = "vec", tag = "1")]
        data: Vec<u8>,
    }

    /// A hand-written message whose `encoded_len` says one byte less than it writes.
    #[derive(Debug, Default)]
    struct ShortLen;

    impl prost::Message for ShortLen {
        fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
            buf.put_slice(&[0x08, 0x96, 0x01]);
        }
        fn merge_field(
            &mut self,
            tag: u32,
            wire_type: prost::encoding::WireType,
            buf: &mut impl bytes::Buf,
            ctx: prost::encoding::DecodeContext,
        ) -> Result<(), prost::DecodeError> {
            prost::encoding::skip_field(wire_type, tag, buf, ctx)
        }
        fn encoded_len(&self) -> usize {
            2
        }
        fn clear(&mut self) {}
    }

    #[test]
    fn message_data_is_what_was_written_even_when_the_length_was_announced_short() {
        let bytes = <Protobuf as Codec<ShortLen>>::to_bytes(&ShortLen, "tests.Short").unwrap();
        assert_eq!(&bytes[..], [0x08, 0x96, 0x01]);
    }

    #[test]
    fn message_data_is_the_encoding_at_every_size() {
        // Around each size class's edge: the field's tag and length take two or three bytes.
        for len in [0, 1, 109, 110, 111, 237, 238, 239, 492, 493, 494, 495, 4096] {
            let blob = Blob {
                data: (0..len).map(|i| i as u8).collect(),
            };
            let bytes = <Protobuf as Codec<Blob>>::to_bytes(&blob, "tests.Blob").unwrap();
            assert_eq!(
                &bytes[..],
                &prost::Message::encode_to_vec(&blob)[..],
                "{len}"
            );
            let back: Blob =
                <Protobuf as Codec<Blob>>::decode(ContentType::Protobuf, "tests.Blob", &bytes)
                    .unwrap();
            assert_eq!(back, blob);
        }
    }
}
