//! Reading what a topic's stream holds outside any subscription (a tool listing or replaying
//! dead letters): an ephemeral consumer that acknowledges nothing, so no group's place moves,
//! and a removal by stream sequence for each message the tool acks.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{DeleteMessageErrorKind, Stream};
use async_trait::async_trait;
use futures_util::StreamExt;

use super::{NAME, Shared, binding, jetstream};
use tidings_core::broker::{Acker, BrokerError, DeadLetter, Delivery, DeliveryStream, Nack};
use tidings_core::topic::Topic;

/// How long the server keeps the consumer of a reader that vanished without closing.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(60);
/// The most messages asked for at once.
const BATCH: u64 = 256;

pub(super) async fn browse(
    shared: Arc<Shared>,
    topic: &Topic,
) -> Result<Box<dyn DeliveryStream>, BrokerError> {
    let operation = || format!("read {topic}");
    let stream = jetstream::stream_for(&shared, topic.as_str()).await?;
    let handle = shared
        .js
        .get_stream_no_info(stream.name())
        .await
        .map_err(|e| shared.failure(operation(), e))?;
    let consumer: PullConsumer = handle
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            filter_subject: topic.as_str().to_owned(),
            inactive_threshold: INACTIVE_THRESHOLD,
            ..Default::default()
        })
        .await
        .map_err(|e| shared.failure(operation(), e))?;
    let remaining = consumer.cached_info().num_pending;
    Ok(Box::new(Browse {
        shared,
        topic: topic.clone(),
        stream: handle,
        consumer: Some(consumer),
        remaining,
        batch: None,
    }))
}

struct Browse {
    shared: Arc<Shared>,
    topic: Topic,
    stream: Stream<()>,
    /// `None` once closed.
    consumer: Option<PullConsumer>,
    /// Messages the consumer has yet to hand out, as the server last said.
    remaining: u64,
    /// The fetch in progress, and whether it brought anything.
    batch: Option<(pull::Batch, bool)>,
}

#[async_trait]
impl DeliveryStream for Browse {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        loop {
            if self.remaining == 0 {
                return None;
            }
            let consumer = self.consumer.as_ref()?;
            let Some((batch, delivered)) = &mut self.batch else {
                // A fetch ends as soon as the server has nothing more ready, rather than waiting.
                let fetched = consumer
                    .fetch()
                    .max_messages(usize::try_from(self.remaining.min(BATCH)).unwrap_or(1))
                    .messages()
                    .await;
                match fetched {
                    Ok(batch) => self.batch = Some((batch, false)),
                    Err(e) => {
                        return Some(Err(self
                            .shared
                            .failure(format_args!("read {}", self.topic), e)));
                    }
                }
                continue;
            };
            match batch.next().await {
                Some(Ok(message)) => {
                    *delivered = true;
                    let sequence = match message.info() {
                        Ok(info) => {
                            self.remaining = info.pending;
                            info.stream_sequence
                        }
                        Err(e) => {
                            return Some(Err(self.shared.rejected(
                                format_args!("read {}", self.topic),
                                format_args!("a message without its stream sequence: {e}"),
                            )));
                        }
                    };
                    let message = message.message;
                    return Some(Ok(Delivery {
                        message: binding::read(message.headers.as_ref(), message.payload),
                        attempt: 1,
                        acker: Box::new(Remove {
                            shared: self.shared.clone(),
                            stream: self.stream.clone(),
                            topic: self.topic.clone(),
                            sequence,
                        }),
                    }));
                }
                Some(Err(e)) => {
                    self.batch = None;
                    return Some(Err(self
                        .shared
                        .failure(format_args!("read {}", self.topic), e)));
                }
                // Nothing came although the server counted some: removed meanwhile.
                None if !*delivered => return None,
                None => self.batch = None,
            }
        }
    }

    async fn close(&mut self) {
        self.batch = None;
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        let name = consumer.cached_info().name.clone();
        if let Err(error) = self.stream.delete_consumer(&name).await {
            tracing::warn!(
                messaging.system = NAME,
                messaging.destination.name = self.topic.as_str(),
                error = %error,
                "could not delete the consumer of a finished read; the server removes it once inactive",
            );
        }
    }
}

/// Settles a message read outside a subscription: an ack removes it from the stream, a nack
/// leaves it there.
struct Remove {
    shared: Arc<Shared>,
    stream: Stream<()>,
    topic: Topic,
    sequence: u64,
}

#[async_trait]
impl Acker for Remove {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError> {
        match self.stream.delete_message(self.sequence).await {
            Ok(_) => Ok(()),
            // Removed already (by another reader): what was asked holds.
            Err(e)
                if matches!(e.kind(), DeleteMessageErrorKind::JetStream(ref js)
                    if js.error_code() == ErrorCode::NO_MESSAGE_FOUND) =>
            {
                Ok(())
            }
            Err(e) => Err(self.shared.failure(
                format_args!("remove message #{} of {}", self.sequence, self.topic),
                e,
            )),
        }
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
