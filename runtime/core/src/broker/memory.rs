//! The in-process broker: needs nothing, the default in examples and tests.
//!
//! It keeps the semantics of a real broker so that code tested on it behaves the same on one:
//! every plain subscriber has its own queue (fan-out); a group has one queue its members compete
//! for, kept while the broker lives even when no member runs; a nacked message comes back after
//! its delay, and one whose acker is dropped unsettled (a consumer that died) comes back at once,
//! both with the attempt counted; each topic keeps its last messages for subscriptions that start
//! from the oldest. Memory is bounded: a queue holds at most `queue_capacity` messages waiting, and
//! a publish to a full queue waits for room, then fails with [`BrokerError::Full`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rustc_hash::FxHashMap;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::request::{RequestStream, Requester};
use super::{
    Acker, Broker, BrokerError, Capabilities, Confirmation, DeadLetter, Delivery, DeliveryStream,
    Message, Nack, StartFrom, SubscribeRequest,
};
use crate::adapter::lock;
use crate::topic::Topic;

const NAME: &str = "memory";

/// The bounds of a [`MemoryBroker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Messages waiting per subscriber or group queue before a publish waits for room.
    pub queue_capacity: usize,
    /// Messages kept per topic for subscriptions that start from the oldest (0 keeps none).
    pub history: usize,
    /// How long a publish waits for room in a full queue before it fails.
    pub publish_wait: Duration,
    /// The largest message, in the bytes [`Message::size`] counts, that a [`Bus`](crate::Bus)
    /// over this broker publishes and receives unless told otherwise
    /// ([`Broker::max_message_size`]).
    pub max_message_size: usize,
}

impl Default for MemoryLimits {
    /// 1,024 waiting messages per queue, the last 1,024 messages per topic, 1 s of waiting,
    /// messages up to [`DEFAULT_MAX_MESSAGE_SIZE`](crate::DEFAULT_MAX_MESSAGE_SIZE).
    fn default() -> Self {
        MemoryLimits {
            queue_capacity: 1024,
            history: 1024,
            publish_wait: Duration::from_secs(1),
            max_message_size: crate::size::DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// The in-process broker. Clones share the same topics, queues and groups.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    limits: MemoryLimits,
    topics: Mutex<Topics>,
    servers: Arc<requests::Servers>,
}

/// Every topic published or subscribed to, kept while the broker lives.
#[derive(Default)]
struct Topics {
    states: Vec<TopicState>,
    /// Where each topic's state is in `states`. Names are the application's own, short and
    /// looked up on every publish, so the map hashes with rustc-hash's Fx hash rather than
    /// SipHash, whose resistance to crafted collisions buys nothing here.
    index: FxHashMap<String, usize>,
    /// The last topic looked up by a `&'static str` name (an event type's topic) and where its
    /// state is: a publishing loop goes to one topic, and a static name's address identifies it
    /// without hashing it.
    last: Option<(&'static str, usize)>,
}

impl Topics {
    /// The state of `topic`, made the first time.
    fn state(&mut self, topic: &Topic) -> &mut TopicState {
        let name = topic.static_name();
        let at = match (self.last, name) {
            (Some((last, at)), Some(name)) if std::ptr::eq(last, name) => at,
            _ => {
                let at = match self.index.get(topic.as_str()) {
                    Some(&at) => at,
                    None => {
                        self.states.push(TopicState::default());
                        let at = self.states.len() - 1;
                        self.index.insert(topic.as_str().to_owned(), at);
                        at
                    }
                };
                if let Some(name) = name {
                    self.last = Some((name, at));
                }
                at
            }
        };
        &mut self.states[at]
    }

    /// The state of `topic`, if anything ever used it.
    fn get_mut(&mut self, topic: &str) -> Option<&mut TopicState> {
        let at = *self.index.get(topic)?;
        Some(&mut self.states[at])
    }
}

#[derive(Default)]
struct TopicState {
    history: VecDeque<Message>,
    subscribers: Vec<Arc<Queue>>,
    groups: HashMap<String, Arc<Queue>>,
}

/// A message waiting in a queue, or handed out and not yet settled.
struct Pending {
    message: Message,
    attempt: u32,
    /// Its place in the queue's publish order, which a redelivery goes back to.
    seq: u64,
}

#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    /// A message was queued.
    ready: Notify,
    /// A message left the queue, for publishers waiting for room.
    room: Notify,
}

#[derive(Default)]
struct QueueState {
    /// In publish order (`seq` increasing).
    items: VecDeque<Pending>,
    next_seq: u64,
    waiting_publishers: usize,
    /// Consumers that found the queue empty and wait on `ready`, as far as a publish knows: a
    /// publish wakes one and takes it off, so a burst of publishes to a consumer already woken
    /// does not signal it again each time. A wait given up leaves its count behind, which only
    /// costs one wake-up nobody needed.
    sleepers: usize,
}

impl QueueState {
    /// Queues a message for its first delivery; says whether a sleeping consumer is to be woken.
    #[must_use = "a sleeping consumer is woken with `ready.notify_one()`"]
    fn push_new(&mut self, message: Message) -> bool {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.items.push_back(Pending {
            message,
            attempt: 1,
            seq,
        });
        self.wake_one()
    }

    /// Takes one sleeping consumer off the count, if there is one to wake.
    fn wake_one(&mut self) -> bool {
        let wake = self.sleepers > 0;
        self.sleepers -= usize::from(wake);
        wake
    }
}

/// A publisher counted as waiting for room in a queue, for as long as it waits: dropping the
/// publish mid-wait (a shorter timeout, a `select!`) takes it off the count too.
struct Waiting<'a>(&'a Queue);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).waiting_publishers -= 1;
    }
}

impl Queue {
    fn with<'a>(items: impl IntoIterator<Item = &'a Message>) -> Arc<Queue> {
        let queue = Queue::default();
        let mut state = lock(&queue.state);
        for message in items {
            // A new queue has no consumer yet, so there is none to wake.
            let woken = state.push_new(message.clone());
            debug_assert!(!woken, "a new queue has no sleeping consumer");
        }
        drop(state);
        Arc::new(queue)
    }

    fn len(&self) -> usize {
        lock(&self.state).items.len()
    }

    fn pop(&self) -> Option<Pending> {
        self.take(lock(&self.state))
    }

    /// Like `pop`, but when the queue is empty counts the caller as a consumer that waits on
    /// `ready`, which it has to be listening to already. One lock for both, so no other consumer
    /// can empty the queue between the look and the take and leave this one waiting uncounted.
    fn pop_or_sleep(&self) -> Option<Pending> {
        let mut state = lock(&self.state);
        if state.items.is_empty() {
            state.sleepers += 1;
            return None;
        }
        self.take(state)
    }

    /// Takes the first message out of the locked queue, and tells publishers waiting for room.
    fn take(&self, mut state: MutexGuard<'_, QueueState>) -> Option<Pending> {
        let pending = state.items.pop_front()?;
        let wake = state.waiting_publishers > 0;
        drop(state);
        if wake {
            self.room.notify_waiters();
        }
        Some(pending)
    }

    /// Puts a message back where it was in publish order, ahead of later ones, so that
    /// messages coming back together (a consumer died holding several) keep their order.
    fn requeue(&self, pending: Pending) {
        let mut state = lock(&self.state);
        let at = state.items.partition_point(|p| p.seq < pending.seq);
        state.items.insert(at, pending);
        let wake = state.wake_one();
        drop(state);
        if wake {
            self.ready.notify_one();
        }
    }
}

impl MemoryBroker {
    /// A broker with [`MemoryLimits::default`].
    pub fn new() -> Self {
        MemoryBroker::default()
    }

    /// A broker with the given bounds.
    pub fn with_limits(limits: MemoryLimits) -> Self {
        let limits = MemoryLimits {
            queue_capacity: limits.queue_capacity.max(1),
            ..limits
        };
        MemoryBroker {
            inner: Arc::new(Inner {
                limits,
                topics: Mutex::default(),
                servers: Arc::default(),
            }),
        }
    }

    /// The bounds this broker was made with.
    pub fn limits(&self) -> MemoryLimits {
        self.inner.limits
    }
}

impl fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBroker")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Queues `message` for every subscriber and group of `topic` if all have room; otherwise
    /// hands it back with a full queue to wait on and queues nothing, so a retry cannot
    /// duplicate.
    fn try_publish(&self, topic: &Topic, message: Message) -> Result<(), (Arc<Queue>, Message)> {
        let mut topics = lock(&self.topics);
        let state = topics.state(topic);
        let capacity = self.limits.queue_capacity;
        let keep = self.limits.history > 0;
        // One place takes the message itself and the others a clone: each clone is two atomic
        // reference counts now and two more when it is dropped.
        let kept = if let [queue] = &state.subscribers[..]
            && state.groups.is_empty()
        {
            // The common case, one queue, takes its lock once.
            let mut queued = lock(&queue.state);
            if queued.items.len() >= capacity {
                return Err((queue.clone(), message));
            }
            let kept = keep.then(|| message.clone());
            let wake = queued.push_new(message);
            drop(queued);
            if wake {
                queue.ready.notify_one();
            }
            kept
        } else {
            let queues = || state.subscribers.iter().chain(state.groups.values());
            if let Some(full) = queues().find(|q| q.len() >= capacity) {
                return Err((full.clone(), message));
            }
            for queue in queues() {
                if lock(&queue.state).push_new(message.clone()) {
                    queue.ready.notify_one();
                }
            }
            keep.then_some(message)
        };
        if let Some(kept) = kept {
            if state.history.len() >= self.limits.history {
                state.history.pop_front();
            }
            state.history.push_back(kept);
        }
        Ok(())
    }

    /// Waits for room in `full`, then publishes; fails once the publish wait is over.
    async fn publish_when_room(
        &self,
        topic: &Topic,
        mut message: Message,
        mut full: Arc<Queue>,
    ) -> Result<(), BrokerError> {
        let deadline = Instant::now() + self.limits.publish_wait;
        loop {
            let queue = full.clone();
            let room = queue.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let waiting = {
                let mut state = lock(&queue.state);
                (state.items.len() >= self.limits.queue_capacity).then(|| {
                    state.waiting_publishers += 1;
                    Waiting(&queue)
                })
            };
            if let Some(waiting) = waiting {
                let waited = tokio::time::timeout_at(deadline, room).await;
                drop(waiting);
                if waited.is_err() {
                    // One last try, as room may have come just as the time ran out.
                    return self
                        .try_publish(topic, message)
                        .map_err(|_| BrokerError::Full {
                            broker: NAME,
                            reason: format!(
                                "a queue of {topic} holds {} messages nobody takes (a slow or \
                                 absent subscriber or group) and had no room within {:?}; \
                                 consume faster, or raise MemoryLimits::queue_capacity",
                                self.limits.queue_capacity, self.limits.publish_wait
                            ),
                        });
                }
            }
            match self.try_publish(topic, message) {
                Ok(()) => return Ok(()),
                Err((other, back)) => (full, message) = (other, back),
            }
        }
    }

    /// Where a subscription reads from: a fresh queue of its own, or its group's queue.
    fn attach(&self, request: &SubscribeRequest) -> Arc<Queue> {
        let mut topics = lock(&self.topics);
        let state = topics.state(&request.topic);
        let history = match request.start {
            StartFrom::New => None,
            StartFrom::Oldest => Some(&state.history),
        };
        let start = || Queue::with(history.into_iter().flatten());
        match &request.group {
            None => {
                let queue = start();
                state.subscribers.push(queue.clone());
                queue
            }
            // A group that exists keeps its place whatever the new member asks.
            Some(group) => match state.groups.get(group) {
                Some(queue) => queue.clone(),
                None => {
                    let queue = start();
                    state.groups.insert(group.clone(), queue.clone());
                    queue
                }
            },
        }
    }

    /// A plain subscriber left: its queue no longer receives, and what waits in it is dropped.
    fn detach(&self, topic: &str, queue: &Arc<Queue>) {
        if let Some(state) = lock(&self.topics).get_mut(topic) {
            state.subscribers.retain(|q| !Arc::ptr_eq(q, queue));
        }
        lock(&queue.state).items.clear();
        // A publish waiting for room in this queue can go ahead without it.
        queue.room.notify_waiters();
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            durable: false,
            groups: true,
            nack_delay: true,
            redelivery: true,
            history: self.inner.limits.history > 0,
            ordered_per_key: true,
            publish_dedup: false,
            no_responders: true,
            request_reply: true,
        }
    }

    fn max_message_size(&self) -> usize {
        self.inner.limits.max_message_size
    }

    fn try_publish(
        &self,
        topic: &Topic,
        message: Message,
    ) -> Result<Result<Confirmation, BrokerError>, Message> {
        match self.inner.try_publish(topic, message) {
            Ok(()) => Ok(Ok(Confirmation::held())),
            Err((_, message)) => Err(message),
        }
    }

    async fn publish(&self, topic: &Topic, message: Message) -> Result<Confirmation, BrokerError> {
        match self.inner.try_publish(topic, message) {
            Ok(()) => Ok(Confirmation::held()),
            // Boxed: waiting is the rare case, and its state would weigh on every publish.
            Err((full, message)) => {
                Box::pin(self.inner.publish_when_room(topic, message, full)).await?;
                Ok(Confirmation::held())
            }
        }
    }

    async fn requester(&self) -> Result<Box<dyn Requester>, BrokerError> {
        Ok(Box::new(requests::MemoryRequester {
            servers: self.inner.servers.clone(),
        }))
    }

    async fn serve(
        &self,
        topic: &Topic,
        group: &str,
        _prefetch: usize,
    ) -> Result<Box<dyn RequestStream>, BrokerError> {
        Ok(self.inner.servers.serve(topic, group))
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        let queue = self.inner.attach(&request);
        Ok(Box::new(MemoryStream {
            plain: request.group.is_none(),
            topic: request.topic,
            outlet: Arc::new(Outlet {
                broker: self.inner.clone(),
                queue,
                unsettled: AtomicUsize::new(0),
                prefetch: request.prefetch.max(1),
                settled: Notify::new(),
                waiting_room: AtomicBool::new(false),
            }),
            closed: false,
        }))
    }
}

/// What one subscription reads from and what its deliveries settle against: the queue, and the
/// count of unsettled deliveries against its prefetch. One allocation shared by the stream and
/// every acker, so handing out a delivery takes one reference, not one per part.
struct Outlet {
    broker: Arc<Inner>,
    queue: Arc<Queue>,
    unsettled: AtomicUsize,
    prefetch: usize,
    settled: Notify,
    /// The stream waits on `settled` for room under its prefetch. Most settlements happen while
    /// it does not (a consumer acks before it asks for more), and they skip the wake-up.
    waiting_room: AtomicBool,
}

struct MemoryStream {
    topic: Topic,
    plain: bool,
    outlet: Arc<Outlet>,
    closed: bool,
}

impl MemoryStream {
    fn deliver(&self, pending: Pending) -> Delivery {
        self.outlet.unsettled.fetch_add(1, Ordering::AcqRel);
        Delivery {
            message: Ok(pending.message.clone()),
            attempt: pending.attempt,
            acker: Box::new(MemoryAcker {
                outlet: self.outlet.clone(),
                pending: Some(pending),
            }),
        }
    }
}

#[async_trait]
impl DeliveryStream for MemoryStream {
    fn try_next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        if self.closed || self.outlet.unsettled.load(Ordering::Acquire) >= self.outlet.prefetch {
            return None;
        }
        let pending = self.outlet.queue.pop()?;
        Some(Ok(self.deliver(pending)))
    }

    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        loop {
            if self.closed {
                return None;
            }
            if self.outlet.unsettled.load(Ordering::Acquire) >= self.outlet.prefetch {
                let settled = self.outlet.settled.notified();
                tokio::pin!(settled);
                settled.as_mut().enable();
                // Sequentially consistent with the acker's count and read of the flag: either
                // it sees the flag and wakes this wait, or this read sees its settlement.
                self.outlet.waiting_room.store(true, Ordering::SeqCst);
                if self.outlet.unsettled.load(Ordering::SeqCst) >= self.outlet.prefetch {
                    settled.await;
                }
                self.outlet.waiting_room.store(false, Ordering::Relaxed);
                continue;
            }
            if let Some(pending) = self.outlet.queue.pop() {
                return Some(Ok(self.deliver(pending)));
            }
            let ready = self.outlet.queue.ready.notified();
            tokio::pin!(ready);
            if ready.as_mut().enable() {
                // A wake-up left from before (for a wait given up): look again without counting
                // as sleeping, or stale counts would pile up and every publish would wake.
                continue;
            }
            if let Some(pending) = self.outlet.queue.pop_or_sleep() {
                return Some(Ok(self.deliver(pending)));
            }
            ready.await;
        }
    }

    async fn close(&mut self) {
        self.leave();
    }
}

impl MemoryStream {
    fn leave(&mut self) {
        if !self.closed {
            self.closed = true;
            if self.plain {
                self.outlet
                    .broker
                    .detach(self.topic.as_str(), &self.outlet.queue);
            }
        }
    }
}

impl Drop for MemoryStream {
    fn drop(&mut self) {
        self.leave();
    }
}

struct MemoryAcker {
    outlet: Arc<Outlet>,
    /// `Some` until settled; an acker dropped while still holding it puts the message back.
    pending: Option<Pending>,
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BrokerError> {
        self.pending = None;
        Ok(())
    }

    fn try_ack(&mut self) -> Option<Result<(), BrokerError>> {
        self.pending = None;
        Some(Ok(()))
    }

    async fn nack(mut self: Box<Self>, nack: Nack) -> Result<(), BrokerError> {
        let Some(mut pending) = self.pending.take() else {
            return Ok(());
        };
        match nack {
            Nack::Terminate => {}
            Nack::Retry(delay) if delay.is_zero() => {
                pending.attempt += 1;
                self.outlet.queue.requeue(pending);
            }
            Nack::Retry(delay) => {
                pending.attempt += 1;
                let queue = self.outlet.queue.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    queue.requeue(pending);
                });
            }
        }
        Ok(())
    }

    async fn dead_letter(mut self: Box<Self>, letter: DeadLetter) -> Result<(), BrokerError> {
        let Some(pending) = &self.pending else {
            return Ok(());
        };
        let dead_letters = letter.destination(NAME)?;
        let mut message = pending.message.clone();
        let envelope = message.envelope_mut();
        for (name, value) in letter.attributes() {
            envelope.set_extension(name, value);
        }
        // On failure `pending` stays, so dropping the acker puts the message back.
        MemoryBroker {
            inner: self.outlet.broker.clone(),
        }
        .publish(&dead_letters, message)
        .await?;
        self.pending = None;
        Ok(())
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        if let Some(mut pending) = self.pending.take() {
            pending.attempt += 1;
            self.outlet.queue.requeue(pending);
        }
        if self.outlet.unsettled.fetch_sub(1, Ordering::SeqCst) == self.outlet.prefetch
            && self.outlet.waiting_room.load(Ordering::SeqCst)
        {
            self.outlet.settled.notify_one();
        }
    }
}

mod requests;
#[cfg(test)]
mod tests;
