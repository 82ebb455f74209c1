//! The transition core: pure functions from a journey and an event to its
//! new row values and history. No database, no network, no clock: the worker
//! shell feeds in the time, the step's result and a random number for jitter,
//! and writes what comes out. Unit-tested with plain values below.

use serde_json::{Value, json};

use crate::clock::{duration_ms, from_ms};
use crate::context::StepEffects;
use crate::error::StepError;
use crate::model::{
    Ending, HistoryEntry, HistoryKind, JourneyRecord, JourneyUpdate, Ready, SignalRecord, Status,
};
use crate::registry::ErasedTransition;
use crate::retry::RetryPolicy;
use crate::workflow::{StepInfo, Wake};

/// After this many claims without a commit the journey is taken to be
/// crashing its workers and is stopped for a person.
pub(crate) const MAX_CLAIMS_WITHOUT_COMMIT: i32 = 5;

/// What a worker should do with a journey it holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Plan {
    /// Run the step for `state`.
    RunStep(StepRun),
    /// Run the newest pending compensation.
    RunCompensation { index: usize, compensation: Value },
    /// Not due until `wake_at_ms` (claimed early, or woken without cause).
    NotYet { wake_at_ms: i64 },
    /// Write this without running anything (cancel, deadline, end of
    /// compensation, crash loop, nothing to do).
    Apply(Decision),
}

/// A step to run and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepRun {
    pub state: Value,
    pub wake: Wake,
    pub signal: Option<SignalRecord>,
    /// Entries written only if the step succeeds (timer fired, signal
    /// received).
    pub on_success: Vec<Pending>,
    /// Entries written whatever the step's outcome (the wait timed out, so the
    /// state changed before the step ran; the journey was recovered).
    pub always: Vec<Pending>,
}

/// A history entry before it has a sequence number.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    pub kind: HistoryKind,
    pub step: Option<String>,
    pub detail: Value,
}

/// Row values and history to commit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    pub update: JourneyUpdate,
    pub history: Vec<HistoryEntry>,
    pub consumed_signal: Option<i64>,
}

impl Decision {
    /// Whether the worker keeps the journey and goes on after committing.
    #[cfg(test)]
    pub fn continues(&self) -> bool {
        self.update.ready == Ready::KeepLease
    }
}

/// Decides what to do with a journey just claimed (or just committed and
/// still held). `pending` are its unconsumed signals, oldest first.
pub(crate) fn plan(row: &JourneyRecord, pending: &[SignalRecord], now_ms: i64) -> Plan {
    let step = Some(row.step_name.clone());
    if row.status.is_terminal() || row.status == Status::NeedsAttention {
        return Plan::Apply(release(row, Ready::Never));
    }
    if row.claims_since_commit > MAX_CLAIMS_WITHOUT_COMMIT {
        let reason = format!(
            "the worker running step {} was lost {} times in a row without finishing it (crash loop?)",
            row.step_name, row.claims_since_commit
        );
        return Plan::Apply(needs_attention(
            row,
            JourneyUpdate::unchanged(row),
            reason,
            now_ms,
            vec![],
        ));
    }
    if let Some(cancel) = &row.cancel_request
        && row.status != Status::Compensating
    {
        let mut update = JourneyUpdate::unchanged(row);
        update.clear_cancel_request = true;
        let reason = format!("cancelled by {}: {}", cancel.actor, cancel.reason);
        return Plan::Apply(begin_ending(
            row,
            update,
            reason,
            Ending::Cancelled,
            now_ms,
            vec![],
        ));
    }
    if let Some(deadline) = row.deadline_at_ms
        && now_ms >= deadline
        && row.status != Status::Compensating
    {
        let reason = format!(
            "deadline passed: the journey had to end by {} and was still at step {}",
            from_ms(deadline).to_rfc3339(),
            row.step_name
        );
        let noted = vec![Pending {
            kind: HistoryKind::DeadlinePassed,
            step,
            detail: json!({ "deadline": from_ms(deadline).to_rfc3339() }),
        }];
        return Plan::Apply(begin_ending(
            row,
            JourneyUpdate::unchanged(row),
            reason,
            Ending::Failed,
            now_ms,
            noted,
        ));
    }
    let always = if row.recovered {
        vec![Pending {
            kind: HistoryKind::Recovered,
            step: step.clone(),
            detail: json!({ "note": "resumed after the worker running it was lost" }),
        }]
    } else {
        vec![]
    };

    match row.status {
        Status::Compensating => {
            if let Some(wake) = row.wake_at_ms.filter(|w| *w > now_ms) {
                return Plan::NotYet { wake_at_ms: wake };
            }
            match row.compensations.last() {
                Some(top) => Plan::RunCompensation {
                    index: row.compensations.len() - 1,
                    compensation: top.clone(),
                },
                None => Plan::Apply(finish_ending(
                    row,
                    JourneyUpdate::unchanged(row),
                    now_ms,
                    vec![],
                )),
            }
        }
        Status::Runnable => {
            if let Some(wake) = row.wake_at_ms.filter(|w| *w > now_ms) {
                return Plan::NotYet {
                    wake_at_ms: due(wake, row.deadline_at_ms),
                };
            }
            // A step that failed while handling a signal gets it again.
            let signal = matching_signal(row, pending);
            let wake = if row.recovered {
                Wake::Recovered
            } else if row.attempt > 1 {
                Wake::Retry
            } else if row.step_seq == 0 {
                Wake::Start
            } else {
                Wake::Next
            };
            Plan::RunStep(StepRun {
                state: row.state.clone(),
                wake,
                signal,
                on_success: vec![],
                always,
            })
        }
        Status::Waiting => {
            if let Some(signal) = matching_signal(row, pending) {
                let detail = json!({
                    "signal": signal.name.as_str(),
                    "signal_id": signal.id,
                    "dedupe_key": signal.dedupe_key,
                    "source": signal.source,
                    "received_at": from_ms(signal.received_at_ms).to_rfc3339(),
                });
                return Plan::RunStep(StepRun {
                    state: row.state.clone(),
                    wake: Wake::Signal,
                    signal: Some(signal),
                    on_success: vec![Pending {
                        kind: HistoryKind::SignalReceived,
                        step,
                        detail,
                    }],
                    always,
                });
            }
            match row.wake_at_ms {
                Some(wake) if wake <= now_ms => match &row.wait_on_timeout {
                    Some(next) => {
                        let mut always = always;
                        always.push(Pending {
                            kind: HistoryKind::WaitTimedOut,
                            step,
                            detail: json!({
                                "waited_for": row.wait_signals.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                                "until": from_ms(wake).to_rfc3339(),
                            }),
                        });
                        Plan::RunStep(StepRun {
                            state: next.clone(),
                            wake: Wake::TimedOut,
                            signal: None,
                            on_success: vec![],
                            always,
                        })
                    }
                    None => Plan::RunStep(StepRun {
                        state: row.state.clone(),
                        wake: Wake::Timer,
                        signal: None,
                        on_success: vec![Pending {
                            kind: HistoryKind::TimerFired,
                            step,
                            detail: json!({
                                "due": from_ms(wake).to_rfc3339(),
                                "late_ms": now_ms - wake,
                            }),
                        }],
                        always,
                    }),
                },
                Some(wake) => Plan::NotYet {
                    wake_at_ms: due(wake, row.deadline_at_ms),
                },
                // Woken with nothing to do (a signal for another wait, or a
                // recovery): park again.
                None => Plan::Apply(release(row, parked_ready(None, row.deadline_at_ms))),
            }
        }
        Status::NeedsAttention | Status::Completed | Status::Failed | Status::Cancelled => {
            Plan::Apply(release(row, Ready::Never))
        }
    }
}

fn matching_signal(row: &JourneyRecord, pending: &[SignalRecord]) -> Option<SignalRecord> {
    pending
        .iter()
        .find(|s| row.wait_signals.contains(&s.name))
        .cloned()
}

/// When a journey claimed early must be looked at again: its wake time, or
/// its deadline if that comes first (released with only the wake time, a
/// journey claimed just before its deadline would sleep through it).
fn due(wake_at_ms: i64, deadline_at_ms: Option<i64>) -> i64 {
    deadline_at_ms.map_or(wake_at_ms, |d| d.min(wake_at_ms))
}

/// When a parked journey becomes claimable: its wake time or its deadline,
/// whichever is first.
fn parked_ready(wake_at_ms: Option<i64>, deadline_at_ms: Option<i64>) -> Ready {
    match (wake_at_ms, deadline_at_ms) {
        (Some(w), Some(d)) => Ready::At(w.min(d)),
        (Some(t), None) | (None, Some(t)) => Ready::At(t),
        (None, None) => Ready::Never,
    }
}

fn release(row: &JourneyRecord, ready: Ready) -> Decision {
    let mut update = JourneyUpdate::unchanged(row);
    update.ready = ready;
    Decision {
        update,
        history: vec![],
        consumed_signal: None,
    }
}

/// Numbers pending entries after the journey's last history entry.
fn number(
    row_seq: &mut i64,
    at_ms: i64,
    pending: Vec<Pending>,
    attempt: Option<u32>,
) -> Vec<HistoryEntry> {
    pending
        .into_iter()
        .map(|p| {
            *row_seq += 1;
            HistoryEntry {
                seq: *row_seq,
                at_ms,
                kind: p.kind,
                step: p.step,
                attempt,
                duration_ms: None,
                detail: p.detail,
                state: None,
            }
        })
        .collect()
}

fn push(update: &mut JourneyUpdate, history: &mut Vec<HistoryEntry>, at_ms: i64, entry: Pending) {
    history.extend(number(&mut update.history_seq, at_ms, vec![entry], None));
}

/// The outcome of running one step, as the core needs it.
#[derive(Debug)]
pub(crate) struct StepOutcome<'a> {
    pub run: StepRun,
    /// The step's info (for the state that ran).
    pub info: &'a StepInfo,
    pub result: Result<ErasedTransition, StepError>,
    pub effects: StepEffects,
    pub started_ms: i64,
    pub finished_ms: i64,
    /// Uniform in `[0, 1)`, for backoff jitter.
    pub jitter: f64,
    /// The version of the workflow that ran the step.
    pub version: u32,
}

/// Turns a step's outcome into the commit. `describe` gives the step info of
/// a state the journey moves to.
pub(crate) fn after_step(
    row: &JourneyRecord,
    outcome: StepOutcome<'_>,
    describe: &dyn Fn(&Value) -> Result<StepInfo, String>,
) -> Decision {
    let StepOutcome {
        run,
        info,
        result,
        effects,
        started_ms,
        finished_ms: now_ms,
        jitter,
        version,
    } = outcome;
    let mut update = JourneyUpdate::unchanged(row);
    update.version = version;
    let mut history = Vec::new();
    let duration = now_ms - started_ms;

    // The state that ran may differ from the stored one (a timed-out wait
    // moved on): that change is kept whatever the step's outcome.
    if run.state != row.state {
        update.state = run.state.clone();
        update.wait_signals.clear();
        update.wait_on_timeout = None;
        set_step(&mut update, info, now_ms);
    }
    history.extend(number(
        &mut update.history_seq,
        started_ms,
        run.always,
        None,
    ));

    match result {
        Ok(transition) => {
            let signal_id = run.signal.as_ref().map(|s| s.id);
            history.extend(number(
                &mut update.history_seq,
                started_ms,
                run.on_success,
                None,
            ));
            update.step_seq += 1;
            update.attempt = 1;
            update.last_error = None;
            update.last_error_kind = None;
            update.attention = None;
            update
                .compensations
                .extend(effects.compensations.iter().cloned());
            let mut detail = json!({ "transition": describe_transition(&transition, describe) });
            if !effects.notes.is_empty() {
                detail["notes"] = json!(effects.notes);
            }
            if !effects.correlations.is_empty() {
                detail["correlations"] = json!(
                    effects
                        .correlations
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                );
            }
            if !effects.compensations.is_empty() {
                detail["compensations_pushed"] = json!(
                    effects
                        .compensations
                        .iter()
                        .map(compensation_name)
                        .collect::<Vec<_>>()
                );
            }
            update.history_seq += 1;
            let mut completed = HistoryEntry {
                seq: update.history_seq,
                at_ms: now_ms,
                kind: HistoryKind::StepCompleted,
                step: Some(info.name.to_owned()),
                attempt: Some(row.attempt),
                duration_ms: Some(duration),
                detail,
                state: None,
            };
            let mut decision = match transition {
                ErasedTransition::Next(state) => {
                    // The step's effect happened: keep its state even if it
                    // cannot be described, so nothing re-runs a done step.
                    update.state = state;
                    update.wait_signals.clear();
                    update.wait_on_timeout = None;
                    update.wake_at_ms = None;
                    match describe(&update.state) {
                        Ok(next) => {
                            update.status = Status::Runnable;
                            update.ready = Ready::KeepLease;
                            set_step(&mut update, &next, now_ms);
                            completed.state = Some(update.state.clone());
                            history.push(completed);
                        }
                        Err(e) => {
                            history.push(completed);
                            return with_signal(
                                needs_attention(row, update, workflow_error(&e), now_ms, history),
                                signal_id,
                            );
                        }
                    }
                    Decision {
                        update,
                        history,
                        consumed_signal: None,
                    }
                }
                ErasedTransition::Wait {
                    state,
                    signals,
                    until,
                    on_timeout,
                } => {
                    if signals.is_empty() && until.is_none() {
                        history.push(completed);
                        return with_signal(
                            needs_attention(
                                row,
                                update,
                                workflow_error(
                                    "a step returned a wait with no signal and no time: nothing could ever wake it",
                                ),
                                now_ms,
                                history,
                            ),
                            signal_id,
                        );
                    }
                    let next = match describe(&state) {
                        Ok(next) => next,
                        Err(e) => {
                            update.state = state;
                            history.push(completed);
                            return with_signal(
                                needs_attention(row, update, workflow_error(&e), now_ms, history),
                                signal_id,
                            );
                        }
                    };
                    if let Some(timeout_state) = &on_timeout
                        && let Err(e) = describe(timeout_state)
                    {
                        update.state = state;
                        history.push(completed);
                        return with_signal(
                            needs_attention(row, update, workflow_error(&e), now_ms, history),
                            signal_id,
                        );
                    }
                    update.state = state;
                    update.status = Status::Waiting;
                    update.wake_at_ms = until.map(crate::clock::to_ms);
                    update.wait_signals = signals;
                    update.wait_on_timeout = on_timeout;
                    update.ready = parked_ready(update.wake_at_ms, update.deadline_at_ms);
                    set_step(&mut update, &next, now_ms);
                    completed.state = Some(update.state.clone());
                    history.push(completed);
                    Decision {
                        update,
                        history,
                        consumed_signal: None,
                    }
                }
                ErasedTransition::Complete(output) => {
                    history.push(completed);
                    update.status = Status::Completed;
                    update.output = Some(output);
                    update.compensations.clear();
                    update.wait_signals.clear();
                    update.wait_on_timeout = None;
                    update.wake_at_ms = None;
                    update.sla_at_ms = None;
                    update.ready = Ready::Never;
                    update.finished_at_ms = Some(now_ms);
                    push(
                        &mut update,
                        &mut history,
                        now_ms,
                        Pending {
                            kind: HistoryKind::JourneyCompleted,
                            step: None,
                            detail: json!({}),
                        },
                    );
                    Decision {
                        update,
                        history,
                        consumed_signal: None,
                    }
                }
                ErasedTransition::Fail(reason) => {
                    history.push(completed);
                    begin_ending(row, update, reason, Ending::Failed, now_ms, vec![])
                        .with_history_prefix(history)
                }
            };
            decision.consumed_signal = signal_id;
            decision
        }
        Err(error) => {
            let kind = error.kind();
            let message = error.to_string();
            update.last_error = Some(message.clone());
            update.last_error_kind = Some(kind.to_owned());
            let mut failed = Pending {
                kind: HistoryKind::StepFailed,
                step: Some(info.name.to_owned()),
                detail: json!({ "error": message, "kind": kind }),
            };
            match &error {
                StepError::Terminal { reason } => {
                    history.extend(number(
                        &mut update.history_seq,
                        now_ms,
                        vec![failed],
                        Some(row.attempt),
                    ));
                    with_duration(&mut history, duration);
                    let reason = format!("step {} failed: {reason}", info.name);
                    begin_ending(row, update, reason, Ending::Failed, now_ms, vec![])
                        .with_history_prefix(history)
                }
                StepError::Retryable { .. } | StepError::OutcomeUnknown { .. } => {
                    let retry_after = match &error {
                        StepError::Retryable { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let attempt = row.attempt;
                    if info.retry.allows_retry_after(attempt) {
                        let delay = info.retry.delay(attempt, retry_after, jitter);
                        let wake = now_ms + duration_ms(delay);
                        failed.detail["retry_at"] = json!(from_ms(wake).to_rfc3339());
                        failed.detail["next_attempt"] = json!(attempt + 1);
                        failed.detail["max_attempts"] = json!(info.retry.max_attempts);
                        history.extend(number(
                            &mut update.history_seq,
                            now_ms,
                            vec![failed],
                            Some(attempt),
                        ));
                        with_duration(&mut history, duration);
                        update.attempt = attempt + 1;
                        update.status = Status::Runnable;
                        update.wake_at_ms = Some(wake);
                        update.ready = Ready::At(wake);
                        Decision {
                            update,
                            history,
                            consumed_signal: None,
                        }
                    } else {
                        history.extend(number(
                            &mut update.history_seq,
                            now_ms,
                            vec![failed],
                            Some(attempt),
                        ));
                        with_duration(&mut history, duration);
                        update.status = Status::Runnable;
                        let reason = format!(
                            "retries exhausted: step {} failed {attempt} of {} attempts; last error ({kind}): {message}",
                            info.name, info.retry.max_attempts
                        );
                        needs_attention(row, update, reason, now_ms, history)
                    }
                }
            }
        }
    }
}

fn with_signal(mut decision: Decision, signal: Option<i64>) -> Decision {
    decision.consumed_signal = signal;
    decision
}

fn with_duration(history: &mut [HistoryEntry], duration: i64) {
    if let Some(last) = history.last_mut() {
        last.duration_ms = Some(duration);
    }
}

impl Decision {
    fn with_history_prefix(mut self, mut prefix: Vec<HistoryEntry>) -> Self {
        prefix.append(&mut self.history);
        self.history = prefix;
        self
    }
}

fn workflow_error(e: &str) -> String {
    format!("workflow error (fix the workflow or patch the state): {e}")
}

/// Records the step the journey is now at, restarting its clock only when the
/// step changes (a polling loop keeps counting from its first poll).
fn set_step(update: &mut JourneyUpdate, info: &StepInfo, now_ms: i64) {
    if update.step_name != info.name {
        update.step_name = info.name.to_owned();
        update.step_since_ms = now_ms;
    }
    update.sla_at_ms = info.expected.map(|e| update.step_since_ms + duration_ms(e));
}

fn describe_transition(
    t: &ErasedTransition,
    describe: &dyn Fn(&Value) -> Result<StepInfo, String>,
) -> String {
    let name = |s: &Value| {
        describe(s)
            .map(|i| i.name.to_owned())
            .unwrap_or_else(|_| "?".into())
    };
    match t {
        ErasedTransition::Next(s) => format!("next: {}", name(s)),
        ErasedTransition::Wait {
            state,
            signals,
            until,
            on_timeout,
        } => {
            let mut out = if signals.is_empty() {
                format!("sleep in {}", name(state))
            } else {
                format!(
                    "wait in {} for {}",
                    name(state),
                    signals
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" or ")
                )
            };
            if let Some(until) = until {
                out.push_str(&format!(" until {}", until.to_rfc3339()));
            }
            if let Some(timeout) = on_timeout {
                out.push_str(&format!(", then {}", name(timeout)));
            }
            out
        }
        ErasedTransition::Complete(_) => "complete".to_owned(),
        ErasedTransition::Fail(reason) => format!("fail: {reason}"),
    }
}

/// A compensation's display name: its enum variant (`VoidPayment`).
pub(crate) fn compensation_name(c: &Value) -> String {
    match c {
        Value::String(s) => s.clone(),
        Value::Object(map) if map.len() == 1 => map.keys().next().cloned().unwrap_or_default(),
        _ => "compensation".to_owned(),
    }
}

/// Stops the journey until a person acts.
pub(crate) fn needs_attention(
    row: &JourneyRecord,
    mut update: JourneyUpdate,
    reason: String,
    now_ms: i64,
    mut history: Vec<HistoryEntry>,
) -> Decision {
    let _ = row;
    let detail = json!({ "reason": &reason });
    update.attention = Some(reason);
    update.status = Status::NeedsAttention;
    update.ready = Ready::Never;
    let step = Some(update.step_name.clone());
    push(
        &mut update,
        &mut history,
        now_ms,
        Pending {
            kind: HistoryKind::NeedsAttention,
            step,
            detail,
        },
    );
    Decision {
        update,
        history,
        consumed_signal: None,
    }
}

/// Fails or cancels the journey: compensations first, if there are any.
pub(crate) fn begin_ending(
    row: &JourneyRecord,
    mut update: JourneyUpdate,
    reason: String,
    ending: Ending,
    now_ms: i64,
    noted: Vec<Pending>,
) -> Decision {
    let mut history = number(&mut update.history_seq, now_ms, noted, None);
    let reason_detail = json!(&reason);
    update.failure = Some(reason);
    update.ending = Some(ending);
    update.wait_signals.clear();
    update.wait_on_timeout = None;
    update.wake_at_ms = None;
    update.attempt = 1;
    update.last_error = None;
    update.last_error_kind = None;
    if update.compensations.is_empty() {
        return finish_ending(row, update, now_ms, history);
    }
    update.status = Status::Compensating;
    update.ready = Ready::KeepLease;
    let order: Vec<String> = update
        .compensations
        .iter()
        .rev()
        .map(compensation_name)
        .collect();
    push(
        &mut update,
        &mut history,
        now_ms,
        Pending {
            kind: HistoryKind::CompensationStarted,
            step: None,
            detail: json!({
                "reason": reason_detail,
                "ending": ending.as_str(),
                "order": order,
            }),
        },
    );
    Decision {
        update,
        history,
        consumed_signal: None,
    }
}

/// Ends a journey whose compensations are done (or that had none).
fn finish_ending(
    row: &JourneyRecord,
    mut update: JourneyUpdate,
    now_ms: i64,
    mut history: Vec<HistoryEntry>,
) -> Decision {
    let ending = update.ending.unwrap_or(Ending::Failed);
    let had_compensations = row.status == Status::Compensating || row.ending.is_some();
    update.status = ending.status();
    update.ready = Ready::Never;
    update.finished_at_ms = Some(now_ms);
    update.sla_at_ms = None;
    update.attention = None;
    let kind = match ending {
        Ending::Failed => HistoryKind::JourneyFailed,
        Ending::Cancelled => HistoryKind::JourneyCancelled,
    };
    let reason = update.failure.clone();
    push(
        &mut update,
        &mut history,
        now_ms,
        Pending {
            kind,
            step: None,
            detail: json!({
                "reason": reason,
                "compensated": had_compensations,
            }),
        },
    );
    Decision {
        update,
        history,
        consumed_signal: None,
    }
}

/// Turns a compensation's outcome into the commit.
pub(crate) fn after_compensation(
    row: &JourneyRecord,
    index: usize,
    result: Result<(), StepError>,
    started_ms: i64,
    now_ms: i64,
    policy: &RetryPolicy,
    jitter: f64,
) -> Decision {
    let mut update = JourneyUpdate::unchanged(row);
    let mut history = Vec::new();
    let name = row
        .compensations
        .get(index)
        .map(compensation_name)
        .unwrap_or_default();
    let attempt = row.attempt;
    match result {
        Ok(()) => {
            update.compensations.truncate(index);
            update.attempt = 1;
            update.last_error = None;
            update.last_error_kind = None;
            update.wake_at_ms = None;
            history.extend(number(
                &mut update.history_seq,
                now_ms,
                vec![Pending {
                    kind: HistoryKind::CompensationCompleted,
                    step: None,
                    detail: json!({ "compensation": name }),
                }],
                Some(attempt),
            ));
            with_duration(&mut history, now_ms - started_ms);
            if update.compensations.is_empty() {
                finish_ending(row, update, now_ms, history)
            } else {
                update.ready = Ready::KeepLease;
                Decision {
                    update,
                    history,
                    consumed_signal: None,
                }
            }
        }
        Err(error) => {
            let message = error.to_string();
            update.last_error = Some(message.clone());
            update.last_error_kind = Some(error.kind().to_owned());
            let mut detail =
                json!({ "compensation": name, "error": message, "kind": error.kind() });
            let retry =
                !matches!(error, StepError::Terminal { .. }) && policy.allows_retry_after(attempt);
            if retry {
                let retry_after = match &error {
                    StepError::Retryable { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let wake = now_ms + duration_ms(policy.delay(attempt, retry_after, jitter));
                detail["retry_at"] = json!(from_ms(wake).to_rfc3339());
                update.attempt = attempt + 1;
                update.wake_at_ms = Some(wake);
                update.ready = Ready::At(wake);
            }
            history.extend(number(
                &mut update.history_seq,
                now_ms,
                vec![Pending {
                    kind: HistoryKind::CompensationFailed,
                    step: None,
                    detail,
                }],
                Some(attempt),
            ));
            with_duration(&mut history, now_ms - started_ms);
            if retry {
                Decision {
                    update,
                    history,
                    consumed_signal: None,
                }
            } else {
                let reason = format!(
                    "compensation {name} keeps failing after {attempt} attempts; last error: {message}"
                );
                needs_attention(row, update, reason, now_ms, history)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::ids::{JourneyId, SignalName};

    const NOW: i64 = 1_000_000;

    fn row() -> JourneyRecord {
        JourneyRecord {
            id: JourneyId::new(),
            workflow: "test".into(),
            version: 1,
            status: Status::Runnable,
            state: json!("A"),
            business_key: None,
            step_name: "a".into(),
            step_since_ms: 0,
            sla_at_ms: None,
            step_seq: 0,
            attempt: 1,
            ready_at_ms: Some(0),
            wake_at_ms: None,
            wait_signals: vec![],
            wait_on_timeout: None,
            deadline_at_ms: None,
            lease_owner: Some("w".into()),
            lease_epoch: 1,
            recovered: false,
            claims_since_commit: 1,
            last_error: None,
            last_error_kind: None,
            attention: None,
            compensations: vec![],
            ending: None,
            cancel_request: None,
            output: None,
            failure: None,
            history_seq: 1,
            created_at_ms: 0,
            updated_at_ms: 0,
            finished_at_ms: None,
        }
    }

    fn describe(state: &Value) -> Result<StepInfo, String> {
        match state.as_str() {
            Some("A") => Ok(StepInfo::new("a")),
            Some("B") => Ok(StepInfo::new("b").expected_within(Duration::from_secs(10))),
            Some("T") => Ok(StepInfo::new("timed-out")),
            _ => Err(format!("unknown state {state}")),
        }
    }

    fn signal(id: i64, name: &str) -> SignalRecord {
        SignalRecord {
            id,
            journey_id: None,
            addressed_to: None,
            correlation_key: None,
            name: SignalName::new(name).unwrap(),
            payload: json!({"x": 1}),
            dedupe_key: None,
            source: "test".into(),
            received_at_ms: 5,
            consumed_at_ms: None,
        }
    }

    fn run_of(plan: Plan) -> StepRun {
        match plan {
            Plan::RunStep(run) => run,
            other => panic!("expected a step, got {other:?}"),
        }
    }

    fn outcome<'a>(
        run: StepRun,
        info: &'a StepInfo,
        result: Result<ErasedTransition, StepError>,
    ) -> StepOutcome<'a> {
        StepOutcome {
            run,
            info,
            result,
            effects: StepEffects::default(),
            started_ms: NOW,
            finished_ms: NOW + 7,
            jitter: 0.5,
            version: 1,
        }
    }

    #[test]
    fn a_new_journey_runs_its_first_step_and_moves_on() {
        let r = row();
        let run = run_of(plan(&r, &[], NOW));
        assert_eq!(run.wake, Wake::Start);
        let info = StepInfo::new("a");
        let d = after_step(
            &r,
            outcome(run, &info, Ok(ErasedTransition::Next(json!("B")))),
            &describe,
        );
        assert!(d.continues());
        assert_eq!(d.update.state, json!("B"));
        assert_eq!(d.update.step_name, "b");
        assert_eq!(d.update.step_seq, 1);
        assert_eq!(d.update.step_since_ms, NOW + 7);
        assert_eq!(d.update.sla_at_ms, Some(NOW + 7 + 10_000));
        assert_eq!(d.history.len(), 1);
        assert_eq!(d.history[0].kind, HistoryKind::StepCompleted);
        assert_eq!(d.history[0].seq, 2);
        assert_eq!(d.history[0].duration_ms, Some(7));
        assert_eq!(d.history[0].state, Some(json!("B")));
        assert_eq!(d.history[0].detail["transition"], json!("next: b"));
    }

    #[test]
    fn a_retryable_failure_schedules_a_jittered_retry_and_keeps_the_step() {
        let r = row();
        let run = run_of(plan(&r, &[], NOW));
        let info = StepInfo::new("a");
        let d = after_step(
            &r,
            outcome(run, &info, Err(StepError::retryable("503 from provider"))),
            &describe,
        );
        assert_eq!(d.update.status, Status::Runnable);
        assert_eq!(d.update.attempt, 2);
        assert_eq!(
            d.update.step_seq, 0,
            "a failed attempt keeps the step's idempotency key"
        );
        // ceiling 1 s for attempt 1, jitter 0.5 -> 500 ms
        assert_eq!(d.update.wake_at_ms, Some(NOW + 7 + 500));
        assert_eq!(d.update.ready, Ready::At(NOW + 7 + 500));
        assert_eq!(d.update.last_error_kind.as_deref(), Some("retryable"));
        assert_eq!(d.history[0].kind, HistoryKind::StepFailed);
        assert_eq!(d.history[0].attempt, Some(1));

        // Not due yet: the claimer waits.
        let mut r2 = r;
        d.update.apply_to(&mut r2, NOW + 7, 0);
        assert_eq!(
            plan(&r2, &[], NOW + 100),
            Plan::NotYet {
                wake_at_ms: NOW + 507
            }
        );
        let run = run_of(plan(&r2, &[], NOW + 600));
        assert_eq!(run.wake, Wake::Retry);
    }

    #[test]
    fn retry_after_is_honoured() {
        let r = row();
        let info = StepInfo::new("a");
        let run = run_of(plan(&r, &[], NOW));
        let d = after_step(
            &r,
            outcome(
                run,
                &info,
                Err(StepError::retry_after("429", Duration::from_secs(30))),
            ),
            &describe,
        );
        assert_eq!(d.update.wake_at_ms, Some(NOW + 7 + 30_000));
    }

    #[test]
    fn exhausted_retries_need_attention_not_a_silent_loop() {
        let mut r = row();
        r.attempt = 5;
        let info = StepInfo::new("a");
        let run = run_of(plan(&r, &[], NOW));
        let d = after_step(
            &r,
            outcome(run, &info, Err(StepError::outcome_unknown("504"))),
            &describe,
        );
        assert_eq!(d.update.status, Status::NeedsAttention);
        assert_eq!(d.update.ready, Ready::Never);
        let reason = d.update.attention.unwrap();
        assert!(reason.contains("retries exhausted"), "{reason}");
        assert!(reason.contains("5 of 5"), "{reason}");
        assert_eq!(d.history.last().unwrap().kind, HistoryKind::NeedsAttention);
    }

    #[test]
    fn a_wait_parks_and_an_early_signal_is_delivered_when_it_begins() {
        let r = row();
        let info = StepInfo::new("a");
        let run = run_of(plan(&r, &[], NOW));
        let d = after_step(
            &r,
            outcome(
                run,
                &info,
                Ok(ErasedTransition::Wait {
                    state: json!("B"),
                    signals: vec![SignalName::new("otp").unwrap()],
                    until: Some(from_ms(NOW + 60_000)),
                    on_timeout: Some(json!("T")),
                }),
            ),
            &describe,
        );
        assert_eq!(d.update.status, Status::Waiting);
        assert_eq!(d.update.ready, Ready::At(NOW + 60_000));
        let mut waiting = r;
        d.update.apply_to(&mut waiting, NOW, 0);

        // A signal for another wait is not delivered; one for this wait is,
        // even if it arrived first.
        let pending = vec![signal(1, "other"), signal(2, "otp")];
        let run = run_of(plan(&waiting, &pending, NOW + 1));
        assert_eq!(run.wake, Wake::Signal);
        assert_eq!(run.signal.as_ref().unwrap().id, 2);
        let info_b = describe(&json!("B")).unwrap();
        let d = after_step(
            &waiting,
            outcome(run, &info_b, Ok(ErasedTransition::Complete(json!(null)))),
            &describe,
        );
        assert_eq!(d.consumed_signal, Some(2));
        assert_eq!(d.update.status, Status::Completed);
        let kinds: Vec<_> = d.history.iter().map(|h| h.kind).collect();
        assert_eq!(
            kinds,
            vec![
                HistoryKind::SignalReceived,
                HistoryKind::StepCompleted,
                HistoryKind::JourneyCompleted
            ]
        );
    }

    #[test]
    fn a_wait_times_out_into_its_timeout_state() {
        let mut r = row();
        r.status = Status::Waiting;
        r.state = json!("B");
        r.step_name = "b".into();
        r.wait_signals = vec![SignalName::new("otp").unwrap()];
        r.wake_at_ms = Some(NOW);
        r.wait_on_timeout = Some(json!("T"));
        let run = run_of(plan(&r, &[], NOW));
        assert_eq!(run.wake, Wake::TimedOut);
        assert_eq!(run.state, json!("T"));
        let info = describe(&json!("T")).unwrap();
        // Even if the timeout step fails, the move to the timeout state stays.
        let d = after_step(
            &r,
            outcome(run, &info, Err(StepError::retryable("down"))),
            &describe,
        );
        assert_eq!(d.update.state, json!("T"));
        assert_eq!(d.update.step_name, "timed-out");
        assert!(d.update.wait_signals.is_empty());
        assert_eq!(d.history[0].kind, HistoryKind::WaitTimedOut);
        assert_eq!(d.history[1].kind, HistoryKind::StepFailed);
    }

    #[test]
    fn a_poll_without_timeout_state_reruns_the_step_as_a_timer() {
        let mut r = row();
        r.status = Status::Waiting;
        r.wait_signals = vec![SignalName::new("callback").unwrap()];
        r.wake_at_ms = Some(NOW - 3);
        let run = run_of(plan(&r, &[], NOW));
        assert_eq!(run.wake, Wake::Timer);
        assert_eq!(run.on_success[0].kind, HistoryKind::TimerFired);
        assert_eq!(run.on_success[0].detail["late_ms"], json!(3));
    }

    #[test]
    fn a_signal_survives_a_failed_attempt_and_is_redelivered() {
        let mut r = row();
        r.status = Status::Waiting;
        r.wait_signals = vec![SignalName::new("otp").unwrap()];
        let pending = vec![signal(9, "otp")];
        let run = run_of(plan(&r, &pending, NOW));
        let info = StepInfo::new("a");
        let d = after_step(
            &r,
            outcome(run, &info, Err(StepError::retryable("validate failed"))),
            &describe,
        );
        assert_eq!(d.consumed_signal, None);
        let mut retrying = r;
        d.update.apply_to(&mut retrying, NOW, 0);
        let run = run_of(plan(&retrying, &pending, NOW + 10_000));
        assert_eq!(run.wake, Wake::Retry);
        assert_eq!(run.signal.unwrap().id, 9);
    }

    #[test]
    fn failure_runs_compensations_newest_first_then_fails() {
        let mut r = row();
        r.compensations = vec![json!({"VoidPayment": {"id": 1}}), json!("CancelOrder")];
        let run = run_of(plan(&r, &[], NOW));
        let info = StepInfo::new("a");
        let d = after_step(
            &r,
            outcome(run, &info, Err(StepError::terminal("card declined"))),
            &describe,
        );
        assert_eq!(d.update.status, Status::Compensating);
        assert!(d.continues());
        assert_eq!(
            d.history.last().unwrap().detail["order"],
            json!(["CancelOrder", "VoidPayment"])
        );
        let mut comp = r;
        d.update.apply_to(&mut comp, NOW, 0);
        match plan(&comp, &[], NOW) {
            Plan::RunCompensation {
                index,
                compensation,
            } => {
                assert_eq!(index, 1);
                assert_eq!(compensation, json!("CancelOrder"));
            }
            other => panic!("{other:?}"),
        }
        let policy = RetryPolicy::compensation();
        let d = after_compensation(&comp, 1, Ok(()), NOW, NOW + 1, &policy, 0.5);
        d.update.apply_to(&mut comp, NOW, 0);
        assert_eq!(comp.compensations.len(), 1);
        // A transient failure is retried later.
        let d = after_compensation(
            &comp,
            0,
            Err(StepError::retryable("503")),
            NOW,
            NOW + 2,
            &policy,
            0.5,
        );
        assert_eq!(d.update.status, Status::Compensating);
        assert_eq!(d.update.ready, Ready::At(NOW + 2 + 500));
        d.update.apply_to(&mut comp, NOW, 0);
        let d = after_compensation(&comp, 0, Ok(()), NOW, NOW + 3, &policy, 0.5);
        assert_eq!(d.update.status, Status::Failed);
        assert_eq!(
            d.update.failure.as_deref(),
            Some("step a failed: card declined")
        );
        assert_eq!(d.history.last().unwrap().kind, HistoryKind::JourneyFailed);
        assert_eq!(d.history.last().unwrap().detail["compensated"], json!(true));
    }

    #[test]
    fn a_compensation_that_keeps_failing_needs_attention() {
        let mut r = row();
        r.status = Status::Compensating;
        r.ending = Some(Ending::Failed);
        r.compensations = vec![json!("VoidPayment")];
        let d = after_compensation(
            &r,
            0,
            Err(StepError::terminal("void refused")),
            NOW,
            NOW,
            &RetryPolicy::compensation(),
            0.5,
        );
        assert_eq!(d.update.status, Status::NeedsAttention);
        assert!(
            d.update
                .attention
                .unwrap()
                .contains("VoidPayment keeps failing")
        );
        assert_eq!(d.update.ending, Some(Ending::Failed));
    }

    #[test]
    fn cancel_and_deadline_end_the_journey() {
        let mut r = row();
        r.cancel_request = Some(crate::model::CancelRequest {
            actor: "alice".into(),
            reason: "customer asked".into(),
        });
        match plan(&r, &[], NOW) {
            Plan::Apply(d) => {
                assert_eq!(d.update.status, Status::Cancelled);
                assert!(d.update.clear_cancel_request);
                assert_eq!(d.history[0].kind, HistoryKind::JourneyCancelled);
            }
            other => panic!("{other:?}"),
        }
        let mut r = row();
        r.deadline_at_ms = Some(NOW);
        r.status = Status::Waiting;
        match plan(&r, &[], NOW) {
            Plan::Apply(d) => {
                assert_eq!(d.update.status, Status::Failed);
                assert!(d.update.failure.unwrap().starts_with("deadline passed"));
                assert_eq!(d.history[0].kind, HistoryKind::DeadlinePassed);
            }
            other => panic!("{other:?}"),
        }
        // Claimed just before its deadline, a journey waiting for later is
        // released until the deadline, not until its wake time.
        let mut r = row();
        r.status = Status::Waiting;
        r.wake_at_ms = Some(NOW + 60_000);
        r.deadline_at_ms = Some(NOW + 50);
        assert!(matches!(
            plan(&r, &[], NOW),
            Plan::NotYet { wake_at_ms } if wake_at_ms == NOW + 50
        ));
    }

    #[test]
    fn a_crash_loop_stops_for_a_person() {
        let mut r = row();
        r.claims_since_commit = MAX_CLAIMS_WITHOUT_COMMIT + 1;
        match plan(&r, &[], NOW) {
            Plan::Apply(d) => {
                assert_eq!(d.update.status, Status::NeedsAttention);
                assert!(d.update.attention.unwrap().contains("crash loop"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_recovered_step_knows_it_may_have_run() {
        let mut r = row();
        r.recovered = true;
        let run = run_of(plan(&r, &[], NOW));
        assert_eq!(run.wake, Wake::Recovered);
        assert_eq!(run.always[0].kind, HistoryKind::Recovered);
    }

    #[test]
    fn a_wait_with_nothing_to_wake_it_is_a_workflow_error() {
        let r = row();
        let run = run_of(plan(&r, &[], NOW));
        let info = StepInfo::new("a");
        let d = after_step(
            &r,
            outcome(
                run,
                &info,
                Ok(ErasedTransition::Wait {
                    state: json!("B"),
                    signals: vec![],
                    until: None,
                    on_timeout: None,
                }),
            ),
            &describe,
        );
        assert_eq!(d.update.status, Status::NeedsAttention);
        assert!(d.update.attention.unwrap().contains("workflow error"));
    }

    #[test]
    fn a_polling_loop_keeps_its_step_clock() {
        let mut r = row();
        r.state = json!("B");
        r.step_name = "b".into();
        r.step_since_ms = 10;
        let info = describe(&json!("B")).unwrap();
        let run = run_of(plan(&r, &[], NOW));
        let d = after_step(
            &r,
            outcome(
                run,
                &info,
                Ok(ErasedTransition::Wait {
                    state: json!("B"),
                    signals: vec![],
                    until: Some(from_ms(NOW + 5_000)),
                    on_timeout: None,
                }),
            ),
            &describe,
        );
        assert_eq!(d.update.step_since_ms, 10);
        assert_eq!(d.update.sla_at_ms, Some(10 + 10_000));
        assert_eq!(
            d.history[0].detail["transition"],
            json!(format!(
                "sleep in b until {}",
                from_ms(NOW + 5_000).to_rfc3339()
            ))
        );
    }
}
