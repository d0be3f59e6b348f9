//! The relay: publishes what the outbox stored, in order per partition key, and marks each
//! event sent once the broker confirmed it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tidings_core::Bus;
use tidings_core::adapter::Backoff;
use tidings_core::broker::Broker;

use crate::outbox::{OutboxError, Stored};
use crate::pool::OutboxPool;

/// Publishes the stored events, those of one partition key in the order they were stored (and
/// different keys at once), marks each sent once the broker confirmed it, and deletes sent rows
/// after a retention.
///
/// On PostgreSQL several relays may run on one outbox: one publishes at a time (a
/// transaction-scoped advisory lock per outbox table), the others stand by, so no event is
/// published twice by two relays and the order per key is kept. On SQLite one relay runs per
/// database (its clones take turns). A relay that dies after a publish and before marking it
/// sent publishes it again on its next turn; the event keeps its id, which brokers that
/// deduplicate by it (NATS JetStream's `Nats-Msg-Id`) use to drop the second copy.
#[derive(Clone)]
pub struct Relay {
    pool: OutboxPool,
    broker: Arc<dyn Broker>,
    batch: i64,
    idle: Duration,
    timeout: Duration,
    retention: Duration,
    /// Taken for a turn on SQLite, where the database has no lock to take turns by.
    #[cfg(feature = "sqlite")]
    turn: Arc<tokio::sync::Mutex<()>>,
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

/// Stored events of one partition key, in order.
type Chain = Vec<Stored>;

impl Relay {
    /// A relay from the outbox in `pool` (a `PgPool`, or a `SqlitePool` with the `sqlite`
    /// feature) to the broker of `bus`: batches of 100, a look every 100 ms while nothing is
    /// pending, 5 s for each confirmation, sent rows kept a day.
    pub fn new(pool: impl Into<OutboxPool>, bus: &Bus) -> Self {
        Relay {
            pool: pool.into(),
            broker: bus.broker().clone(),
            batch: 100,
            idle: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
            retention: Duration::from_secs(24 * 60 * 60),
            #[cfg(feature = "sqlite")]
            turn: Arc::default(),
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
        let (sent, failure) = match &self.pool {
            OutboxPool::Postgres(pool) => {
                let Some(mut tx) = crate::postgres::take_turn(pool).await? else {
                    return Ok(0);
                };
                let stored = crate::postgres::pending(&mut tx, self.batch).await?;
                let (sent, failure) = self.send(stored).await;
                crate::postgres::mark_sent(&mut tx, &sent).await?;
                tx.commit().await?;
                (sent, failure)
            }
            #[cfg(feature = "sqlite")]
            OutboxPool::Sqlite(pool) => {
                let Ok(_turn) = self.turn.try_lock() else {
                    return Ok(0);
                };
                let stored = crate::sqlite::pending(pool, self.batch).await?;
                let (sent, failure) = self.send(stored).await;
                crate::sqlite::mark_sent(pool, &sent).await?;
                (sent, failure)
            }
        };
        match failure {
            Some(e) => Err(e),
            None => Ok(sent.len()),
        }
    }

    /// Publishes `stored`: the sequence numbers sent, and the first failure.
    async fn send(&self, stored: Vec<Stored>) -> (Vec<i64>, Option<OutboxError>) {
        // Events of one partition key go out one after another, in the order stored, and a
        // chain stops at its first failure, so a key's order holds even then; different keys
        // (and events without one) go out at once, as the broker confirms each on its own.
        let total = stored.len();
        let mut chains: Vec<Chain> = Vec::new();
        let mut chain_of_key: HashMap<String, usize> = HashMap::new();
        for (seq, message) in stored {
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
        let mut sent = Vec::with_capacity(total);
        let mut failure = None;
        for (seqs, error) in outcomes {
            sent.extend(seqs);
            failure = failure.or(error);
        }
        (sent, failure)
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
        let retention = self.retention.as_secs_f64();
        match &self.pool {
            OutboxPool::Postgres(pool) => crate::postgres::purge(pool, retention).await,
            #[cfg(feature = "sqlite")]
            OutboxPool::Sqlite(pool) => crate::sqlite::purge(pool, retention).await,
        }
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
