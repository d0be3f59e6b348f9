//! The limit on the size of a message: its default, which bytes count, and the one check that
//! publishing and receiving both make.
//!
//! What counts is the data and the attributes: each attribute's CloudEvents name and value, as
//! [`Envelope::attributes`](crate::Envelope::attributes) lists them ([`Message::size`]), without a
//! transport's prefixes or framing. Data alone would leave the attributes unbounded, and a
//! producer outside tidings can put as much in headers as in a payload; brokers count them too
//! (NATS's `max_payload`, Kafka's `max.message.bytes`, MQTT's Maximum Packet Size). Without the
//! transport's framing, so that one message counts the same on every broker.
//!
//! [`Message::size`]: crate::broker::Message::size

/// The size limit unless told otherwise: 1 MiB of data and attributes, as NATS
/// (`max_payload`) and Kafka (`max.message.bytes`) have by default.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// A message of `size` bytes, above the `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooLarge {
    pub(crate) size: usize,
    pub(crate) limit: usize,
}

/// The rule: a message of `size` bytes passes a limit of `limit` bytes when it is no larger.
#[inline]
pub(crate) fn check(size: usize, limit: usize) -> Result<(), TooLarge> {
    if size > limit {
        Err(TooLarge { size, limit })
    } else {
        Ok(())
    }
}

/// What a broker's own client is set to carry for a limit of `max_message_size`: twice the
/// limit and 64 KiB more, for the transport's framing (attribute prefixes, the length of each
/// field) and the attributes a dead letter adds.
///
/// A message somewhat above the limit still reaches the subscription, which dead-letters it with
/// the reason; one far above it is stopped by the client (or the server, told by the client) so
/// that it never fills memory.
pub fn transport_ceiling(max_message_size: usize) -> usize {
    max_message_size.saturating_mul(2).saturating_add(64 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_itself_passes_and_one_byte_more_does_not() {
        assert_eq!(check(10, 10), Ok(()));
        assert_eq!(check(0, 0), Ok(()));
        assert_eq!(
            check(11, 10),
            Err(TooLarge {
                size: 11,
                limit: 10
            })
        );
        assert_eq!(
            check(DEFAULT_MAX_MESSAGE_SIZE + 1, DEFAULT_MAX_MESSAGE_SIZE),
            Err(TooLarge {
                size: 1_048_577,
                limit: 1_048_576
            })
        );
    }

    #[test]
    fn the_transport_ceiling_leaves_room_and_never_overflows() {
        assert_eq!(
            transport_ceiling(DEFAULT_MAX_MESSAGE_SIZE),
            2 * 1_048_576 + 65_536
        );
        assert_eq!(transport_ceiling(0), 65_536);
        assert_eq!(transport_ceiling(usize::MAX), usize::MAX);
    }
}
