//! The worker: claims due journeys, runs their steps, commits the results.
//!
//! Four kinds of task:
//! - the **claimer** leases batches of due journeys (and timers due within
//!   the lookahead, so they fire on time), then sleeps until the next due time,
//!   a wake-up (a signal, a new journey, a NOTIFY from another node) or the
//!   idle poll, whichever is first;
//! - one **journey task** per leased journey: plan (pure core), run the step,
//!   turn its outcome into a commit (pure core), hand it to the committer, and
//!   go on while the journey has work;
//! - the **committer** writes the commits of many journeys in one transaction
//!   (group commit): about one commit per step under load, no added latency
//!   when idle;
//! - the **heartbeat** extends the leases held, and marks as lost those it
//!   could not extend, so their tasks stop before making another call.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{Mutex, Notify, Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{Instrument, debug, error, info_span, warn};

use crate::clock::{SharedClock, duration_ms, from_ms, to_ms};
use crate::context::{CompensationCtx, StepFacts};
use crate::core::{self, Decision, Plan, StepOutcome};
use crate::error::{StepError, StoreError};
use crate::ids::JourneyId;
use crate::metrics::Metrics;
use crate::model::{Commit, CommitOutcome, JourneyRecord, JourneyUpdate, Ready, SignalRecord};
use crate::registry::{ErasedWorkflow, Registry, StepRun};
use crate::retry::RetryPolicy;
use crate::store::Store;
use crate::workflow::ReceivedSignal;

/// How a worker runs. The defaults suit a small service; every value is
/// bounded.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Journeys run at once by this worker.
    pub max_in_flight: usize,
    /// Journeys claimed per query.
    pub claim_batch: u32,
    /// How long a lease lasts without a heartbeat. A crashed worker's
    /// journeys are picked up this long after its last heartbeat.
    pub lease_ttl: Duration,
    /// How often leases are extended (at most a third of `lease_ttl`).
    pub heartbeat_every: Duration,
    /// Timers due within this window are claimed early and fired from
    /// memory, on time.
    pub lookahead: Duration,
    /// The longest an idle worker sleeps before looking for work again
    /// (wake-ups normally come sooner, from notifications).
    pub idle_poll: Duration,
    /// Journeys' commits written per transaction at most.
    pub commit_batch: usize,
    /// The retry policy of compensations.
    pub compensation_retry: RetryPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 512,
            claim_batch: 256,
            lease_ttl: Duration::from_secs(30),
            heartbeat_every: Duration::from_secs(10),
            lookahead: Duration::from_millis(500),
            idle_poll: Duration::from_secs(2),
            commit_batch: 512,
            compensation_retry: RetryPolicy::compensation(),
        }
    }
}

/// A point in a step's life where a test can crash the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// The step is about to run.
    BeforeStep,
    /// The step ran (its outbound calls are done); nothing is committed yet.
    AfterStep,
    /// The step's result is committed.
    AfterCommit,
}

/// Called at each [`FaultPoint`] with the journey and its step sequence;
/// returning `true` crashes the worker there (as `kill -9` would).
pub type FaultHook = Arc<dyn Fn(FaultPoint, JourneyId, i64) -> bool + Send + Sync>;

/// One held lease.
#[derive(Debug)]
struct Lease {
    epoch: i64,
    valid_until_ms: AtomicI64,
    lost: AtomicBool,
    lost_notify: Notify,
}

impl Lease {
    fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.lost_notify.notify_waiters();
    }

    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    async fn lost(&self) {
        loop {
            let notified = self.lost_notify.notified();
            if self.is_lost() {
                return;
            }
            notified.await;
        }
    }
}

/// Stop signals shared by a worker's tasks.
#[derive(Debug, Default)]
struct Stop {
    stopping: AtomicBool,
    notify: Notify,
    /// Set once the claimer's journeys have all finished (no more commits).
    drained: AtomicBool,
    drained_notify: Notify,
}

impl Stop {
    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_stopping() {
                return;
            }
            notified.await;
        }
    }

    fn set_drained(&self) {
        self.drained.store(true, Ordering::SeqCst);
        self.drained_notify.notify_waiters();
    }

    async fn wait_drained(&self) {
        loop {
            let notified = self.drained_notify.notified();
            if self.drained.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// What the engine shares with its workers.
#[derive(Clone)]
pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    pub clock: SharedClock,
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

struct Worker {
    shared: Shared,
    config: WorkerConfig,
    owner: String,
    leases: std::sync::Mutex<HashMap<JourneyId, Arc<Lease>>>,
    permits: Arc<Semaphore>,
    capacity: Notify,
    stop: Stop,
    crashed: AtomicBool,
    committer: mpsc::Sender<(Commit, oneshot::Sender<Result<CommitOutcome, StoreError>>)>,
    fault_hook: Option<FaultHook>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("owner", &self.owner)
            .finish()
    }
}

/// A running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    worker: Arc<Worker>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl WorkerHandle {
    /// This worker's lease owner id.
    pub fn owner(&self) -> &str {
        &self.worker.owner
    }

    /// How many journeys this worker holds right now.
    pub fn held(&self) -> usize {
        self.worker
            .leases
            .lock()
            .map(|l| l.len())
            .unwrap_or_default()
    }

    /// Stops claiming, lets running steps finish and commit, gives back the
    /// leases of journeys that still have work, and waits (at most
    /// `grace`) for all of it.
    pub async fn shutdown(&self, grace: Duration) {
        self.worker.stop.stop();
        let tasks: Vec<_> = self.tasks.lock().await.drain(..).collect();
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            warn!(owner = %self.worker.owner, "worker did not stop within its grace period; leases will expire");
        }
    }

    /// Stops everything at once without writing anything, as a `kill -9`
    /// would: held leases are left to expire. For tests and the demo.
    pub async fn crash(&self) {
        self.worker.crash();
        for task in self.tasks.lock().await.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Worker {
    fn crash(&self) {
        self.crashed.store(true, Ordering::SeqCst);
        self.stop.stop();
        if let Ok(leases) = self.leases.lock() {
            for lease in leases.values() {
                lease.lose();
            }
        }
    }

    fn is_dead(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    fn fault(&self, point: FaultPoint, id: JourneyId, step_seq: i64) -> bool {
        if let Some(hook) = &self.fault_hook
            && hook(point, id, step_seq)
        {
            warn!(%id, ?point, "fault hook: crashing the worker");
            self.crash();
            return true;
        }
        false
    }

    fn now_ms(&self) -> i64 {
        to_ms(self.shared.clock.now())
    }

    fn ttl_ms(&self) -> i64 {
        duration_ms(self.config.lease_ttl)
    }

    fn forget(&self, id: JourneyId) {
        if let Ok(mut leases) = self.leases.lock() {
            leases.remove(&id);
        }
    }
}

/// Starts a worker's tasks.
pub(crate) fn spawn(
    shared: Shared,
    config: WorkerConfig,
    owner: String,
    fault_hook: Option<FaultHook>,
) -> WorkerHandle {
    let (tx, rx) = mpsc::channel(config.commit_batch.max(1) * 4);
    let worker = Arc::new(Worker {
        permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
        shared,
        config,
        owner,
        leases: std::sync::Mutex::new(HashMap::new()),
        capacity: Notify::new(),
        stop: Stop::default(),
        crashed: AtomicBool::new(false),
        committer: tx,
        fault_hook,
    });
    let tasks = vec![
        tokio::spawn(claimer(worker.clone())),
        tokio::spawn(committer(worker.clone(), rx)),
        tokio::spawn(heartbeat(worker.clone())),
    ];
    WorkerHandle {
        worker,
        tasks: Mutex::new(tasks),
    }
}

async fn claimer(worker: Arc<Worker>) {
    let mut journeys = JoinSet::new();
    let mut backoff = Duration::from_millis(50);
    let lookahead_ms = duration_ms(worker.config.lookahead);
    loop {
        while journeys.try_join_next().is_some() {}
        if worker.stop.is_stopping() {
            break;
        }
        let free = worker.permits.available_permits();
        if free == 0 {
            tokio::select! {
                _ = worker.capacity.notified() => {}
                _ = worker.stop.wait() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        let limit = u32::try_from(free)
            .unwrap_or(u32::MAX)
            .min(worker.config.claim_batch);
        let now = worker.now_ms();
        let claimed = worker
            .shared
            .store
            .claim(
                &worker.owner,
                now,
                lookahead_ms,
                now + worker.ttl_ms(),
                limit,
            )
            .await;
        let rows = match claimed {
            Ok(rows) => {
                backoff = Duration::from_millis(50);
                rows
            }
            Err(e) => {
                warn!(error = %e, "claiming journeys failed; retrying");
                worker.shared.metrics.store_errors.inc();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = worker.stop.wait() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let full = rows.len() as u32 == limit;
        if !rows.is_empty() {
            worker.shared.metrics.claims.inc();
            worker.shared.metrics.claimed.add(rows.len() as u64);
            start_journeys(&worker, rows, &mut journeys).await;
        }
        if !full {
            idle(&worker, lookahead_ms).await;
        }
    }
    // Graceful stop: let running journeys finish their step.
    while journeys.join_next().await.is_some() {}
    worker.stop.set_drained();
}

/// Sleeps until the next journey is due, a wake-up, or the idle poll.
async fn idle(worker: &Worker, lookahead_ms: i64) {
    let now = worker.now_ms();
    let mut until = now + duration_ms(worker.config.idle_poll);
    match worker.shared.store.next_ready_at().await {
        Ok(Some(next)) => until = until.min(next - lookahead_ms).max(now),
        Ok(None) => {}
        Err(e) => debug!(error = %e, "reading the next due time failed"),
    }
    if until <= now {
        return;
    }
    tokio::select! {
        _ = worker.shared.wake.notified() => {}
        _ = worker.shared.clock.sleep_until(from_ms(until)) => {}
        _ = worker.stop.wait() => {}
    }
}

async fn start_journeys(worker: &Arc<Worker>, rows: Vec<JourneyRecord>, set: &mut JoinSet<()>) {
    let needs_signals: Vec<JourneyId> = rows
        .iter()
        .filter(|r| !r.wait_signals.is_empty())
        .map(|r| r.id)
        .collect();
    let mut pending: HashMap<JourneyId, Vec<SignalRecord>> = HashMap::new();
    match worker.shared.store.pending_signals(&needs_signals).await {
        Ok(signals) => {
            for s in signals {
                if let Some(id) = s.journey_id {
                    pending.entry(id).or_default().push(s);
                }
            }
        }
        Err(e) => {
            // Without its inbox a waiting journey could be mistaken for a
            // timed-out one: give these back and try again shortly.
            warn!(error = %e, "reading signals failed; releasing the claimed journeys");
            let retry_at = worker.now_ms() + 1_000;
            let held: Vec<_> = rows
                .iter()
                .map(|r| (r.id, r.lease_epoch, Some(retry_at)))
                .collect();
            let _ = worker.shared.store.release(&worker.owner, &held).await;
            return;
        }
    }
    for row in rows {
        let Ok(permit) = worker.permits.clone().try_acquire_owned() else {
            // Cannot happen (we claimed no more than the free permits), but
            // never run more than allowed: give it back.
            let _ = worker
                .shared
                .store
                .release(
                    &worker.owner,
                    &[(row.id, row.lease_epoch, Some(worker.now_ms()))],
                )
                .await;
            continue;
        };
        let lease = Arc::new(Lease {
            epoch: row.lease_epoch,
            valid_until_ms: AtomicI64::new(row.ready_at_ms.unwrap_or_default()),
            lost: AtomicBool::new(false),
            lost_notify: Notify::new(),
        });
        if let Ok(mut leases) = worker.leases.lock() {
            leases.insert(row.id, lease.clone());
        }
        let signals = pending.remove(&row.id).unwrap_or_default();
        let span = info_span!("journey", journey.id = %row.id, workflow = %row.workflow);
        let worker = worker.clone();
        set.spawn(
            async move {
                let id = row.id;
                run_journey(&worker, row, signals, &lease).await;
                worker.forget(id);
                drop(permit);
                worker.capacity.notify_one();
            }
            .instrument(span),
        );
    }
}

/// Runs one leased journey until it parks, ends, or its lease is lost.
async fn run_journey(
    worker: &Arc<Worker>,
    mut row: JourneyRecord,
    mut pending: Vec<SignalRecord>,
    lease: &Lease,
) {
    let lookahead_ms = duration_ms(worker.config.lookahead);
    loop {
        if worker.is_dead() || lease.is_lost() {
            return;
        }
        let now = worker.now_ms();
        if now >= lease.valid_until_ms.load(Ordering::SeqCst) {
            // Our lease may already be someone else's: make no call.
            warn!(id = %row.id, "lease expired before the step could run; leaving the journey");
            worker.shared.metrics.lease_losses.inc();
            return;
        }
        if worker.stop.is_stopping() {
            release(worker, &row, Some(now)).await;
            return;
        }
        let workflow = match worker
            .shared
            .registry
            .for_stored(&row.workflow, row.version)
        {
            Ok(w) => w,
            Err(e) => {
                warn!(id = %row.id, error = %e, "no registered workflow can run this journey; leaving it for a node that can");
                release(worker, &row, Some(now + 60_000)).await;
                return;
            }
        };
        if row.version != workflow.version() {
            // A newer type resumes this journey: bring its state up to date.
            match workflow.load_state(row.version, row.state.clone()) {
                Ok(state) => row.state = state,
                Err(e) => {
                    let reason =
                        format!("workflow error (fix the workflow or patch the state): {e}");
                    let decision = attention(&row, reason, now);
                    commit(worker, &mut row, &mut pending, decision, vec![], lease).await;
                    return;
                }
            }
        }
        let decision = match core::plan(&row, &pending, now) {
            Plan::NotYet { wake_at_ms } => {
                if wake_at_ms - now <= lookahead_ms * 2 {
                    tokio::select! {
                        _ = worker.shared.clock.sleep_until(from_ms(wake_at_ms)) => {}
                        _ = lease.lost() => return,
                        _ = worker.stop.wait() => {}
                    }
                    continue;
                }
                release(worker, &row, Some(wake_at_ms)).await;
                return;
            }
            Plan::Apply(decision) => decision,
            Plan::RunStep(run) => {
                if worker.fault(FaultPoint::BeforeStep, row.id, row.step_seq) {
                    return;
                }
                let Some((decision, correlations)) =
                    run_step(worker, &row, workflow.as_ref(), run, lease).await
                else {
                    return;
                };
                if worker.fault(FaultPoint::AfterStep, row.id, row.step_seq) {
                    return;
                }
                let step_seq = row.step_seq;
                if !commit(
                    worker,
                    &mut row,
                    &mut pending,
                    decision,
                    correlations,
                    lease,
                )
                .await
                {
                    return;
                }
                if worker.fault(FaultPoint::AfterCommit, row.id, step_seq) {
                    return;
                }
                if row.ready_at_ms.is_none() || row.lease_owner.is_none() {
                    return;
                }
                continue;
            }
            Plan::RunCompensation {
                index,
                compensation,
            } => {
                let Some(decision) =
                    run_compensation(worker, &row, workflow.as_ref(), index, compensation, lease)
                        .await
                else {
                    return;
                };
                decision
            }
        };
        if !commit(worker, &mut row, &mut pending, decision, vec![], lease).await {
            return;
        }
        if row.lease_owner.is_none() {
            return;
        }
    }
}

fn facts(
    row: &JourneyRecord,
    step_name: &str,
    max_attempts: u32,
    wake: crate::Wake,
    now: i64,
) -> StepFacts {
    StepFacts {
        journey_id: row.id,
        step_name: step_name.to_owned(),
        step_seq: row.step_seq,
        attempt: row.attempt,
        max_attempts,
        recovered: row.recovered,
        last_error_kind: row.last_error_kind.clone(),
        wake,
        now: from_ms(now),
    }
}

/// Runs a step; `None` if the lease was lost meanwhile (nothing to commit).
async fn run_step(
    worker: &Worker,
    row: &JourneyRecord,
    workflow: &dyn ErasedWorkflow,
    run: core::StepRun,
    lease: &Lease,
) -> Option<(Decision, Vec<crate::ids::CorrelationKey>)> {
    let started = worker.now_ms();
    let describe = |s: &serde_json::Value| workflow.step_info(s);
    let info = match workflow.step_info(&run.state) {
        Ok(info) => info,
        Err(e) => {
            // The stored state does not decode: a person must look.
            let reason = format!("workflow error (fix the workflow or patch the state): {e}");
            return Some((attention(row, reason, started), vec![]));
        }
    };
    let span = info_span!("step", step = info.name, attempt = row.attempt, wake = ?run.wake);
    let signal = run.signal.as_ref().map(|s| ReceivedSignal {
        id: s.id,
        name: s.name.clone(),
        payload: s.payload.clone(),
        received_at: from_ms(s.received_at_ms),
        dedupe_key: s.dedupe_key.clone(),
    });
    let step_run = StepRun {
        state: run.state.clone(),
        facts: facts(
            row,
            info.name,
            info.retry.max_attempts,
            run.wake.clone(),
            started,
        ),
        signal,
        pending_compensations: row.compensations.len(),
    };
    let future =
        AssertUnwindSafe(workflow.run_step(step_run, worker.shared.clock.clone())).catch_unwind();
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(info.timeout, future) => outcome,
        _ = lease.lost() => {
            warn!(id = %row.id, step = info.name, "lease lost while the step ran; its result is discarded");
            worker.shared.metrics.lease_losses.inc();
            return None;
        }
    };
    let (result, effects) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(panic)) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            error!(id = %row.id, step = info.name, %message, "step panicked");
            (
                Err(StepError::retryable(format!("step panicked: {message}"))),
                Default::default(),
            )
        }
        Err(_) => (
            Err(StepError::outcome_unknown(format!(
                "step did not finish within {:?}",
                info.timeout
            ))),
            Default::default(),
        ),
    };
    let finished = worker.now_ms();
    span.in_scope(|| match &result {
        Ok(_) => debug!(elapsed_ms = finished - started, "step completed"),
        Err(e) => warn!(error = %e, kind = e.kind(), "step failed"),
    });
    let metrics = &worker.shared.metrics;
    metrics.step_latency.observe_ms(finished - started);
    match &result {
        Ok(_) => metrics.steps_completed.inc(),
        Err(StepError::Terminal { .. }) => metrics.steps_failed.inc(),
        Err(_) => metrics.retries.inc(),
    }
    let correlations = if result.is_ok() {
        effects.correlations.clone()
    } else {
        vec![]
    };
    let decision = core::after_step(
        row,
        StepOutcome {
            run,
            info: &info,
            result,
            effects,
            started_ms: started,
            finished_ms: finished,
            jitter: rand::random_range(0.0..1.0),
            version: workflow.version(),
        },
        &describe,
    );
    Some((decision, correlations))
}

fn attention(row: &JourneyRecord, reason: String, now: i64) -> Decision {
    core::needs_attention(row, JourneyUpdate::unchanged(row), reason, now, vec![])
}

async fn run_compensation(
    worker: &Worker,
    row: &JourneyRecord,
    workflow: &dyn ErasedWorkflow,
    index: usize,
    compensation: serde_json::Value,
    lease: &Lease,
) -> Option<Decision> {
    let started = worker.now_ms();
    let name = core::compensation_name(&compensation);
    let policy = worker.config.compensation_retry;
    let mut ctx = CompensationCtx {
        facts: facts(row, &name, policy.max_attempts, crate::Wake::Next, started),
        index,
        clock: worker.shared.clock.clone(),
    };
    let future = AssertUnwindSafe(workflow.compensate(compensation, &mut ctx)).catch_unwind();
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(Duration::from_secs(60), future) => outcome,
        _ = lease.lost() => return None,
    };
    let result = match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(StepError::retryable("compensation panicked")),
        Err(_) => Err(StepError::outcome_unknown(
            "compensation did not finish within 60 s",
        )),
    };
    if result.is_err() {
        worker.shared.metrics.compensation_failures.inc();
    }
    Some(core::after_compensation(
        row,
        index,
        result,
        started,
        worker.now_ms(),
        &policy,
        rand::random_range(0.0..1.0),
    ))
}

/// Commits a decision through the committer and applies it to the in-memory
/// row. Returns whether the journey is still ours.
async fn commit(
    worker: &Arc<Worker>,
    row: &mut JourneyRecord,
    pending: &mut Vec<SignalRecord>,
    decision: Decision,
    correlations: Vec<crate::ids::CorrelationKey>,
    lease: &Lease,
) -> bool {
    if worker.is_dead() || lease.is_lost() {
        return false;
    }
    let now = worker.now_ms();
    let commit = Commit {
        id: row.id,
        epoch: lease.epoch,
        update: decision.update.clone(),
        history: decision.history,
        consumed_signal: decision.consumed_signal,
        correlations,
        now_ms: now,
    };
    let (tx, rx) = oneshot::channel();
    if worker.committer.send((commit, tx)).await.is_err() {
        return false;
    }
    let outcome = match rx.await {
        Ok(outcome) => outcome,
        Err(_) => return false,
    };
    match outcome {
        Ok(CommitOutcome::Committed {
            cancel_requested,
            woke,
        }) => {
            if woke {
                worker.shared.wake.notify_one();
            }
            let lease_until = now + worker.ttl_ms();
            decision.update.apply_to(row, now, lease_until);
            if decision.update.ready == Ready::KeepLease {
                lease.valid_until_ms.store(lease_until, Ordering::SeqCst);
            }
            if let Some(consumed) = decision.consumed_signal {
                pending.retain(|s| s.id != consumed);
            }
            if let Ready::At(at) = decision.update.ready
                && at <= now + duration_ms(worker.config.idle_poll)
            {
                // Due soon (a short backoff): make sure the claimer looks.
                worker.shared.wake.notify_one();
            }
            if cancel_requested && decision.update.ready == Ready::KeepLease {
                match worker.shared.store.get(row.id).await {
                    Ok(Some(fresh)) => row.cancel_request = fresh.cancel_request,
                    Ok(None) => return false,
                    Err(e) => {
                        warn!(error = %e, "reading a cancel request failed");
                        return false;
                    }
                }
            }
            worker.shared.metrics.observe_status(decision.update.status);
            true
        }
        Ok(CommitOutcome::LeaseLost) => {
            warn!(id = %row.id, "commit refused: another worker holds this journey now (stale lease epoch)");
            worker.shared.metrics.lease_losses.inc();
            lease.lose();
            false
        }
        Err(e) => {
            error!(id = %row.id, error = %e, "commit failed; the journey will be retried when its lease expires");
            false
        }
    }
}

async fn release(worker: &Worker, row: &JourneyRecord, ready_at: Option<i64>) {
    if worker.is_dead() {
        return;
    }
    if let Err(e) = worker
        .shared
        .store
        .release(&worker.owner, &[(row.id, row.lease_epoch, ready_at)])
        .await
    {
        debug!(error = %e, "releasing a lease failed; it will expire");
    }
}

type Pending = (Commit, oneshot::Sender<Result<CommitOutcome, StoreError>>);

async fn committer(worker: Arc<Worker>, mut rx: mpsc::Receiver<Pending>) {
    let max = worker.config.commit_batch.max(1);
    let mut batch: Vec<Pending> = Vec::with_capacity(max);
    loop {
        // Take what is queued: one waiting commit goes alone at once, many
        // go together.
        let received = tokio::select! {
            n = rx.recv_many(&mut batch, max) => n,
            _ = worker.stop.wait_drained() => rx.try_recv().map(|p| { batch.push(p); 1 }).unwrap_or(0),
        };
        if received == 0 {
            return;
        }
        let commits: Vec<Commit> = batch.iter().map(|(c, _)| c.clone()).collect();
        let outcomes = commit_with_retry(&worker, &commits).await;
        match outcomes {
            Ok(outcomes) => {
                worker.shared.metrics.commits.inc();
                let written = outcomes
                    .iter()
                    .filter(|o| matches!(o, CommitOutcome::Committed { .. }))
                    .count();
                worker.shared.metrics.committed_steps.add(written as u64);
                for ((_, reply), outcome) in batch.drain(..).zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                // Split the batch so one bad commit does not hold back the rest.
                let e = e.to_string();
                warn!(error = %e, size = batch.len(), "group commit failed; committing its journeys one by one");
                for (commit, reply) in batch.drain(..) {
                    let single = worker
                        .shared
                        .store
                        .commit(
                            &worker.owner,
                            std::slice::from_ref(&commit),
                            commit.now_ms + duration_ms(worker.config.lease_ttl),
                        )
                        .await
                        .map(|mut o| o.pop().unwrap_or(CommitOutcome::LeaseLost));
                    match &single {
                        Ok(outcome) => {
                            // Each single commit is a transaction too: count it.
                            worker.shared.metrics.commits.inc();
                            if matches!(outcome, CommitOutcome::Committed { .. }) {
                                worker.shared.metrics.committed_steps.inc();
                            }
                        }
                        Err(single_error) => {
                            error!(id = %commit.id, error = %single_error, batch_error = %e, "commit failed");
                        }
                    }
                    let _ = reply.send(single);
                }
            }
        }
    }
}

/// Commits, retrying while the database is unreachable (every statement of
/// a commit is idempotent, so an ambiguous commit can be sent again).
async fn commit_with_retry(
    worker: &Worker,
    commits: &[Commit],
) -> Result<Vec<CommitOutcome>, StoreError> {
    let mut backoff = Duration::from_millis(50);
    loop {
        let lease_until = worker.now_ms() + worker.ttl_ms();
        match worker
            .shared
            .store
            .commit(&worker.owner, commits, lease_until)
            .await
        {
            Ok(outcomes) => return Ok(outcomes),
            Err(e) if e.is_transient() && !worker.is_dead() => {
                worker.shared.metrics.store_errors.inc();
                warn!(error = %e, "commit failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                // Past the lease, the commit would be refused anyway.
                let oldest = commits.iter().map(|c| c.now_ms).min().unwrap_or_default();
                if worker.now_ms() > oldest + worker.ttl_ms() * 2 {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

async fn heartbeat(worker: Arc<Worker>) {
    let every = worker
        .config
        .heartbeat_every
        .min(worker.config.lease_ttl / 3)
        .max(Duration::from_millis(10));
    loop {
        let next =
            worker.shared.clock.now() + chrono::Duration::from_std(every).unwrap_or_default();
        tokio::select! {
            _ = worker.shared.clock.sleep_until(next) => {}
            _ = worker.stop.wait() => {
                if worker.stop.is_stopping() && worker.leases.lock().map(|l| l.is_empty()).unwrap_or(true) {
                    return;
                }
                // Keep renewing while running steps drain.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if worker.is_dead() {
            return;
        }
        let held: Vec<(JourneyId, Arc<Lease>)> = match worker.leases.lock() {
            Ok(leases) => leases.iter().map(|(id, l)| (*id, l.clone())).collect(),
            Err(_) => return,
        };
        if held.is_empty() {
            if worker.stop.is_stopping() {
                return;
            }
            continue;
        }
        let now = worker.now_ms();
        let until = now + worker.ttl_ms();
        let pairs: Vec<(JourneyId, i64)> = held.iter().map(|(id, l)| (*id, l.epoch)).collect();
        match worker
            .shared
            .store
            .heartbeat(&worker.owner, &pairs, until)
            .await
        {
            Ok(kept) => {
                let kept: std::collections::HashSet<JourneyId> = kept.into_iter().collect();
                for (id, lease) in held {
                    if kept.contains(&id) {
                        lease.valid_until_ms.fetch_max(until, Ordering::SeqCst);
                    } else if !lease.is_lost() {
                        // Released by its own task meanwhile, or taken by
                        // another worker: either way no longer ours.
                        let still_registered = worker
                            .leases
                            .lock()
                            .map(|l| l.contains_key(&id))
                            .unwrap_or(false);
                        if still_registered {
                            warn!(%id, "lease lost: another worker took this journey");
                            worker.shared.metrics.lease_losses.inc();
                            lease.lose();
                        }
                    }
                }
            }
            Err(e) => {
                worker.shared.metrics.store_errors.inc();
                warn!(error = %e, "heartbeat failed");
                // Self-fence: a lease we could not renew in time is not ours.
                for (_, lease) in held {
                    if now >= lease.valid_until_ms.load(Ordering::SeqCst) {
                        lease.lose();
                    }
                }
            }
        }
    }
}
