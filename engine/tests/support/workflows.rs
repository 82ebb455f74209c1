//! Small workflows that exercise one engine feature each, and a counting
//! fake provider that applies each idempotency key's effect once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handover_engine::{
    CompensationCtx, CorrelationKey, InvalidInput, NoCompensation, RetryPolicy, Start, StepCtx,
    StepError, StepInfo, Transition, Wait, Wake, Workflow,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// A provider that records every call and applies each key's effect once,
/// and notices two calls for the same journey step running at once.
#[derive(Debug, Default)]
pub struct FakeProvider {
    calls: Mutex<HashMap<String, u32>>,
    effects: Mutex<HashMap<String, u32>>,
    in_flight: Mutex<HashSet<String>>,
    pub overlaps: AtomicU64,
    /// While set, the next call parks until released (to pause a worker
    /// mid-step); later calls pass.
    pub gate: Mutex<Option<Arc<Notify>>>,
}

impl FakeProvider {
    pub async fn call(&self, key: &str, slot: &str) {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_default() += 1;
        if !self.in_flight.lock().unwrap().insert(slot.to_owned()) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        // The gate stops the first caller only (the "paused" worker).
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            gate.notified().await;
        } else {
            tokio::task::yield_now().await;
        }
        self.effects
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_insert(1);
        self.in_flight.lock().unwrap().remove(slot);
    }

    pub fn calls(&self, key: &str) -> u32 {
        self.calls.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.effects.lock().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    pub fn total_calls(&self) -> u32 {
        self.calls.lock().unwrap().values().sum()
    }

    pub fn effects_applied_once(&self) -> bool {
        self.effects.lock().unwrap().values().all(|n| *n == 1)
    }
}

// ---------------------------------------------------------------------------

/// Five steps, each calling the provider with its step's idempotency key.
#[derive(Debug, Clone)]
pub struct FiveSteps {
    pub provider: Arc<FakeProvider>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Five {
    Step(u8),
}

impl Workflow for FiveSteps {
    const NAME: &'static str = "test.five-steps";
    type Input = ();
    type State = Five;
    type Output = String;
    type Compensation = NoCompensation;

    fn start(&self, _input: ()) -> Result<Start<Five>, InvalidInput> {
        Ok(Start::new(Five::Step(1)))
    }

    fn step_info(&self, state: &Five) -> StepInfo {
        let Five::Step(n) = state;
        StepInfo::new(match n {
            1 => "one",
            2 => "two",
            3 => "three",
            4 => "four",
            _ => "five",
        })
    }

    async fn step(
        &self,
        state: Five,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<Five, String>, StepError> {
        let Five::Step(n) = state;
        let key = ctx.idempotency_key();
        let slot = format!("{}:{}", ctx.journey_id(), n);
        self.provider.call(key.as_str(), &slot).await;
        Ok(if n >= 5 {
            Transition::complete(format!("done after {n} steps"))
        } else {
            Transition::next(Five::Step(n + 1))
        })
    }
}

// ---------------------------------------------------------------------------

/// Waits for `go` (with a timeout state), optionally after sleeping first.
#[derive(Debug, Clone, Default)]
pub struct AwaitGo;

#[derive(Debug, Serialize, Deserialize)]
pub struct AwaitGoInput {
    pub sleep_first_secs: u64,
    pub timeout_secs: u64,
    pub correlation: Option<String>,
    pub deadline_secs: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Go {
    Sleep { secs: u64, timeout_secs: u64 },
    Waiting { timeout_secs: u64 },
    TimedOut,
}

impl Workflow for AwaitGo {
    const NAME: &'static str = "test.await-go";
    type Input = AwaitGoInput;
    type State = Go;
    type Output = String;
    type Compensation = NoCompensation;

    fn start(&self, input: AwaitGoInput) -> Result<Start<Go>, InvalidInput> {
        let state = if input.sleep_first_secs > 0 {
            Go::Sleep {
                secs: input.sleep_first_secs,
                timeout_secs: input.timeout_secs,
            }
        } else {
            Go::Waiting {
                timeout_secs: input.timeout_secs,
            }
        };
        let mut start = Start::new(state);
        if let Some(c) = input.correlation {
            start = start.correlate(CorrelationKey::new("test.ref", c).map_err(InvalidInput::new)?);
        }
        if let Some(d) = input.deadline_secs {
            start = start.deadline_in(Duration::from_secs(d));
        }
        Ok(start)
    }

    fn step_info(&self, state: &Go) -> StepInfo {
        match state {
            Go::Sleep { .. } => StepInfo::new("sleep"),
            Go::Waiting { .. } => {
                StepInfo::new("await-go").expected_within(Duration::from_secs(600))
            }
            Go::TimedOut => StepInfo::new("timed-out"),
        }
    }

    async fn step(
        &self,
        state: Go,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<Go, String>, StepError> {
        Ok(match state {
            Go::Sleep { secs, timeout_secs } => {
                if *ctx.wake() == Wake::Timer {
                    Transition::next(Go::Waiting { timeout_secs })
                } else {
                    Transition::sleep_until(
                        ctx.after(Duration::from_secs(secs)),
                        Go::Sleep { secs, timeout_secs },
                    )
                }
            }
            Go::Waiting { timeout_secs } => match ctx.signal_payload::<String>("go")? {
                Some(word) => Transition::complete(format!("go: {word}")),
                None => {
                    let mut wait = Wait::for_signal("go").on_timeout(Go::TimedOut);
                    if timeout_secs > 0 {
                        wait = wait.until(ctx.after(Duration::from_secs(timeout_secs)));
                    }
                    Transition::wait(Go::Waiting { timeout_secs }, wait)
                }
            },
            Go::TimedOut => Transition::complete("timed out".to_owned()),
        })
    }

    fn skip(&self, state: &Go) -> Option<Go> {
        match state {
            Go::Waiting { .. } => Some(Go::TimedOut),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------

/// Adds the `add` signals it receives until the total reaches 3.
#[derive(Debug, Clone, Default)]
pub struct Accumulate;

#[derive(Debug, Serialize, Deserialize)]
pub struct Total(pub u32);

impl Workflow for Accumulate {
    const NAME: &'static str = "test.accumulate";
    type Input = ();
    type State = Total;
    type Output = u32;
    type Compensation = NoCompensation;

    fn start(&self, _input: ()) -> Result<Start<Total>, InvalidInput> {
        Ok(Start::new(Total(0)))
    }

    fn step_info(&self, _state: &Total) -> StepInfo {
        StepInfo::new("accumulate")
    }

    async fn step(
        &self,
        Total(total): Total,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<Total, u32>, StepError> {
        let total = total + ctx.signal_payload::<u32>("add")?.unwrap_or(0);
        Ok(if total >= 3 {
            Transition::complete(total)
        } else {
            Transition::wait(Total(total), Wait::for_signal("add"))
        })
    }
}

// ---------------------------------------------------------------------------

/// Fails `fail_times` times with the given kind, then succeeds; records what
/// each attempt saw.
#[derive(Debug, Clone, Default)]
pub struct Flaky {
    pub seen: Arc<Mutex<Vec<(u32, bool, bool)>>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FlakyInput {
    pub fail_times: u32,
    pub kind: String,
    pub retry_after_secs: Option<u64>,
    pub max_attempts: u32,
}

impl Workflow for Flaky {
    const NAME: &'static str = "test.flaky";
    type Input = FlakyInput;
    type State = FlakyInput;
    type Output = u32;
    type Compensation = NoCompensation;

    fn start(&self, input: FlakyInput) -> Result<Start<FlakyInput>, InvalidInput> {
        Ok(Start::new(input))
    }

    fn step_info(&self, state: &FlakyInput) -> StepInfo {
        StepInfo::new("flaky").retry(
            RetryPolicy::attempts(state.max_attempts)
                .delays(Duration::from_secs(1), Duration::from_secs(8)),
        )
    }

    async fn step(
        &self,
        state: FlakyInput,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<FlakyInput, u32>, StepError> {
        self.seen.lock().unwrap().push((
            ctx.attempt(),
            ctx.may_have_run_before(),
            ctx.previous_outcome_unknown(),
        ));
        if ctx.attempt() <= state.fail_times {
            return Err(match (state.kind.as_str(), state.retry_after_secs) {
                ("unknown", _) => StepError::outcome_unknown("504 from provider"),
                ("terminal", _) => StepError::terminal("the provider refused: not eligible"),
                (_, Some(secs)) => {
                    StepError::retry_after("429 from provider", Duration::from_secs(secs))
                }
                _ => StepError::retryable("503 from provider"),
            });
        }
        Ok(Transition::complete(ctx.attempt()))
    }
}

// ---------------------------------------------------------------------------

/// Pushes three compensations, then (optionally) fails or waits to be
/// cancelled. Compensations append their name to `undone`.
#[derive(Debug, Clone, Default)]
pub struct Saga {
    pub undone: Arc<Mutex<Vec<String>>>,
    pub flaky_undo: Arc<AtomicU32>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum SagaState {
    Do(u8),
    Fail,
    Park,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Undo {
    Release(String),
    Refund(String),
    Cancel(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SagaInput {
    pub then_fail: bool,
}

impl Workflow for Saga {
    const NAME: &'static str = "test.saga";
    type Input = SagaInput;
    type State = (SagaState, bool);
    type Output = ();
    type Compensation = Undo;

    fn start(&self, input: SagaInput) -> Result<Start<Self::State>, InvalidInput> {
        Ok(Start::new((SagaState::Do(1), input.then_fail)))
    }

    fn step_info(&self, state: &Self::State) -> StepInfo {
        match state.0 {
            SagaState::Do(_) => StepInfo::new("do"),
            SagaState::Fail => StepInfo::new("fail"),
            SagaState::Park => StepInfo::new("park"),
        }
    }

    async fn step(
        &self,
        (state, then_fail): Self::State,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<Self::State, ()>, StepError> {
        Ok(match state {
            SagaState::Do(n) => {
                let undo = match n {
                    1 => Undo::Release("number".into()),
                    2 => Undo::Refund("payment".into()),
                    _ => Undo::Cancel("order".into()),
                };
                ctx.push_compensation(undo)?;
                if n < 3 {
                    Transition::next((SagaState::Do(n + 1), then_fail))
                } else if then_fail {
                    Transition::next((SagaState::Fail, then_fail))
                } else {
                    Transition::next((SagaState::Park, then_fail))
                }
            }
            SagaState::Fail => return Err(StepError::terminal("card declined")),
            SagaState::Park => {
                Transition::wait((SagaState::Park, then_fail), Wait::for_signal("never"))
            }
        })
    }

    async fn compensate(&self, undo: Undo, _ctx: &mut CompensationCtx) -> Result<(), StepError> {
        if matches!(undo, Undo::Refund(_)) && self.flaky_undo.load(Ordering::SeqCst) > 0 {
            self.flaky_undo.fetch_sub(1, Ordering::SeqCst);
            return Err(StepError::retryable("refund service unavailable"));
        }
        let name = match undo {
            Undo::Release(x) => format!("release {x}"),
            Undo::Refund(x) => format!("refund {x}"),
            Undo::Cancel(x) => format!("cancel {x}"),
        };
        self.undone.lock().unwrap().push(name);
        Ok(())
    }
}

// ---------------------------------------------------------------------------

/// Version 1 of a journey: two steps, output tagged v1.
#[derive(Debug, Clone, Default)]
pub struct VersionedV1;

#[derive(Debug, Serialize, Deserialize)]
pub enum V1State {
    First,
    Second { note: String },
}

impl Workflow for VersionedV1 {
    const NAME: &'static str = "test.versioned";
    const VERSION: u32 = 1;
    type Input = ();
    type State = V1State;
    type Output = String;
    type Compensation = NoCompensation;

    fn start(&self, _input: ()) -> Result<Start<V1State>, InvalidInput> {
        Ok(Start::new(V1State::First))
    }

    fn step_info(&self, state: &V1State) -> StepInfo {
        match state {
            V1State::First => StepInfo::new("first"),
            V1State::Second { .. } => StepInfo::new("second"),
        }
    }

    async fn step(
        &self,
        state: V1State,
        _ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<V1State, String>, StepError> {
        Ok(match state {
            V1State::First => Transition::wait(
                V1State::Second {
                    note: "from v1".into(),
                },
                Wait::for_signal("continue"),
            ),
            V1State::Second { note } => Transition::complete(format!("v1 finished ({note})")),
        })
    }
}

/// Version 2: a differently shaped state. With `RESUMES_FROM = 1` it can
/// also resume v1 journeys by upgrading their state.
#[derive(Debug, Clone, Default)]
pub struct VersionedV2;

#[derive(Debug, Serialize, Deserialize)]
pub enum V2State {
    Begin,
    Finish { notes: Vec<String> },
}

impl Workflow for VersionedV2 {
    const NAME: &'static str = "test.versioned";
    const VERSION: u32 = 2;
    const RESUMES_FROM: u32 = 1;
    type Input = ();
    type State = V2State;
    type Output = String;
    type Compensation = NoCompensation;

    fn start(&self, _input: ()) -> Result<Start<V2State>, InvalidInput> {
        Ok(Start::new(V2State::Begin))
    }

    fn step_info(&self, state: &V2State) -> StepInfo {
        match state {
            V2State::Begin => StepInfo::new("begin"),
            V2State::Finish { .. } => StepInfo::new("finish"),
        }
    }

    async fn step(
        &self,
        state: V2State,
        _ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<V2State, String>, StepError> {
        Ok(match state {
            V2State::Begin => Transition::wait(
                V2State::Finish {
                    notes: vec!["from v2".into()],
                },
                Wait::for_signal("continue"),
            ),
            V2State::Finish { notes } => {
                Transition::complete(format!("v2 finished ({})", notes.join(", ")))
            }
        })
    }

    fn upgrade_state(
        &self,
        from_version: u32,
        state: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        match from_version {
            2 => Ok(state),
            1 => {
                let old: V1State = serde_json::from_value(state).map_err(|e| e.to_string())?;
                let new = match old {
                    V1State::First => V2State::Begin,
                    V1State::Second { note } => V2State::Finish {
                        notes: vec![note, "upgraded".into()],
                    },
                };
                serde_json::to_value(new).map_err(|e| e.to_string())
            }
            v => Err(format!("cannot resume v{v}")),
        }
    }
}

// ---------------------------------------------------------------------------

/// Calls a provider that an operator can break and fix: fails (retryably or
/// terminally) while `broken` is set.
#[derive(Debug, Clone, Default)]
pub struct Toggle {
    pub broken: Arc<std::sync::atomic::AtomicBool>,
    pub gate: Arc<Mutex<Option<Arc<Notify>>>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum ToggleState {
    Call { terminal: bool },
    Done { note: String },
}

impl Workflow for Toggle {
    const NAME: &'static str = "test.toggle";
    type Input = bool;
    type State = ToggleState;
    type Output = String;
    type Compensation = NoCompensation;

    fn start(&self, terminal: bool) -> Result<Start<ToggleState>, InvalidInput> {
        Ok(Start::new(ToggleState::Call { terminal }))
    }

    fn step_info(&self, state: &ToggleState) -> StepInfo {
        match state {
            ToggleState::Call { .. } => StepInfo::new("call").retry(
                RetryPolicy::attempts(2).delays(Duration::from_secs(1), Duration::from_secs(1)),
            ),
            ToggleState::Done { .. } => StepInfo::new("done"),
        }
    }

    async fn step(
        &self,
        state: ToggleState,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<ToggleState, String>, StepError> {
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            gate.notified().await;
        }
        match state {
            ToggleState::Call { terminal } => {
                if self.broken.load(Ordering::SeqCst) {
                    return Err(if terminal {
                        StepError::terminal("provider refused: service unavailable in region")
                    } else {
                        StepError::retryable("provider down (503)")
                    });
                }
                let note = if ctx.may_have_run_before() {
                    "reconciled first"
                } else {
                    "first try"
                };
                Ok(Transition::next(ToggleState::Done { note: note.into() }))
            }
            ToggleState::Done { note } => Ok(Transition::complete(note)),
        }
    }
}
