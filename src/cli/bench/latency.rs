//! W1, latency: one journey of N no-op steps at a time (closed loop), for
//! N = 1, 10, 100. The journey time runs from `start` to the commit of its
//! last step (seen through the engine's after-commit hook, not by polling).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use handover_engine::{JourneyId, StartOptions, WorkerConfig};
use serde_json::{Value, json};

use super::baseline::{Baseline, ratio};
use super::env::{Observer, Steps, StepsInput, Summary, Target, engine, ms, round3};

/// Journeys per step count (after two warm-up journeys each).
fn plan(quick: bool) -> [(u32, usize); 3] {
    if quick {
        [(1, 20), (10, 10), (100, 3)]
    } else {
        [(1, 200), (10, 100), (100, 20)]
    }
}

const WARM_UP: usize = 2;

/// Runs W1.
pub async fn run(target: &Target, quick: bool, baseline: &Baseline) -> Result<Value> {
    let fresh = target.fresh("w1").await?;
    let obs = Observer::new();
    let engine = engine(fresh.store.clone(), &obs, WorkerConfig::default()).await?;
    let worker = engine.run_worker();
    let mut rows = Vec::new();
    let mut p50 = Vec::new();
    let result: Result<()> = async {
        for (n, journeys) in plan(quick) {
            let commits_before = fresh.store.stats().commits();
            let mut times = Vec::with_capacity(journeys);
            for k in 0..journeys + WARM_UP {
                let id = JourneyId::new();
                let done = obs.when_committed(id, i64::from(n) - 1);
                let t0 = Instant::now();
                engine
                    .start_with::<Steps>(StepsInput { steps: n }, StartOptions::with_id(id))
                    .await?;
                let at = tokio::time::timeout(Duration::from_secs(60), done)
                    .await
                    .context("a W1 journey did not finish within 60 s")??;
                if k >= WARM_UP {
                    times.push(ms(at.saturating_duration_since(t0)));
                }
            }
            let commits = fresh.store.stats().commits() - commits_before;
            let steps = u64::from(n) * (journeys + WARM_UP) as u64;
            let summary = Summary::of(times);
            p50.push((n, summary.p50));
            rows.push(json!({
                "steps": n,
                "journey": summary.json(),
                "commits_per_step": round3(commits as f64 / steps as f64),
            }));
        }
        Ok(())
    }
    .await;
    worker.shutdown(Duration::from_secs(5)).await;
    fresh.close().await?;
    result?;
    let t1 = p50.iter().find(|(n, _)| *n == 1).map_or(0.0, |(_, t)| *t);
    let overhead = |steps: u32| {
        p50.iter()
            .find(|(n, _)| *n == steps)
            .map_or(0.0, |(n, t)| (t - t1) / f64::from(n - 1))
    };
    let per_step = overhead(100);
    Ok(json!({
        "runs": rows,
        "per_step_overhead_ms": round3(per_step),
        "per_step_overhead_ms_from_n10": round3(overhead(10)),
        "per_step_overhead_vs_baseline_commit": ratio(per_step, baseline.commit_ms()),
        "target": "per-step overhead <= 1.5x one baseline commit",
        "met": per_step <= 1.5 * baseline.commit_ms(),
    }))
}
