//! A durable broker restarted with its service command while events flow: every event arrives
//! at least once, and the duplicates the restart causes are counted and removed by the
//! deduplication step, so the handler sees each event exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tidings_core::{
    Bus, DedupError, DedupStore, Event, HandlerError, MemoryDedup, Received, Topic,
};
use tokio::sync::mpsc;

use crate::BrokerFactory;
use crate::probe::{Probe, Restart, SOURCE, probe_message, run_id};

/// What a restart run saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartReport {
    /// Distinct events the handler got (all of them, or the run fails).
    pub events: u64,
    /// Deliveries the dedup step recognised as already handled and kept from the handler.
    pub duplicates: u64,
    /// Publishes that failed while the broker was away and were tried again.
    pub publish_retries: u64,
}

/// A [`MemoryDedup`] that counts the duplicates it catches.
#[derive(Default)]
struct CountingDedup {
    inner: MemoryDedup,
    duplicates: AtomicU64,
}

#[async_trait]
impl DedupStore for CountingDedup {
    async fn seen(&self, scope: &str, id: &str) -> Result<bool, DedupError> {
        let seen = self.inner.seen(scope, id).await?;
        if seen {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        Ok(seen)
    }

    async fn record(&self, scope: &str, id: &str) -> Result<(), DedupError> {
        self.inner.record(scope, id).await
    }
}

/// How many tasks publish at once.
const PUBLISHERS: u64 = 4;

/// Publishes `events` events from several tasks to a group subscription with deduplication,
/// restarts the broker through `factory` once a fifth of them are confirmed, and waits (up to
/// `patience`) until every event reached the handler. Panics with what is missing otherwise.
pub async fn events_survive_restart(
    factory: &impl BrokerFactory,
    events: u64,
    patience: Duration,
) -> RestartReport {
    let run = run_id();
    let subscriber = Bus::from_arc(factory.connect().await.expect("connecting the subscriber"))
        .with_source(SOURCE);
    let publisher = factory.connect().await.expect("connecting the publisher");
    let topic = Topic::new(Restart::TOPIC).expect("a valid topic");

    let dedup = Arc::new(CountingDedup::default());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = {
        let run = run.clone();
        move |event: Received<Restart>| {
            if event.run() == run {
                super::support::tell(&tx, event.seq());
            }
            std::future::ready(Ok::<(), HandlerError>(()))
        }
    };
    let subscription = subscriber
        .subscribe(handler)
        .group(format!("flow_{run}"))
        .dedup(dedup.clone())
        .concurrency(1)
        .await
        .expect("joining the group");

    let confirmed = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let mut publishers = Vec::new();
    for lane in 0..PUBLISHERS {
        let (publisher, topic, run) = (publisher.clone(), topic.clone(), run.clone());
        let (confirmed, retries) = (confirmed.clone(), retries.clone());
        publishers.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + patience;
            for seq in (lane..events).step_by(PUBLISHERS as usize) {
                // One envelope per event: a retry carries the same event id, so the broker or
                // the dedup step can tell it from a new event.
                let message = probe_message::<Restart>(&run, seq);
                while let Err(e) = publisher.publish(&topic, message.clone()).await {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "event {seq} still not confirmed after {patience:?}: {e}"
                    );
                    retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                confirmed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let restart = async {
        while confirmed.load(Ordering::Relaxed) < events / 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        factory
            .restart()
            .await
            .unwrap_or_else(|e| panic!("restarting the broker: {e}"));
    };
    let mut handled: HashMap<u64, u32> = HashMap::new();
    let receive = async {
        let deadline = tokio::time::Instant::now() + patience;
        while (handled.len() as u64) < events {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(seq)) => *handled.entry(seq).or_default() += 1,
                Ok(None) => panic!("the subscription ended"),
                Err(_) => {
                    let missing = (0..events).filter(|s| !handled.contains_key(s)).count();
                    panic!(
                        "{missing} of {events} events never reached the handler within \
                         {patience:?} ({} published)",
                        confirmed.load(Ordering::Relaxed)
                    );
                }
            }
        }
    };
    tokio::join!(restart, receive);
    for publisher in publishers {
        publisher.await.expect("a publisher failed");
    }
    assert!(
        subscription.is_running(),
        "the subscription stopped with the restart"
    );
    subscription.shutdown().await;
    while let Ok(seq) = rx.try_recv() {
        *handled.entry(seq).or_default() += 1;
    }
    let repeated: Vec<_> = handled.iter().filter(|(_, n)| **n > 1).take(10).collect();
    assert!(
        repeated.is_empty(),
        "the handler saw events twice despite deduplication: {repeated:?}"
    );
    RestartReport {
        events: handled.len() as u64,
        duplicates: dedup.duplicates.load(Ordering::Relaxed),
        publish_retries: retries.load(Ordering::Relaxed),
    }
}
