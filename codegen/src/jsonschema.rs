//! JSON Schema for the canonical proto3 JSON mapping of messages and enums: what a tidings
//! event looks like as `application/json`, and what any protobuf JSON reader accepts.
//!
//! Fields go by their JSON name (lowerCamelCase unless `json_name` says otherwise), 64-bit
//! integers are decimal strings, enums are value names, `bytes` are base64, floating point
//! numbers may be `"NaN"` or `"Infinity"`, maps are objects, repeated fields arrays, and at most
//! one member of a oneof is present. Well-known types take their special JSON forms
//! (`Timestamp` is an RFC 3339 string). Message and enum types are referenced, so each is
//! described once.

use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::comments;
use crate::shape::is_well_known;

/// Turns the full name of a message or enum into the `$ref` that points at its schema.
pub(crate) type Refer<'a> = &'a dyn Fn(&str) -> String;

/// The schema of `message`, its message and enum fields referenced through `refer`.
pub(crate) fn message_schema(message: &MessageDescriptor, refer: Refer<'_>) -> Value {
    let file = message.parent_file_descriptor_proto();
    let mut properties = Map::new();
    for field in message.fields() {
        let mut schema = field_schema(&field, refer);
        if let Some(comment) = comments::leading(file, field.path()) {
            schema = described(schema, comment);
        }
        properties.insert(field.json_name().to_owned(), schema);
    }
    let mut schema = json!({
        "type": "object",
        "title": message.name(),
        "properties": properties,
        "x-protobuf-message": message.full_name(),
    });
    if let Some(comment) = comments::leading(file, message.path()) {
        schema["description"] = Value::String(comment);
    }
    // Each oneof admits one of its members, or none.
    let oneofs: Vec<Value> = message
        .oneofs()
        .filter(|o| !o.is_synthetic())
        .map(|oneof| {
            let members: Vec<Value> = oneof
                .fields()
                .map(|f| json!({ "required": [f.json_name()] }))
                .collect();
            let mut choices = members.clone();
            choices.push(json!({ "not": { "anyOf": members } }));
            json!({ "oneOf": choices })
        })
        .collect();
    match oneofs.len() {
        0 => {}
        1 => {
            schema["oneOf"] = oneofs[0]["oneOf"].clone();
        }
        _ => {
            schema["allOf"] = Value::Array(oneofs);
        }
    }
    schema
}

/// The schema of `e`: its value names.
pub(crate) fn enum_schema(e: &EnumDescriptor) -> Value {
    let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
    let mut schema = json!({
        "type": "string",
        "title": e.name(),
        "enum": names,
        "x-protobuf-enum": e.full_name(),
    });
    if let Some(comment) = comments::leading(e.parent_file().file_descriptor_proto(), e.path()) {
        schema["description"] = Value::String(comment);
    }
    schema
}

fn field_schema(field: &FieldDescriptor, refer: Refer<'_>) -> Value {
    if field.is_map()
        && let Kind::Message(entry) = field.kind()
    {
        let key = entry.map_entry_key_field().kind();
        let mut schema = json!({
            "type": "object",
            "additionalProperties": kind_schema(&entry.map_entry_value_field().kind(), refer),
        });
        // JSON object keys are strings; say which strings a non-string key becomes.
        let keys = match key {
            Kind::Bool => Some(json!({ "enum": ["true", "false"] })),
            Kind::String => None,
            Kind::Uint32 | Kind::Uint64 | Kind::Fixed32 | Kind::Fixed64 => {
                Some(json!({ "pattern": "^[0-9]+$" }))
            }
            _ => Some(json!({ "pattern": "^-?[0-9]+$" })),
        };
        if let Some(keys) = keys {
            schema["propertyNames"] = keys;
        }
        return schema;
    }
    let one = kind_schema(&field.kind(), refer);
    if field.is_list() {
        json!({ "type": "array", "items": one })
    } else {
        one
    }
}

fn kind_schema(kind: &Kind, refer: Refer<'_>) -> Value {
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({ "type": "integer", "minimum": i32::MIN, "maximum": i32::MAX })
        }
        Kind::Uint32 | Kind::Fixed32 => {
            json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX })
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            json!({ "type": "string", "pattern": "^-?[0-9]+$" })
        }
        Kind::Uint64 | Kind::Fixed64 => json!({ "type": "string", "pattern": "^[0-9]+$" }),
        Kind::Float | Kind::Double => json!({
            "oneOf": [
                { "type": "number" },
                { "type": "string", "enum": ["NaN", "Infinity", "-Infinity"] },
            ]
        }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
        Kind::Enum(e) if is_well_known(e.full_name()) => json!({ "type": "null" }),
        Kind::Enum(e) => json!({ "$ref": refer(e.full_name()) }),
        Kind::Message(m) if is_well_known(m.full_name()) => well_known(m.full_name(), refer),
        Kind::Message(m) => json!({ "$ref": refer(m.full_name()) }),
    }
}

/// The special JSON forms of the well-known types.
fn well_known(full_name: &str, refer: Refer<'_>) -> Value {
    let scalar = |kind: Kind| kind_schema(&kind, refer);
    match full_name.trim_start_matches("google.protobuf.") {
        "Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "Duration" => json!({ "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$" }),
        "FieldMask" => json!({ "type": "string" }),
        "Value" => json!({}),
        "ListValue" => json!({ "type": "array" }),
        "Any" => json!({
            "type": "object",
            "properties": { "@type": { "type": "string" } },
            "required": ["@type"],
        }),
        "DoubleValue" => scalar(Kind::Double),
        "FloatValue" => scalar(Kind::Float),
        "Int64Value" => scalar(Kind::Int64),
        "UInt64Value" => scalar(Kind::Uint64),
        "Int32Value" => scalar(Kind::Int32),
        "UInt32Value" => scalar(Kind::Uint32),
        "BoolValue" => scalar(Kind::Bool),
        "StringValue" => scalar(Kind::String),
        "BytesValue" => scalar(Kind::Bytes),
        // `Struct`, `Empty`, and any other message of the protobuf package.
        _ => json!({ "type": "object" }),
    }
}

/// `schema` with a description; a `$ref` is wrapped, since its siblings are ignored.
fn described(schema: Value, description: String) -> Value {
    if schema.get("$ref").is_some() {
        json!({ "allOf": [schema], "description": description })
    } else {
        let mut schema = schema;
        schema["description"] = Value::String(description);
        schema
    }
}
