//! Cases on how much a consumer takes on: the concurrency limit, graceful shutdown, dedup.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tidings_core::{HandlerError, MemoryDedup, Received, Topic};
use tokio::sync::{mpsc, watch};

use super::probe::{Concurrency, Dedup, Probe, Shutdown, probe_message, run_id};
use super::support::{bus, collector, connect, must, publish_range, seqs, take, tell, within};
use super::{BrokerFactory, Outcome};

/// A handler that reports entering, then waits for `gate` to open before it finishes and reports
/// the probe done. Counts how many run at once.
#[derive(Clone)]
struct Gated {
    run: Arc<str>,
    gate: watch::Receiver<bool>,
    entered: mpsc::UnboundedSender<u64>,
    done: mpsc::UnboundedSender<u64>,
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl<E: Probe> tidings_core::Handler<E> for Gated {
    async fn handle(&self, event: Received<E>) -> Result<(), HandlerError> {
        if *event.run() != *self.run {
            return Ok(());
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tell(&self.entered, event.seq());
        // A case that ended without opening the gate lets its handlers finish.
        let gate = self.gate.clone().wait_for(|open| *open).await.map(drop);
        if gate.is_err() {
            tracing::trace!("conformance: a gate closed for good as its case ended");
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        tell(&self.done, event.seq());
        Ok(())
    }
}

struct Gate {
    handler: Gated,
    open: watch::Sender<bool>,
    entered: mpsc::UnboundedReceiver<u64>,
    done: mpsc::UnboundedReceiver<u64>,
}

fn gate(run: &str) -> Gate {
    let (open, gate) = watch::channel(false);
    let (entered_tx, entered) = mpsc::unbounded_channel();
    let (done_tx, done) = mpsc::unbounded_channel();
    let handler = Gated {
        run: Arc::from(run),
        gate,
        entered: entered_tx,
        done: done_tx,
        running: Arc::default(),
        most: Arc::default(),
    };
    Gate {
        handler,
        open,
        entered,
        done,
    }
}

/// Gives a misbehaving consumer the chance to take more than it should before a check; the check
/// itself does not depend on how long this takes.
async fn let_it_misbehave() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// With concurrency 4, four handlers run at once and never a fifth.
pub async fn concurrency_limit(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let bus = bus(connect(factory).await);
    let mut gate = gate(&run);
    let sub = bus
        .subscribe::<Concurrency, _>(gate.handler.clone())
        .concurrency(4);
    let sub = must(sub.await, "subscribing");
    publish_range::<Concurrency>(&bus, &run, 0..12).await;

    take(
        &mut gate.entered,
        4,
        patience,
        "concurrency_limit: four at once",
    )
    .await;
    let_it_misbehave().await;
    assert_eq!(
        gate.handler.running.load(Ordering::SeqCst),
        4,
        "more than the limit ran at once"
    );
    assert!(gate.entered.try_recv().is_err(), "a fifth handler started");
    must(gate.open.send(true), "opening the gate");
    let done = take(&mut gate.done, 12, patience, "concurrency_limit: all done").await;
    let mut done_sorted = done.clone();
    done_sorted.sort();
    assert_eq!(done_sorted, (0..12).collect::<Vec<_>>());
    assert_eq!(
        gate.handler.most.load(Ordering::SeqCst),
        4,
        "at most four at once"
    );
    sub.shutdown().await;
    Outcome::Passed
}

/// Shutdown stops taking new events, waits for the one in flight and acks it; in a group, what
/// was not taken waits for the next member.
pub async fn graceful_shutdown(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let bus = bus(connect(factory).await);
    let groups = bus.broker().capabilities().groups;
    let group = format!("shutdown_{run}");
    let mut gate = gate(&run);
    let mut subscribe = bus.subscribe::<Shutdown, _>(gate.handler.clone());
    if groups {
        subscribe = subscribe.group(group.clone());
    }
    let sub = must(subscribe.await, "subscribing");
    publish_range::<Shutdown>(&bus, &run, [1]).await;
    take(
        &mut gate.entered,
        1,
        patience,
        "graceful_shutdown: in flight",
    )
    .await;

    // The first poll asks the consumer to stop; it must then wait for the handler in flight.
    let mut shutdown = Box::pin(sub.shutdown());
    tokio::select! {
        _ = &mut shutdown => panic!("shutdown returned while a handler was still running"),
        _ = let_it_misbehave() => {}
    }
    publish_range::<Shutdown>(&bus, &run, [2]).await;
    must(gate.open.send(true), "opening the gate");
    within(patience, "graceful_shutdown: shutdown", shutdown).await;
    let done = take(
        &mut gate.done,
        1,
        patience,
        "graceful_shutdown: the one in flight",
    )
    .await;
    assert_eq!(done, [1]);
    assert!(
        gate.entered.try_recv().is_err(),
        "an event was taken after shutdown was asked"
    );

    if groups {
        // Event 1 was acked and is gone; event 2 waited in the group for its next member.
        let (handler, mut inbox) = collector::<Shutdown>(&run);
        let next = must(
            bus.subscribe(handler).group(group).await,
            "rejoining the group",
        );
        publish_range::<Shutdown>(&bus, &run, [3]).await;
        let got = take(
            &mut inbox,
            2,
            patience,
            "graceful_shutdown: after rejoining",
        )
        .await;
        // Both, in either order: order is promised per key only, and these have none.
        assert_eq!(
            seqs(&got, "graceful_shutdown: after rejoining"),
            [2, 3].into_iter().collect()
        );
        next.shutdown().await;
    }
    Outcome::Passed
}

/// With a dedup store, a message published twice with one event id reaches the handler once,
/// and a second subscriber sharing the store still gets every event: ids are remembered per
/// consumer, not per topic.
pub async fn dedup_by_event_id(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let broker = connect(factory).await;
    let bus = bus(broker.clone());
    let store = Arc::new(MemoryDedup::new(1000));
    let (handler, mut inbox) = collector::<Dedup>(&run);
    let sub = bus.subscribe(handler).dedup(store.clone());
    let sub = must(sub.await, "subscribing");
    let (other_handler, mut other_inbox) = collector::<Dedup>(&run);
    let other = bus.subscribe(other_handler).dedup(store);
    let other = must(other.await, "subscribing a second subscriber");
    let topic = must(Topic::of::<Dedup>(), "the topic");
    let twice = probe_message::<Dedup>(&run, 1);
    for message in [twice.clone(), twice, probe_message::<Dedup>(&run, 2)] {
        must(broker.publish(&topic, message).await, "publishing");
    }
    // A last event behind them, so a late duplicate has had its chance.
    publish_range::<Dedup>(&bus, &run, [3]).await;
    for (inbox, who) in [(&mut inbox, "the first"), (&mut other_inbox, "the second")] {
        let got = take(inbox, 3, patience, "dedup_by_event_id").await;
        assert_eq!(
            seqs(&got, "dedup_by_event_id"),
            [1, 2, 3].into_iter().collect(),
            "{who} subscriber"
        );
        assert!(
            inbox.try_recv().is_err(),
            "a duplicate reached {who} subscriber's handler"
        );
    }
    sub.shutdown().await;
    other.shutdown().await;
    Outcome::Passed
}
