//! Runs a fleet of demo journeys on a [`Stack`]: starts them, plays the human
//! side through each type's [`DemoDriver`], crashes and restarts the engine
//! on the way, and reports what happened.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use handover_adapters::sim::{Endpoints, Fault, FaultPlan, FaultPlanError, SimulatorsConfig};
use handover_engine::{HistoryKind, JourneyRecord, Status};

use super::{DemoCase, DemoDriver, DemoError, Expected};
use crate::stack::Stack;

/// How often unfinished journeys are looked at (and assisted).
const TICK: Duration = Duration::from_millis(250);
/// Most history entries read per journey when checking its compensations.
const HISTORY_LIMIT: u32 = 500;

/// What to run.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Journeys in all, spread over the journey types.
    pub journeys: u64,
    /// Crash the engine every this often; `None`: once, when about a third
    /// of the journeys have ended.
    pub crash_every: Option<Duration>,
    /// Never crash.
    pub no_crash: bool,
    /// Give up waiting after this long.
    pub timeout: Duration,
}

/// The simulators' faults for the demo, on every endpoint of every provider:
/// about 9 % of calls misbehave (429 with `Retry-After`, 500, 503, 504 after
/// the effect and without it, answers slower than the client's timeout,
/// connections dropped after the effect). Low enough that five failures in a
/// row (the retry budget) are rare, high enough that every journey type meets
/// them.
pub fn demo_faults(seed: u64, slow_ms: u64) -> Result<SimulatorsConfig, FaultPlanError> {
    let plan = || -> Result<FaultPlan, FaultPlanError> {
        FaultPlan::new(seed)
            .rate(
                Endpoints::All,
                Fault::RateLimited {
                    retry_after_secs: Some(1),
                },
                0.025,
            )?
            .rate(Endpoints::All, Fault::InternalError, 0.015)?
            .rate(
                Endpoints::All,
                Fault::Unavailable {
                    retry_after_secs: None,
                },
                0.01,
            )?
            .rate(
                Endpoints::All,
                Fault::GatewayTimeout { after_effect: true },
                0.02,
            )?
            .rate(
                Endpoints::All,
                Fault::GatewayTimeout {
                    after_effect: false,
                },
                0.005,
            )?
            .rate(
                Endpoints::All,
                Fault::SlowAnswer { delay_ms: slow_ms },
                0.005,
            )?
            .rate(
                Endpoints::All,
                Fault::DropConnection { after_effect: true },
                0.005,
            )
    };
    let mut config = SimulatorsConfig::default();
    config.mobitel.faults = plan()?;
    config.mobitel.seed = seed;
    config.alqimah.faults = plan()?;
    config.alqimah.seed = seed;
    config.service_ops.faults = plan()?;
    config.service_ops.seed = seed;
    config.reach.faults = plan()?;
    config.reach.seed = seed;
    config.mobily.faults = plan()?;
    config.mobily.seed = seed;
    Ok(config)
}

/// Where one journey type's journeys are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Started.
    pub started: u64,
    /// Runnable or compensating (a step is due or running).
    pub running: u64,
    /// Parked for a signal or a time.
    pub waiting: u64,
    /// Completed.
    pub completed: u64,
    /// Failed or cancelled.
    pub failed: u64,
    /// Stopped for a person.
    pub attention: u64,
}

impl Counts {
    fn count(&mut self, status: Status) {
        match status {
            Status::Runnable | Status::Compensating => self.running += 1,
            Status::Waiting => self.waiting += 1,
            Status::Completed => self.completed += 1,
            Status::Failed | Status::Cancelled => self.failed += 1,
            Status::NeedsAttention => self.attention += 1,
        }
    }

    /// Journeys that have ended (or stopped for a person).
    pub fn settled(&self) -> u64 {
        self.completed + self.failed + self.attention
    }
}

/// A snapshot while the fleet runs.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Per journey type label, in driver order.
    pub per_type: Vec<(&'static str, Counts)>,
    /// Time since the fleet started.
    pub elapsed: Duration,
    /// Engine crashes so far.
    pub crashes: u32,
}

/// One journey type's results.
#[derive(Debug, Clone, Default)]
pub struct TypeReport {
    /// Journeys started.
    pub started: u64,
    /// Completed as expected.
    pub completed: u64,
    /// Failed as the scenario expected (business refusals, provoked timeouts).
    pub failed_as_expected: u64,
    /// Failed or cancelled after running compensations, as expected.
    pub compensated: u64,
    /// Ended otherwise than expected (or not at all), with the reason.
    pub unexpected: Vec<String>,
    /// Journey durations (created to last update), ms, sorted.
    pub durations_ms: Vec<i64>,
}

impl TypeReport {
    /// The `q` quantile (0..=1) of the durations, ms.
    pub fn quantile_ms(&self, q: f64) -> Option<i64> {
        if self.durations_ms.is_empty() {
            return None;
        }
        let rank = ((self.durations_ms.len() as f64 - 1.0) * q).round() as usize;
        self.durations_ms.get(rank).copied()
    }
}

/// The end of the run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Per journey type label, in driver order.
    pub per_type: Vec<(&'static str, TypeReport)>,
    /// Step retries (all engines).
    pub retries: u64,
    /// Signals received: callbacks, webhooks and customer actions (all engines).
    pub signals_received: u64,
    /// Of those, duplicates ignored.
    pub signals_duplicate: u64,
    /// Engine crashes survived.
    pub crashes: u32,
    /// Effects a simulator applied more than once: empty when every charge,
    /// reservation, order and activation happened exactly once.
    pub ledger_duplicates: Vec<String>,
    /// Effects the simulators applied, in all.
    pub ledger_effects: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether the run ended before the timeout.
    pub finished: bool,
}

impl Report {
    /// The demo passes: every journey ended as its scenario expects and the
    /// ledgers show no double effect.
    pub fn passed(&self) -> bool {
        self.finished
            && self.ledger_duplicates.is_empty()
            && self.per_type.iter().all(|(_, t)| t.unexpected.is_empty())
    }
}

struct Tracked {
    driver: usize,
    case: DemoCase,
    last: Option<JourneyRecord>,
}

/// Runs the fleet: `drivers` share `config.journeys` round-robin. Calls
/// `on_progress` about every quarter second.
pub async fn run(
    stack: &mut Stack,
    drivers: &[Box<dyn DemoDriver>],
    config: &FleetConfig,
    mut on_progress: impl FnMut(&Progress),
) -> Result<Report, DemoError> {
    if drivers.is_empty() {
        return Err(DemoError::new("no journey types to run"));
    }
    for driver in drivers {
        driver.prepare(stack);
    }
    let began = Instant::now();
    let mut tracked = Vec::with_capacity(config.journeys as usize);
    let mut per_driver_index = vec![0u64; drivers.len()];
    for n in 0..config.journeys {
        let d = (n % drivers.len() as u64) as usize;
        let i = per_driver_index[d];
        per_driver_index[d] += 1;
        let case = drivers[d].start(stack, i).await.map_err(|e| {
            DemoError::new(format!(
                "starting {} journey #{i}: {e}",
                drivers[d].workflow()
            ))
        })?;
        tracked.push(Tracked {
            driver: d,
            case,
            last: None,
        });
    }

    let mut crashes = 0u32;
    let mut retired = (0u64, 0u64, 0u64);
    let mut last_crash = Instant::now();
    let mut crashed_once = false;
    let deadline = began + config.timeout;
    let finished = loop {
        let mut all_settled = true;
        for t in &mut tracked {
            if t.last.as_ref().is_some_and(settled) {
                continue;
            }
            let record = match stack.engine.journey(t.case.id).await {
                Ok(r) => r,
                // The store may be briefly unavailable (a restart): look again.
                Err(e) => {
                    tracing::debug!(error = %e, "demo: reading a journey failed; retrying");
                    all_settled = false;
                    continue;
                }
            };
            if !settled(&record) {
                all_settled = false;
                if let Err(e) = drivers[t.driver].assist(stack, &t.case, &record).await {
                    tracing::debug!(journey = %t.case.id, error = %e, "demo: assist failed; retrying");
                }
            }
            t.last = Some(record);
        }
        let progress = progress(drivers, &tracked, began, crashes);
        on_progress(&progress);
        if all_settled {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        let settled_count: u64 = progress.per_type.iter().map(|(_, c)| c.settled()).sum();
        let crash_now = !config.no_crash
            && match config.crash_every {
                Some(every) => last_crash.elapsed() >= every,
                None => !crashed_once && settled_count * 3 >= config.journeys,
            };
        if crash_now {
            let metrics = stack.engine.metrics().clone();
            retired.0 += metrics.retries.get();
            retired.1 += metrics.signals_received.get();
            retired.2 += metrics.signals_duplicate.get();
            stack
                .crash_and_restart()
                .await
                .map_err(|e| DemoError::new(format!("restarting the engine: {e}")))?;
            crashes += 1;
            crashed_once = true;
            last_crash = Instant::now();
        }
        tokio::time::sleep(TICK).await;
    };

    let mut per_type: Vec<(&'static str, TypeReport)> = drivers
        .iter()
        .map(|d| (d.label(), TypeReport::default()))
        .collect();
    for t in &tracked {
        let report = &mut per_type[t.driver].1;
        report.started += 1;
        let Some(record) = &t.last else {
            report
                .unexpected
                .push(format!("{} ({}): never read", t.case.id, t.case.scenario));
            continue;
        };
        if settled(record) {
            report
                .durations_ms
                .push(record.updated_at_ms - record.created_at_ms);
        }
        let compensated = match record.status {
            Status::Failed | Status::Cancelled => compensations_ran(stack, t).await,
            _ => false,
        };
        let ok = match (t.case.expect, record.status) {
            (Expected::Completed, Status::Completed) => {
                report.completed += 1;
                true
            }
            (Expected::Failed, Status::Failed) => {
                report.failed_as_expected += 1;
                true
            }
            (Expected::Compensated, Status::Failed | Status::Cancelled) if compensated => {
                report.compensated += 1;
                true
            }
            (Expected::Cancelled, Status::Cancelled) => {
                report.failed_as_expected += 1;
                true
            }
            _ => false,
        };
        if !ok {
            let why = record
                .attention
                .as_deref()
                .or(record.failure.as_deref())
                .or(record.last_error.as_deref())
                .unwrap_or("-");
            report.unexpected.push(format!(
                "{} ({}, scenario {}): expected {:?}, is {} at step {}: {why}",
                t.case.id,
                record.workflow,
                t.case.scenario,
                t.case.expect,
                record.status.as_str(),
                record.step_name,
            ));
        }
    }
    for (_, report) in &mut per_type {
        report.durations_ms.sort_unstable();
    }
    let metrics = stack.engine.metrics();
    let mut ledger_duplicates = Vec::new();
    let mut ledger_effects = 0;
    let sims = &stack.sims;
    for (provider, ledger) in [
        ("mobily", sims.mobily.ledger()),
        ("reach", sims.reach.ledger()),
        ("alqimah", sims.alqimah.ledger()),
        ("mobitel", sims.mobitel.ledger()),
        ("service-ops", sims.service_ops.ledger()),
    ] {
        ledger_effects += ledger.len();
        for dup in ledger.duplicates() {
            ledger_duplicates.push(format!("{provider}: {dup:?}"));
        }
    }
    Ok(Report {
        per_type,
        retries: retired.0 + metrics.retries.get(),
        signals_received: retired.1 + metrics.signals_received.get(),
        signals_duplicate: retired.2 + metrics.signals_duplicate.get(),
        crashes,
        ledger_duplicates,
        ledger_effects,
        elapsed: began.elapsed(),
        finished,
    })
}

fn settled(record: &JourneyRecord) -> bool {
    record.status.is_terminal() || record.status == Status::NeedsAttention
}

async fn compensations_ran(stack: &Stack, t: &Tracked) -> bool {
    match stack.engine.history(t.case.id, HISTORY_LIMIT).await {
        Ok(history) => history
            .iter()
            .any(|e| e.kind == HistoryKind::CompensationCompleted),
        Err(_) => false,
    }
}

fn progress(
    drivers: &[Box<dyn DemoDriver>],
    tracked: &[Tracked],
    began: Instant,
    crashes: u32,
) -> Progress {
    let mut per: BTreeMap<usize, Counts> = BTreeMap::new();
    for t in tracked {
        let counts = per.entry(t.driver).or_default();
        counts.started += 1;
        match &t.last {
            Some(record) => counts.count(record.status),
            None => counts.running += 1,
        }
    }
    Progress {
        per_type: drivers
            .iter()
            .enumerate()
            .map(|(i, d)| (d.label(), per.remove(&i).unwrap_or_default()))
            .collect(),
        elapsed: began.elapsed(),
        crashes,
    }
}
