//! Operators' views and repairs, on both stores: each stuck reason, and each
//! repair out of it, audited.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use handover_engine::admin::StuckKind;
use handover_engine::store::ListFilter;
use handover_engine::{
    Clock, CorrelationKey, EngineError, HistoryKind, ManualClock, NewSignal, Status,
};
use serde_json::json;
use support::TestDb;
use support::workflows::*;
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_secs(20);

async fn stuck_reasons_and_repairs_out_of_them(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let toggle = Toggle::default();
    let saga = Saga::default();
    let engine = support::engine(&db, &clock, |b| {
        b.register(toggle.clone())
            .register(AwaitGo)
            .register(saga.clone())
    })
    .await;
    let worker = engine.run_worker();

    // 1. Retries exhausted.
    toggle.broken.store(true, Ordering::SeqCst);
    let exhausted = engine.start::<Toggle>(false).await.unwrap();
    engine
        .wait_for(exhausted, WAIT, |r| r.attempt == 2)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2));
    engine
        .wait_for(exhausted, WAIT, |r| r.status == Status::NeedsAttention)
        .await
        .unwrap();

    // 2. Overdue: waiting past the step's expected 10 minutes.
    let overdue = engine
        .start::<AwaitGo>(AwaitGoInput {
            sleep_first_secs: 0,
            timeout_secs: 0,
            correlation: None,
            deadline_secs: None,
        })
        .await
        .unwrap();
    engine
        .wait_for(overdue, WAIT, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(601));

    // 3. An unmatched callback.
    let key = CorrelationKey::new("test.ref", "NOBODY").unwrap();
    engine
        .signal(
            NewSignal::to_correlation(key, "go", json!({"code": "123456"}))
                .unwrap()
                .source("ingress:test"),
        )
        .await
        .unwrap();

    // 4. A compensation that keeps failing.
    saga.flaky_undo.store(1000, Ordering::SeqCst);
    let failing = engine
        .start::<Saga>(SagaInput { then_fail: true })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = engine.journey(failing).await.unwrap();
        if r.status == Status::NeedsAttention {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "compensation never gave up: {r:?}"
        );
        clock.advance(Duration::from_secs(300));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let stuck = engine.stuck(100).await.unwrap();
    let kind_of = |id| stuck.iter().find(|s| s.journey == Some(id)).map(|s| s.kind);
    assert_eq!(kind_of(exhausted), Some(StuckKind::RetriesExhausted));
    assert_eq!(kind_of(overdue), Some(StuckKind::Overdue));
    assert_eq!(kind_of(failing), Some(StuckKind::CompensationFailing));
    let unmatched = stuck
        .iter()
        .find(|s| s.kind == StuckKind::UnmatchedCallback)
        .unwrap();
    assert!(
        unmatched.reason.contains("test.ref:NOBODY"),
        "{}",
        unmatched.reason
    );
    let overdue_line = &stuck
        .iter()
        .find(|s| s.journey == Some(overdue))
        .unwrap()
        .reason;
    assert!(
        overdue_line.contains("usually done within 10 min")
            && overdue_line.contains("waiting for go"),
        "{overdue_line}"
    );
    let exhausted_line = &stuck
        .iter()
        .find(|s| s.journey == Some(exhausted))
        .unwrap()
        .reason;
    assert!(exhausted_line.contains("provider down"), "{exhausted_line}");

    // Repairs. Retry after the provider is fixed: the step knows it may have run.
    toggle.broken.store(false, Ordering::SeqCst);
    let report = engine
        .retry_now(exhausted, "alice", "provider fixed the outage")
        .await
        .unwrap();
    assert_eq!(report.status, Status::Runnable);
    engine.wait_until_finished(exhausted, WAIT).await.unwrap();
    assert_eq!(
        engine.output::<String>(exhausted).await.unwrap().unwrap(),
        "reconciled first"
    );
    let audit = engine.history(exhausted, 100).await.unwrap();
    let entry = audit
        .iter()
        .find(|h| h.kind == HistoryKind::ManualAction)
        .unwrap();
    assert_eq!(entry.detail["actor"], json!("alice"));
    assert_eq!(entry.detail["reason"], json!("provider fixed the outage"));

    // Skip the overdue wait (the workflow declares it skippable).
    let report = engine
        .skip(overdue, "bob", "customer confirmed by phone")
        .await
        .unwrap();
    assert!(!report.diff.is_empty());
    engine.wait_until_finished(overdue, WAIT).await.unwrap();
    assert_eq!(
        engine.output::<String>(overdue).await.unwrap().unwrap(),
        "timed out"
    );
    let entry = engine
        .history(overdue, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.kind == HistoryKind::ManualAction)
        .unwrap();
    assert_eq!(entry.detail["to_step"], json!("timed-out"));
    assert!(entry.detail["diff"].is_array());

    // Retry the failing compensation once it can succeed.
    saga.flaky_undo.store(0, Ordering::SeqCst);
    engine
        .retry_now(failing, "carol", "refund service is back")
        .await
        .unwrap();
    let done = engine.wait_until_finished(failing, WAIT).await.unwrap();
    assert_eq!(done.status, Status::Failed);
    // Every compensation ran. Compensations are at least once (each is
    // recorded when it commits): the loop above jumps the clock 300 s at a
    // time, past the 30 s lease, so under load a compensation in flight may
    // lose its lease and run again under the next claim (its commit is then
    // refused). Exactly-once effects come from keys, not from this count.
    let undone: std::collections::BTreeSet<String> =
        saga.undone.lock().unwrap().iter().cloned().collect();
    assert_eq!(undone.len(), 3, "{undone:?}");

    // Dismiss the unmatched callback.
    assert!(
        engine
            .dismiss_signal(unmatched.signal_id.unwrap())
            .await
            .unwrap()
    );
    let stuck = engine.stuck(100).await.unwrap();
    assert!(stuck.is_empty(), "{stuck:?}");
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn rewind_replays_a_failed_journey(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let toggle = Toggle::default();
    let engine = support::engine(&db, &clock, |b| b.register(toggle.clone())).await;
    let worker = engine.run_worker();
    toggle.broken.store(true, Ordering::SeqCst);
    let id = engine.start::<Toggle>(true).await.unwrap();
    let failed = engine.wait_until_finished(id, WAIT).await.unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert!(
        engine.rewind(id, 2, "dan", "replay").await.is_err(),
        "entry 2 recorded no state"
    );
    toggle.broken.store(false, Ordering::SeqCst);
    let report = engine
        .rewind(id, 1, "dan", "provider fixed the region setting")
        .await
        .unwrap();
    assert_eq!(report.action, "rewind");
    let done = engine.wait_until_finished(id, WAIT).await.unwrap();
    assert_eq!(done.status, Status::Completed);
    assert!(
        engine.rewind(id, 1, "dan", "again").await.is_err(),
        "a completed journey is not replayed"
    );
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn patch_state_refuses_a_state_of_the_wrong_shape(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let engine = support::engine(&db, &clock, |b| b.register(AwaitGo).register(Accumulate)).await;
    let worker = engine.run_worker();
    let id = engine
        .start::<AwaitGo>(AwaitGoInput {
            sleep_first_secs: 0,
            timeout_secs: 0,
            correlation: None,
            deadline_secs: None,
        })
        .await
        .unwrap();
    engine
        .wait_for(id, WAIT, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    let err = engine
        .patch_state(id, json!({"Nope": 1}), "erin", "typo")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("does not fit test.await-go"),
        "{err}"
    );
    let before = engine.history(id, 100).await.unwrap().len();
    assert_eq!(
        before,
        engine.history(id, 100).await.unwrap().len(),
        "a refused patch writes nothing"
    );
    let report = engine
        .patch_state(id, json!("TimedOut"), "erin", "customer gave up")
        .await
        .unwrap();
    assert_eq!(report.diff[0].path, "/");
    engine.wait_until_finished(id, WAIT).await.unwrap();
    assert_eq!(
        engine.output::<String>(id).await.unwrap().unwrap(),
        "timed out"
    );

    // Skipping is refused where the workflow declares no skip.
    let acc = engine.start::<Accumulate>(()).await.unwrap();
    engine
        .wait_for(acc, WAIT, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    let err = engine.skip(acc, "erin", "try").await.unwrap_err();
    assert!(err.to_string().contains("cannot be skipped"), "{err}");
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn a_repair_never_races_a_worker(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let toggle = Toggle::default();
    let gate = Arc::new(Notify::new());
    *toggle.gate.lock().unwrap() = Some(gate.clone());
    let engine = support::engine(&db, &clock, |b| b.register(toggle.clone())).await;
    let worker = engine.run_worker();
    let id = engine.start::<Toggle>(false).await.unwrap();
    // The worker is inside the step (held at the gate).
    let deadline = tokio::time::Instant::now() + WAIT;
    while toggle.gate.lock().unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let err = engine
        .retry_now(id, "frank", "impatient")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("nothing was changed"));
    let err = engine
        .patch_state(id, json!({"Done": {"note": "x"}}), "frank", "x")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Busy { .. }));
    // A cancel is queued and applied by the worker right after its step.
    let outcome = engine.cancel(id, "frank", "customer called").await.unwrap();
    assert_eq!(outcome, handover_engine::CancelOutcome::Requested);
    gate.notify_one();
    let done = engine.wait_until_finished(id, WAIT).await.unwrap();
    assert_eq!(done.status, Status::Cancelled);
    assert!(
        done.failure
            .unwrap()
            .contains("cancelled by frank: customer called")
    );
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn views_are_redacted_and_searchable(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let engine = support::engine(&db, &clock, |b| b.register(AwaitGo)).await;
    let worker = engine.run_worker();
    let id = engine
        .start::<AwaitGo>(AwaitGoInput {
            sleep_first_secs: 0,
            timeout_secs: 60,
            correlation: Some("ORDER-77".into()),
            deadline_secs: Some(7200),
        })
        .await
        .unwrap();
    engine
        .wait_for(id, WAIT, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    engine
        .signal(
            NewSignal::to_journey(
                id,
                "other",
                json!({"otp": "987654", "msisdn": "966501234567"}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let found = engine
        .list(&ListFilter {
            key: Some("ORDER-77".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
    let by_status = engine
        .list(&ListFilter {
            statuses: vec![Status::Waiting],
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_status.len(), 1);
    let view = engine.show(id).await.unwrap();
    let waiting = view.waiting.as_ref().unwrap();
    assert_eq!(waiting.signals, vec!["go"]);
    assert_eq!(waiting.on_timeout.as_deref(), Some("timed-out"));
    assert!(
        waiting
            .correlation_keys
            .contains(&"test.ref:ORDER-77".to_string())
    );
    assert!(view.deadline.is_some());
    assert!(view.skippable);
    let text = serde_json::to_string(&view).unwrap();
    assert!(!text.contains("987654"), "an OTP leaked into show");
    assert!(
        !text.contains("966501234567"),
        "a full MSISDN leaked into show"
    );
    let _ = clock.now();
    worker.shutdown(Duration::from_secs(5)).await;
}

both!(
    stuck_reasons_and_repairs_out_of_them,
    rewind_replays_a_failed_journey,
    patch_state_refuses_a_state_of_the_wrong_shape,
    a_repair_never_races_a_worker,
    views_are_redacted_and_searchable,
);
