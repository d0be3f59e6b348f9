//! The rules every tidings front end agrees on.
//!
//! The code generator, the `#[derive(Event)]` macro and the runtime all check topic names and
//! version suffixes with the functions of this crate, so a name accepted by one is accepted by
//! all three; the code generator and the derive name schemas and topics by its convention. The
//! crate has no dependencies and its checks are `const fn`, so a proc macro can call them at
//! expansion time and generated code can call them in a `const` item.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod event_type;
mod naming;
mod topic;
mod version;

pub use event_type::is_event_type;
pub use naming::default_schema;
pub use topic::{MAX_TOPIC_LEN, TopicError, validate_topic};
pub use version::{Stability, Version, VersionError, parse_version};
