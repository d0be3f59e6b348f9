//! The outbox as a bus's fallback: a publish the broker did not take is stored for the relay.

use async_trait::async_trait;
use tidings_core::broker::Message;
use tidings_core::{Fallback, FallbackError, Topic};

use crate::outbox::insert;
use crate::pool::{Connection, OutboxPool};

/// Stores the publishes a bus's broker refused or did not confirm in time in the outbox, for
/// a [`Relay`](crate::Relay) on the same database to publish once the broker is back:
/// `bus.with_fallback(OutboxFallback::new(pool.clone()))`.
///
/// With SQLite ([`open_sqlite`](crate::open_sqlite), the `sqlite` feature) a service without a
/// database of its own loses nothing while its broker is down.
#[derive(Clone, Debug)]
pub struct OutboxFallback {
    pool: OutboxPool,
}

impl OutboxFallback {
    /// A fallback into the outbox of `pool` (a `PgPool`, or a `SqlitePool`).
    pub fn new(pool: impl Into<OutboxPool>) -> Self {
        OutboxFallback { pool: pool.into() }
    }
}

#[async_trait]
impl Fallback for OutboxFallback {
    async fn store(&self, topic: &Topic, message: &Message) -> Result<(), FallbackError> {
        match &self.pool {
            OutboxPool::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                insert(Connection::Postgres(&mut conn), topic, message).await?;
            }
            #[cfg(feature = "sqlite")]
            OutboxPool::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                insert(Connection::Sqlite(&mut conn), topic, message).await?;
            }
        }
        Ok(())
    }
}
