//! How failed deliveries are retried before they are dead-lettered.

use std::time::Duration;

/// The retry bound and the exponential backoff between attempts.
///
/// Attempt `n` (counting from 1) that fails is retried after at least
/// `initial_backoff * multiplier^(n-1)`, capped at `max_backoff`, until `max_attempts` attempts
/// failed; then the message is dead-lettered. A random part of up to as much again is added to
/// each wait (never past `max_backoff`), so consumers that failed together, after an outage say,
/// do not retry together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    initial_backoff: Duration,
    multiplier: f64,
    max_backoff: Duration,
    jitter_seed: Option<u64>,
}

impl Default for RetryPolicy {
    /// 5 attempts, 100 ms, doubling, at most 10 s apart.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(10),
            jitter_seed: None,
        }
    }
}

impl RetryPolicy {
    /// No retry: the first failure is dead-lettered.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// How many attempts in all before dead-lettering (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The wait after the first failed attempt.
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// How much the wait grows after each failed attempt (at least 1).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The longest wait between attempts.
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Draws the jitter from a generator seeded with `seed` instead of the operating system's
    /// randomness, so that a test sees the same waits every run.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// The wait after failed attempt `attempt` (1 for the first delivery) before jitter: the
    /// least a retry waits.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        if secs.is_finite() && secs < self.max_backoff.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.max_backoff
        }
    }

    /// The wait after failed attempt `attempt` that a subscription uses: [`delay_after`]
    /// plus a random part of up to as much again, never past `max_backoff` (unless
    /// [`delay_after`] is already past it, when it is that).
    ///
    /// [`delay_after`]: RetryPolicy::delay_after
    pub fn jittered_delay_after(&self, attempt: u32) -> Duration {
        let least = self.delay_after(attempt);
        let random = match self.jitter_seed {
            // One draw per attempt, the same for the same seed and attempt.
            Some(seed) => fastrand::Rng::with_seed(seed ^ u64::from(attempt)).f64(),
            None => fastrand::f64(),
        };
        (least + least.mul_f64(random)).min(self.max_backoff.max(least))
    }

    /// Whether a failure of attempt `attempt` is final.
    pub(crate) fn exhausted(&self, attempt: u32) -> bool {
        attempt >= self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let p = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .multiplier(2.0)
            .max_backoff(Duration::from_millis(500));
        let delays: Vec<_> = (1..=5).map(|a| p.delay_after(a)).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 500, 500]
                .map(Duration::from_millis)
                .to_vec()
        );
        assert_eq!(p.delay_after(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn jittered_waits_stay_between_the_backoff_and_twice_it_within_the_cap() {
        let p = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .multiplier(2.0)
            .max_backoff(Duration::from_millis(1000));
        for seed in 0..500 {
            let seeded = p.jitter_seed(seed);
            for attempt in 1..=6 {
                let least = p.delay_after(attempt);
                let wait = seeded.jittered_delay_after(attempt);
                assert!(
                    wait >= least && wait <= (least * 2).min(Duration::from_millis(1000)),
                    "seed {seed}, attempt {attempt}: {wait:?} is outside [{least:?}, 2x] capped"
                );
                assert_eq!(
                    wait,
                    seeded.jittered_delay_after(attempt),
                    "seeded: repeatable"
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_consumers_that_failed_together() {
        let p = RetryPolicy::default();
        let waits: std::collections::BTreeSet<Duration> = (0..50)
            .map(|seed| p.jitter_seed(seed).jittered_delay_after(1))
            .collect();
        assert!(waits.len() > 40, "only {} distinct waits", waits.len());
    }

    #[test]
    fn the_bound_counts_attempts() {
        let p = RetryPolicy::default().max_attempts(3);
        assert!(!p.exhausted(2));
        assert!(p.exhausted(3));
        assert!(RetryPolicy::none().exhausted(1));
        assert_eq!(RetryPolicy::default().max_attempts(0).max_attempts, 1);
    }
}
