//! Reading the durable queue of a dead-letter topic outside any subscription (a tool listing
//! or replaying dead letters): `basic.get` on a channel of its own, each message held unacked
//! until the tool acks it (removed) or the read closes (every other one requeued, in place).
//! A tool that dies halfway loses nothing: the server requeues what its channel held.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use super::{NAME, Shared, binding, topology};
use tidings_core::broker::{Acker, BrokerError, DeadLetter, Delivery, DeliveryStream, Nack};
use tidings_core::topic::{DEAD_LETTER_PREFIX, Topic};

pub(super) async fn browse(
    shared: Arc<Shared>,
    topic: &Topic,
) -> Result<Box<dyn DeliveryStream>, BrokerError> {
    // Only dead-letter topics have a queue of their own that keeps what nobody reads.
    if !topic.as_str().starts_with(DEAD_LETTER_PREFIX) {
        return Err(BrokerError::Unsupported {
            broker: NAME,
            what: "reading a topic other than a dead-letter one outside a subscription",
        });
    }
    let operation = || format!("read {topic}");
    let live = shared.live().await?;
    let channel = live
        .connection
        .create_channel()
        .await
        .map_err(|e| shared.failure(operation(), e))?;
    topology::declare_dead_letters(&channel, &shared.config, topic)
        .await
        .map_err(|e| shared.failure(operation(), e))?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare(topic.as_str().into(), passive, FieldTable::default())
        .await
        .map_err(|e| shared.failure(operation(), e))?;
    Ok(Box::new(Browse {
        shared,
        topic: topic.clone(),
        remaining: queue.message_count(),
        channel: Some(channel),
    }))
}

struct Browse {
    shared: Arc<Shared>,
    topic: Topic,
    /// Messages ready in the queue, as the server last said.
    remaining: u32,
    /// `None` once closed.
    channel: Option<Channel>,
}

#[async_trait]
impl DeliveryStream for Browse {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        if self.remaining == 0 {
            return None;
        }
        let channel = self.channel.as_ref()?;
        let got = channel
            .basic_get(
                self.topic.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await;
        match got {
            Ok(Some(got)) => {
                self.remaining = got.message_count;
                let delivery = got.delivery;
                Some(Ok(Delivery {
                    message: binding::read(&delivery.properties, Bytes::from(delivery.data)),
                    attempt: 1,
                    acker: Box::new(Remove {
                        shared: self.shared.clone(),
                        topic: self.topic.clone(),
                        channel: channel.clone(),
                        tag: delivery.delivery_tag,
                    }),
                }))
            }
            // Taken by someone else meanwhile.
            Ok(None) => {
                self.remaining = 0;
                None
            }
            Err(e) => Some(Err(self
                .shared
                .failure(format_args!("read {}", self.topic), e))),
        }
    }

    async fn close(&mut self) {
        let Some(channel) = self.channel.take() else {
            return;
        };
        // Closing the channel requeues every message it held and nobody acked.
        if let Err(error) = channel.close(200, "read done".into()).await {
            tracing::warn!(
                messaging.system = NAME,
                messaging.destination.name = self.topic.as_str(),
                error = %error,
                "could not close the channel of a finished read; the server requeues what it held once the connection goes",
            );
        }
    }
}

/// Settles a message read outside a subscription: an ack removes it from the queue, a nack
/// leaves it held until the read closes, which requeues it.
struct Remove {
    shared: Arc<Shared>,
    topic: Topic,
    /// The channel that holds it.
    channel: Channel,
    tag: u64,
}

#[async_trait]
impl Acker for Remove {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError> {
        self.channel
            .basic_ack(self.tag, BasicAckOptions::default())
            .await
            .map_err(|e| {
                self.shared
                    .failure(format_args!("remove a message of {}", self.topic), e)
            })
    }

    async fn nack(self: Box<Self>, _nack: Nack) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn dead_letter(self: Box<Self>, _letter: DeadLetter) -> Result<(), BrokerError> {
        Err(BrokerError::Unsupported {
            broker: NAME,
            what: "dead-lettering a message read outside a subscription",
        })
    }
}
