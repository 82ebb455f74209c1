//! What a step can see and record.

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::{SharedClock, Timestamp};
use crate::error::StepError;
use crate::ids::{CorrelationKey, IdempotencyKey, JourneyId};
use crate::workflow::{ReceivedSignal, Wake, Workflow};

/// Limits on what one step may record, so a buggy step cannot bloat a row.
const MAX_CORRELATIONS_PER_STEP: usize = 16;
const MAX_COMPENSATIONS: usize = 64;
const MAX_NOTES_PER_STEP: usize = 8;
const MAX_NOTE_CHARS: usize = 500;

/// The facts about the running step, shared by steps and compensations.
#[derive(Debug, Clone)]
pub(crate) struct StepFacts {
    pub journey_id: JourneyId,
    pub step_name: String,
    pub step_seq: i64,
    pub attempt: u32,
    pub max_attempts: u32,
    pub recovered: bool,
    pub last_error_kind: Option<String>,
    pub wake: Wake,
    pub now: Timestamp,
}

/// What a step recorded for the engine to commit with its result.
#[derive(Debug, Default, Clone)]
pub(crate) struct StepEffects {
    pub correlations: Vec<CorrelationKey>,
    pub compensations: Vec<serde_json::Value>,
    pub notes: Vec<String>,
}

/// The context of one step execution.
///
/// Everything recorded here (correlation keys, compensations, notes) is
/// committed in the same transaction as the step's transition, and discarded
/// if the step fails.
#[derive(Debug)]
pub struct StepCtx<W: Workflow> {
    pub(crate) facts: StepFacts,
    pub(crate) clock: SharedClock,
    pub(crate) signal: Option<ReceivedSignal>,
    pub(crate) effects: StepEffects,
    pub(crate) pending_compensations: usize,
    pub(crate) _workflow: PhantomData<fn() -> W>,
}

impl<W: Workflow> StepCtx<W> {
    /// The journey's id.
    pub fn journey_id(&self) -> JourneyId {
        self.facts.journey_id
    }

    /// The step's name, as [`Workflow::step_info`] gave it.
    pub fn step_name(&self) -> &str {
        &self.facts.step_name
    }

    /// The attempt number of this step, from 1.
    pub fn attempt(&self) -> u32 {
        self.facts.attempt
    }

    /// The attempts the step's retry policy allows.
    pub fn max_attempts(&self) -> u32 {
        self.facts.max_attempts
    }

    /// Why the step runs now.
    pub fn wake(&self) -> &Wake {
        &self.facts.wake
    }

    /// Whether this step may already have sent its request before: a
    /// previous attempt failed (also when an operator retried it), or the
    /// worker running it was lost. An effectful step that sees `true` asks the
    /// provider for the status of its idempotency key before re-sending.
    pub fn may_have_run_before(&self) -> bool {
        self.facts.attempt > 1 || self.facts.recovered || self.facts.last_error_kind.is_some()
    }

    /// Whether the previous attempt ended with "outcome unknown".
    pub fn previous_outcome_unknown(&self) -> bool {
        self.facts.last_error_kind.as_deref() == Some("outcome_unknown")
    }

    /// A key for this step's outbound effect: the same for every attempt and
    /// after a crash, different for every later step (even one in the same
    /// state after a loop).
    pub fn idempotency_key(&self) -> IdempotencyKey {
        IdempotencyKey::derive(
            self.facts.journey_id,
            &format!("step:{}:{}", self.facts.step_seq, self.facts.step_name),
        )
    }

    /// A key that is the same for the whole journey for a given `label`
    /// (`"payment"`): use it when one effect spans several steps, e.g. a
    /// provider transaction id that a later status query uses.
    pub fn stable_key(&self, label: &str) -> IdempotencyKey {
        IdempotencyKey::derive(self.facts.journey_id, label)
    }

    /// The time this step started, from the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.facts.now
    }

    /// `now() + after`, for waits and sleeps.
    pub fn after(&self, after: Duration) -> Timestamp {
        self.facts.now + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX)
    }

    /// The engine's clock (for code that must read time again mid-step).
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The signal that woke this step, if one did.
    pub fn signal(&self) -> Option<&ReceivedSignal> {
        self.signal.as_ref()
    }

    /// The payload of the signal that woke this step if it is named `name`.
    pub fn signal_payload<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StepError> {
        match &self.signal {
            Some(signal) if signal.name.as_str() == name => signal.payload_as().map(Some),
            _ => Ok(None),
        }
    }

    /// Registers a correlation key: callbacks addressed to it reach this
    /// journey, including ones that arrived before the key was known.
    pub fn correlate(&mut self, key: CorrelationKey) -> Result<(), StepError> {
        if self.effects.correlations.len() >= MAX_CORRELATIONS_PER_STEP {
            return Err(StepError::terminal(format!(
                "a step may register at most {MAX_CORRELATIONS_PER_STEP} correlation keys"
            )));
        }
        self.effects.correlations.push(key);
        Ok(())
    }

    /// Pushes an undo action. Compensations run in reverse order if the
    /// journey later fails or is cancelled.
    pub fn push_compensation(&mut self, compensation: W::Compensation) -> Result<(), StepError> {
        if self.pending_compensations + self.effects.compensations.len() >= MAX_COMPENSATIONS {
            return Err(StepError::terminal(format!(
                "a journey may hold at most {MAX_COMPENSATIONS} compensations"
            )));
        }
        let value = serde_json::to_value(compensation)
            .map_err(|e| StepError::terminal(format!("compensation does not serialize: {e}")))?;
        self.effects.compensations.push(value);
        Ok(())
    }

    /// Adds a line for operators to this step's history entry (e.g.
    /// "reconciled: the payment had already been applied"). No secrets.
    pub fn note(&mut self, note: impl Into<String>) {
        if self.effects.notes.len() < MAX_NOTES_PER_STEP {
            let mut note: String = note.into();
            if note.len() > MAX_NOTE_CHARS {
                let mut cut = MAX_NOTE_CHARS;
                while !note.is_char_boundary(cut) {
                    cut -= 1;
                }
                note.truncate(cut);
            }
            self.effects.notes.push(note);
        }
    }
}

/// The context of one compensation run.
#[derive(Debug)]
pub struct CompensationCtx {
    pub(crate) facts: StepFacts,
    pub(crate) index: usize,
    pub(crate) clock: SharedClock,
}

impl CompensationCtx {
    /// The journey's id.
    pub fn journey_id(&self) -> JourneyId {
        self.facts.journey_id
    }

    /// The attempt number of this compensation, from 1.
    pub fn attempt(&self) -> u32 {
        self.facts.attempt
    }

    /// Whether this compensation may already have been sent (see
    /// [`StepCtx::may_have_run_before`]).
    pub fn may_have_run_before(&self) -> bool {
        self.facts.attempt > 1 || self.facts.recovered
    }

    /// A key for this compensation's effect, stable across retries.
    pub fn idempotency_key(&self) -> IdempotencyKey {
        IdempotencyKey::derive(
            self.facts.journey_id,
            &format!("compensation:{}", self.index),
        )
    }

    /// The journey-wide key for `label` (the same as [`StepCtx::stable_key`]).
    pub fn stable_key(&self, label: &str) -> IdempotencyKey {
        IdempotencyKey::derive(self.facts.journey_id, label)
    }

    /// The time this compensation started.
    pub fn now(&self) -> Timestamp {
        self.facts.now
    }

    /// The engine's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }
}

/// Serializes a value for the store, as a step error if it cannot be.
pub(crate) fn to_json<T: Serialize>(what: &str, value: &T) -> Result<serde_json::Value, StepError> {
    serde_json::to_value(value)
        .map_err(|e| StepError::terminal(format!("{what} does not serialize: {e}")))
}
