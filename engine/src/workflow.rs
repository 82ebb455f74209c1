//! The workflow API: what a journey author writes.
//!
//! A workflow is a state machine. Its `State` enum says where a journey is;
//! [`Workflow::step`] looks at the state, does at most one piece of outbound
//! work, and returns a [`Transition`]. The engine checkpoints the new state
//! after every step, in the same transaction as the history entry and any
//! timer or wait, so a journey resumes exactly where it was after a crash.
//! There are no determinism rules: a step is ordinary async Rust.
//!
//! # Durable contract
//! `NAME`, the serialized `State`, `Input`, `Output` and `Compensation`, step
//! names and signal names are stored. Changing them changes what stored
//! journeys mean; see [`Workflow::upgrade_state`] for how to evolve a state.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::context::{CompensationCtx, StepCtx};
use crate::error::{InvalidInput, StepError};
use crate::ids::{BusinessKey, CorrelationKey, SignalName};
use crate::retry::RetryPolicy;

/// A journey type. See the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use handover_engine::{
///     InvalidInput, NoCompensation, Start, StepCtx, StepError, StepInfo, Transition, Wait,
///     Workflow,
/// };
/// use serde::{Deserialize, Serialize};
///
/// struct Greeting;
///
/// #[derive(Serialize, Deserialize)]
/// enum State {
///     AwaitName,
///     Greet { name: String },
/// }
///
/// impl Workflow for Greeting {
///     const NAME: &'static str = "greeting";
///     type Input = ();
///     type State = State;
///     type Output = String;
///     type Compensation = NoCompensation;
///
///     fn start(&self, _input: ()) -> Result<Start<State>, InvalidInput> {
///         Ok(Start::new(State::AwaitName))
///     }
///
///     fn step_info(&self, state: &State) -> StepInfo {
///         match state {
///             State::AwaitName => StepInfo::new("await-name").expected_within(Duration::from_secs(3600)),
///             State::Greet { .. } => StepInfo::new("greet"),
///         }
///     }
///
///     async fn step(
///         &self,
///         state: State,
///         ctx: &mut StepCtx<Self>,
///     ) -> Result<Transition<State, String>, StepError> {
///         Ok(match state {
///             State::AwaitName => match ctx.signal_payload::<String>("name")? {
///                 Some(name) => Transition::next(State::Greet { name }),
///                 None => Transition::wait(
///                     State::AwaitName,
///                     Wait::for_signal("name").until(ctx.after(Duration::from_secs(86_400))),
///                 ),
///             },
///             State::Greet { name } => Transition::complete(format!("hello, {name}")),
///         })
///     }
/// }
/// ```
pub trait Workflow: Send + Sync + Sized + 'static {
    /// The durable name (`mobily.esim-checkout`). Never rename a workflow that
    /// has journeys in flight.
    const NAME: &'static str;
    /// The version new journeys start on. Bump it when `State` changes in a
    /// way old states no longer deserialize.
    const VERSION: u32 = 1;
    /// The oldest version whose stored states this type can resume, through
    /// [`Workflow::upgrade_state`]. Defaults to `VERSION` (only its own).
    const RESUMES_FROM: u32 = Self::VERSION;

    /// What starting a journey takes (validated by [`Workflow::start`]).
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// Where a journey is, with the data it carries. Mark secrets with
    /// [`Sensitive`](crate::Sensitive).
    type State: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What a completed journey produced.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// An undo action pushed by a step; use [`NoCompensation`] if there are none.
    type Compensation: Serialize + DeserializeOwned + Send + 'static;

    /// Validates the input and builds the first state. An error here is
    /// returned to the caller and nothing is stored.
    fn start(&self, input: Self::Input) -> Result<Start<Self::State>, InvalidInput>;

    /// Describes the step for `state`: its name, retry policy, how long it
    /// normally takes (beyond which the journey is reported as stuck) and its
    /// own time limit.
    fn step_info(&self, state: &Self::State) -> StepInfo;

    /// Runs the step for `state`. Called again with the same state after a
    /// retryable error, a crash, or a wake-up from a wait without
    /// `on_timeout`; use [`StepCtx::wake`], [`StepCtx::signal`] and
    /// [`StepCtx::may_have_run_before`] to tell these apart.
    fn step(
        &self,
        state: Self::State,
        ctx: &mut StepCtx<Self>,
    ) -> impl Future<Output = Result<Transition<Self::State, Self::Output>, StepError>> + Send;

    /// Undoes what a completed step did (run in reverse push order when the
    /// journey fails or is cancelled). It must be idempotent: it is retried,
    /// and re-run after a crash.
    fn compensate(
        &self,
        compensation: Self::Compensation,
        ctx: &mut CompensationCtx,
    ) -> impl Future<Output = Result<(), StepError>> + Send {
        let _ = (compensation, ctx);
        async {
            Err(StepError::terminal(
                "this workflow pushed a compensation but does not implement compensate",
            ))
        }
    }

    /// The state to move to when an operator skips the step for `state`
    /// (`handover journeys skip`); `None` (the default) means the step cannot
    /// be skipped.
    fn skip(&self, state: &Self::State) -> Option<Self::State> {
        let _ = state;
        None
    }

    /// Converts a state stored by version `from_version` (between
    /// `RESUMES_FROM` and `VERSION`) into this version's shape.
    ///
    /// Two ways to evolve a `State`:
    /// 1. Compatibly: add fields with `#[serde(default)]`, add variants; keep
    ///    `VERSION`. Old states deserialize as they are.
    /// 2. Incompatibly: bump `VERSION`. Either keep the old type registered
    ///    until its journeys finish (both versions run side by side), or set
    ///    `RESUMES_FROM` to the old version and rewrite its JSON here.
    fn upgrade_state(
        &self,
        from_version: u32,
        state: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        if from_version == Self::VERSION {
            Ok(state)
        } else {
            Err(format!(
                "{} v{} cannot resume a state written by v{from_version}",
                Self::NAME,
                Self::VERSION
            ))
        }
    }
}

/// The compensation type of a workflow that has none.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum NoCompensation {}

/// The first state of a new journey and what it is known by.
#[derive(Debug)]
pub struct Start<S> {
    pub(crate) state: S,
    pub(crate) business_key: Option<BusinessKey>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) correlations: Vec<CorrelationKey>,
}

impl<S> Start<S> {
    /// Starts in `state`.
    pub fn new(state: S) -> Self {
        Self {
            state,
            business_key: None,
            deadline: None,
            correlations: Vec::new(),
        }
    }

    /// The key operators search by (MSISDN, order id, transaction id).
    pub fn business_key(mut self, key: BusinessKey) -> Self {
        self.business_key = Some(key);
        self
    }

    /// The whole journey must end within `within` of its start; past that it
    /// fails (and compensates) with "deadline passed".
    pub fn deadline_in(mut self, within: Duration) -> Self {
        self.deadline = Some(within);
        self
    }

    /// A correlation key known from the start (callbacks can find the
    /// journey from its first moment).
    pub fn correlate(mut self, key: CorrelationKey) -> Self {
        self.correlations.push(key);
        self
    }
}

/// What the engine needs to know about a step before running it.
#[derive(Debug, Clone)]
pub struct StepInfo {
    /// The step's durable name (`reserve-number`), shown to operators.
    pub name: &'static str,
    /// How failures of this step are retried.
    pub retry: RetryPolicy,
    /// How long the journey normally stays at this step, waits included.
    /// Past it, `handover journeys stuck` reports the journey with this as the
    /// reason. `None`: the step has no expectation.
    pub expected: Option<Duration>,
    /// The step function's own time limit; past it the attempt counts as
    /// "outcome unknown".
    pub timeout: Duration,
}

impl StepInfo {
    /// A step with the default retry policy and a 60 s time limit.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            retry: RetryPolicy::default(),
            expected: None,
            timeout: Duration::from_secs(60),
        }
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Declares how long this step normally takes ("a port-in usually
    /// finishes within 2 h").
    pub fn expected_within(mut self, expected: Duration) -> Self {
        self.expected = Some(expected);
        self
    }

    /// Sets the step function's time limit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What a step decided.
#[derive(Debug)]
#[non_exhaustive]
pub enum Transition<S, O> {
    /// Checkpoint `S` and run its step straight away.
    Next(S),
    /// Checkpoint `state` and park until a signal or a time (see [`Wait`]).
    Wait {
        /// The state to wait in.
        state: S,
        /// What ends the wait.
        wait: Wait<S>,
    },
    /// The journey succeeded.
    Complete(O),
    /// The journey failed, for a reason a person can read; compensations run.
    Fail(String),
}

impl<S, O> Transition<S, O> {
    /// Continue with `state` now.
    pub fn next(state: S) -> Self {
        Self::Next(state)
    }

    /// Park in `state` until `wait` ends.
    pub fn wait(state: S, wait: Wait<S>) -> Self {
        Self::Wait { state, wait }
    }

    /// Sleep until `until` (a durable timer), then run `state`'s step.
    pub fn sleep_until(until: Timestamp, state: S) -> Self {
        Self::Wait {
            state,
            wait: Wait {
                signals: Vec::new(),
                until: Some(until),
                on_timeout: None,
            },
        }
    }

    /// Finish successfully.
    pub fn complete(output: O) -> Self {
        Self::Complete(output)
    }

    /// Finish as failed.
    pub fn fail(reason: impl Into<String>) -> Self {
        Self::Fail(reason.into())
    }
}

/// A wait: for one of some named signals, until a time, or both.
///
/// - A signal named here wakes the journey: its step runs again, in the state
///   it waits in, with [`StepCtx::signal`] set. A signal that arrived before
///   the wait began is delivered at once.
/// - When `until` passes first: with [`Wait::on_timeout`] the journey moves to
///   that state; without it the step runs again with
///   [`Wake::Timer`](crate::Wake::Timer) (a poll).
#[derive(Debug)]
pub struct Wait<S> {
    pub(crate) signals: Vec<String>,
    pub(crate) until: Option<Timestamp>,
    pub(crate) on_timeout: Option<S>,
}

impl<S> Wait<S> {
    /// Waits for the signal `name`.
    pub fn for_signal(name: &str) -> Self {
        Self {
            signals: vec![name.to_owned()],
            until: None,
            on_timeout: None,
        }
    }

    /// Waits for any of `names`.
    pub fn for_signals(names: &[&str]) -> Self {
        Self {
            signals: names.iter().map(|n| (*n).to_owned()).collect(),
            until: None,
            on_timeout: None,
        }
    }

    /// Also ends the wait with the signal `name`.
    pub fn or_signal(mut self, name: &str) -> Self {
        self.signals.push(name.to_owned());
        self
    }

    /// Ends the wait at `until`.
    pub fn until(mut self, until: Timestamp) -> Self {
        self.until = Some(until);
        self
    }

    /// The state to move to when `until` passes with no signal.
    pub fn on_timeout(mut self, state: S) -> Self {
        self.on_timeout = Some(state);
        self
    }
}

/// Why a step is running now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Wake {
    /// The journey's first step.
    Start,
    /// The previous step returned [`Transition::Next`].
    Next,
    /// A wait without `on_timeout` reached its time (a poll or a sleep).
    Timer,
    /// A wait with `on_timeout` timed out and moved to this state.
    TimedOut,
    /// A signal arrived; see [`StepCtx::signal`].
    Signal,
    /// The previous attempt failed and is being retried.
    Retry,
    /// The worker running this step before was lost (crash, lost lease).
    Recovered,
    /// An operator asked for it (retry, rewind, skip, patch).
    Repair,
}

/// A signal delivered to a step.
#[derive(Debug, Clone)]
pub struct ReceivedSignal {
    /// Its store id.
    pub id: i64,
    /// Its name.
    pub name: SignalName,
    /// Its payload (may hold secrets: never log it whole).
    pub payload: serde_json::Value,
    /// When the engine stored it.
    pub received_at: Timestamp,
    /// The sender's dedupe id, if any.
    pub dedupe_key: Option<String>,
}

impl ReceivedSignal {
    /// The payload as a typed value.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        serde_json::from_value(self.payload.clone()).map_err(|e| {
            StepError::terminal(format!(
                "signal {} carried a payload of the wrong shape: {e}",
                self.name
            ))
        })
    }
}
