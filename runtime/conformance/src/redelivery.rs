//! Cases on not losing messages: redelivery after a nack or a consumer that died, closing and
//! resubscribing a group, a broker restart.

use std::collections::BTreeSet;
use std::time::Duration;

use tidings_core::StartFrom;
use tidings_core::broker::Nack;

use super::probe::{
    Probe, PublishSubscribe, Restart, Resubscribe, probe_message, run_id, run_topic,
};
use super::support::{
    bus, collector, connect, must, next_delivery, publish_range, seqs, subscribe_raw, take,
};
use super::{BrokerFactory, Outcome};

/// A nacked message comes back with its attempt counted; an acked or terminated one does not.
pub async fn redelivery_after_nack(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let broker = connect(factory).await;
    let topic = run_topic("nack", &run);
    let mut stream = subscribe_raw(&broker, &topic, None, StartFrom::New).await;
    let delay = if broker.capabilities().nack_delay {
        Duration::from_millis(200)
    } else {
        Duration::ZERO
    };
    let sent = probe_message::<PublishSubscribe>(&run, 1);
    must(broker.publish(&topic, sent.clone()).await, "publishing");

    let first = next_delivery(
        &mut stream,
        patience,
        "redelivery_after_nack: first delivery",
    )
    .await;
    assert_eq!(first.attempt, 1, "a first delivery is attempt 1");
    assert_eq!(
        first.message.as_ref().expect("readable").envelope.id,
        sent.envelope.id
    );
    must(first.acker.nack(Nack::Retry(delay)).await, "nacking");

    let again = next_delivery(&mut stream, patience, "redelivery_after_nack: redelivery").await;
    assert_eq!(
        again.message.as_ref().expect("readable").envelope.id,
        sent.envelope.id
    );
    assert_eq!(again.message.as_ref().expect("readable").data, sent.data);
    assert_eq!(
        again.attempt, 2,
        "the broker must count attempts, or the retry bound never ends"
    );
    must(again.acker.ack().await, "acking");

    // A terminated message must not come back either: the next delivery is what follows it.
    let terminated = probe_message::<PublishSubscribe>(&run, 2);
    must(
        broker.publish(&topic, terminated.clone()).await,
        "publishing",
    );
    let delivery = next_delivery(
        &mut stream,
        patience,
        "redelivery_after_nack: second message",
    )
    .await;
    assert_eq!(
        delivery.message.as_ref().expect("readable").envelope.id,
        terminated.envelope.id
    );
    must(delivery.acker.nack(Nack::Terminate).await, "terminating");

    let marker = probe_message::<PublishSubscribe>(&run, 3);
    must(
        broker.publish(&topic, marker.clone()).await,
        "publishing the marker",
    );
    let next = next_delivery(&mut stream, patience, "redelivery_after_nack: marker").await;
    assert_eq!(
        next.message.as_ref().expect("readable").envelope.id,
        marker.envelope.id,
        "an acked or terminated message was delivered again"
    );
    must(next.acker.ack().await, "acking");
    stream.close().await;
    Outcome::Passed
}

/// A group member that dies holding a message unsettled: another member gets it.
pub async fn redelivery_after_consumer_dies(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let doomed = connect(factory).await;
    let capabilities = doomed.capabilities();
    if !capabilities.groups || !capabilities.redelivery {
        return Outcome::skipped("the broker does not redeliver to another group member");
    }
    let topic = run_topic("dies", &run);
    let group = Some(format!("dies_{run}"));
    let mut dying = subscribe_raw(&doomed, &topic, group.clone(), StartFrom::New).await;
    let sent = probe_message::<PublishSubscribe>(&run, 1);
    must(doomed.publish(&topic, sent.clone()).await, "publishing");
    let held = next_delivery(
        &mut dying,
        patience,
        "redelivery_after_consumer_dies: first",
    )
    .await;
    assert_eq!(
        held.message.as_ref().expect("readable").envelope.id,
        sent.envelope.id
    );

    let survivor = connect(factory).await;
    let mut stream = subscribe_raw(&survivor, &topic, group, StartFrom::New).await;
    // The consumer dies: its delivery, subscription and connection go without a word.
    drop(held);
    drop(dying);
    drop(doomed);

    let again = next_delivery(
        &mut stream,
        patience,
        "redelivery_after_consumer_dies: redelivery",
    )
    .await;
    let message = again.message.as_ref().expect("readable");
    assert_eq!(message.envelope.id, sent.envelope.id);
    assert_eq!(message.data, sent.data);
    assert!(
        again.attempt >= 2,
        "a redelivery counts as a later attempt, got {}",
        again.attempt
    );
    must(again.acker.ack().await, "acking");
    stream.close().await;
    Outcome::Passed
}

/// A group closed gracefully and joined again later misses nothing published in between, and
/// gets nothing twice.
pub async fn close_and_resubscribe(factory: &impl BrokerFactory) -> Outcome {
    let publisher = bus(connect(factory).await);
    if !publisher.broker().capabilities().groups {
        return Outcome::skipped("the broker has no consumer groups to resubscribe to");
    }
    let patience = factory.patience();
    let run = run_id();
    let group = format!("resubscribe_{run}");
    let (handler, mut inbox) = collector::<Resubscribe>(&run);

    let first = bus(connect(factory).await)
        .subscribe(handler.clone())
        .group(group.clone());
    let first = must(first.await, "joining the group");
    publish_range::<Resubscribe>(&publisher, &run, 0..10).await;
    let got = take(
        &mut inbox,
        10,
        patience,
        "close_and_resubscribe: before closing",
    )
    .await;
    assert_eq!(seqs(&got, "close_and_resubscribe"), (0..10).collect());
    first.shutdown().await;

    publish_range::<Resubscribe>(&publisher, &run, 10..20).await;
    let again = bus(connect(factory).await).subscribe(handler).group(group);
    let again = must(again.await, "joining the group again");
    publish_range::<Resubscribe>(&publisher, &run, [1000]).await;
    let got = take(
        &mut inbox,
        11,
        patience,
        "close_and_resubscribe: after resubscribing",
    )
    .await;
    let expected: BTreeSet<u64> = (10..20).chain([1000]).collect();
    assert_eq!(
        seqs(&got, "close_and_resubscribe"),
        expected,
        "lost or repeated events"
    );
    again.shutdown().await;
    Outcome::Passed
}

/// A durable broker restarted mid-stream loses nothing a publish confirmed.
pub async fn broker_restart(factory: &impl BrokerFactory) -> Outcome {
    let bus = bus(connect(factory).await);
    let capabilities = bus.broker().capabilities();
    if !capabilities.durable || !capabilities.groups {
        return Outcome::skipped("the broker is not durable, or has no groups to keep a place");
    }
    if !factory.can_restart() {
        return Outcome::skipped("the test environment cannot restart this broker");
    }
    let patience = factory.patience();
    let run = run_id();
    let group = format!("restart_{run}");
    let (handler, mut inbox) = collector::<Restart>(&run);
    let sub = must(
        bus.subscribe(handler.clone()).group(group.clone()).await,
        "joining the group",
    );
    publish_range::<Restart>(&bus, &run, 0..10).await;
    if let Err(e) = factory.restart().await {
        panic!("broker_restart: restarting the broker failed: {e}");
    }
    // Publishing may fail while the server comes back; each event is retried until confirmed.
    let deadline = tokio::time::Instant::now() + patience;
    for seq in 10..20u64 {
        let event = Restart::new(&run, seq, "");
        loop {
            match bus.publish_with(&event).correlation_id(&run).await {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    panic!("broker_restart: publishing after the restart: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    // At-least-once allows repeats across a restart; what counts is that nothing is missing.
    let mut sub = Some(sub);
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + patience;
    while seen.len() < 20 {
        if sub.as_ref().is_some_and(|s| !s.is_running()) {
            // The adapter ended the subscription with the connection: join the group again.
            sub = Some(must(
                bus.subscribe(handler.clone()).group(group.clone()).await,
                "rejoining",
            ));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker_restart: received {} of 20 within {patience:?}: {seen:?}",
            seen.len()
        );
        // Short waits, so a subscription the restart ended is noticed and replaced.
        if let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(250), inbox.recv()).await
        {
            seen.insert(event.seq);
        }
    }
    if let Some(sub) = sub {
        sub.shutdown().await;
    }
    Outcome::Passed
}
