//! W3C trace context across the broker (the `otel` feature): an event published inside a span
//! is handled in a `process` span of the same trace, a child of the `publish` span, on the
//! in-process broker and, as the context travels in the CloudEvents `traceparent` and
//! `tracestate` attributes, on every real one; what its handler publishes in reaction goes on in
//! that trace.
//!
//! Spans go through `tracing-opentelemetry` to OpenTelemetry's in-memory exporter, installed
//! once for the whole binary; each test finds its own spans by the trace id of its root span.
//! The broker tests are ignored unless asked for (`--include-ignored`, as the test command
//! passes), against the servers on their default loopback ports (or the adapters' variables).

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tidings::{Bus, Event, Received, StartFrom};
use tidings_conformance::probe::run_id;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

/// A shipment, carrying the id of the test run that published it.
#[derive(Clone, PartialEq, prost::Message)]
struct Shipped {
    #[prost(string, tag = "1")]
    run: String,
}

impl Event for Shipped {
    const TOPIC: &'static str = "tests.tracing.shipped.v1";
    const SCHEMA: &'static str = "tests.tracing.v1.Shipped";
    const DATA_SCHEMA: &'static str = "proto:tests.tracing.v1.Shipped";
    type Codec = tidings::Protobuf;
}

/// An invoice, published by the handler of a shipment in reaction to it.
#[derive(Clone, PartialEq, prost::Message)]
struct Invoiced {
    #[prost(string, tag = "1")]
    run: String,
}

impl Event for Invoiced {
    const TOPIC: &'static str = "tests.tracing.invoiced.v1";
    const SCHEMA: &'static str = "tests.tracing.v1.Invoiced";
    const DATA_SCHEMA: &'static str = "proto:tests.tracing.v1.Invoiced";
    type Codec = tidings::Protobuf;
}

/// The exporter and provider every test of this binary records into.
struct Tracing {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

/// Installs, once, `tracing-opentelemetry` over the in-memory exporter as the global
/// subscriber (global, so that spans made on any runtime thread are seen), DEBUG and above.
fn tracing() -> &'static Tracing {
    static TRACING: OnceLock<Tracing> = OnceLock::new();
    TRACING.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("tidings-tests"))
            .with_filter(LevelFilter::DEBUG);
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("the only global subscriber of this binary");
        Tracing { exporter, provider }
    })
}

impl Tracing {
    /// The finished spans of the trace `trace_id`.
    fn spans_of(&self, trace_id: TraceId) -> Vec<SpanData> {
        self.provider.force_flush().expect("flushing the spans");
        self.exporter
            .get_finished_spans()
            .expect("the exported spans")
            .into_iter()
            .filter(|span| span.span_context.trace_id() == trace_id)
            .collect()
    }
}

/// The span named `name` among `spans`.
fn span_named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| panic!("no span `{name}` in the trace: {spans:#?}"))
}

/// What the handler saw of the trace it ran in.
struct Seen {
    trace_id: TraceId,
    traceparent: Option<String>,
}

/// Publishes a `Shipped` inside a span `checkout` and checks that its handler ran in that trace:
/// in the current span and the `traceparent` it received, and in the exported spans, where
/// `process` is a child of `publish`, itself a child of `checkout`.
async fn trace_continues(bus: Bus, group: Option<&str>, start: StartFrom) {
    let tracing = tracing();
    let run = run_id();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let handler = {
        let run = run.clone();
        move |event: Received<Shipped>| {
            // Events other runs left on a durable topic are not this test's.
            if event.run == run {
                let context = tracing::Span::current().context();
                let sent = seen_tx.send(Seen {
                    trace_id: context.span().span_context().trace_id(),
                    traceparent: event.trace_parent().map(str::to_owned),
                });
                sent.expect("the test waits for what the handler saw");
            }
            async {}
        }
    };
    let mut subscribe = bus.subscribe(handler).start(start);
    if let Some(group) = group {
        subscribe = subscribe.group(format!("{group}_{run}"));
    }
    let subscription = subscribe.await.expect("subscribing");

    let checkout = tracing::info_span!("checkout");
    let trace_id = checkout.context().span().span_context().trace_id();
    assert_ne!(
        trace_id,
        TraceId::INVALID,
        "the layer gives the span a trace"
    );
    let receipt = bus
        .publish(&Shipped { run: run.clone() })
        .instrument(checkout.clone())
        .await
        .expect("publishing");
    drop(checkout);

    let seen = tokio::time::timeout(Duration::from_secs(30), seen.recv())
        .await
        .expect("the handler ran within 30 s")
        .expect("the handler reports");
    subscription.shutdown().await;
    assert_eq!(
        seen.trace_id, trace_id,
        "the handler runs in the publisher's trace"
    );
    let traceparent = seen.traceparent.expect("the event carries a traceparent");
    assert!(
        traceparent.starts_with(&format!("00-{trace_id}-")),
        "{traceparent}"
    );

    let spans = tracing.spans_of(trace_id);
    let named = |name: &str| span_named(&spans, name);
    let checkout = named("checkout");
    let publish = named(&format!("publish {}", Shipped::TOPIC));
    let process = named(&format!("process {}", Shipped::TOPIC));
    assert_eq!(publish.parent_span_id, checkout.span_context.span_id());
    assert_eq!(
        process.parent_span_id,
        publish.span_context.span_id(),
        "the process span is a child of the publish span"
    );
    assert_ne!(process.parent_span_id, SpanId::INVALID);
    assert!(
        traceparent.contains(&publish.span_context.span_id().to_string()),
        "the traceparent names the publish span: {traceparent}"
    );
    assert!(
        process
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "messaging.message.id"
                && kv.value.as_str() == receipt.id().as_str()),
        "{process:#?}"
    );
}

#[tokio::test]
async fn the_handler_continues_the_publishers_trace_in_process() {
    trace_continues(Bus::memory(), None, StartFrom::New).await;
}

/// A handler's publish `caused_by` the event it handles is in the trace the handler runs in, a
/// child of the handler's own `publish` span: the current span wins over the cause's
/// `traceparent`, which names the publisher's.
#[tokio::test]
async fn a_caused_publish_is_a_child_of_the_handlers_span() {
    let tracing = tracing();
    let run = run_id();
    let bus = Bus::memory();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let reacting = {
        let (bus, run) = (bus.clone(), run.clone());
        move |shipped: Received<Shipped>| {
            let (bus, run) = (bus.clone(), run.clone());
            async move {
                if shipped.run != run {
                    return Ok(());
                }
                bus.publish_with(&Invoiced { run })
                    .caused_by(&shipped)
                    .await
                    .map(drop)
            }
        }
    };
    let reacting = bus.subscribe(reacting).await.expect("subscribing");
    let invoiced = {
        let run = run.clone();
        move |invoiced: Received<Invoiced>| {
            if invoiced.run == run {
                let sent = seen_tx.send(invoiced.envelope().clone());
                sent.expect("the test waits for the invoice");
            }
            async {}
        }
    };
    let invoiced = bus.subscribe(invoiced).await.expect("subscribing");

    let checkout = tracing::info_span!("checkout");
    let trace_id = checkout.context().span().span_context().trace_id();
    bus.publish(&Shipped { run: run.clone() })
        .instrument(checkout.clone())
        .await
        .expect("publishing");
    drop(checkout);
    let envelope = tokio::time::timeout(Duration::from_secs(30), seen.recv())
        .await
        .expect("the invoice within 30 s")
        .expect("the handler reports");
    reacting.shutdown().await;
    invoiced.shutdown().await;

    let spans = tracing.spans_of(trace_id);
    let named = |name: &str| span_named(&spans, name);
    let process = named(&format!("process {}", Shipped::TOPIC));
    let publish = named(&format!("publish {}", Invoiced::TOPIC));
    assert_eq!(publish.parent_span_id, process.span_context.span_id());
    assert_eq!(
        envelope.traceparent.as_deref(),
        Some(&*format!(
            "00-{trace_id}-{}-01",
            publish.span_context.span_id()
        )),
        "the invoice's trace is the handler's publish span"
    );
    assert_eq!(envelope.causation_depth, 1);
}

#[cfg(feature = "nats")]
#[tokio::test]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
async fn the_handler_continues_the_publishers_trace_over_nats() {
    use tidings::broker::nats::{NatsBroker, NatsConfig};
    let broker = NatsBroker::connect(NatsConfig::from_env())
        .await
        .expect("connecting to NATS");
    trace_continues(Bus::new(broker), Some("traced"), StartFrom::Oldest).await;
}

#[cfg(feature = "rabbitmq")]
#[tokio::test]
#[ignore = "needs RabbitMQ at TIDINGS_RABBITMQ_URL (default amqp://127.0.0.1:5672): run with --include-ignored, as the test command does"]
async fn the_handler_continues_the_publishers_trace_over_rabbitmq() {
    use tidings::broker::rabbitmq::{RabbitBroker, RabbitConfig};
    let broker = RabbitBroker::connect(RabbitConfig::from_env())
        .await
        .expect("connecting to RabbitMQ");
    trace_continues(Bus::new(broker), Some("traced"), StartFrom::New).await;
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka-protocol server at TIDINGS_KAFKA_BROKERS (default 127.0.0.1:9092): run with --include-ignored, as the test command does"]
async fn the_handler_continues_the_publishers_trace_over_kafka() {
    use tidings::broker::kafka::{KafkaBroker, KafkaConfig};
    let broker = KafkaBroker::connect(KafkaConfig::from_env())
        .await
        .expect("connecting to Kafka");
    trace_continues(Bus::new(broker), Some("traced"), StartFrom::Oldest).await;
}
