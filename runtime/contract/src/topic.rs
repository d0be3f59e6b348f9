//! The topic rule: `events.order.created.v1`.
//!
//! Lowercase segments `[a-z][a-z0-9_]*` joined by dots, at least a domain, an event and a
//! version, the last segment a version suffix, at most 249 bytes (Kafka's limit). Whatever a
//! broker would read as a wildcard or a separator is refused, so a topic means the same on every
//! transport.

use std::fmt;

use crate::version::{Version, VersionError, parse_version};

/// The longest topic accepted, in bytes: Kafka's limit for a topic name.
pub const MAX_TOPIC_LEN: usize = 249;

/// Why a string is not a topic. Offsets are byte offsets into the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicError {
    /// The topic is empty.
    Empty,
    /// The topic is longer than [`MAX_TOPIC_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Fewer than three segments: a topic needs a domain, an event and a version.
    TooFewSegments {
        /// How many segments there are.
        found: usize,
    },
    /// Two dots in a row, or a dot at either end.
    EmptySegment {
        /// Where the empty segment is.
        at: usize,
    },
    /// A broker wildcard (`*`, `>`, `#`, `+`).
    Wildcard {
        /// Where it is.
        at: usize,
        /// Which one.
        ch: char,
    },
    /// A space, tab or line break.
    Whitespace {
        /// Where it is.
        at: usize,
    },
    /// An upper-case letter.
    UpperCase {
        /// Where it is.
        at: usize,
        /// Which letter.
        ch: char,
    },
    /// A character outside `[a-z0-9_.]`.
    InvalidChar {
        /// Where it is.
        at: usize,
        /// The byte, as a char when ASCII, else U+FFFD.
        ch: char,
    },
    /// A segment starting with a digit or an underscore.
    SegmentStart {
        /// Where the segment starts.
        at: usize,
    },
    /// The last segment is not a version suffix.
    BadVersion {
        /// Where the last segment starts.
        at: usize,
        /// What is wrong with it.
        reason: VersionError,
    },
}

impl TopicError {
    /// The byte offset the error points at, when it points at one place.
    pub const fn offset(&self) -> Option<usize> {
        match *self {
            TopicError::Empty | TopicError::TooLong { .. } | TopicError::TooFewSegments { .. } => {
                None
            }
            TopicError::EmptySegment { at }
            | TopicError::Wildcard { at, .. }
            | TopicError::Whitespace { at }
            | TopicError::UpperCase { at, .. }
            | TopicError::InvalidChar { at, .. }
            | TopicError::SegmentStart { at }
            | TopicError::BadVersion { at, .. } => Some(at),
        }
    }
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const EXAMPLE: &str = "a topic looks like `events.order.created.v1`";
        match *self {
            TopicError::Empty => write!(f, "the topic is empty; {EXAMPLE}"),
            TopicError::TooLong { len } => write!(
                f,
                "the topic is {len} bytes long; at most {MAX_TOPIC_LEN} bytes are allowed (Kafka's limit)"
            ),
            TopicError::TooFewSegments { found } => write!(
                f,
                "the topic has {found} segment(s); it needs at least a domain, an event and a version: {EXAMPLE}"
            ),
            TopicError::EmptySegment { at } => write!(
                f,
                "empty segment at byte {at}: remove the extra dot; {EXAMPLE}"
            ),
            TopicError::Wildcard { at, ch } => write!(
                f,
                "`{ch}` at byte {at} is a broker wildcard; a topic names exactly one event, so it has none"
            ),
            TopicError::Whitespace { at } => {
                write!(f, "whitespace at byte {at}; topics contain no whitespace")
            }
            TopicError::UpperCase { at, ch } => write!(
                f,
                "upper-case `{ch}` at byte {at}; topics are lowercase (write `{}`)",
                ch.to_ascii_lowercase()
            ),
            TopicError::InvalidChar { at, ch } => write!(
                f,
                "`{ch}` at byte {at} is not allowed; segments use only `a-z`, `0-9` and `_`"
            ),
            TopicError::SegmentStart { at } => write!(
                f,
                "the segment at byte {at} starts with a digit or `_`; segments start with a letter `a-z`"
            ),
            TopicError::BadVersion { at, reason } => write!(
                f,
                "the last segment (byte {at}) must be a version such as `v1` or `v2beta1`: {reason}"
            ),
        }
    }
}

impl std::error::Error for TopicError {}

const fn is_wildcard(b: u8) -> bool {
    matches!(b, b'*' | b'>' | b'#' | b'+')
}

/// Checks `topic` against the topic rule and returns the version its last segment names.
///
/// ```
/// use tidings_contract::{validate_topic, Stability};
/// let v = validate_topic("events.order.created.v2").unwrap();
/// assert_eq!((v.major, v.stability), (2, Stability::Stable));
/// assert!(validate_topic("events.Order.created.v1").is_err());
/// ```
pub const fn validate_topic(topic: &str) -> Result<Version, TopicError> {
    let bytes = topic.as_bytes();
    if bytes.is_empty() {
        return Err(TopicError::Empty);
    }
    if bytes.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: bytes.len() });
    }
    let mut segments = 1;
    let mut segment_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'.' {
            if i == segment_start {
                return Err(TopicError::EmptySegment { at: i });
            }
            segments += 1;
            segment_start = i + 1;
        } else if is_wildcard(b) {
            return Err(TopicError::Wildcard {
                at: i,
                ch: b as char,
            });
        } else if b.is_ascii_whitespace() {
            return Err(TopicError::Whitespace { at: i });
        } else if b.is_ascii_uppercase() {
            return Err(TopicError::UpperCase {
                at: i,
                ch: b as char,
            });
        } else if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            let ch = if b.is_ascii() {
                b as char
            } else {
                char::REPLACEMENT_CHARACTER
            };
            return Err(TopicError::InvalidChar { at: i, ch });
        } else if i == segment_start && !b.is_ascii_lowercase() {
            return Err(TopicError::SegmentStart { at: i });
        }
        i += 1;
    }
    if segment_start == bytes.len() {
        return Err(TopicError::EmptySegment { at: bytes.len() });
    }
    if segments < 3 {
        return Err(TopicError::TooFewSegments { found: segments });
    }
    let (_, last) = bytes.split_at(segment_start);
    // The scan above admitted only ASCII, so the slice is valid UTF-8.
    let last = match std::str::from_utf8(last) {
        Ok(s) => s,
        Err(_) => {
            return Err(TopicError::InvalidChar {
                at: segment_start,
                ch: '\u{fffd}',
            });
        }
    };
    match parse_version(last) {
        Ok(v) => Ok(v),
        Err(reason) => Err(TopicError::BadVersion {
            at: segment_start,
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_topics() {
        for (topic, major) in [
            ("events.order.created.v1", 1),
            ("events.order.created.v2", 2),
            ("shop.order_line.added.v1beta1", 1),
            ("a.b.v3", 3),
            ("events.order2.created.v1alpha2", 1),
        ] {
            assert_eq!(validate_topic(topic).map(|v| v.major), Ok(major), "{topic}");
        }
    }

    #[test]
    fn refuses_what_the_rule_forbids() {
        let long = format!("events.{}.v1", "a".repeat(240));
        assert_eq!(long.len(), 250);
        let max = format!("events.{}.v1", "a".repeat(239));
        assert!(validate_topic(&max).is_ok());
        let cases: Vec<(&str, TopicError)> = vec![
            ("", TopicError::Empty),
            (
                "events.Order.created.v1",
                TopicError::UpperCase { at: 7, ch: 'O' },
            ),
            (
                "events.*.created.v1",
                TopicError::Wildcard { at: 7, ch: '*' },
            ),
            ("events.>", TopicError::Wildcard { at: 7, ch: '>' }),
            ("events.#.v1", TopicError::Wildcard { at: 7, ch: '#' }),
            (
                "events.+.created.v1",
                TopicError::Wildcard { at: 7, ch: '+' },
            ),
            ("events..created.v1", TopicError::EmptySegment { at: 7 }),
            (".events.created.v1", TopicError::EmptySegment { at: 0 }),
            ("events.created.v1.", TopicError::EmptySegment { at: 18 }),
            (
                "events.order.created",
                TopicError::BadVersion {
                    at: 13,
                    reason: VersionError::MissingV,
                },
            ),
            (
                "events.order.created.v0",
                TopicError::BadVersion {
                    at: 21,
                    reason: VersionError::ZeroMajor,
                },
            ),
            (
                "events.order.created.V1",
                TopicError::UpperCase { at: 21, ch: 'V' },
            ),
            (
                "events.order.created.1",
                TopicError::SegmentStart { at: 21 },
            ),
            ("events.order created.v1", TopicError::Whitespace { at: 12 }),
            (
                "events.order.created.v1\n",
                TopicError::Whitespace { at: 23 },
            ),
            (
                "events.order-x.created.v1",
                TopicError::InvalidChar { at: 12, ch: '-' },
            ),
            (
                "events.ordér.created.v1",
                TopicError::InvalidChar {
                    at: 10,
                    ch: '\u{fffd}',
                },
            ),
            (
                "events._order.created.v1",
                TopicError::SegmentStart { at: 7 },
            ),
            ("order.v1", TopicError::TooFewSegments { found: 2 }),
        ];
        for (topic, err) in cases {
            assert_eq!(validate_topic(topic), Err(err), "{topic:?}");
        }
        assert_eq!(validate_topic(&long), Err(TopicError::TooLong { len: 250 }));
    }

    #[test]
    fn usable_in_const_context() {
        const V: Version = match validate_topic("events.order.created.v7") {
            Ok(v) => v,
            Err(_) => panic!("bad topic"),
        };
        assert_eq!(V.major, 7);
    }
}
