//! The CloudEvents Kafka protocol binding, binary content mode: each attribute in a `ce_`
//! header, `datacontenttype` in `content-type`, the data as the record's value, and the
//! `partitionkey` extension as the record's key (so one key stays on one partition, in order).
//! A record whose `content-type` is `application/cloudevents+json` is read in structured mode.

use std::borrow::Cow;
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;
use rdkafka::message::{Header, Headers, OwnedHeaders};

use tidings_core::broker::{DeadLetter, Malformed, Message};
use tidings_core::envelope::{Envelope, attr};

/// The prefix of headers that carry a CloudEvents attribute.
pub const ATTRIBUTE_PREFIX: &str = "ce_";
/// The header that carries `datacontenttype`.
pub const CONTENT_TYPE: &str = "content-type";
/// The media type of a structured-mode CloudEvents JSON document.
const STRUCTURED: &str = "application/cloudevents+json";

/// A record as it came off a partition, kept so it can be handed out again or moved to the
/// dead letters exactly as it arrived.
#[derive(Clone, Debug)]
pub struct Record {
    /// The record's key, which carries `partitionkey`.
    pub key: Option<Bytes>,
    /// The record's headers, in order, a name possibly more than once.
    pub headers: Vec<(String, Bytes)>,
    /// The record's value: the event data.
    pub value: Bytes,
    /// How many headers could not be copied, their names not being UTF-8 text.
    pub unreadable: usize,
}

impl Record {
    /// Copies a received record out of the client's buffers. A header whose name is not UTF-8
    /// text cannot be copied: rdkafka panics reading one (it unwraps the name's conversion to
    /// `&str`), so each header is read apart, such a header is left out and counted, and the
    /// record is then read as malformed.
    pub(super) fn copy(
        key: Option<&[u8]>,
        headers: Option<&impl Headers>,
        value: Option<&[u8]>,
    ) -> Self {
        let mut copied = Vec::new();
        let mut unreadable = 0;
        if let Some(headers) = headers {
            let count = headers.count();
            copied.reserve(count);
            for index in 0..count {
                let header = catch_unwind(AssertUnwindSafe(|| {
                    headers.try_get(index).map(|header| {
                        let value = header.value.map(Bytes::copy_from_slice).unwrap_or_default();
                        (header.key.to_owned(), value)
                    })
                }));
                match header {
                    Ok(Some(header)) => copied.push(header),
                    Ok(None) => {}
                    Err(_) => unreadable += 1,
                }
            }
        }
        Record {
            key: key.map(Bytes::copy_from_slice),
            headers: copied,
            value: value.map(Bytes::copy_from_slice).unwrap_or_default(),
            unreadable,
        }
    }

    /// Reads the message this record carries, or keeps what arrived when it is not one.
    pub fn read(&self) -> Result<Message, Malformed> {
        if self.unreadable > 0 {
            return Err(self.malformed(format!(
                "{} of its headers have a name that is not UTF-8 text",
                self.unreadable
            )));
        }
        let mut pairs: Vec<(&str, String)> = Vec::with_capacity(self.headers.len() + 1);
        // The attributes already read, so that a header given again is found at once however
        // many headers a record has.
        let mut seen = HashSet::with_capacity(self.headers.len());
        let mut content_type = None;
        for (name, value) in &self.headers {
            let attribute = if name.eq_ignore_ascii_case(CONTENT_TYPE) {
                attr::DATA_CONTENT_TYPE
            } else if let Some(attribute) = name.strip_prefix(ATTRIBUTE_PREFIX) {
                attribute
            } else {
                continue;
            };
            // Kafka allows a header twice; the first one counts.
            if !seen.insert(attribute) {
                continue;
            }
            let Ok(text) = std::str::from_utf8(value) else {
                return Err(self.malformed(format!("header `{name}` is not UTF-8 text")));
            };
            if attribute == attr::DATA_CONTENT_TYPE {
                content_type = Some(text.to_owned());
            }
            pairs.push((attribute, text.to_owned()));
        }
        let structured = content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with(STRUCTURED));
        // A structured document, with the attributes tidings adds beside it when dead-lettering.
        if structured {
            return match Envelope::from_structured_beside(&self.value, pairs) {
                Ok((envelope, data)) => Ok(Message::new(envelope, data)),
                Err(e) => Err(self.malformed(e.to_string())),
            };
        }
        // The CloudEvents SDK for Python writes a structured event with the event's own content
        // type in `content-type` and the other attributes in the document: a record with no
        // attribute header but that one, whose value is a CloudEvents document, is read so.
        if pairs.len() <= 1
            && self.value.first() == Some(&b'{')
            && let Ok((mut envelope, data)) = Envelope::from_structured(&self.value)
        {
            if envelope.data_content_type.is_none() {
                envelope.data_content_type = content_type.map(Cow::Owned);
            }
            return Ok(Message::new(envelope, data));
        }
        // The binding maps the key to `partitionkey` when no header says otherwise.
        let has_key_attribute = pairs.iter().any(|(name, _)| *name == attr::PARTITION_KEY);
        if !has_key_attribute
            && let Some(key) = self
                .key
                .as_deref()
                .and_then(|k| std::str::from_utf8(k).ok())
        {
            pairs.push((attr::PARTITION_KEY, key.to_owned()));
        }
        match Envelope::from_attributes(pairs) {
            Ok(envelope) => Ok(Message::new(envelope, self.value.clone())),
            Err(e) => Err(self.malformed(e.to_string())),
        }
    }

    /// The headers of this record moved to a dead-letter topic: its own, less any earlier
    /// dead-letter attributes, then the reason, attempts and original topic.
    pub(super) fn dead_letter_headers(&self, letter: &DeadLetter) -> OwnedHeaders {
        let added = letter.attributes();
        let mut headers = OwnedHeaders::new_with_capacity(self.headers.len() + added.len());
        for (name, value) in &self.headers {
            let replaced = name
                .strip_prefix(ATTRIBUTE_PREFIX)
                .is_some_and(|attribute| added.iter().any(|(a, _)| *a == attribute));
            if !replaced {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(&value[..]),
                });
            }
        }
        for (name, value) in added {
            let key = format!("{ATTRIBUTE_PREFIX}{name}");
            headers = headers.insert(Header {
                key: &key,
                value: Some(value.as_bytes()),
            });
        }
        headers
    }

    fn malformed(&self, reason: String) -> Malformed {
        Malformed {
            reason,
            headers: self
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), String::from_utf8_lossy(value).into_owned()))
                .collect(),
            data: self.value.clone(),
        }
    }
}

/// The headers that carry `envelope`. `partitionkey` goes in the record's key instead.
pub(super) fn headers(envelope: &Envelope) -> OwnedHeaders {
    let attributes = envelope.attributes();
    let mut headers = OwnedHeaders::new_with_capacity(attributes.len());
    let mut name = String::with_capacity(24);
    for (attribute, value) in &attributes {
        if *attribute == attr::PARTITION_KEY {
            continue;
        }
        let key = if *attribute == attr::DATA_CONTENT_TYPE {
            CONTENT_TYPE
        } else {
            name.clear();
            name.push_str(ATTRIBUTE_PREFIX);
            name.push_str(attribute);
            &name
        };
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    headers
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use rdkafka::message::Headers;

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
        envelope.traceparent =
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        envelope.causation_depth = 3;
        Message::new(envelope, Bytes::from_static(b"\x08\x07\xff"))
    }

    /// The record a producer would write for `message`.
    fn record(message: &Message) -> Record {
        let headers = headers(&message.envelope);
        let key = message.envelope.partition_key.as_deref().map(str::as_bytes);
        Record::copy(key, Some(&headers), Some(&message.data))
    }

    fn header<'a>(record: &'a Record, name: &str) -> Option<&'a [u8]> {
        record
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| &v[..])
    }

    #[test]
    fn attributes_are_ce_headers_content_type_its_own_and_the_key_is_the_partition_key() {
        let message = message();
        let record = record(&message);
        assert_eq!(header(&record, "ce_specversion"), Some(&b"1.0"[..]));
        assert_eq!(
            header(&record, "ce_type"),
            Some(&b"events.order.created.v1"[..])
        );
        assert_eq!(
            header(&record, "ce_id"),
            Some(message.envelope.id.as_bytes())
        );
        assert_eq!(
            header(&record, "content-type"),
            Some(&b"application/protobuf"[..])
        );
        assert_eq!(header(&record, "ce_datacontenttype"), None);
        assert_eq!(header(&record, "ce_partitionkey"), None);
        assert_eq!(header(&record, "ce_causationdepth"), Some(&b"3"[..]));
        assert_eq!(record.key.as_deref(), Some(&b"order-7"[..]));
        assert_eq!(record.read(), Ok(message));
    }

    #[test]
    fn a_partitionkey_header_wins_over_the_key() {
        let mut record = record(&message());
        record
            .headers
            .push(("ce_partitionkey".into(), Bytes::from_static(b"from-header")));
        let read = record.read().unwrap();
        assert_eq!(read.envelope.partition_key.as_deref(), Some("from-header"));
    }

    #[test]
    fn with_many_headers_given_twice_the_first_of_each_counts() {
        let mut record = record(&message());
        let extensions = 20_000;
        for copy in ["first", "second"] {
            for n in 0..extensions {
                record
                    .headers
                    .push((format!("ce_x{n}"), Bytes::from(format!("{copy} {n}"))));
            }
        }
        record
            .headers
            .push(("ce_type".into(), Bytes::from_static(b"events.other.v1")));
        let read = record.read().unwrap();
        assert_eq!(read.envelope.event_type, "events.order.created.v1");
        assert_eq!(read.envelope.extensions.len(), extensions);
        for (n, (name, value)) in read.envelope.extensions.iter().enumerate() {
            assert_eq!(
                (name.as_str(), value.as_str()),
                (&*format!("x{n}"), &*format!("first {n}"))
            );
        }
    }

    /// Headers read as rdkafka reads them, whose second name is not UTF-8 text: rdkafka panics
    /// on it.
    struct NameNotUtf8;

    impl Headers for NameNotUtf8 {
        fn count(&self) -> usize {
            3
        }

        fn try_get(&self, index: usize) -> Option<Header<'_, &[u8]>> {
            match index {
                0 => Some(Header {
                    key: "ce_specversion",
                    value: Some(b"1.0"),
                }),
                // What rdkafka does with such a name (`CStr::to_str().unwrap()`).
                1 => panic!("called `Result::unwrap()` on an `Err` value: Utf8Error"),
                2 => Some(Header {
                    key: "other",
                    value: None,
                }),
                _ => None,
            }
        }
    }

    #[test]
    fn a_header_name_that_is_not_utf8_makes_the_record_malformed_without_a_panic() {
        let record = Record::copy(None, Some(&NameNotUtf8), Some(b"raw"));
        assert_eq!(record.unreadable, 1);
        assert_eq!(record.headers.len(), 2);
        let malformed = record.read().unwrap_err();
        assert_eq!(
            malformed.reason,
            "1 of its headers have a name that is not UTF-8 text"
        );
        assert_eq!(
            malformed.headers,
            vec![
                ("ce_specversion".into(), "1.0".into()),
                ("other".into(), String::new())
            ]
        );
        assert_eq!(&malformed.data[..], b"raw");
    }

    #[test]
    fn a_record_without_attributes_is_malformed_and_kept_whole() {
        let record = Record {
            key: None,
            headers: vec![
                ("ce_id".into(), Bytes::from_static(b"1")),
                ("other".into(), Bytes::from_static(b"x")),
            ],
            value: Bytes::from_static(b"raw"),
            unreadable: 0,
        };
        let malformed = record.read().unwrap_err();
        assert!(
            malformed.reason.contains("specversion"),
            "{}",
            malformed.reason
        );
        assert_eq!(
            malformed.headers,
            vec![("ce_id".into(), "1".into()), ("other".into(), "x".into())]
        );
        assert_eq!(&malformed.data[..], b"raw");
    }

    #[test]
    fn structured_mode_is_read() {
        let message = message();
        let record = Record {
            key: None,
            headers: vec![(
                "content-type".into(),
                Bytes::from_static(b"application/cloudevents+json"),
            )],
            value: Bytes::from(message.envelope.to_structured(&message.data)),
            unreadable: 0,
        };
        assert_eq!(record.read(), Ok(message));
    }

    #[test]
    fn the_python_sdks_structured_records_are_read() {
        // As `cloudevents.kafka.to_structured` writes one: the event's content type in the
        // header, the other attributes and the JSON data in the document.
        let record = Record {
            key: None,
            headers: vec![("content-type".into(), Bytes::from_static(b"application/json"))],
            value: Bytes::from_static(
                br#"{"specversion":"1.0","id":"7","source":"py","type":"a.b.v1","data":{"orderId":"o-7"}}"#,
            ),
            unreadable: 0,
        };
        let message = record.read().unwrap();
        assert_eq!(message.envelope.id, "7");
        assert_eq!(
            message.envelope.data_content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(&message.data[..], br#"{"orderId":"o-7"}"#);

        // A value that is no such document stays a binary-mode record without attributes.
        let plain = Record {
            value: Bytes::from_static(br#"{"orderId":"o-7"}"#),
            ..record
        };
        assert!(plain.read().unwrap_err().reason.contains("specversion"));
    }

    #[test]
    fn dead_letters_carry_the_reason_once() {
        let topic = Topic::new("events.order.created.v1").unwrap();
        let letter = DeadLetter {
            reason: "boom".into(),
            attempts: 3,
            topic,
        };
        let first = record(&message());
        let headers = first.dead_letter_headers(&letter);
        let once = Record::copy(first.key.as_deref(), Some(&headers), Some(&first.value));
        let again = once.dead_letter_headers(&DeadLetter {
            reason: "again".into(),
            ..letter
        });
        let reasons = again
            .iter()
            .filter(|h| h.key == "ce_deadletterreason")
            .count();
        assert_eq!(reasons, 1);
        let back = Record::copy(first.key.as_deref(), Some(&again), Some(&first.value))
            .read()
            .unwrap();
        assert_eq!(back.envelope.extension("deadletterreason"), Some("again"));
        assert_eq!(back.envelope.extension("deadletterattempts"), Some("3"));
        assert_eq!(
            back.envelope.extension("deadlettertopic"),
            Some("events.order.created.v1")
        );
        assert_eq!(back.envelope.partition_key.as_deref(), Some("order-7"));
    }
}
