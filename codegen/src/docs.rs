//! A static HTML catalog of the events of a schema folder: one page, no external assets.
//!
//! Events are grouped by domain (the topic without its event and version segments), the majors
//! of an event side by side, each with its topic, schema, file and fields with their comments.
//! The majors at the highest major number of an event are marked current. The message and
//! enum types the events are made of follow, so that every field type links somewhere. The
//! services follow the events, each operation with its request, reply and topic; a request or
//! reply links to its event.

use std::collections::BTreeMap;

use askama::Template;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use crate::comments;
use crate::error::Error;
use crate::mapping::Event;
use crate::service::Service;
use crate::shape::{self, Label, is_well_known, reach};

#[derive(Template)]
#[template(path = "docs/index.html")]
struct Page<'a> {
    title: &'a str,
    event_count: usize,
    domains: Vec<Domain>,
    services: Vec<ServiceDoc>,
    rpc_count: usize,
    types: Vec<TypeDoc>,
}

/// A service and its operations.
struct ServiceDoc {
    /// The full name, `events.inventory.v1.Stock`.
    name: String,
    anchor: String,
    file: String,
    description: Option<String>,
    rpcs: Vec<RpcDoc>,
}

/// One operation of a service.
struct RpcDoc {
    /// The rpc's name within its service, `Reserve`.
    name: String,
    topic: String,
    /// The full names of the request and reply events, which are also their anchors.
    request: String,
    reply: String,
    rust_path: String,
    description: Option<String>,
}

struct Domain {
    name: String,
    anchor: String,
    events: Vec<EventDoc>,
}

/// One event, all its majors.
struct EventDoc {
    /// The topic without its version, `events.order.created`.
    name: String,
    anchor: String,
    versions: Vec<VersionDoc>,
}

struct VersionDoc {
    version: String,
    current: bool,
    topic: String,
    /// The CloudEvents type, when it is not the topic.
    event_type: Option<String>,
    schema: String,
    /// The message that travels as its data, when the event's message wraps it.
    payload: Option<String>,
    file: String,
    rust_path: String,
    description: Option<String>,
    fields: Vec<FieldDoc>,
}

struct FieldDoc {
    number: u32,
    name: String,
    json_name: String,
    /// `repeated`, `optional`, or empty.
    label: &'static str,
    type_text: String,
    /// The anchor of the field's message or enum type, when the catalog describes it.
    link: Option<String>,
    oneof: Option<String>,
    comment: Option<String>,
}

struct TypeDoc {
    kind: &'static str,
    name: String,
    description: Option<String>,
    fields: Vec<FieldDoc>,
    values: Vec<ValueDoc>,
}

struct ValueDoc {
    number: i32,
    name: String,
    comment: Option<String>,
}

/// The event catalog of `events` as one HTML page titled `title`, which needs nothing but itself
/// to display.
pub(crate) fn site(events: &[Event], services: &[Service], title: &str) -> Result<String, Error> {
    page(events, services, title)
        .render()
        .map_err(|e| Error::Generate(e.to_string()))
}

fn page<'a>(events: &[Event], services: &[Service], title: &'a str) -> Page<'a> {
    let event_names: Vec<&str> = events.iter().map(|e| e.info.schema.as_str()).collect();
    let reached = reach(events.iter().map(|e| e.data_message().clone()));
    let link = |name: &str| {
        (reached.messages.contains_key(name) || reached.enums.contains_key(name))
            .then(|| name.to_owned())
    };

    // domain -> event name -> majors
    let mut grouped: BTreeMap<String, BTreeMap<String, Vec<&Event>>> = BTreeMap::new();
    for event in events {
        let segments: Vec<&str> = event.info.topic.split('.').collect();
        let domain = segments[..segments.len().saturating_sub(2)].join(".");
        let name = segments[..segments.len().saturating_sub(1)].join(".");
        grouped
            .entry(domain)
            .or_default()
            .entry(name)
            .or_default()
            .push(event);
    }
    let domains = grouped
        .into_iter()
        .map(|(domain, events)| Domain {
            anchor: format!("domain-{domain}"),
            name: domain,
            events: events
                .into_iter()
                .map(|(name, mut majors)| {
                    majors.sort_by(|a, b| {
                        (a.info.major, &a.info.topic).cmp(&(b.info.major, &b.info.topic))
                    });
                    let current = majors.iter().map(|e| e.info.major).max().unwrap_or(0);
                    EventDoc {
                        anchor: format!("event-{name}"),
                        name,
                        versions: majors
                            .into_iter()
                            .map(|e| version_doc(e, current, &link))
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect();

    let mut types: Vec<TypeDoc> = reached
        .messages
        .values()
        .filter(|m| !event_names.contains(&m.full_name()))
        .map(|m| TypeDoc {
            kind: "message",
            name: m.full_name().to_owned(),
            description: comments::leading(m.parent_file_descriptor_proto(), m.path()),
            fields: fields(m, &link),
            values: Vec::new(),
        })
        .collect();
    types.extend(reached.enums.values().map(|e| {
        let file = e.parent_file().file_descriptor_proto().clone();
        TypeDoc {
            kind: "enum",
            name: e.full_name().to_owned(),
            description: comments::leading(&file, e.path()),
            fields: Vec::new(),
            values: e
                .values()
                .map(|v| ValueDoc {
                    number: v.number(),
                    name: v.name().to_owned(),
                    comment: comments::leading(&file, v.path()),
                })
                .collect(),
        }
    }));
    types.sort_by(|a, b| a.name.cmp(&b.name));

    let services: Vec<ServiceDoc> = services
        .iter()
        .filter(|s| !s.rpcs.is_empty())
        .map(service_doc)
        .collect();
    Page {
        title,
        event_count: events.len(),
        domains,
        rpc_count: services.iter().map(|s| s.rpcs.len()).sum(),
        services,
        types,
    }
}

fn service_doc(service: &Service) -> ServiceDoc {
    let descriptor = &service.descriptor;
    let proto = descriptor.parent_file_descriptor_proto();
    ServiceDoc {
        name: descriptor.full_name().to_owned(),
        anchor: format!("service-{}", descriptor.full_name()),
        file: descriptor.parent_file().name().to_owned(),
        description: comments::leading(proto, descriptor.path()),
        rpcs: service
            .rpcs
            .iter()
            .map(|rpc| RpcDoc {
                name: rpc.descriptor.name().to_owned(),
                topic: rpc.info.topic.clone(),
                request: rpc.info.request.clone(),
                reply: rpc.info.reply.clone(),
                rust_path: rpc.info.rust_path.clone(),
                description: comments::leading(proto, rpc.descriptor.path()),
            })
            .collect(),
    }
}

fn version_doc(event: &Event, current: u32, link: &dyn Fn(&str) -> Option<String>) -> VersionDoc {
    let message = &event.message;
    VersionDoc {
        version: event
            .info
            .topic
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned(),
        current: event.info.major == current,
        topic: event.info.topic.clone(),
        event_type: event.info.event_type.clone(),
        schema: event.info.schema.clone(),
        payload: event.info.payload.clone(),
        file: message.parent_file().name().to_owned(),
        rust_path: event.info.rust_path.clone(),
        description: comments::leading(message.parent_file_descriptor_proto(), message.path()),
        // What a handler reads: the payload's fields when the message wraps one.
        fields: fields(event.data_message(), link),
    }
}

fn fields(message: &MessageDescriptor, link: &dyn Fn(&str) -> Option<String>) -> Vec<FieldDoc> {
    let file = message.parent_file_descriptor_proto();
    let mut fields: Vec<FieldDoc> = message
        .fields()
        .map(|field| FieldDoc {
            number: field.number(),
            name: field.name().to_owned(),
            json_name: field.json_name().to_owned(),
            label: match Label::of(&field) {
                Label::Optional => "optional",
                Label::Repeated => "repeated",
                Label::Required => "required",
                Label::Singular | Label::Map => "",
            },
            type_text: shape::spelled(&field),
            link: linked_type(&field).and_then(|name| link(&name)),
            oneof: shape::oneof(&field),
            comment: comments::leading(file, field.path()),
        })
        .collect();
    fields.sort_by_key(|f| f.number);
    fields
}

/// The message or enum a field's values are, a map's value type included.
fn linked_type(field: &FieldDescriptor) -> Option<String> {
    let kind = match field.kind() {
        Kind::Message(entry) if field.is_map() => entry.map_entry_value_field().kind(),
        kind => kind,
    };
    shape::type_name(&kind).filter(|name| !is_well_known(name))
}
