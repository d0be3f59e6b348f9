//! Where a publish the broker did not take goes instead of failing: a durable store that a
//! relay publishes from later, such as the outbox of `tidings-sqlx`.

use async_trait::async_trait;

use crate::broker::Message;
use crate::topic::Topic;

/// Why a fallback could not store a message.
pub type FallbackError = Box<dyn std::error::Error + Send + Sync>;

/// A durable store for the publishes a broker refused or did not confirm in time
/// ([`Bus::with_fallback`](crate::Bus::with_fallback)).
///
/// What it stores must be published later, unchanged, by something that reads the store (a
/// relay). The message keeps its event id, so a publish that timed out but did reach the broker
/// and is then published again is a duplicate that brokers deduplicating by id and consumers
/// with a dedup store drop.
#[async_trait]
pub trait Fallback: Send + Sync + 'static {
    /// Stores `message` for a later publish to `topic`; an error means nothing was stored.
    async fn store(&self, topic: &Topic, message: &Message) -> Result<(), FallbackError>;
}
