//! The store's own baseline, measured in the same run: single-row insert
//! transactions through the same driver (sqlx) and the same pool the engine
//! writes with, by 1 and by 16 concurrent writers. Every other number is
//! also given as a ratio to this, so results from a loaded or a quiet machine
//! can be compared.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use super::env::{Fresh, Pool, Summary, ms, round3};

/// What the database does on its own.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    /// One writer: commits per second.
    pub one_per_s: f64,
    /// One writer: commit latency.
    pub one: Summary,
    /// Sixteen writers: commits per second.
    pub sixteen_per_s: f64,
    /// Sixteen writers: commit latency.
    pub sixteen: Summary,
}

impl Baseline {
    /// As JSON.
    pub fn json(&self) -> Value {
        json!({
            "what": "single-row INSERT transactions, same driver and pool as the engine",
            "one_writer": { "commits_per_s": self.one_per_s.round(), "latency": self.one.json() },
            "sixteen_writers": { "commits_per_s": self.sixteen_per_s.round(), "latency": self.sixteen.json() },
        })
    }

    /// One commit's latency (the 1-writer median), in ms.
    pub fn commit_ms(&self) -> f64 {
        self.one.p50
    }
}

async fn insert(pool: &Pool, id: i64) -> Result<()> {
    match pool {
        Pool::Sqlite(p) => {
            sqlx::query("INSERT INTO bench_baseline (id, payload) VALUES (?, 'x')")
                .bind(id)
                .execute(p)
                .await?;
        }
        Pool::Postgres(p) => {
            sqlx::query("INSERT INTO bench_baseline (id, payload) VALUES ($1, 'x')")
                .bind(id)
                .execute(p)
                .await?;
        }
    }
    Ok(())
}

async fn writers(
    pool: &Pool,
    n: usize,
    run_for: Duration,
    next: &Arc<AtomicI64>,
) -> Result<(f64, Summary)> {
    let started = Instant::now();
    let deadline = started + run_for;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let pool = pool.clone();
        let next = next.clone();
        tasks.spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                insert(&pool, next.fetch_add(1, Ordering::Relaxed)).await?;
                lat.push(ms(t0.elapsed()));
            }
            anyhow::Ok(lat)
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined??);
    }
    let per_s = all.len() as f64 / started.elapsed().as_secs_f64();
    Ok((per_s, Summary::of(all)))
}

/// Measures the baseline on `fresh` (a table of its own in that store).
pub async fn measure(fresh: &Fresh, run_for: Duration) -> Result<Baseline> {
    let create = "CREATE TABLE bench_baseline (id BIGINT PRIMARY KEY, payload TEXT NOT NULL)";
    match &fresh.pool {
        Pool::Sqlite(p) => {
            sqlx::query(create).execute(p).await?;
        }
        Pool::Postgres(p) => {
            sqlx::query(create).execute(p).await?;
        }
    }
    let next = Arc::new(AtomicI64::new(1));
    // Warm the pool's connections first.
    writers(&fresh.pool, 16, Duration::from_millis(200), &next).await?;
    let (one_per_s, one) = writers(&fresh.pool, 1, run_for, &next).await?;
    let (sixteen_per_s, sixteen) = writers(&fresh.pool, 16, run_for, &next).await?;
    Ok(Baseline {
        one_per_s,
        one,
        sixteen_per_s,
        sixteen,
    })
}

/// `x / base`, rounded, or null when the base is zero.
pub fn ratio(x: f64, base: f64) -> Value {
    if base > 0.0 {
        json!(round3(x / base))
    } else {
        Value::Null
    }
}
