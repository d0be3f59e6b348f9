//! The error a server answers with, as the client receives it.

use std::fmt;

use crate::envelope::{Envelope, attr};

/// An operation's failure as its server answers it: a code and a message for a person. The
/// codes follow HTTP's meaning (4xx: the request is wrong, 5xx: the server failed), so both
/// sides read them alike; an application may use any code of its own in 400..=599.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// What kind of failure.
    pub code: u16,
    /// What went wrong, for a person.
    pub message: String,
}

impl Status {
    /// The request was refused before its handler saw it: another major or schema, data that
    /// does not decode, a message too large.
    pub const INVALID_REQUEST: u16 = 400;
    /// What the request names does not exist.
    pub const NOT_FOUND: u16 = 404;
    /// The request conflicts with the state it would change.
    pub const CONFLICT: u16 = 409;
    /// The server failed: its handler panicked, or returned an error of this kind.
    pub const INTERNAL: u16 = 500;
    /// The server cannot take the request now; it may succeed later.
    pub const UNAVAILABLE: u16 = 503;

    /// A status of `code` and `message`.
    pub fn new(code: u16, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    /// A [`Status::INVALID_REQUEST`].
    pub fn invalid_request(message: impl Into<String>) -> Status {
        Status::new(Status::INVALID_REQUEST, message)
    }

    /// A [`Status::NOT_FOUND`].
    pub fn not_found(message: impl Into<String>) -> Status {
        Status::new(Status::NOT_FOUND, message)
    }

    /// A [`Status::INTERNAL`].
    pub fn internal(message: impl Into<String>) -> Status {
        Status::new(Status::INTERNAL, message)
    }

    /// Writes this status into a reply's attributes.
    pub(crate) fn write(&self, envelope: &mut Envelope) {
        envelope.set_extension(attr::STATUS_CODE, self.code.to_string());
        envelope.set_extension(attr::STATUS_MESSAGE, self.message.clone());
    }

    /// The status a reply carries, `None` for a reply that succeeded. A code that does not
    /// read as a number is kept as an internal failure, with the text in the message.
    pub(crate) fn read(envelope: &Envelope) -> Option<Status> {
        let code = envelope.extension(attr::STATUS_CODE)?;
        let message = envelope.extension(attr::STATUS_MESSAGE).unwrap_or_default();
        Some(match code.parse() {
            Ok(code) => Status::new(code, message),
            Err(_) => Status::internal(format!("status `{code}`: {message}")),
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "status {}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::ContentType;

    fn envelope() -> Envelope {
        Envelope::new(
            "test".into(),
            Cow::Borrowed("events.inventory.stock_reservation.v1"),
            ContentType::Protobuf,
            None,
        )
    }

    #[test]
    fn a_status_reads_back_as_written_and_a_success_reads_as_none() {
        let mut reply = envelope();
        assert_eq!(Status::read(&reply), None);
        let status = Status::new(Status::CONFLICT, "out of stock");
        status.write(&mut reply);
        assert_eq!(reply.extension(attr::STATUS_CODE), Some("409"));
        assert_eq!(Status::read(&reply), Some(status));
    }

    #[test]
    fn a_code_that_is_no_number_is_kept_as_an_internal_failure() {
        let mut reply = envelope();
        reply.set_extension(attr::STATUS_CODE, "conflict");
        reply.set_extension(attr::STATUS_MESSAGE, "out of stock");
        assert_eq!(
            Status::read(&reply),
            Some(Status::internal("status `conflict`: out of stock"))
        );
    }
}
