//! Cases on request-reply: a reply arrives, a deadline passes, nobody serves, servers of a
//! group share the requests, a server's error reaches the client typed, and a request of
//! another major is refused while the server goes on.
//!
//! Each case has an operation of its own, so cases running at once do not answer each
//! other's requests; the same case of another run may, and answers alike, so a case only
//! counts on what every run's server would answer.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tidings_core::{
    BrokerError, Bus, Capabilities, Client, Envelope, Event, Received, RequestError, Rpc, Status,
    Subscription, Topic,
};

use super::probe::{Probe, RpcReply, RpcRequest, RpcRequestV2, run_id};
use super::support::{bus, connect, must};
use super::{BrokerFactory, Outcome};

macro_rules! operations {
    ($($(#[$doc:meta])* $name:ident($request:ty) => $topic:literal;)*) => {$(
        $(#[$doc])*
        struct $name;

        impl Rpc for $name {
            type Request = $request;
            type Reply = RpcReply;
            const TOPIC: &'static str = $topic;
            const NAME: &'static str = concat!("tidings.conformance.v1.Probes.", stringify!($name));
        }
    )*};
}

operations! {
    /// For `request_reply`.
    Answer(RpcRequest) => "conformance.probes.answer.v1";
    /// For `request_deadline`.
    Slow(RpcRequest) => "conformance.probes.slow.v1";
    /// For `request_without_server`: served by no case.
    Nobody(RpcRequest) => "conformance.probes.nobody.v1";
    /// For `request_groups`.
    Shared(RpcRequest) => "conformance.probes.shared.v1";
    /// For `request_status`.
    Failing(RpcRequest) => "conformance.probes.failing.v1";
    /// For `request_refusal`: the served operation.
    Strict(RpcRequest) => "conformance.probes.strict.v1";
    /// For `request_refusal`: the same operation, sent with the request one major later.
    StrictV2(RpcRequestV2) => "conformance.probes.strict.v1";
    /// For `answered_client`.
    Where(RpcRequest) => "conformance.probes.where.v1";
}

/// A client that has had one request answered over publish and subscribe, and its reply topic
/// (the `replyto` its request carried), which now holds that reply: for an adapter that
/// removes topics ([`Broker::remove_topic`](tidings_core::Broker::remove_topic)) to check in
/// its own terms that the topic goes once the client is dropped. `None` on a broker with
/// request-reply of its own, whose clients make no reply topic.
pub async fn answered_client(factory: &impl BrokerFactory) -> Option<(Client, Topic)> {
    let (bus, client) = client(factory).await;
    let run = run_id();
    let server = must(
        bus.serve::<Where, _>(
            &format!("where{run}"),
            |request: Received<RpcRequest>| async move {
                let reply_to = request.envelope().extension("replyto").unwrap_or_default();
                Ok(RpcReply::new(request.run(), request.seq(), reply_to))
            },
        )
        .await,
        "serving requests",
    );
    let reply = client
        .call::<Where>(&RpcRequest::new(&run, 0, ""))
        .deadline(factory.patience())
        .await;
    let reply = must(reply, "requesting");
    server.shutdown().await;
    if reply.key.is_empty() {
        return None;
    }
    let reply_topic = Topic::new(reply.key.clone())
        .unwrap_or_else(|e| panic!("the reply topic `{}` breaks the topic rule: {e}", reply.key));
    Some((client, reply_topic))
}

/// The skip of a broker that cannot serve requests.
fn unserved(capabilities: Capabilities) -> Option<Outcome> {
    (!capabilities.request_reply).then(|| Outcome::skipped("the broker does not serve requests"))
}

/// A bus over a new connection, and a client over it.
async fn client(factory: &impl BrokerFactory) -> (Bus, Client) {
    let bus = bus(connect(factory).await);
    let client = must(bus.client().await, "making a request client");
    (bus, client)
}

/// The reply a server of `name` gives to `request`: its run and number, and as key the
/// server's name, the request's correlation id and the request's id,
/// `<name>/<correlation id>/<id>`.
fn echo(name: &str, request: &Received<RpcRequest>) -> RpcReply {
    let envelope = request.envelope();
    let correlation = envelope.correlation_id.as_deref().unwrap_or("");
    RpcReply::new(
        request.run(),
        request.seq(),
        &format!("{name}/{correlation}/{}", envelope.id),
    )
}

/// Serves `R` in `group` with the echo of a server named `name`.
async fn serve_echo<R: Rpc<Request = RpcRequest, Reply = RpcReply>>(
    bus: &Bus,
    group: &str,
    name: &'static str,
) -> Subscription {
    must(
        bus.serve::<R, _>(group, move |request: Received<RpcRequest>| async move {
            Ok(echo(name, &request))
        })
        .await,
        "serving requests",
    )
}

/// A request gets its reply, which is the reply to that very request, caused by it (its
/// causation id is the request's id); a request made in reaction to an event carries that
/// event's correlation to the server.
pub async fn request_reply(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let (bus, client) = client(factory).await;
    if let Some(skip) = unserved(bus.broker().capabilities()) {
        return skip;
    }
    let run = run_id();
    let server = serve_echo::<Answer>(&bus, &format!("answer{run}"), "server").await;
    for seq in 0..5 {
        let reply = client
            .call::<Answer>(&RpcRequest::new(&run, seq, ""))
            .deadline(patience)
            .await;
        let reply = must(reply, "requesting");
        assert_eq!(
            (reply.run(), reply.seq()),
            (run.as_str(), seq),
            "the reply answers another request"
        );
    }
    let mut cause = Envelope::new(
        super::probe::SOURCE.into(),
        "conformance.cause.probe.v1".into(),
        tidings_core::ContentType::Protobuf,
        None,
    );
    cause.correlation_id = Some(format!("conversation{run}"));
    let reply = client
        .call::<Answer>(&RpcRequest::new(&run, 9, ""))
        .caused_by(&cause)
        .deadline(patience)
        .await;
    let reply = must(reply, "requesting in reaction to an event");
    assert!(
        reply.key.starts_with(&format!("server/conversation{run}/")),
        "the request did not carry its cause's correlation id to the server: {}",
        reply.key
    );
    caused_by_its_request(&bus, &run, patience).await;
    server.shutdown().await;
    Outcome::Passed
}

/// A reply's causation id is its request's id, on a broker that carries requests itself. The
/// typed client does not show the id of the request it sends, so this sends one through the
/// broker's requester. A broker without request-reply of its own has none, and the typed calls
/// of [`request_reply`] have checked it already: requests over publish and subscribe match each
/// reply to its request by that very causation id.
async fn caused_by_its_request(bus: &Bus, run: &str, patience: Duration) {
    let requester = match bus.broker().requester().await {
        Ok(requester) => requester,
        Err(BrokerError::Unsupported { .. }) => return,
        Err(error) => panic!("making a requester: {error}"),
    };
    let (_, request) = must(
        bus.prepare(&RpcRequest::new(run, 10, "")),
        "preparing a request",
    );
    let id = request.envelope.id.to_string();
    let topic = Topic::new(Answer::TOPIC).expect("conformance topics follow the topic rule");
    let reply = must(
        requester.request(&topic, request, patience).await,
        "requesting through the broker's requester",
    );
    assert_eq!(
        reply.envelope.causation_id.as_deref(),
        Some(id.as_str()),
        "the reply's causation id is not the id of its request"
    );
    assert_eq!(reply.envelope.event_type, RpcReply::TYPE);
    let reply = must(
        tidings_core::decode::<RpcReply>(&reply.envelope, &reply.data),
        "reading the reply",
    );
    assert_eq!(
        (reply.run(), reply.seq()),
        (run, 10),
        "the reply answers another request"
    );
    assert!(
        reply.key.ends_with(&format!("/{id}")),
        "the server saw another id than the request's {id}: {}",
        reply.key
    );
}

/// A request whose server answers after its deadline fails with a timeout, soon after the
/// deadline: the deadline ends the wait, not the reply.
pub async fn request_deadline(factory: &impl BrokerFactory) -> Outcome {
    let (bus, client) = client(factory).await;
    if let Some(skip) = unserved(bus.broker().capabilities()) {
        return skip;
    }
    let run = run_id();
    let server = must(
        bus.serve::<Slow, _>(
            &format!("slow{run}"),
            |request: Received<RpcRequest>| async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Ok(echo("slow", &request))
            },
        )
        .await,
        "serving requests",
    );
    let deadline = Duration::from_millis(300);
    let started = Instant::now();
    let result = client
        .call::<Slow>(&RpcRequest::new(&run, 0, ""))
        .deadline(deadline)
        .await;
    let waited = started.elapsed();
    match result {
        Err(RequestError::Timeout { after, .. }) => assert_eq!(after, deadline),
        other => panic!("expected a timeout after {deadline:?}, got {other:?}"),
    }
    assert!(
        waited >= deadline && waited < deadline + Duration::from_secs(2),
        "the request waited {waited:?} for a deadline of {deadline:?}"
    );
    // Dropped rather than shut down: its handler is still asleep.
    drop(server);
    Outcome::Passed
}

/// A request nobody serves fails at once with "no responders" where the broker promises it
/// ([`Capabilities::no_responders`]), and when its deadline passes otherwise.
pub async fn request_without_server(factory: &impl BrokerFactory) -> Outcome {
    let (bus, client) = client(factory).await;
    let run = run_id();
    let deadline = Duration::from_secs(2);
    let started = Instant::now();
    let result = client
        .call::<Nobody>(&RpcRequest::new(&run, 0, ""))
        .deadline(deadline)
        .await;
    let waited = started.elapsed();
    if bus.broker().capabilities().no_responders {
        assert!(
            matches!(
                result,
                Err(RequestError::NoResponders { ref topic }) if topic.as_str() == Nobody::TOPIC
            ),
            "expected no responders on {}, got {result:?}",
            Nobody::TOPIC
        );
        assert!(
            waited < deadline / 2,
            "no responders took {waited:?}, as long as a timeout"
        );
    } else {
        assert!(
            matches!(result, Err(RequestError::Timeout { .. })),
            "expected a timeout, got {result:?}"
        );
    }
    Outcome::Passed
}

/// Two servers in one group each answer a share of the requests; requests sent all at once
/// each get their own reply; and each request is handled once.
pub async fn request_groups(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let (bus, client) = client(factory).await;
    if let Some(skip) = unserved(bus.broker().capabilities()) {
        return skip;
    }
    let run = run_id();
    let group = format!("shared{run}");
    let other = super::support::bus(connect(factory).await);
    let (first, first_handled) = serve_counted::<Shared>(&bus, &group, "first", &run).await;
    let (second, second_handled) = serve_counted::<Shared>(&other, &group, "second", &run).await;
    // One at a time first: on a broker whose group takes a while to give the second server its
    // share (Kafka), requests sent all at once could all be answered before it has one.
    let mut answered_by = Vec::new();
    let mut seqs = BTreeSet::new();
    for seq in 0..40 {
        let reply = client
            .call::<Shared>(&RpcRequest::new(&run, seq, ""))
            .deadline(patience)
            .await;
        let reply = must(reply, "requesting");
        assert_eq!(reply.seq(), seq, "the reply answers another request");
        seqs.insert(reply.seq());
        answered_by.push(reply.key.split('/').next().unwrap_or_default().to_owned());
    }
    assert_eq!(seqs.len(), 40, "a request was answered twice or not at all");
    for server in ["first", "second"] {
        assert!(
            answered_by.iter().any(|name| name == server),
            "the {server} server of the group answered none of 40 requests: {answered_by:?}"
        );
    }
    let mut calls = tokio::task::JoinSet::new();
    for seq in 40..80 {
        let client = client.clone();
        let run = run.clone();
        calls.spawn(async move {
            let reply = client
                .call::<Shared>(&RpcRequest::new(&run, seq, ""))
                .deadline(patience)
                .await;
            (seq, reply)
        });
    }
    while let Some(call) = calls.join_next().await {
        let (seq, reply) = must(call, "waiting for a request sent at once with others");
        let reply = must(reply, "requesting at once with others");
        assert_eq!(reply.seq(), seq, "the reply answers another request");
    }
    let handled = [&first_handled, &second_handled].map(|count| count.load(Ordering::Relaxed));
    // At least once: a group that rebalances as its second member joins (Kafka's) may hand a
    // request it had given the first to the second as well; each caller still got one reply.
    assert!(
        handled.iter().sum::<usize>() >= 80,
        "the servers handled {handled:?} of 80 requests: a request was answered unhandled"
    );
    first.shutdown().await;
    second.shutdown().await;
    Outcome::Passed
}

/// Serves `R` in `group` with the echo of a server named `name`, counting the requests of
/// `run` it handles: the same case of another run may send it its own.
async fn serve_counted<R: Rpc<Request = RpcRequest, Reply = RpcReply>>(
    bus: &Bus,
    group: &str,
    name: &'static str,
    run: &str,
) -> (Subscription, Arc<AtomicUsize>) {
    let handled = Arc::new(AtomicUsize::new(0));
    let (count, run) = (handled.clone(), run.to_owned());
    let server = bus.serve::<R, _>(group, move |request: Received<RpcRequest>| {
        if request.run() == run {
            count.fetch_add(1, Ordering::Relaxed);
        }
        async move { Ok(echo(name, &request)) }
    });
    (must(server.await, "serving requests"), handled)
}

/// A server's error reaches the client as the status it returned, code and message.
pub async fn request_status(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let (bus, client) = client(factory).await;
    if let Some(skip) = unserved(bus.broker().capabilities()) {
        return skip;
    }
    let run = run_id();
    let server = must(
        bus.serve::<Failing, _>(&format!("failing{run}"), |_: Received<RpcRequest>| async {
            Err::<RpcReply, _>(Status::new(Status::CONFLICT, "out of stock"))
        })
        .await,
        "serving requests",
    );
    let result = client
        .call::<Failing>(&RpcRequest::new(&run, 0, ""))
        .deadline(patience)
        .await;
    match result {
        Err(RequestError::Status(status)) => {
            assert_eq!(status, Status::new(Status::CONFLICT, "out of stock"));
        }
        other => panic!("expected the server's status, got {other:?}"),
    }
    server.shutdown().await;
    Outcome::Passed
}

/// A request of another major is refused before the handler sees it, the client told why
/// with [`Status::INVALID_REQUEST`], and the server goes on answering.
pub async fn request_refusal(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let (bus, client) = client(factory).await;
    if let Some(skip) = unserved(bus.broker().capabilities()) {
        return skip;
    }
    let run = run_id();
    let server = serve_echo::<Strict>(&bus, &format!("strict{run}"), "strict").await;
    let result = client
        .call::<StrictV2>(&RpcRequestV2::new(&run, 0, ""))
        .deadline(patience)
        .await;
    match result {
        Err(RequestError::Status(status)) => {
            assert_eq!(status.code, Status::INVALID_REQUEST, "{status}");
            assert!(
                status.message.contains("wrong major version"),
                "the refusal does not say why: {status}"
            );
        }
        other => panic!("expected the request refused, got {other:?}"),
    }
    let reply = client
        .call::<Strict>(&RpcRequest::new(&run, 1, ""))
        .deadline(patience)
        .await;
    assert_eq!(must(reply, "requesting after a refusal").seq(), 1);
    server.shutdown().await;
    Outcome::Passed
}
