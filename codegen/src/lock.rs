//! `tidings.lock`: what each event major looked like when it was recorded, so that a later
//! change inside the major can be checked against it.
//!
//! The file is JSON, pretty-printed with every map sorted by name and every list by number, so
//! the same schemas always give the same bytes and a change shows as a small diff. It records,
//! for each event, its topic, file, and its CloudEvents type and payload where they are its own;
//! for every message and enum an event is made of (the well-known types aside), its fields or
//! values and what it reserves; for each service, its file and each rpc's request, reply and
//! topic. A lock written before services were recorded reads as one without services.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use prost_reflect::{EnumDescriptor, MessageDescriptor};
use serde::{Deserialize, Serialize};

use crate::diagnostic::Diagnostics;
use crate::error::Error;
use crate::mapping::Event;
use crate::service::Service;
use crate::shape::{self, Label};

/// The name of the lock file, beside the schemas it records.
pub const LOCK_FILE: &str = "tidings.lock";

/// The lock format this version writes and reads.
const FORMAT: u32 = 1;

/// What each event major of a schema folder looks like: the contract a later change inside the
/// major must keep. Made by [`Builder::lock`](crate::Builder::lock), read back with
/// [`Lock::parse`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    tidings_lock: u32,
    pub(crate) events: BTreeMap<String, LockedEvent>,
    #[serde(default)]
    pub(crate) messages: BTreeMap<String, LockedMessage>,
    #[serde(default)]
    pub(crate) enums: BTreeMap<String, LockedEnum>,
    /// Services by full name; left out when there are none, so a lock without services reads
    /// and writes as before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) services: BTreeMap<String, LockedService>,
}

/// A service: where it is declared and its rpcs, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LockedService {
    /// The schema file, as imported: `events/inventory/v1/inventory.proto`.
    pub(crate) file: String,
    pub(crate) rpcs: BTreeMap<String, LockedRpc>,
}

/// An rpc: what it is asked with, what it answers and where its requests travel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LockedRpc {
    /// The full name of the request message.
    pub(crate) request: String,
    /// The full name of the reply message.
    pub(crate) reply: String,
    pub(crate) topic: String,
}

/// An event major: its message, by full name in [`Lock::events`], and where it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LockedEvent {
    pub(crate) topic: String,
    /// The CloudEvents type, when it is not the topic.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub(crate) event_type: Option<String>,
    /// The message that travels, when the event's message wraps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) payload: Option<String>,
    /// The schema file, as imported: `events/order/v1/order.proto`.
    pub(crate) file: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LockedMessage {
    pub(crate) fields: Vec<LockedField>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) reserved_numbers: Vec<Reserved>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) reserved_names: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LockedField {
    pub(crate) number: u32,
    pub(crate) name: String,
    pub(crate) json_name: String,
    /// The kind (`string`, `message`...); for a map, the value's.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// The full name of a message or enum type; for a map, the value's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) type_name: Option<String>,
    /// The key kind of a map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    pub(crate) label: Label,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) oneof: Option<String>,
}

impl LockedField {
    /// The type as a schema spells it: `uint32`, `shop.common.v1.Money`, `map<string, int64>`.
    pub(crate) fn spelled(&self) -> String {
        let value = self.type_name.as_deref().unwrap_or(&self.kind);
        match &self.key {
            Some(key) => format!("map<{key}, {value}>"),
            None => value.to_owned(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LockedEnum {
    pub(crate) values: Vec<LockedValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) reserved_numbers: Vec<Reserved>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) reserved_names: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LockedValue {
    pub(crate) number: i32,
    pub(crate) name: String,
}

/// A reserved range of numbers, both ends included; written as in a schema, `5` or `7 to 9`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub(crate) struct Reserved {
    pub(crate) start: i64,
    pub(crate) end: i64,
}

impl Reserved {
    pub(crate) fn contains(&self, number: i64) -> bool {
        (self.start..=self.end).contains(&number)
    }
}

impl fmt::Display for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{} to {}", self.start, self.end)
        }
    }
}

impl From<Reserved> for String {
    fn from(range: Reserved) -> String {
        range.to_string()
    }
}

impl TryFrom<String> for Reserved {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let number = |s: &str| {
            s.trim()
                .parse::<i64>()
                .map_err(|_| format!("`{text}` is not a reserved range such as `5` or `7 to 9`"))
        };
        let (start, end) = match text.split_once(" to ") {
            Some((start, end)) => (number(start)?, number(end)?),
            None => (number(&text)?, number(&text)?),
        };
        Ok(Reserved { start, end })
    }
}

/// Why a lock file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The text is not a lock: bad JSON, or a member that does not belong.
    #[error(
        "line {line}, column {column}: {message}; the lock is written by `tidings lock`: restore it from version control or write it again"
    )]
    Syntax {
        /// The line, counting from 1.
        line: usize,
        /// The column, counting from 1.
        column: usize,
        /// What the JSON reader said.
        message: String,
    },
    /// The lock was written in a format this version does not read.
    #[error(
        "lock format {0} is not known to this version of tidings, which reads format {FORMAT}; update tidings"
    )]
    Format(u32),
}

impl LockError {
    /// Where in the text the problem is, as (line, column) counting from 1.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            LockError::Syntax { line, column, .. } => Some((*line, *column)),
            LockError::Format(_) => None,
        }
    }
}

impl Lock {
    /// Reads a lock from the text of a lock file.
    pub fn parse(text: &str) -> Result<Lock, LockError> {
        let lock: Lock = serde_json::from_str(text).map_err(|e| LockError::Syntax {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if lock.tidings_lock != FORMAT {
            return Err(LockError::Format(lock.tidings_lock));
        }
        Ok(lock)
    }

    /// The text of the lock file: the same for the same schemas, ending in a newline.
    ///
    /// Pretty-printed JSON in which each innermost object or list (a field, an enum value, an
    /// event's topic and file) takes one line, so a change to one of them is a one-line diff.
    pub fn to_text(&self) -> String {
        // Plain maps, vectors and strings always serialize.
        let pretty = serde_json::to_string_pretty(self).unwrap_or_default();
        let mut lines: Vec<String> = Vec::new();
        // For each open object or list: its first line, and whether it holds another.
        let mut open: Vec<(usize, bool)> = Vec::new();
        for line in pretty.lines() {
            let trimmed = line.trim();
            // Strings never hold a raw line break, so a line ending in a bracket opens one, and
            // a line starting with one closes one.
            if trimmed.starts_with(['}', ']']) {
                match open.pop() {
                    Some((first, false)) => {
                        let inner: Vec<&str> =
                            lines[first + 1..].iter().map(|l| l.trim()).collect();
                        let joined = format!("{}{}{trimmed}", lines[first], inner.join(" "));
                        lines.truncate(first);
                        lines.push(joined);
                        continue;
                    }
                    _ => lines.push(line.to_owned()),
                }
            } else {
                lines.push(line.to_owned());
            }
            if trimmed.ends_with(['{', '[']) {
                if let Some(parent) = open.last_mut() {
                    parent.1 = true;
                }
                open.push((lines.len() - 1, false));
            }
        }
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    /// The full message names of the events recorded, in name order.
    pub fn events(&self) -> impl Iterator<Item = &str> {
        self.events.keys().map(String::as_str)
    }

    /// The full names of the rpcs recorded (`events.inventory.v1.Stock.Reserve`), in name order.
    pub fn rpcs(&self) -> impl Iterator<Item = String> + '_ {
        self.services.iter().flat_map(|(service, locked)| {
            locked
                .rpcs
                .keys()
                .map(move |rpc| format!("{service}.{rpc}"))
        })
    }

    /// Writes the lock into `dir` as [`LOCK_FILE`], unless it already holds these bytes;
    /// returns whether the file changed.
    pub fn write(&self, dir: &Path) -> Result<bool, Error> {
        let path = dir.join(LOCK_FILE);
        let text = self.to_text();
        if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
            return Ok(false);
        }
        std::fs::write(&path, text).map_err(|source| Error::Write { path, source })?;
        Ok(true)
    }
}

/// The lock of a schema folder, and the warnings found while reading it.
#[derive(Debug)]
pub struct Locked {
    /// What the events look like now.
    pub lock: Lock,
    /// Warnings about the schemas; errors would have stopped the lock.
    pub warnings: Diagnostics,
}

/// The lock of some events and services, as they are now.
pub(crate) fn lock(events: &[Event], services: &[Service]) -> Lock {
    let reached = shape::reach(events.iter().map(|e| e.message.clone()));
    Lock {
        tidings_lock: FORMAT,
        events: events
            .iter()
            .map(|e| {
                let event = LockedEvent {
                    topic: e.info.topic.clone(),
                    event_type: e.info.event_type.clone(),
                    payload: e.info.payload.clone(),
                    file: e.message.parent_file().name().to_owned(),
                };
                (e.info.schema.clone(), event)
            })
            .collect(),
        messages: reached
            .messages
            .iter()
            .map(|(name, m)| (name.clone(), locked_message(m)))
            .collect(),
        enums: reached
            .enums
            .iter()
            .map(|(name, e)| (name.clone(), locked_enum(e)))
            .collect(),
        services: services
            .iter()
            .map(|s| {
                let rpcs = s
                    .rpcs
                    .iter()
                    .map(|rpc| {
                        let locked = LockedRpc {
                            request: rpc.info.request.clone(),
                            reply: rpc.info.reply.clone(),
                            topic: rpc.info.topic.clone(),
                        };
                        (rpc.descriptor.name().to_owned(), locked)
                    })
                    .collect();
                let service = LockedService {
                    file: s.descriptor.parent_file().name().to_owned(),
                    rpcs,
                };
                (s.descriptor.full_name().to_owned(), service)
            })
            .collect(),
    }
}

fn locked_message(message: &MessageDescriptor) -> LockedMessage {
    let mut fields: Vec<LockedField> = message
        .fields()
        .map(|field| {
            let (kind, key) = match field.kind() {
                prost_reflect::Kind::Message(entry) if field.is_map() => (
                    entry.map_entry_value_field().kind(),
                    Some(shape::kind_name(&entry.map_entry_key_field().kind()).to_owned()),
                ),
                kind => (kind, None),
            };
            LockedField {
                number: field.number(),
                name: field.name().to_owned(),
                json_name: field.json_name().to_owned(),
                kind: shape::kind_name(&kind).to_owned(),
                type_name: shape::type_name(&kind),
                key,
                label: Label::of(&field),
                oneof: shape::oneof(&field),
            }
        })
        .collect();
    fields.sort_by_key(|f| f.number);
    LockedMessage {
        fields,
        reserved_numbers: sorted(message.reserved_ranges().map(|r| Reserved {
            start: i64::from(r.start),
            end: i64::from(r.end) - 1,
        })),
        reserved_names: sorted(message.reserved_names().map(str::to_owned)),
    }
}

fn locked_enum(e: &EnumDescriptor) -> LockedEnum {
    let mut values: Vec<LockedValue> = e
        .values()
        .map(|v| LockedValue {
            number: v.number(),
            name: v.name().to_owned(),
        })
        .collect();
    values.sort_by(|a, b| (a.number, &a.name).cmp(&(b.number, &b.name)));
    LockedEnum {
        values,
        reserved_numbers: sorted(e.reserved_ranges().map(|r| Reserved {
            start: i64::from(*r.start()),
            end: i64::from(*r.end()),
        })),
        reserved_names: sorted(e.reserved_names().map(str::to_owned)),
    }
}

fn sorted<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut items: Vec<T> = items.collect();
    items.sort();
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ranges_read_back_as_written() {
        for text in ["5", "7 to 9", "-3 to -1"] {
            let range = Reserved::try_from(text.to_owned()).unwrap();
            assert_eq!(String::from(range), text);
        }
        assert!(Reserved::try_from("7 through 9".to_owned()).is_err());
    }

    #[test]
    fn unknown_formats_and_members_are_refused() {
        let error = Lock::parse(r#"{"tidings_lock": 2, "events": {}}"#).unwrap_err();
        assert!(matches!(error, LockError::Format(2)), "{error}");
        let error =
            Lock::parse("{\"tidings_lock\": 1,\n \"events\": {}, \"extra\": 1}").unwrap_err();
        assert_eq!(error.position().map(|p| p.0), Some(2), "{error}");
    }

    #[test]
    fn a_lock_without_services_reads_and_writes_as_before() {
        let text = r#"{
  "tidings_lock": 1,
  "events": {
    "events.shop.v1.Placed": {"topic": "events.shop.placed.v1", "file": "events/shop/v1/shop.proto"}
  },
  "messages": {
    "events.shop.v1.Placed": {
      "fields": [
        {"number": 1, "name": "order_id", "json_name": "orderId", "type": "string", "label": "singular"}
      ]
    }
  },
  "enums": {}
}
"#;
        let lock = Lock::parse(text).unwrap();
        assert!(lock.services.is_empty());
        assert_eq!(lock.to_text(), text);
    }
}
