//! Request-reply through the typed layer on a real NATS server, in JetStream mode and in core
//! mode: core NATS request-reply either way.
//!
//! Ignored unless asked for (`--include-ignored`, as the test command passes); the server is
//! `TIDINGS_NATS_URL` (default `nats://127.0.0.1:4222`). Each case has an operation (a topic) of
//! its own, per mode, and groups are unique per run, so cases running side by side, or another
//! run against the same server, do not answer each other's requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tidings::envelope::attr;
use tidings::{Broker, Bus, EventId, Received, RequestError, Rpc, Status, Topic};
use tidings_nats::{NatsBroker, NatsConfig, NatsMode};

/// The request of every operation here.
#[derive(Clone, PartialEq, prost::Message, tidings::Event)]
#[event(topic = "tests.rpc.ping.v1")]
struct Ping {
    #[prost(string, tag = "1")]
    text: String,
}

/// The reply of every operation here.
#[derive(Clone, PartialEq, prost::Message, tidings::Event)]
#[event(topic = "tests.rpc.pong.v1")]
struct Pong {
    #[prost(string, tag = "1")]
    text: String,
}

/// Operations of `Ping` and `Pong`, each on a topic of its own.
macro_rules! operations {
    ($mode:literal: $($name:ident = $case:literal;)*) => {$(
        struct $name;
        impl Rpc for $name {
            type Request = Ping;
            type Reply = Pong;
            const TOPIC: &'static str = concat!("tests.rpc.nats.", $mode, ".", $case, ".v1");
            const NAME: &'static str = concat!("tests.rpc.v1.Nats.", stringify!($name));
        }
    )*};
}

/// A group of this run's own.
fn group() -> String {
    format!("g{}", EventId::new().replace('-', ""))
}

/// Answers with the request's text, after `delay`.
fn echo(
    delay: Duration,
) -> impl Fn(Received<Ping>) -> BoxFuture<'static, Result<Pong, Status>> + Send + Sync + 'static {
    move |request: Received<Ping>| {
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(Pong {
                text: request.text.clone(),
            })
        })
    }
}

/// The reply answers the request, typed; the reply's causation id is the request's id.
async fn answers<R: Rpc<Request = Ping, Reply = Pong>>(broker: Arc<dyn Broker>) {
    let bus = Bus::from_arc(broker.clone());
    let _server = bus
        .serve::<R, _>(&group(), echo(Duration::ZERO))
        .await
        .unwrap();
    let client = bus.client().await.unwrap();
    let reply = client
        .call::<R>(&Ping {
            text: "hello".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.text, "hello");

    let (_, request) = bus
        .prepare(&Ping {
            text: "again".into(),
        })
        .unwrap();
    let id = request.envelope.id.clone();
    let requester = broker.requester().await.unwrap();
    let topic = Topic::new(R::TOPIC).unwrap();
    let reply = requester
        .request(&topic, request, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.envelope.causation_id.as_deref(), Some(id.as_str()));
    assert_eq!(reply.envelope.event_type, "tests.rpc.pong.v1");
}

/// A server slower than the deadline: the request times out with the deadline asked.
async fn times_out<R: Rpc<Request = Ping, Reply = Pong>>(broker: Arc<dyn Broker>) {
    let bus = Bus::from_arc(broker);
    let _server = bus
        .serve::<R, _>(&group(), echo(Duration::from_secs(1)))
        .await
        .unwrap();
    let client = bus.client().await.unwrap();
    let deadline = Duration::from_millis(200);
    let started = Instant::now();
    let error = client
        .call::<R>(&Ping::default())
        .deadline(deadline)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RequestError::Timeout { after, .. } if after == deadline),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

/// Nobody serves the operation: the broker says so well before the deadline.
async fn no_responders<R: Rpc<Request = Ping, Reply = Pong>>(broker: Arc<dyn Broker>) {
    assert!(broker.capabilities().no_responders);
    let bus = Bus::from_arc(broker);
    let client = bus.client().await.unwrap();
    let deadline = Duration::from_secs(2);
    let started = Instant::now();
    let error = client
        .call::<R>(&Ping::default())
        .deadline(deadline)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(error, RequestError::NoResponders { ref topic } if topic.as_str() == R::TOPIC),
        "{error:?}"
    );
    assert!(elapsed < deadline / 2, "{elapsed:?}");
}

/// Two servers in one group share the requests, each answering some.
async fn shared_by_a_group<R: Rpc<Request = Ping, Reply = Pong>>(broker: Arc<dyn Broker>) {
    let bus = Bus::from_arc(broker);
    let group = group();
    let counts = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let mut servers = Vec::new();
    for count in &counts {
        let count = count.clone();
        let server = bus
            .serve::<R, _>(&group, move |request: Received<Ping>| {
                count.fetch_add(1, Ordering::Relaxed);
                async move {
                    Ok(Pong {
                        text: request.text.clone(),
                    })
                }
            })
            .await
            .unwrap();
        servers.push(server);
    }
    let client = bus.client().await.unwrap();
    let calls = (0..40).map(|n| {
        let client = client.clone();
        async move {
            let text = n.to_string();
            let reply = client
                .call::<R>(&Ping { text: text.clone() })
                .await
                .unwrap();
            assert_eq!(reply.text, text);
        }
    });
    futures_util::future::join_all(calls).await;
    let counts = counts.map(|count| count.load(Ordering::Relaxed));
    assert_eq!(counts.iter().sum::<usize>(), 40, "{counts:?}");
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
}

/// A server's error reaches the client as the status it returned.
async fn status<R: Rpc<Request = Ping, Reply = Pong>>(broker: Arc<dyn Broker>) {
    let bus = Bus::from_arc(broker);
    let _server = bus
        .serve::<R, _>(&group(), |_: Received<Ping>| async {
            Err::<Pong, _>(Status::new(409, "no stock"))
        })
        .await
        .unwrap();
    let client = bus.client().await.unwrap();
    let error = client.call::<R>(&Ping::default()).await.unwrap_err();
    assert_eq!(
        error.status(),
        Some(&Status::new(Status::CONFLICT, "no stock")),
        "{error:?}"
    );
}

/// A request of another major is refused with `INVALID_REQUEST`, and the server goes on.
async fn another_major<R: Rpc<Request = Ping, Reply = Pong>>(broker: Arc<dyn Broker>) {
    let bus = Bus::from_arc(broker.clone());
    let _server = bus
        .serve::<R, _>(&group(), echo(Duration::ZERO))
        .await
        .unwrap();
    let (_, mut request) = bus.prepare(&Ping::default()).unwrap();
    request.envelope_mut().event_type = "tests.rpc.ping.v2".into();
    let requester = broker.requester().await.unwrap();
    let topic = Topic::new(R::TOPIC).unwrap();
    let reply = requester
        .request(&topic, request, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        reply.envelope.extension(attr::STATUS_CODE),
        Some(Status::INVALID_REQUEST.to_string().as_str()),
        "{:?}",
        reply.envelope
    );

    let client = bus.client().await.unwrap();
    let reply = client
        .call::<R>(&Ping {
            text: "still here".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.text, "still here");
}

/// The cases in one mode.
macro_rules! cases {
    ($module:ident, $mode:expr, $name:literal) => {
        mod $module {
            use super::*;

            operations! { $name:
                Answer = "answer";
                Slow = "slow";
                Nobody = "nobody";
                Shared = "shared";
                Failing = "failing";
                Majors = "majors";
            }

            async fn connect() -> Arc<dyn Broker> {
                let config = NatsConfig::from_env().mode($mode);
                Arc::new(NatsBroker::connect(config).await.unwrap())
            }

            #[tokio::test(flavor = "multi_thread")]
            #[ignore = "needs NATS at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
            async fn answers_with_the_reply_caused_by_the_request() {
                answers::<Answer>(connect().await).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            #[ignore = "needs NATS at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
            async fn a_slow_server_times_out_at_the_deadline() {
                times_out::<Slow>(connect().await).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            #[ignore = "needs NATS at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
            async fn nobody_serving_fails_at_once() {
                no_responders::<Nobody>(connect().await).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            #[ignore = "needs NATS at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
            async fn a_group_shares_the_requests() {
                shared_by_a_group::<Shared>(connect().await).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            #[ignore = "needs NATS at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
            async fn a_status_reaches_the_client() {
                status::<Failing>(connect().await).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            #[ignore = "needs NATS at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
            async fn another_major_is_refused_and_the_server_goes_on() {
                another_major::<Majors>(connect().await).await;
            }
        }
    };
}

cases!(jetstream, NatsMode::JetStream, "jetstream");
cases!(core, NatsMode::Core, "core");

/// A message published, not requested, to an rpc subject has no reply subject: the server
/// refuses to answer it and goes on answering requests.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs NATS at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
async fn a_request_without_a_reply_subject_is_refused() {
    operations! { "core": Unanswerable = "unanswerable"; }
    let config = NatsConfig::from_env().mode(NatsMode::Core);
    let broker = NatsBroker::connect(config.clone()).await.unwrap();
    let topic = Topic::new(Unanswerable::TOPIC).unwrap();
    let mut requests = broker.serve(&topic, &group(), 8).await.unwrap();

    let bus = Bus::new(broker.clone());
    let (_, message) = bus.prepare(&Ping::default()).unwrap();
    let client = tidings_nats::async_nats::connect(config.url())
        .await
        .unwrap();
    let subject = format!("_tidings.rpc.{topic}");
    client.publish(subject, message.data.clone()).await.unwrap();
    client.flush().await.unwrap();

    let request = tokio::time::timeout(Duration::from_secs(5), requests.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let error = request.replier.reply(message).await.unwrap_err();
    assert!(error.to_string().contains("no reply subject"), "{error}");
    requests.close().await;
}
