//! Request-reply operations: the rpcs of the services declared in versioned packages.
//!
//! `service Stock { rpc Reserve(ReserveStock) returns (StockReservation); }` in package
//! `events.inventory.v1` declares one operation. Its request and reply are events of the schema
//! set, so they are typed, versioned and checked like any other event. Its requests travel on
//! a topic of its own: the package without its version, the service name in snake_case, the rpc
//! name in snake_case, then the version (`events.inventory.stock.reserve.v1`), unless
//! `option (tidings.rpc) = { topic: "..." };` names another. The topic follows the topic rule,
//! carries its package's version, and names nothing else: no event, no other rpc.
//!
//! Streaming rpcs are refused: an operation is one request and one reply.

use std::collections::{BTreeMap, HashMap};

use heck::ToSnakeCase;
use prost_reflect::{
    DescriptorPool, MessageDescriptor, MethodDescriptor, ServiceDescriptor, Value,
};
use prost_types::FileDescriptorProto;
use tidings_contract::validate_topic;

use crate::catalog::RpcInfo;
use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::load::Loaded;
use crate::locate;
use crate::mapping::{Event, has_version};
use crate::names;
use crate::sources::Sources;

/// The field numbers of a method's name, input type, output type and options in
/// `MethodDescriptorProto`, as source code info paths.
const METHOD_NAME: i32 = 1;
const METHOD_INPUT: i32 = 2;
const METHOD_OUTPUT: i32 = 3;
const METHOD_OPTIONS: i32 = 4;

/// The field number of a service's name in `ServiceDescriptorProto`.
const SERVICE_NAME: i32 = 1;

/// A service of a versioned package, with what its generated items need.
pub(crate) struct Service {
    pub(crate) descriptor: ServiceDescriptor,
    /// The prefix of its generated types, `Stock` (`StockClient`, `StockServer`).
    pub(crate) type_name: String,
    /// The suffix of its generated functions, `stock` (`serve_stock`).
    pub(crate) snake: String,
    /// Its operations, in declaration order: none for a service that declares none, which is
    /// kept so that the lock still knows it.
    pub(crate) rpcs: Vec<Rpc>,
}

/// One rpc of a service: a request-reply operation.
pub(crate) struct Rpc {
    pub(crate) info: RpcInfo,
    pub(crate) descriptor: MethodDescriptor,
    /// The generated operation type, `StockReserve`.
    pub(crate) type_name: String,
    /// The client and server method, `reserve`.
    pub(crate) method: String,
}

impl Rpc {
    /// The message of its requests.
    pub(crate) fn request(&self) -> MessageDescriptor {
        self.descriptor.input()
    }

    /// The message of its replies.
    pub(crate) fn reply(&self) -> MessageDescriptor {
        self.descriptor.output()
    }
}

impl Service {
    /// The generated client type, `StockClient`.
    pub(crate) fn client(&self) -> String {
        format!("{}Client", self.type_name)
    }

    /// The generated server trait, `StockServer`.
    pub(crate) fn server(&self) -> String {
        format!("{}Server", self.type_name)
    }

    /// The function serving it in the group named after it, `serve_stock`.
    pub(crate) fn serve(&self) -> String {
        format!("serve_{}", self.snake)
    }

    /// The function serving it in a group of the caller's naming, `serve_stock_in`.
    pub(crate) fn serve_in(&self) -> String {
        format!("serve_{}_in", self.snake)
    }
}

/// Where the topic of an rpc was written, for diagnostics.
enum Origin {
    /// In `(tidings.rpc).topic`.
    Option,
    /// By convention.
    Default,
}

/// Finds the services of the folder's own files and their operations, reporting what breaks
/// the rules: a package without a version, a streaming rpc, a request or reply that is no
/// event, a topic that breaks the topic rule or is taken; then the names the generated items
/// would clash on.
pub(crate) fn map_services(
    loaded: &Loaded,
    events: &[Event],
    diagnostics: &mut Diagnostics,
) -> Vec<Service> {
    let pool = &loaded.pool;
    let sources = loaded.sources.borrow();
    let rpc_ext = pool.get_extension_by_name("tidings.rpc");
    let by_schema: HashMap<&str, &Event> =
        events.iter().map(|e| (e.info.schema.as_str(), e)).collect();
    // Every topic taken so far: what takes it, and where.
    let mut taken: BTreeMap<String, (String, Option<Location>)> = events
        .iter()
        .map(|e| {
            (
                e.info.topic.clone(),
                (
                    format!("event `{}`", e.info.schema),
                    locate::message_name(&sources, &e.message),
                ),
            )
        })
        .collect();

    let mut services = Vec::new();
    for name in &loaded.names {
        let Some(file) = pool.get_file_by_name(name) else {
            continue;
        };
        let proto = file.file_descriptor_proto();
        let package = file.package_name();
        for service in file.services() {
            let service_at = || {
                let path = [service.path(), &[SERVICE_NAME]].concat();
                locate::declaration(&sources, proto, &path)
            };
            if !has_version(package) {
                let what = if package.is_empty() {
                    "declares no package".to_owned()
                } else {
                    format!("is in package `{package}`, which does not end in a version")
                };
                diagnostics.push(
                    Diagnostic::error(format!("service `{}` {what}", service.full_name()), service_at())
                        .with_help("declare services in a package that ends in a version, such as `package events.inventory.v1;`: each major of an operation is its own package"),
                );
                continue;
            }
            if service.methods().len() == 0 {
                diagnostics.push(
                    Diagnostic::warning(
                        format!(
                            "service `{}` has no rpcs, so nothing is generated for it",
                            service.full_name()
                        ),
                        service_at(),
                    )
                    .with_help("declare its operations: `rpc Reserve(ReserveStock) returns (StockReservation);`"),
                );
            }
            let (base, version) = package.rsplit_once('.').unwrap_or(("", package));
            let mut rpcs = Vec::new();
            for method in service.methods() {
                let at = |field: i32| {
                    let path = [method.path(), &[field]].concat();
                    locate::declaration(&sources, proto, &path)
                };
                let full_name = method.full_name();
                if method.is_client_streaming() || method.is_server_streaming() {
                    let streams = match (method.is_client_streaming(), method.is_server_streaming())
                    {
                        (true, true) => "its requests and its replies",
                        (true, false) => "its requests",
                        _ => "its replies",
                    };
                    diagnostics.push(
                        Diagnostic::error(
                            format!("rpc `{full_name}` streams {streams}: streaming is not supported"),
                            locate::declaration(&sources, proto, method.path()),
                        )
                        .with_help("an operation is one request and one reply: remove `stream`, or publish the items as events"),
                    );
                    continue;
                }
                let mut events_ok = true;
                for (what, message, field) in [
                    ("request", method.input(), METHOD_INPUT),
                    ("reply", method.output(), METHOD_OUTPUT),
                ] {
                    if !by_schema.contains_key(message.full_name()) {
                        events_ok = false;
                        diagnostics.push(
                            Diagnostic::error(
                                format!(
                                    "the {what} `{}` of rpc `{full_name}` is not an event of the schemas",
                                    message.full_name()
                                ),
                                at(field),
                            )
                            .with_help(not_an_event_help(&message)),
                        );
                    }
                }
                if !events_ok {
                    continue;
                }

                let declared = rpc_ext.as_ref().and_then(|ext| {
                    let options = method.options();
                    if !options.has_extension(ext) {
                        return None;
                    }
                    match &*options.get_extension(ext) {
                        Value::Message(m) => m
                            .get_field_by_name("topic")
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .filter(|topic| !topic.is_empty()),
                        _ => None,
                    }
                });
                let (topic, origin) = match declared {
                    Some(topic) => (topic, Origin::Option),
                    None => (
                        format!(
                            "{base}.{}.{}.{version}",
                            names::topic_segment(service.name()),
                            names::topic_segment(method.name())
                        ),
                        Origin::Default,
                    ),
                };
                let topic_at = |offset: Option<(usize, usize)>| match origin {
                    Origin::Option => {
                        let path = [method.path(), &[METHOD_OPTIONS]].concat();
                        locate::literal(&sources, proto, &path, &topic, offset)
                    }
                    Origin::Default => at(METHOD_NAME),
                };
                let major = match validate_topic(&topic) {
                    Err(e) => {
                        let what = match origin {
                            Origin::Option => "topic",
                            Origin::Default => "default topic",
                        };
                        let mut d = Diagnostic::error(
                            format!(
                                "{what} `{topic}` of rpc `{full_name}` breaks the topic rule: {e}"
                            ),
                            topic_at(e.offset().map(|o| (o, 1))),
                        );
                        if matches!(origin, Origin::Default) {
                            d = d.with_help(format!(
                                "set a valid topic with `option (tidings.rpc) = {{ topic: \"...{version}\" }};`"
                            ));
                        }
                        diagnostics.push(d);
                        continue;
                    }
                    Ok(_) if !topic.ends_with(&format!(".{version}")) => {
                        let segment = topic.rsplit('.').next().unwrap_or_default();
                        let offset = topic.len() - segment.len();
                        diagnostics.push(
                            Diagnostic::error(
                                format!(
                                    "topic `{topic}` is version `{segment}` but rpc `{full_name}` is in package `{package}`, version `{version}`"
                                ),
                                topic_at(Some((offset, segment.len()))),
                            )
                            .with_help(format!(
                                "a topic carries the version of its package: end it in `.{version}`, or declare the service in package `{base}.{segment}` to make a new major"
                            )),
                        );
                        continue;
                    }
                    Ok(v) => v.major,
                };
                let location = topic_at(None);
                if let Some((other, other_at)) = taken.get(&topic) {
                    diagnostics.push(
                        Diagnostic::error(
                            format!("topic `{topic}` is used by both {other} and rpc `{full_name}`"),
                            location,
                        )
                        .with_note(format!("{other} uses it here"), other_at.clone())
                        .with_help(
                            "a topic carries one kind of message: give the rpc another topic with `option (tidings.rpc) = { topic: \"...\" };`",
                        ),
                    );
                    continue;
                }
                taken.insert(topic.clone(), (format!("rpc `{full_name}`"), location));

                let type_name = names::type_name(&format!("{}_{}", service.name(), method.name()));
                let module: Vec<String> = package
                    .split('.')
                    .filter(|segment| !segment.is_empty())
                    .map(names::snake_ident)
                    .collect();
                rpcs.push(Rpc {
                    info: RpcInfo {
                        topic,
                        major,
                        name: full_name.to_owned(),
                        service: service.full_name().to_owned(),
                        request: method.input().full_name().to_owned(),
                        reply: method.output().full_name().to_owned(),
                        package: package.to_owned(),
                        rust_path: format!("{}::{type_name}", module.join("::")),
                        file: sources.display(name),
                    },
                    descriptor: method.clone(),
                    type_name,
                    method: names::snake_ident(method.name()),
                });
            }
            services.push(Service {
                type_name: names::type_name(service.name()),
                snake: service.name().to_snake_case(),
                descriptor: service,
                rpcs,
            });
        }
    }
    check_names(pool, &sources, events, &services, diagnostics);
    services
}

/// How to make `message` an event, for a request or reply that is not one.
fn not_an_event_help(message: &MessageDescriptor) -> String {
    if message.parent_message().is_some() {
        "a request or reply travels as an event, and only top-level messages are events: move it to the top level of a versioned package".to_owned()
    } else if !has_version(message.package_name()) {
        format!(
            "a request or reply travels as an event: declare it in a package that ends in a version, not `{}`",
            message.package_name()
        )
    } else {
        "a request or reply travels as an event: declare it in a package under `events.` without using it as a field type, or mark it with `option (tidings.event) = {};`".to_owned()
    }
}

/// What a name in a module is taken by, and where.
struct Taker {
    what: String,
    at: Option<Location>,
}

/// Reports each item generated for a service whose name is taken in its module: by a message or
/// enum of the package, by the stubs of its events, or by an item of another service; and each
/// client method two rpcs of a service would share.
fn check_names(
    pool: &DescriptorPool,
    sources: &Sources,
    events: &[Event],
    services: &[Service],
    diagnostics: &mut Diagnostics,
) {
    // Types and values live in separate namespaces.
    let mut types: BTreeMap<(String, String), Taker> = BTreeMap::new();
    let mut values: BTreeMap<(String, String), Taker> = BTreeMap::new();
    let packages: std::collections::BTreeSet<&str> = services
        .iter()
        .map(|s| s.descriptor.package_name())
        .collect();
    for file in pool.files() {
        let package = file.package_name();
        if !packages.contains(package) {
            continue;
        }
        let proto = file.file_descriptor_proto();
        for message in file.messages() {
            types
                .entry((package.to_owned(), names::type_name(message.name())))
                .or_insert_with(|| Taker {
                    what: format!("message `{}`", message.full_name()),
                    at: locate::message_name(sources, &message),
                });
        }
        for e in file.enums() {
            types
                .entry((package.to_owned(), names::type_name(e.name())))
                .or_insert_with(|| Taker {
                    what: format!("enum `{}`", e.full_name()),
                    at: locate::declaration(sources, proto, &[e.path(), &[1]].concat()),
                });
        }
    }
    for event in events {
        let package = &event.info.package;
        for (is_type, item) in [(true, "Publisher"), (true, "Handler"), (false, "subscribe")] {
            let names = if is_type { &mut types } else { &mut values };
            names
                .entry((package.clone(), item.to_owned()))
                .or_insert_with(|| Taker {
                    what: format!("the `{item}` generated for the events of package `{package}`"),
                    at: None,
                });
        }
    }

    // Nothing is generated for a service without rpcs.
    for service in services.iter().filter(|s| !s.rpcs.is_empty()) {
        let package = service.descriptor.package_name();
        let proto = service.descriptor.parent_file_descriptor_proto();
        let full_name = service.descriptor.full_name();
        let service_at = declared_at(sources, proto, service.descriptor.path(), SERVICE_NAME);
        let mut items: Vec<(bool, String, String, Option<Location>)> = Vec::new();
        for rpc in &service.rpcs {
            let at = declared_at(sources, proto, rpc.descriptor.path(), METHOD_NAME);
            // A unit struct takes its name among the values too, where only snake_case
            // functions are generated: a clash can only be among the types.
            let what = format!(
                "the `{}` generated for rpc `{}`",
                rpc.type_name, rpc.info.name
            );
            items.push((true, rpc.type_name.clone(), what, at));
        }
        for (is_type, item) in [
            (true, service.client()),
            (true, service.server()),
            (false, service.serve()),
            (false, service.serve_in()),
        ] {
            let what = format!("the `{item}` generated for service `{full_name}`");
            items.push((is_type, item, what, service_at.clone()));
        }
        for (is_type, item, what, at) in items {
            let names = if is_type { &mut types } else { &mut values };
            let key = (package.to_owned(), item.clone());
            match names.get(&key) {
                Some(taker) => diagnostics.push(
                    Diagnostic::error(
                        format!("{what} clashes with {} in the module of package `{package}`", taker.what),
                        at,
                    )
                    .with_note(format!("{} comes from here", taker.what), taker.at.clone())
                    .with_help("rename the service, the rpc or the other declaration; the operation types are the service name followed by the rpc name"),
                ),
                None => {
                    names.insert(key, Taker { what, at });
                }
            }
        }

        let mut methods: BTreeMap<&str, &Rpc> = BTreeMap::new();
        for rpc in &service.rpcs {
            let at = declared_at(sources, proto, rpc.descriptor.path(), METHOD_NAME);
            if rpc.method == "new" {
                diagnostics.push(
                    Diagnostic::error(
                        format!(
                            "rpc `{}` makes the method `new`, which the `{}` generated for service `{full_name}` already has",
                            rpc.info.name,
                            service.client()
                        ),
                        at.clone(),
                    )
                    .with_help("rename the rpc; client and server methods are the snake_case rpc names"),
                );
            }
            if let Some(first) = methods.insert(rpc.method.as_str(), rpc) {
                diagnostics.push(
                    Diagnostic::error(
                        format!(
                            "rpcs `{}` and `{}` both make the method `{}`",
                            first.info.name, rpc.info.name, rpc.method
                        ),
                        at,
                    )
                    .with_note(
                        format!("`{}` is declared here", first.info.name),
                        declared_at(sources, proto, first.descriptor.path(), METHOD_NAME),
                    )
                    .with_help("rename one of them; client and server methods are the snake_case rpc names"),
                );
            }
        }
    }
}

/// The part `field` of the declaration at `path`.
fn declared_at(
    sources: &Sources,
    proto: &FileDescriptorProto,
    path: &[i32],
    field: i32,
) -> Option<Location> {
    locate::declaration(sources, proto, &[path, &[field]].concat())
}
