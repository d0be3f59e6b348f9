//! Reading what a topic keeps outside any subscription (a tool listing or replaying dead
//! letters). A record cannot be deleted from a Kafka log one at a time, so what was removed is
//! kept as the committed offsets of a consumer group of the topic's own,
//! `<topic>.tidings-removed`, which no subscriber joins: per partition, the offset before
//! which every record was removed, and in the commit's metadata the offsets removed beyond it
//! (`removed:12,15`). A read assigns the partitions itself (it joins no group and moves no
//! subscriber's place), reads from that offset up to the end the partition had when the read
//! began, and skips what was removed; an ack commits the record as removed before it returns.
//!
//! Kafka bounds a commit's metadata (`offset.metadata.max.bytes`, 4 KiB by default): records
//! removed out of order, far ahead of the oldest one kept, are limited by it; removing them in
//! order (a replay of them all) keeps it empty.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::TopicPartitionList;

use super::binding::Record;
use super::{Inner, NAME};
use tidings_core::adapter::lock;
use tidings_core::broker::{Acker, BrokerError, DeadLetter, Delivery, DeliveryStream, Nack};
use tidings_core::topic::Topic;

/// The prefix of the offsets listed in a commit's metadata.
const REMOVED: &str = "removed:";

/// What was removed from one partition, and what this read found there.
struct Partition {
    /// Every offset read (removed before or not), in order.
    read: Vec<i64>,
    /// Offsets removed at or beyond the committed offset.
    removed: BTreeSet<i64>,
    /// The end of the partition when the read began.
    high: i64,
}

impl Partition {
    /// The offset to commit: the first record read that is not removed, or the end.
    fn committed(&self) -> i64 {
        self.read
            .iter()
            .copied()
            .find(|offset| !self.removed.contains(offset))
            .unwrap_or(self.high)
    }

    /// The removed offsets beyond `committed`, as the commit's metadata.
    fn metadata(&self, committed: i64) -> String {
        let beyond: Vec<String> = self
            .removed
            .range(committed..)
            .map(i64::to_string)
            .collect();
        if beyond.is_empty() {
            String::new()
        } else {
            format!("{REMOVED}{}", beyond.join(","))
        }
    }
}

/// The removed offsets a commit's metadata lists.
fn parse_removed(metadata: &str) -> BTreeSet<i64> {
    metadata
        .strip_prefix(REMOVED)
        .map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

/// What the reader and the ackers of one read share.
struct Shared {
    inner: Arc<Inner>,
    topic: Topic,
    consumer: BaseConsumer,
    partitions: Mutex<BTreeMap<i32, Partition>>,
}

pub(super) async fn browse(
    inner: Arc<Inner>,
    topic: &Topic,
) -> Result<Box<dyn DeliveryStream>, BrokerError> {
    inner.ensure_topic(topic).await?;
    let mut settings = inner.config.client();
    settings
        .set("group.id", format!("{topic}.tidings-removed"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("max.partition.fetch.bytes", inner.config.record_limit());
    let consumer: BaseConsumer = settings
        .create()
        .map_err(|e| inner.error(&e, || "create a consumer".into()))?;
    let topic = topic.clone();
    let read = tokio::task::spawn_blocking(move || read_all(inner, topic, consumer))
        .await
        .map_err(|e| BrokerError::Rejected {
            broker: NAME,
            operation: "read a topic".into(),
            reason: e.to_string(),
        })??;
    Ok(Box::new(read))
}

/// Reads every record the topic holds now and was not removed. Blocking: on a thread of its own.
fn read_all(
    inner: Arc<Inner>,
    topic: Topic,
    consumer: BaseConsumer,
) -> Result<Browse, BrokerError> {
    let timeout = inner.config.timeout;
    let failed = |e: &rdkafka::error::KafkaError| inner.error(e, || format!("read {topic}"));
    let metadata = consumer
        .fetch_metadata(Some(topic.as_str()), timeout)
        .map_err(|e| failed(&e))?;
    let ids: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut asked = TopicPartitionList::new();
    for id in &ids {
        asked.add_partition(topic.as_str(), *id);
    }
    let committed = consumer
        .committed_offsets(asked, timeout)
        .map_err(|e| failed(&e))?;
    let mut partitions = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for id in ids {
        let (low, high) = consumer
            .fetch_watermarks(topic.as_str(), id, timeout)
            .map_err(|e| failed(&e))?;
        let (start, removed) = match committed.find_partition(topic.as_str(), id) {
            Some(element) => match element.offset() {
                Offset::Offset(offset) => (offset.max(low), parse_removed(element.metadata())),
                _ => (low, BTreeSet::new()),
            },
            None => (low, BTreeSet::new()),
        };
        if start < high {
            assignment
                .add_partition_offset(topic.as_str(), id, Offset::Offset(start))
                .map_err(|e| failed(&e))?;
        }
        partitions.insert(
            id,
            Partition {
                read: Vec::new(),
                removed,
                high,
            },
        );
    }
    consumer.assign(&assignment).map_err(|e| failed(&e))?;
    let mut pending: HashMap<i32, i64> = assignment
        .elements()
        .iter()
        .map(|e| (e.partition(), partitions[&e.partition()].high))
        .collect();
    let mut records = VecDeque::new();
    // The time allowed runs from the last record that came, so a long topic can take longer.
    let mut deadline = std::time::Instant::now() + timeout;
    while !pending.is_empty() {
        let Some(polled) = consumer.poll(std::time::Duration::from_millis(100)) else {
            if std::time::Instant::now() > deadline {
                return Err(BrokerError::Timeout {
                    broker: NAME,
                    timeout,
                });
            }
            continue;
        };
        deadline = std::time::Instant::now() + timeout;
        let message = polled.map_err(|e| failed(&e))?;
        let (id, offset) = (message.partition(), message.offset());
        let Some(high) = pending.get(&id).copied() else {
            continue;
        };
        if offset + 1 >= high {
            pending.remove(&id);
        }
        if offset >= high {
            continue;
        }
        if let Some(partition) = partitions.get_mut(&id) {
            partition.read.push(offset);
            if !partition.removed.contains(&offset) {
                let record = Record::copy(message.key(), message.headers(), message.payload());
                records.push_back((id, offset, record));
            }
        }
    }
    Ok(Browse {
        shared: Arc::new(Shared {
            inner,
            topic,
            consumer,
            partitions: Mutex::new(partitions),
        }),
        records,
    })
}

struct Browse {
    shared: Arc<Shared>,
    records: VecDeque<(i32, i64, Record)>,
}

#[async_trait]
impl DeliveryStream for Browse {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        let (partition, offset, record) = self.records.pop_front()?;
        Some(Ok(Delivery {
            message: record.read(),
            attempt: 1,
            acker: Box::new(Remove {
                shared: self.shared.clone(),
                partition,
                offset,
            }),
        }))
    }

    async fn close(&mut self) {
        self.records.clear();
    }
}

/// Settles a record read outside a subscription: an ack commits it as removed, a nack leaves
/// it.
struct Remove {
    shared: Arc<Shared>,
    partition: i32,
    offset: i64,
}

#[async_trait]
impl Acker for Remove {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError> {
        let shared = self.shared.clone();
        let (partition, offset) = (self.partition, self.offset);
        let committed = tokio::task::spawn_blocking(move || {
            let mut partitions = lock(&shared.partitions);
            let Some(state) = partitions.get_mut(&partition) else {
                return Ok(());
            };
            state.removed.insert(offset);
            let at = state.committed();
            let mut list = TopicPartitionList::new();
            let mut element = list.add_partition(shared.topic.as_str(), partition);
            element.set_metadata(state.metadata(at));
            let commit = element
                .set_offset(Offset::Offset(at))
                .and_then(|()| shared.consumer.commit(&list, CommitMode::Sync));
            commit.map_err(|e| {
                // Not removed after all: a next read hands it out again.
                state.removed.remove(&offset);
                shared.inner.error(&e, || {
                    format!(
                        "remove offset {offset} of partition {partition} of {}",
                        shared.topic
                    )
                })
            })
        })
        .await;
        committed.map_err(|e| BrokerError::Rejected {
            broker: NAME,
            operation: "remove a record".into(),
            reason: e.to_string(),
        })?
    }

    async fn nack(self: Box<Self>, _nack: Nack) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn dead_letter(self: Box<Self>, _letter: DeadLetter) -> Result<(), BrokerError> {
        Err(BrokerError::Unsupported {
            broker: NAME,
            what: "dead-lettering a record read outside a subscription",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_commit_past_the_first_kept_record_and_list_the_rest() {
        let mut partition = Partition {
            read: vec![3, 4, 6, 7],
            removed: BTreeSet::new(),
            high: 8,
        };
        assert_eq!(partition.committed(), 3);
        partition.removed.insert(6);
        assert_eq!(partition.committed(), 3);
        assert_eq!(partition.metadata(3), "removed:6");
        assert_eq!(parse_removed("removed:6"), BTreeSet::from([6]));
        partition.removed.extend([3, 4]);
        assert_eq!(partition.committed(), 7);
        assert_eq!(partition.metadata(7), "");
        partition.removed.insert(7);
        assert_eq!(partition.committed(), 8);
        assert_eq!(parse_removed(""), BTreeSet::new());
    }
}
