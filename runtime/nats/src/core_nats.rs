//! Core mode: plain NATS subjects, fire and forget.

use std::sync::Arc;

use async_nats::{HeaderMap, Subscriber};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{NAME, Shared, binding};
use tidings_core::broker::{
    Acker, BrokerError, DeadLetter, Delivery, DeliveryStream, Message, Nack, SubscribeRequest,
};
use tidings_core::topic::Topic;

pub(super) async fn publish(
    shared: &Shared,
    topic: &Topic,
    message: Message,
) -> Result<(), BrokerError> {
    let headers = binding::headers(&message.envelope, &[]);
    send(shared, topic.as_str(), headers, message.data).await
}

/// Publishes and waits for the server to have read it (a flush): core NATS confirms no more.
pub(super) async fn send(
    shared: &Shared,
    subject: &str,
    headers: HeaderMap,
    data: Bytes,
) -> Result<(), BrokerError> {
    let operation = || format!("publish to {subject}");
    shared
        .client
        .publish_with_headers(subject.to_owned(), headers, data)
        .await
        .map_err(|e| shared.failure(operation(), e))?;
    shared
        .client
        .flush()
        .await
        .map_err(|e| shared.failure(operation(), e))
}

pub(super) async fn subscribe(
    shared: Arc<Shared>,
    request: SubscribeRequest,
) -> Result<Box<dyn DeliveryStream>, BrokerError> {
    let subject = request.topic.as_str().to_owned();
    let subscriber = match &request.group {
        Some(group) => shared.client.queue_subscribe(subject, group.clone()).await,
        None => shared.client.subscribe(subject).await,
    }
    .map_err(|e| shared.failure(format_args!("subscribe to {}", request.topic), e))?;
    let (again_tx, again_rx) = mpsc::unbounded_channel();
    Ok(Box::new(CoreDeliveries {
        shared,
        subscriber: Some(subscriber),
        again_tx,
        again_rx,
    }))
}

/// A message as received, with the attempt it is at.
struct Received {
    headers: Option<HeaderMap>,
    payload: Bytes,
    attempt: u32,
}

struct CoreDeliveries {
    shared: Arc<Shared>,
    subscriber: Option<Subscriber>,
    /// Nacked messages this subscriber gets again: the server keeps none to send back.
    again_tx: mpsc::UnboundedSender<Received>,
    again_rx: mpsc::UnboundedReceiver<Received>,
}

impl CoreDeliveries {
    fn deliver(&self, mut received: Received) -> Delivery {
        let headers = received.headers.take();
        Delivery {
            message: binding::read(headers.as_ref(), received.payload.clone()),
            attempt: received.attempt,
            acker: Box::new(CoreAcker {
                shared: self.shared.clone(),
                again: self.again_tx.clone(),
                pending: Some(Received {
                    headers,
                    ..received
                }),
            }),
        }
    }
}

#[async_trait]
impl DeliveryStream for CoreDeliveries {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        let subscriber = self.subscriber.as_mut()?;
        let received = tokio::select! {
            biased;
            Some(again) = self.again_rx.recv() => again,
            message = subscriber.next() => {
                let message = message?;
                Received { headers: message.headers, payload: message.payload, attempt: 1 }
            }
        };
        Some(Ok(self.deliver(received)))
    }

    async fn close(&mut self) {
        if let Some(mut subscriber) = self.subscriber.take()
            && let Err(error) = subscriber.unsubscribe().await
        {
            // The server drops the interest with the connection at the latest.
            tracing::warn!(
                messaging.system = crate::NAME,
                error = %error,
                "could not unsubscribe a closed subscription; the server drops it with the connection",
            );
        }
    }
}

/// Settles a core NATS delivery. The server keeps nothing, so a nacked message (or one whose
/// acker is dropped unsettled) is handed to the same subscription again by this process, and is
/// lost if the process dies first.
struct CoreAcker {
    shared: Arc<Shared>,
    again: mpsc::UnboundedSender<Received>,
    /// `Some` until settled.
    pending: Option<Received>,
}

#[async_trait]
impl Acker for CoreAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BrokerError> {
        self.pending = None;
        Ok(())
    }

    async fn nack(mut self: Box<Self>, nack: Nack) -> Result<(), BrokerError> {
        let Some(mut pending) = self.pending.take() else {
            return Ok(());
        };
        if let Nack::Retry(delay) = nack {
            pending.attempt += 1;
            let again = self.again.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if again.send(pending).is_err() {
                    // Core NATS keeps nothing: with the subscription closed, the retry is lost.
                    tracing::debug!(
                        messaging.system = crate::NAME,
                        "a retry came due after its subscription closed; core NATS keeps nothing, so it is dropped",
                    );
                }
            });
        }
        Ok(())
    }

    async fn dead_letter(mut self: Box<Self>, letter: DeadLetter) -> Result<(), BrokerError> {
        let dead_letters = letter.destination(NAME)?;
        let Some(pending) = &self.pending else {
            return Ok(());
        };
        let mut headers = pending.headers.clone().unwrap_or_default();
        binding::add_attributes(&mut headers, &letter.attributes());
        send(
            &self.shared,
            dead_letters.as_str(),
            headers,
            pending.payload.clone(),
        )
        .await?;
        self.pending = None;
        Ok(())
    }
}

impl Drop for CoreAcker {
    fn drop(&mut self) {
        if let Some(mut pending) = self.pending.take() {
            pending.attempt += 1;
            if self.again.send(pending).is_err() {
                tracing::debug!(
                    messaging.system = crate::NAME,
                    "an unsettled delivery came back after its subscription closed; core NATS keeps nothing, so it is dropped",
                );
            }
        }
    }
}
