//! W6, scale: a store with many finished journeys and some waiting ones
//! (written with set-based SQL: running a million journeys through the
//! engine first would take longer than the whole bench), then the latency of
//! the claim query, `journeys list --key` and `journeys stuck`, and the
//! resident memory of an engine running a worker on it, compared with the
//! same engine on the empty store.

use std::time::{Duration, Instant};

use anyhow::Result;
use handover_engine::WorkerConfig;
use serde_json::{Value, json};

use super::env::{Observer, Pool, Summary, Target, engine, ms, now_ms, round3, rss_kib};
use crate::cli::JourneysCommand;

/// Rows written per transaction.
const INSERT_BATCH: i64 = 100_000;

/// Query p99 target, ms.
const P99_TARGET_MS: f64 = 10.0;

/// Runs W6.
pub async fn run(target: &Target, quick: bool) -> Result<Value> {
    let (finished, waiting, samples) = if quick {
        (20_000i64, 1_000i64, 30usize)
    } else {
        (1_000_000, 10_000, 200)
    };
    let fresh = target.fresh("w6").await?;
    let obs = Observer::new();
    let engine = engine(fresh.store.clone(), &obs, WorkerConfig::default()).await?;
    let worker = engine.run_worker();
    let result: Result<Value> = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (rss_empty, _) = rss_kib();
        let now = now_ms();
        let t0 = Instant::now();
        let mut from = 1;
        while from <= finished {
            let to = (from + INSERT_BATCH - 1).min(finished);
            insert(&fresh.pool, Kind::Finished, from, to, now).await?;
            from = to + 1;
        }
        insert(&fresh.pool, Kind::Waiting, 1, waiting, now).await?;
        insert(&fresh.pool, Kind::Attention, 1, 10, now).await?;
        if let Pool::Postgres(p) = &fresh.pool {
            // What autovacuum would have done by now in production.
            sqlx::query("ANALYZE journeys").execute(p).await?;
        }
        let filled_in = t0.elapsed();

        let store = fresh.store.clone();
        let mut claim = Vec::with_capacity(samples);
        for _ in 0..samples {
            let now = now_ms();
            let t = Instant::now();
            let rows = store
                .claim("bench-scale-probe", now, 500, now + 30_000, 256)
                .await?;
            claim.push(ms(t.elapsed()));
            anyhow::ensure!(rows.is_empty(), "the scale store had due journeys");
        }
        let mut list = Vec::with_capacity(samples);
        for k in 0..samples as i64 {
            let key = format!("ORD-{}", (k * 7_919) % finished + 1);
            let t = Instant::now();
            let out = crate::cli::journeys::run(
                &engine,
                JourneysCommand::List {
                    workflow: None,
                    status: None,
                    key: Some(key),
                    since: None,
                    limit: 50,
                    json: false,
                },
            )
            .await?;
            list.push(ms(t.elapsed()));
            anyhow::ensure!(out.lines().count() >= 2, "list --key found nothing");
        }
        let mut stuck = Vec::with_capacity(samples / 4);
        for _ in 0..(samples / 4).max(5) {
            let t = Instant::now();
            crate::cli::journeys::run(
                &engine,
                JourneysCommand::Stuck {
                    limit: 100,
                    json: false,
                },
            )
            .await?;
            stuck.push(ms(t.elapsed()));
        }
        // Let the worker idle over the full store for a moment.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss_full, _) = rss_kib();
        let (claim, list, stuck) = (Summary::of(claim), Summary::of(list), Summary::of(stuck));
        Ok(json!({
            "finished_journeys": finished,
            "waiting_journeys": waiting,
            "needs_attention_journeys": 10,
            "filled_in_s": round3(filled_in.as_secs_f64()),
            "claim_query": claim.json(),
            "journeys_list_key": list.json(),
            "journeys_stuck": stuck.json(),
            "rss_kib_empty_store": rss_empty,
            "rss_kib_full_store": rss_full,
            "target": "each query p99 <= 10 ms; RSS independent of the number of stored journeys",
            "met": claim.p99 <= P99_TARGET_MS && list.p99 <= P99_TARGET_MS && stuck.p99 <= P99_TARGET_MS,
        }))
    }
    .await;
    worker.shutdown(Duration::from_secs(5)).await;
    fresh.close().await?;
    result
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Completed long ago, business key `ORD-<n>`.
    Finished,
    /// Asleep on a timer a day away (in the claim index, never due).
    Waiting,
    /// Stopped for a person (what `journeys stuck` reports).
    Attention,
}

/// Writes journeys `from..=to` of `kind` in one transaction.
async fn insert(pool: &Pool, kind: Kind, from: i64, to: i64, now: i64) -> Result<()> {
    let day = 86_400_000i64;
    // (id tag, status, state, step, ready/wake, output, finished, attention, key prefix)
    let (tag, status, state, step, wake, output, done, attention, key) = match kind {
        Kind::Finished => (
            "0000",
            "completed",
            r#"{"i":2,"n":3}"#,
            "noop",
            None,
            Some("3"),
            true,
            None,
            "ORD-",
        ),
        Kind::Waiting => (
            "0001",
            "waiting",
            r#"{"Awake":{"until_ms":0}}"#,
            "wake",
            Some(now + day),
            None,
            false,
            None,
            "ORD-W-",
        ),
        Kind::Attention => (
            "0002",
            "needs_attention",
            r#"{"i":1,"n":3}"#,
            "noop",
            None,
            None,
            false,
            Some("bench: retries exhausted (no provider here)"),
            "ORD-A-",
        ),
    };
    let workflow = match kind {
        Kind::Waiting => "bench.sleep",
        Kind::Finished | Kind::Attention => "bench.steps",
    };
    let columns = "id, workflow, version, status, state, business_key_kind, business_key, \
        step_name, step_since_ms, step_seq, attempt, ready_at_ms, wake_at_ms, lease_epoch, \
        attention, output, history_seq, created_at_ms, updated_at_ms, finished_at_ms";
    match pool {
        Pool::Postgres(p) => {
            let sql = format!(
                "INSERT INTO journeys ({columns}) \
                 SELECT (lpad(to_hex(g), 8, '0') || '-{tag}-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, \
                 $1, 1, $2, $3::jsonb, 'order_id', $4 || g, $5, $6 - g, 1, 1, $7, $7, 1, $8, $9::jsonb, 1, \
                 $6 - g, $6 - g, CASE WHEN $10 THEN $6 - g END \
                 FROM generate_series($11::bigint, $12::bigint) g"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(workflow)
                .bind(status)
                .bind(state)
                .bind(key)
                .bind(step)
                .bind(now)
                .bind(wake)
                .bind(attention)
                .bind(output)
                .bind(done)
                .bind(from)
                .bind(to)
                .execute(p)
                .await?;
        }
        Pool::Sqlite(p) => {
            let sql = format!(
                "INSERT INTO journeys ({columns}) \
                 WITH RECURSIVE g(x) AS (SELECT ?11 UNION ALL SELECT x + 1 FROM g WHERE x < ?12) \
                 SELECT printf('%08x-{tag}-4000-8000-%012x', x, x), \
                 ?1, 1, ?2, ?3, 'order_id', ?4 || x, ?5, ?6 - x, 1, 1, ?7, ?7, 1, ?8, ?9, 1, \
                 ?6 - x, ?6 - x, CASE WHEN ?10 THEN ?6 - x END FROM g"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(workflow)
                .bind(status)
                .bind(state)
                .bind(key)
                .bind(step)
                .bind(now)
                .bind(wake)
                .bind(attention)
                .bind(output)
                .bind(done)
                .bind(from)
                .bind(to)
                .execute(p)
                .await?;
        }
    }
    Ok(())
}
