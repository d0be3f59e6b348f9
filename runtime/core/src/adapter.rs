//! What broker adapters share: the wait between attempts to reach a broker, the address read
//! from the environment, credentials hidden in messages, and the poison-tolerant lock.
//!
//! Adapter crates (`tidings-nats`, `tidings-kafka`...) use these rather than copies of their
//! own, so every adapter behaves the same way under failure. A broker adapter written outside
//! this repository may use them too.

mod address;
mod backoff;
mod lock;

pub use address::{address_from_env, redact};
pub use backoff::Backoff;
pub use lock::lock;
