//! Scheduled jobs, declared in Rust, that run **once per tick across the
//! cluster**.
//!
//! Every node runs the same [`Scheduler`] (tokio-cron-scheduler fires the
//! jobs). When a job fires, the node computes the job's tick (the most recent
//! time the cron expression names, a deterministic value every node agrees
//! on) and claims `(job, tick)` in the store: exactly one node wins and runs
//! it; the others skip. Cron expressions have six fields, seconds first
//! (`0 */5 * * * *`: every five minutes).
//!
//! Built in: [`sweep_stuck`] (logs an alert line per journey that needs a
//! person) and [`prune_history`] (deletes the history of journeys that ended
//! before a retention period). Workflows add their own (refreshing provider
//! catalogs).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::clock::{duration_ms, to_ms};
use crate::engine::Engine;

/// What a job returns: a line for the log.
pub type JobResult = Result<String, String>;

type JobFn = Arc<dyn Fn(Engine) -> Pin<Box<dyn Future<Output = JobResult> + Send>> + Send + Sync>;

/// A schedule error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("job {job}: invalid cron expression {cron:?} (six fields, seconds first): {reason}")]
    BadCron {
        /// The job.
        job: String,
        /// The expression.
        cron: String,
        /// Why.
        reason: String,
    },
    /// The underlying scheduler failed.
    #[error("scheduler: {0}")]
    Scheduler(String),
}

struct JobSpec {
    name: String,
    cron: Cron,
    expression: String,
    run: JobFn,
}

/// Declares jobs and starts them.
pub struct Scheduler {
    engine: Engine,
    owner: String,
    jobs: Vec<JobSpec>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("owner", &self.owner)
            .field(
                "jobs",
                &self.jobs.iter().map(|j| &j.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn parse(name: &str, expression: &str) -> Result<Cron, ScheduleError> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expression)
        .map_err(|e| ScheduleError::BadCron {
            job: name.to_owned(),
            cron: expression.to_owned(),
            reason: e.to_string(),
        })
}

impl Scheduler {
    /// A scheduler for `engine`'s store; `node` names the runs it wins.
    pub fn new(engine: &Engine, node: &str) -> Self {
        Self {
            engine: engine.clone(),
            owner: format!("{node}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            jobs: Vec::new(),
        }
    }

    /// Adds a job. `run` gets the engine and returns a line for the log.
    pub fn job<F, Fut>(mut self, name: &str, cron: &str, run: F) -> Result<Self, ScheduleError>
    where
        F: Fn(Engine) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult> + Send + 'static,
    {
        let parsed = parse(name, cron)?;
        self.jobs.push(JobSpec {
            name: name.to_owned(),
            cron: parsed,
            expression: cron.to_owned(),
            run: Arc::new(move |engine| Box::pin(run(engine))),
        });
        Ok(self)
    }

    /// The built-in jobs: sweep for stuck journeys every `sweep`, prune the
    /// history of journeys that ended more than `retention` ago, nightly.
    pub fn with_builtins(
        self,
        sweep_cron: &str,
        retention: Duration,
    ) -> Result<Self, ScheduleError> {
        self.job("sweep-stuck", sweep_cron, sweep_stuck)?.job(
            "prune-history",
            "0 17 3 * * *",
            move |engine| prune_history(engine, retention),
        )
    }

    /// Starts firing. Each run is claimed cluster-wide before it executes.
    pub async fn start(self) -> Result<SchedulerHandle, ScheduleError> {
        let scheduler = JobScheduler::new()
            .await
            .map_err(|e| ScheduleError::Scheduler(e.to_string()))?;
        for spec in self.jobs {
            let spec = Arc::new(spec);
            let engine = self.engine.clone();
            let owner = self.owner.clone();
            let expression = spec.expression.clone();
            let job = Job::new_async(expression.as_str(), move |_id, _lock| {
                let spec = spec.clone();
                let engine = engine.clone();
                let owner = owner.clone();
                Box::pin(async move { fire(&engine, &spec, &owner).await })
            })
            .map_err(|e| ScheduleError::Scheduler(e.to_string()))?;
            scheduler
                .add(job)
                .await
                .map_err(|e| ScheduleError::Scheduler(e.to_string()))?;
        }
        scheduler
            .start()
            .await
            .map_err(|e| ScheduleError::Scheduler(e.to_string()))?;
        Ok(SchedulerHandle { scheduler })
    }
}

/// Runs one firing of `spec` if this node wins its tick.
async fn fire(engine: &Engine, spec: &JobSpec, owner: &str) {
    let now = engine.clock().now();
    // The tick this firing belongs to: every node computes the same one (a
    // second of grace covers a node that fires a hair early).
    let Some(tick) = tick_of(&spec.cron, now) else {
        tracing::warn!(job = %spec.name, "could not compute the job's tick; skipped");
        return;
    };
    let slot = to_ms(tick);
    match engine
        .store()
        .claim_slot(&spec.name, slot, owner, to_ms(now))
        .await
    {
        Ok(true) => {
            let span =
                tracing::info_span!("scheduled_job", job = %spec.name, tick = %tick.to_rfc3339());
            let _entered = span.enter();
            match (spec.run)(engine.clone()).await {
                Ok(line) => tracing::info!(job = %spec.name, "{line}"),
                Err(e) => tracing::warn!(job = %spec.name, error = %e, "scheduled job failed"),
            }
        }
        Ok(false) => tracing::debug!(job = %spec.name, "another node runs this tick"),
        Err(e) => {
            tracing::warn!(job = %spec.name, error = %e, "could not claim the job's tick; skipped");
        }
    }
}

/// The tick a firing at `now` belongs to: the most recent time the cron
/// names, at or before `now` plus a second of grace (a node firing a hair
/// early), in whole seconds (croner keeps the probe's fraction otherwise, and
/// nodes would disagree by milliseconds).
fn tick_of(cron: &Cron, now: crate::Timestamp) -> Option<crate::Timestamp> {
    use chrono::Timelike;
    let probe = (now + chrono::Duration::seconds(1)).with_nanosecond(0)?;
    cron.find_previous_occurrence(&probe, true).ok()
}

/// A running scheduler.
pub struct SchedulerHandle {
    scheduler: JobScheduler,
}

impl std::fmt::Debug for SchedulerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SchedulerHandle")
    }
}

impl SchedulerHandle {
    /// Stops firing.
    pub async fn shutdown(mut self) {
        let _ = self.scheduler.shutdown().await;
    }
}

/// Logs an alert line for every journey (and callback) that needs a person,
/// and updates the `handover_stuck` gauge.
pub async fn sweep_stuck(engine: Engine) -> JobResult {
    let items = engine.stuck(1000).await.map_err(|e| e.to_string())?;
    engine.metrics().stuck.set(items.len() as u64);
    for item in &items {
        tracing::warn!(
            target: "handover::alert",
            kind = ?item.kind,
            journey.id = item.journey.map(|j| j.to_string()).unwrap_or_default(),
            workflow = item.workflow.as_deref().unwrap_or_default(),
            step = item.step.as_deref().unwrap_or_default(),
            since = %item.since,
            "needs a person: {}",
            item.reason
        );
    }
    Ok(format!(
        "{} journey(s) or callback(s) need a person",
        items.len()
    ))
}

/// Deletes the history of journeys that ended more than `retention` ago (in
/// batches; the journeys' rows and outcomes are kept).
pub async fn prune_history(engine: Engine, retention: Duration) -> JobResult {
    let before = to_ms(engine.clock().now()) - duration_ms(retention);
    let mut total = 0;
    loop {
        let pruned = engine
            .store()
            .prune_history(before, 1000)
            .await
            .map_err(|e| e.to_string())?;
        total += pruned;
        if pruned < 1000 {
            break;
        }
    }
    Ok(format!(
        "pruned the history of {total} journey(s) ended before the retention period"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_the_same_for_every_node() {
        let cron = parse("t", "0 */5 * * * *").unwrap();
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let tick = |now: &str| tick_of(&cron, at(now)).unwrap();
        // Two nodes firing a few ms apart, either side of the tick.
        assert_eq!(tick("2030-01-01T10:04:59.990Z"), at("2030-01-01T10:05:00Z"));
        assert_eq!(tick("2030-01-01T10:05:00.020Z"), at("2030-01-01T10:05:00Z"));
        assert!(parse("t", "not cron").is_err());
        assert!(parse("t", "*/5 * * * *").is_err(), "seconds are required");
    }
}
