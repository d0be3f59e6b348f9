//! Bringing the code `tidings-codegen` generated in a build script into the crate.

/// Includes the events that `tidings_codegen::configure().compile(..)` generated in the build
/// script: one module per protobuf package (`events::order::v1`), with the message types, their
/// `Event` implementations, and each package's `Publisher`, `Handler` and `subscribe`.
///
/// ```ignore
/// tidings::include_events!();
///
/// use events::order::v1::{Created, Publisher};
/// ```
///
/// It expands to an `include!` of `$OUT_DIR/tidings/mod.rs`, so it is used at module level, in
/// a crate whose build script generated the code into the default output folder.
#[macro_export]
macro_rules! include_events {
    () => {
        ::core::include!(::core::concat!(::core::env!("OUT_DIR"), "/tidings/mod.rs"));
    };
}
