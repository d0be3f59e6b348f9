//! Codecs: protobuf binary and the canonical proto3 JSON mapping.
//!
//! A subscriber decodes by the content type a message carries, whatever codec its publisher
//! chose, so an event type names the codec it writes with and the content types it can read.
//! Canonical proto3 JSON comes from the type's serde implementation: the code generator emits
//! one that follows the mapping (camelCase names, enums as names, 64-bit integers as strings,
//! `Timestamp` as RFC 3339), and a hand-written serde struct is JSON by definition.

use std::fmt;

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
        // What tidings writes itself, matched before the general parse: it is every message.
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
