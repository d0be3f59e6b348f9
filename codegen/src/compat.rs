//! The breaking-change rules: what may change inside one major of an event, and what needs a
//! new major.
//!
//! Modelled on buf's `WIRE_JSON` category: a change is refused when events written before it
//! could no longer be read after it, in the protobuf binary encoding or in the canonical proto3
//! JSON mapping (whose readers accept both a field's JSON name and its protobuf name, and write
//! enum values by name). Adding fields, values, types and events is always accepted.
//!
//! An rpc is a contract between callers and servers: inside a major it keeps its request, its
//! reply and its topic, and is not removed. Adding an rpc is always accepted.

use std::collections::{BTreeMap, BTreeSet};

use tidings_contract::parse_version;

use crate::lock::{Lock, LockedEnum, LockedField, LockedMessage, Reserved};
use crate::shape::Label;

/// One breaking-change rule, named as buf names its rules where it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rule {
    /// An event major was deleted, or its message no longer maps to an event.
    EventNoDelete,
    /// An event major moved to another topic.
    EventSameTopic,
    /// An event major travels with another CloudEvents type.
    EventSameType,
    /// An event major's data is another message: a wrapper's payload, or the whole message.
    EventSamePayload,
    /// A field was deleted without reserving its number and name.
    FieldNoDeleteUnlessReserved,
    /// A field was renamed; JSON readers accept the old name.
    FieldSameName,
    /// A field's JSON name changed.
    FieldSameJsonName,
    /// A field's type changed to one the binary or JSON encoding does not read the same.
    FieldWireJsonCompatibleType,
    /// A field changed between singular, repeated, map and required.
    FieldSameLabel,
    /// A field moved into, out of, or between oneofs.
    FieldSameOneof,
    /// An enum value was deleted without reserving its number and name.
    EnumValueNoDeleteUnlessReserved,
    /// An enum value was renamed; JSON carries the name.
    EnumValueSameName,
    /// A reserved number or name is no longer reserved, so it could be reused.
    ReservedNoDelete,
    /// An rpc was deleted, or its service.
    RpcNoDelete,
    /// An rpc is asked with another message.
    RpcSameRequest,
    /// An rpc answers with another message.
    RpcSameReply,
    /// An rpc's requests travel on another topic.
    RpcSameTopic,
}

impl Rule {
    /// The rule's id, shown with each breaking change.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Rule::EventNoDelete => "EVENT_NO_DELETE",
            Rule::EventSameTopic => "EVENT_SAME_TOPIC",
            Rule::EventSameType => "EVENT_SAME_TYPE",
            Rule::EventSamePayload => "EVENT_SAME_PAYLOAD",
            Rule::FieldNoDeleteUnlessReserved => "FIELD_NO_DELETE_UNLESS_RESERVED",
            Rule::FieldSameName => "FIELD_SAME_NAME",
            Rule::FieldSameJsonName => "FIELD_SAME_JSON_NAME",
            Rule::FieldWireJsonCompatibleType => "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
            Rule::FieldSameLabel => "FIELD_SAME_LABEL",
            Rule::FieldSameOneof => "FIELD_SAME_ONEOF",
            Rule::EnumValueNoDeleteUnlessReserved => "ENUM_VALUE_NO_DELETE_UNLESS_RESERVED",
            Rule::EnumValueSameName => "ENUM_VALUE_SAME_NAME",
            Rule::ReservedNoDelete => "RESERVED_NO_DELETE",
            Rule::RpcNoDelete => "RPC_NO_DELETE",
            Rule::RpcSameRequest => "RPC_SAME_REQUEST",
            Rule::RpcSameReply => "RPC_SAME_REPLY",
            Rule::RpcSameTopic => "RPC_SAME_TOPIC",
        }
    }
}

/// Where in the new schemas a breaking change is shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// The topic of an event message.
    Topic(String),
    /// A schema file, by import name, where something was deleted.
    File(String),
    /// A message's name, where a field or reservation was deleted.
    Message(String),
    /// A field's name.
    FieldName(String, u32),
    /// A field's whole declaration.
    Field(String, u32),
    /// An enum's name, where a value or reservation was deleted.
    Enum(String),
    /// An enum value's declaration.
    EnumValue(String, i32),
    /// A service's name, where an rpc was deleted.
    Service(String),
    /// The request type of an rpc: service and rpc name.
    RpcRequest(String, String),
    /// The reply type of an rpc.
    RpcReply(String, String),
    /// The topic of an rpc: its option, or its name when the topic is the default.
    RpcTopic(String, String),
}

/// A breaking change between a lock and the schemas now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) rule: Rule,
    pub(crate) place: Place,
    pub(crate) message: String,
    pub(crate) help: String,
}

/// The breaking changes from `old` to `new`, in the order of the lock.
pub(crate) fn compare(old: &Lock, new: &Lock) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (name, before) in &old.events {
        match new.events.get(name) {
            Some(now) if now.topic != before.topic => findings.push(Finding {
                rule: Rule::EventSameTopic,
                place: Place::Topic(name.clone()),
                message: format!(
                    "event `{name}` moved from topic `{}` to `{}`",
                    before.topic, now.topic
                ),
                help: format!(
                    "subscribers of `{}` would stop receiving it: keep the topic, and publish on a new topic from a new major ({})",
                    before.topic,
                    new_major(name)
                ),
            }),
            Some(now) if now.event_type != before.event_type => findings.push(Finding {
                rule: Rule::EventSameType,
                place: Place::Message(name.clone()),
                message: format!(
                    "event `{name}` travels with type `{}` instead of `{}`",
                    now.event_type.as_deref().unwrap_or(&now.topic),
                    before.event_type.as_deref().unwrap_or(&before.topic)
                ),
                help: format!(
                    "subscribers match on the type and would refuse it: keep the type, and give a new major its own ({})",
                    new_major(name)
                ),
            }),
            Some(now) if now.payload != before.payload => findings.push(Finding {
                rule: Rule::EventSamePayload,
                place: Place::Message(name.clone()),
                message: format!(
                    "event `{name}` sends `{}` as its data instead of `{}`",
                    now.payload.as_deref().unwrap_or(name),
                    before.payload.as_deref().unwrap_or(name)
                ),
                help: format!(
                    "subscribers would decode the data as the message they know: keep what travels, and change it in a new major ({})",
                    new_major(name)
                ),
            }),
            Some(_) => {}
            None => {
                let renamed = new
                    .events
                    .iter()
                    .find(|(other, e)| e.topic == before.topic && !old.events.contains_key(*other));
                let (place, message) = match renamed {
                    Some((other, _)) => (
                        Place::Topic(other.clone()),
                        format!(
                            "event `{name}` on topic `{}` was renamed to `{other}`; messages name their schema, so subscribers of `{name}` would refuse them",
                            before.topic
                        ),
                    ),
                    None if new.messages.contains_key(name) => (
                        Place::Message(name.clone()),
                        format!(
                            "`{name}` is no longer an event; it was the event on topic `{}`",
                            before.topic
                        ),
                    ),
                    None => (
                        Place::File(before.file.clone()),
                        format!(
                            "event `{name}` on topic `{}` was deleted from `{}`",
                            before.topic, before.file
                        ),
                    ),
                };
                findings.push(Finding {
                    rule: Rule::EventNoDelete,
                    place,
                    message,
                    help: format!(
                        "subscribers of `{}` still expect it: keep it, and make the change in a new major ({}); once no one reads this major, record its removal with `tidings lock --force`",
                        before.topic,
                        new_major(name)
                    ),
                });
            }
        }
    }
    for (name, before) in &old.messages {
        if let Some(now) = new.messages.get(name) {
            compare_message(old, name, before, now, &mut findings);
        }
    }
    for (name, before) in &old.enums {
        if let Some(now) = new.enums.get(name) {
            compare_enum(old, name, before, now, &mut findings);
        }
    }
    compare_services(old, new, &mut findings);
    findings
}

/// The breaking changes to the rpcs of `old`: each deleted, or asked, answered or routed
/// otherwise.
fn compare_services(old: &Lock, new: &Lock, findings: &mut Vec<Finding>) {
    for (service, before) in &old.services {
        let now = new.services.get(service);
        for (rpc, was) in &before.rpcs {
            let name = format!("{service}.{rpc}");
            let keep = |what: &str| {
                format!(
                    "{what}: keep `{name}` as it is, and make the change in a new major ({})",
                    new_major(&name)
                )
            };
            let Some(is) = now.and_then(|now| now.rpcs.get(rpc)) else {
                let place = match now {
                    Some(_) => Place::Service(service.clone()),
                    None => Place::File(before.file.clone()),
                };
                findings.push(Finding {
                    rule: Rule::RpcNoDelete,
                    place,
                    message: format!(
                        "rpc `{name}` on topic `{}` was deleted from `{}`",
                        was.topic, before.file
                    ),
                    help: format!(
                        "callers of `{}` still send requests there; {}; once no one calls this major, record its removal with `tidings lock --force`",
                        was.topic,
                        keep("keep it")
                    ),
                });
                continue;
            };
            let place = |make: fn(String, String) -> Place| make(service.clone(), rpc.clone());
            if is.request != was.request {
                findings.push(Finding {
                    rule: Rule::RpcSameRequest,
                    place: place(Place::RpcRequest),
                    message: format!(
                        "rpc `{name}` is asked with `{}` instead of `{}`",
                        is.request, was.request
                    ),
                    help: keep(&format!(
                        "callers still send `{}`, which servers would refuse",
                        was.request
                    )),
                });
            }
            if is.reply != was.reply {
                findings.push(Finding {
                    rule: Rule::RpcSameReply,
                    place: place(Place::RpcReply),
                    message: format!(
                        "rpc `{name}` answers with `{}` instead of `{}`",
                        is.reply, was.reply
                    ),
                    help: keep(&format!(
                        "callers still expect `{}`, and would refuse the reply",
                        was.reply
                    )),
                });
            }
            if is.topic != was.topic {
                findings.push(Finding {
                    rule: Rule::RpcSameTopic,
                    place: place(Place::RpcTopic),
                    message: format!(
                        "rpc `{name}` moved from topic `{}` to `{}`",
                        was.topic, is.topic
                    ),
                    help: keep(&format!(
                        "callers still send requests to `{}`, where no server would answer",
                        was.topic
                    )),
                });
            }
        }
    }
}

fn compare_message(
    old: &Lock,
    name: &str,
    before: &LockedMessage,
    now: &LockedMessage,
    findings: &mut Vec<Finding>,
) {
    let within = within(old, name);
    let help = unreadable(&within, name);
    let breaking = |rule, place, message: String| Finding {
        rule,
        place,
        message,
        help: help.clone(),
    };
    reservations(
        &before.reserved_numbers,
        &before.reserved_names,
        &now.reserved_numbers,
        &now.reserved_names,
        &mut |what| {
            findings.push(breaking(
                Rule::ReservedNoDelete,
                Place::Message(name.to_owned()),
                format!("`{name}` no longer reserves field {what}"),
            ))
        },
    );
    let fields: BTreeMap<u32, &LockedField> = now.fields.iter().map(|f| (f.number, f)).collect();
    for b in &before.fields {
        let number = b.number;
        let Some(n) = fields.get(&number) else {
            let number_kept = reserves(&now.reserved_numbers, i64::from(number));
            let name_kept = now.reserved_names.contains(&b.name);
            if number_kept && name_kept {
                continue;
            }
            let missing = match (number_kept, name_kept) {
                (false, false) => format!("its number {number} and its name `{}`", b.name),
                (false, true) => format!("its number {number}"),
                _ => format!("its name `{}`", b.name),
            };
            let moved = now.fields.iter().find(|f| f.name == b.name);
            let (place, message) = match moved {
                Some(f) => (
                    Place::Field(name.to_owned(), f.number),
                    format!(
                        "field `{}` of `{name}` moved from number {number} to {} without reserving {missing}",
                        b.name, f.number
                    ),
                ),
                None => (
                    Place::Message(name.to_owned()),
                    format!(
                        "field {number} `{}` of `{name}` was deleted without reserving {missing}",
                        b.name
                    ),
                ),
            };
            findings.push(Finding {
                rule: Rule::FieldNoDeleteUnlessReserved,
                place,
                message,
                help: format!(
                    "reserve both so they are never reused: `reserved {number}; reserved \"{}\";`; to change the field instead, leave {within} as it is and make a new major ({})",
                    b.name,
                    new_major(name)
                ),
            });
            continue;
        };
        let field = |what: &str| format!("field {number} `{}` of `{name}` {what}", b.name);
        if n.name != b.name {
            findings.push(breaking(
                Rule::FieldSameName,
                Place::FieldName(name.to_owned(), number),
                format!(
                    "field {number} of `{name}` was renamed from `{}` to `{}`",
                    b.name, n.name
                ),
            ));
        } else if n.json_name != b.json_name {
            findings.push(breaking(
                Rule::FieldSameJsonName,
                Place::Field(name.to_owned(), number),
                field(&format!(
                    "changed its JSON name from `{}` to `{}`",
                    b.json_name, n.json_name
                )),
            ));
        }
        if cardinality(b.label) != cardinality(n.label) {
            findings.push(breaking(
                Rule::FieldSameLabel,
                Place::Field(name.to_owned(), number),
                field(&format!(
                    "changed from {} to {}",
                    b.label.as_str(),
                    n.label.as_str()
                )),
            ));
        } else if !same_type(b, n) {
            findings.push(breaking(
                Rule::FieldWireJsonCompatibleType,
                Place::Field(name.to_owned(), number),
                field(&format!(
                    "changed type from `{}` to `{}`",
                    b.spelled(),
                    n.spelled()
                )),
            ));
        }
        let moved = match (&b.oneof, &n.oneof) {
            (Some(from), Some(to)) if from != to => {
                Some(format!("moved from oneof `{from}` to oneof `{to}`"))
            }
            (Some(from), None) => Some(format!("moved out of oneof `{from}`")),
            (None, Some(to)) => Some(format!("moved into oneof `{to}`")),
            _ => None,
        };
        if let Some(moved) = moved {
            findings.push(breaking(
                Rule::FieldSameOneof,
                Place::Field(name.to_owned(), number),
                field(&moved),
            ));
        }
    }
}

fn compare_enum(
    old: &Lock,
    name: &str,
    before: &LockedEnum,
    now: &LockedEnum,
    findings: &mut Vec<Finding>,
) {
    let within = within(old, name);
    let mut push = |rule, place, message: String, help: Option<String>| {
        findings.push(Finding {
            rule,
            place,
            message,
            help: help.unwrap_or_else(|| unreadable(&within, name)),
        })
    };
    reservations(
        &before.reserved_numbers,
        &before.reserved_names,
        &now.reserved_numbers,
        &now.reserved_names,
        &mut |what| {
            push(
                Rule::ReservedNoDelete,
                Place::Enum(name.to_owned()),
                format!("enum `{name}` no longer reserves value {what}"),
                None,
            )
        },
    );
    let names_of = |values: &[crate::lock::LockedValue], number: i32| -> BTreeSet<String> {
        values
            .iter()
            .filter(|v| v.number == number)
            .map(|v| v.name.clone())
            .collect()
    };
    let numbers: BTreeSet<i32> = before.values.iter().map(|v| v.number).collect();
    for number in numbers {
        let old_names = names_of(&before.values, number);
        let new_names = names_of(&now.values, number);
        let listed = |names: &BTreeSet<String>| {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if new_names.is_empty() {
            let number_kept = reserves(&now.reserved_numbers, i64::from(number));
            let names_kept = old_names.iter().all(|n| now.reserved_names.contains(n));
            if number_kept && names_kept {
                continue;
            }
            let missing = match (number_kept, names_kept) {
                (false, false) => format!("its number {number} and its name"),
                (false, true) => format!("its number {number}"),
                _ => "its name".to_owned(),
            };
            let first = old_names.iter().next().cloned().unwrap_or_default();
            push(
                Rule::EnumValueNoDeleteUnlessReserved,
                Place::Enum(name.to_owned()),
                format!(
                    "value {number} {} of enum `{name}` was deleted without reserving {missing}",
                    listed(&old_names)
                ),
                Some(format!(
                    "reserve both so they are never reused: `reserved {number}; reserved \"{first}\";`; to change the value instead, leave {within} as it is and make a new major ({})",
                    new_major(name)
                )),
            );
        } else if !old_names.is_subset(&new_names) {
            push(
                Rule::EnumValueSameName,
                Place::EnumValue(name.to_owned(), number),
                format!(
                    "value {number} of enum `{name}` was renamed from {} to {}; JSON carries enum values by name",
                    listed(&old_names),
                    listed(&new_names)
                ),
                None,
            );
        }
    }
}

/// The help for a change that old events could not be read after.
fn unreadable(within: &str, name: &str) -> String {
    format!(
        "events written before the change could no longer be read; leave {within} as it is and make the change in a new major ({})",
        new_major(name)
    )
}

/// Reports, through `report`, each number range or name of `before` that `now` does not
/// reserve any more.
fn reservations(
    before_numbers: &[Reserved],
    before_names: &[String],
    now_numbers: &[Reserved],
    now_names: &[String],
    report: &mut dyn FnMut(String),
) {
    for range in before_numbers {
        if !covers(now_numbers, range) {
            let plural = if range.start == range.end { "" } else { "s" };
            report(format!("number{plural} `{range}`"));
        }
    }
    for name in before_names {
        if !now_names.contains(name) {
            report(format!("name `{name}`"));
        }
    }
}

fn reserves(ranges: &[Reserved], number: i64) -> bool {
    ranges.iter().any(|r| r.contains(number))
}

/// Whether `ranges` together cover every number of `range`.
fn covers(ranges: &[Reserved], range: &Reserved) -> bool {
    let mut next = range.start;
    while next <= range.end {
        match ranges.iter().find(|r| r.contains(next)) {
            Some(r) => next = r.end + 1,
            None => return false,
        }
    }
    true
}

/// Labels whose binary and JSON forms read each other share a group: presence aside, a
/// singular field is the same on the wire and in JSON whether `optional` or not.
fn cardinality(label: Label) -> u8 {
    match label {
        Label::Singular | Label::Optional => 0,
        Label::Required => 1,
        Label::Repeated => 2,
        Label::Map => 3,
    }
}

/// Whether two field types read each other's binary and JSON forms: the same named type, or
/// scalars of one of buf's wire-and-JSON compatibility groups.
fn same_type(a: &LockedField, b: &LockedField) -> bool {
    let group = |kind: &str| -> String {
        match kind {
            "int32" | "uint32" => "int32".to_owned(),
            "int64" | "uint64" => "int64".to_owned(),
            "fixed32" | "sfixed32" => "fixed32".to_owned(),
            "fixed64" | "sfixed64" => "fixed64".to_owned(),
            other => other.to_owned(),
        }
    };
    group(&a.kind) == group(&b.kind)
        && a.type_name == b.type_name
        && a.key.as_deref().map(group) == b.key.as_deref().map(group)
}

/// A type and the event majors it is part of: "`events.order.v1.Created`", or
/// "`shop.common.v1.Money` (part of `events.order.v1.Created`, ...)".
fn within(lock: &Lock, type_name: &str) -> String {
    if lock.events.contains_key(type_name) {
        return format!("`{type_name}`");
    }
    let users: Vec<&str> = lock
        .events
        .keys()
        .filter(|event| uses(lock, event, type_name))
        .map(String::as_str)
        .collect();
    const SHOWN: usize = 3;
    let mut listed = users
        .iter()
        .take(SHOWN)
        .map(|u| format!("`{u}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if users.len() > SHOWN {
        listed.push_str(&format!(" and {} more", users.len() - SHOWN));
    }
    if listed.is_empty() {
        format!("`{type_name}`")
    } else {
        format!("`{type_name}` (part of {listed})")
    }
}

/// Whether the message `from` reaches the type `target` through its fields, in the lock.
fn uses(lock: &Lock, from: &str, target: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut pending = vec![from];
    while let Some(name) = pending.pop() {
        if name == target {
            return true;
        }
        if !seen.insert(name) {
            continue;
        }
        if let Some(message) = lock.messages.get(name) {
            pending.extend(message.fields.iter().filter_map(|f| f.type_name.as_deref()));
        }
    }
    false
}

/// The package a new major of the type `full_name` would go in: `events.order.v1.Created`
/// gives "package `events.order.v2`". Names without a version segment get a general hint.
fn new_major(full_name: &str) -> String {
    let segments: Vec<&str> = full_name.split('.').collect();
    let at = segments
        .iter()
        .rposition(|s| parse_version(s).is_ok_and(|v| v.major < u32::MAX));
    match at {
        Some(i) => {
            let major = parse_version(segments[i]).map_or(1, |v| v.major) + 1;
            let mut package: Vec<String> = segments[..i].iter().map(|s| (*s).to_owned()).collect();
            package.push(format!("v{major}"));
            format!("package `{}`", package.join("."))
        }
        None => "a package ending in the next version".to_owned(),
    }
}
