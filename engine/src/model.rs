//! The journey record and what a commit changes, independent of any database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{BusinessKey, CorrelationKey, JourneyId, SignalName};

/// Where a journey is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Has a step to run, now or at `wake_at` (a sleep or a retry backoff).
    Runnable,
    /// Parked until a signal or a timeout.
    Waiting,
    /// Failed or cancelled; running its compensations.
    Compensating,
    /// Stopped until a person acts: retries exhausted, a compensation that
    /// keeps failing, or a workflow error. See `attention`.
    NeedsAttention,
    /// Finished successfully.
    Completed,
    /// Finished unsuccessfully (compensations, if any, have run).
    Failed,
    /// Cancelled (compensations, if any, have run).
    Cancelled,
}

impl Status {
    /// Every status, in display order.
    pub const ALL: [Status; 7] = [
        Self::Runnable,
        Self::Waiting,
        Self::Compensating,
        Self::NeedsAttention,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Runnable => "runnable",
            Self::Waiting => "waiting",
            Self::Compensating => "compensating",
            Self::NeedsAttention => "needs_attention",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the journey has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status {s:?}; one of: {}",
                    Self::ALL.map(Status::as_str).join(", ")
                )
            })
    }
}

/// How a journey that is compensating will end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// It failed.
    Failed,
    /// It was cancelled.
    Cancelled,
}

impl Ending {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<Self> {
        match raw {
            "failed" => Some(Self::Failed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }

    pub(crate) fn status(self) -> Status {
        match self {
            Self::Failed => Status::Failed,
            Self::Cancelled => Status::Cancelled,
        }
    }
}

/// A cancellation asked for while a worker held the journey, applied by that
/// worker after its step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    /// Who asked.
    pub actor: String,
    /// Why.
    pub reason: String,
}

/// One journey as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyRecord {
    /// Its id.
    pub id: JourneyId,
    /// Its workflow's name.
    pub workflow: String,
    /// The workflow version its state is written in.
    pub version: u32,
    /// Its status.
    pub status: Status,
    /// Its current state (may contain secrets: redact before showing).
    pub state: Value,
    /// The key operators search it by.
    pub business_key: Option<BusinessKey>,
    /// The name of the step for `state`.
    pub step_name: String,
    /// Since when it has been at this step (ms).
    pub step_since_ms: i64,
    /// When it becomes "stuck: past the step's expected time" (ms).
    pub sla_at_ms: Option<i64>,
    /// Successful steps so far (keys per-step idempotency).
    pub step_seq: i64,
    /// The current step's attempt, from 1.
    pub attempt: u32,
    /// When a worker may claim it (ms): its due time when parked, its lease
    /// expiry while a worker holds it. `None`: nothing will wake it.
    pub ready_at_ms: Option<i64>,
    /// When it wants to run (ms): a sleep's end, a retry, a wait's timeout.
    pub wake_at_ms: Option<i64>,
    /// The signals it waits for.
    pub wait_signals: Vec<SignalName>,
    /// The state to move to if the wait times out.
    pub wait_on_timeout: Option<Value>,
    /// When the whole journey must have ended (ms).
    pub deadline_at_ms: Option<i64>,
    /// The worker holding it.
    pub lease_owner: Option<String>,
    /// Incremented on every claim; writes carry it and are refused when stale.
    pub lease_epoch: i64,
    /// Whether the current claim took it from a worker that was lost.
    pub recovered: bool,
    /// Claims since the last commit (a crash loop shows as a growing count).
    pub claims_since_commit: i32,
    /// The last error of the current step.
    pub last_error: Option<String>,
    /// Its kind (`retryable`, `outcome_unknown`, `terminal`).
    pub last_error_kind: Option<String>,
    /// Why it needs a person (set with `NeedsAttention`).
    pub attention: Option<String>,
    /// Compensations pushed so far, oldest first (run newest first).
    pub compensations: Vec<Value>,
    /// While compensating (or stopped during it): how it will end.
    pub ending: Option<Ending>,
    /// A cancellation waiting for the lease holder.
    pub cancel_request: Option<CancelRequest>,
    /// The output of a completed journey.
    pub output: Option<Value>,
    /// Why it failed or was cancelled.
    pub failure: Option<String>,
    /// The number of history entries written.
    pub history_seq: i64,
    /// Created (ms).
    pub created_at_ms: i64,
    /// Last written (ms).
    pub updated_at_ms: i64,
    /// Ended (ms).
    pub finished_at_ms: Option<i64>,
}

/// When a journey becomes claimable after a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// The worker keeps its lease and goes on (the store writes the lease
    /// expiry).
    KeepLease,
    /// Released; claimable from this time (ms).
    At(i64),
    /// Released; nothing wakes it (terminal, needs attention, or an endless
    /// wait that only a signal ends).
    Never,
}

/// The new values of a journey's mutable columns after a commit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JourneyUpdate {
    pub version: u32,
    pub status: Status,
    pub state: Value,
    pub step_name: String,
    pub step_since_ms: i64,
    pub sla_at_ms: Option<i64>,
    pub step_seq: i64,
    pub attempt: u32,
    pub ready: Ready,
    pub wake_at_ms: Option<i64>,
    pub wait_signals: Vec<SignalName>,
    pub wait_on_timeout: Option<Value>,
    pub deadline_at_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_kind: Option<String>,
    pub attention: Option<String>,
    pub compensations: Vec<Value>,
    pub ending: Option<Ending>,
    pub clear_cancel_request: bool,
    pub output: Option<Value>,
    pub failure: Option<String>,
    pub history_seq: i64,
    pub finished_at_ms: Option<i64>,
    pub business_key: Option<BusinessKey>,
}

impl JourneyUpdate {
    /// The update that changes nothing (a starting point for the core).
    pub fn unchanged(row: &JourneyRecord) -> Self {
        Self {
            version: row.version,
            status: row.status,
            state: row.state.clone(),
            step_name: row.step_name.clone(),
            step_since_ms: row.step_since_ms,
            sla_at_ms: row.sla_at_ms,
            step_seq: row.step_seq,
            attempt: row.attempt,
            ready: Ready::KeepLease,
            wake_at_ms: row.wake_at_ms,
            wait_signals: row.wait_signals.clone(),
            wait_on_timeout: row.wait_on_timeout.clone(),
            deadline_at_ms: row.deadline_at_ms,
            last_error: row.last_error.clone(),
            last_error_kind: row.last_error_kind.clone(),
            attention: row.attention.clone(),
            compensations: row.compensations.clone(),
            ending: row.ending,
            clear_cancel_request: false,
            output: row.output.clone(),
            failure: row.failure.clone(),
            history_seq: row.history_seq,
            finished_at_ms: row.finished_at_ms,
            business_key: row.business_key.clone(),
        }
    }

    /// Applies the update to an in-memory record (after a successful commit).
    pub fn apply_to(&self, row: &mut JourneyRecord, now_ms: i64, lease_expiry_ms: i64) {
        row.version = self.version;
        row.status = self.status;
        row.state = self.state.clone();
        row.step_name = self.step_name.clone();
        row.step_since_ms = self.step_since_ms;
        row.sla_at_ms = self.sla_at_ms;
        row.step_seq = self.step_seq;
        row.attempt = self.attempt;
        row.wake_at_ms = self.wake_at_ms;
        row.wait_signals = self.wait_signals.clone();
        row.wait_on_timeout = self.wait_on_timeout.clone();
        row.deadline_at_ms = self.deadline_at_ms;
        row.last_error = self.last_error.clone();
        row.last_error_kind = self.last_error_kind.clone();
        row.attention = self.attention.clone();
        row.compensations = self.compensations.clone();
        row.ending = self.ending;
        if self.clear_cancel_request {
            row.cancel_request = None;
        }
        row.output = self.output.clone();
        row.failure = self.failure.clone();
        row.history_seq = self.history_seq;
        row.finished_at_ms = self.finished_at_ms;
        row.business_key = self.business_key.clone();
        row.updated_at_ms = now_ms;
        row.recovered = false;
        row.claims_since_commit = 0;
        match self.ready {
            Ready::KeepLease => row.ready_at_ms = Some(lease_expiry_ms),
            Ready::At(at) => {
                row.ready_at_ms = Some(at);
                row.lease_owner = None;
            }
            Ready::Never => {
                row.ready_at_ms = None;
                row.lease_owner = None;
            }
        }
    }
}

/// What kind of thing happened, in a journey's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HistoryKind {
    /// The journey was created.
    JourneyStarted,
    /// A step ran and moved the journey on.
    StepCompleted,
    /// A step attempt failed (a retry may be scheduled).
    StepFailed,
    /// A sleep or poll timer fired.
    TimerFired,
    /// A wait timed out and moved to its timeout state.
    WaitTimedOut,
    /// A signal was delivered to a step.
    SignalReceived,
    /// The journey stopped until a person acts.
    NeedsAttention,
    /// A worker picked the journey up from a lost worker.
    Recovered,
    /// The journey's deadline passed.
    DeadlinePassed,
    /// Compensations began.
    CompensationStarted,
    /// A compensation succeeded.
    CompensationCompleted,
    /// A compensation attempt failed.
    CompensationFailed,
    /// The journey completed.
    JourneyCompleted,
    /// The journey failed.
    JourneyFailed,
    /// The journey was cancelled.
    JourneyCancelled,
    /// An operator repaired the journey.
    ManualAction,
}

impl HistoryKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JourneyStarted => "journey_started",
            Self::StepCompleted => "step_completed",
            Self::StepFailed => "step_failed",
            Self::TimerFired => "timer_fired",
            Self::WaitTimedOut => "wait_timed_out",
            Self::SignalReceived => "signal_received",
            Self::NeedsAttention => "needs_attention",
            Self::Recovered => "recovered",
            Self::DeadlinePassed => "deadline_passed",
            Self::CompensationStarted => "compensation_started",
            Self::CompensationCompleted => "compensation_completed",
            Self::CompensationFailed => "compensation_failed",
            Self::JourneyCompleted => "journey_completed",
            Self::JourneyFailed => "journey_failed",
            Self::JourneyCancelled => "journey_cancelled",
            Self::ManualAction => "manual_action",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        const ALL: [HistoryKind; 16] = [
            HistoryKind::JourneyStarted,
            HistoryKind::StepCompleted,
            HistoryKind::StepFailed,
            HistoryKind::TimerFired,
            HistoryKind::WaitTimedOut,
            HistoryKind::SignalReceived,
            HistoryKind::NeedsAttention,
            HistoryKind::Recovered,
            HistoryKind::DeadlinePassed,
            HistoryKind::CompensationStarted,
            HistoryKind::CompensationCompleted,
            HistoryKind::CompensationFailed,
            HistoryKind::JourneyCompleted,
            HistoryKind::JourneyFailed,
            HistoryKind::JourneyCancelled,
            HistoryKind::ManualAction,
        ];
        ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// One entry of a journey's append-only history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Its position in the journey's history, from 1.
    pub seq: i64,
    /// When it happened (ms).
    pub at_ms: i64,
    /// What happened.
    pub kind: HistoryKind,
    /// The step it concerns.
    pub step: Option<String>,
    /// The attempt it concerns.
    pub attempt: Option<u32>,
    /// How long the step or compensation ran (ms).
    pub duration_ms: Option<i64>,
    /// Details for people (no secrets).
    pub detail: Value,
    /// The journey's state after this entry, where it changed (used by
    /// `rewind`; may contain secrets, redact before showing).
    pub state: Option<Value>,
}

/// A signal stored in the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalRecord {
    /// Its id.
    pub id: i64,
    /// The journey it was matched to (`None`: unmatched).
    pub journey_id: Option<JourneyId>,
    /// The journey id the sender addressed, if it named one.
    pub addressed_to: Option<String>,
    /// The correlation key the sender addressed, if any.
    pub correlation_key: Option<String>,
    /// Its name.
    pub name: SignalName,
    /// Its payload (may hold secrets).
    pub payload: Value,
    /// The sender's dedupe id.
    pub dedupe_key: Option<String>,
    /// Where it came from (`ingress:reach`, `cli:alice`).
    pub source: String,
    /// When it was stored (ms).
    pub received_at_ms: i64,
    /// When a step consumed it (ms).
    pub consumed_at_ms: Option<i64>,
}

/// Everything one commit writes for one journey: the new row values, the
/// history, the consumed signal, the new correlation keys. Only the engine
/// builds commits (they are fenced by the lease it holds).
#[derive(Debug, Clone)]
pub struct Commit {
    pub(crate) id: JourneyId,
    pub(crate) epoch: i64,
    pub(crate) update: JourneyUpdate,
    pub(crate) history: Vec<HistoryEntry>,
    pub(crate) consumed_signal: Option<i64>,
    pub(crate) correlations: Vec<CorrelationKey>,
    pub(crate) now_ms: i64,
}

/// The outcome of one journey's commit within a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Written.
    Committed {
        /// A cancellation is waiting for this worker.
        cancel_requested: bool,
        /// The journey parked, but a signal it waits for was already in its
        /// inbox, so it is due again at once.
        woke: bool,
    },
    /// Refused: another worker took the journey (stale epoch).
    LeaseLost,
}
