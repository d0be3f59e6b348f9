//! Event data read and written by schema at run time: protobuf binary or the canonical proto3
//! JSON mapping (camelCase names, enums by name, 64-bit integers as strings, well-known types
//! in their JSON forms), through prost-reflect.

use bytes::Bytes;
use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};
use tidings::ContentType;
use tidings::broker::Message;
use tidings_codegen::SchemaSet;

/// The message `message` carries data of: the one its `dataschema` names, else the event of
/// its `type`, else the event of `topic` (where it was found).
pub(crate) fn descriptor_of(
    set: &SchemaSet,
    message: &Message,
    topic: &str,
) -> Result<MessageDescriptor, String> {
    let envelope = &message.envelope;
    if let Some(schema) = envelope.schema() {
        return set.pool().get_message_by_name(schema).ok_or_else(|| {
            format!("its dataschema names `{schema}`, which the schemas do not define")
        });
    }
    set.message(&envelope.event_type)
        .or_else(|| set.message(topic))
        .ok_or_else(|| {
            format!(
                "neither its type `{}` nor the topic `{topic}` is an event of the schemas",
                envelope.event_type
            )
        })
}

/// The data of `message` as canonical proto3 JSON, or why it cannot be read.
pub(crate) fn data_json(
    descriptor: MessageDescriptor,
    message: &Message,
) -> Result<serde_json::Value, String> {
    let decoded = match message.envelope.content_type() {
        Some(ContentType::Protobuf) => DynamicMessage::decode(descriptor, message.data.clone())
            .map_err(|e| format!("undecodable protobuf data: {e}"))?,
        Some(ContentType::Json) => {
            let mut reader = serde_json::Deserializer::from_slice(&message.data);
            DynamicMessage::deserialize(descriptor, &mut reader)
                .map_err(|e| format!("undecodable JSON data: {e}"))?
        }
        None => {
            return Err(format!(
                "content type `{}` is not one tidings reads",
                message
                    .envelope
                    .data_content_type
                    .as_deref()
                    .unwrap_or("(none)")
            ));
        }
    };
    decoded
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .map_err(|e| format!("cannot write the data as JSON: {e}"))
}

/// `json` checked against `descriptor` and encoded as `content_type`; when it does not match,
/// the path of the offending field (`lines[0].quantity`) and what is wrong with it.
pub(crate) fn encode(
    descriptor: MessageDescriptor,
    json: &str,
    content_type: ContentType,
) -> Result<Bytes, String> {
    let mut reader = serde_json::Deserializer::from_str(json);
    let mut track = serde_path_to_error::Track::new();
    let read = DynamicMessage::deserialize_with_options(
        descriptor,
        serde_path_to_error::Deserializer::new(&mut reader, &mut track),
        &DeserializeOptions::new(),
    );
    let message = read.map_err(|e| {
        let path = track.path().to_string();
        if path == "." {
            e.to_string()
        } else {
            format!("at `{path}`: {e}")
        }
    })?;
    reader
        .end()
        .map_err(|e| format!("text after the JSON document: {e}"))?;
    Ok(match content_type {
        ContentType::Protobuf => Bytes::from(prost::Message::encode_to_vec(&message)),
        ContentType::Json => Bytes::from(
            serde_json::to_vec(&message).map_err(|e| format!("cannot write the JSON: {e}"))?,
        ),
    })
}
