//! The shape of event payloads: the types an event is made of, and how a field's type and label
//! are named. The lock, the AsyncAPI export and the catalog all describe payloads this way.

use std::collections::BTreeMap;

use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use prost_types::field_descriptor_proto::Label as ProtoLabel;
use serde::{Deserialize, Serialize};

/// The package of the protobuf well-known types, whose shape protobuf itself fixes.
const WELL_KNOWN_PACKAGE: &str = "google.protobuf.";

/// Whether `full_name` is one of the protobuf well-known types (`google.protobuf.Timestamp`).
pub(crate) fn is_well_known(full_name: &str) -> bool {
    full_name.starts_with(WELL_KNOWN_PACKAGE)
}

/// The message and enum types reachable from some messages through their fields, the messages
/// themselves included, by full name. Map entries and well-known types are left out: a map
/// field stands for its key and value types, and the well-known types never change.
#[derive(Default)]
pub(crate) struct Reached {
    pub(crate) messages: BTreeMap<String, MessageDescriptor>,
    pub(crate) enums: BTreeMap<String, EnumDescriptor>,
}

/// Every type reachable from `roots`.
pub(crate) fn reach(roots: impl IntoIterator<Item = MessageDescriptor>) -> Reached {
    let mut reached = Reached::default();
    let mut pending: Vec<MessageDescriptor> = roots.into_iter().collect();
    while let Some(message) = pending.pop() {
        if is_well_known(message.full_name()) {
            continue;
        }
        if !message.is_map_entry()
            && reached
                .messages
                .insert(message.full_name().to_owned(), message.clone())
                .is_some()
        {
            continue;
        }
        for field in message.fields() {
            match field.kind() {
                Kind::Message(m) => pending.push(m),
                Kind::Enum(e) if !is_well_known(e.full_name()) => {
                    reached.enums.insert(e.full_name().to_owned(), e);
                }
                _ => {}
            }
        }
    }
    reached
}

/// How many values a field holds, and whether its presence is tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Label {
    /// A proto3 field without a label: no presence, absent when default.
    Singular,
    /// `optional`: presence is tracked.
    Optional,
    /// A proto2 `required` field.
    Required,
    /// `repeated`.
    Repeated,
    /// `map<K, V>`.
    Map,
}

impl Label {
    /// The label of `field` as written in its schema.
    pub(crate) fn of(field: &FieldDescriptor) -> Self {
        let proto = field.field_descriptor_proto();
        if field.is_map() {
            return Label::Map;
        }
        match proto.label() {
            ProtoLabel::Repeated => Label::Repeated,
            ProtoLabel::Required => Label::Required,
            ProtoLabel::Optional if proto.proto3_optional() => Label::Optional,
            ProtoLabel::Optional => {
                let syntax = field
                    .parent_file()
                    .file_descriptor_proto()
                    .syntax()
                    .to_owned();
                if syntax.is_empty() || syntax == "proto2" {
                    Label::Optional
                } else {
                    Label::Singular
                }
            }
        }
    }

    /// The word for it in messages and the catalog.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Label::Singular => "singular",
            Label::Optional => "optional",
            Label::Required => "required",
            Label::Repeated => "repeated",
            Label::Map => "map",
        }
    }
}

/// The protobuf name of a field kind: `int64`, `string`, or `message` and `enum` for named types.
pub(crate) fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Double => "double",
        Kind::Float => "float",
        Kind::Int32 => "int32",
        Kind::Int64 => "int64",
        Kind::Uint32 => "uint32",
        Kind::Uint64 => "uint64",
        Kind::Sint32 => "sint32",
        Kind::Sint64 => "sint64",
        Kind::Fixed32 => "fixed32",
        Kind::Fixed64 => "fixed64",
        Kind::Sfixed32 => "sfixed32",
        Kind::Sfixed64 => "sfixed64",
        Kind::Bool => "bool",
        Kind::String => "string",
        Kind::Bytes => "bytes",
        Kind::Message(_) => "message",
        Kind::Enum(_) => "enum",
    }
}

/// The full name of a message or enum kind.
pub(crate) fn type_name(kind: &Kind) -> Option<String> {
    match kind {
        Kind::Message(m) => Some(m.full_name().to_owned()),
        Kind::Enum(e) => Some(e.full_name().to_owned()),
        _ => None,
    }
}

/// The type of a field as a schema would spell it: `uint32`, `shop.common.v1.Money`,
/// `map<string, int64>` (the label aside).
pub(crate) fn spelled(field: &FieldDescriptor) -> String {
    let one = |kind: &Kind| type_name(kind).unwrap_or_else(|| kind_name(kind).to_owned());
    match field.kind() {
        Kind::Message(entry) if field.is_map() => format!(
            "map<{}, {}>",
            one(&entry.map_entry_key_field().kind()),
            one(&entry.map_entry_value_field().kind())
        ),
        kind => one(&kind),
    }
}

/// The real oneof a field belongs to; the synthetic oneof of a proto3 `optional` field is none.
pub(crate) fn oneof(field: &FieldDescriptor) -> Option<String> {
    field
        .containing_oneof()
        .filter(|o| !o.is_synthetic())
        .map(|o| o.name().to_owned())
}
