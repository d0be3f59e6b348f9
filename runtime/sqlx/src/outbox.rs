//! The transactional outbox: an event stored in the transaction of the change that caused it,
//! so that it exists if and only if the change was committed, and a relay that publishes what
//! is stored.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use tidings_core::adapter::Backoff;
use tidings_core::broker::{Broker, BrokerError, Message};
use tidings_core::envelope::EnvelopeError;
use tidings_core::{Bus, Envelope, Event, EventId, PublishError, Topic, TopicError};

/// Why an event was not stored or not relayed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The event could not be made into a message (its topic or its encoding); nothing was
    /// stored.
    #[error("cannot store the event: {0}")]
    Event(#[from] PublishError),
    /// The database refused or failed.
    #[error("outbox table: {0}; check the database, and that tidings_sqlx::migrate ran")]
    Database(#[from] sqlx::Error),
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
    /// (`outbox.publish(&mut *tx, &event)` with a `sqlx::Transaction`): committed with it, or
    /// gone with it. Returns the event's id.
    pub async fn publish<E: Event>(
        &self,
        conn: &mut PgConnection,
        event: &E,
    ) -> Result<EventId, OutboxError> {
        let (topic, message) = self.bus.prepare(event)?;
        let envelope = &message.envelope;
        let (names, values): (Vec<&str>, Vec<String>) = envelope
            .attributes()
            .into_iter()
            .map(|(name, value)| (name, value.into_owned()))
            .unzip();
        sqlx::query(
            "INSERT INTO tidings_outbox (id, topic, attribute_names, attribute_values, data) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(envelope.id.as_str())
        .bind(topic.as_str())
        .bind(&names)
        .bind(&values)
        .bind(message.data.as_ref())
        .execute(conn)
        .await?;
        Ok(envelope.id.clone())
    }
}

/// Publishes the stored events, those of one partition key in the order they were stored (and
/// different keys at once), marks each sent once the broker confirmed it, and deletes sent rows
/// after a retention.
///
/// Several relays may run on one database: one publishes at a time (a transaction-scoped
/// advisory lock), the others stand by, so no event is published twice by two relays and the
/// order per key is kept. A relay that dies after a publish and before marking it sent
/// publishes it again on its next turn; the event keeps its id, which brokers that deduplicate
/// by it (NATS JetStream's `Nats-Msg-Id`) use to drop the second copy.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    broker: Arc<dyn Broker>,
    batch: i64,
    idle: Duration,
    timeout: Duration,
    retention: Duration,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("broker", &self.broker.name())
            .field("batch", &self.batch)
            .field("idle", &self.idle)
            .field("timeout", &self.timeout)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// Stored events of one partition key, in order: each row's sequence number and its message.
type Chain = Vec<(i64, Result<(Topic, Message), OutboxError>)>;

/// The key of the advisory lock that lets one relay publish at a time.
const RELAY_LOCK: i64 = 0x7469_6469_6e67_7301;

impl Relay {
    /// A relay from the outbox of `pool` to the broker of `bus`: batches of 100, a look every
    /// 100 ms while nothing is pending, 5 s for each confirmation, sent rows kept a day.
    pub fn new(pool: PgPool, bus: &Bus) -> Self {
        Relay {
            pool,
            broker: bus.broker().clone(),
            batch: 100,
            idle: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
            retention: Duration::from_secs(24 * 60 * 60),
        }
    }

    /// How many events one turn publishes at most (at least 1).
    pub fn batch(mut self, events: usize) -> Self {
        self.batch = i64::try_from(events.max(1)).unwrap_or(i64::MAX);
        self
    }

    /// How long the relay waits before looking again when nothing is pending.
    pub fn idle(mut self, wait: Duration) -> Self {
        self.idle = wait;
        self
    }

    /// How long a publish waits for the broker's confirmation.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long sent rows are kept before [`Relay::purge`] deletes them.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// One turn: publishes up to a batch of pending events and marks them sent. Returns how
    /// many were sent; 0 when nothing is pending or another relay has the turn. On a failure,
    /// what was sent is marked, the events of the failed one's key after it stay pending with
    /// it, and the error is returned.
    pub async fn relay_once(&self) -> Result<usize, OutboxError> {
        let mut tx = self.pool.begin().await?;
        let turn: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !turn {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT seq, topic, attribute_names, attribute_values, data FROM tidings_outbox \
             WHERE sent_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await?;
        // Events of one partition key go out one after another, in the order stored, and a
        // chain stops at its first failure, so a key's order holds even then; different keys
        // (and events without one) go out at once, as the broker confirms each on its own.
        let mut chains: Vec<Chain> = Vec::new();
        let mut chain_of_key: HashMap<String, usize> = HashMap::new();
        for row in &rows {
            let seq: i64 = row.try_get("seq")?;
            let message = stored_message(seq, row);
            let key = message
                .as_ref()
                .ok()
                .and_then(|(_, m)| m.envelope.partition_key.clone());
            let chain = match key {
                Some(key) => *chain_of_key.entry(key).or_insert_with(|| {
                    chains.push(Vec::new());
                    chains.len() - 1
                }),
                None => {
                    chains.push(Vec::new());
                    chains.len() - 1
                }
            };
            chains[chain].push((seq, message));
        }
        let outcomes = join_all(chains.into_iter().map(|chain| self.send_chain(chain))).await;
        let mut sent = Vec::with_capacity(rows.len());
        let mut failure = None;
        for (seqs, error) in outcomes {
            sent.extend(seqs);
            failure = failure.or(error);
        }
        sqlx::query("UPDATE tidings_outbox SET sent_at = now() WHERE seq = ANY($1)")
            .bind(&sent)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        match failure {
            Some(e) => Err(e),
            None => Ok(sent.len()),
        }
    }

    /// Publishes a chain in order until one fails: the sequence numbers sent, and the failure.
    async fn send_chain(&self, chain: Chain) -> (Vec<i64>, Option<OutboxError>) {
        let mut sent = Vec::with_capacity(chain.len());
        for (seq, message) in chain {
            let published = match message {
                Ok((topic, message)) => {
                    match tokio::time::timeout(self.timeout, self.broker.publish(&topic, message))
                        .await
                    {
                        Ok(confirmed) => confirmed.map(drop).map_err(OutboxError::from),
                        Err(_) => Err(OutboxError::Timeout(self.timeout)),
                    }
                }
                Err(e) => Err(e),
            };
            match published {
                Ok(()) => sent.push(seq),
                Err(e) => return (sent, Some(e)),
            }
        }
        (sent, None)
    }

    /// Deletes sent rows older than the retention; returns how many.
    pub async fn purge(&self) -> Result<u64, OutboxError> {
        let deleted = sqlx::query(
            "DELETE FROM tidings_outbox WHERE sent_at IS NOT NULL \
             AND sent_at < now() - make_interval(secs => $1)",
        )
        .bind(self.retention.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected())
    }

    /// Relays until `stop` completes: a turn after another while events are pending, a wait
    /// of [`Relay::idle`] when none are, and a growing, jittered wait after a failure (the
    /// broker or the database away), which is emitted as a `tracing` event and passed to
    /// `on_error` (for a metric, say). Sent rows
    /// past the retention are purged about once a minute.
    pub async fn run(
        &self,
        stop: impl Future<Output = ()>,
        mut on_error: impl FnMut(&OutboxError),
    ) {
        tokio::pin!(stop);
        let mut backoff = Backoff::new();
        let mut purged = tokio::time::Instant::now();
        loop {
            let wait = match self.relay_once().await {
                Ok(0) => self.idle,
                Ok(_) => {
                    backoff.reset();
                    Duration::ZERO
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay: a turn failed; the events stay pending and are tried again");
                    on_error(&e);
                    backoff.next_wait()
                }
            };
            if purged.elapsed() >= Duration::from_secs(60) {
                purged = tokio::time::Instant::now();
                if let Err(e) = self.purge().await {
                    tracing::error!(error = %e, "outbox relay: sent rows could not be purged");
                    on_error(&e);
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The topic and message a stored row holds.
fn stored_message(seq: i64, row: &PgRow) -> Result<(Topic, Message), OutboxError> {
    let corrupt = |reason: String| OutboxError::Corrupt { seq, reason };
    let topic: String = row.try_get("topic")?;
    let names: Vec<String> = row.try_get("attribute_names")?;
    let values: Vec<String> = row.try_get("attribute_values")?;
    let data: Vec<u8> = row.try_get("data")?;
    let topic = Topic::new(topic).map_err(|e: TopicError| corrupt(e.to_string()))?;
    let envelope = Envelope::from_attributes(names.into_iter().zip(values))
        .map_err(|e: EnvelopeError| corrupt(e.to_string()))?;
    Ok((topic, Message::new(envelope, data.into())))
}
