//! The CloudEvents AMQP protocol binding, binary content mode: each attribute in an
//! application property (a header) named `cloudEvents_` and the attribute, the content type in
//! the `content-type` property, the data as the body.
//!
//! The binding allows `cloudEvents_` and `cloudEvents:` and recommends `_`, which JMS clients
//! and selectors accept; tidings writes `_` and reads both. A message whose content type is
//! `application/cloudevents+json` is read in structured mode.

use std::borrow::Cow;

use bytes::Bytes;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use tidings_core::adapter::attribute_name;
use tidings_core::broker::{Malformed, Message};
use tidings_core::envelope::{Envelope, attr};

/// The prefix tidings writes.
const PREFIX: &str = "cloudEvents_";
/// The prefixes read, lower case, as header names are compared without regard to case.
const PREFIXES: [&str; 2] = ["cloudevents_", "cloudevents:"];
/// The media type of a structured-mode CloudEvents JSON document.
const STRUCTURED: &str = "application/cloudevents+json";
/// Messages survive a broker restart in a durable queue only when marked persistent.
const PERSISTENT: u8 = 2;

/// The longest AMQP short string: property values and header names are written with a one-byte
/// length.
const SHORT_STRING_MAX: usize = u8::MAX as usize;

/// The properties of a message carrying `envelope`, or why AMQP cannot carry it: a header name
/// or content type longer than a short string. The id is also a header, so an id too long for
/// the `message-id` property goes without it.
pub(super) fn properties(envelope: &Envelope) -> Result<BasicProperties, String> {
    let mut headers = FieldTable::default();
    let mut properties = BasicProperties::default().with_delivery_mode(PERSISTENT);
    if envelope.id.len() <= SHORT_STRING_MAX {
        properties = properties.with_message_id(ShortString::from(envelope.id.as_str()));
    }
    for (name, value) in envelope.attributes() {
        if name == attr::DATA_CONTENT_TYPE {
            properties = properties.with_content_type(short_string("the content type", value)?);
        } else {
            headers.insert(
                short_string("the header name", format!("{PREFIX}{name}").into())?,
                // A value made for the header (the time) is moved, not copied.
                AMQPValue::LongString(LongString::from(value.into_owned().into_bytes())),
            );
        }
    }
    Ok(properties.with_headers(headers))
}

/// `text` as a short string (moved into it when owned), or why it is not one.
fn short_string(what: &str, text: Cow<'_, str>) -> Result<ShortString, String> {
    if text.len() > SHORT_STRING_MAX {
        return Err(format!(
            "{what} `{}...` is {} bytes long, and AMQP writes at most {SHORT_STRING_MAX}; shorten it",
            text.chars().take(40).collect::<String>(),
            text.len()
        ));
    }
    Ok(ShortString::from(text.into_owned()))
}

/// Adds attributes (dead-letter reasons) to received properties, replacing any of the same name.
pub(super) fn add_attributes(
    properties: BasicProperties,
    extra: &[(&str, String)],
) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    for (name, value) in extra {
        headers.insert(
            ShortString::from(format!("{PREFIX}{name}")),
            AMQPValue::LongString(LongString::from(value.as_bytes())),
        );
    }
    properties.with_headers(headers)
}

/// A header value as text: strings as they are (borrowed when they are UTF-8, as tidings'
/// own are), numbers and flags as written.
pub(super) fn text(value: &AMQPValue) -> Cow<'_, str> {
    match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()),
        AMQPValue::ShortString(s) => Cow::Borrowed(s.as_str()),
        AMQPValue::Boolean(b) => b.to_string().into(),
        AMQPValue::ShortShortInt(n) => n.to_string().into(),
        AMQPValue::ShortShortUInt(n) => n.to_string().into(),
        AMQPValue::ShortInt(n) => n.to_string().into(),
        AMQPValue::ShortUInt(n) => n.to_string().into(),
        AMQPValue::LongInt(n) => n.to_string().into(),
        AMQPValue::LongUInt(n) => n.to_string().into(),
        AMQPValue::LongLongInt(n) => n.to_string().into(),
        AMQPValue::Timestamp(n) => n.to_string().into(),
        other => format!("{other:?}").into(),
    }
}

/// A header value as a count, when it is a number.
pub(super) fn count(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok(),
        AMQPValue::ShortString(s) => s.as_str().parse().ok(),
        _ => None,
    }
}

/// Reads a received message, or keeps what arrived when it is not a CloudEvent.
pub fn read(properties: &BasicProperties, data: Bytes) -> Result<Message, Malformed> {
    let content_type = properties.content_type().as_ref().map(ShortString::as_str);
    let headers = properties.headers().as_ref().map(FieldTable::inner);
    // Names and values are borrowed: the envelope copies what it keeps.
    let mut pairs: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(10);
    for (name, value) in headers.into_iter().flatten() {
        if let Some(attribute) = PREFIXES
            .iter()
            .find_map(|p| attribute_name(name.as_str(), p))
        {
            pairs.push((attribute, text(value)));
        }
    }
    // Only a message that cannot be read keeps its headers, for the dead-letter topic.
    let malformed = |reason: String, data| Malformed {
        reason,
        headers: headers
            .into_iter()
            .flatten()
            .map(|(name, value)| (name.as_str().to_owned(), text(value).into_owned()))
            .chain(content_type.map(|ct| ("content-type".to_owned(), ct.to_owned())))
            .collect(),
        data,
    };
    // A structured document, with the attributes tidings adds beside it when dead-lettering.
    if content_type.is_some_and(|ct| ct.starts_with(STRUCTURED)) {
        return match Envelope::from_structured_beside(&data, pairs) {
            Ok((envelope, data)) => Ok(Message::new(envelope, data)),
            Err(e) => Err(malformed(e.to_string(), data)),
        };
    }
    if let Some(content_type) = content_type {
        pairs.push((attr::DATA_CONTENT_TYPE, Cow::Borrowed(content_type)));
    }
    match Envelope::from_attributes(pairs) {
        Ok(envelope) => Ok(Message::new(envelope, data)),
        Err(e) => Err(malformed(e.to_string(), data)),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use super::*;
    use tidings_core::codec::ContentType;

    fn envelope() -> Envelope {
        let mut e = Envelope::new(
            Arc::from("billing"),
            Cow::Borrowed("events.order.created.v1"),
            ContentType::Json,
            Some(Cow::Borrowed("proto:events.order.v1.Created")),
        );
        e.causation_depth = 3;
        e.set_extension("tenant", "acme");
        e
    }

    fn header<'a>(properties: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
        properties.headers().as_ref()?.inner().get(name)
    }

    #[test]
    fn binary_mode_uses_prefixed_properties_and_content_type() {
        let e = envelope();
        let properties = properties(&e).unwrap();
        assert_eq!(
            header(&properties, "cloudEvents_specversion")
                .map(text)
                .as_deref(),
            Some("1.0")
        );
        assert_eq!(
            header(&properties, "cloudEvents_id").map(text).as_deref(),
            Some(e.id.as_str())
        );
        assert_eq!(
            header(&properties, "cloudEvents_tenant")
                .map(text)
                .as_deref(),
            Some("acme")
        );
        assert_eq!(
            header(&properties, "cloudEvents_causationdepth")
                .map(text)
                .as_deref(),
            Some("3")
        );
        assert!(header(&properties, "cloudEvents_datacontenttype").is_none());
        assert_eq!(
            properties.content_type().as_ref().map(ShortString::as_str),
            Some("application/json")
        );
        assert_eq!(
            properties.message_id().as_ref().map(ShortString::as_str),
            Some(e.id.as_str())
        );
        assert_eq!(properties.delivery_mode(), &Some(PERSISTENT));

        let back = read(&properties, Bytes::from_static(b"{}")).unwrap();
        assert_eq!(*back.envelope, e);
    }

    #[test]
    fn what_does_not_fit_a_short_string_is_refused_and_a_long_id_stays_a_header() {
        let mut e = envelope();
        e.id = "i".repeat(300).into();
        let written = properties(&e).unwrap();
        assert_eq!(written.message_id(), &None);
        let back = read(&written, Bytes::new()).unwrap();
        assert_eq!(back.envelope.id, e.id);

        // `cloudEvents_` and a 243-byte name: 255 bytes, the longest a header name can be.
        let mut e = envelope();
        e.set_extension("x".repeat(243), "fits");
        assert!(properties(&e).is_ok());
        e.set_extension("y".repeat(244), "does not");
        let reason = properties(&e).unwrap_err();
        assert!(reason.contains("header name `cloudEvents_yyy"), "{reason}");
        assert!(reason.contains("256 bytes long"), "{reason}");

        let mut e = envelope();
        e.data_content_type = Some(Cow::Owned(format!("application/{}", "z".repeat(250))));
        let reason = properties(&e).unwrap_err();
        assert!(reason.contains("content type"), "{reason}");
    }

    #[test]
    fn the_colon_prefix_is_read_too() {
        let mut headers = FieldTable::default();
        for (name, value) in [
            ("specversion", "1.0"),
            ("id", "7"),
            ("source", "py"),
            ("type", "t.x.v1"),
        ] {
            headers.insert(
                ShortString::from(format!("cloudEvents:{name}")),
                AMQPValue::LongString(LongString::from(value.as_bytes())),
            );
        }
        let properties = BasicProperties::default().with_headers(headers);
        let back = read(&properties, Bytes::new()).unwrap();
        assert_eq!(back.envelope.id, "7");
        assert_eq!(back.envelope.source.as_ref(), "py");
    }

    #[test]
    fn header_names_are_read_whatever_their_case_and_characters() {
        let mut headers = FieldTable::default();
        for (name, value) in [
            ("CLOUDEVENTS_specversion", "1.0"),
            ("CloudEvents:ID", "7"),
            ("cloudEvents_source", "py"),
            ("cloudEvents_type", "t.x.v1"),
            // Multi-byte characters across the end of a prefix, and a prefix alone.
            ("cloudEventsé", "a"),
            ("cloudEvent€s_x", "b"),
            ("cloudEvents_", "c"),
            ("cloudEvents_ünïcode", "d"),
        ] {
            headers.insert(
                ShortString::from(name),
                AMQPValue::LongString(LongString::from(value.as_bytes())),
            );
        }
        let properties = BasicProperties::default().with_headers(headers);
        let back = read(&properties, Bytes::new()).unwrap();
        assert_eq!(back.envelope.id, "7");
        assert_eq!(
            back.envelope.extensions,
            [("ünïcode".to_owned(), "d".to_owned())]
        );
    }

    #[test]
    fn dead_letter_attributes_are_added() {
        let properties = add_attributes(
            properties(&envelope()).unwrap(),
            &[("deadletterreason", "x".into())],
        );
        assert_eq!(
            header(&properties, "cloudEvents_deadletterreason")
                .map(text)
                .as_deref(),
            Some("x")
        );
        let back = read(&properties, Bytes::new()).unwrap();
        assert_eq!(back.envelope.extension("deadletterreason"), Some("x"));
    }

    #[test]
    fn a_message_without_attributes_is_kept_whole() {
        let properties =
            BasicProperties::default().with_content_type(ShortString::from("text/plain"));
        let err = read(&properties, Bytes::from_static(b"hello")).unwrap_err();
        assert!(err.reason.contains("specversion"), "{}", err.reason);
        assert_eq!(
            err.headers,
            vec![("content-type".to_owned(), "text/plain".to_owned())]
        );
        assert_eq!(&err.data[..], b"hello");
    }

    #[test]
    fn counts_read_any_integer() {
        assert_eq!(count(&AMQPValue::LongLongInt(3)), Some(3));
        assert_eq!(
            count(&AMQPValue::LongString(LongString::from(&b"4"[..]))),
            Some(4)
        );
        assert_eq!(count(&AMQPValue::LongLongInt(-1)), None);
    }
}
