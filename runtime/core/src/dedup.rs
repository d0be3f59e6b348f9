//! Deduplication by event id, so a handler sees an event once even when a broker delivers it
//! twice (at-least-once delivery).
//!
//! The check comes before the handler and the record after it succeeded, so a failed attempt
//! is retried rather than forgotten. Two copies handled at the very same moment can both pass
//! the check, and an event whose check fails (the store is away) is handled anyway: the store
//! narrows duplicates, it is not a lock.

use std::collections::{HashSet, VecDeque};
use std::error::Error;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::adapter::lock;

/// The scope a subscription in `group` on `topic` keeps its handled ids under: one per group,
/// wherever and whenever its members run. An inbox that records ids in the handler's own
/// transaction records them under this scope.
pub fn group_scope(topic: &str, group: &str) -> String {
    format!("{topic}#{group}")
}

/// The longest event id a dedup store keeps: 1 KiB. CloudEvents ids are short (a UUID is 36
/// bytes); every store refuses a longer one with [`check_dedup_id`]'s error, so that a producer
/// cannot fill it with large keys. The subscription then handles the event as it does whenever
/// the store cannot answer: at the risk of a duplicate.
pub const MAX_DEDUP_ID_LEN: usize = 1024;

/// Refuses an id longer than [`MAX_DEDUP_ID_LEN`], with an error naming its length: the check
/// every [`DedupStore`] makes before it looks an id up or records it.
pub fn check_dedup_id(id: &str) -> Result<(), DedupError> {
    if id.len() > MAX_DEDUP_ID_LEN {
        return Err(DedupError(Box::from(format!(
            "an event id of {} bytes is longer than the {MAX_DEDUP_ID_LEN} the store keeps",
            id.len()
        ))));
    }
    Ok(())
}

/// Why a dedup store could not answer.
#[derive(Debug, thiserror::Error)]
#[error("dedup store failed: {0}; check that the store is reachable")]
pub struct DedupError(#[from] pub Box<dyn Error + Send + Sync>);

/// Remembers which event ids were handled, per scope: one consumer of a topic (a group, or one
/// subscription without a group).
///
/// A store keeps ids for as long as its own policy says (a capacity, a TTL...); an id it forgot
/// is handled again if it comes back. It refuses ids longer than [`MAX_DEDUP_ID_LEN`]
/// ([`check_dedup_id`]).
#[async_trait]
pub trait DedupStore: Send + Sync + 'static {
    /// Whether `id` was already handled in `scope`.
    async fn seen(&self, scope: &str, id: &str) -> Result<bool, DedupError>;
    /// Records that `id` was handled in `scope`.
    async fn record(&self, scope: &str, id: &str) -> Result<(), DedupError>;
}

#[async_trait]
impl<S: DedupStore + ?Sized> DedupStore for std::sync::Arc<S> {
    async fn seen(&self, scope: &str, id: &str) -> Result<bool, DedupError> {
        (**self).seen(scope, id).await
    }

    async fn record(&self, scope: &str, id: &str) -> Result<(), DedupError> {
        (**self).record(scope, id).await
    }
}

/// An in-process store holding the most recent `capacity` ids, each at most
/// [`MAX_DEDUP_ID_LEN`] bytes; older ones are forgotten first.
#[derive(Debug)]
pub struct MemoryDedup {
    capacity: usize,
    state: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl MemoryDedup {
    /// A store that remembers up to `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        MemoryDedup {
            capacity: capacity.max(1),
            state: Mutex::new(Seen::default()),
        }
    }

    fn key(scope: &str, id: &str) -> String {
        // A NUL cannot appear in a topic name, so scopes cannot run into ids.
        let mut key = String::with_capacity(scope.len() + 1 + id.len());
        key.push_str(scope);
        key.push('\0');
        key.push_str(id);
        key
    }
}

impl Default for MemoryDedup {
    /// Remembers the last 100,000 ids.
    fn default() -> Self {
        MemoryDedup::new(100_000)
    }
}

#[async_trait]
impl DedupStore for MemoryDedup {
    async fn seen(&self, scope: &str, id: &str) -> Result<bool, DedupError> {
        check_dedup_id(id)?;
        let state = lock(&self.state);
        Ok(state.ids.contains(&MemoryDedup::key(scope, id)))
    }

    async fn record(&self, scope: &str, id: &str) -> Result<(), DedupError> {
        check_dedup_id(id)?;
        let key = MemoryDedup::key(scope, id);
        let mut state = lock(&self.state);
        if state.ids.insert(key.clone()) {
            state.order.push_back(key);
            while state.order.len() > self.capacity {
                if let Some(oldest) = state.order.pop_front() {
                    state.ids.remove(&oldest);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remembers_per_scope_and_forgets_the_oldest_beyond_capacity() {
        let store = MemoryDedup::new(2);
        assert!(!store.seen("a", "1").await.unwrap());
        store.record("a", "1").await.unwrap();
        assert!(store.seen("a", "1").await.unwrap());
        assert!(!store.seen("b", "1").await.unwrap());
        store.record("a", "2").await.unwrap();
        store.record("a", "2").await.unwrap();
        assert!(store.seen("a", "1").await.unwrap());
        store.record("a", "3").await.unwrap();
        assert!(!store.seen("a", "1").await.unwrap());
        assert!(store.seen("a", "2").await.unwrap());
        assert!(store.seen("a", "3").await.unwrap());
    }

    #[tokio::test]
    async fn an_id_too_long_to_keep_is_refused_with_its_length() {
        let store = MemoryDedup::default();
        let longest = "x".repeat(MAX_DEDUP_ID_LEN);
        store.record("a", &longest).await.unwrap();
        assert!(store.seen("a", &longest).await.unwrap());
        let id = "x".repeat(MAX_DEDUP_ID_LEN + 1);
        let error = store.record("a", &id).await.unwrap_err().to_string();
        assert!(error.contains("1025 bytes"), "{error}");
        assert!(store.seen("a", &id).await.is_err());
        assert_eq!(lock(&store.state).ids.len(), 1, "the long id was not kept");
    }
}
