//! Engine counters, rendered in the Prometheus text format for `/metrics`.
//!
//! A dozen atomic counters and one fixed-bucket histogram: small enough that
//! a metrics crate would add more surface than it saves. Journey counts by
//! status are read from the store at scrape time, so every node reports the
//! cluster's numbers.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::Status;
use crate::store::StatusCount;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets it.
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the step-latency buckets, in milliseconds.
const BUCKETS_MS: [i64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 5_000, 30_000];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_ms: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe_ms(&self, ms: i64) {
        let ms = ms.max(0);
        for (bound, bucket) in BUCKETS_MS.iter().zip(&self.buckets) {
            if ms <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// The engine's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Steps that completed.
    pub steps_completed: Counter,
    /// Steps that failed terminally.
    pub steps_failed: Counter,
    /// Step attempts that failed and were retried (or ran out of retries).
    pub retries: Counter,
    /// Step latency.
    pub step_latency: Histogram,
    /// Claim queries that returned work.
    pub claims: Counter,
    /// Journeys claimed.
    pub claimed: Counter,
    /// Commit transactions.
    pub commits: Counter,
    /// Journey steps written by those commits.
    pub committed_steps: Counter,
    /// Leases lost (another worker took over, or not renewed in time).
    pub lease_losses: Counter,
    /// Store operations that failed.
    pub store_errors: Counter,
    /// Compensation attempts that failed.
    pub compensation_failures: Counter,
    /// Signals stored for a journey.
    pub signals_received: Counter,
    /// Signals ignored as duplicates.
    pub signals_duplicate: Counter,
    /// Signals that matched no journey.
    pub signals_unmatched: Counter,
    /// Requests the ingress refused (auth, size, shape).
    pub ingress_rejected: Counter,
    /// Journeys that reached `needs_attention`.
    pub needs_attention: Counter,
    /// Journeys that ended (completed, failed or cancelled).
    pub journeys_ended: Counter,
    /// Journeys and callbacks that needed a person at the last sweep.
    pub stuck: Gauge,
}

impl Metrics {
    pub(crate) fn observe_status(&self, status: Status) {
        if status == Status::NeedsAttention {
            self.needs_attention.inc();
        } else if status.is_terminal() {
            self.journeys_ended.inc();
        }
    }

    /// Renders the counters (and `journeys`, read from the store) in the
    /// Prometheus text exposition format.
    pub fn render(&self, journeys: &[StatusCount]) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &Counter); 16] = [
            (
                "handover_steps_completed_total",
                "Steps that completed.",
                &self.steps_completed,
            ),
            (
                "handover_steps_failed_total",
                "Steps that failed terminally.",
                &self.steps_failed,
            ),
            (
                "handover_step_retries_total",
                "Step attempts that failed and were retried or exhausted.",
                &self.retries,
            ),
            (
                "handover_claims_total",
                "Claim queries that returned work.",
                &self.claims,
            ),
            (
                "handover_claimed_journeys_total",
                "Journeys claimed.",
                &self.claimed,
            ),
            (
                "handover_commits_total",
                "Commit transactions written by workers.",
                &self.commits,
            ),
            (
                "handover_committed_steps_total",
                "Journey transitions written by those commits.",
                &self.committed_steps,
            ),
            (
                "handover_lease_losses_total",
                "Leases lost to another worker or not renewed in time.",
                &self.lease_losses,
            ),
            (
                "handover_store_errors_total",
                "Store operations that failed.",
                &self.store_errors,
            ),
            (
                "handover_compensation_failures_total",
                "Compensation attempts that failed.",
                &self.compensation_failures,
            ),
            (
                "handover_callbacks_received_total",
                "Signals and callbacks stored for a journey.",
                &self.signals_received,
            ),
            (
                "handover_callbacks_duplicate_total",
                "Signals and callbacks ignored as duplicates.",
                &self.signals_duplicate,
            ),
            (
                "handover_callbacks_unmatched_total",
                "Signals and callbacks that matched no journey.",
                &self.signals_unmatched,
            ),
            (
                "handover_ingress_rejected_total",
                "Ingress requests refused (auth, size, shape).",
                &self.ingress_rejected,
            ),
            (
                "handover_needs_attention_total",
                "Journeys that stopped for a person.",
                &self.needs_attention,
            ),
            (
                "handover_journeys_ended_total",
                "Journeys that completed, failed or were cancelled.",
                &self.journeys_ended,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.get()
            );
        }
        let _ = writeln!(
            out,
            "# HELP handover_stuck Journeys and callbacks needing a person at the last sweep.\n# TYPE handover_stuck gauge\nhandover_stuck {}",
            self.stuck.get()
        );
        let name = "handover_step_duration_ms";
        let _ = writeln!(
            out,
            "# HELP {name} Step duration in milliseconds.\n# TYPE {name} histogram"
        );
        for (bound, bucket) in BUCKETS_MS.iter().zip(&self.step_latency.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.step_latency.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.step_latency.sum_ms.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "{name}_count {count}");
        let name = "handover_journeys";
        let _ = writeln!(
            out,
            "# HELP {name} Journeys in the store by workflow and status.\n# TYPE {name} gauge"
        );
        for c in journeys {
            let _ = writeln!(
                out,
                "{name}{{workflow=\"{}\",status=\"{}\"}} {}",
                escape_label(&c.workflow),
                c.status.as_str(),
                c.count
            );
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.steps_completed.add(3);
        m.step_latency.observe_ms(4);
        m.step_latency.observe_ms(700);
        let text = m.render(&[StatusCount {
            workflow: "demo\"x".into(),
            status: Status::Waiting,
            count: 2,
        }]);
        assert!(text.contains("handover_steps_completed_total 3"));
        assert!(text.contains("handover_step_duration_ms_bucket{le=\"5\"} 1"));
        assert!(text.contains("handover_step_duration_ms_bucket{le=\"1000\"} 2"));
        assert!(text.contains("handover_step_duration_ms_count 2"));
        assert!(text.contains("handover_journeys{workflow=\"demo\\\"x\",status=\"waiting\"} 2"));
    }
}
