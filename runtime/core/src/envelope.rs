//! The CloudEvents 1.0 envelope every message travels in.
//!
//! Transports with headers carry the attributes one per header (binary content mode, each with
//! its own binding's prefix); transports without carry the whole event as one JSON document
//! (structured content mode). Both go through this module, so the attribute names and the time
//! format are written in one place.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::codec::ContentType;
use crate::id::EventId;

/// The CloudEvents version tidings writes and reads.
pub const SPEC_VERSION: &str = "1.0";

/// Attribute names, as CloudEvents spells them.
pub mod attr {
    /// Event id (a UUID v7 when tidings makes it).
    pub const ID: &str = "id";
    /// Who published the event.
    pub const SOURCE: &str = "source";
    /// CloudEvents version, `1.0`.
    pub const SPEC_VERSION: &str = "specversion";
    /// Event type: the topic.
    pub const TYPE: &str = "type";
    /// When the event happened, RFC 3339.
    pub const TIME: &str = "time";
    /// Media type of the data.
    pub const DATA_CONTENT_TYPE: &str = "datacontenttype";
    /// The schema of the data: `proto:` and the protobuf message's full name.
    pub const DATA_SCHEMA: &str = "dataschema";
    /// What the event is about, within the source.
    pub const SUBJECT: &str = "subject";
    /// Partitioning extension: the key that keeps order.
    pub const PARTITION_KEY: &str = "partitionkey";
    /// Correlation extension: the id of the conversation the event belongs to.
    pub const CORRELATION_ID: &str = "correlationid";
    /// Causation extension: the id of the event that caused this one.
    pub const CAUSATION_ID: &str = "causationid";
    /// Causation extension: how many events caused this one, one after the other (an integer;
    /// absent means 0).
    pub const CAUSATION_DEPTH: &str = "causationdepth";
    /// Distributed tracing extension, W3C `traceparent`.
    pub const TRACEPARENT: &str = "traceparent";
    /// Distributed tracing extension, W3C `tracestate`.
    pub const TRACESTATE: &str = "tracestate";
    /// Dead letters: why the message was dead-lettered.
    pub const DEAD_LETTER_REASON: &str = "deadletterreason";
    /// Dead letters: how many deliveries were tried.
    pub const DEAD_LETTER_ATTEMPTS: &str = "deadletterattempts";
    /// Dead letters: the topic the message was first published to.
    pub const DEAD_LETTER_TOPIC: &str = "deadlettertopic";
    /// Requests carried over publish and subscribe: the topic the reply goes to.
    pub const REPLY_TO: &str = "replyto";
    /// Replies: the status code of a request that failed (absent on a reply that succeeded).
    pub const STATUS_CODE: &str = "statuscode";
    /// Replies: the message of a request that failed.
    pub const STATUS_MESSAGE: &str = "statusmessage";
}

/// The prefix of `dataschema` values naming a protobuf message.
pub const SCHEMA_PREFIX: &str = "proto:";

/// The CloudEvents attributes of one message.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// `id`, unique per event; tidings writes UUID v7 (time-ordered).
    pub id: EventId,
    /// `source`, the publishing service.
    pub source: Arc<str>,
    /// `type`: the topic, and so the event and its major version.
    pub event_type: Cow<'static, str>,
    /// `time` the event happened.
    pub time: Option<SystemTime>,
    /// `datacontenttype` of the data.
    pub data_content_type: Option<Cow<'static, str>>,
    /// `dataschema`: `proto:events.order.v1.Created`.
    pub data_schema: Option<Cow<'static, str>>,
    /// `subject`, optional.
    pub subject: Option<String>,
    /// `partitionkey` extension.
    pub partition_key: Option<String>,
    /// `correlationid` extension.
    pub correlation_id: Option<String>,
    /// `causationid` extension.
    pub causation_id: Option<String>,
    /// `causationdepth` extension: how many events caused this one, one after the other; 0 (not
    /// written) for an event nothing caused.
    pub causation_depth: u32,
    /// `traceparent` extension.
    pub traceparent: Option<String>,
    /// `tracestate` extension.
    pub tracestate: Option<String>,
    /// Any other extension attribute, kept as received.
    pub extensions: Vec<(String, String)>,
}

/// Why a set of attributes is not a CloudEvents 1.0 envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// A required attribute is missing.
    #[error("not a CloudEvents message: required attribute `{0}` is missing")]
    Missing(&'static str),
    /// `specversion` is not 1.0.
    #[error("unsupported CloudEvents specversion `{0}`; tidings reads 1.0")]
    SpecVersion(String),
    /// `time` is not RFC 3339.
    #[error("attribute `time` is not an RFC 3339 timestamp of a year 0000 to 9999 in UTC: `{0}`")]
    Time(String),
    /// `causationdepth` is not a whole number.
    #[error("attribute `causationdepth` is not a whole number from 0 to 4294967295: `{0}`")]
    CausationDepth(String),
    /// A structured-mode document is not a JSON object with the right members.
    #[error("not a structured CloudEvents JSON document: {0}")]
    Structured(String),
}

impl Envelope {
    /// A fresh envelope: new UUID v7 id, the current time.
    // Inlined so that a publish writes the fields where the message's envelope is built, rather
    // than building one here and copying it (about 110 instructions per publish).
    #[inline(always)]
    pub fn new(
        source: Arc<str>,
        event_type: Cow<'static, str>,
        content_type: ContentType,
        data_schema: Option<Cow<'static, str>>,
    ) -> Self {
        // One clock read serves the id's timestamp and `time`.
        let now = SystemTime::now();
        Envelope {
            id: EventId::v7_at(now),
            source,
            event_type,
            time: Some(now),
            data_content_type: Some(Cow::Borrowed(content_type.as_str())),
            data_schema,
            subject: None,
            partition_key: None,
            correlation_id: None,
            causation_id: None,
            causation_depth: 0,
            traceparent: None,
            tracestate: None,
            extensions: Vec::new(),
        }
    }

    /// The content type, if it is one tidings reads.
    pub fn content_type(&self) -> Option<ContentType> {
        self.data_content_type
            .as_deref()
            .and_then(ContentType::parse)
    }

    /// The schema name without the `proto:` prefix.
    pub fn schema(&self) -> Option<&str> {
        self.data_schema
            .as_deref()
            .map(|s| s.strip_prefix(SCHEMA_PREFIX).unwrap_or(s))
    }

    /// An extension attribute by name (from `extensions` only).
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets an extension attribute, replacing one of the same name.
    pub fn set_extension(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.extensions.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.extensions.push((name, value)),
        }
    }

    /// Every attribute as (CloudEvents name, value), `specversion` included, in a stable order.
    ///
    /// Binary-mode transports write each with their binding's prefix; the ones that carry the
    /// content type in a header of their own skip `datacontenttype`.
    pub fn attributes(&self) -> Vec<(&str, Cow<'_, str>)> {
        let mut out: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(8 + self.extensions.len());
        out.push((attr::SPEC_VERSION, Cow::Borrowed(SPEC_VERSION)));
        out.push((attr::ID, Cow::Borrowed(&self.id)));
        out.push((attr::SOURCE, Cow::Borrowed(&self.source)));
        out.push((attr::TYPE, Cow::Borrowed(&self.event_type)));
        if let Some(t) = self.time {
            out.push((attr::TIME, Cow::Owned(format_time(t))));
        }
        let optional = [
            (attr::DATA_CONTENT_TYPE, self.data_content_type.as_deref()),
            (attr::DATA_SCHEMA, self.data_schema.as_deref()),
            (attr::SUBJECT, self.subject.as_deref()),
            (attr::PARTITION_KEY, self.partition_key.as_deref()),
            (attr::CORRELATION_ID, self.correlation_id.as_deref()),
            (attr::CAUSATION_ID, self.causation_id.as_deref()),
            (attr::TRACEPARENT, self.traceparent.as_deref()),
            (attr::TRACESTATE, self.tracestate.as_deref()),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                out.push((name, Cow::Borrowed(v)));
            }
        }
        if self.causation_depth > 0 {
            let depth = self.causation_depth.to_string();
            out.push((attr::CAUSATION_DEPTH, Cow::Owned(depth)));
        }
        for (k, v) in &self.extensions {
            out.push((k.as_str(), Cow::Borrowed(v.as_str())));
        }
        out
    }

    /// The bytes the attributes count for toward a message's size limit: each attribute's name
    /// and value, exactly as [`Envelope::attributes`] lists them, counted without writing any.
    pub fn size(&self) -> usize {
        let pair = |name: &str, value: &str| name.len() + value.len();
        let mut size = pair(attr::SPEC_VERSION, SPEC_VERSION)
            + pair(attr::ID, &self.id)
            + pair(attr::SOURCE, &self.source)
            + pair(attr::TYPE, &self.event_type);
        if let Some(t) = self.time {
            size += attr::TIME.len() + formatted_time_len(t);
        }
        let optional = [
            (attr::DATA_CONTENT_TYPE, self.data_content_type.as_deref()),
            (attr::DATA_SCHEMA, self.data_schema.as_deref()),
            (attr::SUBJECT, self.subject.as_deref()),
            (attr::PARTITION_KEY, self.partition_key.as_deref()),
            (attr::CORRELATION_ID, self.correlation_id.as_deref()),
            (attr::CAUSATION_ID, self.causation_id.as_deref()),
            (attr::TRACEPARENT, self.traceparent.as_deref()),
            (attr::TRACESTATE, self.tracestate.as_deref()),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                size += pair(name, v);
            }
        }
        if self.causation_depth > 0 {
            size += attr::CAUSATION_DEPTH.len() + digits(self.causation_depth);
        }
        for (k, v) in &self.extensions {
            size += pair(k, v);
        }
        size
    }

    /// Reads an envelope from (CloudEvents name, value) pairs, names already stripped of the
    /// transport's prefix. Names are compared without regard to case, as headers may be folded.
    pub fn from_attributes<K, V>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, EnvelopeError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut spec = None;
        let mut id = None;
        let mut source = None;
        let mut event_type = None;
        let mut env = Envelope {
            id: EventId::from(""),
            source: Arc::from(""),
            event_type: Cow::Borrowed(""),
            time: None,
            data_content_type: None,
            data_schema: None,
            subject: None,
            partition_key: None,
            correlation_id: None,
            causation_id: None,
            causation_depth: 0,
            traceparent: None,
            tracestate: None,
            extensions: Vec::new(),
        };
        for (name, value) in pairs {
            let name = name.as_ref().to_ascii_lowercase();
            let value: String = value.into();
            match name.as_str() {
                attr::SPEC_VERSION => spec = Some(value),
                attr::ID => id = Some(value),
                attr::SOURCE => source = Some(value),
                attr::TYPE => event_type = Some(value),
                attr::TIME => env.time = Some(parse_time(&value)?),
                attr::DATA_CONTENT_TYPE => env.data_content_type = Some(Cow::Owned(value)),
                attr::DATA_SCHEMA => env.data_schema = Some(Cow::Owned(value)),
                attr::SUBJECT => env.subject = Some(value),
                attr::PARTITION_KEY => env.partition_key = Some(value),
                attr::CORRELATION_ID => env.correlation_id = Some(value),
                attr::CAUSATION_ID => env.causation_id = Some(value),
                attr::CAUSATION_DEPTH => {
                    env.causation_depth = value
                        .parse()
                        .map_err(|_| EnvelopeError::CausationDepth(value))?;
                }
                attr::TRACEPARENT => env.traceparent = Some(value),
                attr::TRACESTATE => env.tracestate = Some(value),
                _ => env.extensions.push((name, value)),
            }
        }
        match spec {
            None => return Err(EnvelopeError::Missing(attr::SPEC_VERSION)),
            Some(s) if s != SPEC_VERSION => return Err(EnvelopeError::SpecVersion(s)),
            Some(_) => {}
        }
        env.id = id.ok_or(EnvelopeError::Missing(attr::ID))?.into();
        env.source = Arc::from(source.ok_or(EnvelopeError::Missing(attr::SOURCE))?);
        env.event_type = Cow::Owned(event_type.ok_or(EnvelopeError::Missing(attr::TYPE))?);
        Ok(env)
    }

    /// The event as one CloudEvents JSON document (structured content mode).
    ///
    /// JSON data is embedded as a value; any other data goes into `data_base64`.
    pub fn to_structured(&self, data: &[u8]) -> Vec<u8> {
        use serde_json::{Map, Value};
        let mut doc = Map::new();
        for (name, value) in self.attributes() {
            doc.insert(name.to_owned(), Value::String(value.into_owned()));
        }
        // An integer attribute is a JSON number in the JSON format.
        if self.causation_depth > 0 {
            doc.insert(
                attr::CAUSATION_DEPTH.to_owned(),
                Value::from(self.causation_depth),
            );
        }
        let embedded = match self.content_type() {
            Some(ContentType::Json) => serde_json::from_slice::<Value>(data).ok(),
            _ => None,
        };
        match embedded {
            Some(value) => doc.insert("data".to_owned(), value),
            None => doc.insert("data_base64".to_owned(), Value::String(base64_encode(data))),
        };
        serde_json::to_vec(&Value::Object(doc)).unwrap_or_default()
    }

    /// Reads a structured-mode document that arrived with attributes beside it, in the
    /// transport's headers: those the document does not have are added as extensions, as the
    /// dead-letter attributes that tidings writes in headers when it moves a message it cannot
    /// handle. The document's own attributes win; the spec's and tidings' known attributes are
    /// taken from the document only.
    pub fn from_structured_beside<K, V>(
        document: &[u8],
        beside: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(Self, Bytes), EnvelopeError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        const KNOWN: [&str; 14] = [
            attr::SPEC_VERSION,
            attr::ID,
            attr::SOURCE,
            attr::TYPE,
            attr::TIME,
            attr::DATA_CONTENT_TYPE,
            attr::DATA_SCHEMA,
            attr::SUBJECT,
            attr::PARTITION_KEY,
            attr::CORRELATION_ID,
            attr::CAUSATION_ID,
            attr::CAUSATION_DEPTH,
            attr::TRACEPARENT,
            attr::TRACESTATE,
        ];
        let (mut envelope, data) = Self::from_structured(document)?;
        for (name, value) in beside {
            let name = name.as_ref().to_ascii_lowercase();
            if !KNOWN.contains(&name.as_str()) && envelope.extension(&name).is_none() {
                envelope.set_extension(name, value);
            }
        }
        Ok((envelope, data))
    }

    /// Reads a structured-mode CloudEvents JSON document into an envelope and its data.
    pub fn from_structured(document: &[u8]) -> Result<(Self, Bytes), EnvelopeError> {
        use serde_json::Value;
        let value: Value = serde_json::from_slice(document)
            .map_err(|e| EnvelopeError::Structured(e.to_string()))?;
        let Value::Object(mut doc) = value else {
            return Err(EnvelopeError::Structured(
                "the document is not an object".into(),
            ));
        };
        // A JSON `data` member is the data itself when the content type is JSON (as it is when
        // none is given); only for another type is a string member its text.
        let json = doc
            .get(attr::DATA_CONTENT_TYPE)
            .and_then(Value::as_str)
            .is_none_or(is_json_media_type);
        let data = match (doc.remove("data"), doc.remove("data_base64")) {
            (_, Some(Value::String(b64))) => {
                Bytes::from(base64_decode(&b64).ok_or_else(|| {
                    EnvelopeError::Structured("`data_base64` is not base64".into())
                })?)
            }
            (Some(Value::String(text)), None) if !json => Bytes::from(text.into_bytes()),
            (Some(value), None) => Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
            (None, None) => Bytes::new(),
            (_, Some(_)) => {
                return Err(EnvelopeError::Structured(
                    "`data_base64` is not a string".into(),
                ));
            }
        };
        let mut pairs = Vec::with_capacity(doc.len());
        for (name, value) in doc {
            let text = match value {
                Value::String(s) => s,
                Value::Null => continue,
                other => other.to_string(),
            };
            pairs.push((name, text));
        }
        Ok((Envelope::from_attributes(pairs)?, data))
    }
}

/// For [`Publish::caused_by`](crate::Publish::caused_by): an envelope is the event that causes a
/// publish.
impl AsRef<Envelope> for Envelope {
    fn as_ref(&self) -> &Envelope {
        self
    }
}

/// Whether a media type is JSON: `application/json`, `text/json` or a `+json` type, with any
/// parameters.
fn is_json_media_type(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or("").trim();
    ContentType::parse(essence) == Some(ContentType::Json)
        || essence.to_ascii_lowercase().ends_with("+json")
}

/// Formats a time as RFC 3339 in UTC, as CloudEvents writes `time`; a time RFC 3339 cannot
/// write in UTC (before the year 0 or after 9999, as a received `time` with an offset can be)
/// is written as the epoch.
pub fn format_time(t: SystemTime) -> String {
    // Checked, as `OffsetDateTime::from(SystemTime)` panics out of its range.
    let utc = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => time::Duration::try_from(after)
            .ok()
            .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_add(d)),
        Err(before) => time::Duration::try_from(before.duration())
            .ok()
            .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_sub(d)),
    };
    utc.and_then(|utc| utc.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// The length of [`format_time`]'s text for `t`, without writing it: `YYYY-MM-DDTHH:MM:SSZ`,
/// and a fraction of a second without its trailing zeros, for the years RFC 3339 can write.
fn formatted_time_len(t: SystemTime) -> usize {
    /// Seconds from 1970 to the start of the year 10000, past which RFC 3339 has no year.
    const YEAR_10000: u64 = 253_402_300_800;
    match t.duration_since(UNIX_EPOCH) {
        Ok(since) if since.as_secs() < YEAR_10000 => {
            let mut nanos = since.subsec_nanos();
            if nanos == 0 {
                return 20;
            }
            let mut digits = 9;
            while nanos % 10 == 0 {
                nanos /= 10;
                digits -= 1;
            }
            21 + digits
        }
        // Before 1970, or a time this far out: rare enough to write.
        _ => format_time(t).len(),
    }
}

/// How many decimal digits `n` is written with.
fn digits(n: u32) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Parses an RFC 3339 time with any offset.
///
/// Only a time [`format_time`] can write back is read: RFC 3339 has four-digit years, and an
/// offset can move a time at either end of them outside (`9999-12-31T23:59:59-01:00` is in the
/// year 10000 in UTC), where writing it would fail.
pub fn parse_time(text: &str) -> Result<SystemTime, EnvelopeError> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|t| t.checked_to_offset(UtcOffset::UTC))
        .filter(|t| (0..=9999).contains(&t.year()))
        .map(SystemTime::from)
        .ok_or_else(|| EnvelopeError::Time(text.to_owned()))
}

/// `data_base64`: RFC 4648 base64 with the standard alphabet, written padded. Read leniently,
/// as the hand-written decoder this replaces did on purpose: padding may be left out or cut short
/// (some producers strip it), and the unused low bits of the last character need not be zero, as
/// most decoders allow. Too much padding, or anything outside the alphabet, is refused.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn base64_encode(data: &[u8]) -> String {
    BASE64.encode(data)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        let mut e = Envelope::new(
            Arc::from("tests"),
            Cow::Borrowed("events.order.created.v1"),
            ContentType::Protobuf,
            Some(Cow::Borrowed("proto:events.order.v1.Created")),
        );
        e.correlation_id = Some("c-1".into());
        e.causation_id = Some("0198f7a4-0000-7000-8000-000000000001".into());
        e.causation_depth = 12;
        e.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        e.set_extension("tenant", "acme");
        e
    }

    #[test]
    fn fresh_envelopes_have_distinct_v7_ids_and_the_time() {
        let (a, b) = (sample(), sample());
        assert_eq!(uuid::Uuid::parse_str(&a.id).unwrap().get_version_num(), 7);
        assert_ne!(a.id, b.id);
        let age = SystemTime::now()
            .duration_since(a.time.unwrap())
            .unwrap_or_default();
        assert!(age < std::time::Duration::from_secs(1), "{age:?}");
        // One clock reading stamps both: the id's milliseconds are those of `time` (or a little
        // later, when another thread's id of a later millisecond took uuid's context first).
        let (secs, nanos) = uuid::Uuid::parse_str(&a.id)
            .unwrap()
            .get_timestamp()
            .expect("a v7 timestamp")
            .to_unix();
        let id_ms = u128::from(secs) * 1000 + u128::from(nanos / 1_000_000);
        let time_ms = a
            .time
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        assert!(
            id_ms >= time_ms && id_ms - time_ms < 1000,
            "{id_ms} {time_ms}"
        );
    }

    #[test]
    fn attributes_round_trip() {
        let e = sample();
        let pairs: Vec<(String, String)> = e
            .attributes()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_owned()))
            .collect();
        let back = Envelope::from_attributes(pairs).unwrap();
        // RFC 3339 keeps nanoseconds, so time survives exactly.
        assert_eq!(back, e);
        assert_eq!(back.schema(), Some("events.order.v1.Created"));
    }

    #[test]
    fn the_causation_depth_is_an_integer_written_only_when_not_zero() {
        let mut e = sample();
        let written = |e: &Envelope| {
            e.attributes()
                .into_iter()
                .find(|(name, _)| *name == attr::CAUSATION_DEPTH)
                .map(|(_, value)| value.into_owned())
        };
        assert_eq!(written(&e).as_deref(), Some("12"));
        let document: serde_json::Value = serde_json::from_slice(&e.to_structured(b"")).unwrap();
        assert_eq!(document[attr::CAUSATION_DEPTH], serde_json::json!(12));

        e.causation_depth = 0;
        assert_eq!(written(&e), None, "absent means 0");
        assert!(
            !String::from_utf8(e.to_structured(b""))
                .unwrap()
                .contains("causationdepth")
        );

        let read = |depth: &str| {
            Envelope::from_attributes([
                ("specversion", "1.0"),
                ("id", "1"),
                ("source", "s"),
                ("type", "t"),
                ("CausationDepth", depth),
            ])
            .map(|e| e.causation_depth)
        };
        assert_eq!(read("7"), Ok(7));
        assert_eq!(read("4294967295"), Ok(u32::MAX));
        for bad in ["-1", "seven", "", "1.5", "4294967296"] {
            assert_eq!(
                read(bad),
                Err(EnvelopeError::CausationDepth(bad.into())),
                "{bad}"
            );
        }
        // Another SDK's structured document may write it as a string or a number.
        for depth in [r#""4""#, "4"] {
            let doc = format!(
                r#"{{"specversion":"1.0","id":"1","source":"s","type":"t","causationdepth":{depth}}}"#
            );
            let (e, _) = Envelope::from_structured(doc.as_bytes()).unwrap();
            assert_eq!(e.causation_depth, 4, "{depth}");
        }
    }

    #[test]
    fn missing_or_foreign_attributes_are_refused() {
        assert_eq!(
            Envelope::from_attributes([("id", "1"), ("source", "s"), ("type", "t")]),
            Err(EnvelopeError::Missing("specversion"))
        );
        assert_eq!(
            Envelope::from_attributes([("specversion", "0.3"), ("id", "1")]),
            Err(EnvelopeError::SpecVersion("0.3".into()))
        );
        assert_eq!(
            Envelope::from_attributes([("specversion", "1.0"), ("id", "1"), ("type", "t")]),
            Err(EnvelopeError::Missing("source"))
        );
    }

    #[test]
    fn a_time_that_could_not_be_written_back_is_refused() {
        // Offsets that move a time out of the four-digit years: writing the first made
        // `attributes` panic, the second came back as 1970.
        for time in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00"] {
            assert_eq!(
                Envelope::from_attributes([
                    ("specversion", "1.0"),
                    ("id", "1"),
                    ("source", "s"),
                    ("type", "t"),
                    ("time", time),
                ]),
                Err(EnvelopeError::Time(time.into())),
                "{time}"
            );
        }
        // The last instants that can be written, with offsets, round trip.
        for time in ["9999-12-31T23:59:59+01:00", "0000-01-01T00:00:00-01:00"] {
            let t = parse_time(time).unwrap();
            assert_eq!(parse_time(&format_time(t)), Ok(t), "{time}");
        }
    }

    #[test]
    fn structured_mode_round_trips_binary_and_json() {
        let e = sample();
        let data = b"\x08\x96\x01binary\xff";
        let doc = e.to_structured(data);
        let (back, back_data) = Envelope::from_structured(&doc).unwrap();
        assert_eq!(back, e);
        assert_eq!(&back_data[..], data);

        let mut j = sample();
        j.data_content_type = Some(Cow::Borrowed("application/json"));
        let doc = j.to_structured(br#"{"orderId":"7"}"#);
        let text = String::from_utf8(doc.clone()).unwrap();
        assert!(text.contains(r#""data":{"orderId":"7"}"#), "{text}");
        let (_, back_data) = Envelope::from_structured(&doc).unwrap();
        assert_eq!(&back_data[..], br#"{"orderId":"7"}"#);

        // A JSON string stays a JSON string, quotes and all.
        let doc = j.to_structured(br#""seven""#);
        let (_, back_data) = Envelope::from_structured(&doc).unwrap();
        assert_eq!(&back_data[..], br#""seven""#);
    }

    #[test]
    fn structured_text_data_of_another_type_is_its_text() {
        let doc = br#"{"specversion":"1.0","id":"1","source":"s","type":"t",
            "datacontenttype":"text/plain","data":"seven"}"#;
        let (_, data) = Envelope::from_structured(doc).unwrap();
        assert_eq!(&data[..], b"seven");
        let doc = br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":"seven"}"#;
        let (_, data) = Envelope::from_structured(doc).unwrap();
        assert_eq!(&data[..], br#""seven""#, "no content type means JSON");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
            // Read without its padding too.
            let bare = encoded.trim_end_matches('=');
            assert_eq!(base64_decode(bare).unwrap(), plain.as_bytes(), "{bare}");
        }
        // Unused low bits of the last character that are not zero are read past.
        assert_eq!(base64_decode("Zh==").unwrap(), b"f");
        assert_eq!(base64_decode("Zm9=").unwrap(), b"fo");
        // Not base64: outside the alphabet, too much padding, an impossible length.
        for bad in ["Zm9v!", "Zm-_", "Zg===", "Z", "Zm9vY", " Zm9v"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn structured_data_base64_without_padding_is_read() {
        let doc = br#"{"specversion":"1.0","id":"1","source":"s","type":"t",
            "datacontenttype":"application/protobuf","data_base64":"Zm9vYg"}"#;
        let (_, data) = Envelope::from_structured(doc).unwrap();
        assert_eq!(&data[..], b"foob");
    }
}
