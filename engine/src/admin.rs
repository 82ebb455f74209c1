//! What operators use: find a journey, see exactly where and why it is
//! stuck, and repair it safely.
//!
//! Every view here is redacted (secrets removed, MSISDNs masked). Every
//! repair needs a reason, runs under its own lease (so it cannot race a
//! worker: a journey a worker holds is refused with [`EngineError::Busy`]),
//! and is recorded in the journey's history with who, when, why and, for
//! state changes, a before/after diff.

use serde::Serialize;
use serde_json::{Value, json};

use crate::clock::{duration_ms, from_ms, to_ms};
use crate::core::{Decision, Pending, compensation_name};
use crate::engine::{Engine, manual};
use crate::error::EngineError;
use crate::ids::{JourneyId, SignalName};
use crate::model::{HistoryEntry, HistoryKind, JourneyRecord, JourneyUpdate, Ready, Status};
use crate::sensitive::{redact, redact_payload};
use crate::store::{DeliveryOutcome, ListFilter, NewSignal, SignalTarget};

/// The most history entries `show` returns.
pub const MAX_HISTORY_SHOWN: u32 = 500;

/// One line of `journeys list`.
#[derive(Debug, Clone, Serialize)]
pub struct JourneySummary {
    /// The journey.
    pub id: JourneyId,
    /// Its workflow and version.
    pub workflow: String,
    /// Its version.
    pub version: u32,
    /// Its status.
    pub status: Status,
    /// Its business key, masked if it is an MSISDN.
    pub business_key: Option<String>,
    /// The step it is at.
    pub step: String,
    /// Since when (RFC 3339).
    pub step_since: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// A short note: what it waits for, its error, why it needs attention.
    pub note: Option<String>,
}

/// What a journey waits for.
#[derive(Debug, Clone, Serialize)]
pub struct WaitingView {
    /// Signal names that end the wait.
    pub signals: Vec<String>,
    /// Since when it has been at this step.
    pub since: String,
    /// When the wait times out or the timer fires.
    pub until: Option<String>,
    /// The step it moves to on timeout.
    pub on_timeout: Option<String>,
    /// The correlation keys callbacks can find it by.
    pub correlation_keys: Vec<String>,
}

/// The current step's retry state.
#[derive(Debug, Clone, Serialize)]
pub struct RetryView {
    /// Attempt n…
    pub attempt: u32,
    /// …of m.
    pub max_attempts: Option<u32>,
    /// When the next attempt runs.
    pub next_attempt_at: Option<String>,
    /// The last error.
    pub last_error: Option<String>,
    /// Its kind (`retryable`, `outcome_unknown`).
    pub last_error_kind: Option<String>,
}

/// One history entry, redacted.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryView {
    /// Its sequence number (for `rewind --to`).
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// What happened.
    pub kind: HistoryKind,
    /// The step.
    pub step: Option<String>,
    /// The attempt.
    pub attempt: Option<u32>,
    /// How long it took (ms).
    pub duration_ms: Option<i64>,
    /// Details, redacted.
    pub detail: Value,
    /// Whether the state after this entry was recorded (a rewind target).
    pub has_state: bool,
}

/// A signal in the journey's inbox, redacted.
#[derive(Debug, Clone, Serialize)]
pub struct SignalView {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Where it came from.
    pub source: String,
    /// When it was stored.
    pub received_at: String,
    /// When a step consumed it (`None`: still pending).
    pub consumed_at: Option<String>,
    /// Its payload, redacted.
    pub payload: Value,
}

/// Everything `journeys show` displays.
#[derive(Debug, Clone, Serialize)]
pub struct JourneyView {
    /// The summary line.
    #[serde(flatten)]
    pub summary: JourneySummary,
    /// Its state, redacted.
    pub state: Value,
    /// What it waits for, if it waits.
    pub waiting: Option<WaitingView>,
    /// The retry state, if the current step has failed.
    pub retry: Option<RetryView>,
    /// The journey's deadline.
    pub deadline: Option<String>,
    /// When it becomes overdue at this step.
    pub overdue_at: Option<String>,
    /// Whether it is overdue now.
    pub overdue: bool,
    /// The worker holding it and until when.
    pub lease: Option<(String, String)>,
    /// Compensations that would run (newest first).
    pub compensations_pending: Vec<String>,
    /// Why it needs attention.
    pub attention: Option<String>,
    /// Why it failed or was cancelled.
    pub failure: Option<String>,
    /// Its output, redacted.
    pub output: Option<Value>,
    /// Whether an operator may skip the current step.
    pub skippable: bool,
    /// Its timeline.
    pub history: Vec<HistoryView>,
    /// Its recent signals.
    pub signals: Vec<SignalView>,
}

/// Why a journey (or a callback) needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StuckKind {
    /// A step failed on every attempt.
    RetriesExhausted,
    /// A compensation keeps failing.
    CompensationFailing,
    /// The workflow cannot run this state (a bug, or a state to patch).
    WorkflowError,
    /// Workers keep dying while running it.
    CrashLoop,
    /// It has been at its step longer than the step declares normal.
    Overdue,
    /// Its deadline passed and it has not ended.
    DeadlinePassed,
    /// A callback matched no journey.
    UnmatchedCallback,
}

/// One line of `journeys stuck`.
#[derive(Debug, Clone, Serialize)]
pub struct StuckItem {
    /// Why.
    pub kind: StuckKind,
    /// The journey (none for an unmatched callback).
    pub journey: Option<JourneyId>,
    /// Its workflow.
    pub workflow: Option<String>,
    /// Its business key, masked.
    pub business_key: Option<String>,
    /// Its step.
    pub step: Option<String>,
    /// The signal id (for an unmatched callback).
    pub signal_id: Option<i64>,
    /// Since when.
    pub since: String,
    /// The reason, in one line.
    pub reason: String,
}

/// What a repair did.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    /// The journey.
    pub journey: JourneyId,
    /// The repair.
    pub action: String,
    /// The state before and after, redacted, where it changed.
    pub diff: Vec<Change>,
    /// The journey's status afterwards.
    pub status: Status,
    /// Anything else worth saying.
    pub note: Option<String>,
}

/// One changed value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// A JSON pointer (`/Reserve/msisdn`).
    pub path: String,
    /// Before (`None`: added).
    pub before: Option<Value>,
    /// After (`None`: removed).
    pub after: Option<Value>,
}

/// The differences between two JSON values, as pointer paths. Values are
/// compared raw (a changed secret or phone number shows as changed) and shown
/// redacted.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    fn shown(path: &str, key: &str, v: &Value) -> Value {
        if path.contains("/$sensitive") {
            return Value::String(crate::sensitive::REDACTED.to_owned());
        }
        let wrapped = redact_payload(&json!({ key: v }));
        wrapped.get(key).cloned().unwrap_or(Value::Null)
    }
    fn walk(path: &str, key: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
        if out.len() >= 200 {
            return;
        }
        let child = |k: &str| format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for (k, va) in x {
                    match y.get(k) {
                        Some(vb) => walk(&child(k), k, va, vb, out),
                        None => out.push(Change {
                            path: child(k),
                            before: Some(shown(&child(k), k, va)),
                            after: None,
                        }),
                    }
                }
                for (k, vb) in y {
                    if !x.contains_key(k) {
                        out.push(Change {
                            path: child(k),
                            before: None,
                            after: Some(shown(&child(k), k, vb)),
                        });
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{path}/{i}"), key, va, vb, out);
                }
            }
            _ if a == b => {}
            _ => {
                let p = if path.is_empty() {
                    "/".to_owned()
                } else {
                    path.to_owned()
                };
                out.push(Change {
                    before: Some(shown(&p, key, a)),
                    after: Some(shown(&p, key, b)),
                    path: p,
                });
            }
        }
    }
    let mut out = Vec::new();
    walk("", "", before, after, &mut out);
    out
}

fn rfc(ms: i64) -> String {
    from_ms(ms).to_rfc3339()
}

fn summary(row: &JourneyRecord) -> JourneySummary {
    let note = match row.status {
        Status::NeedsAttention => row.attention.clone(),
        Status::Waiting if !row.wait_signals.is_empty() => Some(format!(
            "waiting for {}{}",
            row.wait_signals
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
            row.wake_at_ms
                .map(|w| format!(" until {}", rfc(w)))
                .unwrap_or_default()
        )),
        Status::Waiting => row.wake_at_ms.map(|w| format!("sleeping until {}", rfc(w))),
        Status::Runnable if row.last_error.is_some() => Some(format!(
            "retry {} after: {}",
            row.attempt,
            row.last_error.clone().unwrap_or_default()
        )),
        Status::Failed | Status::Cancelled => row.failure.clone(),
        _ => None,
    };
    JourneySummary {
        id: row.id,
        workflow: row.workflow.clone(),
        version: row.version,
        status: row.status,
        business_key: row.business_key.as_ref().map(|k| k.display_value()),
        step: row.step_name.clone(),
        step_since: rfc(row.step_since_ms),
        created_at: rfc(row.created_at_ms),
        updated_at: rfc(row.updated_at_ms),
        note,
    }
}

fn history_view(h: &HistoryEntry) -> HistoryView {
    HistoryView {
        seq: h.seq,
        at: rfc(h.at_ms),
        kind: h.kind,
        step: h.step.clone(),
        attempt: h.attempt,
        duration_ms: h.duration_ms,
        detail: redact_payload(&h.detail),
        has_state: h.state.is_some(),
    }
}

fn stuck_kind(attention: &str) -> StuckKind {
    if attention.starts_with("retries exhausted") {
        StuckKind::RetriesExhausted
    } else if attention.starts_with("compensation") {
        StuckKind::CompensationFailing
    } else if attention.contains("crash loop") {
        StuckKind::CrashLoop
    } else {
        StuckKind::WorkflowError
    }
}

fn human(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

impl Engine {
    /// `journeys list`: newest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<JourneySummary>, EngineError> {
        let rows = self.store().list(filter).await?;
        Ok(rows.iter().map(summary).collect())
    }

    /// `journeys show`: the journey, what it waits for, its retries, its
    /// timeline. Redacted.
    pub async fn show(&self, id: JourneyId) -> Result<JourneyView, EngineError> {
        let row = self.journey(id).await?;
        let history = self.store().history(id, 0, MAX_HISTORY_SHOWN).await?;
        let signals = self.store().signals_for(id, 50).await?;
        let correlations = self.store().correlations(id).await?;
        let now = to_ms(self.clock().now());
        let workflow = self.registry().for_stored(&row.workflow, row.version).ok();
        let info = workflow.as_ref().and_then(|w| w.step_info(&row.state).ok());
        let waiting = (row.status == Status::Waiting).then(|| WaitingView {
            signals: row
                .wait_signals
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            since: rfc(row.step_since_ms),
            until: row.wake_at_ms.map(rfc),
            on_timeout: row.wait_on_timeout.as_ref().and_then(|s| {
                workflow
                    .as_ref()
                    .and_then(|w| w.step_info(s).ok())
                    .map(|i| i.name.to_owned())
            }),
            correlation_keys: correlations.clone(),
        });
        let retry = (row.last_error.is_some() || row.attempt > 1).then(|| RetryView {
            attempt: row.attempt,
            max_attempts: info.as_ref().map(|i| i.retry.max_attempts),
            next_attempt_at: (row.status == Status::Runnable)
                .then_some(row.wake_at_ms)
                .flatten()
                .map(rfc),
            last_error: row.last_error.clone(),
            last_error_kind: row.last_error_kind.clone(),
        });
        let skippable = !row.status.is_terminal()
            && workflow
                .as_ref()
                .and_then(|w| w.skip(&row.state).ok().flatten())
                .is_some();
        let lease = row
            .lease_owner
            .clone()
            .filter(|_| row.ready_at_ms.is_some_and(|r| r > now))
            .map(|owner| (owner, rfc(row.ready_at_ms.unwrap_or_default())));
        Ok(JourneyView {
            summary: summary(&row),
            state: redact(&row.state),
            waiting,
            retry,
            deadline: row.deadline_at_ms.map(rfc),
            overdue_at: row.sla_at_ms.map(rfc),
            overdue: row.sla_at_ms.is_some_and(|s| s <= now) && !row.status.is_terminal(),
            lease,
            compensations_pending: row
                .compensations
                .iter()
                .rev()
                .map(compensation_name)
                .collect(),
            attention: row.attention.clone(),
            failure: row.failure.clone(),
            output: row.output.as_ref().map(redact),
            skippable,
            history: history.iter().map(history_view).collect(),
            signals: signals
                .iter()
                .map(|s| SignalView {
                    id: s.id,
                    name: s.name.as_str().to_owned(),
                    source: s.source.clone(),
                    received_at: rfc(s.received_at_ms),
                    consumed_at: s.consumed_at_ms.map(rfc),
                    payload: redact_payload(&s.payload),
                })
                .collect(),
        })
    }

    /// `journeys stuck`: journeys (and callbacks) that need a person, each
    /// with a one-line reason, oldest first.
    pub async fn stuck(&self, limit: u32) -> Result<Vec<StuckItem>, EngineError> {
        let now = to_ms(self.clock().now());
        let report = self.store().stuck(now, limit).await?;
        let mut items = Vec::new();
        for row in &report.journeys {
            let base = |kind, since: i64, reason: String| StuckItem {
                kind,
                journey: Some(row.id),
                workflow: Some(row.workflow.clone()),
                business_key: row.business_key.as_ref().map(|k| k.display_value()),
                step: Some(row.step_name.clone()),
                signal_id: None,
                since: rfc(since),
                reason,
            };
            if row.status == Status::NeedsAttention {
                let attention = row
                    .attention
                    .clone()
                    .unwrap_or_else(|| "needs attention".into());
                items.push(base(stuck_kind(&attention), row.updated_at_ms, attention));
            } else if let Some(deadline) = row.deadline_at_ms.filter(|d| *d <= now) {
                items.push(base(
                    StuckKind::DeadlinePassed,
                    deadline,
                    format!(
                        "deadline passed {} ago at step {}",
                        human(now - deadline),
                        row.step_name
                    ),
                ));
            } else if let Some(sla) = row.sla_at_ms.filter(|s| *s <= now) {
                let expected = sla - row.step_since_ms;
                let what = if row.wait_signals.is_empty() {
                    match (row.status, row.wake_at_ms) {
                        (Status::Runnable, Some(w)) if row.last_error.is_some() => format!(
                            "retry {} at {} after: {}",
                            row.attempt,
                            rfc(w),
                            row.last_error.clone().unwrap_or_default()
                        ),
                        (_, Some(w)) => format!("next poll at {}", rfc(w)),
                        _ => "running".to_owned(),
                    }
                } else {
                    format!(
                        "waiting for {}",
                        row.wait_signals
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )
                };
                items.push(base(
                    StuckKind::Overdue,
                    row.step_since_ms,
                    format!(
                        "at step {} for {} (usually done within {}); {what}",
                        row.step_name,
                        human(now - row.step_since_ms),
                        human(expected)
                    ),
                ));
            }
        }
        for s in &report.unmatched_signals {
            let target = s
                .correlation_key
                .clone()
                .or_else(|| s.addressed_to.clone().map(|a| format!("journey {a}")))
                .unwrap_or_else(|| "no key".into());
            items.push(StuckItem {
                kind: StuckKind::UnmatchedCallback,
                journey: None,
                workflow: None,
                business_key: None,
                step: None,
                signal_id: Some(s.id),
                since: rfc(s.received_at_ms),
                reason: format!(
                    "callback {} from {} matched no journey ({target}); dismiss it or signal the right journey",
                    s.name, s.source
                ),
            });
        }
        items.sort_by(|a, b| a.since.cmp(&b.since));
        Ok(items)
    }

    /// `retry ID`: runs the current step (or compensation) now, with a fresh
    /// retry budget. The step still knows it may have run before.
    pub async fn retry_now(
        &self,
        id: JourneyId,
        actor: &str,
        reason: &str,
    ) -> Result<RepairReport, EngineError> {
        let mut status = Status::Runnable;
        self.repair(id, |row, now| {
            if row.status.is_terminal() {
                return Err(EngineError::Refused(format!(
                    "journey {id} has ended ({}); use rewind to replay it",
                    row.status
                )));
            }
            let mut update = JourneyUpdate::unchanged(row);
            update.status = if row.ending.is_some() {
                Status::Compensating
            } else {
                Status::Runnable
            };
            update.attempt = 1;
            update.attention = None;
            update.wake_at_ms = None;
            update.ready = Ready::At(now);
            status = update.status;
            Ok(decision(
                row,
                update,
                now,
                manual(row, "retry", actor, reason, None),
            ))
        })
        .await?;
        Ok(RepairReport {
            journey: id,
            action: "retry".into(),
            diff: vec![],
            status,
            note: None,
        })
    }

    /// `signal ID NAME --payload JSON`: records the action, then delivers the
    /// signal as if it came from the provider or the customer.
    pub async fn signal_as_operator(
        &self,
        id: JourneyId,
        name: &str,
        payload: Value,
        actor: &str,
        reason: &str,
    ) -> Result<RepairReport, EngineError> {
        let name = SignalName::new(name).map_err(EngineError::Refused)?;
        let mut status = Status::Runnable;
        let signal_name = name.as_str().to_owned();
        self.repair(id, |row, now| {
            if row.status.is_terminal() {
                return Err(EngineError::Refused(format!(
                    "journey {id} has ended ({})",
                    row.status
                )));
            }
            status = row.status;
            let mut update = JourneyUpdate::unchanged(row);
            update.ready = match row.status {
                Status::NeedsAttention => Ready::Never,
                _ => Ready::At(now),
            };
            let extra = json!({ "signal": signal_name, "payload": redact_payload(&payload) });
            Ok(decision(
                row,
                update,
                now,
                manual(row, "signal", actor, reason, Some(extra)),
            ))
        })
        .await?;
        let delivery = self
            .signal(NewSignal {
                target: SignalTarget::Journey(id),
                name,
                payload,
                dedupe_key: None,
                source: format!("operator:{actor}"),
            })
            .await?;
        let note = match delivery.outcome {
            _ if status == Status::NeedsAttention => {
                "stored in the journey's inbox; the journey needs attention: retry it to deliver"
                    .to_owned()
            }
            DeliveryOutcome::Delivered { woke: true, .. } => {
                "delivered; the journey woke".to_owned()
            }
            DeliveryOutcome::Delivered { .. } => {
                "stored in the journey's inbox; it is delivered when the journey waits for it"
                    .to_owned()
            }
            other => format!("{other:?}"),
        };
        Ok(RepairReport {
            journey: id,
            action: "signal".into(),
            diff: vec![],
            status,
            note: Some(note),
        })
    }

    /// `skip ID`: treats the current step as done and moves to the state the
    /// workflow declares for skipping it. Refused where it declares none.
    pub async fn skip(
        &self,
        id: JourneyId,
        actor: &str,
        reason: &str,
    ) -> Result<RepairReport, EngineError> {
        let mut report = None;
        self.repair(id, |row, now| {
            if row.status.is_terminal()
                || row.status == Status::Compensating
                || row.ending.is_some()
            {
                return Err(EngineError::Refused(format!(
                    "journey {id} is {}; only a running step can be skipped",
                    row.status
                )));
            }
            let workflow = self.registry().for_stored(&row.workflow, row.version)?;
            let next = workflow
                .skip(&row.state)
                .map_err(EngineError::Refused)?
                .ok_or_else(|| EngineError::Refused(format!(
                    "step {} of {} cannot be skipped: the workflow does not declare it skippable",
                    row.step_name, row.workflow
                )))?;
            let info = workflow.step_info(&next).map_err(EngineError::Refused)?;
            let changes = diff(&row.state, &next);
            let extra =
                json!({ "from_step": row.step_name, "to_step": info.name, "diff": changes });
            let update = moved_to(row, next, info.name, info.expected.map(duration_ms), now);
            report = Some(RepairReport {
                journey: id,
                action: "skip".into(),
                diff: changes,
                status: Status::Runnable,
                note: Some(format!("now at step {}", info.name)),
            });
            Ok(decision(
                row,
                update,
                now,
                manual(row, "skip", actor, reason, Some(extra)),
            ))
        })
        .await?;
        report.ok_or_else(|| EngineError::Refused("skip produced no report".into()))
    }

    /// `rewind ID --to SEQ`: resumes from the state recorded at history entry
    /// `seq` (how a journey is replayed after a provider fixed its side).
    /// Steps re-run from there get new idempotency keys; compensations that
    /// already ran are not undone.
    pub async fn rewind(
        &self,
        id: JourneyId,
        seq: i64,
        actor: &str,
        reason: &str,
    ) -> Result<RepairReport, EngineError> {
        let entry = self.store().history_entry(id, seq).await?.ok_or_else(|| {
            EngineError::Refused(format!("journey {id} has no history entry {seq}"))
        })?;
        let target = entry.state.ok_or_else(|| {
            EngineError::Refused(format!(
                "history entry {seq} ({}) recorded no state; rewind to a step_completed, journey_started or manual_action entry",
                entry.kind.as_str()
            ))
        })?;
        let mut report = None;
        self.repair(id, |row, now| {
            if row.status == Status::Completed {
                return Err(EngineError::Refused(format!("journey {id} completed; start a new journey instead of replaying it")));
            }
            let workflow = self.registry().for_stored(&row.workflow, row.version)?;
            workflow.check_state(&target).map_err(|e| EngineError::Refused(format!("the state at entry {seq} no longer fits the workflow: {e}")))?;
            let info = workflow.step_info(&target).map_err(EngineError::Refused)?;
            let changes = diff(&row.state, &target);
            let extra = json!({ "to_seq": seq, "from_step": row.step_name, "to_step": info.name, "diff": changes });
            let mut update = moved_to(row, target.clone(), info.name, info.expected.map(duration_ms), now);
            if row.status.is_terminal() || row.ending.is_some() {
                // Replaying an ended journey: it runs again from here.
                update.compensations.clear();
            }
            report = Some(RepairReport { journey: id, action: "rewind".into(), diff: changes, status: Status::Runnable, note: Some(format!("resumes at step {}", info.name)) });
            Ok(decision(row, update, now, manual(row, "rewind", actor, reason, Some(extra))))
        })
        .await?;
        report.ok_or_else(|| EngineError::Refused("rewind produced no report".into()))
    }

    /// `patch-state ID --file F`: replaces the state; it must deserialize into
    /// the workflow's `State`, or it is refused.
    pub async fn patch_state(
        &self,
        id: JourneyId,
        state: Value,
        actor: &str,
        reason: &str,
    ) -> Result<RepairReport, EngineError> {
        let mut report = None;
        self.repair(id, |row, now| {
            if row.status.is_terminal() {
                return Err(EngineError::Refused(format!(
                    "journey {id} has ended ({}); rewind it first",
                    row.status
                )));
            }
            let workflow = self.registry().for_stored(&row.workflow, row.version)?;
            workflow.check_state(&state).map_err(|e| {
                EngineError::Refused(format!(
                    "refused: the new state does not fit {}: {e}",
                    row.workflow
                ))
            })?;
            let info = workflow.step_info(&state).map_err(EngineError::Refused)?;
            let changes = diff(&row.state, &state);
            let extra = json!({ "diff": changes });
            let mut update = moved_to(
                row,
                state.clone(),
                info.name,
                info.expected.map(duration_ms),
                now,
            );
            // A patch keeps the step's idempotency key if the step is the same.
            if info.name == row.step_name {
                update.step_seq = row.step_seq;
            }
            report = Some(RepairReport {
                journey: id,
                action: "patch-state".into(),
                diff: changes,
                status: Status::Runnable,
                note: Some(format!("now at step {}", info.name)),
            });
            Ok(decision(
                row,
                update,
                now,
                manual(row, "patch-state", actor, reason, Some(extra)),
            ))
        })
        .await?;
        report.ok_or_else(|| EngineError::Refused("patch produced no report".into()))
    }

    /// Marks an unmatched callback as handled.
    pub async fn dismiss_signal(&self, signal_id: i64) -> Result<bool, EngineError> {
        Ok(self
            .store()
            .dismiss(signal_id, to_ms(self.clock().now()))
            .await?)
    }
}

/// The row after an operator moved the journey to `state` (runnable now,
/// a fresh step: new idempotency key, no wait, no error).
fn moved_to(
    row: &JourneyRecord,
    state: Value,
    step: &str,
    expected_ms: Option<i64>,
    now: i64,
) -> JourneyUpdate {
    let mut update = JourneyUpdate::unchanged(row);
    update.state = state;
    update.status = Status::Runnable;
    if update.step_name != step {
        update.step_name = step.to_owned();
        update.step_since_ms = now;
    }
    update.sla_at_ms = expected_ms.map(|e| update.step_since_ms + e);
    update.step_seq = row.step_seq + 1;
    update.attempt = 1;
    update.wake_at_ms = None;
    update.wait_signals.clear();
    update.wait_on_timeout = None;
    update.last_error = None;
    update.last_error_kind = None;
    update.attention = None;
    update.ending = None;
    update.failure = None;
    update.output = None;
    update.finished_at_ms = None;
    update.ready = Ready::At(now);
    update
}

fn decision(row: &JourneyRecord, mut update: JourneyUpdate, now: i64, entry: Pending) -> Decision {
    update.history_seq = row.history_seq + 1;
    let state_changed = update.state != row.state;
    Decision {
        history: vec![HistoryEntry {
            seq: update.history_seq,
            at_ms: now,
            kind: entry.kind,
            step: entry.step,
            attempt: None,
            duration_ms: None,
            detail: entry.detail,
            state: state_changed.then(|| update.state.clone()),
        }],
        update,
        consumed_signal: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_name_the_changed_paths_and_hide_secrets() {
        let before = json!({"Reserve": {"msisdn": "1", "pin": {"$sensitive": "1234"}, "n": 1}});
        let after =
            json!({"Reserve": {"msisdn": "2", "pin": {"$sensitive": "9999"}, "extra": true}});
        let changes = diff(&before, &after);
        let paths: Vec<_> = changes.iter().map(|c| c.path.as_str()).collect();
        // A changed secret shows as changed, never its value.
        assert_eq!(
            paths,
            vec![
                "/Reserve/msisdn",
                "/Reserve/n",
                "/Reserve/pin/$sensitive",
                "/Reserve/extra"
            ]
        );
        let text = serde_json::to_string(&changes).unwrap();
        assert!(!text.contains("1234") && !text.contains("9999"), "{text}");
        assert_eq!(diff(&json!("A"), &json!("B"))[0].path, "/");
    }
}
