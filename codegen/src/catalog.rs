//! The events and request-reply operations found in a schema folder.

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

/// One request-reply operation: an rpc of a service in a versioned package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcInfo {
    pub(crate) topic: String,
    pub(crate) major: u32,
    pub(crate) name: String,
    pub(crate) service: String,
    pub(crate) request: String,
    pub(crate) reply: String,
    pub(crate) package: String,
    pub(crate) rust_path: String,
    pub(crate) file: String,
}

impl RpcInfo {
    /// The topic its requests travel on, `events.inventory.stock.reserve.v1`.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Its major version, the number in the topic's version segment.
    pub fn major(&self) -> u32 {
        self.major
    }

    /// Its full protobuf name, `events.inventory.v1.Stock.Reserve`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full protobuf name of its service, `events.inventory.v1.Stock`.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The full protobuf name of the request, an event of the schemas.
    pub fn request(&self) -> &str {
        &self.request
    }

    /// The full protobuf name of the reply, an event of the schemas.
    pub fn reply(&self) -> &str {
        &self.reply
    }

    /// The protobuf package, `events.inventory.v1`.
    pub fn package(&self) -> &str {
        &self.package
    }

    /// The generated operation type, relative to the generated module:
    /// `events::inventory::v1::StockReserve`.
    pub fn rust_path(&self) -> &str {
        &self.rust_path
    }

    /// The schema file that declares it, as the path it was read from.
    pub fn file(&self) -> &str {
        &self.file
    }
}
