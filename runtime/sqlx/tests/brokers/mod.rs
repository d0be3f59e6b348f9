//! What the outbox tests share: an event, a subscriber that hands over what it receives, and
//! an in-process broker that refuses or holds publishes on the test's word, two relays at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tidings_core::broker::{DeliveryStream, Message, SubscribeRequest};
use tidings_core::{
    Broker, BrokerError, Bus, Capabilities, Confirmation, Event, MemoryBroker, Protobuf, Received,
    Topic,
};
use tidings_sqlx::Relay;
use tokio::sync::{Notify, mpsc};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Recorded {
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    #[prost(string, tag = "2")]
    pub key: String,
}

impl Event for Recorded {
    const TOPIC: &'static str = "tests.outbox.recorded.v1";
    const SCHEMA: &'static str = "tests.outbox.v1.Recorded";
    const DATA_SCHEMA: &'static str = "proto:tests.outbox.v1.Recorded";
    type Codec = Protobuf;

    fn key(&self) -> Option<String> {
        Some(self.key.clone())
    }
}

/// The events a subscriber of `bus` receives, in arrival order.
pub async fn receive(
    bus: &Bus,
) -> (
    tidings_core::Subscription,
    mpsc::UnboundedReceiver<Received<Recorded>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let subscription = bus
        .subscribe(move |event: Received<Recorded>| {
            let tx = tx.clone();
            async move { tx.send(event).map_err(|_| "the test stopped listening") }
        })
        .concurrency(1)
        .await
        .expect("subscribed");
    (subscription, rx)
}

pub async fn next(rx: &mut mpsc::UnboundedReceiver<Received<Recorded>>) -> Received<Recorded> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("the handler is alive")
}

/// The in-process broker, on the test's word refusing every publish (`down`) or holding each
/// one until released (`hold`: it says when a publish is held, `entered`, and lets one go on
/// `release`).
#[derive(Clone, Default)]
pub struct Controlled {
    inner: MemoryBroker,
    pub down: Arc<AtomicBool>,
    pub hold: Arc<AtomicBool>,
    pub entered: Arc<Notify>,
    pub release: Arc<Notify>,
}

impl Controlled {
    /// A broker that holds every publish.
    pub fn holding() -> Self {
        let broker = Controlled::default();
        broker.hold.store(true, Ordering::SeqCst);
        broker
    }
}

#[async_trait]
impl Broker for Controlled {
    fn name(&self) -> &'static str {
        "controlled"
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn publish(&self, topic: &Topic, message: Message) -> Result<Confirmation, BrokerError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BrokerError::Unreachable {
                broker: "controlled",
                address: "nowhere".into(),
                reason: "down for the test".into(),
            });
        }
        if self.hold.load(Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
        self.inner.publish(topic, message).await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        self.inner.subscribe(request).await
    }
}

/// Runs two relays at once until `pending` says nothing is left; how many events they sent
/// together.
pub async fn relay_at_once<F, P>(relays: [Relay; 2], pending: F) -> usize
where
    F: Fn() -> P + Clone + Send + 'static,
    P: Future<Output = i64> + Send,
{
    let turns: Vec<_> = relays
        .into_iter()
        .map(|relay| {
            let pending = pending.clone();
            tokio::spawn(async move {
                let mut sent = 0;
                while pending().await > 0 {
                    match relay.relay_once().await.expect("a turn") {
                        // The other relay has the turn.
                        0 => tokio::task::yield_now().await,
                        n => sent += n,
                    }
                }
                sent
            })
        })
        .collect();
    let mut total = 0;
    for turn in turns {
        total += turn.await.expect("the relay ran");
    }
    total
}

/// A relay running in a task of its own until [`Running::stop`]; a failed turn fails the test.
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn start(relay: Relay) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            relay
                .run(
                    async {
                        stopped.await.ok();
                    },
                    |e| panic!("the relay failed: {e}"),
                )
                .await;
        });
        Running { stop, task }
    }

    pub async fn stop(self) {
        self.stop.send(()).expect("the relay runs");
        self.task.await.expect("the relay stopped cleanly");
    }
}
