//! The CloudEvents MQTT binding, MQTT 5 format.
//!
//! Binary content mode when writing: the data is the PUBLISH payload, `datacontenttype` goes in
//! the Content Type property, and every other attribute (extensions included) is a User
//! Property named exactly as the attribute (`specversion`, `id`, `type`...), without prefix, as
//! the binding specifies. When reading, a message whose content type is
//! `application/cloudevents+json` is read in structured mode.

use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};

use tidings_core::broker::{DeadLetter, Malformed, Message};
use tidings_core::envelope::{Envelope, attr};

/// The content type of a structured-mode CloudEvents message.
const STRUCTURED: &str = "application/cloudevents+json";

/// The PUBLISH properties that carry `message`'s attributes.
pub(super) fn properties(message: &Message) -> PublishProperties {
    let mut properties = PublishProperties::default();
    for (name, value) in message.envelope.attributes() {
        if name == attr::DATA_CONTENT_TYPE {
            properties.content_type = Some(value.into_owned());
        } else {
            properties
                .user_properties
                .push((name.to_owned(), value.into_owned()));
        }
    }
    properties
}

/// Reads the message a PUBLISH carries, or says why it is not one.
pub fn decode(publish: &Publish) -> Result<Message, Malformed> {
    let properties = publish.properties.as_ref();
    let content_type = properties.and_then(|p| p.content_type.as_deref());
    let read = if content_type.is_some_and(|ct| ct.starts_with(STRUCTURED)) {
        Envelope::from_structured(&publish.payload)
            .map(|(envelope, data)| Message::new(envelope, data))
    } else {
        let user = properties
            .map(|p| p.user_properties.as_slice())
            .unwrap_or_default();
        let attributes = user
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .chain(content_type.map(|ct| (attr::DATA_CONTENT_TYPE, ct.to_owned())));
        Envelope::from_attributes(attributes)
            .map(|envelope| Message::new(envelope, publish.payload.clone()))
    };
    read.map_err(|e| Malformed {
        reason: e.to_string(),
        headers: headers(properties),
        data: publish.payload.clone(),
    })
}

/// The properties of `publish` moved to a dead-letter topic: the same with the reason,
/// attempts and original topic as attributes.
pub(super) fn dead_letter(publish: &Publish, letter: &DeadLetter) -> PublishProperties {
    let added = [
        (attr::DEAD_LETTER_REASON, letter.reason.clone()),
        (attr::DEAD_LETTER_ATTEMPTS, letter.attempts.to_string()),
        (attr::DEAD_LETTER_TOPIC, letter.topic.to_string()),
    ];
    let original = publish.properties.as_ref();
    let mut properties = PublishProperties {
        content_type: original.and_then(|p| p.content_type.clone()),
        user_properties: original
            .map(|p| p.user_properties.clone())
            .unwrap_or_default(),
        ..PublishProperties::default()
    };
    properties
        .user_properties
        .retain(|(k, _)| !added.iter().any(|(name, _)| k == name));
    for (name, value) in added {
        properties.user_properties.push((name.to_owned(), value));
    }
    properties
}

/// The transport headers of a PUBLISH, for a message that could not be read.
fn headers(properties: Option<&PublishProperties>) -> Vec<(String, String)> {
    let Some(properties) = properties else {
        return Vec::new();
    };
    let mut out = properties.user_properties.clone();
    if let Some(ct) = &properties.content_type {
        out.push(("content-type".to_owned(), ct.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use bytes::Bytes;
    use rumqttc::v5::mqttbytes::QoS;

    use super::*;
    use tidings_core::codec::ContentType;
    use tidings_core::topic::Topic;

    /// A PUBLISH as the subscriber receives it.
    fn received(topic: &str, payload: Bytes, properties: PublishProperties) -> Publish {
        Publish::new(topic, QoS::AtLeastOnce, payload, Some(properties))
    }

    fn message() -> Message {
        let mut envelope = Envelope::new(
            Arc::from("tests"),
            Cow::Borrowed("events.order.created.v1"),
            ContentType::Json,
            Some(Cow::Borrowed("proto:events.order.v1.Created")),
        );
        envelope.causation_depth = 3;
        envelope.set_extension("tenant", "acme");
        Message::new(envelope, Bytes::from_static(br#"{"orderId":"7"}"#))
    }

    #[test]
    fn attributes_are_unprefixed_user_properties_and_content_type_is_the_property() {
        let message = message();
        let properties = properties(&message);
        assert_eq!(properties.content_type.as_deref(), Some("application/json"));
        let names: Vec<_> = properties
            .user_properties
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert!(
            names.contains(&"specversion") && names.contains(&"tenant"),
            "{names:?}"
        );
        assert!(!names.contains(&"datacontenttype"));
        assert!(
            properties
                .user_properties
                .contains(&("causationdepth".to_owned(), "3".to_owned())),
            "{names:?}"
        );
        let publish = received("events/order/created/v1", message.data.clone(), properties);
        assert_eq!(decode(&publish), Ok(message));
    }

    #[test]
    fn structured_mode_is_read() {
        let message = message();
        let document = message.envelope.to_structured(&message.data);
        let properties = PublishProperties {
            content_type: Some("application/cloudevents+json; charset=utf-8".into()),
            ..PublishProperties::default()
        };
        let publish = received("events/order/created/v1", Bytes::from(document), properties);
        assert_eq!(decode(&publish), Ok(message));
    }

    #[test]
    fn a_publish_without_attributes_is_malformed_and_kept_whole() {
        let properties = PublishProperties {
            content_type: Some("text/plain".into()),
            user_properties: vec![("origin".into(), "sensor".into())],
            ..PublishProperties::default()
        };
        let publish = received(
            "events/order/created/v1",
            Bytes::from_static(b"21.5"),
            properties,
        );
        let malformed = decode(&publish).unwrap_err();
        assert!(
            malformed.reason.contains("specversion"),
            "{}",
            malformed.reason
        );
        assert_eq!(
            malformed.headers,
            vec![
                ("origin".into(), "sensor".into()),
                ("content-type".into(), "text/plain".into())
            ]
        );
        assert_eq!(&malformed.data[..], b"21.5");
    }

    #[test]
    fn dead_letters_carry_the_reason_once() {
        let topic = Topic::new("events.order.created.v1").unwrap();
        let letter = DeadLetter {
            reason: "boom".into(),
            attempts: 2,
            topic,
        };
        let publish = received(
            "events/order/created/v1",
            message().data,
            properties(&message()),
        );
        let first = received("dlq", message().data, dead_letter(&publish, &letter));
        let again = dead_letter(
            &first,
            &DeadLetter {
                reason: "again".into(),
                ..letter
            },
        );
        let reasons = again
            .user_properties
            .iter()
            .filter(|(k, _)| k == "deadletterreason")
            .count();
        assert_eq!(reasons, 1);
        let back = decode(&received("dlq", message().data, again)).unwrap();
        assert_eq!(back.envelope.extension("deadletterreason"), Some("again"));
        assert_eq!(back.envelope.extension("deadletterattempts"), Some("2"));
        assert_eq!(
            back.envelope.data_content_type.as_deref(),
            Some("application/json")
        );
    }
}
