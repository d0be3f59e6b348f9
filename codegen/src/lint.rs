//! Checks beyond the mapping rules: names the generated code would clash on, names Rust
//! reserves, and events that carry nothing.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::load::Loaded;
use crate::locate;
use crate::mapping::{self, Event};
use crate::names;

/// Types generated into every package that has events.
const STUB_TYPES: &[&str] = &["Publisher", "Handler"];

/// Methods the generated `Publisher` has besides one per event: its constructor.
const PUBLISHER_METHODS: &[&str] = &["new"];

pub(crate) fn lint(loaded: &Loaded, events: &[Event], diagnostics: &mut Diagnostics) {
    let sources = loaded.sources.borrow();
    let mut packages: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for event in events {
        packages
            .entry(event.info.package.as_str())
            .or_default()
            .push(event);
    }

    for name in &loaded.names {
        let Some(file) = loaded.pool.get_file_by_name(name) else {
            continue;
        };
        let proto = file.file_descriptor_proto();
        let has_events = packages.contains_key(file.package_name());
        let stub_clash = |type_name: &str| has_events && STUB_TYPES.contains(&type_name);
        for message in file.messages() {
            if stub_clash(&names::type_name(message.name())) {
                diagnostics.push(
                    Diagnostic::error(
                        format!(
                            "message `{}` clashes with the `{}` generated for the events of package `{}`",
                            message.name(),
                            names::type_name(message.name()),
                            file.package_name()
                        ),
                        locate::message_name(&sources, &message),
                    )
                    .with_help("rename the message"),
                );
            }
        }
        for e in file.enums() {
            if stub_clash(&names::type_name(e.name())) {
                diagnostics.push(
                    Diagnostic::error(
                        format!(
                            "enum `{}` clashes with the `{}` generated for the events of package `{}`",
                            e.name(),
                            names::type_name(e.name()),
                            file.package_name()
                        ),
                        locate::declaration(&sources, proto, &[e.path(), &[1]].concat()),
                    )
                    .with_help("rename the enum"),
                );
            }
        }
        for message in mapping::declared_messages(&file) {
            let reserved = |name: &str, snake: bool| {
                // As Rust would spell it, before the suffix that escapes a reserved word.
                let spelled = if snake {
                    heck::ToSnakeCase::to_snake_case(name)
                } else {
                    heck::ToUpperCamelCase::to_upper_camel_case(name)
                };
                names::SUFFIXED_KEYWORDS
                    .contains(&spelled.as_str())
                    .then_some(spelled)
            };
            if let Some(word) = reserved(message.name(), false) {
                diagnostics.push(Diagnostic::warning(
                    format!("message name `{}` is the reserved word `{word}` in Rust; the generated type is `{word}_`", message.name()),
                    locate::message_name(&sources, &message),
                ).with_help("rename the message"));
            }
            for field in message.fields() {
                if let Some(word) = reserved(field.name(), true) {
                    diagnostics.push(Diagnostic::warning(
                        format!("field name `{}` is the reserved word `{word}` in Rust; the generated field is `{word}_`", field.name()),
                        locate::declaration(&sources, proto, &[field.path(), &[1]].concat()),
                    ).with_help("rename the field to use it without the suffix; its wire and JSON names stay as declared"));
                }
            }
        }
    }

    for (package, events) in &packages {
        let mut methods: BTreeMap<&str, &Event> = BTreeMap::new();
        for event in events {
            if PUBLISHER_METHODS.contains(&event.method.as_str()) {
                diagnostics.push(
                    Diagnostic::error(
                        format!(
                            "event `{}` makes the method `{}`, which the `Publisher` generated for package `{package}` already has",
                            event.info.schema, event.method
                        ),
                        locate::message_name(&sources, &event.message),
                    )
                    .with_help("rename the message; publisher and handler methods are the snake_case message names"),
                );
            }
            if let Some(first) = methods.insert(event.method.as_str(), event) {
                diagnostics.push(
                    Diagnostic::error(
                        format!(
                            "events `{}` and `{}` of package `{package}` both make the method `{}`",
                            first.info.schema, event.info.schema, event.method
                        ),
                        locate::message_name(&sources, &event.message),
                    )
                    .with_note(
                        format!("`{}` is declared here", first.info.schema),
                        locate::message_name(&sources, &first.message),
                    )
                    .with_help("rename one of them; publisher and handler methods are the snake_case message names"),
                );
            }
        }
    }

    for event in events {
        // A hand-written `#[derive(Event)]` on a default topic assumes the schema the convention
        // gives it back; a message name snake_case loses information from gets another one.
        let topic = &event.info.topic;
        let by_convention = topic
            .rsplit('.')
            .nth(1)
            .is_some_and(|segment| segment == names::topic_segment(event.message.name()));
        if let Some(assumed) = tidings_contract::default_schema(topic)
            && by_convention
            && assumed != event.info.schema
        {
            diagnostics.push(
                Diagnostic::warning(
                    format!(
                        "a `#[derive(Event)]` for `{topic}` assumes schema `{assumed}`, not `{}`, so it would refuse this event",
                        event.info.schema
                    ),
                    locate::message_name(&sources, &event.message),
                )
                .with_help(format!(
                    "name the message `{}`, or write `schema = \"{}\"` in hand-written events of this topic",
                    assumed.rsplit('.').next().unwrap_or_default(),
                    event.info.schema
                )),
            );
        }
        if event.message.fields().len() == 0 {
            diagnostics.push(
                Diagnostic::warning(
                    format!("event `{}` has no fields", event.info.schema),
                    locate::message_name(&sources, &event.message),
                )
                .with_help("an event says what happened to what: give it at least the identifier of what it is about"),
            );
        }
    }
}
