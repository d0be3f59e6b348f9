//! One subscription: a consumer on a thread of its own, the deliveries it hands out, and the
//! commits of what they settle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::{mpsc, oneshot};

use super::binding::Record;
use super::offsets::{Mark, Partition, Snapshot};
use super::{Inner, NAME};
use tidings_core::EventId;
use tidings_core::StartFrom;
use tidings_core::adapter::Outage;
use tidings_core::adapter::lock;
use tidings_core::broker::{
    Acker, BrokerError, DeadLetter, Delivery, DeliveryStream, Nack, SubscribeRequest,
};

/// How long one poll waits for a record; it also bounds how late a close or a commit is.
const POLL: Duration = Duration::from_millis(50);

/// Starts a subscription and returns once its consumer has its first assignment.
pub(super) async fn start(
    broker: Arc<Inner>,
    request: SubscribeRequest,
) -> Result<Box<dyn DeliveryStream>, BrokerError> {
    let (deliveries, receiver) = mpsc::unbounded_channel();
    let (ready, assigned) = oneshot::channel();
    let (done, finished) = oneshot::channel();
    let config = &broker.config;
    let group = request.group.clone();
    let group_id = group
        .clone()
        .unwrap_or_else(|| format!("{}.fanout.{}", request.topic, EventId::new()));
    let mut settings = config.client();
    settings
        .set("group.id", &group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", super::millis(config.session_timeout))
        .set(
            "heartbeat.interval.ms",
            super::millis(config.session_timeout / 10),
        )
        .set("fetch.wait.max.ms", "100")
        .set("max.partition.fetch.bytes", config.record_limit())
        .set("queued.min.messages", "1000")
        // Only a fallback: the start of a new group is fixed when it subscribes (see `plan`).
        .set(
            "auto.offset.reset",
            if request.start == StartFrom::Oldest {
                "earliest"
            } else {
                "latest"
            },
        );
    for (key, value) in &config.settings {
        settings.set(key, value);
    }
    let attempts = match &group {
        Some(group) => {
            let mut attempts = config.client();
            attempts
                .set("group.id", format!("{group}.tidings-attempts"))
                .set("enable.auto.commit", "false");
            let consumer: BaseConsumer = attempts
                .create()
                .map_err(|e| broker.error(&e, || "create a consumer".into()))?;
            Some(consumer)
        }
        None => None,
    };
    let shared = Arc::new(Shared {
        broker: broker.clone(),
        topic: request.topic.clone(),
        commits: group.is_some(),
        state: Mutex::new(State::default()),
        stop: AtomicBool::new(false),
        queued: AtomicUsize::new(0),
        high: request.prefetch.max(1).saturating_mul(2).max(256),
        deliveries,
    });
    let context = Context {
        shared: shared.clone(),
        attempts,
        plan: Mutex::new(HashMap::new()),
        ready: Mutex::new(Some(ready)),
    };
    let consumer: BaseConsumer<Context> = settings
        .create_with_context(context)
        .map_err(|e| broker.error(&e, || "create a consumer".into()))?;
    let thread_shared = shared.clone();
    let start = request.start;
    thread::Builder::new()
        .name(format!("kafka {}", request.topic))
        .spawn(move || {
            run(consumer, &thread_shared, start);
            // Nobody waits for the end once the stream is dropped.
            done.send(()).unwrap_or(());
        })
        .map_err(|e| BrokerError::Rejected {
            broker: NAME,
            operation: "start a consumer thread".into(),
            reason: e.to_string(),
        })?;
    let stream = KafkaStream {
        shared: shared.clone(),
        receiver,
        finished: Some(finished),
    };
    // The first assignment waits for the group to form; a rebalance of other members first
    // can take a session timeout.
    let patience = config.timeout + config.session_timeout;
    match tokio::time::timeout(patience, assigned).await {
        Ok(Ok(Ok(()))) => Ok(Box::new(stream)),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) => Err(BrokerError::Closed { broker: NAME }),
        Err(_) => Err(BrokerError::Timeout {
            broker: NAME,
            timeout: patience,
        }),
    }
}

/// What the consumer thread, the rebalance callbacks and the ackers share.
struct Shared {
    broker: Arc<Inner>,
    topic: tidings_core::Topic,
    /// Whether settled offsets are committed (groups) or not (fan-out).
    commits: bool,
    state: Mutex<State>,
    stop: AtomicBool,
    /// Deliveries sent and not taken yet.
    queued: AtomicUsize,
    /// Above this many queued deliveries, fetching pauses.
    high: usize,
    deliveries: mpsc::UnboundedSender<Result<Delivery, BrokerError>>,
}

#[derive(Default)]
struct State {
    partitions: HashMap<i32, Partition>,
    /// Counts assignments and revocations, to tell current deliveries from stale ones.
    epoch: u64,
    paused: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Hands a record out as a delivery.
    fn hand_out(self: &Arc<Self>, message: &BorrowedMessage<'_>) {
        let (partition, offset) = (message.partition(), message.offset());
        let (attempt, epoch) = {
            let mut state = self.state();
            let epoch = state.epoch;
            let Some(tracked) = state.partitions.get_mut(&partition) else {
                return;
            };
            (tracked.hand_out(offset), epoch)
        };
        let record = Record::copy(message.key(), message.headers(), message.payload());
        self.send(record, partition, offset, epoch, attempt);
    }

    fn send(
        self: &Arc<Self>,
        record: Record,
        partition: i32,
        offset: i64,
        epoch: u64,
        attempt: u32,
    ) {
        // Nobody reads any more: the offset stays open, so it is not committed past. (Sending
        // anyway would drop the delivery, whose acker would hand it out again, and so on.)
        if self.deliveries.is_closed() {
            return;
        }
        let message = record.read();
        let acker = KafkaAcker {
            shared: self.clone(),
            partition,
            offset,
            epoch,
            record: Some(record),
        };
        self.queued.fetch_add(1, Ordering::Relaxed);
        let delivery = Delivery {
            message,
            attempt,
            acker: Box::new(acker),
        };
        if self.deliveries.send(Ok(delivery)).is_err() {
            // Not committed: the group reads it again.
            tracing::debug!(
                messaging.system = NAME,
                messaging.destination.name = self.topic.as_str(),
                "a record arrived after its subscription closed; it is read again from its offset",
            );
        }
    }

    /// Runs `f` on the partition of a delivery if it is still the same assignment.
    fn on_partition<T>(
        &self,
        partition: i32,
        epoch: u64,
        f: impl FnOnce(&mut Partition) -> T,
    ) -> Option<T> {
        let mut state = self.state();
        state
            .partitions
            .get_mut(&partition)
            .filter(|p| p.epoch == epoch)
            .map(f)
    }

    /// Commits the partitions whose place changed (groups only).
    fn commit(&self, consumer: &BaseConsumer<Context>, mode: CommitMode) {
        if !self.commits {
            return;
        }
        let changed: Vec<(i32, Snapshot)> = {
            let state = self.state();
            state
                .partitions
                .iter()
                .filter_map(|(&p, part)| part.changed().map(|s| (p, s)))
                .collect()
        };
        if changed.is_empty() {
            return;
        }
        let topic = self.topic.as_str();
        let (mut offsets, mut marks) = (TopicPartitionList::new(), TopicPartitionList::new());
        for (partition, snapshot) in &changed {
            let offset = Offset::Offset(snapshot.offset);
            checked(topic, "list an offset to commit", || {
                offsets.add_partition_offset(topic, *partition, offset)
            });
            let mark = Offset::Offset(snapshot.mark.pack());
            checked(topic, "list a mark to commit", || {
                marks.add_partition_offset(topic, *partition, mark)
            });
        }
        let context = consumer.context();
        // The mark first: a successor that sees the new offset must not see an older mark.
        if let Some(attempts) = &context.attempts {
            // Committed again next time when it fails.
            checked(topic, "commit the attempt marks", || {
                attempts.commit(&marks, mode)
            });
            attempts.poll(Duration::ZERO);
        }
        let committed = consumer.commit(&offsets, mode);
        if let Err(error) = &committed {
            // Committed again next time; until then a restart reads those records again.
            tracing::warn!(
                messaging.system = NAME,
                messaging.destination.name = topic,
                error = %error,
                "commit failed; it is tried again, and a restart meanwhile handles those records again",
            );
        }
        if committed.is_ok() {
            let mut state = self.state();
            for (partition, snapshot) in changed {
                if let Some(part) = state.partitions.get_mut(&partition) {
                    part.committed(snapshot);
                }
            }
        }
    }
}

/// The consumer's callbacks: rebalances and commit results.
struct Context {
    shared: Arc<Shared>,
    /// The attempts group of a group subscription (see the module docs).
    attempts: Option<BaseConsumer>,
    /// Where each partition starts for a new group: its watermark when subscribing.
    plan: Mutex<HashMap<i32, i64>>,
    /// Told once the first assignment is in place.
    ready: Mutex<Option<oneshot::Sender<Result<(), BrokerError>>>>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer),
            // librdkafka asks for the assignment to be dropped on a rebalance error.
            _ => {
                tracing::warn!(
                    messaging.system = NAME,
                    messaging.destination.name = self.shared.topic.as_str(),
                    error = ?err,
                    "rebalance failed; the assignment is dropped",
                );
                self.forget();
                checked(self.shared.topic.as_str(), "drop the assignment", || {
                    consumer.unassign()
                });
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let Err(error) = result else {
            return;
        };
        tracing::warn!(
            messaging.system = NAME,
            messaging.destination.name = self.shared.topic.as_str(),
            error = %error,
            "commit failed; it is tried again",
        );
        // Commit again next time, whether or not anything changed.
        let mut state = self.shared.state();
        for element in offsets.elements() {
            if let Some(part) = state.partitions.get_mut(&element.partition()) {
                part.forget_commit();
            }
        }
    }
}

impl Context {
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let shared = &self.shared;
        let timeout = shared.broker.config.timeout;
        let topic = shared.topic.as_str();
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        let committed = if shared.commits {
            answered(
                topic,
                "read the group's place (librdkafka reads it again itself)",
                || consumer.committed_offsets(tpl.clone(), timeout),
            )
        } else {
            None
        };
        let marks = self.attempts.as_ref().and_then(|attempts| {
            answered(
                topic,
                "read the attempts kept for the group (deliveries count from 1 again)",
                || attempts.committed_offsets(tpl.clone(), timeout),
            )
        });
        let known = committed.is_some() || !shared.commits;
        let plan = lock(&self.plan).clone();
        let mut fresh = TopicPartitionList::new();
        let mut assigned = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let offset_of = |list: &Option<TopicPartitionList>| match list
                .as_ref()?
                .find_partition(topic, partition)?
                .offset()
            {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            };
            let start = match offset_of(&committed) {
                Some(offset) => Some(offset),
                None if known => {
                    let start = plan.get(&partition).copied();
                    if let Some(start) = start {
                        checked(topic, "list a new group's start", || {
                            fresh.add_partition_offset(topic, partition, Offset::Offset(start))
                        });
                    }
                    start
                }
                // The group's place could not be read: librdkafka reads it again itself.
                None => None,
            };
            let at = match start {
                Some(offset) => Offset::Offset(offset),
                None if known => Offset::Beginning, // created after subscribing: all of it is new
                None => Offset::Stored,
            };
            checked(topic, "set where a partition starts", || {
                tpl.set_partition_offset(topic, partition, at)
            });
            assigned.push((partition, start, offset_of(&marks).map(Mark::unpack)));
        }
        let paused = {
            let mut state = shared.state();
            state.epoch += 1;
            let epoch = state.epoch;
            for (partition, start, mark) in assigned {
                state
                    .partitions
                    .insert(partition, Partition::new(epoch, start, mark));
            }
            state.paused
        };
        // A new group's place is fixed now, so members joining later and restarts share it.
        if shared.commits && fresh.count() > 0 {
            checked(topic, "commit a new group's start", || {
                consumer.commit(&fresh, CommitMode::Sync)
            });
        }
        checked(topic, "assign partitions", || consumer.assign(tpl));
        // Said either way: librdkafka keeps a partition's pause across a rebalance, and fetching
        // may have resumed while the partition was not assigned.
        checked(topic, "pause or resume fetching", || {
            if paused {
                consumer.pause(tpl)
            } else {
                consumer.resume(tpl)
            }
        });
        if let Some(ready) = lock(&self.ready).take() {
            // The subscriber stopped waiting: nobody to tell.
            ready.send(Ok(())).unwrap_or(());
        }
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>) {
        self.shared.commit(consumer, CommitMode::Sync);
        self.forget();
        checked(self.shared.topic.as_str(), "drop the assignment", || {
            consumer.unassign()
        });
    }

    /// Drops the partitions: deliveries still open on them are settled without effect.
    fn forget(&self) {
        let mut state = self.shared.state();
        state.partitions.clear();
        state.epoch += 1;
    }

    /// Fails the subscription before its first assignment.
    fn fail(&self, error: BrokerError) {
        if let Some(ready) = lock(&self.ready).take() {
            // The subscriber stopped waiting: nobody to tell.
            ready.send(Err(error)).unwrap_or(());
        }
    }
}

/// The consumer thread: plans where a new group starts, subscribes, then polls until stopped.
fn run(consumer: BaseConsumer<Context>, shared: &Arc<Shared>, start: StartFrom) {
    let context = consumer.context().clone();
    let topic = shared.topic.as_str();
    let timeout = shared.broker.config.timeout;
    let plan = plan(&consumer, topic, start, timeout);
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            return context.fail(
                shared
                    .broker
                    .error(&e, || format!("read the partitions of {topic}")),
            );
        }
    };
    *lock(&context.plan) = plan;
    if let Err(e) = consumer.subscribe(&[topic]) {
        return context.fail(shared.broker.error(&e, || format!("subscribe to {topic}")));
    }
    let interval = shared.broker.config.commit_interval;
    let mut last_commit = Instant::now();
    // Whether the last poll failed: a message after it says consuming is back.
    let mut outage = Outage::default();
    while !shared.stop.load(Ordering::Relaxed) {
        flow(&consumer, shared);
        match consumer.poll(POLL.min(interval)) {
            Some(Ok(message)) => {
                if outage.recovered() {
                    tracing::info!(
                        messaging.system = NAME,
                        messaging.destination.name = topic,
                        "consuming again",
                    );
                }
                shared.hand_out(&message);
            }
            // Fatal: the client cannot go on (librdkafka retries everything else itself).
            Some(Err(e))
                if e.rdkafka_error_code() == Some(rdkafka::error::RDKafkaErrorCode::Fatal) =>
            {
                // The subscriber reports it as the end of its subscription.
                let error = shared.broker.error(&e, || format!("consume {topic}"));
                if shared.deliveries.send(Err(error)).is_err() {
                    tracing::debug!(
                        messaging.system = NAME,
                        messaging.destination.name = topic,
                        error = %e,
                        "the client failed for good after its subscription closed",
                    );
                }
                break;
            }
            // librdkafka retries these itself (a broker down, a connection lost...): told as
            // an outage begins.
            Some(Err(e)) if outage.failed() => {
                tracing::warn!(
                    messaging.system = NAME,
                    messaging.destination.name = topic,
                    error = %e,
                    "cannot consume; the client tries again by itself",
                );
            }
            Some(Err(_)) | None => {}
        }
        if last_commit.elapsed() >= interval {
            shared.commit(&consumer, CommitMode::Async);
            last_commit = Instant::now();
        }
    }
    shared.commit(&consumer, CommitMode::Sync);
    // Dropping the consumer leaves the group; its last revocation commits once more.
    drop(consumer);
}

/// Where each partition of `topic` starts for a new group: its end now (`New`) or its start.
fn plan(
    consumer: &BaseConsumer<Context>,
    topic: &str,
    start: StartFrom,
    timeout: Duration,
) -> KafkaResult<HashMap<i32, i64>> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut plan = HashMap::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(topic, partition.id(), timeout)?;
        plan.insert(
            partition.id(),
            if start == StartFrom::Oldest {
                low
            } else {
                high
            },
        );
    }
    Ok(plan)
}

/// Pauses fetching while too many deliveries wait unread, and resumes once half are taken.
fn flow(consumer: &BaseConsumer<Context>, shared: &Shared) {
    let queued = shared.queued.load(Ordering::Relaxed);
    let paused = shared.state().paused;
    let change = if paused {
        queued <= shared.high / 2
    } else {
        queued >= shared.high
    };
    if !change {
        return;
    }
    // Asked without the state locked: librdkafka answers from its own thread. Only this thread
    // changes `paused`, so it is still what was read above.
    let assignment = match consumer.assignment() {
        Ok(assignment) => assignment,
        Err(error) => {
            // Tried again on the next poll, so not worth more than a debug event each time.
            tracing::debug!(
                messaging.system = NAME,
                messaging.destination.name = shared.topic.as_str(),
                error = %error,
                "could not read the assignment to pause or resume fetching; trying on the next poll",
            );
            return;
        }
    };
    let paused = !paused;
    shared.state().paused = paused;
    // Paused partitions restart from the last record handed out: nothing is skipped.
    checked(shared.topic.as_str(), "pause or resume fetching", || {
        if paused {
            consumer.pause(&assignment)
        } else {
            consumer.resume(&assignment)
        }
    });
}

/// The deliveries of one subscription.
struct KafkaStream {
    shared: Arc<Shared>,
    receiver: mpsc::UnboundedReceiver<Result<Delivery, BrokerError>>,
    finished: Option<oneshot::Receiver<()>>,
}

impl KafkaStream {
    fn taken(
        &self,
        item: Option<Result<Delivery, BrokerError>>,
    ) -> Option<Result<Delivery, BrokerError>> {
        if matches!(item, Some(Ok(_))) {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        }
        item
    }
}

#[async_trait]
impl DeliveryStream for KafkaStream {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        // After `close`, what was sent already is drained, then `None`.
        let item = self.receiver.recv().await;
        self.taken(item)
    }

    fn try_next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        let item = self.receiver.try_recv().ok();
        self.taken(item)
    }

    async fn close(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(finished) = self.finished.take() {
            // The thread commits and leaves the group before it ends; an error means it ended
            // without saying so, which is as good.
            finished.await.unwrap_or(());
        }
        self.receiver.close();
    }
}

impl Drop for KafkaStream {
    fn drop(&mut self) {
        // The thread notices, commits and leaves the group on its own.
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Settles one delivery. Dropped unsettled, it hands the record out again at once.
struct KafkaAcker {
    shared: Arc<Shared>,
    partition: i32,
    offset: i64,
    epoch: u64,
    /// `None` once settled.
    record: Option<Record>,
}

impl KafkaAcker {
    fn settle(&mut self) {
        self.record = None;
        self.shared
            .on_partition(self.partition, self.epoch, |p| p.settle(self.offset));
    }

    /// Hands the record out again after `delay`, as a later attempt.
    fn again(&mut self, delay: Duration) {
        let Some(record) = self.record.take() else {
            return;
        };
        let Some(attempt) = self
            .shared
            .on_partition(self.partition, self.epoch, |p| p.again(self.offset))
            .flatten()
        else {
            // The partition was revoked: its new holder delivers the record again.
            return;
        };
        let (shared, partition, offset, epoch) =
            (self.shared.clone(), self.partition, self.offset, self.epoch);
        if delay.is_zero() {
            return shared.send(record, partition, offset, epoch, attempt);
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep(delay).await;
                    // Revoked meanwhile: its new holder delivers it.
                    if shared.on_partition(partition, epoch, |_| ()).is_some() {
                        shared.send(record, partition, offset, epoch, attempt);
                    }
                });
            }
            Err(_) => shared.send(record, partition, offset, epoch, attempt),
        }
    }
}

#[async_trait]
impl Acker for KafkaAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BrokerError> {
        self.settle();
        Ok(())
    }

    fn try_ack(&mut self) -> Option<Result<(), BrokerError>> {
        self.settle();
        Some(Ok(()))
    }

    async fn nack(mut self: Box<Self>, nack: Nack) -> Result<(), BrokerError> {
        match nack {
            Nack::Retry(delay) => self.again(delay),
            Nack::Terminate => self.settle(),
        }
        Ok(())
    }

    async fn dead_letter(mut self: Box<Self>, letter: DeadLetter) -> Result<(), BrokerError> {
        let Some(record) = &self.record else {
            return Ok(());
        };
        let topic = letter.destination(NAME)?;
        let broker = &self.shared.broker;
        broker.ensure_topic(&topic).await?;
        let headers = record.dead_letter_headers(&letter);
        broker
            .send(&topic, record.key.as_deref(), headers, &record.value)
            .await?;
        self.settle();
        Ok(())
    }
}

impl Drop for KafkaAcker {
    fn drop(&mut self) {
        self.again(Duration::ZERO);
    }
}

/// Runs a client call whose failure nothing can return, and reports it.
fn checked(topic: &str, what: &'static str, call: impl FnOnce() -> KafkaResult<()>) {
    answered(topic, what, call);
}

/// What `call` answers, or `None` with a warning that names `what` it could not do.
fn answered<T>(
    topic: &str,
    what: &'static str,
    call: impl FnOnce() -> KafkaResult<T>,
) -> Option<T> {
    match call() {
        Ok(answer) => Some(answer),
        Err(error) => {
            tracing::warn!(
                messaging.system = NAME,
                messaging.destination.name = topic,
                error = %error,
                "could not {what}",
            );
            None
        }
    }
}
