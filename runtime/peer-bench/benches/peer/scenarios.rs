//! The scenarios: what each side is given on each broker, and what is made on the servers and
//! removed again.

use std::time::Duration;

use futures_util::StreamExt as _;
use tidings::Event as _;
use tidings::MemoryLimits;
use tidings::broker::nats::async_nats::{self, jetstream};
use tidings::broker::rabbitmq::lapin;

use crate::order::BenchOrder;
use crate::peer::Binding;
use crate::report::{Figures, Side, pairs};
use crate::{Settings, ours, peer};

/// What the `-ce` scenarios add to the description.
const SAME_HEADERS: &str = "; ruststream sends tidings' CloudEvents headers too, made per message";

/// The in-process brokers: one task publishing, one subscriber handling one event at a time, on
/// a current-thread runtime. `matched` raises tidings' queue bound to the round's events and
/// keeps no history, which is what ruststream's broker does (an unbounded queue, nothing kept).
pub async fn memory(settings: &Settings, matched: bool, headers: bool) -> Figures {
    let events = settings.memory_events;
    let limits = matched.then(|| MemoryLimits {
        queue_capacity: usize::try_from(events).expect("PEER_MEMORY_EVENTS fits a usize"),
        history: 0,
        ..MemoryLimits::default()
    });
    let name = format!("peer-bench.{}.order", settings.run);
    let binding = headers.then_some(Binding::Nats);
    let pairs = pairs(settings.rounds, async |side, _| match side {
        Side::Tidings => ours::memory(events, limits).await,
        Side::Ruststream => peer::memory(events, &name, binding).await,
    })
    .await;
    let (scenario, what) = match (matched, headers) {
        (true, _) => (
            "memory-matched",
            "in-process brokers, tidings' queue bound raised to the round's events and no \
             history, as ruststream's broker; one task publishing, one subscriber",
        ),
        (false, false) => (
            "memory",
            "in-process brokers as they ship (tidings: queue bound 1,024, history 1,024; \
             ruststream: unbounded, keeps nothing); one task publishing, one subscriber",
        ),
        (false, true) => (
            "memory-ce",
            "in-process brokers as they ship; one task publishing, one subscriber",
        ),
    };
    let figures = pairs.figures(scenario, events);
    let what = format!("{what}{}", if headers { SAME_HEADERS } else { "" });
    pairs.print(&figures, events, &what);
    figures
}

/// JetStream: tidings makes its stream (named with the run's prefix) on first use; ruststream's
/// is made here with the settings tidings gives its own, as ruststream leaves streams to the
/// operator. Each round has a durable pull consumer of its own on each side.
pub async fn nats(settings: &Settings, headers: bool) -> Figures {
    let url = settings.nats_url.as_str();
    let events = settings.nats_events;
    let run = &settings.run;
    let admin = jetstream::new(
        async_nats::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connecting to NATS at {url} (TIDINGS_NATS_URL): {e}")),
    );
    remove_leftover_streams(&admin).await;
    let tidings_prefix = format!("peer-bench-{run}-");
    let tidings_stream = format!("{tidings_prefix}{}", BenchOrder::TOPIC.replace('.', "-"));
    let peer_stream = format!("peer-bench-{run}-ruststream");
    let peer_subject = format!("peer-bench.{run}.order");
    admin
        .create_stream(jetstream::stream::Config {
            name: peer_stream.clone(),
            subjects: vec![peer_subject.clone()],
            max_age: Duration::from_secs(3600),
            duplicate_window: Duration::from_secs(120),
            storage: jetstream::stream::StorageType::File,
            retention: jetstream::stream::RetentionPolicy::Limits,
            discard: jetstream::stream::DiscardPolicy::Old,
            ..Default::default()
        })
        .await
        .expect("making ruststream's stream");

    let binding = headers.then_some(Binding::Nats);
    let pairs = pairs(settings.rounds, async |side, round| {
        let consumer = format!("peer_bench_{run}_{round}");
        let (sample, stream) = match side {
            Side::Tidings => (
                ours::nats(url, &tidings_prefix, &consumer, events).await,
                &tidings_stream,
            ),
            Side::Ruststream => (
                peer::nats(url, &peer_stream, &peer_subject, &consumer, events, binding).await,
                &peer_stream,
            ),
        };
        if let Err(e) = admin.delete_consumer_from_stream(&consumer, stream).await {
            eprintln!("warning: could not delete the consumer {consumer} of {stream}: {e}");
        }
        sample
    })
    .await;
    let scenario = if headers { "nats-ce" } else { "nats" };
    let figures = pairs.figures(scenario, events);
    let what = format!(
        "JetStream file streams, a durable pull consumer per round, {in_flight} unacked and \
         {in_flight} handlers at most, ack after the handler; {publishers} tasks publishing, each \
         awaiting the server's ack, with a Nats-Msg-Id{}",
        if headers { SAME_HEADERS } else { "" },
        in_flight = crate::IN_FLIGHT,
        publishers = crate::PUBLISHERS,
    );
    pairs.print(&figures, events, &what);
    for stream in [&tidings_stream, &peer_stream] {
        if let Err(e) = admin.delete_stream(stream).await {
            eprintln!("warning: could not delete the stream {stream}: {e}");
        }
    }
    figures
}

/// Streams an earlier run of this benchmark left when it stopped before its end: named
/// `peer-bench-…`, or capturing the benchmark's own topic, which tidings would otherwise read
/// from in place of the stream of this run.
async fn remove_leftover_streams(admin: &jetstream::Context) {
    let mut leftovers = Vec::new();
    let mut names = admin.stream_names();
    while let Some(name) = names.next().await {
        match name {
            Ok(name) if name.starts_with("peer-bench-") => leftovers.push(name),
            Ok(_) => {}
            Err(e) => panic!("listing the streams of NATS: {e}"),
        }
    }
    if let Ok(name) = admin.stream_by_subject(BenchOrder::TOPIC).await
        && !leftovers.contains(&name)
    {
        leftovers.push(name);
    }
    for name in leftovers {
        eprintln!("note: deleting the stream {name}, left by an earlier run");
        admin
            .delete_stream(&name)
            .await
            .unwrap_or_else(|e| panic!("deleting the stream {name}: {e}"));
    }
}

/// RabbitMQ: a topic exchange per side and run, a durable quorum queue per side and round
/// (tidings declares its own; ruststream declares its own as told), each deleted after its
/// round.
pub async fn rabbitmq(settings: &Settings, headers: bool) -> Figures {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};

    let url = settings.rabbitmq_url.as_str();
    let events = settings.rabbitmq_events;
    let run = &settings.run;
    let admin = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("connecting to RabbitMQ (TIDINGS_RABBITMQ_URL): {e}"));
    let channel = admin.create_channel().await.expect("a channel to RabbitMQ");
    let tidings_exchange = format!("peer-bench-{run}-tidings");
    let peer_exchange = format!("peer-bench-{run}-ruststream");
    let peer_key = format!("peer-bench.{run}.order");

    let binding = headers.then_some(Binding::Amqp);
    let pairs = pairs(settings.rounds, async |side, round| {
        let (sample, queue) = match side {
            Side::Tidings => {
                let group = format!("peer_bench_{run}_{round}");
                let sample = ours::rabbitmq(url, &tidings_exchange, &group, events).await;
                // The adapter's name for a group's queue.
                (sample, format!("{}:{group}", BenchOrder::TOPIC))
            }
            Side::Ruststream => {
                let queue = format!("peer-bench-{run}-ruststream-{round}");
                let sample =
                    peer::rabbitmq(url, &peer_exchange, &queue, &peer_key, events, binding).await;
                (sample, queue)
            }
        };
        if let Err(e) = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
        {
            eprintln!("warning: could not delete the queue {queue}: {e}");
        }
        sample
    })
    .await;
    let scenario = if headers { "rabbitmq-ce" } else { "rabbitmq" };
    let figures = pairs.figures(scenario, events);
    let what = format!(
        "a durable quorum queue per round on a topic exchange, prefetch {in_flight} and \
         {in_flight} handlers, ack after the handler; {publishers} tasks publishing persistent \
         messages on one confirm channel, each awaiting its confirm{}",
        if headers { SAME_HEADERS } else { "" },
        in_flight = crate::IN_FLIGHT,
        publishers = crate::PUBLISHERS,
    );
    pairs.print(&figures, events, &what);
    // tidings' delay exchange beside its topic exchange, and the dead-letter queue of the
    // benchmark's own topic, which no other program uses.
    let dead_letters = format!("dlq.{}", BenchOrder::TOPIC);
    if let Err(e) = channel
        .queue_delete(dead_letters.as_str().into(), QueueDeleteOptions::default())
        .await
    {
        eprintln!("warning: could not delete the queue {dead_letters}: {e}");
    }
    let delay_exchange = format!("{tidings_exchange}.delay");
    for exchange in [&tidings_exchange, &delay_exchange, &peer_exchange] {
        if let Err(e) = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
        {
            eprintln!("warning: could not delete the exchange {exchange}: {e}");
        }
    }
    if let Err(e) = admin.close(200, "done".into()).await {
        eprintln!("warning: closing the connection to RabbitMQ: {e}");
    }
    figures
}
