//! A scheduled job fires once per tick across nodes sharing a database.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handover_engine::schedule::Scheduler;
use handover_engine::{Engine, SystemClock};
use support::TestDb;

async fn node(db: &TestDb) -> Engine {
    Engine::builder(db.store().await)
        .clock(Arc::new(SystemClock))
        .build()
        .await
        .unwrap()
}

async fn a_tick_runs_once_across_two_nodes(db: TestDb) {
    let runs: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let mut handles = Vec::new();
    for name in ["a", "b"] {
        let engine = node(&db).await;
        let runs = runs.clone();
        let scheduler = Scheduler::new(&engine, name)
            .job("every-second", "* * * * * *", move |engine: Engine| {
                let runs = runs.clone();
                async move {
                    let now = engine.clock().now();
                    let tick = now.format("%H:%M:%S").to_string();
                    runs.lock()
                        .unwrap()
                        .entry(tick)
                        .or_default()
                        .push(name.to_owned());
                    Ok("ran".to_owned())
                }
            })
            .unwrap();
        handles.push(scheduler.start().await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(3_600)).await;
    for h in handles {
        h.shutdown().await;
    }
    let runs = runs.lock().unwrap().clone();
    assert!(runs.len() >= 2, "the job ran: {runs:?}");
    let total: usize = runs.values().map(Vec::len).sum();
    assert_eq!(total, runs.len(), "each tick ran exactly once: {runs:?}");
}

both!(a_tick_runs_once_across_two_nodes);
