//! The transactional outbox: an event stored in the transaction of the change that caused it,
//! so that it exists if and only if the change was committed.

use std::time::Duration;

use sqlx::migrate::MigrateError;
use tidings_core::broker::{BrokerError, Message};
use tidings_core::envelope::EnvelopeError;
use tidings_core::{Bus, Envelope, Event, EventId, Publish, PublishError, Topic, TopicError};

use crate::pool::{Connection, OutboxConnection};

/// Why an event was not stored or not relayed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The event could not be made into a message (its topic, its encoding, or a causation
    /// chain too deep); nothing was stored.
    #[error("cannot store the event: {0}")]
    Event(#[from] PublishError),
    /// The database refused or failed.
    #[error("outbox table: {0}; check the database, and that tidings_sqlx::migrate ran")]
    Database(#[from] sqlx::Error),
    /// The outbox's table could not be made.
    #[error("making the outbox table: {0}")]
    Migrate(#[from] MigrateError),
    /// The broker did not take a stored event; it stays pending and is tried again.
    #[error("relaying a stored event: {0}")]
    Broker(#[from] BrokerError),
    /// The broker did not confirm in time; the event stays pending and is tried again (a broker
    /// that deduplicates by event id drops the second copy).
    #[error("relaying a stored event: no confirmation within {0:?}")]
    Timeout(Duration),
    /// A stored row does not make a message (changed by hand?); it stays pending.
    #[error("stored event {seq} is not a CloudEvent any more: {reason}")]
    Corrupt {
        /// The row's sequence number.
        seq: i64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Stores events in the caller's transaction, as the bus would publish them.
#[derive(Clone, Debug)]
pub struct Outbox {
    bus: Bus,
}

impl Outbox {
    /// An outbox that makes messages as `bus` does (its source and codecs).
    pub fn new(bus: &Bus) -> Self {
        Outbox { bus: bus.clone() }
    }

    /// Stores `event` through `conn`, in the caller's transaction
    /// (`outbox.publish(&mut tx, &event)` with a `sqlx::Transaction` of PostgreSQL or SQLite):
    /// committed with it, or gone with it. Returns the event's id.
    pub async fn publish<E: Event>(
        &self,
        conn: &mut impl OutboxConnection,
        event: &E,
    ) -> Result<EventId, OutboxError> {
        self.publish_with(conn, self.bus.publish_with(event)).await
    }

    /// Stores what `publish` would send, with its options, through `conn` in the caller's
    /// transaction: `outbox.publish_with(&mut tx, bus.publish_with(&invoice).caused_by(&order))`
    /// continues the causation chain of the event a handler received, and is refused, as the
    /// publish would be, when the chain is too deep. Returns the event's id.
    pub async fn publish_with<E: Event>(
        &self,
        conn: &mut impl OutboxConnection,
        publish: Publish<'_, E>,
    ) -> Result<EventId, OutboxError> {
        let (topic, message) = publish.prepare()?;
        insert(conn.connection(), &topic, &message).await?;
        Ok(message.envelope.id.clone())
    }
}

/// Stores `message`, to be published to `topic`, through `conn`.
pub(crate) async fn insert(
    conn: Connection<'_>,
    topic: &Topic,
    message: &Message,
) -> Result<(), OutboxError> {
    match conn {
        Connection::Postgres(conn) => Ok(crate::postgres::insert(conn, topic, message).await?),
        #[cfg(feature = "sqlite")]
        Connection::Sqlite(conn) => crate::sqlite::insert(conn, topic, message).await,
    }
}

/// A stored event: its sequence number, and its topic and message (or why the row makes none).
pub(crate) type Stored = (i64, Result<(Topic, Message), OutboxError>);

/// The topic and message a stored row holds.
pub(crate) fn stored_message(
    seq: i64,
    topic: String,
    attributes: impl IntoIterator<Item = (String, String)>,
    data: Vec<u8>,
) -> Result<(Topic, Message), OutboxError> {
    let corrupt = |reason: String| OutboxError::Corrupt { seq, reason };
    let topic = Topic::new(topic).map_err(|e: TopicError| corrupt(e.to_string()))?;
    let envelope =
        Envelope::from_attributes(attributes).map_err(|e: EnvelopeError| corrupt(e.to_string()))?;
    Ok((topic, Message::new(envelope, data.into())))
}
