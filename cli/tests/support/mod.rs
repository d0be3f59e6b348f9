//! What the tests of the broker verbs share: the test events, the `tidings` binary, and the
//! scenarios every broker runs (each test names its broker and its own event, so tests running
//! at once share no topic).

#![allow(dead_code)] // Each test file uses the scenarios of its own broker.

use std::collections::HashMap;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tidings::{Broker, Bus, Event, HandlerError, Received, RetryPolicy, Topic};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The schemas of the test events, relative to the crate.
pub const SCHEMAS: &str = "tests/schemas";

/// Why an order moved, as the test schema says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Reason {
    Unspecified = 0,
    CustomerRequest = 1,
    OutOfStock = 2,
}

/// A test event: every one has the same fields.
pub trait Order: Event + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    fn new(order_id: &str, quantity: u32) -> Self;
    fn order_id(&self) -> &str;
}

macro_rules! events {
    ($($name:ident = $topic:tt, $schema:tt;)*) => {$(
        #[derive(Clone, PartialEq, prost::Message, tidings::Event)]
        #[event(topic = $topic, schema = $schema)]
        pub struct $name {
            #[prost(string, tag = "1")]
            pub order_id: String,
            #[prost(uint32, tag = "2")]
            pub quantity: u32,
            #[prost(enumeration = "Reason", tag = "3")]
            pub reason: i32,
            #[prost(message, optional, tag = "4")]
            pub at: Option<prost_types::Timestamp>,
        }

        impl Order for $name {
            fn new(order_id: &str, quantity: u32) -> Self {
                $name {
                    order_id: order_id.to_owned(),
                    quantity,
                    reason: Reason::OutOfStock as i32,
                    at: Some(prost_types::Timestamp { seconds: 1_767_225_600, nanos: 0 }),
                }
            }

            fn order_id(&self) -> &str {
                &self.order_id
            }
        }
    )*};
}

events! {
    NatsDlq = "events.cli.nats_dlq.v1", "events.cli.v1.NatsDlq";
    NatsTail = "events.cli.nats_tail.v1", "events.cli.v1.NatsTail";
    NatsPublish = "events.cli.nats_publish.v1", "events.cli.v1.NatsPublish";
    NatsKill = "events.cli.nats_kill.v1", "events.cli.v1.NatsKill";
    NatsWindow = "events.cli.nats_window.v1", "events.cli.v1.NatsWindow";
    NatsGarbage = "events.cli.nats_garbage.v1", "events.cli.v1.NatsGarbage";
    RedisDlq = "events.cli.redis_dlq.v1", "events.cli.v1.RedisDlq";
    RedisTail = "events.cli.redis_tail.v1", "events.cli.v1.RedisTail";
    RedisPublish = "events.cli.redis_publish.v1", "events.cli.v1.RedisPublish";
    RedisKill = "events.cli.redis_kill.v1", "events.cli.v1.RedisKill";
    RabbitDlq = "events.cli.rabbit_dlq.v1", "events.cli.v1.RabbitDlq";
    RabbitTail = "events.cli.rabbit_tail.v1", "events.cli.v1.RabbitTail";
    RabbitPublish = "events.cli.rabbit_publish.v1", "events.cli.v1.RabbitPublish";
    RabbitKill = "events.cli.rabbit_kill.v1", "events.cli.v1.RabbitKill";
    KafkaDlq = "events.cli.kafka_dlq.v1", "events.cli.v1.KafkaDlq";
    KafkaTail = "events.cli.kafka_tail.v1", "events.cli.v1.KafkaTail";
    KafkaPublish = "events.cli.kafka_publish.v1", "events.cli.v1.KafkaPublish";
    KafkaKill = "events.cli.kafka_kill.v1", "events.cli.v1.KafkaKill";
}

/// The `tidings` binary with `args`, run from the crate's folder.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("TIDINGS_BROKER_URL")
        .env_remove("TIDINGS_BROKER_USER")
        .env_remove("TIDINGS_BROKER_PASSWORD")
        .kill_on_drop(true);
    command
}

/// Runs a verb on the broker `url` with the test schemas, and waits for it.
pub async fn tidings(url: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--schemas", SCHEMAS, "--broker", url]);
    command(&all).output().await.expect("the binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `check` until it holds, failing after a minute with `what`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connects to the broker `url`; a broker that cannot be reached fails the test.
pub async fn connect(url: &str) -> Arc<dyn Broker> {
    tidings::connect(url)
        .await
        .unwrap_or_else(|e| panic!("the broker must be running for this test: {e}"))
}

/// How many dead letters `E`'s topic keeps.
pub async fn dead_letter_count<E: Event>(broker: &Arc<dyn Broker>) -> usize {
    let dlq = Topic::of::<E>().unwrap().dead_letter().unwrap();
    let mut letters = broker.browse(&dlq).await.expect("dead letters can be read");
    let mut count = 0;
    while let Some(next) = letters.next().await {
        next.expect("a dead letter");
        count += 1;
    }
    letters.close().await;
    count
}

/// Removes what earlier runs left in `E`'s dead letters.
pub async fn purge_dead_letters<E: Event>(broker: &Arc<dyn Broker>) {
    let dlq = Topic::of::<E>().unwrap().dead_letter().unwrap();
    let mut letters = broker.browse(&dlq).await.expect("dead letters can be read");
    while let Some(next) = letters.next().await {
        next.expect("a dead letter")
            .acker
            .ack()
            .await
            .expect("a dead letter can be removed");
    }
    letters.close().await;
}

/// `dlq list --format json`, parsed.
pub async fn listed(url: &str, topic: &str) -> Vec<Value> {
    let out = tidings(url, &["dlq", "list", topic, "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

/// A handler that fails while `fixed` is false, and counts what it handled by order id.
pub struct Flaky {
    pub fixed: AtomicBool,
    pub handled: Mutex<HashMap<String, u32>>,
}

impl Flaky {
    pub fn new() -> Arc<Flaky> {
        Arc::new(Flaky {
            fixed: AtomicBool::new(false),
            handled: Mutex::default(),
        })
    }

    pub fn handled(&self) -> HashMap<String, u32> {
        self.handled.lock().unwrap().clone()
    }
}

/// A bus on `url` with a subscription to `E` in a group of this run's own, handled by
/// `flaky`: two attempts, then a dead letter.
pub async fn subscribe_flaky<E: Order>(
    url: &str,
    flaky: &Arc<Flaky>,
    attempts: u32,
) -> (Bus, tidings::Subscription) {
    let bus = Bus::from_arc(connect(url).await).with_source("cli-tests");
    let state = flaky.clone();
    let subscription = bus
        .subscribe(move |order: Received<E>| {
            let state = state.clone();
            async move {
                if !state.fixed.load(Ordering::SeqCst) {
                    return Err(HandlerError::permanent(format!(
                        "boom on {}",
                        order.order_id()
                    )));
                }
                *state
                    .handled
                    .lock()
                    .unwrap()
                    .entry(order.order_id().to_owned())
                    .or_default() += 1;
                Ok(())
            }
        })
        .group(format!("cli-{}", uuid::Uuid::now_v7().simple()))
        .retry(
            RetryPolicy::default()
                .max_attempts(attempts)
                .initial_backoff(Duration::from_millis(10)),
        )
        .await
        .expect("the subscription starts");
    (bus, subscription)
}

/// A handler fails three events into the dead letters; `dlq list` shows them with reason and
/// attempts; once the handler is fixed, `dlq replay --all` has each handled once and leaves
/// the dead letters empty.
pub async fn dead_letters_listed_and_replayed<E: Order>(url: &str) {
    let broker = connect(url).await;
    purge_dead_letters::<E>(&broker).await;
    let flaky = Flaky::new();
    let (bus, subscription) = subscribe_flaky::<E>(url, &flaky, 1).await;
    for n in 1..=3 {
        bus.publish(&E::new(&format!("o-{n}"), n))
            .await
            .expect("published");
    }
    eventually("three dead letters", || async {
        dead_letter_count::<E>(&broker).await == 3
    })
    .await;

    let letters = listed(url, E::TOPIC).await;
    assert_eq!(letters.len(), 3, "{letters:#?}");
    let mut orders: Vec<&str> = letters
        .iter()
        .map(|l| l["data"]["orderId"].as_str().expect("decoded data"))
        .collect();
    orders.sort_unstable();
    assert_eq!(orders, ["o-1", "o-2", "o-3"]);
    for letter in &letters {
        let order = letter["data"]["orderId"].as_str().unwrap();
        assert_eq!(letter["topic"], E::TOPIC);
        assert_eq!(letter["attempts"], 1, "{letter}");
        let reason = letter["reason"].as_str().expect("a reason");
        assert!(reason.contains(&format!("boom on {order}")), "{reason}");
        assert!(letter["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(letter["time"].as_str().is_some());
    }

    flaky.fixed.store(true, Ordering::SeqCst);
    let out = tidings(url, &["dlq", "replay", E::TOPIC, "--all"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        3,
        "{}",
        text(&out.stdout)
    );
    eventually("the three replayed events handled", || async {
        flaky.handled().len() == 3
    })
    .await;
    assert!(listed(url, E::TOPIC).await.is_empty());
    // Nothing more comes: each was handled once.
    subscription.shutdown().await;
    assert!(
        flaky.handled().values().all(|&n| n == 1),
        "{:?}",
        flaky.handled()
    );
}

/// `tail --format json` prints an event a typed publisher published, as canonical JSON; the
/// id and time, which change each run, replaced.
pub async fn tail_prints_a_typed_event<E: Order>(url: &str) -> String {
    let broker = connect(url).await;
    let mut tail = command(&[
        "tail",
        E::TOPIC,
        "--format",
        "json",
        "--count",
        "1",
        "--schemas",
        SCHEMAS,
        "--broker",
        url,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("tail starts");
    wait_for_line(&mut tail, "tailing").await;
    let bus = Bus::from_arc(broker).with_source("cli-tests");
    let receipt = bus.publish(&E::new("o-tail", 7)).await.expect("published");
    let out = tail.wait_with_output().await.expect("tail ends");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    let mut event: Value = serde_json::from_str(line.trim()).expect("one JSON object");
    assert_eq!(event["attributes"]["id"], receipt.id().as_str());
    event["attributes"]["id"] = Value::from("[id]");
    event["attributes"]["time"] = Value::from("[time]");
    serde_json::to_string_pretty(&event).unwrap()
}

/// Reads `child`'s standard error until a line containing `needle`, then lets the rest flow.
pub async fn wait_for_line(child: &mut Child, needle: &str) {
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Duration::from_secs(60);
    let found = tokio::time::timeout(deadline, async {
        while let Some(line) = lines.next_line().await.expect("stderr readable") {
            if line.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no line with {needle:?} on stderr");
    // Keep draining, so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
}

/// `publish` of a JSON reaches a typed handler; a JSON with a field of the wrong type is
/// refused with the path of that field, and publishes nothing.
pub async fn publish_reaches_a_typed_handler<E: Order>(url: &str) {
    let seen = Arc::new(Mutex::new(Vec::<E>::new()));
    let bus = Bus::from_arc(connect(url).await);
    let seen_by_handler = seen.clone();
    let typed = bus
        .subscribe(move |event: Received<E>| {
            let seen = seen_by_handler.clone();
            async move { seen.lock().unwrap().push((*event).clone()) }
        })
        .group(format!("cli-{}", uuid::Uuid::now_v7().simple()))
        .await
        .expect("the subscription starts");

    let bad = r#"{"orderId": "o-bad", "quantity": "many"}"#;
    let bad = tidings(url, &["publish", E::TOPIC, "--data", bad]).await;
    assert_eq!(bad.status.code(), Some(1));
    let refused = text(&bad.stderr);
    assert!(refused.contains("at `quantity`"), "{refused}");

    let json = r#"{"orderId": "o-json", "quantity": 3, "reason": "REASON_OUT_OF_STOCK", "at": "2026-01-01T00:00:00Z"}"#;
    let out = tidings(url, &["publish", E::TOPIC, "--data", json]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    assert_eq!(id.len(), 36, "an event id: {id}");
    eventually("the typed handler got the event", || async {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    typed.shutdown().await;
    // Only the good one was published.
    assert_eq!(*seen.lock().unwrap(), [E::new("o-json", 3)]);
}

/// A replay killed with SIGKILL halfway, then run again: every dead letter is handled at least
/// once, and none is left.
pub async fn replay_killed_halfway_loses_nothing<E: Order>(url: &str) {
    const EVENTS: usize = 200;
    let broker = connect(url).await;
    purge_dead_letters::<E>(&broker).await;
    let flaky = Flaky::new();
    let (bus, subscription) = subscribe_flaky::<E>(url, &flaky, 1).await;
    for n in 0..EVENTS {
        bus.publish(&E::new(&format!("o-{n}"), 1))
            .await
            .expect("published");
    }
    eventually("every event dead-lettered", || async {
        dead_letter_count::<E>(&broker).await == EVENTS
    })
    .await;
    flaky.fixed.store(true, Ordering::SeqCst);

    let mut replay = command(&[
        "dlq",
        "replay",
        E::TOPIC,
        "--all",
        "--schemas",
        SCHEMAS,
        "--broker",
        url,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("the replay starts");
    let mut lines = BufReader::new(replay.stdout.take().unwrap()).lines();
    let mut replayed = 0;
    while replayed < EVENTS / 2 {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the replay goes on");
        if line.starts_with("replayed ") {
            replayed += 1;
        }
    }
    replay.start_kill().expect("SIGKILL sent");
    replay.wait().await.expect("the replay ends");
    let left = dead_letter_count::<E>(&broker).await;
    assert!(
        left > 0 && left < EVENTS,
        "{left} dead letters left: killed halfway"
    );

    let out = tidings(url, &["dlq", "replay", E::TOPIC, "--all"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    eventually("every dead letter handled", || async {
        flaky.handled().len() == EVENTS
    })
    .await;
    assert_eq!(dead_letter_count::<E>(&broker).await, 0);
    subscription.shutdown().await;
}
