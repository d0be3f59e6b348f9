//! The CloudEvents NATS protocol binding, binary content mode: each attribute in a `ce-`
//! header, the content type in `content-type`, the data as the payload. A message whose
//! `content-type` is `application/cloudevents+json` is read in structured mode.

use std::borrow::Cow;

use async_nats::HeaderMap;
use async_nats::header::HeaderName;
use bytes::Bytes;

use tidings_core::adapter::attribute_name;
use tidings_core::broker::{Malformed, Message};
use tidings_core::envelope::{Envelope, attr};

/// The prefix of attribute headers.
const PREFIX: &str = "ce-";
/// The header carrying `datacontenttype`.
const CONTENT_TYPE: &str = "content-type";
/// The media type of a structured-mode CloudEvents JSON document.
const STRUCTURED: &str = "application/cloudevents+json";

/// The header of each attribute tidings writes on every event. Names made once, as constants:
/// a name the client makes from a `&str` is a copy of it, on every publish.
const SPEC_VERSION: HeaderName = HeaderName::from_static("ce-specversion");
const ID: HeaderName = HeaderName::from_static("ce-id");
const SOURCE: HeaderName = HeaderName::from_static("ce-source");
const TYPE: HeaderName = HeaderName::from_static("ce-type");
const TIME: HeaderName = HeaderName::from_static("ce-time");
const DATA_SCHEMA: HeaderName = HeaderName::from_static("ce-dataschema");
const DATA_CONTENT_TYPE: HeaderName = HeaderName::from_static(CONTENT_TYPE);

/// The headers of `envelope`, with `extra` attributes (dead-letter reasons) after its own.
pub(super) fn headers(envelope: &Envelope, extra: &[(&str, String)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in envelope.attributes() {
        let value = header_value(value);
        match name {
            attr::DATA_CONTENT_TYPE => headers.insert(DATA_CONTENT_TYPE, value),
            attr::SPEC_VERSION => headers.insert(SPEC_VERSION, value),
            attr::ID => headers.insert(ID, value),
            attr::SOURCE => headers.insert(SOURCE, value),
            attr::TYPE => headers.insert(TYPE, value),
            attr::TIME => headers.insert(TIME, value),
            attr::DATA_SCHEMA => headers.insert(DATA_SCHEMA, value),
            _ => headers.insert(format!("{PREFIX}{name}"), value),
        }
    }
    add_attributes(&mut headers, extra);
    headers
}

/// Adds attributes to the headers of a received message (dead-letter reasons), replacing
/// headers of the same name.
pub(super) fn add_attributes(headers: &mut HeaderMap, extra: &[(&str, String)]) {
    for (name, value) in extra {
        headers.insert(format!("{PREFIX}{name}"), header_value(value.into()));
    }
}

/// Header values end at a line break, so line breaks in a value (an error message in a
/// dead-letter reason) become spaces. A value made for the header (the time) is moved, not
/// copied.
fn header_value(value: Cow<'_, str>) -> String {
    if value.contains(['\r', '\n']) {
        value.replace(['\r', '\n'], " ")
    } else {
        value.into_owned()
    }
}

/// Reads a received message, or keeps what arrived when it is not a CloudEvent.
pub fn read(headers: Option<&HeaderMap>, payload: Bytes) -> Result<Message, Malformed> {
    // Names are borrowed: reading the envelope compares them without regard to case.
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(10);
    let mut content_type = None;
    for (name, values) in headers.into_iter().flat_map(HeaderMap::iter) {
        let Some(value) = values.first() else {
            continue;
        };
        let name: &str = name.as_ref();
        if let Some(attribute) = attribute_name(name, PREFIX) {
            pairs.push((attribute, value.as_str()));
        } else if name.eq_ignore_ascii_case(CONTENT_TYPE) {
            content_type = Some(value.as_str());
        }
    }
    // Only a message that cannot be read keeps its headers, for the dead-letter topic.
    let malformed = |reason: String, data| Malformed {
        reason,
        headers: headers
            .into_iter()
            .flat_map(HeaderMap::iter)
            .flat_map(|(name, values)| {
                values
                    .iter()
                    .map(move |v| (AsRef::<str>::as_ref(name).to_owned(), v.as_str().to_owned()))
            })
            .collect(),
        data,
    };
    // A structured document, with the attributes tidings adds beside it when dead-lettering.
    if content_type.is_some_and(|ct| ct.starts_with(STRUCTURED)) {
        return match Envelope::from_structured_beside(&payload, pairs) {
            Ok((envelope, data)) => Ok(Message::new(envelope, data)),
            Err(e) => Err(malformed(e.to_string(), payload)),
        };
    }
    if let Some(content_type) = content_type {
        pairs.push((attr::DATA_CONTENT_TYPE, content_type));
    }
    match Envelope::from_attributes(pairs) {
        Ok(envelope) => Ok(Message::new(envelope, payload)),
        Err(e) => Err(malformed(e.to_string(), payload)),
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
            ContentType::Protobuf,
            Some(Cow::Borrowed("proto:events.order.v1.Created")),
        );
        e.partition_key = Some("order-7".into());
        e.causation_depth = 3;
        e.set_extension("tenant", "acme");
        e
    }

    #[test]
    fn binary_mode_uses_ce_headers_and_content_type() {
        let e = envelope();
        let headers = headers(&e, &[]);
        assert_eq!(
            headers.get("ce-specversion").map(|v| v.as_str()),
            Some("1.0")
        );
        assert_eq!(
            headers.get("ce-id").map(|v| v.as_str()),
            Some(e.id.as_str())
        );
        assert_eq!(
            headers.get("ce-type").map(|v| v.as_str()),
            Some("events.order.created.v1")
        );
        assert_eq!(
            headers.get("content-type").map(|v| v.as_str()),
            Some("application/protobuf")
        );
        assert!(headers.get("ce-datacontenttype").is_none());
        assert_eq!(headers.get("ce-tenant").map(|v| v.as_str()), Some("acme"));
        assert_eq!(
            headers.get("ce-causationdepth").map(|v| v.as_str()),
            Some("3")
        );

        let back = read(Some(&headers), Bytes::from_static(b"\x08\x01")).unwrap();
        assert_eq!(*back.envelope, e);
        assert_eq!(&back.data[..], b"\x08\x01");
    }

    #[test]
    fn line_breaks_cannot_end_a_header_early() {
        let headers = headers(
            &envelope(),
            &[("deadletterreason", "bad\r\nthing".to_owned())],
        );
        assert_eq!(
            headers.get("ce-deadletterreason").map(|v| v.as_str()),
            Some("bad  thing")
        );
    }

    #[test]
    fn attribute_headers_are_read_whatever_their_case() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("CE-SpecVersion", "1.0"),
            ("Ce-Id", "7"),
            ("ce-source", "go"),
            ("CE-TYPE", "t.x.v1"),
            ("ce-", "nothing"),
            ("ce", "short"),
        ] {
            headers.insert(name, value);
        }
        let back = read(Some(&headers), Bytes::new()).unwrap();
        assert_eq!(back.envelope.id, "7");
        assert_eq!(back.envelope.event_type, "t.x.v1");
        assert!(back.envelope.extensions.is_empty(), "{:?}", back.envelope);
    }

    #[test]
    fn structured_mode_is_read_too() {
        let e = envelope();
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "application/cloudevents+json; charset=utf-8",
        );
        let doc = e.to_structured(b"\x01\x02");
        let back = read(Some(&headers), Bytes::from(doc)).unwrap();
        assert_eq!(*back.envelope, e);
        assert_eq!(&back.data[..], b"\x01\x02");
    }

    #[test]
    fn a_dead_lettered_structured_message_keeps_the_attributes_beside_it() {
        let e = envelope();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/cloudevents+json");
        headers.insert("ce-deadletterreason", "wrong schema");
        // Beside the document, a known attribute does not override it.
        headers.insert("ce-id", "not-the-id");
        let back = read(Some(&headers), Bytes::from(e.to_structured(b"\x01"))).unwrap();
        assert_eq!(back.envelope.id, e.id);
        assert_eq!(back.envelope.extension("tenant"), Some("acme"));
        assert_eq!(
            back.envelope.extension("deadletterreason"),
            Some("wrong schema")
        );
    }

    #[test]
    fn a_message_without_attributes_is_kept_whole() {
        let mut headers = HeaderMap::new();
        headers.insert("x-trace", "1");
        let err = read(Some(&headers), Bytes::from_static(b"hello")).unwrap_err();
        assert!(err.reason.contains("specversion"), "{}", err.reason);
        assert_eq!(err.headers, vec![("x-trace".to_owned(), "1".to_owned())]);
        assert_eq!(&err.data[..], b"hello");
        assert!(read(None, Bytes::new()).is_err());
    }
}
