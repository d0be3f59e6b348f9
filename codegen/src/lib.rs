//! Compiles versioned protobuf event schemas into typed tidings publishers and subscribers.
//!
//! From a build script:
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), tidings_codegen::Error> {
//!     tidings_codegen::configure().compile("schemas")
//! }
//! ```
//!
//! then `tidings::include_events!();` in the crate. The `tidings` command-line tool runs the
//! same code path (`tidings generate schemas --out src/events`), so both write the same bytes.
//!
//! Schemas are parsed by protox: no `protoc` is needed. A package ends in a version
//! (`package events.order.v1;`). A top-level message is an event when it carries
//! `option (tidings.event) = { topic: "events.order.created.v1" };` (from
//! `import "tidings/options.proto";`, which the generator supplies), when its file carries
//! `option (tidings.file) = { events: true };`, or by convention in a package under `events.`
//! unless it is only used as a field type. Its default topic is the package without its
//! version, the message name in snake_case, then the version.
//!
//! For each protobuf package the generator writes the message types (prost), and for each event
//! `#[derive(tidings::Event)]` and serde implementations that follow the canonical proto3 JSON
//! mapping; for a package with events, a `Publisher` with one method per event, a `Handler`
//! trait with one method per event, and `subscribe`, which subscribes a handler to all of them
//! and returns one `Subscriptions` handle, whose `shutdown` stops them all. The trait's methods
//! are required unless [`Builder::handler_defaults`] (`tidings generate --handler-defaults`)
//! gives each a default that ignores or dead-letters its event, so that an event added to a
//! package does not break the implementations of its trait.
//!
//! A `service` of a versioned package declares request-reply operations whose requests and
//! replies are events: for `service Stock { rpc Reserve(ReserveStock) returns (StockReservation); }`
//! the generator writes `StockReserve` (implementing `tidings::Rpc`, its requests on
//! `events.inventory.stock.reserve.v1`), a `StockClient`, a `StockServer` trait, and
//! `serve_stock` and `serve_stock_in`, which serve an implementation in a consumer group.
//! Generated code names only `tidings`: prost, serde, prost-reflect and the well-known types
//! (`tidings::well_known`) come through it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod asyncapi;
mod builder;
mod catalog;
mod comments;
mod compat;
mod diagnostic;
mod docs;
mod error;
mod evolution;
mod format;
mod generate;
mod jsonschema;
mod lint;
mod load;
mod locate;
mod lock;
mod mapping;
mod names;
mod output;
mod parallel;
mod revision;
mod schema_set;
mod service;
mod shape;
mod sources;

pub use builder::{Builder, Report, configure};
pub use catalog::{EventInfo, RpcInfo};
pub use diagnostic::{Diagnostic, Diagnostics, Location, Severity};
pub use error::Error;
pub use evolution::Breaking;
pub use generate::HandlerDefault;
pub use lock::{LOCK_FILE, Lock, LockError, Locked};
pub use mapping::Candidate;
pub use output::{Generated, Stale, Written};
pub use schema_set::SchemaSet;
