//! Cases on getting messages where they belong: publish/subscribe, many at once, topic isolation,
//! fan-out, groups, order per key, start from the oldest.

use std::collections::BTreeSet;

use tidings_core::{ContentType, Event, StartFrom, Topic};

use super::probe::{
    FanOut, Groups, ManyAtOnce, OrderPerKey, Probe, PublishSubscribe, SOURCE, StartOldest,
    probe_message, run_id, run_topic,
};
use super::support::{
    bus, collector, connect, must, next_delivery, publish_range, seqs, subscribe_raw, take,
};
use super::{BrokerFactory, Outcome};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// A typed subscriber receives what is published, with every envelope attribute intact.
pub async fn publish_subscribe(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let bus = bus(connect(factory).await);
    let (handler, mut inbox) = collector::<PublishSubscribe>(&run);
    let sub = must(bus.subscribe(handler).await, "subscribing");

    let first = PublishSubscribe::new(&run, 1, "");
    let publish = bus
        .publish_with(&first)
        .key("order-7")
        .subject("orders/7")
        .correlation_id(&run)
        .causation_id("cause-1")
        .traceparent(TRACEPARENT);
    must(publish.await, "publishing with every option");
    publish_range::<PublishSubscribe>(&bus, &run, 2..=10).await;

    let got = take(&mut inbox, 10, patience, "publish_subscribe").await;
    assert_eq!(
        seqs(&got, "publish_subscribe"),
        (1..=10).collect::<BTreeSet<_>>()
    );
    let first = got
        .iter()
        .find(|e| e.seq() == 1)
        .expect("probe 1 is among those received");
    assert_eq!(
        **first,
        PublishSubscribe::new(&run, 1, ""),
        "the event decodes as published"
    );
    assert_eq!(first.attempt(), 1);
    let envelope = first.envelope();
    assert_eq!(envelope.event_type, PublishSubscribe::TOPIC);
    assert_eq!(envelope.schema(), Some(PublishSubscribe::SCHEMA));
    assert_eq!(
        envelope.data_schema.as_deref(),
        Some("proto:tidings.conformance.v1.Probe")
    );
    assert_eq!(envelope.content_type(), Some(ContentType::Protobuf));
    assert_eq!(&*envelope.source, SOURCE);
    assert_eq!(envelope.partition_key.as_deref(), Some("order-7"));
    assert_eq!(envelope.subject.as_deref(), Some("orders/7"));
    assert_eq!(envelope.correlation_id.as_deref(), Some(run.as_str()));
    assert_eq!(envelope.causation_id.as_deref(), Some("cause-1"));
    assert_eq!(envelope.traceparent.as_deref(), Some(TRACEPARENT));
    assert!(envelope.time.is_some(), "time is set");
    let id = envelope.id.as_bytes();
    assert!(
        id.len() == 36 && id[14] == b'7',
        "the id is a UUID v7: {}",
        envelope.id
    );
    let ids: BTreeSet<_> = got.iter().map(|e| e.envelope().id.clone()).collect();
    assert_eq!(ids.len(), 10, "every event has its own id");
    sub.shutdown().await;
    Outcome::Passed
}

/// Four publishers and three subscribers at once, each on its own connection: every subscriber
/// gets every event once.
pub async fn many_publishers_and_subscribers(factory: &impl BrokerFactory) -> Outcome {
    const PUBLISHERS: u64 = 4;
    const EACH: u64 = 25;
    let patience = factory.patience();
    let run = run_id();
    let mut subs = Vec::new();
    let mut inboxes = Vec::new();
    for _ in 0..3 {
        let (handler, inbox) = collector::<ManyAtOnce>(&run);
        let bus = bus(connect(factory).await);
        subs.push(must(
            bus.subscribe(handler).concurrency(4).await,
            "subscribing",
        ));
        inboxes.push(inbox);
    }
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let bus = bus(connect(factory).await);
        let run = run.clone();
        publishers.push(tokio::spawn(async move {
            publish_range::<ManyAtOnce>(&bus, &run, p * EACH..(p + 1) * EACH).await;
        }));
    }
    for publisher in publishers {
        must(publisher.await, "a publisher task");
    }
    let all: BTreeSet<u64> = (0..PUBLISHERS * EACH).collect();
    for inbox in &mut inboxes {
        let got = take(
            inbox,
            all.len(),
            patience,
            "many_publishers_and_subscribers",
        )
        .await;
        assert_eq!(seqs(&got, "many_publishers_and_subscribers"), all);
    }
    for sub in subs {
        sub.shutdown().await;
    }
    Outcome::Passed
}

/// A subscription receives its topic only: not a sibling topic, not another major of its own.
pub async fn topic_isolation(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let broker = connect(factory).await;
    let a = run_topic("isolation_a", &run);
    let b = run_topic("isolation_b", &run);
    let a2 = Topic::new(format!("conformance.isolation_a{run}.probe.v2")).expect("a valid topic");
    let mut streams = Vec::new();
    for topic in [&a, &b, &a2] {
        streams.push(subscribe_raw(&broker, topic, None, StartFrom::New).await);
    }
    let sent = [(&b, 1), (&a2, 2), (&a, 3), (&a, 4)]
        .map(|(topic, seq)| (topic, probe_message::<PublishSubscribe>(&run, seq)));
    for (topic, message) in &sent {
        must(
            broker.publish(topic, message.clone()).await,
            "publishing on the seam",
        );
    }
    // Each stream must see exactly its own messages: a leak shows up as a message that is not
    // one of them. (Their order is not checked here: a topic of several partitions keeps it per
    // key only, and these carry none; see `order_per_key`.)
    let expected = [(0, vec![2, 3]), (1, vec![0]), (2, vec![1])];
    for (stream, mut wanted) in expected {
        while !wanted.is_empty() {
            let what = format!("topic_isolation on {}", sent[wanted[0]].0);
            let delivery = next_delivery(&mut streams[stream], patience, &what).await;
            let message = delivery.message.as_ref().expect("a readable message");
            let Some(at) = wanted
                .iter()
                .position(|&index| sent[index].1.envelope.id == message.envelope.id)
            else {
                panic!(
                    "{what}: another topic's message, or one delivered twice: {:?}",
                    message.envelope
                );
            };
            let original = &sent[wanted.remove(at)].1;
            assert_eq!(
                message.data, original.data,
                "{what}: data changed in transit"
            );
            assert_eq!(message.envelope.event_type, original.envelope.event_type);
            assert_eq!(message.envelope.data_schema, original.envelope.data_schema);
            assert_eq!(
                message.envelope.correlation_id,
                original.envelope.correlation_id
            );
            must(delivery.acker.ack().await, "acking");
        }
    }
    Outcome::Passed
}

/// Every plain subscriber gets every event.
pub async fn fan_out(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let mut subs = Vec::new();
    let mut inboxes = Vec::new();
    for _ in 0..3 {
        let (handler, inbox) = collector::<FanOut>(&run);
        subs.push(must(
            bus(connect(factory).await).subscribe(handler).await,
            "subscribing",
        ));
        inboxes.push(inbox);
    }
    let publisher = bus(connect(factory).await);
    publish_range::<FanOut>(&publisher, &run, 0..20).await;
    for inbox in &mut inboxes {
        let got = take(inbox, 20, patience, "fan_out").await;
        assert_eq!(seqs(&got, "fan_out"), (0..20).collect());
    }
    for sub in subs {
        sub.shutdown().await;
    }
    Outcome::Passed
}

/// Members of one group share the events, each handled once across them; another group and a
/// plain subscriber still get all of them.
pub async fn groups(factory: &impl BrokerFactory) -> Outcome {
    let publisher = bus(connect(factory).await);
    if !publisher.broker().capabilities().groups {
        return Outcome::skipped("the broker has no consumer groups");
    }
    let patience = factory.patience();
    let run = run_id();
    let (shared, mut group_inbox) = collector::<Groups>(&run);
    let (other, mut other_inbox) = collector::<Groups>(&run);
    let (plain, mut plain_inbox) = collector::<Groups>(&run);
    let mut subs = Vec::new();
    for _ in 0..3 {
        let member = bus(connect(factory).await)
            .subscribe(shared.clone())
            .group(format!("workers_{run}"));
        subs.push(must(member.await, "joining the group"));
    }
    let second = publisher.subscribe(other).group(format!("auditors_{run}"));
    subs.push(must(second.await, "joining the second group"));
    subs.push(must(
        publisher.subscribe(plain).await,
        "subscribing plainly",
    ));

    publish_range::<Groups>(&publisher, &run, 0..30).await;
    // A last event behind the others, so duplicates of earlier ones have had their chance.
    publish_range::<Groups>(&publisher, &run, [1000]).await;
    let all: BTreeSet<u64> = (0..30).chain([1000]).collect();
    let got = take(&mut group_inbox, all.len(), patience, "groups: the group").await;
    assert_eq!(
        seqs(&got, "groups: the group"),
        all,
        "each event once across the members"
    );
    assert!(
        group_inbox.try_recv().is_err(),
        "groups: an event was handled twice"
    );
    let got = take(
        &mut other_inbox,
        all.len(),
        patience,
        "groups: the second group",
    )
    .await;
    assert_eq!(seqs(&got, "groups: the second group"), all);
    let got = take(
        &mut plain_inbox,
        all.len(),
        patience,
        "groups: the plain subscriber",
    )
    .await;
    assert_eq!(seqs(&got, "groups: the plain subscriber"), all);
    for sub in subs {
        sub.shutdown().await;
    }
    Outcome::Passed
}

/// Events with one partition key arrive in publish order.
pub async fn order_per_key(factory: &impl BrokerFactory) -> Outcome {
    let bus = bus(connect(factory).await);
    if !bus.broker().capabilities().ordered_per_key {
        return Outcome::skipped("the broker does not promise order per key");
    }
    let patience = factory.patience();
    let run = run_id();
    let (handler, mut inbox) = collector::<OrderPerKey>(&run);
    let sub = must(bus.subscribe(handler).await, "subscribing");
    let keys = ["k0", "k1", "k2"];
    for seq in 0..60u64 {
        let event = OrderPerKey::new(&run, seq, keys[seq as usize % keys.len()]);
        must(bus.publish(&event).await, "publishing a keyed probe");
    }
    let got = take(&mut inbox, 60, patience, "order_per_key").await;
    for key in keys {
        let order: Vec<u64> = got.iter().filter(|e| e.key == key).map(|e| e.seq).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "order_per_key: key {key} arrived as {order:?}"
        );
        assert_eq!(order.len(), 20);
    }
    for event in &got {
        assert_eq!(
            event.envelope().partition_key.as_deref(),
            Some(event.key.as_str())
        );
    }
    sub.shutdown().await;
    Outcome::Passed
}

/// A subscription or a new group that starts from the oldest gets what was published before it.
pub async fn start_from_oldest(factory: &impl BrokerFactory) -> Outcome {
    let bus = bus(connect(factory).await);
    if !bus.broker().capabilities().history {
        return Outcome::skipped("the broker keeps no history");
    }
    let patience = factory.patience();
    let run = run_id();
    publish_range::<StartOldest>(&bus, &run, 0..5).await;
    let (plain, plain_inbox) = collector::<StartOldest>(&run);
    let mut subs = vec![must(
        bus.subscribe(plain).start(StartFrom::Oldest).await,
        "subscribing from the oldest",
    )];
    let mut inboxes = vec![plain_inbox];
    // A new group starts from the oldest too, where the broker has groups.
    if bus.broker().capabilities().groups {
        let (grouped, group_inbox) = collector::<StartOldest>(&run);
        let group = bus
            .subscribe(grouped)
            .group(format!("replay_{run}"))
            .start(StartFrom::Oldest);
        subs.push(must(group.await, "a new group from the oldest"));
        inboxes.push(group_inbox);
    }
    publish_range::<StartOldest>(&bus, &run, [5]).await;
    for inbox in &mut inboxes {
        let got = take(inbox, 6, patience, "start_from_oldest").await;
        assert_eq!(seqs(&got, "start_from_oldest"), (0..6).collect());
    }
    for sub in subs {
        sub.shutdown().await;
    }
    Outcome::Passed
}
