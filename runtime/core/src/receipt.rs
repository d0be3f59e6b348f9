//! What a publish gives back once the broker confirmed it, or the bus's fallback stored it.

use crate::broker::{Confirmation, Position};
use crate::id::EventId;

/// The proof of a confirmed publish: the event's id (the CloudEvents `id` every subscriber
/// sees, to log or to chain with `causation_id`) and what the broker said of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    id: EventId,
    confirmation: Confirmation,
    deferred: bool,
}

impl Receipt {
    pub(crate) fn new(id: EventId, confirmation: Confirmation) -> Receipt {
        Receipt {
            id,
            confirmation,
            deferred: false,
        }
    }

    /// The receipt of an event the broker did not take and the bus's fallback stored.
    pub(crate) fn deferred(id: EventId) -> Receipt {
        Receipt {
            id,
            confirmation: Confirmation::default(),
            deferred: true,
        }
    }

    /// The event's id.
    pub fn id(&self) -> &EventId {
        &self.id
    }

    /// Where the broker keeps the event, on brokers that say (a JetStream sequence, a Kafka
    /// offset, a Redis entry id).
    pub fn position(&self) -> Option<&Position> {
        self.confirmation.position.as_ref()
    }

    /// The broker dropped this publish as a duplicate of an event with the same id that it
    /// already holds (NATS JetStream, within its duplicate window).
    pub fn duplicate(&self) -> bool {
        self.confirmation.duplicate
    }

    /// The broker did not take the event; the bus's fallback stored it and a relay publishes
    /// it later ([`Bus::with_fallback`](crate::Bus::with_fallback)). No broker confirmed it
    /// yet, so it has no position.
    pub fn is_deferred(&self) -> bool {
        self.deferred
    }
}
