//! How an adapter waits before trying a broker again after a failure: about 50 ms at first,
//! doubling, and back to the start once something works. Short enough that a broker restart is
//! barely noticed, long enough that one refusing every request is not asked in a busy loop.
//!
//! Each wait is jittered (backon's exponential backoff adds a random part of up to the wait
//! itself), so the clients of a broker that comes back do not all retry in the same instant.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// The first wait, before jitter.
const FIRST: Duration = Duration::from_millis(50);
/// The longest wait before jitter; with it, no wait reaches twice this.
const LONGEST: Duration = Duration::from_secs(1);

/// The waits between attempts: `[50 ms, 100 ms)`, then `[100 ms, 200 ms)`, doubling up to
/// `[1 s, 2 s)`, and from the start again after [`Backoff::reset`].
#[derive(Debug)]
pub struct Backoff {
    schedule: ExponentialBuilder,
    waits: ExponentialBackoff,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    /// Jittered from the operating system's randomness.
    pub fn new() -> Self {
        Backoff::from_schedule(schedule())
    }

    /// Jittered from a fixed seed, so that a test sees the same waits every run.
    pub fn seeded(seed: u64) -> Self {
        Backoff::from_schedule(schedule().with_jitter_seed(seed))
    }

    fn from_schedule(schedule: ExponentialBuilder) -> Self {
        Backoff {
            schedule,
            waits: schedule.build(),
        }
    }

    /// The next wait, growing the one after it.
    pub fn next_wait(&mut self) -> Duration {
        // The schedule has no bound on attempts, so it always has a next wait.
        self.waits.next().unwrap_or(LONGEST)
    }

    /// Waits [`Backoff::next_wait`].
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_wait()).await;
    }

    /// Something worked: the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.waits = self.schedule.build();
    }
}

fn schedule() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(FIRST)
        .with_max_delay(LONGEST)
        .with_factor(2.0)
        .without_max_times()
        .with_jitter()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[low, 2 * low)` in milliseconds, for each of the first waits.
    const BOUNDS: [u64; 8] = [50, 100, 200, 400, 800, 1000, 1000, 1000];

    fn within_bounds(backoff: &mut Backoff) -> Vec<Duration> {
        BOUNDS
            .iter()
            .map(|&low| {
                let wait = backoff.next_wait();
                let low = Duration::from_millis(low);
                assert!(
                    wait >= low && wait < low * 2,
                    "{wait:?} is outside [{low:?}, {:?})",
                    low * 2
                );
                wait
            })
            .collect()
    }

    #[test]
    fn jittered_waits_double_within_their_bounds_and_start_over_after_a_reset() {
        for seed in 0..200 {
            let mut backoff = Backoff::seeded(seed);
            let first = within_bounds(&mut backoff);
            backoff.reset();
            assert_eq!(within_bounds(&mut backoff), first, "seed {seed}");
        }
    }

    #[test]
    fn seeds_spread_the_waits() {
        let firsts: std::collections::BTreeSet<Duration> = (0..50)
            .map(|seed| Backoff::seeded(seed).next_wait())
            .collect();
        assert!(
            firsts.len() > 40,
            "50 clients would wait only {} distinct times",
            firsts.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn wait_sleeps_the_next_wait() {
        let mut seeded = Backoff::seeded(7);
        let expected = Backoff::seeded(7).next_wait();
        let start = tokio::time::Instant::now();
        seeded.wait().await;
        // The timer counts whole milliseconds.
        let slept = start.elapsed();
        assert!(
            slept >= expected && slept <= expected + Duration::from_millis(1),
            "slept {slept:?} for a wait of {expected:?}"
        );
    }
}
