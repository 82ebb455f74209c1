//! Retry policy: how often and how long a failing step is retried.
//!
//! Retries are durable: the next attempt's time is stored with the journey, so
//! the delay is computed once, here, as a pure function of the attempt number.
//! Backoff crates model an in-memory loop around a future; a durable schedule
//! needs only this one function, so it is written out rather than depended on.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Per-step retry policy: exponential backoff with full jitter and a cap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (at least 1). When they run out
    /// the journey needs attention.
    pub max_attempts: u32,
    /// The backoff ceiling before the second attempt.
    pub initial_delay: Duration,
    /// The longest backoff between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 1 s doubling to at most 60 s: the spec's rule for every
    /// provider call.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy with `max_attempts` and the default delays.
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..Self::default()
        }
    }

    /// No retry: the first failure needs attention.
    pub fn never() -> Self {
        Self::attempts(1)
    }

    /// Sets the delays.
    pub fn delays(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_delay = initial;
        self.max_delay = max.max(initial);
        self
    }

    /// The policy for compensations: they must finish, so they are retried
    /// longer (12 attempts, up to 5 minutes apart) before a person is asked.
    pub fn compensation() -> Self {
        Self::attempts(12).delays(Duration::from_secs(1), Duration::from_secs(300))
    }

    /// Whether another attempt is allowed after `attempt` failed.
    pub fn allows_retry_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The ceiling of the backoff after attempt `attempt` (1-based) failed:
    /// `initial * 2^(attempt-1)`, capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        let ceiling = self.initial_delay.saturating_mul(1u32 << exp);
        ceiling.min(self.max_delay)
    }

    /// The delay before the next attempt after attempt `attempt` failed.
    /// `unit` is a uniform random number in `[0, 1)`: full jitter picks a
    /// delay uniformly below the ceiling. A provider's `Retry-After` is a
    /// floor (it is honoured even past the cap).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let jittered = self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0));
        match retry_after {
            Some(floor) => jittered.max(floor),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_and_caps() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=8).map(|a| p.ceiling(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(p.ceiling(200), Duration::from_secs(60));
    }

    #[test]
    fn full_jitter_stays_below_the_ceiling_and_honours_retry_after() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(3, None, 0.0), Duration::ZERO);
        assert_eq!(p.delay(3, None, 0.5), Duration::from_secs(2));
        assert!(p.delay(3, None, 0.999_999) < Duration::from_secs(4));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(30)), 0.5),
            Duration::from_secs(30)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(120)), 0.5),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn attempts_run_out() {
        let p = RetryPolicy::attempts(3);
        assert!(p.allows_retry_after(1));
        assert!(p.allows_retry_after(2));
        assert!(!p.allows_retry_after(3));
        assert!(!RetryPolicy::never().allows_retry_after(1));
    }
}
