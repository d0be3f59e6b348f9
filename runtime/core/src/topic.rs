//! Validated topic names, checked with the same rule as the codegen and the derive.

use std::borrow::Cow;
use std::fmt;

pub use tidings_contract::{
    MAX_TOPIC_LEN, Stability, TopicError, Version, VersionError, parse_version, validate_topic,
};

/// A topic name that passed the topic rule (`events.order.created.v1`).
///
/// Every path to a broker takes a `Topic`, so nothing with a malformed name is ever published
/// or subscribed to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic {
    name: Cow<'static, str>,
    major: u32,
}

impl Topic {
    /// Checks `name` and wraps it.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Result<Self, TopicError> {
        let name = name.into();
        let version = validate_topic(&name)?;
        Ok(Topic {
            name,
            major: version.major,
        })
    }

    /// The topic of event type `E`, checked.
    pub fn of<E: crate::Event>() -> Result<Self, TopicError> {
        // A VERSION or DATA_SCHEMA set by hand that disagrees with the topic or the schema, or
        // a TYPE that is no CloudEvents type, stops the build here.
        const { E::VERSION_FOLLOWS_TOPIC };
        const { E::DATA_SCHEMA_FOLLOWS_SCHEMA };
        const { E::TYPE_IS_PRINTABLE };
        // The same check as `Topic::new`, evaluated once per event type at compile time.
        match const { validate_topic(E::TOPIC) } {
            Ok(version) => Ok(Topic {
                name: Cow::Borrowed(E::TOPIC),
                major: version.major,
            }),
            Err(error) => Err(error),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The name, when it is a `&'static str` (an event type's topic) rather than one made at
    /// run time.
    pub(crate) fn static_name(&self) -> Option<&'static str> {
        match self.name {
            Cow::Borrowed(name) => Some(name),
            Cow::Owned(_) => None,
        }
    }

    /// The major version named by the last segment.
    pub fn major(&self) -> u32 {
        self.major
    }

    /// Where messages that could not be handled on this topic are moved: `dlq.` and the topic.
    ///
    /// The name follows the topic rule itself, so every adapter can carry it like any other.
    pub fn dead_letter(&self) -> Result<Topic, TopicError> {
        Topic::new(format!("{DEAD_LETTER_PREFIX}{}", self.name))
    }
}

/// The prefix of dead-letter topics.
pub const DEAD_LETTER_PREFIX: &str = "dlq.";

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl std::str::FromStr for Topic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Topic::new(s.to_owned())
    }
}
