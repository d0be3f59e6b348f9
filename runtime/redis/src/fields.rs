//! CloudEvents in the fields of a Redis Stream entry (binary content mode).
//!
//! Redis Streams have no CloudEvents binding of their own. An entry is a flat list of named
//! fields, like Kafka's record headers, so tidings follows the Kafka binding's convention: each
//! attribute in a field `ce_<attribute>` (`ce_id`, `ce_type`, `ce_traceparent`...), the content
//! type in `content-type`, and the event data, as bytes, in `data`. Any other field is ignored
//! when reading.

use bytes::Bytes;

use tidings_core::broker::{DeadLetter, Malformed, Message};
use tidings_core::envelope::{Envelope, attr};

/// The prefix of fields that carry a CloudEvents attribute.
pub const ATTRIBUTE_PREFIX: &str = "ce_";
/// The field that carries `datacontenttype`.
pub const CONTENT_TYPE: &str = "content-type";
/// The field that carries the event data.
pub const DATA: &str = "data";

/// The fields of one entry, as written or read, in order.
pub type Fields = Vec<(String, Bytes)>;

/// The fields that carry `message`.
pub(super) fn encode(message: &Message) -> Fields {
    let attributes = message.envelope.attributes();
    let mut fields = Vec::with_capacity(attributes.len() + 1);
    for (name, value) in attributes {
        let field = if name == attr::DATA_CONTENT_TYPE {
            CONTENT_TYPE.to_owned()
        } else {
            format!("{ATTRIBUTE_PREFIX}{name}")
        };
        fields.push((field, Bytes::from(value.into_owned())));
    }
    fields.push((DATA.to_owned(), message.data.clone()));
    fields
}

/// Reads the message an entry carries, or says why it is not one.
pub fn decode(fields: &Fields) -> Result<Message, Malformed> {
    let mut attributes = Vec::with_capacity(fields.len());
    let mut data = Bytes::new();
    for (field, value) in fields {
        let name = if field == CONTENT_TYPE {
            attr::DATA_CONTENT_TYPE
        } else if let Some(name) = field.strip_prefix(ATTRIBUTE_PREFIX) {
            name
        } else {
            if field == DATA {
                data = value.clone();
            }
            continue;
        };
        match std::str::from_utf8(value) {
            Ok(text) => attributes.push((name, text.to_owned())),
            Err(_) => {
                return Err(malformed(
                    format!("field `{field}` is not UTF-8 text"),
                    fields,
                ));
            }
        }
    }
    match Envelope::from_attributes(attributes) {
        Ok(envelope) => Ok(Message::new(envelope, data)),
        Err(e) => Err(malformed(e.to_string(), fields)),
    }
}

/// The fields of `fields` moved to a dead-letter stream: the same entry with the reason,
/// attempts and original topic as attributes.
pub(super) fn dead_letter(fields: &Fields, letter: &DeadLetter) -> Fields {
    let added = [
        (attr::DEAD_LETTER_REASON, letter.reason.clone()),
        (attr::DEAD_LETTER_ATTEMPTS, letter.attempts.to_string()),
        (attr::DEAD_LETTER_TOPIC, letter.topic.to_string()),
    ];
    let mut out: Fields = fields
        .iter()
        .filter(|(field, _)| {
            !added
                .iter()
                .any(|(name, _)| field.strip_prefix(ATTRIBUTE_PREFIX) == Some(name))
        })
        .cloned()
        .collect();
    for (name, value) in added {
        out.push((format!("{ATTRIBUTE_PREFIX}{name}"), Bytes::from(value)));
    }
    out
}

fn malformed(reason: String, fields: &Fields) -> Malformed {
    Malformed {
        reason,
        headers: fields
            .iter()
            .filter(|(field, _)| field != DATA)
            .map(|(field, value)| (field.clone(), String::from_utf8_lossy(value).into_owned()))
            .collect(),
        data: fields
            .iter()
            .find(|(field, _)| field == DATA)
            .map(|(_, value)| value.clone())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use super::*;
    use tidings_core::codec::ContentType;
    use tidings_core::topic::Topic;

    fn message() -> Message {
        let mut envelope = Envelope::new(
            Arc::from("tests"),
            Cow::Borrowed("events.order.created.v1"),
            ContentType::Protobuf,
            Some(Cow::Borrowed("proto:events.order.v1.Created")),
        );
        envelope.partition_key = Some("order-7".into());
        envelope.causation_depth = 3;
        Message::new(envelope, Bytes::from_static(b"\x08\x07\xff"))
    }

    fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a [u8]> {
        fields.iter().find(|(f, _)| f == name).map(|(_, v)| &v[..])
    }

    #[test]
    fn attributes_are_prefixed_fields_and_content_type_has_its_own() {
        let message = message();
        let fields = encode(&message);
        assert_eq!(field(&fields, "ce_specversion"), Some(&b"1.0"[..]));
        assert_eq!(
            field(&fields, "ce_type"),
            Some(&b"events.order.created.v1"[..])
        );
        assert_eq!(field(&fields, "ce_partitionkey"), Some(&b"order-7"[..]));
        assert_eq!(
            field(&fields, "content-type"),
            Some(&b"application/protobuf"[..])
        );
        assert_eq!(field(&fields, "ce_datacontenttype"), None);
        assert_eq!(field(&fields, "ce_causationdepth"), Some(&b"3"[..]));
        assert_eq!(field(&fields, "data"), Some(&b"\x08\x07\xff"[..]));
        assert_eq!(decode(&fields), Ok(message));
    }

    #[test]
    fn an_entry_without_attributes_is_malformed_and_kept_whole() {
        let fields: Fields = vec![
            ("ce_id".into(), Bytes::from_static(b"1")),
            ("data".into(), Bytes::from_static(b"raw")),
        ];
        let malformed = decode(&fields).unwrap_err();
        assert!(
            malformed.reason.contains("specversion"),
            "{}",
            malformed.reason
        );
        assert_eq!(
            malformed.headers,
            vec![("ce_id".to_owned(), "1".to_owned())]
        );
        assert_eq!(&malformed.data[..], b"raw");
    }

    #[test]
    fn dead_letters_carry_the_reason_once() {
        let topic = Topic::new("events.order.created.v1").unwrap();
        let letter = DeadLetter {
            reason: "boom".into(),
            attempts: 3,
            topic,
        };
        let first = dead_letter(&encode(&message()), &letter);
        let again = dead_letter(
            &first,
            &DeadLetter {
                reason: "again".into(),
                ..letter
            },
        );
        let reasons: Vec<_> = again
            .iter()
            .filter(|(f, _)| f == "ce_deadletterreason")
            .collect();
        assert_eq!(reasons.len(), 1);
        let back = decode(&again).unwrap();
        assert_eq!(back.envelope.extension("deadletterreason"), Some("again"));
        assert_eq!(back.envelope.extension("deadletterattempts"), Some("3"));
        assert_eq!(
            back.envelope.extension("deadlettertopic"),
            Some("events.order.created.v1")
        );
    }
}
