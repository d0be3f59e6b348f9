//! The events found in a schema folder.

/// One event: a top-level message mapped to a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventInfo {
    pub(crate) topic: String,
    /// The CloudEvents `type`, when it is not the topic.
    pub(crate) event_type: Option<String>,
    pub(crate) major: u32,
    pub(crate) schema: String,
    pub(crate) package: String,
    pub(crate) rust_path: String,
    /// The full name of the message that travels as its data, when its own message wraps it.
    pub(crate) payload: Option<String>,
    pub(crate) file: String,
}

impl EventInfo {
    /// The topic it travels on, `events.order.created.v1`.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The CloudEvents `type` it travels with: the topic, unless the schema names it otherwise
    /// (`(tidings.event).type`, or a custom option whose value a naming function turned into a
    /// topic).
    pub fn event_type(&self) -> &str {
        self.event_type.as_deref().unwrap_or(&self.topic)
    }

    /// Its major version, the number in the topic's version segment.
    pub fn major(&self) -> u32 {
        self.major
    }

    /// The full protobuf name of its message, `events.order.v1.Created`.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The full protobuf name of the message that travels as its data, when its own message
    /// only wraps it (a single field, the payload); `None` when the whole message travels.
    pub fn payload(&self) -> Option<&str> {
        self.payload.as_deref()
    }

    /// The full protobuf name of the message written in `dataschema`: the payload's, or the
    /// event's own.
    pub fn data_schema(&self) -> &str {
        self.payload.as_deref().unwrap_or(&self.schema)
    }

    /// The protobuf package, `events.order.v1`.
    pub fn package(&self) -> &str {
        &self.package
    }

    /// The generated type, relative to the generated module: `events::order::v1::Created`.
    pub fn rust_path(&self) -> &str {
        &self.rust_path
    }

    /// The schema file that declares it, as the path it was read from.
    pub fn file(&self) -> &str {
        &self.file
    }
}
