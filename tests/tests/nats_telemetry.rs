//! What an operator sees when the NATS server goes away under a live subscription: a server of
//! the test's own (a `nats-server` child process on a free port, see `tidings_tests::own_nats`)
//! is killed while a handler works, and the `tracing` events are captured as JSON lines.
//!
//! Ignored unless asked for (`--include-ignored`, as the test command passes); needs
//! `nats-server` on the PATH, which `tests/run.sh` installs.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tidings::broker::nats::{NatsBroker, NatsConfig};
use tidings::{Bus, Event, Received};
use tidings_tests::own_nats::OwnNats;
use tokio::sync::{Notify, mpsc};
use tracing::subscriber::DefaultGuard;

#[derive(Clone, PartialEq, prost::Message)]
struct Packed {
    #[prost(string, tag = "1")]
    order_id: String,
}

impl Event for Packed {
    const TOPIC: &'static str = "tests.telemetry.packed.v1";
    const SCHEMA: &'static str = "tests.telemetry.v1.Packed";
    const DATA_SCHEMA: &'static str = "proto:tests.telemetry.v1.Packed";
    type Codec = tidings::Protobuf;
}

/// The events at INFO and above written while it is installed, as `fmt`'s JSON lines.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("the buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Installs the capture for this thread: the test runs on a current-thread runtime, so the
    /// consumer and the client's tasks report here too.
    fn install() -> (Capture, DefaultGuard) {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }

    fn events(&self) -> Vec<Value> {
        let bytes = self.0.lock().expect("the buffer").clone();
        String::from_utf8(bytes)
            .expect("JSON lines are UTF-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    /// Waits, up to a minute, until an event with this message is written, and returns it.
    async fn wait_for(&self, message: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(event) = self
                .events()
                .into_iter()
                .find(|e| e["fields"]["message"].as_str() == Some(message))
            {
                return event;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no event `{message}` within a minute; events: {:#?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The events at `level`.
    fn at(&self, level: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["level"] == level)
            .collect()
    }
}

fn field<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    event["fields"][name].as_str()
}

#[tokio::test]
#[ignore = "needs nats-server on the PATH (starts one of its own on a free port): run with --include-ignored, as the test command does"]
async fn an_ack_the_stopped_server_never_confirms_is_an_error_naming_the_event() {
    let (capture, _guard) = Capture::install();
    let mut server = OwnNats::start().expect("a nats-server of the test's own");
    let config = NatsConfig::new(server.url()).confirm_acks(true);
    let bus = Bus::new(NatsBroker::connect(config).await.expect("connecting"));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let handler = {
        let release = release.clone();
        move |event: Received<Packed>| {
            let release = release.clone();
            started_tx
                .send(event.envelope().id.as_str().to_owned())
                .expect("the test waits for the handler");
            async move { release.notified().await }
        }
    };
    let subscription = bus.subscribe(handler).group("packing").await.unwrap();
    let receipt = bus
        .publish(&Packed {
            order_id: "o-1".into(),
        })
        .await
        .expect("publishing");
    let handled = tokio::time::timeout(Duration::from_secs(30), started.recv()).await;
    assert_eq!(
        handled.expect("the handler starts").as_deref(),
        Some(receipt.id().as_str())
    );

    server.kill().expect("stopping the server");
    release.notify_one();
    let failed = capture
        .wait_for("ack failed; the event was handled, and the broker may deliver it again")
        .await;
    subscription.shutdown().await;

    assert_eq!(
        capture.at("ERROR"),
        std::slice::from_ref(&failed),
        "exactly one error"
    );
    assert_eq!(field(&failed, "error.type"), Some("ack_failed"));
    assert_eq!(field(&failed, "messaging.system"), Some("nats"));
    assert_eq!(
        field(&failed, "messaging.destination.name"),
        Some(Packed::TOPIC)
    );
    assert_eq!(
        field(&failed, "messaging.consumer.group.name"),
        Some("packing")
    );
    assert_eq!(
        field(&failed, "messaging.message.id"),
        Some(receipt.id().as_str())
    );
    let error = field(&failed, "error").expect("the broker's error");
    assert!(error.contains("settle a delivery"), "{error}");
    assert!(error.contains(&server.url()), "names the server: {error}");
}

#[tokio::test]
#[ignore = "needs nats-server on the PATH (starts one of its own on a free port): run with --include-ignored, as the test command does"]
async fn a_lost_connection_is_a_warning_and_its_return_is_info() {
    let (capture, _guard) = Capture::install();
    let mut server = OwnNats::start().expect("a nats-server of the test's own");
    let bus = Bus::new(
        NatsBroker::connect(NatsConfig::new(server.url()))
            .await
            .expect("connecting"),
    );
    let (handled_tx, mut handled) = mpsc::unbounded_channel();
    let handler = move |event: Received<Packed>| {
        handled_tx
            .send(event.into_inner().order_id)
            .expect("the test waits for the handler");
        async {}
    };
    let subscription = bus.subscribe(handler).group("packing").await.unwrap();

    server.kill().expect("stopping the server");
    let lost = capture
        .wait_for("connection lost; the client reconnects by itself")
        .await;
    server.resume().expect("starting the server again");
    let regained = capture.wait_for("connection regained").await;
    // And the subscription goes on.
    bus.publish(&Packed {
        order_id: "o-2".into(),
    })
    .await
    .expect("publishing once the connection is back");
    let after = tokio::time::timeout(Duration::from_secs(30), handled.recv()).await;
    assert_eq!(after.expect("handled").as_deref(), Some("o-2"));
    subscription.shutdown().await;

    assert_eq!(lost["level"], "WARN");
    assert_eq!(regained["level"], "INFO");
    let address = server.url();
    for event in [&lost, &regained] {
        assert_eq!(field(event, "messaging.system"), Some("nats"));
        assert_eq!(
            field(event, "server.address"),
            Some(address.as_str()),
            "{event}"
        );
    }
    assert!(capture.at("ERROR").is_empty(), "{:#?}", capture.at("ERROR"));
}
