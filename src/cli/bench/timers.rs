//! W3, timers: many journeys sleep until the same instant, then as many
//! spread evenly over a window. Lateness is measured inside the woken step
//! (its clock reading minus the instant it was due). While all of the first
//! group sleep, the engine's own store queries are counted for a few seconds:
//! an idle engine must not poll the database harder because more journeys
//! sleep.

use std::time::{Duration, Instant};

use anyhow::Result;
use handover_engine::WorkerConfig;
use serde_json::{Value, json};

use super::env::{
    Observer, Sleep, SleepInput, Summary, Target, WAIT_LIMIT, engine, now_ms, round3,
};

const START_BATCH: usize = 500;

/// Lateness p99 target, ms.
const P99_TARGET_MS: f64 = 20.0;

/// Runs W3.
pub async fn run(target: &Target, quick: bool) -> Result<Value> {
    let (journeys, spread_ms, idle_window) = if quick {
        (1_000usize, 2_000i64, Duration::from_secs(1))
    } else {
        (10_000, 10_000, Duration::from_secs(4))
    };
    let fresh = target.fresh("w3").await?;
    let obs = Observer::new();
    let config = WorkerConfig::default();
    let lookahead = config.lookahead;
    let engine = engine(fresh.store.clone(), &obs, config).await?;
    let worker = engine.run_worker();
    let result: Result<Value> = async {
        // Phase 1: all at one instant, far enough ahead that every journey
        // is parked first and the idle window fits before it.
        let setup_ms = 2_000 + journeys as i64 / 2;
        let instant = now_ms() + setup_ms + (idle_window + lookahead).as_millis() as i64 + 1_000;
        start(&engine, journeys, |_| instant).await?;
        let t_parking = Instant::now();
        obs.wait_committed(0, journeys as u64, WAIT_LIMIT).await?;
        let parked_in = t_parking.elapsed();
        // Let the last commits' notifications settle, then count.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let window_left_ms = instant - now_ms() - lookahead.as_millis() as i64 - 300;
        let window = idle_window.min(Duration::from_millis(window_left_ms.max(0) as u64));
        let q0 = fresh.store.stats().queries();
        let t0 = Instant::now();
        tokio::time::sleep(window).await;
        let idle_queries = fresh.store.stats().queries() - q0;
        let idle_secs = t0.elapsed().as_secs_f64();
        obs.wait_committed(1, journeys as u64, WAIT_LIMIT).await?;
        let same = Summary::of(obs.take_lateness());

        // Phase 2: spread evenly over the window.
        let first = now_ms() + setup_ms + 1_000;
        let step = spread_ms as f64 / journeys as f64;
        start(&engine, journeys, |i| first + (i as f64 * step) as i64).await?;
        obs.wait_committed(1, 2 * journeys as u64, WAIT_LIMIT)
            .await?;
        let spread = Summary::of(obs.take_lateness());

        let idle_qps = if idle_secs > 0.0 {
            idle_queries as f64 / idle_secs
        } else {
            f64::NAN
        };
        Ok(json!({
            "journeys_per_phase": journeys,
            "parked_in_s": round3(parked_in.as_secs_f64()),
            "same_instant_lateness": same.json(),
            "spread_over_ms": spread_ms,
            "spread_lateness": spread.json(),
            "idle_window_s": round3(idle_secs),
            "idle_store_queries": idle_queries,
            "idle_store_queries_per_s": round3(idle_qps),
            "target": "lateness p99 <= 20 ms; idle queries a few per second per engine",
            "met": same.p99 <= P99_TARGET_MS && spread.p99 <= P99_TARGET_MS && idle_qps <= 5.0,
        }))
    }
    .await;
    worker.shutdown(Duration::from_secs(5)).await;
    fresh.close().await?;
    result
}

async fn start(
    engine: &handover_engine::Engine,
    journeys: usize,
    until: impl Fn(usize) -> i64,
) -> Result<()> {
    let mut i = 0;
    while i < journeys {
        let n = (journeys - i).min(START_BATCH);
        let inputs = (i..i + n)
            .map(|k| SleepInput { until_ms: until(k) })
            .collect();
        engine.start_many::<Sleep>(inputs).await?;
        i += n;
    }
    Ok(())
}
