//! End-to-end tests across the tidings crates; the tests are in `tests/`, the broker conformance
//! suite in the `tidings-conformance` crate.

pub mod certificates;
pub mod nats_server;
pub mod own_nats;
pub mod python;
pub mod round_trip;
pub mod tls_cases;
pub mod tls_server;
