//! W2, throughput: many three-step journeys started as fast as possible
//! (batches of 500 per transaction, while the worker already drains them)
//! with the default worker settings; the clock stops when the last one's
//! last step is committed.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use handover_engine::WorkerConfig;
use serde_json::{Value, json};

use super::baseline::{Baseline, ratio};
use super::env::{
    Backend, Observer, Steps, StepsInput, Target, WAIT_LIMIT, engine, reset_peak_rss, round3,
    rss_kib,
};

const STEPS: u32 = 3;
const START_BATCH: usize = 500;

/// Runs W2.
pub async fn run(target: &Target, quick: bool, baseline: &Baseline) -> Result<Value> {
    let journeys: usize = if quick { 2_000 } else { 20_000 };
    let fresh = target.fresh("w2").await?;
    let obs = Observer::new();
    let engine = engine(fresh.store.clone(), &obs, WorkerConfig::default()).await?;
    reset_peak_rss();
    let worker = engine.run_worker();
    let stats = fresh.store.stats();
    let (commits0, queries0) = (stats.commits(), stats.queries());
    let (worker_commits0, committed0) = (
        engine.metrics().commits.get(),
        engine.metrics().committed_steps.get(),
    );
    let t0 = Instant::now();
    let starter = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut left = journeys;
            while left > 0 {
                let n = left.min(START_BATCH);
                let inputs = (0..n).map(|_| StepsInput { steps: STEPS }).collect();
                engine.start_many::<Steps>(inputs).await?;
                left -= n;
            }
            anyhow::Ok(Instant::now())
        })
    };
    let drained = obs
        .wait_committed(STEPS as usize - 1, journeys as u64, WAIT_LIMIT)
        .await;
    let elapsed = t0.elapsed();
    let started_all = starter.await.context("the starter task")??;
    let commits = stats.commits() - commits0;
    let queries = stats.queries() - queries0;
    let worker_commits = engine.metrics().commits.get() - worker_commits0;
    let committed = engine.metrics().committed_steps.get() - committed0;
    let (rss, peak) = rss_kib();
    worker.shutdown(Duration::from_secs(5)).await;
    fresh.close().await?;
    drained?;
    let secs = elapsed.as_secs_f64();
    let steps = (journeys as u64 * u64::from(STEPS)) as f64;
    let steps_per_s = steps / secs;
    let commits_per_s = commits as f64 / secs;
    let steps_target = match target.backend {
        Backend::Postgres => 5_000.0,
        Backend::Sqlite => 20_000.0,
    };
    let mut met = steps_per_s >= steps_target;
    if target.backend == Backend::Postgres {
        // Read as: the engine turns at least 0.4 of the database's own
        // commit rate into steps.
        met &= steps_per_s >= 0.4 * baseline.sixteen_per_s;
    }
    Ok(json!({
        "journeys": journeys,
        "steps_per_journey": STEPS,
        "seconds_to_drain": round3(secs),
        "seconds_to_start_all": round3(started_all.saturating_duration_since(t0).as_secs_f64()),
        "journeys_per_s": (journeys as f64 / secs).round(),
        "steps_per_s": steps_per_s.round(),
        "store_commits": commits,
        "store_commits_per_s": commits_per_s.round(),
        "store_queries": queries,
        "commits_per_step": round3(commits as f64 / steps),
        "worker_commit_transactions": worker_commits,
        "steps_per_worker_commit": round3(committed as f64 / worker_commits.max(1) as f64),
        "steps_per_s_vs_baseline_16_writers": ratio(steps_per_s, baseline.sixteen_per_s),
        "commits_per_s_vs_baseline_16_writers": ratio(commits_per_s, baseline.sixteen_per_s),
        "rss_kib": rss,
        "peak_rss_kib": peak,
        "target": match target.backend {
            Backend::Postgres => "Postgres >= 5,000 steps/s and steps/s >= 0.4x the 16-writer baseline commits/s; ~1 commit per step",
            Backend::Sqlite => "SQLite >= 20,000 steps/s; ~1 commit per step",
        },
        "met": met,
    }))
}
