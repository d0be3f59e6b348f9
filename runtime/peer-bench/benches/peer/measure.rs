//! What a round costs: wall time, this process's CPU time and its allocation calls, between the
//! first publish and the last handled event; and the count of handled events that ends a round.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cpu_time::ProcessTime;
use tokio::sync::Notify;

use crate::ALLOCATOR;

/// Allocation calls of the whole process so far: allocations (zeroed ones included) and
/// reallocations, each of which may move a block; frees are not counted.
fn allocation_calls() -> u64 {
    let stats = ALLOCATOR.stats();
    u64::try_from(stats.allocations + stats.reallocations).unwrap_or(u64::MAX)
}

/// One side's round, measured from the first publish to the last handled event. Connecting,
/// subscribing and tearing down are outside it.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Wall time.
    pub elapsed: Duration,
    /// CPU time of every thread of this process, user and system: the clients, the runtime and
    /// both libraries, not the brokers' servers.
    pub cpu: Duration,
    /// Allocation calls of the whole process.
    pub allocations: u64,
}

/// A round's measurement under way.
pub struct Stopwatch {
    wall: Instant,
    cpu: ProcessTime,
    allocations: u64,
}

impl Stopwatch {
    /// Starts measuring; the wall clock starts last, so that reading the others is not timed.
    pub fn start() -> Stopwatch {
        Stopwatch {
            allocations: allocation_calls(),
            cpu: ProcessTime::now(),
            wall: Instant::now(),
        }
    }

    /// Stops measuring; the wall clock stops first.
    pub fn stop(self) -> Sample {
        let elapsed = self.wall.elapsed();
        Sample {
            elapsed,
            cpu: self.cpu.elapsed(),
            allocations: allocation_calls() - self.allocations,
        }
    }
}

/// Handled events of the round under way, counted by every handler of both sides. One for the
/// process: a ruststream handler is a plain `async fn` that can reach nothing else without state
/// of the application's, and a tidings handler reaches it the same way so that both pay the same.
pub static HANDLED: LazyLock<Handled> = LazyLock::new(Handled::default);

/// See [`HANDLED`].
#[derive(Default)]
pub struct Handled {
    count: AtomicU64,
    expected: AtomicU64,
    all_in: Notify,
}

impl Handled {
    /// Starts a round that ends after `events` handled events.
    pub fn expect(&self, events: u64) {
        self.count.store(0, Ordering::SeqCst);
        self.expected.store(events, Ordering::SeqCst);
    }

    /// Counts one handled event, and wakes the round at the last one.
    pub fn one(&self) {
        let count = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        if count == self.expected.load(Ordering::Acquire) {
            self.all_in.notify_one();
        }
    }

    fn complete(&self) -> bool {
        self.count.load(Ordering::Acquire) >= self.expected.load(Ordering::Acquire)
    }

    /// Waits for the round's last event. Panics, naming the round, when no event came for
    /// `patience`: a broker that stopped delivering would otherwise hang the run.
    pub async fn all_in(&self, round: &str, patience: Duration) {
        let mut seen = self.count.load(Ordering::Acquire);
        loop {
            // A wake-up left from an earlier round only costs one more look at the count.
            let woken = self.all_in.notified();
            if self.complete() {
                return;
            }
            if tokio::time::timeout(patience, woken).await.is_err() {
                let now = self.count.load(Ordering::Acquire);
                assert!(
                    now > seen,
                    "{round}: no event handled for {patience:?}, {now} of {} in; is the broker \
                     still up?",
                    self.expected.load(Ordering::Acquire)
                );
                seen = now;
            }
        }
    }
}
