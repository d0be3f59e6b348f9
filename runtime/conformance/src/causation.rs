//! A case on events published in reaction to others: the chain they carry through the broker
//! (correlation id, causation id, trace and `causationdepth`), and the bound on its depth that
//! stops a handler publishing to the topic it consumes.

use tidings_core::envelope::attr;
use tidings_core::{Bus, Event, Handler, HandlerError, Received, StartFrom};
use tokio::sync::mpsc;

use super::probe::{CausationLoop, Probe, run_id};
use super::support::{
    bus, connect, dead_letter_topic, must, next_of_run, quick_retries, subscribe_raw, take,
};
use super::{BrokerFactory, Outcome};

/// The bus's bound on the causation depth in this case: the loop publishes the first event and
/// this many caused by it.
const BOUND: u32 = 5;

/// The trace the first event is published in.
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The trace id of a W3C `traceparent`.
fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}

/// What the handler saw of one event: its probe number, envelope and attempt.
type Call = (u64, tidings_core::Envelope, u32);

/// A handler that publishes, for each event of its run, the next probe caused by it, and
/// returns the publish's error with `?`.
struct Looping {
    run: String,
    bus: Bus,
    calls: mpsc::UnboundedSender<Call>,
}

impl Handler<CausationLoop> for Looping {
    async fn handle(&self, event: Received<CausationLoop>) -> Result<(), HandlerError> {
        if event.run() != self.run {
            return Ok(());
        }
        let seq = event.seq();
        let call = (seq, event.envelope().clone(), event.attempt());
        if self.calls.send(call).is_err() {
            return Err("the case stopped listening".into());
        }
        let next = CausationLoop::new(&self.run, seq + 1, "");
        self.bus.publish_with(&next).caused_by(&event).await?;
        Ok(())
    }
}

/// A handler that publishes to the topic it consumes, each event caused by the one it handles,
/// stops at the bus's bound: exactly the bound's number of caused events follow the first, each
/// carries the correlation id, the id of the one before as its causation id, its trace and its
/// depth through the broker, and the last is dead-lettered after one attempt, the chain in the
/// reason.
pub async fn causation_bound(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let broker = connect(factory).await;
    let dead_letters = dead_letter_topic::<CausationLoop>();
    let mut dead = subscribe_raw(&broker, &dead_letters, None, StartFrom::New).await;
    let bus = bus(broker).with_max_causation_depth(BOUND);
    let (tx, mut calls) = mpsc::unbounded_channel();
    let handler = Looping {
        run: run.clone(),
        bus: bus.clone(),
        calls: tx,
    };
    // Retries allowed, to show that the refusal makes none.
    let sub = must(
        bus.subscribe::<CausationLoop, _>(handler)
            .retry(quick_retries(3))
            .await,
        "subscribing",
    );
    let first = CausationLoop::new(&run, 0, "");
    let first = bus
        .publish_with(&first)
        .correlation_id(&run)
        .traceparent(TRACEPARENT);
    must(first.await, "publishing the first event");

    let (letter, _) = next_of_run(&mut dead, &run, patience, "causation_bound").await;
    let events = BOUND as usize + 1;
    let seen = take(&mut calls, events, patience, "causation_bound: handled").await;
    sub.shutdown().await;
    assert!(
        calls.try_recv().is_err(),
        "an event past the bound was published and handled"
    );

    for (depth, (seq, envelope, attempt)) in seen.iter().enumerate() {
        let depth = depth as u32;
        assert_eq!(
            (*seq, envelope.causation_depth, *attempt),
            (u64::from(depth), depth, 1),
            "each event one deeper than the one before, handled once"
        );
        assert_eq!(envelope.correlation_id.as_deref(), Some(run.as_str()));
        assert_eq!(
            envelope.traceparent.as_deref().and_then(trace_id),
            trace_id(TRACEPARENT),
            "the trace goes on"
        );
    }
    for pair in seen.windows(2) {
        assert_eq!(
            pair[1].1.causation_id.as_deref(),
            Some(pair[0].1.id.as_str()),
            "each event is caused by the one before"
        );
    }

    let last = &seen[events - 1].1;
    let envelope = &letter.envelope;
    assert_eq!(envelope.id, last.id, "the event whose publish was refused");
    assert_eq!(envelope.causation_depth, BOUND);
    assert_eq!(envelope.extension(attr::DEAD_LETTER_ATTEMPTS), Some("1"));
    let reason = envelope
        .extension(attr::DEAD_LETTER_REASON)
        .unwrap_or_default();
    let refused = format!(
        "cannot publish to {}: the event would have {} events before it in its causation chain, \
         more than the bound of {BOUND}",
        CausationLoop::TOPIC,
        BOUND + 1
    );
    let chain = format!(
        "the chain: correlation id {run}, caused by event {} of type {}",
        last.id,
        CausationLoop::TOPIC
    );
    assert!(
        reason.contains(&refused) && reason.contains(&chain),
        "reason: {reason}"
    );
    Outcome::Passed
}
