//! The engine handle: start journeys, send signals, read them, run workers.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::clock::{SharedClock, SystemClock, duration_ms, to_ms};
use crate::core::{self, Decision, Pending};
use crate::error::{EngineError, InvalidInput};
use crate::ids::{CorrelationKey, JourneyId, SignalName};
use crate::metrics::Metrics;
use crate::model::{
    CancelRequest, Commit, CommitOutcome, Ending, HistoryEntry, HistoryKind, JourneyRecord,
    JourneyUpdate, Ready, Status,
};
use crate::registry::Registry;
use crate::store::{
    CreateOutcome, Delivery, DeliveryOutcome, LeaseOne, NewJourney, NewSignal, SignalTarget, Store,
};
use crate::worker::{self, FaultHook, Shared, WorkerConfig, WorkerHandle};
use crate::workflow::Workflow;

/// The largest signal payload accepted, serialized.
pub const MAX_SIGNAL_PAYLOAD_BYTES: usize = 64 * 1024;

/// How a journey is started.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Use this id (starting twice with the same id is idempotent: the second
    /// call returns the existing journey). Default: a new id.
    pub id: Option<JourneyId>,
    /// Start on this registered version instead of the newest.
    pub version: Option<u32>,
}

impl StartOptions {
    /// Start with the caller's id (e.g. derived from an order id), making
    /// retried start requests idempotent.
    pub fn with_id(id: JourneyId) -> Self {
        Self {
            id: Some(id),
            version: None,
        }
    }
}

/// A started journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// Its id.
    pub id: JourneyId,
    /// False if a journey with this id already existed.
    pub created: bool,
}

/// What a cancellation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Cancelled now (compensations, if any, are running).
    Cancelled,
    /// A worker is running a step; it cancels right after it.
    Requested,
}

/// The Handover engine: one per process, shared by cloning.
#[derive(Clone)]
pub struct Engine {
    shared: Shared,
    worker: WorkerConfig,
    fault_hook: Option<FaultHook>,
    node: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("node", &self.node)
            .field("store", &self.shared.store.backend())
            .field("registry", &self.shared.registry)
            .finish()
    }
}

/// Builds an [`Engine`].
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    registry: Registry,
    clock: SharedClock,
    worker: WorkerConfig,
    fault_hook: Option<FaultHook>,
    node: Option<String>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// Registers a workflow (see [`Registry::register`]).
    pub fn register<W: Workflow>(mut self, workflow: W) -> Self {
        self.registry.register(workflow);
        self
    }

    /// Uses a prepared registry.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Uses this clock (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the worker configuration.
    pub fn worker_config(mut self, config: WorkerConfig) -> Self {
        self.worker = config;
        self
    }

    /// Names this node (shown as the lease owner, with a unique suffix).
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node = Some(name.into());
        self
    }

    /// Installs a fault hook (crash tests).
    pub fn fault_hook(mut self, hook: FaultHook) -> Self {
        self.fault_hook = Some(hook);
        self
    }

    /// Builds the engine and starts listening for wake-ups from other nodes.
    pub async fn build(self) -> Result<Engine, EngineError> {
        let wake = Arc::new(Notify::new());
        self.store.watch(wake.clone()).await?;
        let host = self.node.unwrap_or_else(|| "node".to_owned());
        Ok(Engine {
            shared: Shared {
                store: self.store,
                registry: self.registry,
                clock: self.clock,
                wake,
                metrics: Arc::new(Metrics::default()),
            },
            worker: self.worker,
            fault_hook: self.fault_hook,
            node: host,
        })
    }
}

impl Engine {
    /// Starts building an engine on `store`.
    pub fn builder(store: Arc<dyn Store>) -> EngineBuilder {
        EngineBuilder {
            store,
            registry: Registry::new(),
            clock: Arc::new(SystemClock),
            worker: WorkerConfig::default(),
            fault_hook: None,
            node: None,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.shared.clock
    }

    /// The registered workflows.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// The engine's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// The worker configuration new workers use.
    pub fn worker_config(&self) -> &WorkerConfig {
        &self.worker
    }

    fn now_ms(&self) -> i64 {
        to_ms(self.shared.clock.now())
    }

    /// Starts a worker in this process (several may run; each has its own
    /// leases).
    pub fn run_worker(&self) -> WorkerHandle {
        let owner = format!(
            "{}-{}",
            self.node,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        worker::spawn(
            self.shared.clone(),
            self.worker.clone(),
            owner,
            self.fault_hook.clone(),
        )
    }

    /// Starts a journey of `W` on its newest registered version.
    pub async fn start<W: Workflow>(&self, input: W::Input) -> Result<JourneyId, EngineError> {
        Ok(self
            .start_with::<W>(input, StartOptions::default())
            .await?
            .id)
    }

    /// Starts a journey of `W` with options.
    pub async fn start_with<W: Workflow>(
        &self,
        input: W::Input,
        options: StartOptions,
    ) -> Result<Started, EngineError> {
        let input = serde_json::to_value(&input).map_err(|e| EngineError::InvalidInput {
            workflow: W::NAME.to_owned(),
            source: InvalidInput::new(format!("input does not serialize: {e}")),
        })?;
        self.start_json(W::NAME, input, options).await
    }

    /// Starts a journey by workflow name with a JSON input (for the CLI,
    /// the admin API and other languages).
    pub async fn start_json(
        &self,
        workflow: &str,
        input: Value,
        options: StartOptions,
    ) -> Result<Started, EngineError> {
        let id = options.id.unwrap_or_default();
        let new = self.prepare(workflow, input, id, options.version)?;
        let outcome = self.shared.store.create(&new).await?;
        self.created(id, workflow, outcome)
    }

    /// Starts many journeys of `W` in one transaction.
    pub async fn start_many<W: Workflow>(
        &self,
        inputs: Vec<W::Input>,
    ) -> Result<Vec<JourneyId>, EngineError> {
        let mut batch = Vec::with_capacity(inputs.len());
        for input in inputs {
            let input = serde_json::to_value(&input)?;
            batch.push(self.prepare(W::NAME, input, JourneyId::new(), None)?);
        }
        let ids = batch.iter().map(|n| n.id).collect();
        self.shared.store.create_many(&batch).await?;
        self.shared.wake.notify_one();
        Ok(ids)
    }

    fn prepare(
        &self,
        workflow: &str,
        input: Value,
        id: JourneyId,
        version: Option<u32>,
    ) -> Result<NewJourney, EngineError> {
        let wf = match version {
            Some(v) => self.shared.registry.for_stored(workflow, v)?,
            None => self.shared.registry.latest(workflow)?,
        };
        let start = wf
            .start(input)
            .map_err(|source| EngineError::InvalidInput {
                workflow: workflow.to_owned(),
                source,
            })?;
        let info = wf
            .step_info(&start.state)
            .map_err(|e| EngineError::InvalidInput {
                workflow: workflow.to_owned(),
                source: InvalidInput::new(e),
            })?;
        let now = self.now_ms();
        let started = HistoryEntry {
            seq: 1,
            at_ms: now,
            kind: HistoryKind::JourneyStarted,
            step: Some(info.name.to_owned()),
            attempt: None,
            duration_ms: None,
            detail: json!({
                "workflow": wf.name(),
                "version": wf.version(),
                "business_key": start.business_key.as_ref().map(|k| format!("{k:?}")),
                "deadline_ms": start.deadline.map(duration_ms),
            }),
            state: Some(start.state.clone()),
        };
        Ok(NewJourney {
            id,
            workflow: wf.name().to_owned(),
            version: wf.version(),
            state: start.state,
            business_key: start.business_key,
            step_name: info.name.to_owned(),
            sla_at_ms: info.expected.map(|e| now + duration_ms(e)),
            deadline_at_ms: start.deadline.map(|d| now + duration_ms(d)),
            correlations: start.correlations,
            started,
            now_ms: now,
        })
    }

    fn created(
        &self,
        id: JourneyId,
        workflow: &str,
        outcome: CreateOutcome,
    ) -> Result<Started, EngineError> {
        match outcome {
            CreateOutcome::Created => {
                self.shared.wake.notify_one();
                Ok(Started { id, created: true })
            }
            CreateOutcome::Existing { workflow: existing } if existing == workflow => {
                Ok(Started { id, created: false })
            }
            CreateOutcome::Existing { workflow: existing } => Err(EngineError::AlreadyExists {
                id,
                workflow: existing,
            }),
        }
    }

    /// Stores a signal (durably, before returning) and wakes its journey if
    /// it waits for it. A duplicate dedupe key is ignored; a signal for no
    /// known journey is kept and reported.
    pub async fn signal(&self, signal: NewSignal) -> Result<Delivery, EngineError> {
        let size = signal.payload.to_string().len();
        if size > MAX_SIGNAL_PAYLOAD_BYTES {
            return Err(EngineError::Refused(format!(
                "signal payload is {size} bytes; the limit is {MAX_SIGNAL_PAYLOAD_BYTES}"
            )));
        }
        let delivery = self.shared.store.deliver(&signal, self.now_ms()).await?;
        let metrics = &self.shared.metrics;
        match &delivery.outcome {
            DeliveryOutcome::Delivered { woke, .. } => {
                metrics.signals_received.inc();
                if *woke {
                    self.shared.wake.notify_one();
                }
            }
            DeliveryOutcome::Duplicate { .. } => metrics.signals_duplicate.inc(),
            DeliveryOutcome::Unmatched => {
                metrics.signals_unmatched.inc();
                tracing::warn!(
                    signal = %signal.name,
                    source = %signal.source,
                    signal_id = delivery.signal_id,
                    "signal matched no journey; stored for operators"
                );
            }
        }
        Ok(delivery)
    }

    /// A journey.
    pub async fn journey(&self, id: JourneyId) -> Result<JourneyRecord, EngineError> {
        self.shared
            .store
            .get(id)
            .await?
            .ok_or(EngineError::NotFound(id))
    }

    /// A journey's history (at most `limit` entries from the start).
    pub async fn history(
        &self,
        id: JourneyId,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, EngineError> {
        Ok(self.shared.store.history(id, 0, limit).await?)
    }

    /// A completed journey's output, typed.
    pub async fn output<O: DeserializeOwned>(
        &self,
        id: JourneyId,
    ) -> Result<Option<O>, EngineError> {
        let record = self.journey(id).await?;
        Ok(record.output.map(serde_json::from_value).transpose()?)
    }

    /// Polls until `done` holds for the journey or `timeout` (real time)
    /// passes. For tests, examples and scripts.
    pub async fn wait_for(
        &self,
        id: JourneyId,
        timeout: Duration,
        done: impl Fn(&JourneyRecord) -> bool,
    ) -> Result<JourneyRecord, EngineError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let record = self.journey(id).await?;
            if done(&record) {
                return Ok(record);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(EngineError::Refused(format!(
                    "journey {id} did not get there within {timeout:?}: it is {} at step {}{}",
                    record.status,
                    record.step_name,
                    record
                        .attention
                        .as_deref()
                        .map(|a| format!(" ({a})"))
                        .unwrap_or_default()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the journey has ended (completed, failed or cancelled).
    pub async fn wait_until_finished(
        &self,
        id: JourneyId,
        timeout: Duration,
    ) -> Result<JourneyRecord, EngineError> {
        self.wait_for(id, timeout, |r| r.status.is_terminal()).await
    }

    /// Cancels a journey: its compensations run, then it ends as cancelled.
    /// If a worker is running one of its steps, the cancellation is queued
    /// and applied right after that step.
    pub async fn cancel(
        &self,
        id: JourneyId,
        actor: &str,
        reason: &str,
    ) -> Result<CancelOutcome, EngineError> {
        let result = self
            .repair(id, |row, now| {
                if row.status.is_terminal() {
                    return Err(EngineError::Refused(format!(
                        "journey {id} has already ended ({})",
                        row.status
                    )));
                }
                if row.status == Status::Compensating {
                    return Err(EngineError::Refused(format!(
                        "journey {id} is already compensating (ending as {})",
                        row.ending.map(Ending::as_str).unwrap_or("failed")
                    )));
                }
                let mut update = JourneyUpdate::unchanged(row);
                update.clear_cancel_request = true;
                let noted = vec![manual(row, "cancel", actor, reason, None)];
                Ok(core::begin_ending(
                    row,
                    update,
                    format!("cancelled by {actor}: {reason}"),
                    Ending::Cancelled,
                    now,
                    noted,
                ))
            })
            .await;
        match result {
            Ok(()) => Ok(CancelOutcome::Cancelled),
            Err(EngineError::Busy { .. }) => {
                let request = CancelRequest {
                    actor: actor.to_owned(),
                    reason: reason.to_owned(),
                };
                if self.shared.store.request_cancel(id, &request).await? {
                    Ok(CancelOutcome::Requested)
                } else {
                    Err(EngineError::Refused(format!(
                        "journey {id} has already ended"
                    )))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Applies an operator's change to one journey under its own lease, so
    /// it cannot race a worker: leases the journey (refusing with `Busy` if a
    /// worker holds it), lets `change` compute the commit from the current
    /// row, and writes it fenced by that lease. The journey is then released
    /// for the workers (due at once if it has work).
    pub(crate) async fn repair(
        &self,
        id: JourneyId,
        change: impl FnOnce(&JourneyRecord, i64) -> Result<Decision, EngineError>,
    ) -> Result<(), EngineError> {
        let owner = format!("repair-{}", uuid::Uuid::new_v4().simple());
        let now = self.now_ms();
        let ttl = duration_ms(self.worker.lease_ttl);
        let (row, previous_ready) = match self
            .shared
            .store
            .lease_one(id, &owner, now, now + ttl)
            .await?
        {
            LeaseOne::Leased(row, previous_ready) => (*row, previous_ready),
            LeaseOne::Busy { owner, until_ms } => {
                return Err(EngineError::Busy {
                    id,
                    owner,
                    until: crate::clock::from_ms(until_ms).to_rfc3339(),
                });
            }
            LeaseOne::NotFound => return Err(EngineError::NotFound(id)),
        };
        let mut decision = match change(&row, now) {
            Ok(decision) => decision,
            Err(e) => {
                // Refused: give the journey back exactly as it was.
                self.shared
                    .store
                    .release(&owner, &[(row.id, row.lease_epoch, previous_ready)])
                    .await?;
                return Err(e);
            }
        };
        if decision.update.ready == Ready::KeepLease {
            decision.update.ready = Ready::At(now);
        }
        let commit = Commit {
            id,
            epoch: row.lease_epoch,
            update: decision.update,
            history: decision.history,
            consumed_signal: decision.consumed_signal,
            correlations: vec![],
            now_ms: now,
        };
        match self
            .shared
            .store
            .commit(&owner, &[commit], now + ttl)
            .await?
            .pop()
        {
            Some(CommitOutcome::Committed { .. }) => {
                self.shared.wake.notify_one();
                Ok(())
            }
            _ => Err(EngineError::Refused(format!(
                "journey {id} was taken by a worker while the change was being written; nothing was changed"
            ))),
        }
    }
}

/// The history entry of an operator's action.
pub(crate) fn manual(
    row: &JourneyRecord,
    action: &str,
    actor: &str,
    reason: &str,
    extra: Option<Value>,
) -> Pending {
    let mut detail = json!({ "action": action, "actor": actor, "reason": reason });
    if let (Some(Value::Object(extra)), Value::Object(map)) = (extra, &mut detail) {
        map.extend(extra);
    }
    Pending {
        kind: HistoryKind::ManualAction,
        step: Some(row.step_name.clone()),
        detail,
    }
}

impl NewSignal {
    /// A signal for a journey by id.
    pub fn to_journey(id: JourneyId, name: &str, payload: Value) -> Result<Self, EngineError> {
        Ok(Self {
            target: SignalTarget::Journey(id),
            name: SignalName::new(name).map_err(EngineError::Refused)?,
            payload,
            dedupe_key: None,
            source: "api".to_owned(),
        })
    }

    /// A signal for whichever journey registered `key`.
    pub fn to_correlation(
        key: CorrelationKey,
        name: &str,
        payload: Value,
    ) -> Result<Self, EngineError> {
        Ok(Self {
            target: SignalTarget::Correlation(key),
            name: SignalName::new(name).map_err(EngineError::Refused)?,
            payload,
            dedupe_key: None,
            source: "api".to_owned(),
        })
    }

    /// Sets the dedupe key (a second signal with it is ignored).
    pub fn dedupe(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    /// Sets where the signal came from.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }
}
