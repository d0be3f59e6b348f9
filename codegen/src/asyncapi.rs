//! An AsyncAPI 3.0 document for the events of a schema folder, for the people and tools on the
//! other side of the topics.
//!
//! One channel per topic, addressed by the topic; one message per event, its payload the JSON
//! Schema of the event's canonical proto3 JSON form (the `.proto` file and message named in
//! `x-protobuf-file` and `x-protobuf-message`), its headers the CloudEvents attributes every
//! tidings message carries; a `send` and a `receive` operation per channel. Message and enum
//! types are components, described once. Maps are sorted, so the same schemas give the same
//! document.
//!
//! An rpc is a channel addressed by its request topic, carrying its request, and a channel of
//! replies with no fixed address (each reply goes where its request's `replyto` attribute
//! says); its `send` (the caller's) and `receive` (the server's) operations name the reply. Its
//! request and reply are events, so their messages are the events' own.

use serde_json::{Map, Value, json};

use crate::comments;
use crate::jsonschema::{enum_schema, message_schema};
use crate::mapping::Event;
use crate::service::Rpc;
use crate::service::Service;
use crate::shape::reach;

/// The AsyncAPI version written.
const ASYNCAPI: &str = "3.0.0";

/// The AsyncAPI document describing `events`, titled `title` at API version `version`.
pub(crate) fn document(
    events: &[Event],
    services: &[Service],
    title: &str,
    version: &str,
) -> Value {
    let refer = |name: &str| format!("#/components/schemas/{name}");
    let reached = reach(events.iter().map(|e| e.data_message().clone()));
    let mut schemas = Map::new();
    for (name, message) in &reached.messages {
        schemas.insert(name.clone(), message_schema(message, &refer));
    }
    for (name, e) in &reached.enums {
        schemas.insert(name.clone(), enum_schema(e));
    }

    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for event in events {
        let topic = &event.info.topic;
        let schema = &event.info.schema;
        // What travels: the payload a wrapper carries, or the event's own message.
        let data = event.data_message();
        let name = event.message.name();
        let comment = comments::leading(
            event.message.parent_file_descriptor_proto(),
            event.message.path(),
        );
        let mut message = json!({
            "name": schema,
            "title": format!("{name} v{}", event.info.major),
            "headers": headers(topic, event.info.event_type(), data.full_name()),
            "payload": { "$ref": refer(data.full_name()) },
            "correlationId": {
                "description": "The conversation the event belongs to (CloudEvents extension `correlationid`).",
                "location": "$message.header#/correlationid",
            },
            "x-protobuf-message": data.full_name(),
            "x-protobuf-file": data.parent_file().name(),
        });
        if let Some(comment) = &comment {
            message["summary"] = Value::String(comments::summary(comment));
            message["description"] = Value::String(comment.clone());
        }
        messages.insert(schema.clone(), message);

        let mut channel = json!({
            "address": topic,
            "messages": { name: { "$ref": format!("#/components/messages/{schema}") } },
        });
        if let Some(comment) = &comment {
            channel["description"] = Value::String(comment.clone());
        }
        channels.insert(topic.clone(), channel);

        let channel_ref = format!("#/channels/{topic}");
        let message_ref = format!("#/channels/{topic}/messages/{name}");
        for (action, summary) in [
            ("send", format!("Publish `{schema}` on `{topic}`.")),
            (
                "receive",
                format!("Subscribe to `{topic}` to receive `{schema}`."),
            ),
        ] {
            operations.insert(
                format!("{topic}.{action}"),
                json!({
                    "action": action,
                    "summary": summary,
                    "channel": { "$ref": channel_ref },
                    "messages": [{ "$ref": message_ref }],
                }),
            );
        }
    }

    for service in services {
        for rpc in &service.rpcs {
            rpc_operations(rpc, &mut channels, &mut operations);
        }
    }

    json!({
        "asyncapi": ASYNCAPI,
        "info": {
            "title": title,
            "version": version,
            "description": "Versioned events. Every message is a CloudEvents 1.0 event whose `type` is its topic; two majors of an event are two messages on two topics. A request-reply operation (an rpc of a service) sends its request, an event, on the operation's own topic and receives its reply, an event too, at the address the request names in its `replyto` attribute. The data is protobuf binary (`application/protobuf`, the default) or the canonical proto3 JSON mapping (`application/json`), as `datacontenttype` says; each payload schema describes the JSON form.",
        },
        "defaultContentType": "application/protobuf",
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
        },
    })
}

/// The channels of `rpc` (its requests, and its replies) and its operations: the caller's
/// `send` and the server's `receive`, each with the reply.
fn rpc_operations(
    rpc: &Rpc,
    channels: &mut Map<String, Value>,
    operations: &mut Map<String, Value>,
) {
    let topic = &rpc.info.topic;
    let name = &rpc.info.name;
    let (request, reply) = (rpc.request(), rpc.reply());
    let component = |message: &prost_reflect::MessageDescriptor| json!({ message.name(): { "$ref": format!("#/components/messages/{}", message.full_name()) } });
    let comment = comments::leading(
        rpc.descriptor
            .parent_service()
            .parent_file_descriptor_proto(),
        rpc.descriptor.path(),
    );
    let mut channel = json!({
        "address": topic,
        "title": format!("{name} requests"),
        "messages": component(&request),
    });
    if let Some(comment) = &comment {
        channel["description"] = Value::String(comment.clone());
    }
    channels.insert(topic.clone(), channel);
    let replies = format!("{topic}.reply");
    channels.insert(
        replies.clone(),
        json!({
            // Each caller receives its replies at an address of its own.
            "address": null,
            "title": format!("{name} replies"),
            "description": format!("Replies to the requests of `{name}`, each sent to the address its request names in its `replyto` attribute."),
            "messages": component(&reply),
        }),
    );
    let reply_of = json!({
        "address": {
            "description": "The address the request names for its reply.",
            "location": "$message.header#/replyto",
        },
        "channel": { "$ref": format!("#/channels/{replies}") },
        "messages": [{ "$ref": format!("#/channels/{replies}/messages/{}", reply.name()) }],
    });
    let request_ref = format!("#/channels/{topic}/messages/{}", request.name());
    for (action, summary) in [
        (
            "send",
            format!(
                "Call `{name}`: send `{}` on `{topic}` and receive `{}` in reply.",
                request.full_name(),
                reply.full_name()
            ),
        ),
        (
            "receive",
            format!(
                "Serve `{name}`: receive `{}` from `{topic}` and reply with `{}`.",
                request.full_name(),
                reply.full_name()
            ),
        ),
    ] {
        operations.insert(
            format!("{topic}.{action}"),
            json!({
                "action": action,
                "summary": summary,
                "channel": { "$ref": format!("#/channels/{topic}") },
                "messages": [{ "$ref": request_ref }],
                "reply": reply_of,
            }),
        );
    }
}

/// The CloudEvents attributes of a message on `topic` carrying `schema`.
fn headers(topic: &str, event_type: &str, schema: &str) -> Value {
    let text = |description: &str| json!({ "type": "string", "description": description });
    json!({
        "type": "object",
        "description": "CloudEvents 1.0 attributes. In binary content mode they travel as transport headers, named after each transport's CloudEvents binding (`ce_type` on Kafka, `ce-type` on HTTP, `cloudEvents:type` on AMQP...); in structured mode they are members of the JSON event document.",
        "required": ["id", "source", "specversion", "type"],
        "properties": {
            "id": text("Unique id of the event; tidings writes a UUID v7, ordered by time."),
            "source": {
                "type": "string",
                "format": "uri-reference",
                "description": "The publishing service.",
            },
            "specversion": { "type": "string", "const": "1.0", "description": "CloudEvents version." },
            "type": if event_type == topic {
                json!({ "type": "string", "const": topic, "description": "The event type: its topic, and so its major version." })
            } else {
                json!({ "type": "string", "const": event_type, "description": format!("The event type, as its producer names it; it travels on `{topic}`.") })
            },
            "time": { "type": "string", "format": "date-time", "description": "When the event happened, RFC 3339." },
            "datacontenttype": {
                "type": "string",
                "enum": ["application/protobuf", "application/json"],
                "description": "How the data is encoded.",
            },
            "dataschema": {
                "type": "string",
                "const": format!("proto:{schema}"),
                "description": "The protobuf message of the data; a subscriber refuses any other.",
            },
            "subject": text("What the event is about, within the source."),
            "partitionkey": text("CloudEvents partitioning extension: the key events are ordered by."),
            "correlationid": text("Correlation extension: the conversation the event belongs to."),
            "causationid": text("Causation extension: the id of the event that caused this one."),
            "causationdepth": {
                "type": "integer",
                "minimum": 0,
                "description": "Causation extension: how many events caused this one, one after the other; absent means 0. A publish above the bus's bound is refused, which stops a publish loop.",
            },
            "traceparent": text("Distributed tracing extension: W3C trace context `traceparent`."),
            "tracestate": text("Distributed tracing extension: W3C trace context `tracestate`."),
        },
    })
}
