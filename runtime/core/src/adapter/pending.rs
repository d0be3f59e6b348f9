//! The requests of one requester that wait for their replies, for adapters that match replies
//! to requests themselves: by the request's event id (request-reply over publish and
//! subscribe), by an AMQP correlation id (RabbitMQ's direct reply-to).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::lock;

/// The requests waiting for a reply, by the id a reply names to say which request it answers.
///
/// A request registers with [`PendingReplies::wait`] before it is sent, so a reply that comes
/// at once still finds it; whatever reads the replies hands each to its request with
/// [`PendingReplies::answer`], and ends every wait with [`PendingReplies::close_all`] when no
/// more replies can come. A wait leaves the map however it ends: answered, closed, or given up
/// (its deadline passed and the [`WaitingReply`] was dropped), so the map only holds requests that
/// still wait. Clones share one map.
pub struct PendingReplies<T> {
    waiting: Arc<Mutex<Map<T>>>,
}

/// The waiting requests' reply senders by id, each with the number of its wait, so a wait
/// given up removes its own entry and never one registered under the same id after it.
struct Map<T> {
    senders: HashMap<String, (u64, oneshot::Sender<T>)>,
    next: u64,
}

impl<T> PendingReplies<T> {
    /// No request waiting.
    pub fn new() -> Self {
        PendingReplies {
            waiting: Arc::new(Mutex::new(Map {
                senders: HashMap::new(),
                next: 0,
            })),
        }
    }

    /// Registers a request waiting for the reply naming `id`, which no other request waiting
    /// at the same time may use (a request registered under an id already waiting takes its
    /// place, and the earlier one's wait ends without a reply). Await the [`WaitingReply`] for the
    /// reply; dropping it stops waiting.
    pub fn wait(&self, id: impl Into<String>) -> WaitingReply<T> {
        let id = id.into();
        let (sender, reply) = oneshot::channel();
        let mut map = lock(&self.waiting);
        let number = map.next;
        map.next = number.wrapping_add(1);
        map.senders.insert(id.clone(), (number, sender));
        drop(map);
        WaitingReply {
            pending: self.clone(),
            id,
            number,
            reply,
        }
    }

    /// Hands `reply` to the request waiting for `id`, or gives it back when none is (it gave
    /// up, or the reply is for another requester).
    pub fn answer(&self, id: &str, reply: T) -> Result<(), T> {
        let waiting = lock(&self.waiting).senders.remove(id);
        match waiting {
            Some((_, sender)) => sender.send(reply),
            None => Err(reply),
        }
    }

    /// Ends every wait without a reply: no more replies can come (the subscription or channel
    /// they arrive on is gone).
    pub fn close_all(&self) {
        lock(&self.waiting).senders.clear();
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        lock(&self.waiting).senders.len()
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for PendingReplies<T> {
    fn clone(&self) -> Self {
        PendingReplies {
            waiting: self.waiting.clone(),
        }
    }
}

impl<T> Default for PendingReplies<T> {
    fn default() -> Self {
        PendingReplies::new()
    }
}

impl<T> fmt::Debug for PendingReplies<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingReplies")
            .field("waiting", &self.len())
            .finish()
    }
}

/// One request's wait for its reply, made by [`PendingReplies::wait`]. Resolves to the reply,
/// or to `None` when none can come any more ([`PendingReplies::close_all`], or another request
/// registered under the same id); dropped, it takes the request out of the map.
#[must_use = "a request stops waiting for its reply when this is dropped"]
pub struct WaitingReply<T> {
    pending: PendingReplies<T>,
    id: String,
    number: u64,
    reply: oneshot::Receiver<T>,
}

impl<T> Future for WaitingReply<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.reply).poll(cx).map(Result::ok)
    }
}

impl<T> Drop for WaitingReply<T> {
    fn drop(&mut self) {
        let mut map = lock(&self.pending.waiting);
        // Only its own entry: one registered under the same id since has taken its place.
        if map
            .senders
            .get(&self.id)
            .is_some_and(|(number, _)| *number == self.number)
        {
            map.senders.remove(&self.id);
        }
    }
}

impl<T> fmt::Debug for WaitingReply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitingReply")
            .field("id", &self.id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reply_reaches_the_request_waiting_for_its_id() {
        let pending = PendingReplies::new();
        let first = pending.wait("a");
        let second = pending.wait("b");
        assert_eq!(pending.answer("b", 2), Ok(()));
        assert_eq!(pending.answer("a", 1), Ok(()));
        assert_eq!((first.await, second.await), (Some(1), Some(2)));
        assert!(pending.is_empty());
    }

    #[tokio::test]
    async fn a_reply_nobody_waits_for_is_dropped() {
        let pending = PendingReplies::new();
        assert_eq!(pending.answer("a", 1), Err(1));
        let waiting = pending.wait("a");
        assert_eq!(pending.len(), 1);
        drop(waiting);
        assert!(pending.is_empty(), "a wait given up leaves the map");
        assert_eq!(pending.answer("a", 2), Err(2));
    }

    #[tokio::test]
    async fn closing_ends_every_wait_without_a_reply() {
        let pending = PendingReplies::<u32>::new();
        let waits = [pending.wait("a"), pending.wait("b")];
        pending.close_all();
        assert!(pending.is_empty());
        for waiting in waits {
            assert_eq!(waiting.await, None);
        }
    }

    #[tokio::test]
    async fn a_wait_under_a_taken_id_replaces_the_earlier_one() {
        let pending = PendingReplies::new();
        let earlier = pending.wait("a");
        let later = pending.wait("a");
        assert_eq!(earlier.await, None);
        assert_eq!(
            pending.len(),
            1,
            "the earlier wait left the later one's entry"
        );
        assert_eq!(pending.answer("a", 1), Ok(()));
        assert_eq!(later.await, Some(1));
    }
}
