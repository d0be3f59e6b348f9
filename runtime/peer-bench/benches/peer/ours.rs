//! tidings' side: a [`Bus`] over each broker, the generated order event as it is, one handler
//! function that counts.

use std::sync::Arc;
use std::time::Duration;

use tidings::broker::nats::{NatsBroker, NatsConfig};
use tidings::broker::rabbitmq::{RabbitBroker, RabbitConfig};
use tidings::{Bus, HandlerError, MemoryBroker, MemoryLimits, Received};

use crate::measure::{HANDLED, Sample, Stopwatch};
use crate::order::{BenchOrder, order};
use crate::{IN_FLIGHT, PATIENCE, SOURCE, publish_from_tasks};

fn handle(order: Received<BenchOrder>) -> std::future::Ready<Result<(), HandlerError>> {
    std::hint::black_box(&*order);
    HANDLED.one();
    std::future::ready(Ok(()))
}

/// One task publishes `events` orders on the in-process broker (`limits`, or as it ships); one
/// plain subscriber handles them one at a time.
pub async fn memory(events: u64, limits: Option<MemoryLimits>) -> Sample {
    let broker = match limits {
        Some(limits) => MemoryBroker::with_limits(limits),
        None => MemoryBroker::new(),
    };
    let bus = Bus::new(broker).with_source(SOURCE);
    HANDLED.expect(events);
    let subscription = bus.subscribe(handle).await.expect("tidings: subscribing");
    let order = BenchOrder { order: order() };
    let stopwatch = Stopwatch::start();
    for _ in 0..events {
        bus.publish(&order).await.expect("tidings: publishing");
    }
    HANDLED.all_in("memory, tidings", PATIENCE).await;
    let sample = stopwatch.stop();
    subscription.shutdown().await;
    sample
}

/// The run's stream (`prefix` and the topic) and the group's durable consumer on it.
pub async fn nats(url: &str, prefix: &str, group: &str, events: u64) -> Sample {
    let config = NatsConfig::new(url)
        .stream_prefix(prefix)
        // The run deletes the stream; an hour bounds what a run that never got there leaves.
        .max_age(Duration::from_secs(3600));
    let broker = NatsBroker::connect(config)
        .await
        .unwrap_or_else(|e| panic!("tidings: connecting to NATS at {url}: {e}"));
    on_broker("nats, tidings", Bus::new(broker), group, events).await
}

/// The group's quorum queue, bound to the topic on the run's `exchange`.
pub async fn rabbitmq(url: &str, exchange: &str, group: &str, events: u64) -> Sample {
    let config = RabbitConfig::new(url).exchange(exchange);
    let broker = RabbitBroker::connect(config)
        .await
        .unwrap_or_else(|e| panic!("tidings: connecting to RabbitMQ: {e}"));
    on_broker("rabbitmq, tidings", Bus::new(broker), group, events).await
}

async fn on_broker(round: &str, bus: Bus, group: &str, events: u64) -> Sample {
    let bus = bus.with_source(SOURCE);
    HANDLED.expect(events);
    let subscription = bus
        .subscribe(handle)
        .group(group)
        .concurrency(IN_FLIGHT)
        .await
        .expect("tidings: subscribing");
    let order = Arc::new(BenchOrder { order: order() });
    let stopwatch = Stopwatch::start();
    publish_from_tasks(events, move || {
        let (bus, order) = (bus.clone(), order.clone());
        async move {
            bus.publish(&*order).await.expect("tidings: publishing");
        }
    })
    .await;
    HANDLED.all_in(round, PATIENCE).await;
    let sample = stopwatch.stop();
    subscription.shutdown().await;
    sample
}
