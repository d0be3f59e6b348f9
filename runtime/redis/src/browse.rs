//! Reading what a topic's stream holds outside any subscription (a tool listing or replaying
//! dead letters): `XRANGE` up to the last entry there when the read began, which joins no group
//! and leaves no pending entry; an ack is an `XDEL` of that entry.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use redis::Value;

use super::entries::{self, Entry};
use super::subscription::last_id;
use super::{Inner, NAME, fields};
use tidings_core::broker::{Acker, BrokerError, DeadLetter, Delivery, DeliveryStream, Nack};
use tidings_core::topic::Topic;

/// The most entries asked for at once.
const PAGE: usize = 256;

pub(super) async fn browse(
    inner: Arc<Inner>,
    topic: &Topic,
) -> Result<Box<dyn DeliveryStream>, BrokerError> {
    let mut commands = inner.commands.clone();
    let last = last_id(&mut commands, topic.as_str())
        .await
        .map_err(|e| inner.error(&e, || format!("read {topic}")))?;
    Ok(Box::new(Browse {
        inner,
        topic: topic.clone(),
        // `0-0` is below every entry id: an empty stream (or none) has nothing to read.
        done: last == "0-0",
        last,
        from: "-".to_owned(),
        page: VecDeque::new(),
    }))
}

struct Browse {
    inner: Arc<Inner>,
    topic: Topic,
    /// The last entry when the read began: where it stops.
    last: String,
    /// Where the next page starts.
    from: String,
    page: VecDeque<Entry>,
    done: bool,
}

#[async_trait]
impl DeliveryStream for Browse {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        if self.page.is_empty() && !self.done {
            let mut commands = self.inner.commands.clone();
            let read: Result<Value, _> = redis::cmd("XRANGE")
                .arg(self.topic.as_str())
                .arg(&self.from)
                .arg(&self.last)
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut commands)
                .await;
            // The same shape as a claim's reply: `[id, fields]` for each entry.
            match read.and_then(entries::claim_reply) {
                Ok(read) => {
                    match read.last() {
                        // Exclusive from the last one read.
                        Some(entry) => self.from = format!("({}", entry.id),
                        None => self.done = true,
                    }
                    self.done |= read.len() < PAGE;
                    self.page.extend(read);
                }
                Err(e) => {
                    return Some(Err(self.inner.error(&e, || format!("read {}", self.topic))));
                }
            }
        }
        let entry = self.page.pop_front()?;
        Some(Ok(Delivery {
            message: fields::decode(&entry.fields),
            attempt: 1,
            acker: Box::new(Remove {
                inner: self.inner.clone(),
                topic: self.topic.clone(),
                id: entry.id,
            }),
        }))
    }

    async fn close(&mut self) {
        self.page.clear();
        self.done = true;
    }
}

/// Settles an entry read outside a subscription: an ack deletes it, a nack leaves it.
struct Remove {
    inner: Arc<Inner>,
    topic: Topic,
    id: String,
}

#[async_trait]
impl Acker for Remove {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError> {
        let mut commands = self.inner.commands.clone();
        // The count of entries deleted: 0 when another reader removed it first, which is
        // what was asked all the same.
        let deleted: Result<u64, _> = redis::cmd("XDEL")
            .arg(self.topic.as_str())
            .arg(&self.id)
            .query_async(&mut commands)
            .await;
        deleted.map(drop).map_err(|e| {
            self.inner
                .error(&e, || format!("remove entry {} of {}", self.id, self.topic))
        })
    }

    async fn nack(self: Box<Self>, _nack: Nack) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn dead_letter(self: Box<Self>, _letter: DeadLetter) -> Result<(), BrokerError> {
        Err(BrokerError::Unsupported {
            broker: NAME,
            what: "dead-lettering an entry read outside a subscription",
        })
    }
}
