//! What broker adapters share: the wait between attempts to reach a broker, the address read
//! from the environment, credentials hidden in messages, the poison-tolerant lock, the limit a
//! client is set to for a message size limit, the reading of attribute header names, the
//! requests waiting for their replies, a run of failures told once, and (with the `tls` feature)
//! the TLS files a connection trusts and presents.
//!
//! Adapter crates (`tidings-nats`, `tidings-kafka`...) use these rather than copies of their
//! own, so every adapter behaves the same way under failure. A broker adapter written outside
//! this repository may use them too.

mod address;
mod attribute;
mod backoff;
mod lock;
mod outage;
mod pending;
#[cfg(feature = "tls")]
mod tls;

pub use crate::size::transport_ceiling;
pub use address::{address_from_env, redact};
pub use attribute::attribute_name;
pub use backoff::Backoff;
pub use lock::lock;
pub use outage::Outage;
pub use pending::{PendingReplies, WaitingReply};
#[cfg(feature = "tls")]
pub use tls::{TlsError, TlsFiles, TlsPem, ensure_tls_provider};
