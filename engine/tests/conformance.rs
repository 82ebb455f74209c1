//! The engine's conformance suite: every test runs on SQLite and on
//! Postgres (`sqlite::name`, `postgres::name`), with a manual clock.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use handover_engine::store::SignalTarget;
use handover_engine::{
    CancelOutcome, CorrelationKey, DeliveryOutcome, Engine, HistoryKind, JourneyId, ManualClock,
    NewSignal, StartOptions, Status,
};
use serde_json::json;
use support::TestDb;
use support::workflows::*;

const WAIT: Duration = Duration::from_secs(20);

fn kinds(history: &[handover_engine::HistoryEntry]) -> Vec<HistoryKind> {
    history.iter().map(|h| h.kind).collect()
}

/// Advances the clock in small steps until the journey ends (so timers and
/// backoffs fire), failing after `WAIT` of real time.
async fn drive_until_finished(
    engine: &Engine,
    clock: &ManualClock,
    id: JourneyId,
    step: Duration,
) -> handover_engine::JourneyRecord {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let record = engine.journey(id).await.unwrap();
        if record.status.is_terminal() || record.status == Status::NeedsAttention {
            return record;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "journey stuck: {} at {} ({:?})",
            record.status,
            record.step_name,
            record.last_error
        );
        clock.advance(step);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn five_steps_complete_with_one_commit_per_step(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let provider = Arc::new(FakeProvider::default());
    let wf = FiveSteps {
        provider: provider.clone(),
    };
    let engine = support::engine(&db, &clock, |b| b.register(wf)).await;
    let worker = engine.run_worker();
    let id = engine.start::<FiveSteps>(()).await.unwrap();
    let done = engine.wait_until_finished(id, WAIT).await.unwrap();
    assert_eq!(done.status, Status::Completed);
    assert_eq!(
        engine.output::<String>(id).await.unwrap().unwrap(),
        "done after 5 steps"
    );
    let history = engine.history(id, 100).await.unwrap();
    let steps: Vec<_> = history
        .iter()
        .filter(|h| h.kind == HistoryKind::StepCompleted)
        .collect();
    assert_eq!(steps.len(), 5);
    assert_eq!(
        steps
            .iter()
            .map(|h| h.step.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["one", "two", "three", "four", "five"]
    );
    assert_eq!(history.last().unwrap().kind, HistoryKind::JourneyCompleted);
    assert_eq!(provider.keys().len(), 5);
    assert_eq!(provider.total_calls(), 5);
    // One journey alone: one claim, one commit per step.
    let commits = engine.metrics().commits.get();
    assert_eq!(commits, 5, "one commit per step");
    worker.shutdown(Duration::from_secs(5)).await;
}

/// Crashes the worker at `point` of step `at`, restarts a new engine on the
/// same database, and checks the journey ends as an uninterrupted one does,
/// with each step's effect applied under one key.
async fn crash_and_resume(db: &TestDb, point: handover_engine::FaultPoint, at: i64) {
    let clock = ManualClock::at_fixed_instant();
    let provider = Arc::new(FakeProvider::default());
    let wf = FiveSteps {
        provider: provider.clone(),
    };
    let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook_fired = fired.clone();
    let first = support::engine(db, &clock, |b| {
        b.register(wf.clone())
            .fault_hook(Arc::new(move |p, _id, seq| {
                p == point && seq == at && !hook_fired.swap(true, Ordering::SeqCst)
            }))
    })
    .await;
    let worker = first.run_worker();
    let id = first.start::<FiveSteps>(()).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !fired.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fault point never reached"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    worker.crash().await;
    first.store().close().await;

    // A new process on the same database picks the journey up once the dead
    // worker's lease expires.
    let second = support::engine(db, &clock, |b| b.register(wf.clone())).await;
    let worker2 = second.run_worker();
    let done = drive_until_finished(&second, &clock, id, Duration::from_secs(5)).await;
    assert_eq!(done.status, Status::Completed, "{point:?} at step {at}");
    assert_eq!(
        second.output::<String>(id).await.unwrap().unwrap(),
        "done after 5 steps"
    );
    let keys = provider.keys();
    assert_eq!(
        keys.len(),
        5,
        "{point:?} at {at}: one key per step, never a new one on re-run"
    );
    let calls: Vec<u32> = keys.iter().map(|k| provider.calls(k)).collect();
    let rerun = calls.iter().filter(|c| **c > 1).count();
    match point {
        // Crashed after the outbound call: that one step runs again, with
        // the same key (the provider applies it once).
        handover_engine::FaultPoint::AfterStep => assert_eq!(rerun, 1, "calls {calls:?}"),
        // Before the call or after the commit: nothing runs twice.
        _ => assert_eq!(rerun, 0, "calls {calls:?}"),
    }
    let history = second.history(id, 100).await.unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|h| h.kind == HistoryKind::StepCompleted)
            .count(),
        5,
        "no completed step is re-run"
    );
    if point != handover_engine::FaultPoint::AfterCommit || at < 4 {
        assert!(kinds(&history).contains(&HistoryKind::Recovered));
    }
    worker2.shutdown(Duration::from_secs(5)).await;
    second.store().close().await;
}

async fn crash_at_every_boundary_resumes_exactly(db: TestDb) {
    use handover_engine::FaultPoint::*;
    for at in 0..5 {
        for point in [BeforeStep, AfterStep, AfterCommit] {
            crash_and_resume(&db, point, at).await;
        }
    }
}

async fn a_timer_survives_and_fires_on_time(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let engine = support::engine(&db, &clock, |b| b.register(AwaitGo)).await;
    let worker = engine.run_worker();
    let id = engine
        .start::<AwaitGo>(AwaitGoInput {
            sleep_first_secs: 10,
            timeout_secs: 5,
            correlation: None,
            deadline_secs: None,
        })
        .await
        .unwrap();
    let r = engine
        .wait_for(id, WAIT, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    assert_eq!(r.step_name, "sleep");
    assert_eq!(r.wake_at_ms.unwrap() - r.created_at_ms, 10_000);
    // Restart the engine while it sleeps: the timer is in the store.
    worker.shutdown(Duration::from_secs(5)).await;
    let engine = support::engine(&db, &clock, |b| b.register(AwaitGo)).await;
    let worker = engine.run_worker();
    clock.advance(Duration::from_secs(9));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        engine.journey(id).await.unwrap().step_name,
        "sleep",
        "not before its time"
    );
    clock.advance(Duration::from_secs(1));
    let r = engine
        .wait_for(id, WAIT, |r| {
            r.step_name == "await-go" && r.status == Status::Waiting
        })
        .await
        .unwrap();
    assert_eq!(r.status, Status::Waiting);
    // The wait times out into its timeout state.
    clock.advance(Duration::from_secs(5));
    let done = engine.wait_until_finished(id, WAIT).await.unwrap();
    assert_eq!(
        engine.output::<String>(id).await.unwrap().unwrap(),
        "timed out"
    );
    let history = engine.history(id, 100).await.unwrap();
    let k = kinds(&history);
    assert!(k.contains(&HistoryKind::TimerFired));
    assert!(k.contains(&HistoryKind::WaitTimedOut));
    assert_eq!(done.status, Status::Completed);
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn an_early_signal_is_kept_until_the_wait_begins(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let engine = support::engine(&db, &clock, |b| b.register(AwaitGo)).await;
    let worker = engine.run_worker();
    let id = engine
        .start::<AwaitGo>(AwaitGoInput {
            sleep_first_secs: 30,
            timeout_secs: 60,
            correlation: None,
            deadline_secs: None,
        })
        .await
        .unwrap();
    engine
        .wait_for(id, WAIT, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    let d = engine
        .signal(
            NewSignal::to_journey(id, "go", json!("early"))
                .unwrap()
                .dedupe("t:1"),
        )
        .await
        .unwrap();
    match d.outcome {
        DeliveryOutcome::Delivered { woke, status, .. } => {
            assert!(!woke, "it sleeps; the signal waits in the inbox");
            assert_eq!(status, Status::Waiting);
        }
        other => panic!("{other:?}"),
    }
    clock.advance(Duration::from_secs(30));
    engine.wait_until_finished(id, WAIT).await.unwrap();
    assert_eq!(
        engine.output::<String>(id).await.unwrap().unwrap(),
        "go: early"
    );
    assert!(kinds(&engine.history(id, 100).await.unwrap()).contains(&HistoryKind::SignalReceived));
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn a_signal_wakes_a_waiting_journey_at_once(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let engine = support::engine(&db, &clock, |b| b.register(AwaitGo)).await;
    let worker = engine.run_worker();
    let id = engine
        .start::<AwaitGo>(AwaitGoInput {
            sleep_first_secs: 0,
            timeout_secs: 3600,
            correlation: None,
            deadline_secs: None,
        })
        .await
        .unwrap();
    engine
        .wait_for(id, WAIT, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    let d = engine
        .signal(NewSignal::to_journey(id, "go", json!("now")).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        d.outcome,
        DeliveryOutcome::Delivered { woke: true, .. }
    ));
    // No clock movement needed: the signal itself wakes it.
    engine.wait_until_finished(id, WAIT).await.unwrap();
    assert_eq!(
        engine.output::<String>(id).await.unwrap().unwrap(),
        "go: now"
    );
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn duplicate_signals_take_effect_once(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let engine = support::engine(&db, &clock, |b| b.register(Accumulate)).await;
    let worker = engine.run_worker();
    let id = engine.start::<Accumulate>(()).await.unwrap();
    engine
        .wait_for(id, WAIT, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    let send = |n: u32, key: &str| {
        let engine = engine.clone();
        let key = key.to_owned();
        async move {
            engine
                .signal(
                    NewSignal::to_journey(id, "add", json!(n))
                        .unwrap()
                        .dedupe(key),
                )
                .await
                .unwrap()
        }
    };
    let first = send(1, "provider:a").await;
    let dup = send(1, "provider:a").await;
    assert_eq!(
        dup.outcome,
        DeliveryOutcome::Duplicate {
            signal_id: first.signal_id
        }
    );
    send(2, "provider:b").await;
    engine.wait_until_finished(id, WAIT).await.unwrap();
    // With the duplicate applied the total would have been 4.
    assert_eq!(engine.output::<u32>(id).await.unwrap().unwrap(), 3);
    assert_eq!(engine.metrics().signals_duplicate.get(), 1);
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn unknown_targets_are_stored_and_adopted_later(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let engine = support::engine(&db, &clock, |b| b.register(AwaitGo)).await;
    let worker = engine.run_worker();
    // An unknown journey id and an unknown correlation key: both kept.
    let ghost = JourneyId::new();
    let d = engine
        .signal(NewSignal::to_journey(ghost, "go", json!("x")).unwrap())
        .await
        .unwrap();
    assert_eq!(d.outcome, DeliveryOutcome::Unmatched);
    let key = CorrelationKey::new("test.ref", "REF-42").unwrap();
    let early = engine
        .signal(
            NewSignal::to_correlation(key.clone(), "go", json!("before the journey knew its key"))
                .unwrap()
                .dedupe("cb:1"),
        )
        .await
        .unwrap();
    assert_eq!(early.outcome, DeliveryOutcome::Unmatched);
    let unmatched = engine.store().unmatched(10).await.unwrap();
    assert_eq!(unmatched.len(), 2);
    assert!(
        unmatched
            .iter()
            .any(|s| s.addressed_to.as_deref() == Some(ghost.to_string().as_str()))
    );
    // A bad id in a URL is kept too.
    let garbled = NewSignal {
        target: SignalTarget::Unparsed("not-a-uuid".into()),
        name: handover_engine::SignalName::new("go").unwrap(),
        payload: json!(null),
        dedupe_key: None,
        source: "test".into(),
    };
    assert_eq!(
        engine.signal(garbled).await.unwrap().outcome,
        DeliveryOutcome::Unmatched
    );

    // The journey that registers the key adopts the early callback.
    let id = engine
        .start::<AwaitGo>(AwaitGoInput {
            sleep_first_secs: 0,
            timeout_secs: 60,
            correlation: Some("REF-42".into()),
            deadline_secs: None,
        })
        .await
        .unwrap();
    engine.wait_until_finished(id, WAIT).await.unwrap();
    assert_eq!(
        engine.output::<String>(id).await.unwrap().unwrap(),
        "go: before the journey knew its key"
    );
    assert_eq!(engine.store().unmatched(10).await.unwrap().len(), 2);
    // A dismissed signal is no longer reported.
    assert!(engine.store().dismiss(d.signal_id, 0).await.unwrap());
    assert_eq!(engine.store().unmatched(10).await.unwrap().len(), 1);
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn retries_back_off_and_know_they_may_have_run(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let flaky = Flaky::default();
    let engine = support::engine(&db, &clock, |b| b.register(flaky.clone())).await;
    let worker = engine.run_worker();
    let id = engine
        .start::<Flaky>(FlakyInput {
            fail_times: 2,
            kind: "unknown".into(),
            retry_after_secs: None,
            max_attempts: 5,
        })
        .await
        .unwrap();
    let done = drive_until_finished(&engine, &clock, id, Duration::from_millis(500)).await;
    assert_eq!(done.status, Status::Completed);
    assert_eq!(engine.output::<u32>(id).await.unwrap().unwrap(), 3);
    let seen = flaky.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(1, false, false), (2, true, true), (3, true, true)]
    );
    let history = engine.history(id, 100).await.unwrap();
    let failed: Vec<_> = history
        .iter()
        .filter(|h| h.kind == HistoryKind::StepFailed)
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].detail["kind"], json!("outcome_unknown"));
    assert!(failed[0].detail["retry_at"].is_string());
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn retry_after_is_respected(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let flaky = Flaky::default();
    let engine = support::engine(&db, &clock, |b| b.register(flaky.clone())).await;
    let worker = engine.run_worker();
    let id = engine
        .start::<Flaky>(FlakyInput {
            fail_times: 1,
            kind: "rate".into(),
            retry_after_secs: Some(30),
            max_attempts: 5,
        })
        .await
        .unwrap();
    let r = engine.wait_for(id, WAIT, |r| r.attempt == 2).await.unwrap();
    assert_eq!(r.wake_at_ms.unwrap() - r.updated_at_ms, 30_000);
    clock.advance(Duration::from_secs(29));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(engine.journey(id).await.unwrap().status, Status::Runnable);
    clock.advance(Duration::from_secs(1));
    engine.wait_until_finished(id, WAIT).await.unwrap();
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn exhausted_retries_need_attention(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let engine = support::engine(&db, &clock, |b| b.register(Flaky::default())).await;
    let worker = engine.run_worker();
    let id = engine
        .start::<Flaky>(FlakyInput {
            fail_times: 99,
            kind: "retryable".into(),
            retry_after_secs: None,
            max_attempts: 3,
        })
        .await
        .unwrap();
    let r = drive_until_finished(&engine, &clock, id, Duration::from_secs(1)).await;
    assert_eq!(r.status, Status::NeedsAttention);
    let reason = r.attention.unwrap();
    assert!(
        reason.contains("retries exhausted") && reason.contains("3 of 3"),
        "{reason}"
    );
    assert!(r.ready_at_ms.is_none(), "no silent loop: nothing wakes it");
    let stuck = engine
        .store()
        .stuck(clock_now(&clock).timestamp_millis(), 10)
        .await
        .unwrap();
    assert!(stuck.journeys.iter().any(|j| j.id == id));
    worker.shutdown(Duration::from_secs(5)).await;
}

fn clock_now(clock: &ManualClock) -> handover_engine::Timestamp {
    use handover_engine::Clock;
    clock.now()
}

async fn compensations_run_in_reverse_order(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let saga = Saga::default();
    saga.flaky_undo.store(1, Ordering::SeqCst);
    let engine = support::engine(&db, &clock, |b| b.register(saga.clone())).await;
    let worker = engine.run_worker();
    let id = engine
        .start::<Saga>(SagaInput { then_fail: true })
        .await
        .unwrap();
    let done = drive_until_finished(&engine, &clock, id, Duration::from_secs(1)).await;
    assert_eq!(done.status, Status::Failed);
    assert_eq!(
        done.failure.as_deref(),
        Some("step fail failed: card declined")
    );
    assert_eq!(
        saga.undone.lock().unwrap().clone(),
        vec!["cancel order", "refund payment", "release number"]
    );
    let history = engine.history(id, 100).await.unwrap();
    let k = kinds(&history);
    assert!(k.contains(&HistoryKind::CompensationStarted));
    assert_eq!(
        k.iter()
            .filter(|k| **k == HistoryKind::CompensationCompleted)
            .count(),
        3
    );
    assert_eq!(
        k.iter()
            .filter(|k| **k == HistoryKind::CompensationFailed)
            .count(),
        1,
        "the flaky refund was retried"
    );
    assert_eq!(*k.last().unwrap(), HistoryKind::JourneyFailed);
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn cancellation_compensates_and_is_recorded(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let saga = Saga::default();
    let engine = support::engine(&db, &clock, |b| b.register(saga.clone())).await;
    let worker = engine.run_worker();
    let id = engine
        .start::<Saga>(SagaInput { then_fail: false })
        .await
        .unwrap();
    engine
        .wait_for(id, WAIT, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    let outcome = engine
        .cancel(id, "alice", "customer changed their mind")
        .await
        .unwrap();
    assert_eq!(outcome, CancelOutcome::Cancelled);
    let done = engine.wait_until_finished(id, WAIT).await.unwrap();
    assert_eq!(done.status, Status::Cancelled);
    assert_eq!(saga.undone.lock().unwrap().len(), 3);
    let history = engine.history(id, 100).await.unwrap();
    let manual = history
        .iter()
        .find(|h| h.kind == HistoryKind::ManualAction)
        .unwrap();
    assert_eq!(manual.detail["actor"], json!("alice"));
    assert_eq!(manual.detail["action"], json!("cancel"));
    assert!(
        engine.cancel(id, "alice", "again").await.is_err(),
        "an ended journey cannot be cancelled"
    );
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn a_deadline_fails_a_journey_that_waits_too_long(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let engine = support::engine(&db, &clock, |b| b.register(AwaitGo)).await;
    let worker = engine.run_worker();
    let id = engine
        .start::<AwaitGo>(AwaitGoInput {
            sleep_first_secs: 0,
            timeout_secs: 0,
            correlation: None,
            deadline_secs: Some(3600),
        })
        .await
        .unwrap();
    let r = engine
        .wait_for(id, WAIT, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    assert_eq!(
        r.ready_at_ms, r.deadline_at_ms,
        "an endless wait still wakes for its deadline"
    );
    clock.advance(Duration::from_secs(3600));
    let done = engine.wait_until_finished(id, WAIT).await.unwrap();
    assert_eq!(done.status, Status::Failed);
    assert!(done.failure.unwrap().starts_with("deadline passed"));
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn versions_run_side_by_side(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    // An engine that knows only v1 starts a journey.
    let old = support::engine(&db, &clock, |b| b.register(VersionedV1)).await;
    let w_old = old.run_worker();
    let v1 = old.start::<VersionedV1>(()).await.unwrap();
    old.wait_for(v1, WAIT, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    w_old.shutdown(Duration::from_secs(5)).await;

    // A new deployment registers both versions: v1 journeys go on as v1,
    // new ones start on v2.
    let both = support::engine(&db, &clock, |b| {
        b.register(VersionedV1).register(VersionedV2)
    })
    .await;
    let w = both.run_worker();
    let v2 = both
        .start_json("test.versioned", json!(null), StartOptions::default())
        .await
        .unwrap()
        .id;
    assert_eq!(both.journey(v2).await.unwrap().version, 2);
    for id in [v1, v2] {
        both.wait_for(id, WAIT, |r| r.status == Status::Waiting)
            .await
            .unwrap();
        both.signal(NewSignal::to_journey(id, "continue", json!(null)).unwrap())
            .await
            .unwrap();
    }
    both.wait_until_finished(v1, WAIT).await.unwrap();
    both.wait_until_finished(v2, WAIT).await.unwrap();
    assert_eq!(
        both.output::<String>(v1).await.unwrap().unwrap(),
        "v1 finished (from v1)"
    );
    assert_eq!(
        both.output::<String>(v2).await.unwrap().unwrap(),
        "v2 finished (from v2)"
    );
    w.shutdown(Duration::from_secs(5)).await;

    // A deployment with only v2 resumes a v1 journey by upgrading its state.
    let old = support::engine(&db, &clock, |b| b.register(VersionedV1)).await;
    let w_old = old.run_worker();
    let v1b = old.start::<VersionedV1>(()).await.unwrap();
    old.wait_for(v1b, WAIT, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    w_old.shutdown(Duration::from_secs(5)).await;
    let new = support::engine(&db, &clock, |b| b.register(VersionedV2)).await;
    let w = new.run_worker();
    new.signal(NewSignal::to_journey(v1b, "continue", json!(null)).unwrap())
        .await
        .unwrap();
    let done = new.wait_until_finished(v1b, WAIT).await.unwrap();
    assert_eq!(done.version, 2);
    assert_eq!(
        new.output::<String>(v1b).await.unwrap().unwrap(),
        "v2 finished (from v1, upgraded)"
    );
    w.shutdown(Duration::from_secs(5)).await;
}

async fn invalid_input_is_refused_and_nothing_is_stored(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let engine = support::engine(&db, &clock, |b| b.register(AwaitGo)).await;
    let err = engine
        .start_json(
            "test.await-go",
            json!({"sleep_first_secs": "ten"}),
            StartOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot start test.await-go"),
        "{err}"
    );
    let err = engine
        .start_json("no.such-workflow", json!({}), StartOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not registered"), "{err}");
    let listed = engine
        .store()
        .list(&handover_engine::store::ListFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(listed.is_empty());
}

async fn starting_twice_with_one_id_is_idempotent(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let engine = support::engine(&db, &clock, |b| b.register(AwaitGo).register(Accumulate)).await;
    let id = JourneyId::new();
    let input = || AwaitGoInput {
        sleep_first_secs: 0,
        timeout_secs: 1,
        correlation: None,
        deadline_secs: None,
    };
    let a = engine
        .start_with::<AwaitGo>(input(), StartOptions::with_id(id))
        .await
        .unwrap();
    let b = engine
        .start_with::<AwaitGo>(input(), StartOptions::with_id(id))
        .await
        .unwrap();
    assert!(a.created && !b.created);
    assert!(
        engine
            .start_with::<Accumulate>((), StartOptions::with_id(id))
            .await
            .is_err()
    );
}

both!(
    five_steps_complete_with_one_commit_per_step,
    crash_at_every_boundary_resumes_exactly,
    a_timer_survives_and_fires_on_time,
    an_early_signal_is_kept_until_the_wait_begins,
    a_signal_wakes_a_waiting_journey_at_once,
    duplicate_signals_take_effect_once,
    unknown_targets_are_stored_and_adopted_later,
    retries_back_off_and_know_they_may_have_run,
    retry_after_is_respected,
    exhausted_retries_need_attention,
    compensations_run_in_reverse_order,
    cancellation_compensates_and_is_recorded,
    a_deadline_fails_a_journey_that_waits_too_long,
    versions_run_side_by_side,
    invalid_input_is_refused_and_nothing_is_stored,
    starting_twice_with_one_id_is_idempotent,
);
