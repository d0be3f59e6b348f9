//! One subscription to a stream: a reader task that claims abandoned entries and reads new
//! ones, and the ackers that settle what it hands out.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::streams::StreamPendingCountReply;
use redis::{RedisError, RetryMethod, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::entries;
use super::fields::{self, Fields};
use super::{Inner, NAME, connection, xadd};
use tidings_core::EventId;
use tidings_core::adapter::Backoff;
use tidings_core::adapter::Outage;
use tidings_core::adapter::lock;
use tidings_core::broker::{
    Acker, BrokerError, DeadLetter, Delivery, DeliveryStream, Nack, StartFrom, SubscribeRequest,
};

/// The longest a read blocks, so the reader wakes up to claim abandoned entries.
const MAX_BLOCK: Duration = Duration::from_secs(2);

/// What the reader queues for the stream: a delivery with the entry it carries, or the
/// failure that ended the reader.
enum Queued {
    Entry {
        id: String,
        attempt: u32,
        delivery: Box<Delivery>,
    },
    Failed(BrokerError),
}

/// Creates the group (or finds the fan-out start), then starts the reader.
pub(super) async fn start(
    inner: Arc<Inner>,
    request: SubscribeRequest,
) -> Result<Box<dyn DeliveryStream>, BrokerError> {
    let key = request.topic.to_string();
    let block = match &request.group {
        Some(_) => claim_every(inner.config.claim_idle).min(MAX_BLOCK),
        None => MAX_BLOCK,
    };
    let mut conn = connection(&inner.client, &inner.config, block + inner.config.timeout)
        .await
        .map_err(|e| super::unreachable(&inner.config, &e))?;
    let (mode, cursor) = match request.group {
        Some(group) => {
            let from = match request.start {
                StartFrom::New => "$",
                StartFrom::Oldest => "0",
            };
            create_group(&mut conn, &key, &group, from)
                .await
                .map_err(|e| inner.error(&e, || format!("create group {group} on {key}")))?;
            (
                Mode::Group {
                    group,
                    consumer: EventId::new().into(),
                },
                String::new(),
            )
        }
        None => {
            let cursor = match request.start {
                StartFrom::Oldest => "0-0".to_owned(),
                StartFrom::New => last_id(&mut conn, &key)
                    .await
                    .map_err(|e| inner.error(&e, || format!("read the end of {key}")))?,
            };
            (Mode::Fanout, cursor)
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        inner,
        key,
        mode,
        held: Mutex::default(),
        in_hand: Mutex::default(),
        deliveries: tx,
    });
    if let Mode::Group { .. } = shared.mode {
        let every = claim_every(shared.inner.config.claim_idle);
        tokio::spawn(keep_in_hand(Arc::downgrade(&shared), every));
    }
    let (stop, stopped) = oneshot::channel();
    let reader = Reader {
        shared: shared.clone(),
        conn,
        permits: Arc::new(Semaphore::new(request.prefetch.max(1))),
        cursor,
        block,
    };
    let task = tokio::spawn(reader.run(stopped));
    Ok(Box::new(RedisStream {
        shared,
        rx,
        stop: Some(stop),
        task: Some(task),
    }))
}

/// How often a group member looks for entries to take over.
fn claim_every(claim_idle: Duration) -> Duration {
    (claim_idle / 2).clamp(Duration::from_millis(10), Duration::from_secs(5))
}

async fn create_group(
    conn: &mut ConnectionManager,
    key: &str,
    group: &str,
    from: &str,
) -> Result<(), RedisError> {
    let created: Result<(), RedisError> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg(from)
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        // The group exists: it keeps its place, whatever this member asked for.
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// The id of the stream's last entry, or `0-0` when it has none.
pub(super) async fn last_id(conn: &mut ConnectionManager, key: &str) -> Result<String, RedisError> {
    let last: Vec<Vec<Value>> = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(match last.first().and_then(|entry| entry.first()) {
        Some(id) => redis::from_redis_value_ref::<String>(id)?,
        None => "0-0".to_owned(),
    })
}

enum Mode {
    /// A member of a consumer group, under a consumer name of its own.
    Group { group: String, consumer: String },
    /// A plain subscriber reading from an id it keeps.
    Fanout,
}

/// What the reader, the stream and the ackers of one subscription share.
struct Shared {
    inner: Arc<Inner>,
    key: String,
    mode: Mode,
    /// Entries this subscription holds (handed out, queued, or waiting to be retried), which
    /// its own claiming must not take over.
    held: Mutex<HashSet<String>>,
    /// Entries handed out and not yet settled nor waiting to be retried: kept from looking
    /// idle (see `keep_in_hand`), so other members do not take over what a handler still works
    /// on.
    in_hand: Mutex<HashSet<String>>,
    deliveries: mpsc::UnboundedSender<Queued>,
}

impl Shared {
    /// Hands an entry out as a delivery holding one prefetch permit.
    fn deliver(self: &Arc<Self>, id: String, fields: Fields, attempt: u32, permit: Permit) {
        let (hold, in_hand) = match self.mode {
            Mode::Group { .. } => (
                Some(Hold::new(self, &id, Mark::Held)),
                Some(Hold::new(self, &id, Mark::InHand)),
            ),
            Mode::Fanout => (None, None),
        };
        let message = fields::decode(&fields);
        let acker = RedisAcker {
            shared: self.clone(),
            id: id.clone(),
            fields,
            attempt,
            permit,
            hold,
            in_hand,
        };
        let delivery = Delivery {
            message,
            attempt,
            acker: Box::new(acker),
        };
        let queued = Queued::Entry {
            id,
            attempt,
            delivery: Box::new(delivery),
        };
        if self.deliveries.send(queued).is_err() {
            // The entry stays pending in Redis, where the group claims it back.
            tracing::debug!(
                messaging.system = crate::NAME,
                redis.stream = self.key.as_str(),
                "an entry was read after its subscription closed; it stays pending in the stream",
            );
        }
    }

    fn error(&self, e: &RedisError, operation: &str) -> BrokerError {
        self.inner
            .error(e, || format!("{operation} on {}", self.key))
    }
}

/// One prefetch slot, given back when the delivery is settled or dropped.
type Permit = OwnedSemaphorePermit;

/// Which of a subscription's sets of entries a [`Hold`] keeps an entry in.
#[derive(Clone, Copy)]
enum Mark {
    Held,
    InHand,
}

/// Keeps an entry in one of the subscription's sets until dropped.
struct Hold {
    shared: Arc<Shared>,
    id: String,
    mark: Mark,
}

impl Hold {
    fn new(shared: &Arc<Shared>, id: &str, mark: Mark) -> Hold {
        let hold = Hold {
            shared: shared.clone(),
            id: id.to_owned(),
            mark,
        };
        lock(hold.set()).insert(hold.id.clone());
        hold
    }

    fn set(&self) -> &Mutex<HashSet<String>> {
        match self.mark {
            Mark::Held => &self.shared.held,
            Mark::InHand => &self.shared.in_hand,
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        lock(self.set()).remove(&self.id);
    }
}

/// Every `every` (under the claim idle time), resets the idle time of the entries in this
/// member's handlers with `XCLAIM ... JUSTID` to itself, which counts no delivery: an entry
/// looks abandoned to the other members only once this member stopped, not while a handler
/// runs long. Ends with the subscription and its deliveries.
async fn keep_in_hand(shared: Weak<Shared>, every: Duration) {
    let mut outage = Outage::default();
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Mode::Group { group, consumer } = &shared.mode else {
            return;
        };
        let ids: Vec<String> = lock(&shared.in_hand).iter().cloned().collect();
        if ids.is_empty() {
            continue;
        }
        let mut claim = redis::cmd("XCLAIM");
        claim.arg(&shared.key).arg(group).arg(consumer).arg(0);
        for id in &ids {
            claim.arg(id);
        }
        claim.arg("JUSTID");
        let mut conn = shared.inner.commands.clone();
        let renewed: Result<Value, _> = claim.query_async(&mut conn).await;
        match renewed {
            Ok(_) if outage.recovered() => tracing::debug!(
                messaging.system = crate::NAME,
                redis.stream = shared.key.as_str(),
                messaging.consumer.group.name = group.as_str(),
                "renewing the claim on entries in the handlers again",
            ),
            Ok(_) => {}
            // Not fatal: the entries may be taken over, as when this member is gone.
            Err(error) if outage.failed() => tracing::warn!(
                messaging.system = crate::NAME,
                redis.stream = shared.key.as_str(),
                messaging.consumer.group.name = group.as_str(),
                error = %error,
                entries = ids.len(),
                "cannot renew the claim on entries in the handlers; another member may take them \
                 over and handle them again",
            ),
            Err(_) => {}
        }
    }
}

struct Reader {
    shared: Arc<Shared>,
    conn: ConnectionManager,
    permits: Arc<Semaphore>,
    /// Fan-out: the id of the last entry read.
    cursor: String,
    block: Duration,
}

impl Reader {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let mut backoff = Backoff::new();
        let mut next_claim = Instant::now();
        // Whether the last round failed: a round that succeeds after it says reading is back.
        let mut outage = Outage::default();
        loop {
            let first = tokio::select! {
                _ = &mut stopped => return,
                permit = self.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let mut permits = vec![first];
            while let Ok(more) = self.permits.clone().try_acquire_owned() {
                permits.push(more);
            }
            let round = tokio::select! {
                _ = &mut stopped => return,
                round = self.round(permits, &mut next_claim) => round,
            };
            let Err(e) = round else {
                if outage.recovered() {
                    tracing::info!(
                        messaging.system = crate::NAME,
                        redis.stream = self.shared.key.as_str(),
                        "reading the stream again",
                    );
                }
                backoff.reset();
                continue;
            };
            if outage.failed() {
                tracing::warn!(
                    messaging.system = crate::NAME,
                    redis.stream = self.shared.key.as_str(),
                    error = %e,
                    "cannot read the stream; trying again after a backoff",
                );
            }
            if e.code() == Some("NOGROUP") {
                // Redis came back without the stream or group (no persistence): everything
                // in the new stream is unread, so the group starts from its beginning.
                if let Mode::Group { group, .. } = &self.shared.mode {
                    match create_group(&mut self.conn, &self.shared.key, group, "0").await {
                        Ok(()) => continue,
                        Err(error) => tracing::warn!(
                            messaging.system = crate::NAME,
                            redis.stream = self.shared.key.as_str(),
                            messaging.consumer.group.name = group.as_str(),
                            error = %error,
                            "cannot make the group again; trying again after a backoff",
                        ),
                    }
                }
            } else if matches!(e.retry_method(), RetryMethod::NoRetry) {
                // The subscriber reports it as the end of its subscription.
                let failed = Queued::Failed(self.shared.error(&e, "read"));
                if self.shared.deliveries.send(failed).is_err() {
                    tracing::debug!(
                        messaging.system = crate::NAME,
                        error = %e,
                        "reading failed for good after the subscription closed",
                    );
                }
                return;
            }
            tokio::select! {
                _ = &mut stopped => return,
                _ = backoff.wait() => {}
            }
        }
    }

    /// Claims abandoned entries when it is time, then reads new ones, one permit per entry.
    async fn round(
        &mut self,
        mut permits: Vec<Permit>,
        next_claim: &mut Instant,
    ) -> Result<(), RedisError> {
        if let Mode::Group { group, consumer } = &self.shared.mode
            && Instant::now() >= *next_claim
        {
            let (group, consumer) = (group.clone(), consumer.clone());
            self.claim_abandoned(&group, &consumer, &mut permits)
                .await?;
            *next_claim = Instant::now() + claim_every(self.shared.inner.config.claim_idle);
        }
        if permits.is_empty() {
            return Ok(());
        }
        let block = u64::try_from(self.block.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut read = match &self.shared.mode {
            Mode::Group { group, consumer } => {
                let mut cmd = redis::cmd("XREADGROUP");
                cmd.arg("GROUP").arg(group).arg(consumer);
                cmd
            }
            Mode::Fanout => redis::cmd("XREAD"),
        };
        read.arg("COUNT").arg(permits.len()).arg("BLOCK").arg(block);
        read.arg("STREAMS").arg(&self.shared.key);
        match &self.shared.mode {
            Mode::Group { .. } => read.arg(">"),
            Mode::Fanout => read.arg(&self.cursor),
        };
        let reply: Value = read.query_async(&mut self.conn).await?;
        for entry in entries::read_reply(reply)? {
            let Some(permit) = permits.pop() else { break };
            if let Mode::Fanout = self.shared.mode {
                self.cursor.clone_from(&entry.id);
            }
            self.shared.deliver(entry.id, entry.fields, 1, permit);
        }
        Ok(())
    }

    /// Takes over entries pending longer than the claim idle time with any member, except
    /// those this subscription holds itself; the attempt is their delivery count plus one.
    async fn claim_abandoned(
        &mut self,
        group: &str,
        consumer: &str,
        permits: &mut Vec<Permit>,
    ) -> Result<(), RedisError> {
        let idle = millis(self.shared.inner.config.claim_idle);
        let held = lock(&self.shared.held).clone();
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.shared.key)
            .arg(group)
            .arg("IDLE")
            .arg(idle)
            .arg("-")
            .arg("+")
            .arg(permits.len() + held.len())
            .query_async(&mut self.conn)
            .await?;
        let candidates: Vec<_> = pending
            .ids
            .into_iter()
            .filter(|p| !held.contains(&p.id))
            .take(permits.len())
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let mut claim = redis::cmd("XCLAIM");
        claim
            .arg(&self.shared.key)
            .arg(group)
            .arg(consumer)
            .arg(idle);
        for p in &candidates {
            claim.arg(&p.id);
        }
        // Entries trimmed away meanwhile are dropped from the pending list by Redis and do
        // not come back here.
        let claimed: Value = claim.query_async(&mut self.conn).await?;
        for entry in entries::claim_reply(claimed)? {
            let Some(seen) = candidates.iter().find(|p| p.id == entry.id) else {
                continue;
            };
            let Some(permit) = permits.pop() else { break };
            let attempt = u32::try_from(seen.times_delivered)
                .unwrap_or(u32::MAX)
                .saturating_add(1);
            self.shared.deliver(entry.id, entry.fields, attempt, permit);
        }
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

struct RedisStream {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Queued>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

#[async_trait]
impl DeliveryStream for RedisStream {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        self.stop.as_ref()?;
        match self.rx.recv().await? {
            Queued::Entry { delivery, .. } => Some(Ok(*delivery)),
            Queued::Failed(e) => Some(Err(e)),
        }
    }

    async fn close(&mut self) {
        let Some(stop) = self.stop.take() else { return };
        // The reader may have ended already, on an error it reported.
        stop.send(()).ok();
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::error!(
                messaging.system = crate::NAME,
                error = %error,
                "the stream reader failed",
            );
        }
        self.rx.close();
        let mut unread = Vec::new();
        while let Ok(queued) = self.rx.try_recv() {
            if let Queued::Entry { id, attempt, .. } = queued {
                unread.push((id, attempt));
            }
        }
        if let Mode::Group { group, consumer } = &self.shared.mode {
            give_back(&self.shared, group, consumer, &unread).await;
            forget_consumer(&self.shared, group, consumer).await;
        }
    }
}

/// Entries read into the group but never handed out: marked idle for as long as the claim
/// idle time, with their delivery count put back, so the next member claims them at once
/// instead of waiting for this consumer to look dead.
async fn give_back(shared: &Shared, group: &str, consumer: &str, unread: &[(String, u32)]) {
    if unread.is_empty() {
        return;
    }
    let idle = millis(shared.inner.config.claim_idle);
    let mut pipe = redis::pipe();
    for (id, attempt) in unread {
        pipe.cmd("XCLAIM")
            .arg(&shared.key)
            .arg(group)
            .arg(consumer)
            .arg(0)
            .arg(id)
            .arg("IDLE")
            .arg(idle)
            .arg("RETRYCOUNT")
            .arg(attempt.saturating_sub(1))
            .arg("JUSTID")
            .ignore();
    }
    let mut conn = shared.inner.commands.clone();
    let given: Result<(), _> = pipe.query_async(&mut conn).await;
    if let Err(error) = given {
        // Nothing is lost: they are claimed all the same, once idle for the claim idle time.
        tracing::warn!(
            messaging.system = crate::NAME,
            redis.stream = shared.key.as_str(),
            messaging.consumer.group.name = group,
            error = %error,
            entries = unread.len(),
            "cannot give back entries read but not handled; another member takes them once they \
             are idle for the claim idle time",
        );
    }
}

/// Removes this subscription's consumer from the group when it holds nothing, so closed
/// subscriptions do not pile up in `XINFO CONSUMERS`. A consumer that still has pending
/// entries is kept: removing it would drop them.
async fn forget_consumer(shared: &Shared, group: &str, consumer: &str) {
    let mut conn = shared.inner.commands.clone();
    let pending: Result<StreamPendingCountReply, _> = redis::cmd("XPENDING")
        .arg(&shared.key)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(1)
        .arg(consumer)
        .query_async(&mut conn)
        .await;
    let removed = match pending {
        Ok(pending) if pending.ids.is_empty() => redis::cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(&shared.key)
            .arg(group)
            .arg(consumer)
            .query_async::<i64>(&mut conn)
            .await
            .map(drop),
        Ok(_) => Ok(()),
        Err(error) => Err(error),
    };
    if let Err(error) = removed {
        // Only tidiness: the consumer stays listed in `XINFO CONSUMERS`, holding nothing.
        tracing::debug!(
            messaging.system = crate::NAME,
            redis.stream = shared.key.as_str(),
            messaging.consumer.group.name = group,
            redis.consumer = consumer,
            error = %error,
            "cannot remove the closed subscription's consumer from the group",
        );
    }
}

struct RedisAcker {
    shared: Arc<Shared>,
    id: String,
    fields: Fields,
    attempt: u32,
    permit: Permit,
    hold: Option<Hold>,
    /// Dropped once the entry is settled or waits for its retry.
    in_hand: Option<Hold>,
}

impl RedisAcker {
    async fn xack(&self) -> Result<(), BrokerError> {
        let Mode::Group { group, .. } = &self.shared.mode else {
            return Ok(());
        };
        let mut conn = self.shared.inner.commands.clone();
        redis::cmd("XACK")
            .arg(&self.shared.key)
            .arg(group)
            .arg(&self.id)
            .query_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| self.shared.error(&e, "acknowledge"))
    }

    /// After `delay`, takes the entry back and hands it out again. In a group it is claimed
    /// with a minimum idle time of `delay`: an entry another member took over meanwhile is
    /// not delivered twice, and one that was acked or trimmed is gone.
    async fn retry(self, delay: Duration) {
        let RedisAcker {
            shared,
            id,
            fields,
            attempt,
            permit,
            hold,
            in_hand,
        } = self;
        // Waiting for its retry, it has to look idle for the delay to be claimed back below.
        drop(in_hand);
        tokio::time::sleep(delay).await;
        if shared.deliveries.is_closed() {
            return;
        }
        let fields = match &shared.mode {
            Mode::Fanout => fields,
            Mode::Group { group, consumer } => {
                let mut conn = shared.inner.commands.clone();
                let claimed: Result<Value, _> = redis::cmd("XCLAIM")
                    .arg(&shared.key)
                    .arg(group)
                    .arg(consumer)
                    .arg(millis(delay))
                    .arg(&id)
                    .query_async(&mut conn)
                    .await;
                match claimed.and_then(entries::claim_reply) {
                    Ok(entries) => match entries.into_iter().next() {
                        Some(entry) => entry.fields,
                        // Claimed meanwhile by another member, or deleted.
                        None => return,
                    },
                    Err(error) => {
                        // Still pending: claimed once idle long enough, by this member or another.
                        tracing::warn!(
                            messaging.system = crate::NAME,
                            messaging.message.id = %id,
                            error = %error,
                            "could not take back an entry after its retry delay; it is claimed once idle",
                        );
                        return;
                    }
                }
            }
        };
        drop(hold);
        shared.deliver(id, fields, attempt.saturating_add(1), permit);
    }
}

#[async_trait]
impl Acker for RedisAcker {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError> {
        self.xack().await
    }

    async fn nack(self: Box<Self>, nack: Nack) -> Result<(), BrokerError> {
        match nack {
            Nack::Terminate => self.xack().await,
            Nack::Retry(delay) => {
                tokio::spawn(self.retry(delay));
                Ok(())
            }
        }
    }

    async fn dead_letter(self: Box<Self>, letter: DeadLetter) -> Result<(), BrokerError> {
        let target = letter.destination(NAME)?;
        let fields = fields::dead_letter(&self.fields, &letter);
        let add = xadd(target.as_str(), self.shared.inner.config.max_len, &fields);
        let mut conn = self.shared.inner.commands.clone();
        let done = match &self.shared.mode {
            Mode::Fanout => add.query_async::<String>(&mut conn).await.map(drop),
            Mode::Group { group, .. } => {
                let mut ack = redis::cmd("XACK");
                ack.arg(&self.shared.key).arg(group).arg(&self.id);
                redis::pipe()
                    .atomic()
                    .add_command(add)
                    .add_command(ack)
                    .query_async::<(String, i64)>(&mut conn)
                    .await
                    .map(drop)
            }
        };
        done.map_err(|e| {
            self.shared
                .error(&e, &format!("dead-letter {} to {target}", self.id))
        })
    }
}
