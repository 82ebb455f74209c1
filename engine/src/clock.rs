//! Time, injected.
//!
//! The engine never reads the system clock directly: every timer, lease,
//! deadline and backoff goes through a [`Clock`], so tests move time with a
//! [`ManualClock`] instead of sleeping. Stored times are milliseconds since the
//! Unix epoch, computed from this clock (not from the database's `now()`), so
//! several engine nodes must keep their clocks in sync (NTP); leases are long
//! compared to any realistic skew.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::watch;

/// A point in time as the engine stores it.
pub type Timestamp = DateTime<Utc>;

/// Milliseconds since the Unix epoch, the stored form of a [`Timestamp`].
pub(crate) fn to_ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

/// The [`Timestamp`] for stored milliseconds.
pub(crate) fn from_ms(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A duration as whole milliseconds, saturating.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The source of time for the engine and its workflows.
#[async_trait]
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Resolves once [`Clock::now`] is at or after `deadline`.
    async fn sleep_until(&self, deadline: Timestamp);
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Utc::now()
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        let wait = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A clock that only moves when told to. Sleepers wake when time is advanced
/// past their deadline.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
    changed: watch::Sender<i64>,
}

impl ManualClock {
    /// A clock frozen at `start`.
    pub fn new(start: Timestamp) -> Arc<Self> {
        let (changed, _) = watch::channel(to_ms(start));
        Arc::new(Self {
            now_ms: AtomicI64::new(to_ms(start)),
            changed,
        })
    }

    /// A clock frozen at a fixed, readable instant (2030-01-01T00:00:00Z).
    pub fn at_fixed_instant() -> Arc<Self> {
        Self::new(
            Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        )
    }

    /// Moves time forward by `by` and wakes the sleepers that are due.
    pub fn advance(&self, by: Duration) {
        let now = self.now_ms.fetch_add(duration_ms(by), Ordering::SeqCst) + duration_ms(by);
        self.changed.send_replace(now);
    }

    /// Sets the time (never backwards).
    pub fn set(&self, to: Timestamp) {
        let to = to_ms(to);
        let now = self.now_ms.fetch_max(to, Ordering::SeqCst).max(to);
        self.changed.send_replace(now);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        from_ms(self.now_ms.load(Ordering::SeqCst))
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        let deadline = to_ms(deadline);
        let mut rx = self.changed.subscribe();
        loop {
            if self.now_ms.load(Ordering::SeqCst) >= deadline {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_when_advanced() {
        let clock = ManualClock::at_fixed_instant();
        let start = clock.now();
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(start + Duration::from_secs(60)).await })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(30));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(30));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper woke")
            .expect("no panic");
        assert_eq!(clock.now() - start, chrono::Duration::seconds(60));
    }

    #[test]
    fn millis_round_trip() {
        let clock = ManualClock::at_fixed_instant();
        assert_eq!(from_ms(to_ms(clock.now())), clock.now());
    }
}
