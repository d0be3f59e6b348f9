//! Which messages are events, and on which topics.
//!
//! A package ends in a version (`events.order.v1`). A top-level message is an event when it
//! carries `(tidings.event)` (or the option named with `topic_option`), when its file carries
//! `(tidings.file).events`, or by convention in a package under `events.`; messages used as the
//! type of a field stay plain types unless marked. The default topic is the package without its
//! version, the message name in snake_case, then the version. Every topic is checked with
//! `tidings_contract::validate_topic` and must end in its package's version.

use std::collections::{BTreeMap, HashSet};

use prost_reflect::{
    DescriptorPool, DynamicMessage, ExtensionDescriptor, FieldDescriptor, FileDescriptor, Kind,
    MessageDescriptor, Value,
};
use tidings_contract::{Version, parse_version, validate_topic};

use crate::catalog::EventInfo;
use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::error::Error;
use crate::load::Loaded;
use crate::locate;
use crate::names;
use crate::sources::Sources;

/// Decides the topic of a top-level message, or that it is not an event (`None`).
pub type TopicFn = dyn Fn(&Candidate<'_>) -> Option<String>;

/// Names the field of an event's message whose value is the data that travels, or `None` when
/// the whole message travels.
pub type PayloadFn = dyn Fn(&Candidate<'_>) -> Option<String>;

/// A top-level message, as the naming function given to
/// [`Builder::topic_fn`](crate::Builder::topic_fn) sees it.
#[derive(Debug)]
pub struct Candidate<'a> {
    message: &'a MessageDescriptor,
    version: &'a str,
    declared: Option<&'a str>,
    default_topic: &'a str,
    by_default: bool,
}

impl Candidate<'_> {
    /// The protobuf package, `events.order.v1`.
    pub fn package(&self) -> &str {
        self.message.package_name()
    }

    /// The message name, `Created`.
    pub fn name(&self) -> &str {
        self.message.name()
    }

    /// The full message name, `events.order.v1.Created`.
    pub fn full_name(&self) -> &str {
        self.message.full_name()
    }

    /// The names of the message's fields, in declaration order: a wrapper has one, `data`.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.message
            .descriptor_proto()
            .field
            .iter()
            .map(|field| field.name())
    }

    /// The package's version segment, `v1`.
    pub fn version(&self) -> &str {
        self.version
    }

    /// The topic written in the schema: `(tidings.event).topic`, or the option named with
    /// [`Builder::topic_option`](crate::Builder::topic_option).
    pub fn declared_topic(&self) -> Option<&str> {
        self.declared
    }

    /// The topic by convention: package without version, snake_case name, version.
    pub fn default_topic(&self) -> &str {
        self.default_topic
    }

    /// What the generator decides without a naming function: the declared topic, the default
    /// topic, or `None` when the message is not an event.
    pub fn topic(&self) -> Option<&str> {
        match self.declared {
            Some(topic) => Some(topic),
            None if self.by_default => Some(self.default_topic),
            None => None,
        }
    }
}

/// An event, with what the stubs need.
pub(crate) struct Event {
    pub(crate) info: EventInfo,
    /// The generated struct, `Created`.
    pub(crate) type_name: String,
    /// The publisher and handler method, `created`.
    pub(crate) method: String,
    pub(crate) message: MessageDescriptor,
    /// The field whose value travels, when the message wraps its payload.
    pub(crate) payload: Option<Payload>,
}

/// The one field of a wrapper message, whose value is the event's data.
pub(crate) struct Payload {
    /// The field's name, `data`.
    pub(crate) field: String,
    /// The field's message: what the producer sends.
    pub(crate) message: MessageDescriptor,
}

impl Event {
    /// The message whose encoding is the event's data: the payload's, or the event's own.
    pub(crate) fn data_message(&self) -> &MessageDescriptor {
        self.payload
            .as_ref()
            .map_or(&self.message, |payload| &payload.message)
    }
}

/// Where a topic was written, for diagnostics.
enum Origin {
    /// In an option of the message; the path of the option in the source code info.
    Option(Vec<i32>),
    /// By convention.
    Default,
    /// Returned by the naming function.
    Function,
}

/// How a string option is read from a message's options.
enum TopicOption {
    Extension(ExtensionDescriptor),
    Field(ExtensionDescriptor, FieldDescriptor),
}

impl TopicOption {
    /// Finds `name`: a string extension of `MessageOptions`, or a string field of a message
    /// extension (`acme.meta.event_type`).
    fn resolve(pool: &DescriptorPool, name: &str) -> Result<Self, Error> {
        let name = name
            .trim_start_matches('.')
            .trim_start_matches('(')
            .replace([')', '('], "");
        let unknown = || Error::UnknownTopicOption { name: name.clone() };
        let is_message_options = |ext: &ExtensionDescriptor| {
            ext.containing_message().full_name() == "google.protobuf.MessageOptions"
        };
        if let Some(ext) = pool.get_extension_by_name(&name) {
            return match ext.kind() {
                Kind::String if is_message_options(&ext) => Ok(TopicOption::Extension(ext)),
                _ => Err(unknown()),
            };
        }
        let (ext_name, field_name) = name.rsplit_once('.').ok_or_else(unknown)?;
        let ext = pool
            .get_extension_by_name(ext_name)
            .filter(is_message_options)
            .ok_or_else(unknown)?;
        let Kind::Message(message) = ext.kind() else {
            return Err(unknown());
        };
        let field = message.get_field_by_name(field_name).ok_or_else(unknown)?;
        match field.kind() {
            Kind::String => Ok(TopicOption::Field(ext, field)),
            _ => Err(unknown()),
        }
    }

    fn number(&self) -> i32 {
        match self {
            TopicOption::Extension(ext) | TopicOption::Field(ext, _) => ext.number() as i32,
        }
    }

    fn read(&self, options: &DynamicMessage) -> Option<String> {
        match self {
            TopicOption::Extension(ext) => options
                .has_extension(ext)
                .then(|| options.get_extension(ext).as_str().map(str::to_owned))?,
            TopicOption::Field(ext, field) => {
                if !options.has_extension(ext) {
                    return None;
                }
                match &*options.get_extension(ext) {
                    Value::Message(m) if m.has_field(field) => {
                        m.get_field(field).as_str().map(str::to_owned)
                    }
                    _ => None,
                }
            }
        }
    }
}

/// How to map messages: the option to read topics from, and the naming function.
pub(crate) struct MapConfig<'a> {
    pub(crate) topic_option: Option<&'a str>,
    pub(crate) topic_fn: Option<&'a TopicFn>,
    pub(crate) payload_fn: Option<&'a PayloadFn>,
}

/// Finds the events of the folder's own files, reporting what breaks the mapping rules.
pub(crate) fn map_events(
    loaded: &Loaded,
    config: &MapConfig<'_>,
    diagnostics: &mut Diagnostics,
) -> Result<Vec<Event>, Error> {
    let pool = &loaded.pool;
    let sources = loaded.sources.borrow();
    let event_ext = pool.get_extension_by_name("tidings.event");
    let file_ext = pool.get_extension_by_name("tidings.file");
    let custom = config
        .topic_option
        .map(|name| TopicOption::resolve(pool, name))
        .transpose()?;
    let used_as_field = used_as_field(pool);

    let mut events: Vec<Event> = Vec::new();
    let mut origins: Vec<(Option<Location>, Origin)> = Vec::new();
    let mut by_topic: BTreeMap<String, usize> = BTreeMap::new();
    for name in &loaded.names {
        let Some(file) = pool.get_file_by_name(name) else {
            continue;
        };
        let proto = file.file_descriptor_proto();
        let package = file.package_name();
        let by_file = file_ext.as_ref().is_some_and(|ext| {
            let options = file.options();
            options.has_extension(ext)
                && matches!(&*options.get_extension(ext), Value::Message(m)
                    if m.get_field_by_name("events").is_some_and(|v| v.as_bool() == Some(true)))
        });
        let by_convention = package.split('.').next() == Some("events");
        // Only a package that holds events needs a version: a file of options or extensions,
        // or of types shared between packages, may be laid out as its schema set has it.
        let marks_events = by_file
            || by_convention
            || file.messages().any(|message| {
                let options = message.options();
                event_ext
                    .as_ref()
                    .is_some_and(|ext| options.has_extension(ext))
                    || custom
                        .as_ref()
                        .is_some_and(|custom| custom.read(&options).is_some())
            });
        if !marks_events && !has_version(package) {
            continue;
        }
        if package_version(package, proto, &sources, diagnostics).is_none() {
            continue;
        }
        let (base, version_text) = package.rsplit_once('.').unwrap_or(("", package));

        // Only top-level messages are events: an event option deeper down would go unnoticed.
        let nested = declared_messages(&file)
            .into_iter()
            .filter(|m| m.parent_message().is_some());
        for message in nested {
            let options = message.options();
            let option = event_ext
                .as_ref()
                .filter(|ext| options.has_extension(ext))
                .map(|ext| ext.number() as i32)
                .or_else(|| {
                    custom
                        .as_ref()
                        .filter(|custom| custom.read(&options).is_some())
                        .map(TopicOption::number)
                });
            if let Some(number) = option {
                diagnostics.push(
                    Diagnostic::error(
                        format!(
                            "`{}` is nested in another message, so its event option has no effect",
                            message.full_name()
                        ),
                        locate::declaration(&sources, proto, &option_path(&message, number)),
                    )
                    .with_help(
                        "only top-level messages are events: move it to the top level of the file",
                    ),
                );
            }
        }

        for message in file.messages() {
            let options = message.options();
            let marked = event_ext.as_ref().filter(|ext| options.has_extension(ext));
            let mut declared = None;
            let mut origin = Origin::Default;
            let mut event_type = None;
            let mut payload_option = None;
            let mut from_custom = false;
            if let Some(ext) = marked
                && let Value::Message(m) = &*options.get_extension(ext)
            {
                let text = |field: &str| {
                    m.get_field_by_name(field)
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .filter(|text| !text.is_empty())
                };
                if let Some(topic) = text("topic") {
                    declared = Some(topic);
                    origin = Origin::Option(option_path(&message, ext.number() as i32));
                }
                event_type = text("type");
                payload_option = text("payload").map(|field| (field, ext.number() as i32));
            }
            if declared.is_none()
                && let Some(custom) = &custom
                && let Some(topic) = custom.read(&options)
            {
                declared = Some(topic);
                origin = Origin::Option(option_path(&message, custom.number()));
                from_custom = true;
            }
            let default_topic = if base.is_empty() {
                format!("{}.{version_text}", names::topic_segment(message.name()))
            } else {
                format!(
                    "{base}.{}.{version_text}",
                    names::topic_segment(message.name())
                )
            };
            let by_default = marked.is_some()
                || declared.is_some()
                || ((by_file || by_convention) && !used_as_field.contains(message.full_name()));
            let candidate = Candidate {
                message: &message,
                version: version_text,
                declared: declared.as_deref(),
                default_topic: &default_topic,
                by_default,
            };
            let topic = match config.topic_fn {
                Some(decide) => {
                    let topic = decide(&candidate);
                    if topic.is_some() && topic.as_deref() != candidate.topic() {
                        origin = Origin::Function;
                        // The producer's own name for the event stays its CloudEvents type.
                        if from_custom && event_type.is_none() {
                            event_type.clone_from(&declared);
                        }
                    }
                    topic
                }
                None => candidate.topic().map(str::to_owned),
            };
            let Some(topic) = topic else { continue };
            let payload_field = match payload_option {
                Some((field, number)) => Some((field, Some(number))),
                None => config
                    .payload_fn
                    .and_then(|name| name(&candidate))
                    .map(|field| (field, None)),
            };
            let payload = match payload_field {
                None => None,
                Some((field, option)) => match payload(&message, &field) {
                    Ok(payload) => Some(payload),
                    Err(problem) => {
                        let at = match option {
                            Some(number) => {
                                locate::declaration(&sources, proto, &option_path(&message, number))
                            }
                            None => locate::message_name(&sources, &message),
                        };
                        diagnostics.push(
                            Diagnostic::error(problem.message(&message, &field), at)
                                .with_help(problem.help()),
                        );
                        continue;
                    }
                },
            };
            if let Some(text) = &event_type
                && !tidings_contract::is_event_type(text)
            {
                diagnostics.push(
                    Diagnostic::error(
                        format!(
                            "the CloudEvents type {text:?} of `{}` is empty or holds a control character",
                            message.full_name()
                        ),
                        locate::message_name(&sources, &message),
                    )
                    .with_help("write the type as the producer sends it, as printable text"),
                );
                continue;
            }
            // A type equal to the topic is the default, written nowhere.
            let event_type = event_type.filter(|text| *text != topic);

            let name_at = || locate::message_name(&sources, &message);
            let topic_at = |at: Option<(usize, usize)>| match &origin {
                Origin::Option(path) => locate::literal(&sources, proto, path, &topic, at),
                Origin::Default | Origin::Function => name_at(),
            };
            let full_name = message.full_name();
            let major = match validate_topic(&topic) {
                Err(e) => {
                    let what = match origin {
                        Origin::Option(_) => "topic",
                        Origin::Default => "default topic",
                        Origin::Function => "topic from the naming function",
                    };
                    let mut d = Diagnostic::error(
                        format!("{what} `{topic}` of `{full_name}` breaks the topic rule: {e}"),
                        topic_at(e.offset().map(|o| (o, 1))),
                    );
                    if !matches!(origin, Origin::Option(_)) {
                        d = d.with_help(format!(
                            "set a valid topic with `option (tidings.event) = {{ topic: \"...{version_text}\" }};`"
                        ));
                    }
                    diagnostics.push(d);
                    continue;
                }
                // Compared as written: `v1p1beta1` and `v1beta1` are both major 1, beta 1, yet
                // name different versions.
                Ok(_) if !topic.ends_with(&format!(".{version_text}")) => {
                    let segment = topic.rsplit('.').next().unwrap_or_default();
                    let at = topic.len() - segment.len();
                    diagnostics.push(
                        Diagnostic::error(
                            format!(
                                "topic `{topic}` is version `{segment}` but `{full_name}` is in package `{package}`, version `{version_text}`"
                            ),
                            topic_at(Some((at, segment.len()))),
                        )
                        .with_help(format!(
                            "a topic carries the version of its package: end it in `.{version_text}`, or declare the message in package `{base}.{segment}` to make a new major"
                        )),
                    );
                    continue;
                }
                Ok(v) => v.major,
            };
            let location = topic_at(None);
            if let Some(&first) = by_topic.get(&topic) {
                let other: &Event = &events[first];
                diagnostics.push(
                    Diagnostic::error(
                        format!(
                            "topic `{topic}` is used by both `{}` and `{full_name}`",
                            other.info.schema
                        ),
                        location,
                    )
                    .with_note(
                        format!("`{}` uses it here", other.info.schema),
                        origins[first].0.clone(),
                    )
                    .with_help(
                        "a topic names exactly one event type: give one of them another topic",
                    ),
                );
                continue;
            }
            by_topic.insert(topic.clone(), events.len());
            origins.push((location, origin));
            let type_name = names::type_name(message.name());
            events.push(Event {
                info: EventInfo {
                    topic,
                    event_type,
                    major,
                    schema: full_name.to_owned(),
                    package: package.to_owned(),
                    rust_path: rust_path(&message),
                    payload: payload
                        .as_ref()
                        .map(|payload| payload.message.full_name().to_owned()),
                    file: sources.display(name),
                },
                type_name,
                method: names::snake_ident(message.name()),
                message: message.clone(),
                payload,
            });
        }
    }
    Ok(events)
}

/// Why a field cannot carry a wrapper's payload.
enum PayloadProblem {
    /// The message has no field of that name.
    Missing,
    /// The field is a scalar, a list or a map, not one message.
    NotAMessage,
    /// The message has other fields, which would never travel.
    NotAlone,
}

impl PayloadProblem {
    fn message(&self, wrapper: &MessageDescriptor, field: &str) -> String {
        let wrapper = wrapper.full_name();
        match self {
            PayloadProblem::Missing => {
                format!("`{wrapper}` has no field `{field}` to carry its payload")
            }
            PayloadProblem::NotAMessage => {
                format!("the payload field `{field}` of `{wrapper}` is not a single message")
            }
            PayloadProblem::NotAlone => format!(
                "`{wrapper}` wraps its payload `{field}` beside other fields, which would never travel"
            ),
        }
    }

    fn help(&self) -> &'static str {
        match self {
            PayloadProblem::Missing => {
                "name the field whose type the producer sends as the event's data"
            }
            PayloadProblem::NotAMessage => {
                "a payload is a message type: give the field a message type, not a scalar, list or map"
            }
            PayloadProblem::NotAlone => {
                "keep the payload as the wrapper's only field, or let the whole message travel"
            }
        }
    }
}

/// The payload `field` of `wrapper`: a singular message field, the wrapper's only one.
fn payload(wrapper: &MessageDescriptor, field: &str) -> Result<Payload, PayloadProblem> {
    let found = wrapper
        .get_field_by_name(field)
        .ok_or(PayloadProblem::Missing)?;
    let Kind::Message(message) = found.kind() else {
        return Err(PayloadProblem::NotAMessage);
    };
    if found.is_list() || found.is_map() {
        return Err(PayloadProblem::NotAMessage);
    }
    if wrapper.fields().len() > 1 {
        return Err(PayloadProblem::NotAlone);
    }
    Ok(Payload {
        field: field.to_owned(),
        message,
    })
}

/// The generated type of `message`, relative to the generated module, as prost-build nests it:
/// package segments, then the parent messages in snake_case, then the type.
pub(crate) fn rust_path(message: &MessageDescriptor) -> String {
    let mut parents = Vec::new();
    let mut parent = message.parent_message();
    while let Some(outer) = parent {
        parents.push(names::snake_ident(outer.name()));
        parent = outer.parent_message();
    }
    parents.reverse();
    message
        .package_name()
        .split('.')
        .filter(|segment| !segment.is_empty())
        .map(names::snake_ident)
        .chain(parents)
        .chain([names::type_name(message.name())])
        .collect::<Vec<_>>()
        .join("::")
}

/// The field number of `syntax` in `FileDescriptorProto`, as a source code info path.
const SYNTAX_FIELD: i32 = 12;

/// The version a file's package ends in; reports a package without one.
fn package_version(
    package: &str,
    file: &prost_types::FileDescriptorProto,
    sources: &Sources,
    diagnostics: &mut Diagnostics,
) -> Option<Version> {
    let example = "package events.order.v1;";
    if package.is_empty() {
        let name = sources.display(file.name());
        // At the `syntax` statement, where a package declaration would follow; or the start of
        // a file without one.
        let location = locate::declaration(sources, file, &[SYNTAX_FIELD])
            .or_else(|| sources.get(file.name()).map(|source| source.location(0, 0)));
        diagnostics.push(
            Diagnostic::error(format!("`{name}` declares no package"), location).with_help(
                format!("declare a package that ends in a version: `{example}`"),
            ),
        );
        return None;
    }
    let last = package.rsplit('.').next().unwrap_or(package);
    match parse_version(last) {
        Ok(version) if package.contains('.') => Some(version),
        result => {
            let reason = match result {
                Err(e) => e.to_string(),
                Ok(_) => "a package needs a name before its version".to_owned(),
            };
            diagnostics.push(
                Diagnostic::error(
                    format!("package `{package}` does not end in a version: {reason}"),
                    locate::declaration(sources, file, &[2]),
                )
                .with_help(format!(
                    "end the package in a version segment such as `v1` (`{example}`); each major version is its own package"
                )),
            );
            None
        }
    }
}

/// Whether `package` ends in a version segment after a name, as [`package_version`] requires.
pub(crate) fn has_version(package: &str) -> bool {
    package.contains('.')
        && package
            .rsplit('.')
            .next()
            .is_some_and(|last| parse_version(last).is_ok())
}

/// Every message `file` declares, nested ones too, in declaration order; map entries (which
/// protobuf declares for each map field) left out.
pub(crate) fn declared_messages(file: &FileDescriptor) -> Vec<MessageDescriptor> {
    let mut all = Vec::new();
    let mut pending: Vec<_> = file.messages().collect();
    while let Some(message) = pending.pop() {
        pending.extend(message.child_messages().filter(|m| !m.is_map_entry()));
        all.push(message);
    }
    all.sort_by_key(|m| m.path().to_vec());
    all
}

/// The source code info path of an option of `message`: `[4, i, 7, number]`.
fn option_path(message: &MessageDescriptor, number: i32) -> Vec<i32> {
    [message.path(), &[7, number]].concat()
}

/// Full names of the messages some field has as its type.
fn used_as_field(pool: &DescriptorPool) -> HashSet<String> {
    let mut used = HashSet::new();
    for message in pool.all_messages() {
        for field in message.fields() {
            if let Kind::Message(m) = field.kind() {
                used.insert(m.full_name().to_owned());
            }
        }
    }
    used
}
