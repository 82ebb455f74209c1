//! Type erasure: the engine stores and runs workflows as JSON, the registry
//! turns typed [`Workflow`]s into objects it can call by name and version.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::clock::{SharedClock, Timestamp};
use crate::context::{CompensationCtx, StepCtx, StepEffects, StepFacts, to_json};
use crate::error::{EngineError, InvalidInput, StepError};
use crate::ids::{BusinessKey, CorrelationKey, SignalName};
use crate::workflow::{ReceivedSignal, StepInfo, Transition, Workflow};

/// A new journey's first state, as JSON.
#[derive(Debug)]
pub(crate) struct ErasedStart {
    pub state: Value,
    pub business_key: Option<BusinessKey>,
    pub deadline: Option<std::time::Duration>,
    pub correlations: Vec<CorrelationKey>,
}

/// A step's transition, as JSON.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ErasedTransition {
    Next(Value),
    Wait {
        state: Value,
        signals: Vec<SignalName>,
        until: Option<Timestamp>,
        on_timeout: Option<Value>,
    },
    Complete(Value),
    Fail(String),
}

/// The inputs of one erased step run.
#[derive(Debug)]
pub(crate) struct StepRun {
    pub state: Value,
    pub facts: StepFacts,
    pub signal: Option<ReceivedSignal>,
    pub pending_compensations: usize,
}

/// A workflow, callable without knowing its types.
#[async_trait]
pub(crate) trait ErasedWorkflow: Send + Sync {
    fn name(&self) -> &'static str;
    fn version(&self) -> u32;
    fn resumes_from(&self) -> u32;
    fn start(&self, input: Value) -> Result<ErasedStart, InvalidInput>;
    /// Decodes `state` (written by `version`), upgrading it if needed.
    fn load_state(&self, version: u32, state: Value) -> Result<Value, String>;
    fn step_info(&self, state: &Value) -> Result<StepInfo, String>;
    async fn run_step(
        &self,
        run: StepRun,
        clock: SharedClock,
    ) -> (Result<ErasedTransition, StepError>, StepEffects);
    async fn compensate(
        &self,
        compensation: Value,
        ctx: &mut CompensationCtx,
    ) -> Result<(), StepError>;
    fn skip(&self, state: &Value) -> Result<Option<Value>, String>;
    /// Checks that `state` is a valid `State` (for `patch-state`).
    fn check_state(&self, state: &Value) -> Result<(), String>;
}

struct Typed<W>(Arc<W>);

fn decode<W: Workflow>(state: &Value) -> Result<W::State, String> {
    serde_json::from_value(state.clone()).map_err(|e| {
        format!(
            "the stored state does not match {} v{}: {e}",
            W::NAME,
            W::VERSION
        )
    })
}

#[async_trait]
impl<W: Workflow> ErasedWorkflow for Typed<W> {
    fn name(&self) -> &'static str {
        W::NAME
    }

    fn version(&self) -> u32 {
        W::VERSION
    }

    fn resumes_from(&self) -> u32 {
        W::RESUMES_FROM.min(W::VERSION)
    }

    fn start(&self, input: Value) -> Result<ErasedStart, InvalidInput> {
        let input: W::Input = serde_json::from_value(input)
            .map_err(|e| InvalidInput::new(format!("input does not match {}: {e}", W::NAME)))?;
        let start = self.0.start(input)?;
        let state = serde_json::to_value(&start.state)
            .map_err(|e| InvalidInput::new(format!("initial state does not serialize: {e}")))?;
        Ok(ErasedStart {
            state,
            business_key: start.business_key,
            deadline: start.deadline,
            correlations: start.correlations,
        })
    }

    fn load_state(&self, version: u32, state: Value) -> Result<Value, String> {
        let state = if version == W::VERSION {
            state
        } else {
            self.0.upgrade_state(version, state)?
        };
        decode::<W>(&state)?;
        Ok(state)
    }

    fn step_info(&self, state: &Value) -> Result<StepInfo, String> {
        Ok(self.0.step_info(&decode::<W>(state)?))
    }

    async fn run_step(
        &self,
        run: StepRun,
        clock: SharedClock,
    ) -> (Result<ErasedTransition, StepError>, StepEffects) {
        let state = match decode::<W>(&run.state) {
            Ok(state) => state,
            Err(e) => return (Err(StepError::terminal(e)), StepEffects::default()),
        };
        let mut ctx = StepCtx::<W> {
            facts: run.facts,
            clock,
            signal: run.signal,
            effects: StepEffects::default(),
            pending_compensations: run.pending_compensations,
            _workflow: PhantomData,
        };
        let result = self.0.step(state, &mut ctx).await;
        let result = result.and_then(erase::<W>);
        (result, ctx.effects)
    }

    async fn compensate(
        &self,
        compensation: Value,
        ctx: &mut CompensationCtx,
    ) -> Result<(), StepError> {
        let compensation: W::Compensation = serde_json::from_value(compensation).map_err(|e| {
            StepError::terminal(format!("stored compensation does not decode: {e}"))
        })?;
        self.0.compensate(compensation, ctx).await
    }

    fn skip(&self, state: &Value) -> Result<Option<Value>, String> {
        let state = decode::<W>(state)?;
        match self.0.skip(&state) {
            Some(next) => serde_json::to_value(&next)
                .map(Some)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    fn check_state(&self, state: &Value) -> Result<(), String> {
        decode::<W>(state).map(|_| ())
    }
}

fn erase<W: Workflow>(
    transition: Transition<W::State, W::Output>,
) -> Result<ErasedTransition, StepError> {
    Ok(match transition {
        Transition::Next(state) => ErasedTransition::Next(to_json("state", &state)?),
        Transition::Wait { state, wait } => {
            let signals = wait
                .signals
                .into_iter()
                .map(SignalName::new)
                .collect::<Result<Vec<_>, _>>()
                .map_err(StepError::terminal)?;
            let on_timeout = wait
                .on_timeout
                .map(|s| to_json("timeout state", &s))
                .transpose()?;
            ErasedTransition::Wait {
                state: to_json("state", &state)?,
                signals,
                until: wait.until,
                on_timeout,
            }
        }
        Transition::Complete(output) => ErasedTransition::Complete(to_json("output", &output)?),
        Transition::Fail(reason) => ErasedTransition::Fail(reason),
    })
}

/// The workflows an engine can run, by name and version.
#[derive(Clone, Default)]
pub struct Registry {
    by_name: BTreeMap<&'static str, BTreeMap<u32, Arc<dyn ErasedWorkflow>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .by_name
            .iter()
            .flat_map(|(n, vs)| vs.keys().map(move |v| format!("{n} v{v}")))
            .collect();
        f.debug_struct("Registry")
            .field("workflows", &names)
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a workflow version. Registering several versions of one name is
    /// how old journeys keep running while new ones start on the newest.
    pub fn register<W: Workflow>(&mut self, workflow: W) -> &mut Self {
        self.register_arc(Arc::new(workflow))
    }

    /// Adds a workflow version held in an `Arc` (shared with other code).
    pub fn register_arc<W: Workflow>(&mut self, workflow: Arc<W>) -> &mut Self {
        self.by_name
            .entry(W::NAME)
            .or_default()
            .insert(W::VERSION, Arc::new(Typed(workflow)));
        self
    }

    /// The names and versions registered.
    pub fn workflows(&self) -> Vec<(&'static str, u32)> {
        self.by_name
            .iter()
            .flat_map(|(n, vs)| vs.keys().map(move |v| (*n, *v)))
            .collect()
    }

    /// The newest version of `name`, which new journeys start on.
    pub(crate) fn latest(&self, name: &str) -> Result<Arc<dyn ErasedWorkflow>, EngineError> {
        self.by_name
            .get(name)
            .and_then(|vs| vs.values().next_back().cloned())
            .ok_or_else(|| EngineError::UnknownWorkflow {
                name: name.to_owned(),
                version: 0,
            })
    }

    /// The workflow that runs journeys stored by `name` v`version`: that exact
    /// version if registered, else the newest one that resumes from it.
    pub(crate) fn for_stored(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Arc<dyn ErasedWorkflow>, EngineError> {
        let versions = self.by_name.get(name);
        let found = versions.and_then(|vs| {
            vs.get(&version).cloned().or_else(|| {
                vs.values()
                    .rev()
                    .find(|w| w.resumes_from() <= version && version <= w.version())
                    .cloned()
            })
        });
        found.ok_or_else(|| EngineError::UnknownWorkflow {
            name: name.to_owned(),
            version,
        })
    }
}
