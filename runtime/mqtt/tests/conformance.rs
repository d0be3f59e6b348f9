//! The MQTT 5 adapter on a real broker: the conformance suite on the server the environment names
//! (`TIDINGS_MQTT_URL`, or Mosquitto on 127.0.0.1:1883), interoperation with Mosquitto's own
//! command-line clients as a CloudEvents producer and consumer written elsewhere, and an outage
//! of a Mosquitto started by the test itself on a free port (so stopping it disturbs nobody).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tidings_conformance::BrokerFactory;
use tidings_conformance::probe::{PublishSubscribe, probe_message, run_id, run_topic};
use tidings_conformance::seam::next;
use tidings_core::broker::{DeadLetter, DeliveryStream, SubscribeRequest};
use tidings_core::{Broker, BrokerError, StartFrom, Topic};
use tidings_mqtt::{MqttBroker, MqttConfig, topic_path};

/// Connections to the MQTT broker the environment names.
struct Mqtt;

impl BrokerFactory for Mqtt {
    async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
        Ok(Arc::new(MqttBroker::connect(MqttConfig::from_env()).await?))
    }

    async fn publish_foreign(&self, topic: &Topic, payload: Vec<u8>) -> Option<Result<(), String>> {
        publish_legacy(topic, &String::from_utf8(payload).expect("a text payload"));
        Some(Ok(()))
    }
}

tidings_conformance::conformance_tests!(
    Mqtt,
    not_promised [
        groups,
        start_from_oldest,
        redelivery_after_consumer_dies,
        close_and_resubscribe,
        broker_restart,
        request_reply,
        request_deadline,
        request_groups,
        request_status,
        request_refusal,
    ],
    #[ignore = "needs an MQTT 5 broker at TIDINGS_MQTT_URL (default mqtt://127.0.0.1:1883): run with --include-ignored, as the test command does"]
);

#[tokio::test]
async fn an_unreachable_broker_is_named_with_its_address_and_no_password() {
    let error = MqttBroker::connect(MqttConfig::new("mqtt://app:secret@127.0.0.1:1"))
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        matches!(error, BrokerError::Unreachable { broker: "mqtt", .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("mqtt://app:***@127.0.0.1:1"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

/// Host and port of the environment's broker, for the command-line clients.
fn cli_target() -> (String, String) {
    let url = std::env::var("TIDINGS_MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into());
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, hp)| hp);
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "1883"));
    (host.to_owned(), port.to_owned())
}

/// Publishes `payload` with Mosquitto's own client as a producer that knows nothing of tidings
/// does: a user property of its own and none of CloudEvents.
fn publish_legacy(topic: &Topic, payload: &str) {
    mosquitto_pub(
        topic,
        &[
            "-D",
            "publish",
            "user-property",
            "origin",
            "legacy",
            "-m",
            payload,
        ],
    );
}

fn mosquitto_pub(topic: &Topic, args: &[&str]) {
    let (host, port) = cli_target();
    let status = Command::new("mosquitto_pub")
        .args([
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-h",
            &host,
            "-p",
            &port,
            "-t",
            &topic_path(topic),
        ])
        .args(args)
        .status()
        .expect("running mosquitto_pub (is Mosquitto installed?)");
    assert!(status.success(), "mosquitto_pub failed: {status}");
}

async fn subscribe(
    broker: &MqttBroker,
    topic: &Topic,
    group: Option<String>,
) -> Box<dyn DeliveryStream> {
    let request = SubscribeRequest {
        topic: topic.clone(),
        group,
        start: StartFrom::New,
        prefetch: 8,
    };
    broker.subscribe(request).await.expect("subscribing")
}

/// How long a test waits for a delivery.
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an MQTT 5 broker at TIDINGS_MQTT_URL (default mqtt://127.0.0.1:1883): run with --include-ignored, as the test command does"]
async fn a_cloudevents_producer_written_elsewhere_reaches_a_subscriber() {
    let broker = MqttBroker::from_env().await.expect("connecting");
    let topic = run_topic("mqttin", &run_id());
    let mut stream = subscribe(&broker, &topic, None).await;
    let ce = |name: &str, value: &str| {
        ["-D", "publish", "user-property", name, value].map(str::to_owned)
    };
    let mut args: Vec<String> = ["-D", "publish", "content-type", "application/json"]
        .map(str::to_owned)
        .into();
    for (name, value) in [
        ("specversion", "1.0"),
        ("id", "sensor-42"),
        ("source", "urn:sensor:7"),
        ("type", topic.as_str()),
        ("tenant", "acme"),
    ] {
        args.extend(ce(name, value));
    }
    args.extend(["-m".to_owned(), r#"{"celsius":21.5}"#.to_owned()]);
    mosquitto_pub(&topic, &args.iter().map(String::as_str).collect::<Vec<_>>());

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
    assert_eq!(delivery.attempt, 1);
    delivery.acker.ack().await.expect("acking");
    stream.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an MQTT 5 broker at TIDINGS_MQTT_URL (default mqtt://127.0.0.1:1883): run with --include-ignored, as the test command does"]
async fn a_cloudevents_consumer_written_elsewhere_reads_what_tidings_publishes() {
    let broker = MqttBroker::from_env().await.expect("connecting");
    let run = run_id();
    let topic = run_topic("mqttout", &run);
    let (host, port) = cli_target();
    let reader = Command::new("mosquitto_sub")
        .args([
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-h",
            &host,
            "-p",
            &port,
            "-t",
            &topic_path(&topic),
        ])
        .args(["-C", "1", "-W", "30", "-F", "%C|%P"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("running mosquitto_sub (is Mosquitto installed?)");
    let sent = probe_message::<PublishSubscribe>(&run, 1);
    // mosquitto_sub says nothing once subscribed: publish until it has read one and exited.
    let mut reader = Some(reader);
    let mut output = None;
    for _ in 0..300 {
        broker
            .publish(&topic, sent.clone())
            .await
            .expect("publishing");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let child = reader.as_mut().expect("still running");
        if child.try_wait().expect("polling mosquitto_sub").is_some() {
            output = Some(
                reader
                    .take()
                    .expect("still running")
                    .wait_with_output()
                    .expect("its output"),
            );
            break;
        }
    }
    let output = output.expect("mosquitto_sub read nothing within 30 s");
    let text = String::from_utf8_lossy(&output.stdout);
    let (content_type, properties) = text
        .trim_end()
        .split_once('|')
        .expect("the format's separator");
    assert_eq!(content_type, "application/protobuf");
    for expected in [
        "specversion:1.0".to_owned(),
        format!("id:{}", sent.envelope.id),
        format!("type:{}", sent.envelope.event_type),
        "dataschema:proto:tidings.conformance.v1.Probe".to_owned(),
        format!("correlationid:{run}"),
    ] {
        assert!(
            properties.split(' ').any(|p| p == expected),
            "{expected} in {properties}"
        );
    }
    assert!(
        !properties.contains("datacontenttype"),
        "the content type has its own property"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an MQTT 5 broker at TIDINGS_MQTT_URL (default mqtt://127.0.0.1:1883): run with --include-ignored, as the test command does"]
async fn a_message_that_is_no_cloudevent_is_dead_lettered_with_the_reason() {
    let broker = MqttBroker::from_env().await.expect("connecting");
    let topic = run_topic("mqttbad", &run_id());
    let dead = topic.dead_letter().expect("a dead-letter topic");
    let mut stream = subscribe(&broker, &topic, None).await;
    let mut letters = subscribe(&broker, &dead, None).await;
    publish_legacy(&topic, "21.5");

    let delivery = next(&mut stream, PATIENCE).await;
    let malformed = delivery
        .message
        .as_ref()
        .expect_err("no CloudEvents attributes");
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

    let moved = next(&mut letters, PATIENCE).await;
    let kept = moved.message.as_ref().expect_err("still no CloudEvent");
    assert_eq!(&kept.data[..], b"21.5", "the payload is kept whole");
    for (name, value) in [
        ("origin", "legacy"),
        ("deadletterreason", reason.as_str()),
        ("deadletterattempts", "1"),
        ("deadlettertopic", topic.as_str()),
    ] {
        assert!(
            kept.headers.iter().any(|(k, v)| k == name && v == value),
            "{name}={value} in {:?}",
            kept.headers
        );
    }
    moved.acker.ack().await.expect("acking");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an MQTT 5 broker at TIDINGS_MQTT_URL (default mqtt://127.0.0.1:1883): run with --include-ignored, as the test command does"]
async fn members_of_a_shared_subscription_split_the_messages() {
    let broker = MqttBroker::from_env().await.expect("connecting");
    let run = run_id();
    let topic = run_topic("mqttshare", &run);
    let group = Some(format!("workers_{run}"));
    let mut first = subscribe(&broker, &topic, group.clone()).await;
    let mut second = subscribe(&broker, &topic, group).await;
    let sent: Vec<_> = (0..20)
        .map(|seq| probe_message::<PublishSubscribe>(&run, seq))
        .collect();
    for message in &sent {
        broker
            .publish(&topic, message.clone())
            .await
            .expect("publishing");
    }
    let mut got = [Vec::new(), Vec::new()];
    while got[0].len() + got[1].len() < sent.len() {
        let (i, delivery) = tokio::select! {
            Some(Ok(d)) = first.next() => (0, d),
            Some(Ok(d)) = second.next() => (1, d),
            () = tokio::time::sleep(Duration::from_secs(10)) => panic!("received {got:?} of 20"),
        };
        got[i].push(
            delivery
                .message
                .as_ref()
                .expect("readable")
                .envelope
                .id
                .clone(),
        );
        delivery.acker.ack().await.expect("acking");
    }
    let mut all: Vec<_> = got.concat();
    all.sort();
    let mut expected: Vec<_> = sent.iter().map(|m| m.envelope.id.clone()).collect();
    expected.sort();
    assert_eq!(all, expected, "each message to exactly one member");
    assert!(
        !got[0].is_empty() && !got[1].is_empty(),
        "both members get a share: {got:?}"
    );
}

/// A `mosquitto` of the test's own, listening on loopback only.
struct Mosquitto {
    port: u16,
    config: PathBuf,
    server: Option<Child>,
}

impl Mosquitto {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = std::env::temp_dir().join(format!("tidings-mosquitto-{port}.conf"));
        let text = format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n");
        std::fs::write(&config, text).expect("writing the test's Mosquitto configuration");
        let mut mosquitto = Mosquitto {
            port,
            config,
            server: None,
        };
        mosquitto.spawn();
        mosquitto
    }

    fn spawn(&mut self) {
        let server = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto (is Mosquitto installed?)");
        self.server = Some(server);
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "mosquitto did not listen on 127.0.0.1:{} within 10 s",
            self.port
        );
    }

    fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            // A server that already exited is fine; one that cannot be stopped is reported,
            // as a test that meant to stop it would otherwise go on against it.
            if let Err(error) = server.kill().and_then(|()| server.wait().map(drop)) {
                eprintln!("could not stop the test's mosquitto: {error}");
            }
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
        if let Err(error) = std::fs::remove_file(&self.config) {
            eprintln!(
                "could not remove the test's mosquitto configuration {}: {error}",
                self.config.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an MQTT 5 broker at TIDINGS_MQTT_URL (default mqtt://127.0.0.1:1883): run with --include-ignored, as the test command does"]
async fn publishing_and_subscriptions_come_back_after_the_broker_does() {
    let mut mosquitto = Mosquitto::start();
    let broker = MqttBroker::connect(MqttConfig::new(mosquitto.url()))
        .await
        .expect("connecting");
    let run = run_id();
    let topic = run_topic("reconnect", &run);
    let mut stream = subscribe(&broker, &topic, None).await;

    let before = probe_message::<PublishSubscribe>(&run, 1);
    broker
        .publish(&topic, before.clone())
        .await
        .expect("publishing before the outage");
    let delivery = next(&mut stream, PATIENCE).await;
    assert_eq!(
        delivery.message.as_ref().expect("readable").envelope.id,
        before.envelope.id
    );
    delivery.acker.ack().await.expect("acking");

    mosquitto.stop();
    let down = probe_message::<PublishSubscribe>(&run, 2);
    match broker.publish(&topic, down).await {
        Err(e @ BrokerError::Unreachable { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("mqtt") && text.contains(&mosquitto.url()),
                "{text}"
            );
        }
        other => panic!("publishing with the broker down must fail as unreachable: {other:?}"),
    }

    mosquitto.spawn();
    // Until the subscription has reconnected and subscribed again, what is published passes it
    // by (MQTT keeps nothing for it): publish until one arrives, then check it is that one.
    let mut published = Vec::new();
    let arrived = tokio::time::timeout(Duration::from_secs(30), async {
        for seq in 3.. {
            let message = probe_message::<PublishSubscribe>(&run, seq);
            if broker.publish(&topic, message.clone()).await.is_ok() {
                published.push(message.envelope.id.clone());
            }
            if let Ok(Some(next)) =
                tokio::time::timeout(Duration::from_millis(200), stream.next()).await
            {
                return next;
            }
        }
        unreachable!("the sequence does not end")
    })
    .await
    .expect("nothing arrived within 30 s of the broker coming back")
    .expect("the subscription must survive the outage, not end");
    let id = &arrived.message.as_ref().expect("readable").envelope.id;
    assert!(
        published.contains(id),
        "an event published after the outage arrives"
    );
    arrived
        .acker
        .ack()
        .await
        .expect("acking after the reconnect");
    stream.close().await;
}
