//! How an adapter waits before trying a broker again after a failure: 50 ms at first, doubling
//! up to 2 s, and back to 50 ms once something works. Short enough that a broker restart is
//! barely noticed, long enough that one refusing every request is not asked in a busy loop.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(50);
const MAX: Duration = Duration::from_secs(2);

/// The wait before the next attempt.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    /// Starts at the shortest wait.
    pub(crate) const fn new() -> Self {
        Backoff { next: FIRST }
    }

    /// Waits, and makes the next wait twice as long (up to the maximum).
    pub(crate) async fn wait(&mut self) {
        let wait = self.next;
        self.next = (wait * 2).min(MAX);
        tokio::time::sleep(wait).await;
    }

    /// Something worked: the next failure waits the shortest time again.
    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn doubles_up_to_two_seconds_and_starts_over_after_a_success() {
        let mut backoff = Backoff::new();
        let mut waits = Vec::new();
        for _ in 0..8 {
            let start = tokio::time::Instant::now();
            backoff.wait().await;
            waits.push(start.elapsed().as_millis());
        }
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        backoff.reset();
        let start = tokio::time::Instant::now();
        backoff.wait().await;
        assert_eq!(start.elapsed().as_millis(), 50);
    }
}
