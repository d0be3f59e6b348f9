//! The defaults of generated handler methods, end to end: the shop's schemas generated with
//! `HandlerDefault::Ignore` and with `HandlerDefault::DeadLetter` (by the build script, into
//! `$OUT_DIR/ignore` and `$OUT_DIR/dead_letter`), and an implementation of `events.order.v1`'s
//! `Handler` that writes `created` only. What the consumer does with each delivery is read at the
//! broker seam, from a wrapper of the in-process broker that reports every settlement.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tidings::broker::{Acker, DeadLetter, Delivery, DeliveryStream, Message, Nack};
use tidings::broker::{StartFrom, SubscribeRequest};
use tidings::envelope::attr;
use tidings::{
    Broker, BrokerError, Bus, Capabilities, Confirmation, Envelope, Event, HandlerError,
    MemoryBroker, Received, RetryPolicy, SubscribeOptions, Topic,
};
use tokio::sync::mpsc;

mod ignore {
    include!(concat!(env!("OUT_DIR"), "/ignore/mod.rs"));
}

mod dead_letter {
    include!(concat!(env!("OUT_DIR"), "/dead_letter/mod.rs"));
}

/// How the consumer settled a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Settled {
    Ack,
    Nack(Nack),
    DeadLetter { reason: String, attempts: u32 },
}

/// One settlement: of which event, on which topic, at which attempt, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Settlement {
    topic: String,
    id: String,
    attempt: u32,
    settled: Settled,
}

/// The in-process broker, reporting every settlement of its deliveries.
#[derive(Clone)]
struct Settling {
    inner: MemoryBroker,
    log: mpsc::UnboundedSender<Settlement>,
}

impl Settling {
    fn new() -> (Settling, mpsc::UnboundedReceiver<Settlement>) {
        let (log, settlements) = mpsc::unbounded_channel();
        let broker = Settling {
            inner: MemoryBroker::new(),
            log,
        };
        (broker, settlements)
    }
}

#[async_trait]
impl Broker for Settling {
    fn name(&self) -> &'static str {
        "memory-settling"
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn publish(&self, topic: &Topic, message: Message) -> Result<Confirmation, BrokerError> {
        self.inner.publish(topic, message).await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        let topic = request.topic.as_str().to_owned();
        let inner = self.inner.subscribe(request).await?;
        Ok(Box::new(SettlingStream {
            inner,
            topic,
            log: self.log.clone(),
        }))
    }
}

struct SettlingStream {
    inner: Box<dyn DeliveryStream>,
    topic: String,
    log: mpsc::UnboundedSender<Settlement>,
}

impl SettlingStream {
    fn wrap(&self, delivery: Delivery) -> Delivery {
        let report = Report {
            topic: self.topic.clone(),
            id: delivery
                .message
                .as_ref()
                .map(|m| m.envelope.id.to_string())
                .unwrap_or_default(),
            attempt: delivery.attempt,
            log: self.log.clone(),
        };
        Delivery {
            acker: Box::new(Reporting {
                inner: delivery.acker,
                report,
            }),
            ..delivery
        }
    }
}

#[async_trait]
impl DeliveryStream for SettlingStream {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        let next = self.inner.next().await;
        next.map(|d| d.map(|d| self.wrap(d)))
    }

    fn try_next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        let next = self.inner.try_next();
        next.map(|d| d.map(|d| self.wrap(d)))
    }

    async fn close(&mut self) {
        self.inner.close().await;
    }
}

struct Report {
    topic: String,
    id: String,
    attempt: u32,
    log: mpsc::UnboundedSender<Settlement>,
}

impl Report {
    fn send(&self, settled: Settled) {
        let _ = self.log.send(Settlement {
            topic: self.topic.clone(),
            id: self.id.clone(),
            attempt: self.attempt,
            settled,
        });
    }
}

/// An acker that reports how its delivery was settled, once the broker took it.
struct Reporting {
    inner: Box<dyn Acker>,
    report: Report,
}

#[async_trait]
impl Acker for Reporting {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError> {
        let Reporting { inner, report } = *self;
        inner.ack().await?;
        report.send(Settled::Ack);
        Ok(())
    }

    fn try_ack(&mut self) -> Option<Result<(), BrokerError>> {
        let acked = self.inner.try_ack();
        if let Some(Ok(())) = acked {
            self.report.send(Settled::Ack);
        }
        acked
    }

    async fn nack(self: Box<Self>, nack: Nack) -> Result<(), BrokerError> {
        let Reporting { inner, report } = *self;
        inner.nack(nack).await?;
        report.send(Settled::Nack(nack));
        Ok(())
    }

    async fn dead_letter(self: Box<Self>, letter: DeadLetter) -> Result<(), BrokerError> {
        let Reporting { inner, report } = *self;
        let settled = Settled::DeadLetter {
            reason: letter.reason.clone(),
            attempts: letter.attempts,
        };
        inner.dead_letter(letter).await?;
        report.send(settled);
        Ok(())
    }
}

/// Handles `created` of `events.order.v1` and leaves `cancelled` to the generated default;
/// reports the id and attempt of each event it handles.
struct OnlyCreated {
    handled: mpsc::UnboundedSender<(String, u32)>,
}

impl OnlyCreated {
    fn new() -> (OnlyCreated, mpsc::UnboundedReceiver<(String, u32)>) {
        let (handled, rx) = mpsc::unbounded_channel();
        (OnlyCreated { handled }, rx)
    }

    fn note<E: Event>(&self, event: Received<E>) -> Result<(), HandlerError> {
        assert_eq!(event.envelope().event_type, E::TOPIC);
        self.handled
            .send((event.envelope().id.to_string(), event.attempt()))
            .map_err(|_| "the test stopped")?;
        Ok(())
    }
}

impl ignore::events::order::v1::Handler for OnlyCreated {
    async fn created(
        &self,
        event: Received<ignore::events::order::v1::Created>,
    ) -> Result<(), HandlerError> {
        self.note(event)
    }
}

impl dead_letter::events::order::v1::Handler for OnlyCreated {
    async fn created(
        &self,
        event: Received<dead_letter::events::order::v1::Created>,
    ) -> Result<(), HandlerError> {
        self.note(event)
    }
}

/// Five attempts, a millisecond apart: an event retried at all is retried at once.
fn options() -> SubscribeOptions {
    SubscribeOptions::default().retry(
        RetryPolicy::default()
            .max_attempts(5)
            .initial_backoff(Duration::from_millis(1))
            .max_backoff(Duration::from_millis(2)),
    )
}

/// The dead letters of `E`, read beside the broker under test.
async fn dead_letters_of<E: Event>(broker: &MemoryBroker) -> Box<dyn DeliveryStream> {
    let request = SubscribeRequest {
        topic: Topic::of::<E>().unwrap().dead_letter().unwrap(),
        group: None,
        start: StartFrom::New,
        prefetch: 8,
    };
    broker.subscribe(request).await.unwrap()
}

/// The next message on `rx`, within 5 s.
async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(next)) => next,
        Ok(None) => panic!("{what}: the sender is gone"),
        Err(_) => panic!("{what}: nothing within 5 s"),
    }
}

/// Nothing more was settled and nothing was dead-lettered.
fn nothing_more(
    settlements: &mut mpsc::UnboundedReceiver<Settlement>,
    dead: &mut Box<dyn DeliveryStream>,
) {
    if let Ok(more) = settlements.try_recv() {
        panic!("settled again: {more:?}");
    }
    if let Some(letter) = dead.try_next() {
        panic!(
            "dead-lettered: {:?}",
            letter.map(|d| d.message.map(|m| m.envelope))
        );
    }
}

#[tokio::test]
async fn ignore_acks_an_event_the_implementation_leaves_out_and_the_consumer_goes_on() {
    use ignore::events::order::v1 as order;

    let (broker, mut settlements) = Settling::new();
    let mut dead = dead_letters_of::<order::Cancelled>(&broker.inner).await;
    let bus = Bus::new(broker);
    let (handler, mut handled) = OnlyCreated::new();
    let subscriptions = order::subscribe(&bus, handler, options()).await.unwrap();
    assert_eq!(subscriptions.len(), 2, "one subscription per event");
    let publisher = order::Publisher::new(bus.clone());

    let cancelled = order::Cancelled {
        order_id: "o-1".to_owned(),
        ..Default::default()
    };
    let receipt = publisher.cancelled(&cancelled).await.unwrap();
    assert_eq!(
        next(&mut settlements, "the cancellation's settlement").await,
        Settlement {
            topic: order::Cancelled::TOPIC.to_owned(),
            id: receipt.id().to_string(),
            attempt: 1,
            settled: Settled::Ack,
        },
        "acked on its first attempt"
    );

    // The service goes on: a later event it handles is handled, and acked.
    let created = order::Created {
        order_id: "o-2".to_owned(),
        ..Default::default()
    };
    let receipt = publisher.created(&created).await.unwrap();
    assert_eq!(
        next(&mut handled, "the later Created").await,
        (receipt.id().to_string(), 1)
    );
    assert_eq!(
        next(&mut settlements, "the Created's settlement").await,
        Settlement {
            topic: order::Created::TOPIC.to_owned(),
            id: receipt.id().to_string(),
            attempt: 1,
            settled: Settled::Ack,
        }
    );

    subscriptions.shutdown().await;
    nothing_more(&mut settlements, &mut dead);
}

#[tokio::test]
async fn dead_letter_dead_letters_an_event_the_implementation_leaves_out_after_one_attempt() {
    use dead_letter::events::order::v1 as order;

    let (broker, mut settlements) = Settling::new();
    let mut dead = dead_letters_of::<order::Cancelled>(&broker.inner).await;
    let bus = Bus::new(broker);
    let (handler, mut handled) = OnlyCreated::new();
    let subscriptions = order::subscribe(&bus, handler, options()).await.unwrap();
    let publisher = order::Publisher::new(bus.clone());
    let reason = "handler refused the event for good: no handler for events.order.cancelled.v1 \
                  in this service";

    let cancelled = order::Cancelled {
        order_id: "o-1".to_owned(),
        ..Default::default()
    };
    let receipt = publisher.cancelled(&cancelled).await.unwrap();
    // The first settlement is the dead letter: no retry came before it, of the 5 allowed.
    assert_eq!(
        next(&mut settlements, "the cancellation's settlement").await,
        Settlement {
            topic: order::Cancelled::TOPIC.to_owned(),
            id: receipt.id().to_string(),
            attempt: 1,
            settled: Settled::DeadLetter {
                reason: reason.to_owned(),
                attempts: 1,
            },
        }
    );
    let letter = {
        let delivery = tokio::time::timeout(Duration::from_secs(5), dead.next())
            .await
            .expect("a dead letter within 5 s")
            .expect("the dead-letter subscription is open")
            .expect("no transport error");
        let envelope: Arc<Envelope> = delivery.message.as_ref().unwrap().envelope.clone();
        delivery.acker.ack().await.unwrap();
        envelope
    };
    assert_eq!(letter.id, *receipt.id());
    assert_eq!(letter.extension(attr::DEAD_LETTER_REASON), Some(reason));
    assert_eq!(letter.extension(attr::DEAD_LETTER_ATTEMPTS), Some("1"));
    assert_eq!(
        letter.extension(attr::DEAD_LETTER_TOPIC),
        Some("events.order.cancelled.v1")
    );

    // The method the implementation wrote still handles its events.
    let created = order::Created {
        order_id: "o-2".to_owned(),
        ..Default::default()
    };
    let receipt = publisher.created(&created).await.unwrap();
    assert_eq!(
        next(&mut handled, "the later Created").await,
        (receipt.id().to_string(), 1)
    );
    assert_eq!(
        next(&mut settlements, "the Created's settlement")
            .await
            .settled,
        Settled::Ack
    );

    subscriptions.shutdown().await;
    nothing_more(&mut settlements, &mut dead);
}
