//! How a verb prints an event: attributes and data as canonical proto3 JSON, one object per
//! line with `--format json`, or a readable form.

use base64::Engine as _;
use clap::ValueEnum;
use serde_json::{Map, Value};
use tidings::broker::{Malformed, Message};
use tidings_codegen::SchemaSet;

use crate::by_schema::{data_json, descriptor_of};

/// How events are printed.
#[derive(Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Readable: a heading per event, then its attributes and its data, indented.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A message as JSON: `attributes` (every CloudEvents attribute), and `data` decoded by the
/// schemas, or `error` saying why it does not decode and `data_base64` with its bytes.
pub(crate) fn message_json(set: &SchemaSet, message: &Message, topic: &str) -> Value {
    let mut attributes = Map::new();
    for (name, value) in message.envelope.attributes() {
        attributes.insert(name.to_owned(), Value::String(value.into_owned()));
    }
    let mut object = Map::new();
    object.insert("attributes".to_owned(), Value::Object(attributes));
    match descriptor_of(set, message, topic).and_then(|d| data_json(d, message)) {
        Ok(data) => {
            object.insert("data".to_owned(), data);
        }
        Err(reason) => {
            object.insert("error".to_owned(), Value::String(reason));
            object.insert("data_base64".to_owned(), base64_of(&message.data));
        }
    }
    Value::Object(object)
}

/// What arrived that is not a CloudEvents message, as JSON: `error`, its `headers` and
/// `data_base64`.
pub(crate) fn malformed_json(malformed: &Malformed) -> Value {
    let headers: Map<String, Value> = malformed
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    serde_json::json!({
        "error": format!("not a CloudEvents message: {}", malformed.reason),
        "headers": headers,
        "data_base64": base64_of(&malformed.data),
    })
}

fn base64_of(data: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(data))
}

/// `object` printed in `format`, under a heading of `title` in the readable form.
pub(crate) fn print(format: Format, title: &str, object: &Value) {
    match format {
        Format::Json => println!("{object}"),
        Format::Text => println!("{}", readable(title, object)),
    }
}

/// The readable form: the title, then each member of the object (attributes one per line, data
/// as indented JSON).
fn readable(title: &str, object: &Value) -> String {
    let mut out = format!("── {title}\n");
    let Value::Object(members) = object else {
        return out + &object.to_string();
    };
    for (name, value) in members {
        match value {
            Value::Object(inner) if name == "attributes" || name == "headers" => {
                for (key, v) in inner {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    out.push_str(&format!("  {key}: {v}\n"));
                }
            }
            Value::String(text) => out.push_str(&format!("  {name}: {text}\n")),
            other => {
                // A JSON tree of strings, numbers, maps and lists always serializes.
                let pretty = serde_json::to_string_pretty(other).unwrap_or_default();
                out.push_str(&format!("  {name}:\n"));
                for line in pretty.lines() {
                    out.push_str(&format!("    {line}\n"));
                }
            }
        }
    }
    out
}
