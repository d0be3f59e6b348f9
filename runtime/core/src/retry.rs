//! How failed deliveries are retried before they are dead-lettered.

use std::time::Duration;

/// The retry bound and the exponential backoff between attempts.
///
/// Attempt `n` (counting from 1) that fails is retried after
/// `initial_backoff * multiplier^(n-1)`, capped at `max_backoff`, until `max_attempts` attempts
/// failed; then the message is dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    initial_backoff: Duration,
    multiplier: f64,
    max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 100 ms, doubling, at most 10 s apart.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(10),
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

    /// The wait after failed attempt `attempt` (1 for the first delivery).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        if secs.is_finite() && secs < self.max_backoff.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.max_backoff
        }
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
    fn the_bound_counts_attempts() {
        let p = RetryPolicy::default().max_attempts(3);
        assert!(!p.exhausted(2));
        assert!(p.exhausted(3));
        assert!(RetryPolicy::none().exhausted(1));
        assert_eq!(RetryPolicy::default().max_attempts(0).max_attempts, 1);
    }
}
