//! Cases on what a consumer does when handling fails or a message is not what it subscribed to:
//! retries with a bound, dead letters carrying reason, attempts and topic, panics and timeouts
//! counted as failures, foreign and malformed messages refused without stopping.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidings_core::broker::Message;
use tidings_core::envelope::attr;
use tidings_core::{
    Event, EventId, Handler, HandlerError, Received, RetryPolicy, StartFrom, Topic,
};
use tokio::sync::mpsc;

use super::probe::{
    DeadLetterBound, Foreign, HandlerPanic, HandlerTimeout, Probe, Refusals, RefusalsV2,
    RetryThenSuccess, decode_probe, probe_message, run_id,
};
use super::support::{
    bus, collector, connect, dead_letter_topic, must, next_delivery, next_of_run, publish_range,
    quick_retries, subscribe_raw, take,
};
use super::{BrokerFactory, Outcome};

/// What a handler saw of one attempt: the probe number, the attempt, the event id and when.
type Attempt = (u64, u32, EventId, Instant);

/// A handler that records each attempt on its run's probes, then fails, panics, hangs or
/// succeeds as `behave(seq, attempt)` says; other runs' events succeed.
struct Recording<B> {
    run: String,
    behave: B,
    attempts: mpsc::UnboundedSender<Attempt>,
}

impl<E: Probe, B> Handler<E> for Recording<B>
where
    B: Fn(u64, u32) -> Behaviour + Send + Sync + 'static,
{
    async fn handle(&self, event: Received<E>) -> Result<(), HandlerError> {
        if event.run() != self.run {
            return Ok(());
        }
        let seq = event.seq();
        super::support::tell(
            &self.attempts,
            (
                seq,
                event.attempt(),
                event.envelope().id.clone(),
                Instant::now(),
            ),
        );
        match (self.behave)(seq, event.attempt()) {
            Behaviour::Succeed => Ok(()),
            Behaviour::Fail => Err(format!("refusing probe {seq} on purpose").into()),
            Behaviour::Panic => panic!("panicking on probe {seq} on purpose"),
            Behaviour::Hang => std::future::pending().await,
        }
    }
}

fn recording<B>(run: &str, behave: B) -> (Recording<B>, mpsc::UnboundedReceiver<Attempt>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Recording {
            run: run.to_owned(),
            behave,
            attempts: tx,
        },
        rx,
    )
}

/// What a recording handler does with an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Succeed,
    Fail,
    Panic,
    Hang,
}

/// A handler that always fails: retried up to the bound, then dead-lettered with the reason, the
/// attempt count and the original topic.
pub async fn dead_letter_after_bound(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let broker = connect(factory).await;
    let mut dead = subscribe_raw(
        &broker,
        &dead_letter_topic::<DeadLetterBound>(),
        None,
        StartFrom::New,
    )
    .await;
    let bus = bus(broker);
    let (handler, mut attempts) = recording(&run, |_, _| Behaviour::Fail);
    let sub = must(
        bus.subscribe::<DeadLetterBound, _>(handler)
            .retry(quick_retries(3))
            .await,
        "subscribing",
    );
    publish_range::<DeadLetterBound>(&bus, &run, [7]).await;

    let (letter, _) = next_of_run(&mut dead, &run, patience, "dead_letter_after_bound").await;
    let seen = take(
        &mut attempts,
        3,
        patience,
        "dead_letter_after_bound: attempts",
    )
    .await;
    assert_eq!(
        seen.iter().map(|a| (a.0, a.1)).collect::<Vec<_>>(),
        [(7, 1), (7, 2), (7, 3)]
    );
    assert!(
        attempts.try_recv().is_err(),
        "the handler ran after the bound"
    );
    let envelope = &letter.envelope;
    assert_eq!(
        envelope.id, seen[0].2,
        "the dead letter is the message itself"
    );
    assert_eq!(envelope.event_type, DeadLetterBound::TOPIC);
    assert_eq!(
        decode_probe(&letter.data),
        Some((run.clone(), 7)),
        "the data is kept"
    );
    let reason = envelope
        .extension(attr::DEAD_LETTER_REASON)
        .unwrap_or_default();
    assert!(
        reason.contains("refusing probe 7 on purpose"),
        "reason: {reason}"
    );
    assert_eq!(envelope.extension(attr::DEAD_LETTER_ATTEMPTS), Some("3"));
    assert_eq!(
        envelope.extension(attr::DEAD_LETTER_TOPIC),
        Some(DeadLetterBound::TOPIC)
    );
    sub.shutdown().await;
    Outcome::Passed
}

/// Messages that are not the subscribed event (another major, another schema, bytes that do not
/// decode, missing or unknown content type, no schema) are each dead-lettered at once with a
/// reason naming what was expected and what arrived, and the consumer goes on.
pub async fn refusals_are_dead_lettered(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let broker = connect(factory).await;
    let mut dead = subscribe_raw(
        &broker,
        &dead_letter_topic::<Refusals>(),
        None,
        StartFrom::New,
    )
    .await;
    let bus = bus(broker.clone());
    let (handler, mut inbox) = collector::<Refusals>(&run);
    // Requiring `dataschema`, so that a message without it is among the refusals.
    let sub = must(
        bus.subscribe(handler).require_data_schema().await,
        "subscribing",
    );

    let with = |seq, change: fn(&mut Message)| {
        let mut message = probe_message::<Refusals>(&run, seq);
        change(&mut message);
        message
    };
    let refused: Vec<(Message, &[&str])> = vec![
        (
            probe_message::<RefusalsV2>(&run, 1),
            &[
                "wrong major version",
                "`conformance.refusals.probe.v1` (major 1)",
                "`conformance.refusals.probe.v2` (major 2)",
            ],
        ),
        (
            with(2, |m| {
                m.envelope_mut().data_schema = Some(Cow::Borrowed("proto:shop.billing.v1.Invoice"))
            }),
            &[
                "wrong schema",
                "proto:tidings.conformance.v1.Probe",
                "proto:shop.billing.v1.Invoice",
            ],
        ),
        (
            with(3, |m| {
                m.data = Bytes::from_static(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
            }),
            &[
                "undecodable",
                "application/protobuf",
                "tidings.conformance.v1.Probe",
            ],
        ),
        (
            with(4, |m| m.envelope_mut().data_schema = None),
            &[
                "missing schema",
                "proto:tidings.conformance.v1.Probe",
                "got none",
            ],
        ),
        (
            with(5, |m| m.envelope_mut().data_content_type = None),
            &["unknown content type", "application/protobuf", "got none"],
        ),
        (
            with(6, |m| {
                m.envelope_mut().data_content_type = Some(Cow::Borrowed("text/plain"))
            }),
            &[
                "unknown content type",
                "application/protobuf",
                "`text/plain`",
            ],
        ),
        (
            with(7, |m| {
                m.envelope_mut().data_content_type = Some(Cow::Borrowed("application/json"))
            }),
            &[
                "application/json",
                "tidings.conformance.v1.Probe",
                "reads application/protobuf",
            ],
        ),
    ];
    let topic = must(Topic::of::<Refusals>(), "the topic");
    for (message, _) in &refused {
        must(
            broker.publish(&topic, message.clone()).await,
            "publishing a refused message",
        );
    }
    publish_range::<Refusals>(&bus, &run, [8]).await;

    let handled = take(
        &mut inbox,
        1,
        patience,
        "refusals: the valid event after them",
    )
    .await;
    assert_eq!(
        handled[0].seq, 8,
        "only the valid event reaches the handler"
    );
    let mut letters = Vec::new();
    for _ in &refused {
        letters.push(
            next_of_run(&mut dead, &run, patience, "refusals: dead letters")
                .await
                .0,
        );
    }
    for (message, needles) in &refused {
        let letter = letters
            .iter()
            .find(|l| l.envelope.id == message.envelope.id)
            .unwrap_or_else(|| panic!("no dead letter for {:?}", message.envelope));
        let reason = letter
            .envelope
            .extension(attr::DEAD_LETTER_REASON)
            .unwrap_or_default();
        for needle in *needles {
            assert!(
                reason.contains(needle),
                "reason {reason:?} should name {needle:?}"
            );
        }
        assert_eq!(
            letter.envelope.extension(attr::DEAD_LETTER_ATTEMPTS),
            Some("1")
        );
        assert_eq!(
            letter.envelope.extension(attr::DEAD_LETTER_TOPIC),
            Some(Refusals::TOPIC)
        );
        assert_eq!(
            letter.data, message.data,
            "a dead letter keeps the data as it arrived"
        );
    }
    assert!(
        inbox.try_recv().is_err(),
        "a refused message reached the handler"
    );
    assert!(sub.is_running(), "the consumer stopped");
    sub.shutdown().await;
    Outcome::Passed
}

/// A message that is no CloudEvent at all, published through the broker's own client by a
/// producer that knows nothing of tidings, is dead-lettered at once with a reason naming what was
/// expected, its payload kept whole, and the consumer goes on to the next event.
pub async fn foreign_messages_are_dead_lettered(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let broker = connect(factory).await;
    let topic = must(Topic::of::<Foreign>(), "the topic");
    let mut dead = subscribe_raw(
        &broker,
        &dead_letter_topic::<Foreign>(),
        None,
        StartFrom::New,
    )
    .await;
    let bus = bus(broker.clone());
    let (handler, mut inbox) = collector::<Foreign>(&run);
    let sub = must(bus.subscribe(handler).await, "subscribing");

    let payload = format!("legacy reading of {run}: 21.5").into_bytes();
    match factory.publish_foreign(&topic, payload.clone()).await {
        None => {
            sub.shutdown().await;
            return Outcome::skipped("the broker carries only messages tidings published");
        }
        Some(published) => must(published, "publishing a foreign message"),
    }
    publish_range::<Foreign>(&bus, &run, [1]).await;

    let handled = take(&mut inbox, 1, patience, "foreign: the event after it").await;
    assert_eq!(handled[0].seq, 1, "only the event reaches the handler");
    // Dead letters of other runs may come first; this run's is the one with its payload.
    let deadline = tokio::time::Instant::now() + patience;
    let reason = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let delivery = next_delivery(&mut dead, left, "foreign: its dead letter").await;
        must(delivery.acker.ack().await, "acking a dead letter");
        let (data, reason) = match &delivery.message {
            // Still no CloudEvent: the transport's headers carry the dead-letter attributes.
            Err(kept) => (
                kept.data.clone(),
                kept.headers
                    .iter()
                    .find(|(name, _)| {
                        name.to_ascii_lowercase()
                            .ends_with(attr::DEAD_LETTER_REASON)
                    })
                    .map(|(_, value)| value.clone()),
            ),
            Ok(letter) => (
                letter.data.clone(),
                letter
                    .envelope
                    .extension(attr::DEAD_LETTER_REASON)
                    .map(str::to_owned),
            ),
        };
        if data[..] == payload[..] {
            break reason.unwrap_or_else(|| panic!("no reason on {:?}", delivery.message));
        }
    };
    for needle in ["malformed message", Foreign::TOPIC] {
        assert!(
            reason.contains(needle),
            "reason {reason:?} should name {needle:?}"
        );
    }
    assert!(
        inbox.try_recv().is_err(),
        "the foreign message reached the handler"
    );
    assert!(sub.is_running(), "the consumer stopped");
    sub.shutdown().await;
    Outcome::Passed
}

/// A handler that fails twice then succeeds is retried, each retry no sooner than its backoff
/// after the failure, and never dead-lettered.
pub async fn retry_then_success(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let broker = connect(factory).await;
    let dead_topic = dead_letter_topic::<RetryThenSuccess>();
    let mut dead = subscribe_raw(&broker, &dead_topic, None, StartFrom::New).await;
    let bus = bus(broker.clone());
    let behave = |_, attempt| {
        if attempt < 3 {
            Behaviour::Fail
        } else {
            Behaviour::Succeed
        }
    };
    let (handler, mut attempts) = recording(&run, behave);
    // Backoffs long enough that a redelivery which ignores them shows, whether the broker
    // delays the redelivery or the consumer waits.
    let policy = RetryPolicy::default()
        .max_attempts(5)
        .initial_backoff(Duration::from_millis(150))
        .multiplier(2.0)
        .max_backoff(Duration::from_secs(1));
    let sub = must(
        bus.subscribe::<RetryThenSuccess, _>(handler)
            .retry(policy)
            .await,
        "subscribing",
    );
    publish_range::<RetryThenSuccess>(&bus, &run, [1]).await;
    let seen = take(&mut attempts, 3, patience, "retry_then_success").await;
    assert_eq!(
        seen.iter().map(|a| (a.0, a.1)).collect::<Vec<_>>(),
        [(1, 1), (1, 2), (1, 3)]
    );
    assert!(
        seen.iter().all(|a| a.2 == seen[0].2),
        "every attempt is the same message"
    );
    for pair in seen.windows(2) {
        let (failed, next) = (&pair[0], &pair[1]);
        let waited = next.3 - failed.3;
        // A broker that schedules redeliveries may round its clock to the millisecond.
        let backoff = policy.delay_after(failed.1);
        assert!(
            waited + Duration::from_millis(5) >= backoff,
            "attempt {} came {waited:?} after attempt {}, before its backoff of {backoff:?}",
            next.1,
            failed.1
        );
    }

    // Nothing of this run may sit on the dead-letter topic ahead of a marker put there now.
    let marker = probe_message::<RetryThenSuccess>(&run, 99);
    must(
        broker.publish(&dead_topic, marker.clone()).await,
        "publishing a marker",
    );
    let (first, _) = next_of_run(&mut dead, &run, patience, "retry_then_success: marker").await;
    assert_eq!(
        first.envelope.id, marker.envelope.id,
        "a retried message was dead-lettered"
    );
    sub.shutdown().await;
    Outcome::Passed
}

/// A handler panic is caught, counted as a failed attempt and retried; the consumer goes on.
pub async fn handler_panic_is_isolated(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let bus = bus(connect(factory).await);
    let behave = |seq, attempt| {
        if seq == 1 && attempt == 1 {
            Behaviour::Panic
        } else {
            Behaviour::Succeed
        }
    };
    let (handler, mut attempts) = recording(&run, behave);
    let sub = must(
        bus.subscribe::<HandlerPanic, _>(handler)
            .retry(quick_retries(3))
            .await,
        "subscribing",
    );
    publish_range::<HandlerPanic>(&bus, &run, [1, 2]).await;
    let mut seen: Vec<_> = take(&mut attempts, 3, patience, "handler_panic_is_isolated")
        .await
        .into_iter()
        .map(|a| (a.0, a.1))
        .collect();
    seen.sort();
    assert_eq!(seen, [(1, 1), (1, 2), (2, 1)]);
    assert!(sub.is_running(), "a handler panic stopped the consumer");
    publish_range::<HandlerPanic>(&bus, &run, [3]).await;
    let after = take(
        &mut attempts,
        1,
        patience,
        "handler_panic_is_isolated: after",
    )
    .await;
    assert_eq!((after[0].0, after[0].1), (3, 1));
    sub.shutdown().await;
    Outcome::Passed
}

/// A handler that hangs is cut off by the per-message timeout and retried.
pub async fn handler_timeout(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let bus = bus(connect(factory).await);
    let behave = |seq, attempt| {
        if seq == 1 && attempt == 1 {
            Behaviour::Hang
        } else {
            Behaviour::Succeed
        }
    };
    let (handler, mut attempts) = recording(&run, behave);
    let subscribe = bus
        .subscribe::<HandlerTimeout, _>(handler)
        .retry(quick_retries(3))
        .handler_timeout(Duration::from_millis(300));
    let sub = must(subscribe.await, "subscribing");
    publish_range::<HandlerTimeout>(&bus, &run, [1, 2]).await;
    let mut seen: Vec<_> = take(&mut attempts, 3, patience, "handler_timeout")
        .await
        .into_iter()
        .map(|a| (a.0, a.1))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [(1, 1), (1, 2), (2, 1)],
        "the hung attempt is retried"
    );
    sub.shutdown().await;
    Outcome::Passed
}
