//! One subscription: its own connection with manual acknowledgements, subscribed again after
//! every reconnect, and the ackers that settle what it hands out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Inner, NAME, binding, client_id, topic_path};
use tidings_core::adapter::Backoff;
use tidings_core::adapter::Outage;
use tidings_core::broker::{
    Acker, BrokerError, DeadLetter, Delivery, DeliveryStream, Nack, StartFrom, SubscribeRequest,
};

/// Requests (acks mostly) the client may queue for the event loop.
const REQUEST_CAPACITY: usize = 1024;
/// How long a close waits for the connection to say goodbye.
const CLOSE_PATIENCE: Duration = Duration::from_secs(2);

type Sent = Result<Delivery, BrokerError>;

/// Connects, subscribes, and returns once the broker granted the subscription.
pub(super) async fn start(
    inner: Arc<Inner>,
    request: SubscribeRequest,
) -> Result<Box<dyn DeliveryStream>, BrokerError> {
    if request.start == StartFrom::Oldest {
        return Err(BrokerError::Unsupported {
            broker: NAME,
            what: "starting from the oldest message (MQTT keeps no history)",
        });
    }
    let path = topic_path(&request.topic);
    let filter = match &request.group {
        None => path,
        Some(group) => {
            if group.is_empty() || group.contains(['/', '+', '#']) {
                return Err(BrokerError::Rejected {
                    broker: NAME,
                    operation: format!("subscribe to {} in group `{group}`", request.topic),
                    reason: "a shared subscription's name must be non-empty, without `/`, `+` \
                             or `#`"
                        .to_owned(),
                });
            }
            format!("$share/{group}/{path}")
        }
    };
    let mut options = inner.config.options(client_id("sub"), &inner.transport)?;
    let receive_maximum = u16::try_from(request.prefetch.max(1)).unwrap_or(u16::MAX);
    options
        .set_manual_acks(true)
        .set_receive_maximum(Some(receive_maximum))
        .set_request_channel_capacity(REQUEST_CAPACITY);
    let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        inner,
        client,
        session: AtomicU64::new(0),
        closing: AtomicBool::new(false),
        deliveries: tx,
    });
    let (ready, granted) = oneshot::channel();
    let task = tokio::spawn(drive(eventloop, shared.clone(), filter, ready));
    match granted.await {
        Ok(Ok(())) => Ok(Box::new(MqttStream {
            shared,
            rx,
            task: Some(task),
        })),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(BrokerError::Closed { broker: NAME }),
    }
}

/// What the connection's task, the stream and the ackers share.
struct Shared {
    inner: Arc<Inner>,
    client: AsyncClient,
    /// Counts connections: a PUBACK only means something on the connection the PUBLISH came
    /// on, since every connection starts a clean session.
    session: AtomicU64,
    closing: AtomicBool,
    deliveries: mpsc::UnboundedSender<Sent>,
}

impl Shared {
    fn deliver(self: &Arc<Self>, publish: Publish, session: u64, attempt: u32) {
        let message = binding::decode(&publish);
        let acker = MqttAcker {
            shared: self.clone(),
            publish,
            session,
            attempt,
        };
        let delivery = Delivery {
            message,
            attempt,
            acker: Box::new(acker),
        };
        if self.deliveries.send(Ok(delivery)).is_err() {
            tracing::debug!(
                messaging.system = NAME,
                "a message arrived after its subscription closed; it is dropped unacknowledged",
            );
        }
    }
}

/// Runs the connection: subscribes after each CONNACK, hands out PUBLISHes, reconnects.
async fn drive(
    mut eventloop: EventLoop,
    shared: Arc<Shared>,
    filter: String,
    ready: oneshot::Sender<Result<(), BrokerError>>,
) {
    let mut ready = Some(ready);
    let mut backoff = Backoff::new();
    // Whether the connection was lost since the last CONNACK.
    let mut lost = Outage::default();
    let unreachable = |reason: String| BrokerError::Unreachable {
        broker: NAME,
        address: shared.inner.config.address(),
        reason,
    };
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let session = shared.session.load(Ordering::Acquire);
                shared.deliver(publish, session, 1);
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                if lost.recovered() {
                    tracing::info!(
                        messaging.system = NAME,
                        messaging.destination.name = filter.as_str(),
                        "subscriber connection regained; subscribing again",
                    );
                }
                shared.session.fetch_add(1, Ordering::AcqRel);
                // A clean session has no subscription; ask again. Sent from a task of its
                // own, since this loop must keep polling for the request to go out.
                let (client, filter) = (shared.client.clone(), filter.clone());
                tokio::spawn(async move {
                    if let Err(error) = client.subscribe(filter.as_str(), QoS::AtLeastOnce).await {
                        // The connection went again: the next CONNACK asks once more.
                        tracing::warn!(
                            messaging.system = NAME,
                            messaging.destination.name = filter.as_str(),
                            error = %error,
                            "could not ask to subscribe; asking again on the next connection",
                        );
                    }
                });
            }
            Ok(Event::Incoming(Packet::SubAck(suback))) => {
                let refused = suback
                    .return_codes
                    .iter()
                    .find(|code| !matches!(code, SubscribeReasonCode::Success(_)));
                let outcome = match refused {
                    None => Ok(()),
                    Some(code) => Err(BrokerError::Rejected {
                        broker: NAME,
                        operation: format!("subscribe to {filter}"),
                        reason: format!("{code:?}"),
                    }),
                };
                let failed = outcome.is_err();
                match ready.take() {
                    // The subscriber stopped waiting: nobody to tell.
                    Some(ready) => ready.send(outcome).unwrap_or(()),
                    None => {
                        // The subscriber reports it as the end of its subscription.
                        if let Err(e) = outcome
                            && shared.deliveries.send(Err(e)).is_err()
                        {
                            tracing::debug!(
                                messaging.system = NAME,
                                "a subscription refused after its subscriber closed it",
                            );
                        }
                    }
                }
                if failed {
                    return;
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) if shared.closing.load(Ordering::Acquire) => {
                return;
            }
            Ok(_) => {}
            Err(e) => {
                if shared.closing.load(Ordering::Acquire) {
                    return;
                }
                if let Some(ready) = ready.take() {
                    // The subscriber stopped waiting: nobody to tell.
                    ready.send(Err(unreachable(e.to_string()))).unwrap_or(());
                    return;
                }
                if lost.failed() {
                    tracing::warn!(
                        messaging.system = NAME,
                        messaging.destination.name = filter.as_str(),
                        error = %e,
                        "subscriber connection lost; connecting again",
                    );
                }
                backoff.wait().await;
            }
        }
    }
}

struct MqttStream {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Sent>,
    task: Option<JoinHandle<()>>,
}

impl Drop for MqttStream {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[async_trait]
impl DeliveryStream for MqttStream {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        self.task.as_ref()?;
        self.rx.recv().await
    }

    async fn close(&mut self) {
        let Some(mut task) = self.task.take() else {
            return;
        };
        self.shared.closing.store(true, Ordering::Release);
        if self.shared.client.try_disconnect().is_err()
            || tokio::time::timeout(CLOSE_PATIENCE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
        self.rx.close();
    }
}

struct MqttAcker {
    shared: Arc<Shared>,
    publish: Publish,
    session: u64,
    attempt: u32,
}

impl MqttAcker {
    /// Sends the PUBACK, if the session the message came on still exists: after a reconnect
    /// or a close the broker has forgotten it, and there is nothing left to settle.
    async fn puback(&self) -> Result<(), BrokerError> {
        let shared = &self.shared;
        if shared.closing.load(Ordering::Acquire)
            || shared.session.load(Ordering::Acquire) != self.session
        {
            return Ok(());
        }
        shared
            .client
            .ack(&self.publish)
            .await
            .map_err(|_| BrokerError::Closed { broker: NAME })
    }
}

#[async_trait]
impl Acker for MqttAcker {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError> {
        self.puback().await
    }

    async fn nack(self: Box<Self>, nack: Nack) -> Result<(), BrokerError> {
        match nack {
            Nack::Terminate => self.puback().await,
            // MQTT has no nack: the message stays unacknowledged here and comes back after
            // the delay, still holding its place in the broker's Receive Maximum.
            Nack::Retry(delay) => {
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let MqttAcker {
                        shared,
                        publish,
                        session,
                        attempt,
                    } = *self;
                    shared.deliver(publish, session, attempt.saturating_add(1));
                });
                Ok(())
            }
        }
    }

    async fn dead_letter(self: Box<Self>, letter: DeadLetter) -> Result<(), BrokerError> {
        let target = letter.destination(NAME)?;
        let properties = binding::dead_letter(&self.publish, &letter);
        let payload = self.publish.payload.clone();
        self.shared
            .inner
            .publisher
            .publish(&topic_path(&target), payload, properties)
            .await?;
        self.puback().await
    }
}
