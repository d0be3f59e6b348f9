//! The Redis Streams adapter on a real server: the conformance suite on the server the
//! environment names (`TIDINGS_REDIS_URL`, or 127.0.0.1:6379), and interoperation with
//! `redis-cli` as a producer and consumer of CloudEvents stream entries written elsewhere.
//! The restart case needs a server that persists, and runs in `redis_restart.rs`.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tidings_conformance::BrokerFactory;
use tidings_conformance::probe::{PublishSubscribe, probe_message, run_id, run_topic};
use tidings_conformance::seam::next;
use tidings_core::broker::{DeadLetter, DeliveryStream, SubscribeRequest};
use tidings_core::{Broker, BrokerError, StartFrom, Topic};
use tidings_redis::{RedisBroker, RedisConfig};

/// Connections to the Redis server the environment names.
struct Redis;

impl BrokerFactory for Redis {
    async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
        // A short claim idle time, so a consumer that dies is taken over within the cases'
        // patience; typed cases reuse their topics run after run, so their streams are kept
        // short on the shared server.
        let config = RedisConfig::from_env()
            .claim_idle(Duration::from_secs(1))
            .max_len(Some(10_000));
        Ok(Arc::new(RedisBroker::connect(config).await?))
    }

    async fn publish_foreign(&self, topic: &Topic, payload: Vec<u8>) -> Option<Result<(), String>> {
        // An entry of the topic's stream as another program writes one: the payload in a `data`
        // field, and a field of its own.
        let payload = String::from_utf8(payload).expect("a text payload");
        redis_cli(&[
            "XADD",
            topic.as_str(),
            "*",
            "origin",
            "legacy",
            "data",
            &payload,
        ]);
        Some(Ok(()))
    }
}

tidings_conformance::conformance_tests!(
    Redis,
    // The shared server keeps nothing on disk; redis_restart.rs restarts a durable one.
    not_promised [broker_restart],
    #[ignore = "needs Redis at TIDINGS_REDIS_URL (default redis://127.0.0.1:6379): run with --include-ignored, as the test command does"]
);

#[tokio::test]
async fn an_unreachable_server_is_named_with_its_address_and_no_password() {
    let error = RedisBroker::connect(RedisConfig::new("redis://app:secret@127.0.0.1:1"))
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        matches!(
            error,
            BrokerError::Unreachable {
                broker: "redis",
                ..
            }
        ),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("redis://app:***@127.0.0.1:1"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

/// Runs `redis-cli` against the environment's server and returns its output lines.
fn redis_cli(args: &[&str]) -> Vec<String> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    redis_cli_bytes(&args)
}

/// `redis_cli` with arguments of any bytes, UTF-8 or not.
fn redis_cli_bytes(args: &[&[u8]]) -> Vec<String> {
    use std::os::unix::ffi::OsStrExt;
    let args: Vec<&std::ffi::OsStr> = args
        .iter()
        .map(|a| std::ffi::OsStr::from_bytes(a))
        .collect();
    let url =
        std::env::var("TIDINGS_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let output = Command::new("redis-cli")
        .args(["-u", &url, "--raw"])
        .args(&args)
        .output()
        .expect("running redis-cli (is Redis installed?)");
    assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn subscribe(broker: &RedisBroker, topic: &Topic) -> Box<dyn DeliveryStream> {
    let request = SubscribeRequest {
        topic: topic.clone(),
        group: None,
        start: StartFrom::Oldest,
        prefetch: 8,
    };
    broker.subscribe(request).await.expect("subscribing")
}

/// How long a test waits for a delivery.
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis at TIDINGS_REDIS_URL (default redis://127.0.0.1:6379): run with --include-ignored, as the test command does"]
async fn a_cloudevents_producer_written_elsewhere_reaches_a_subscriber() {
    let broker = RedisBroker::from_env().await.expect("connecting");
    let topic = run_topic("redisin", &run_id());
    redis_cli(&[
        "XADD",
        topic.as_str(),
        "*",
        "ce_specversion",
        "1.0",
        "ce_id",
        "sensor-42",
        "ce_source",
        "urn:sensor:7",
        "ce_type",
        topic.as_str(),
        "ce_tenant",
        "acme",
        "content-type",
        "application/json",
        "data",
        r#"{"celsius":21.5}"#,
    ]);
    let mut stream = subscribe(&broker, &topic).await;
    let delivery = next(&mut stream, PATIENCE).await;
    let message = delivery
        .message
        .as_ref()
        .expect("a binary-mode CloudEvent is readable");
    assert_eq!(message.envelope.id, "sensor-42");
    assert_eq!(&*message.envelope.source, "urn:sensor:7");
    assert_eq!(message.envelope.event_type, topic.as_str());
    assert_eq!(
        message.envelope.data_content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(message.envelope.extension("tenant"), Some("acme"));
    assert_eq!(&message.data[..], br#"{"celsius":21.5}"#);
    delivery.acker.ack().await.expect("acking");
    stream.close().await;
    redis_cli(&["DEL", topic.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis at TIDINGS_REDIS_URL (default redis://127.0.0.1:6379): run with --include-ignored, as the test command does"]
async fn a_consumer_written_elsewhere_reads_the_attributes_as_fields() {
    let broker = RedisBroker::from_env().await.expect("connecting");
    let run = run_id();
    let topic = run_topic("redisout", &run);
    let sent = probe_message::<PublishSubscribe>(&run, 1);
    broker
        .publish(&topic, sent.clone())
        .await
        .expect("publishing");
    let lines = redis_cli(&["XRANGE", topic.as_str(), "-", "+"]);
    let field = |name: &str| {
        let at = lines
            .iter()
            .position(|l| l == name)
            .unwrap_or_else(|| panic!("{name} in {lines:?}"));
        lines[at + 1].clone()
    };
    assert_eq!(field("ce_specversion"), "1.0");
    assert_eq!(field("ce_id"), sent.envelope.id);
    assert_eq!(field("ce_type"), sent.envelope.event_type);
    assert_eq!(field("ce_dataschema"), "proto:tidings.conformance.v1.Probe");
    assert_eq!(field("ce_correlationid"), run);
    assert_eq!(field("content-type"), "application/protobuf");
    assert!(lines.iter().any(|l| l == "data"), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l == "ce_datacontenttype"),
        "the content type has its own field"
    );
    redis_cli(&["DEL", topic.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis at TIDINGS_REDIS_URL (default redis://127.0.0.1:6379): run with --include-ignored, as the test command does"]
async fn an_entry_that_is_no_cloudevent_is_dead_lettered_with_the_reason() {
    let broker = RedisBroker::from_env().await.expect("connecting");
    let topic = run_topic("redisbad", &run_id());
    let dead = topic.dead_letter().expect("a dead-letter topic");
    redis_cli(&["XADD", topic.as_str(), "*", "temperature", "21.5"]);
    let mut stream = subscribe(&broker, &topic).await;
    let delivery = next(&mut stream, PATIENCE).await;
    let malformed = delivery
        .message
        .as_ref()
        .expect_err("no CloudEvents fields");
    assert!(
        malformed.reason.contains("specversion"),
        "{}",
        malformed.reason
    );
    let reason = malformed.reason.clone();
    let letter = DeadLetter {
        reason: reason.clone(),
        attempts: 1,
        topic: topic.clone(),
    };
    delivery
        .acker
        .dead_letter(letter)
        .await
        .expect("dead-lettering");

    let lines = redis_cli(&["XRANGE", dead.as_str(), "-", "+"]);
    for (name, value) in [
        ("temperature", "21.5"),
        ("ce_deadletterreason", reason.as_str()),
        ("ce_deadletterattempts", "1"),
        ("ce_deadlettertopic", topic.as_str()),
    ] {
        let at = lines
            .iter()
            .position(|l| l == name)
            .unwrap_or_else(|| panic!("{name} in {lines:?}"));
        assert_eq!(lines[at + 1], value);
    }
    stream.close().await;
    redis_cli(&["DEL", topic.as_str(), dead.as_str()]);
}

/// A group member whose handler runs past the claim idle time keeps its entry: the other
/// members take over entries of a consumer that stopped, not of one that is busy.
#[tokio::test]
#[ignore = "needs Redis at TIDINGS_REDIS_URL (default redis://127.0.0.1:6379): run with --include-ignored, as the test command does"]
async fn an_entry_in_a_busy_handler_is_not_taken_over() {
    use tidings_conformance::seam::{message, payload, unique_topic};

    let claim_idle = Duration::from_millis(300);
    let broker = RedisBroker::connect(RedisConfig::from_env().claim_idle(claim_idle))
        .await
        .unwrap();
    let topic = unique_topic("redis", "busy");
    let request = SubscribeRequest {
        topic: topic.clone(),
        group: Some("busy".to_owned()),
        start: StartFrom::New,
        prefetch: 1,
    };
    let mut busy = broker.subscribe(request.clone()).await.unwrap();
    let mut other = broker.subscribe(request).await.unwrap();
    broker
        .publish(&topic, message(&topic, vec![1u8]))
        .await
        .unwrap();
    // Whichever member got it is the busy one.
    let (held, mut idle) = tokio::select! {
        delivery = next(&mut busy, PATIENCE) => (delivery, other),
        delivery = next(&mut other, PATIENCE) => (delivery, busy),
    };
    assert_eq!(payload(&held), 1);
    // Busy for several claim idle times: the other member must not get the entry meanwhile.
    let taken = tokio::time::timeout(claim_idle * 5, idle.next()).await;
    assert!(
        taken.is_err(),
        "the other member took over an entry still being handled: {:?}",
        taken.ok().flatten().map(|d| d.map(|d| payload(&d)))
    );
    held.acker.ack().await.unwrap();
    idle.close().await;
}

/// An entry with a field name that is not UTF-8 does not stop the reads of its stream: it
/// arrives (as no CloudEvent, so a subscription dead-letters it), and so does the entry after it,
/// in a group as in a plain subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis at TIDINGS_REDIS_URL (default redis://127.0.0.1:6379): run with --include-ignored, as the test command does"]
async fn a_field_name_that_is_not_utf8_stops_no_read() {
    let broker = RedisBroker::from_env().await.expect("connecting");
    let run = run_id();
    let topic = run_topic("redisbytes", &run);
    let mut fanout = subscribe(&broker, &topic).await;
    let group = SubscribeRequest {
        topic: topic.clone(),
        group: Some("bytes".into()),
        start: StartFrom::Oldest,
        prefetch: 8,
    };
    let mut group = broker.subscribe(group).await.expect("subscribing");
    redis_cli_bytes(&[
        b"XADD",
        topic.as_str().as_bytes(),
        b"*",
        b"\xff\xfename",
        b"x",
    ]);
    let sent = probe_message::<PublishSubscribe>(&run, 1);
    broker
        .publish(&topic, sent.clone())
        .await
        .expect("publishing");
    for stream in [&mut fanout, &mut group] {
        let first = next(stream, PATIENCE).await;
        let malformed = first.message.as_ref().expect_err("no CloudEvent");
        assert!(
            malformed
                .headers
                .iter()
                .any(|(name, _)| name == "\u{fffd}\u{fffd}name"),
            "{:?}",
            malformed.headers
        );
        first.acker.ack().await.expect("acking");
        let second = next(stream, PATIENCE).await;
        let message = second.message.as_ref().expect("the next entry reads");
        assert_eq!(message.envelope.id, sent.envelope.id);
        second.acker.ack().await.expect("acking");
    }
    fanout.close().await;
    group.close().await;
    redis_cli(&["DEL", topic.as_str()]);
}

/// A request-reply client's reply stream holds the replies it got, and goes once the client is
/// dropped, so clients that come and go leave no streams behind.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Redis at TIDINGS_REDIS_URL (default redis://127.0.0.1:6379): run with --include-ignored, as the test command does"]
async fn a_dropped_client_leaves_no_reply_stream() {
    use tidings_redis::redis;

    let (client, reply_topic) = tidings_conformance::answered_client(&Redis)
        .await
        .expect("requests over streams have a reply topic");
    let connection = redis::Client::open(RedisConfig::from_env().url()).expect("a Redis URL");
    let mut conn = connection
        .get_multiplexed_async_connection()
        .await
        .expect("connected");
    let mut exists = redis::cmd("EXISTS");
    exists.arg(reply_topic.as_str());
    let held: i64 = exists.query_async(&mut conn).await.expect("EXISTS");
    assert_eq!(held, 1, "the reply stream holds the reply");

    drop(client);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held: i64 = exists.query_async(&mut conn).await.expect("EXISTS");
        if held == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reply stream {reply_topic} is still there 10 s after its client was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
