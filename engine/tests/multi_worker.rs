//! Several workers on one database: no step runs twice at once, and a
//! worker that lost its lease cannot commit.

mod support;

use std::sync::Arc;
use std::time::Duration;

use handover_engine::{Engine, ManualClock, Status};
use support::TestDb;
use support::workflows::{FakeProvider, FiveSteps};
use tokio::sync::Notify;

async fn two_workers_share_200_journeys_without_overlap(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let provider = Arc::new(FakeProvider::default());
    let wf = FiveSteps {
        provider: provider.clone(),
    };
    let a = support::engine(&db, &clock, |b| b.register(wf.clone()).node_name("a")).await;
    let b = support::engine(&db, &clock, |b| b.register(wf.clone()).node_name("b")).await;
    let (wa, wb) = (a.run_worker(), b.run_worker());
    let mut ids = Vec::new();
    for chunk in 0..4 {
        let engine = if chunk % 2 == 0 { &a } else { &b };
        ids.extend(engine.start_many::<FiveSteps>(vec![(); 50]).await.unwrap());
    }
    for id in &ids {
        let done = a
            .wait_until_finished(*id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(done.status, Status::Completed);
    }
    assert_eq!(
        provider.overlaps.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a step ran twice at once"
    );
    assert_eq!(provider.keys().len(), 1000);
    assert_eq!(provider.total_calls(), 1000, "no step ran twice");
    let (sa, sb) = (
        a.metrics().steps_completed.get(),
        b.metrics().steps_completed.get(),
    );
    assert_eq!(sa + sb, 1000);
    assert!(sa > 0 && sb > 0, "both workers took work: a={sa} b={sb}");
    for id in ids.iter().take(20) {
        let history = a.history(*id, 100).await.unwrap();
        let steps = history
            .iter()
            .filter(|h| h.kind == handover_engine::HistoryKind::StepCompleted)
            .count();
        assert_eq!(steps, 5);
    }
    wa.shutdown(Duration::from_secs(5)).await;
    wb.shutdown(Duration::from_secs(5)).await;
}

async fn a_paused_worker_cannot_commit_after_losing_its_lease(db: TestDb) {
    let provider = Arc::new(FakeProvider::default());
    let wf = FiveSteps {
        provider: provider.clone(),
    };
    // The zombie's clock never moves: like a SIGSTOPped process, it sends no
    // heartbeat. The rest of the world's clock moves on.
    let zombie_clock = ManualClock::at_fixed_instant();
    let world = ManualClock::at_fixed_instant();
    let gate = Arc::new(Notify::new());
    *provider.gate.lock().unwrap() = Some(gate.clone());

    let zombie = support::engine(&db, &zombie_clock, |b| {
        b.register(wf.clone()).node_name("zombie")
    })
    .await;
    let wz = zombie.run_worker();
    let id = zombie.start::<FiveSteps>(()).await.unwrap();
    // Wait until the zombie is inside step one's outbound call.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while provider.total_calls() == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // Past the lease TTL another worker takes over and finishes the journey.
    world.advance(Duration::from_secs(31));
    let healthy =
        support::engine(&db, &world, |b| b.register(wf.clone()).node_name("healthy")).await;
    let wh = healthy.run_worker();
    let done = healthy
        .wait_until_finished(id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(done.status, Status::Completed);
    let epoch_after = done.lease_epoch;

    // The zombie wakes up and tries to commit its step: refused.
    gate.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while zombie.metrics().lease_losses.get() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the zombie's commit was not refused"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = healthy.journey(id).await.unwrap();
    assert_eq!(after.status, Status::Completed);
    assert_eq!(after.lease_epoch, epoch_after, "the zombie wrote nothing");
    assert_eq!(
        zombie.metrics().steps_completed.get(),
        1,
        "it ran its step..."
    );
    assert_eq!(
        zombie.metrics().committed_steps.get(),
        0,
        "...but its commit was refused"
    );
    let history = healthy.history(id, 100).await.unwrap();
    let steps = history
        .iter()
        .filter(|h| h.kind == handover_engine::HistoryKind::StepCompleted)
        .count();
    assert_eq!(steps, 5, "no step recorded twice");
    // Both ran step one with the same key: the provider applied it once.
    assert_eq!(provider.keys().len(), 5);
    assert_eq!(provider.total_calls(), 6);
    wz.crash().await;
    wh.shutdown(Duration::from_secs(5)).await;
    let _: &Engine = &healthy;
}

both!(
    two_workers_share_200_journeys_without_overlap,
    a_paused_worker_cannot_commit_after_losing_its_lease,
);
