//! A dedup store in Redis: one key per scope and event id, set with `SET NX` and a TTL, so
//! every replica of a consumer shares what was handled and a restarted one remembers it.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use tidings_core::{BrokerError, DedupError, DedupStore, check_dedup_id};

use crate::{RedisBroker, RedisConfig};

/// How long an id is remembered unless told otherwise: a day, well past any broker's
/// redelivery window.
pub const DEFAULT_DEDUP_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A [`DedupStore`] in Redis. Keys are `<prefix><scope length>:<scope>:<id>` (the length keeps
/// a scope from running into an id), each expiring after the TTL. Ids longer than
/// [`MAX_DEDUP_ID_LEN`](tidings_core::MAX_DEDUP_ID_LEN) are refused. Cheap to clone.
#[derive(Clone)]
pub struct RedisDedup {
    commands: ConnectionManager,
    prefix: String,
    ttl: Duration,
}

impl std::fmt::Debug for RedisDedup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDedup")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl RedisDedup {
    /// A store on the server of `config`, keys under `tidings:dedup:`, remembered for
    /// [`DEFAULT_DEDUP_TTL`].
    pub async fn connect(config: RedisConfig) -> Result<Self, BrokerError> {
        Ok(RedisDedup::on(&RedisBroker::connect(config).await?))
    }

    /// A store sharing the connection of `broker`.
    pub fn on(broker: &RedisBroker) -> Self {
        RedisDedup {
            commands: broker.inner.commands.clone(),
            prefix: "tidings:dedup:".to_owned(),
            ttl: DEFAULT_DEDUP_TTL,
        }
    }

    /// How long an id is remembered (at least a millisecond).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// The prefix of every key, to keep several applications apart on one server.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn key(&self, scope: &str, id: &str) -> Result<String, DedupError> {
        check_dedup_id(id)?;
        Ok(format!("{}{}:{scope}:{id}", self.prefix, scope.len()))
    }
}

#[async_trait]
impl DedupStore for RedisDedup {
    async fn seen(&self, scope: &str, id: &str) -> Result<bool, DedupError> {
        let key = self.key(scope, id)?;
        let mut commands = self.commands.clone();
        redis::cmd("EXISTS")
            .arg(&key)
            .query_async::<bool>(&mut commands)
            .await
            .map_err(|e| DedupError(Box::from(format!("redis: EXISTS {key}: {e}"))))
    }

    async fn record(&self, scope: &str, id: &str) -> Result<(), DedupError> {
        let key = self.key(scope, id)?;
        let mut commands = self.commands.clone();
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        // NX keeps the first record's expiry: an id handled twice is not remembered longer.
        redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async::<Option<String>>(&mut commands)
            .await
            .map(drop)
            .map_err(|e| DedupError(Box::from(format!("redis: SET {key} NX: {e}"))))
    }
}
