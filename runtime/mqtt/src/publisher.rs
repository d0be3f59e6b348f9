//! The publishing connection, and how a publish learns that the broker acknowledged it.
//!
//! rumqttc reports a QoS 1 PUBLISH as an outgoing packet id, then its PUBACK by the same id,
//! but does not say which call a packet id belongs to. Calls queue their request and their
//! waiter under one lock, so requests reach the event loop in the order the waiters queue; the
//! event loop's task gives each outgoing packet id the next waiter, and the PUBACK settles it.
//! The connection starts clean every time, so a reconnect forgets every unacknowledged
//! PUBLISH: those waiters (and the requests not yet sent) are failed together, under the lock,
//! and the callers may publish again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use rumqttc::{Outgoing, Transport};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{MqttConfig, NAME};
use tidings_core::adapter::Backoff;
use tidings_core::adapter::Outage;
use tidings_core::adapter::lock;
use tidings_core::broker::BrokerError;

/// Requests the client may queue before a publish waits for room.
const REQUEST_CAPACITY: usize = 1024;

/// Why a publish was not acknowledged.
enum Failure {
    Rejected(String),
    Unreachable(String),
}

type Waiter = oneshot::Sender<Result<(), Failure>>;

#[derive(Default)]
struct Waiters {
    /// Requests queued to the event loop, in order, not yet given a packet id.
    queued: VecDeque<Waiter>,
    /// Sent and waiting for their PUBACK.
    sent: HashMap<u16, Waiter>,
    /// A request whose packet id was still in use; it is sent once that one is acknowledged.
    collided: Option<(u16, Waiter)>,
}

impl Waiters {
    fn fail_all(&mut self, reason: &str) {
        let collided = self.collided.take().map(|(_, w)| w);
        let sent = self.sent.drain().map(|(_, w)| w);
        for waiter in self.queued.drain(..).chain(sent).chain(collided) {
            // A publisher that stopped waiting has its answer already (a timeout).
            waiter
                .send(Err(Failure::Unreachable(reason.to_owned())))
                .unwrap_or(());
        }
    }
}

/// One connection that publishes with QoS 1 and reports each PUBACK.
pub(super) struct Publisher {
    client: AsyncClient,
    waiters: Arc<Mutex<Waiters>>,
    address: String,
    task: JoinHandle<()>,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Publisher {
    /// Connects, failing when the broker cannot be reached.
    pub(super) async fn connect(
        config: &MqttConfig,
        transport: &Transport,
    ) -> Result<Self, BrokerError> {
        let mut options = config.options(super::client_id("pub"), transport)?;
        options.set_request_channel_capacity(REQUEST_CAPACITY);
        let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
        let waiters = Arc::new(Mutex::new(Waiters::default()));
        let (ready, connected) = oneshot::channel();
        let task = tokio::spawn(drive(eventloop, waiters.clone(), ready));
        let address = config.address();
        match connected.await {
            Ok(Ok(())) => Ok(Publisher {
                client,
                waiters,
                address,
                task,
            }),
            Ok(Err(reason)) => Err(BrokerError::Unreachable {
                broker: NAME,
                address,
                reason,
            }),
            Err(_) => Err(BrokerError::Closed { broker: NAME }),
        }
    }

    /// Publishes with QoS 1 and returns once the broker acknowledged it.
    pub(super) async fn publish(
        &self,
        path: &str,
        payload: Bytes,
        properties: PublishProperties,
    ) -> Result<(), BrokerError> {
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        while let Some(waiter) = tx.take() {
            let queued = {
                let mut waiters = lock(&self.waiters);
                let sent = self.client.try_publish_with_properties(
                    path,
                    QoS::AtLeastOnce,
                    false,
                    payload.clone(),
                    properties.clone(),
                );
                match sent {
                    Ok(()) => {
                        waiters.queued.push_back(waiter);
                        None
                    }
                    Err(_) => Some(waiter),
                }
            };
            if queued.is_some() {
                // The request queue is full: the event loop is busy or reconnecting.
                tokio::time::sleep(Duration::from_millis(5)).await;
                tx = queued;
            }
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Failure::Rejected(reason))) => Err(BrokerError::Rejected {
                broker: NAME,
                operation: format!("publish to {path}"),
                reason,
            }),
            Ok(Err(Failure::Unreachable(reason))) => Err(BrokerError::Unreachable {
                broker: NAME,
                address: self.address.clone(),
                reason,
            }),
            Err(_) => Err(BrokerError::Closed { broker: NAME }),
        }
    }
}

/// Runs the event loop: pairs packet ids with waiters, settles them on PUBACK, and reconnects.
async fn drive(
    mut eventloop: EventLoop,
    waiters: Arc<Mutex<Waiters>>,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let mut ready = Some(ready);
    let mut backoff = Backoff::new();
    // Whether the connection was lost since the last CONNACK.
    let mut lost = Outage::default();
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                if lost.recovered() {
                    tracing::info!(
                        messaging.system = crate::NAME,
                        "publisher connection regained"
                    );
                }
                if let Some(ready) = ready.take() {
                    // The caller stopped waiting: nobody to tell.
                    ready.send(Ok(())).unwrap_or(());
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut waiters = lock(&waiters);
                let waiter = match waiters.collided.take() {
                    Some((id, waiter)) if id == pkid => Some(waiter),
                    other => {
                        waiters.collided = other;
                        waiters.queued.pop_front()
                    }
                };
                if let Some(waiter) = waiter {
                    waiters.sent.insert(pkid, waiter);
                }
            }
            Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => {
                let mut waiters = lock(&waiters);
                waiters.collided = waiters.queued.pop_front().map(|w| (pkid, w));
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let waiter = lock(&waiters).sent.remove(&ack.pkid);
                if let Some(waiter) = waiter {
                    let outcome = match ack.reason {
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                        refused => {
                            let detail = ack.properties.and_then(|p| p.reason_string);
                            Err(Failure::Rejected(match detail {
                                Some(detail) => format!("{refused:?}: {detail}"),
                                None => format!("{refused:?}"),
                            }))
                        }
                    };
                    // A publisher that stopped waiting has its answer already (a timeout).
                    waiter.send(outcome).unwrap_or(());
                }
            }
            Ok(_) => {}
            Err(e) => {
                let reason = e.to_string();
                if let Some(ready) = ready.take() {
                    // The caller stopped waiting: nobody to tell.
                    ready.send(Err(reason)).unwrap_or(());
                    return;
                }
                if lost.failed() {
                    tracing::warn!(
                        messaging.system = crate::NAME,
                        error = %reason,
                        "publisher connection lost; publishes in flight fail, connecting again",
                    );
                }
                {
                    let mut waiters = lock(&waiters);
                    // Requests still queued would be sent on the new, clean connection
                    // without their waiters: drop them with the rest.
                    eventloop.clean();
                    eventloop.pending.clear();
                    waiters.fail_all(&reason);
                }
                backoff.wait().await;
            }
        }
    }
}
