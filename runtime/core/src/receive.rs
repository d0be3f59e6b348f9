//! Turning a delivery into a typed event, or into a refusal that says why not.
//!
//! A message is decoded as `E` only when its `type` is `E`'s ([`Event::TYPE`], its topic unless
//! set otherwise, so its major version too), its `dataschema`, when it has one, names `E`'s
//! schema, and its content type is one `E` reads. Anything else is refused, never decoded as the
//! wrong type. CloudEvents producers outside tidings seldom write `dataschema`, so a message
//! without one is read on its type and content type, unless the subscription requires it
//! ([`DataSchema::Required`]).

use crate::broker::{Malformed, Message};
use crate::codec::{Codec, CodecError};
use crate::envelope::{Envelope, SCHEMA_PREFIX};
use crate::event::Event;
use crate::size;
use crate::topic::validate_topic;

/// Why a delivery was not decoded as the subscribed event type. The text (its `Display`) is the
/// dead-letter reason and names what was expected and what arrived.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The `type` attribute is another event's, or the same event's at another major version.
    #[error("{}", wrong_type(expected, actual))]
    WrongType {
        /// The subscribed event's type.
        expected: &'static str,
        /// The `type` the message carries.
        actual: String,
    },
    /// The `dataschema` attribute names another message.
    #[error("wrong schema: expected dataschema `{SCHEMA_PREFIX}{expected}`, got `{actual}`")]
    WrongSchema {
        /// The subscribed schema name.
        expected: &'static str,
        /// The `dataschema` the message carries.
        actual: String,
    },
    /// The message carries no `dataschema`, and the subscription requires one
    /// ([`DataSchema::Required`]).
    #[error(
        "missing schema: expected dataschema `{SCHEMA_PREFIX}{expected}`, got none, and this \
         subscription requires it"
    )]
    MissingSchema {
        /// The subscribed schema name.
        expected: &'static str,
    },
    /// The `datacontenttype` is missing or not one tidings reads.
    #[error(
        "unknown content type: expected application/protobuf or application/json, got {}",
        match actual { Some(a) => format!("`{a}`"), None => "none".to_owned() }
    )]
    UnknownContentType {
        /// The `datacontenttype` the message carries.
        actual: Option<String>,
    },
    /// The data does not decode as the schema.
    #[error("undecodable data: {0}")]
    Codec(#[from] CodecError),
    /// The message is larger than the subscription allows; it was not decoded.
    #[error(
        "too large: {size} bytes of data and attributes, above this subscription's limit of \
         {limit}; the publisher must send smaller events, or the subscription allow more \
         (`max_message_size`)"
    )]
    TooLarge {
        /// Its size: the data and each attribute's name and value (each header's, for a message
        /// that is no CloudEvent).
        size: usize,
        /// The subscription's limit.
        limit: usize,
    },
    /// The transport message is not a CloudEvents message at all.
    #[error(
        "malformed message: expected a CloudEvents 1.0 message of type `{expected}`, got: {reason}"
    )]
    Malformed {
        /// The subscribed event's type.
        expected: &'static str,
        /// What was wrong with it.
        reason: String,
    },
}

/// The topic without its version segment.
fn event_name(topic: &str) -> Option<&str> {
    topic.rsplit_once('.').map(|(name, _)| name)
}

fn wrong_type(expected: &str, actual: &str) -> String {
    match (validate_topic(expected), validate_topic(actual)) {
        (Ok(e), Ok(a)) if event_name(expected) == event_name(actual) => format!(
            "wrong major version: expected `{expected}` (major {}), got `{actual}` (major {})",
            e.major, a.major
        ),
        _ => format!("wrong event type: expected `{expected}`, got `{actual}`"),
    }
}

/// Whether a message must carry `dataschema` to be decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DataSchema {
    /// A message without one is decoded when its type and content type say it is the event:
    /// the default, as producers outside tidings seldom write it. One that names another
    /// message is refused either way.
    #[default]
    Optional,
    /// A message without one is refused ([`Refusal::MissingSchema`]), for consumers that want
    /// every producer to say which message its data is.
    Required,
}

/// Decodes a message's `data` as `E`, given its `envelope`, or says why it is not one: the check
/// a typed subscriber makes on every delivery, usable on its own (reading dead letters, testing an
/// adapter). A message without `dataschema` is read ([`DataSchema::Optional`]).
pub fn decode<E: Event>(envelope: &Envelope, data: &[u8]) -> Result<E, Refusal> {
    decode_with(envelope, data, DataSchema::Optional)
}

/// [`decode`], requiring `dataschema` or not.
pub fn decode_with<E: Event>(
    envelope: &Envelope,
    data: &[u8],
    data_schema: DataSchema,
) -> Result<E, Refusal> {
    // A message published in this process carries the very `&'static str` of its type: the
    // same address says equal without comparing the text.
    let event_type: &str = &envelope.event_type;
    if !std::ptr::eq(event_type, E::TYPE) && event_type != E::TYPE {
        return Err(Refusal::WrongType {
            expected: E::TYPE,
            actual: envelope.event_type.clone().into_owned(),
        });
    }
    match envelope.data_schema.as_deref() {
        None if data_schema == DataSchema::Required => {
            return Err(Refusal::MissingSchema {
                expected: E::SCHEMA,
            });
        }
        // The same address as the constant: what this process published.
        Some(schema)
            if !std::ptr::eq(schema, E::DATA_SCHEMA)
                && schema.strip_prefix(SCHEMA_PREFIX) != Some(E::SCHEMA) =>
        {
            return Err(Refusal::WrongSchema {
                expected: E::SCHEMA,
                actual: schema.to_owned(),
            });
        }
        _ => {}
    }
    let Some(content_type) = envelope.content_type() else {
        return Err(Refusal::UnknownContentType {
            actual: envelope.data_content_type.as_deref().map(str::to_owned),
        });
    };
    Ok(E::Codec::decode(content_type, E::SCHEMA, data)?)
}

/// Refuses a delivery larger than `limit`, before anything else is read of it.
#[inline]
pub(crate) fn check_size(
    message: &Result<Message, Malformed>,
    limit: usize,
) -> Result<(), Refusal> {
    let size = match message {
        Ok(message) => message.size(),
        Err(malformed) => malformed.size(),
    };
    size::check(size, limit).map_err(|too_large| Refusal::TooLarge {
        size: too_large.size,
        limit: too_large.limit,
    })
}

/// The refusal for a delivery that could not be read as a CloudEvents message.
pub(crate) fn malformed<E: Event>(malformed: &Malformed) -> Refusal {
    Refusal::Malformed {
        expected: E::TYPE,
        reason: malformed.reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use prost::Message as _;

    use super::*;
    use crate::{ContentType, Protobuf, ProtobufOrJson};

    #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
    struct Shipped {
        #[prost(string, tag = "1")]
        #[serde(rename = "orderId")]
        order_id: String,
    }

    impl Event for Shipped {
        const TOPIC: &'static str = "events.order.shipped.v1";
        const SCHEMA: &'static str = "events.order.v1.Shipped";
        const DATA_SCHEMA: &'static str = "proto:events.order.v1.Shipped";
        type Codec = ProtobufOrJson;
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct ShippedBinary {
        #[prost(string, tag = "1")]
        order_id: String,
    }

    impl Event for ShippedBinary {
        const TOPIC: &'static str = "events.order.shipped.v1";
        const SCHEMA: &'static str = "events.order.v1.Shipped";
        const DATA_SCHEMA: &'static str = "proto:events.order.v1.Shipped";
        type Codec = Protobuf;
    }

    fn envelope(content_type: ContentType) -> Envelope {
        Envelope::new(
            Arc::from("tests"),
            Cow::Borrowed("events.order.shipped.v1"),
            content_type,
            Some(Cow::Borrowed("proto:events.order.v1.Shipped")),
        )
    }

    #[test]
    fn decodes_by_the_content_type_the_message_carries() {
        let event = Shipped {
            order_id: "7".into(),
        };
        let binary = event.encode_to_vec();
        let json = br#"{"orderId":"7"}"#;
        assert_eq!(
            decode::<Shipped>(&envelope(ContentType::Protobuf), &binary).unwrap(),
            event
        );
        assert_eq!(
            decode::<Shipped>(&envelope(ContentType::Json), json).unwrap(),
            event
        );
        let refused = decode::<ShippedBinary>(&envelope(ContentType::Json), json).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "undecodable data: `events.order.v1.Shipped` cannot be read from application/json; \
             it reads application/protobuf"
        );
    }

    #[test]
    fn refusals_name_expected_and_actual() {
        let data = Shipped {
            order_id: "7".into(),
        }
        .encode_to_vec();
        let mut v2 = envelope(ContentType::Protobuf);
        v2.event_type = Cow::Borrowed("events.order.shipped.v2");
        assert_eq!(
            decode::<Shipped>(&v2, &data).unwrap_err().to_string(),
            "wrong major version: expected `events.order.shipped.v1` (major 1), got \
             `events.order.shipped.v2` (major 2)"
        );
        let mut other = envelope(ContentType::Protobuf);
        other.event_type = Cow::Borrowed("events.order.created.v1");
        assert_eq!(
            decode::<Shipped>(&other, &data).unwrap_err().to_string(),
            "wrong event type: expected `events.order.shipped.v1`, got `events.order.created.v1`"
        );
        let mut foreign = envelope(ContentType::Protobuf);
        foreign.data_schema = Some(Cow::Borrowed("proto:events.billing.v1.Invoice"));
        assert_eq!(
            decode::<Shipped>(&foreign, &data).unwrap_err().to_string(),
            "wrong schema: expected dataschema `proto:events.order.v1.Shipped`, got \
             `proto:events.billing.v1.Invoice`"
        );
        let mut unknown = envelope(ContentType::Protobuf);
        unknown.data_content_type = Some(Cow::Borrowed("text/csv"));
        assert_eq!(
            decode::<Shipped>(&unknown, &data).unwrap_err().to_string(),
            "unknown content type: expected application/protobuf or application/json, got \
             `text/csv`"
        );
        let garbage = decode::<Shipped>(&envelope(ContentType::Protobuf), b"\xff\xff");
        let text = garbage.unwrap_err().to_string();
        assert!(
            text.starts_with(
                "undecodable data: cannot decode application/protobuf payload as \
                 `events.order.v1.Shipped`: "
            ),
            "{text}"
        );
    }

    /// An event named the way another producer names its events.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Finalized {
        #[prost(string, tag = "1")]
        name: String,
    }

    impl Event for Finalized {
        const TOPIC: &'static str = "storage.object.finalized.v1";
        const TYPE: &'static str = "com.example.storage.object.v1.finalized";
        const SCHEMA: &'static str = "com.example.storage.v1.ObjectData";
        const DATA_SCHEMA: &'static str = "proto:com.example.storage.v1.ObjectData";
        type Codec = Protobuf;
    }

    #[test]
    fn a_message_without_dataschema_is_read_unless_the_subscription_requires_it() {
        let event = Shipped {
            order_id: "7".into(),
        };
        let mut bare = envelope(ContentType::Protobuf);
        bare.data_schema = None;
        let data = event.encode_to_vec();
        assert_eq!(decode::<Shipped>(&bare, &data).unwrap(), event);
        assert_eq!(
            decode_with::<Shipped>(&bare, &data, DataSchema::Required)
                .unwrap_err()
                .to_string(),
            "missing schema: expected dataschema `proto:events.order.v1.Shipped`, got none, and \
             this subscription requires it"
        );
        assert_eq!(
            decode_with::<Shipped>(
                &envelope(ContentType::Protobuf),
                &data,
                DataSchema::Required
            )
            .unwrap(),
            event,
            "with dataschema, the strict check passes"
        );
    }

    #[test]
    fn an_event_is_matched_on_its_own_type_not_its_topic() {
        let event = Finalized {
            name: "photo.jpg".into(),
        };
        let data = event.encode_to_vec();
        let mut theirs = envelope(ContentType::Protobuf);
        theirs.event_type = Cow::Borrowed("com.example.storage.object.v1.finalized");
        theirs.data_schema = None;
        assert_eq!(decode::<Finalized>(&theirs, &data).unwrap(), event);

        let mut by_topic = theirs.clone();
        by_topic.event_type = Cow::Borrowed("storage.object.finalized.v1");
        assert_eq!(
            decode::<Finalized>(&by_topic, &data)
                .unwrap_err()
                .to_string(),
            "wrong event type: expected `com.example.storage.object.v1.finalized`, got \
             `storage.object.finalized.v1`"
        );
    }
}
