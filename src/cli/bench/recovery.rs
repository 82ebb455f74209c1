//! W5, recovery: journeys in flight in a child `handover bench-worker`
//! process, which is killed with SIGKILL mid-run; a new engine (this
//! process) takes over once the dead worker's leases expire.
//!
//! What the store says right after the kill is the truth of what was
//! committed: a step the new engine runs at an index lower than its
//! journey's committed `step_seq` would be a committed step running twice (a
//! duplicate). Re-running the one step that was in flight when the worker
//! died is expected (same idempotency key, `may_have_run_before`).

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use handover_engine::{JourneyId, WorkerConfig};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::env::{
    Location, Observer, Pool, Steps, StepsInput, Target, WAIT_LIMIT, engine, ms, open_location,
    round3,
};

const STEPS: u32 = 5;
const START_BATCH: usize = 500;

/// The worker configuration of both the child and the new engine: the
/// default, with a shorter lease so the bench need not wait 30 s.
fn config(lease_ttl: Duration) -> WorkerConfig {
    WorkerConfig {
        lease_ttl,
        heartbeat_every: lease_ttl / 3,
        ..WorkerConfig::default()
    }
}

/// Runs W5.
pub async fn run(target: &Target, quick: bool) -> Result<Value> {
    let (journeys, lease_ttl) = if quick {
        (1_000usize, Duration::from_secs(2))
    } else {
        (10_000, Duration::from_secs(5))
    };
    let fresh = target.fresh("w5").await?;
    let result = measure(&fresh, journeys, lease_ttl).await;
    fresh.close().await?;
    result
}

async fn measure(fresh: &super::env::Fresh, journeys: usize, lease_ttl: Duration) -> Result<Value> {
    // Start the journeys (no worker here yet).
    let starter_obs = Observer::new();
    let starter = engine(fresh.store.clone(), &starter_obs, config(lease_ttl)).await?;
    let mut left = journeys;
    while left > 0 {
        let n = left.min(START_BATCH);
        starter
            .start_many::<Steps>((0..n).map(|_| StepsInput { steps: STEPS }).collect())
            .await?;
        left -= n;
    }

    // The first engine: a child process, killed once a fifth of the
    // journeys have made progress.
    let exe = std::env::current_exe().context("finding the handover binary")?;
    let mut command = tokio::process::Command::new(exe);
    command.arg("bench-worker");
    match &fresh.location {
        Location::Sqlite { path } => command.args(["--store", &format!("sqlite://{path}")]),
        Location::Postgres { url, schema } => {
            command.args(["--store", url.as_str(), "--schema", schema.as_str()])
        }
    };
    command
        .args(["--lease-ttl-ms", &lease_ttl.as_millis().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command.spawn().context("starting the bench worker")?;
    let progress_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let progressed = count(&fresh.pool, "step_seq > 0").await?;
        if progressed >= journeys as i64 / 5 {
            break;
        }
        if Instant::now() >= progress_deadline {
            let _ = child.start_kill();
            bail!("the child worker made no progress in 120 s ({progressed} journeys started)");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_at = Instant::now();
    child.start_kill().context("killing the child worker")?;
    let status = child.wait().await?;

    // What was committed when it died.
    let snapshot = snapshot(&fresh.pool).await?;
    let unfinished: Vec<&Row> = snapshot.values().filter(|r| !r.finished).collect();
    let leased: HashSet<JourneyId> = unfinished
        .iter()
        .filter(|r| r.leased)
        .map(|r| r.id)
        .collect();
    let expected_executions: u64 = unfinished
        .iter()
        .map(|r| u64::from(STEPS) - r.step_seq as u64)
        .sum();

    // The new engine.
    let obs = Observer::new();
    obs.record_executions();
    let engine = engine(fresh.store.clone(), &obs, config(lease_ttl)).await?;
    let started_at = Instant::now();
    let worker = engine.run_worker();
    let drained = obs
        .wait_committed(STEPS as usize - 1, unfinished.len() as u64, WAIT_LIMIT)
        .await;
    let drain = killed_at.elapsed();
    worker.shutdown(Duration::from_secs(5)).await;
    drained?;

    let executions = obs.executions();
    let mut duplicates = 0u64;
    let mut seen = HashSet::new();
    let mut first_any: Option<Instant> = None;
    let mut first_resumed: Option<Instant> = None;
    for (id, index, at) in &executions {
        let committed = snapshot.get(id).map_or(0, |r| r.step_seq);
        if i64::from(*index) < committed || !seen.insert((*id, *index)) {
            duplicates += 1;
        }
        first_any = Some(first_any.map_or(*at, |f| f.min(*at)));
        if leased.contains(id) {
            first_resumed = Some(first_resumed.map_or(*at, |f| f.min(*at)));
        }
    }
    let since_kill =
        |t: Option<Instant>| t.map(|t| round3(ms(t.saturating_duration_since(killed_at))));
    let resumed_ms = since_kill(first_resumed);
    let limit_ms = ms(lease_ttl) + 1_000.0;
    Ok(json!({
        "journeys": journeys,
        "steps_per_journey": STEPS,
        "lease_ttl_ms": lease_ttl.as_millis() as u64,
        "child_exit": format!("{status}"),
        "unfinished_at_kill": unfinished.len(),
        "leased_by_dead_worker": leased.len(),
        "new_engine_started_after_kill_ms": round3(ms(started_at.saturating_duration_since(killed_at))),
        "first_step_after_kill_ms": since_kill(first_any),
        "first_resumed_step_after_kill_ms": resumed_ms,
        "drain_after_kill_s": round3(drain.as_secs_f64()),
        "step_executions": executions.len(),
        "expected_step_executions": expected_executions,
        "duplicate_step_executions": duplicates,
        "target": "first resumed step within lease TTL + 1 s; 0 duplicates",
        "met": duplicates == 0 && resumed_ms.is_some_and(|m| m <= limit_ms),
    }))
}

struct Row {
    id: JourneyId,
    step_seq: i64,
    finished: bool,
    leased: bool,
}

async fn count(pool: &Pool, condition: &str) -> Result<i64> {
    let sql = format!("SELECT COUNT(*) FROM journeys WHERE {condition}");
    Ok(match pool {
        Pool::Sqlite(p) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(p)
                .await?
        }
        Pool::Postgres(p) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(p)
                .await?
        }
    })
}

async fn snapshot(pool: &Pool) -> Result<HashMap<JourneyId, Row>> {
    type Raw = (String, i64, String, Option<String>);
    let rows: Vec<Raw> = match pool {
        Pool::Sqlite(p) => {
            sqlx::query_as("SELECT id, step_seq, status, lease_owner FROM journeys")
                .fetch_all(p)
                .await?
        }
        Pool::Postgres(p) => {
            sqlx::query_as("SELECT id::text, step_seq, status, lease_owner FROM journeys")
                .fetch_all(p)
                .await?
        }
    };
    let mut out = HashMap::with_capacity(rows.len());
    for (id, step_seq, status, owner) in rows {
        let id: JourneyId = id
            .parse()
            .map_err(|e| anyhow::anyhow!("bad journey id {id}: {e}"))?;
        out.insert(
            id,
            Row {
                id,
                step_seq,
                finished: status == "completed",
                leased: owner.is_some(),
            },
        );
    }
    Ok(out)
}

/// `handover bench-worker`: the W5 child. Runs a worker on the store until
/// its standard input closes (the parent exits) or it is killed.
pub async fn child(store: &str, schema: Option<&str>, lease_ttl_ms: u64) -> Result<()> {
    let location = match schema {
        Some(schema) => Location::Postgres {
            url: store.to_owned(),
            schema: schema.to_owned(),
        },
        None => Location::Sqlite {
            path: store.trim_start_matches("sqlite://").to_owned(),
        },
    };
    let fresh = open_location(location).await?;
    let obs = Observer::new();
    let engine = engine(
        fresh.store.clone(),
        &obs,
        config(Duration::from_millis(lease_ttl_ms.clamp(500, 600_000))),
    )
    .await?;
    let worker = engine.run_worker();
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    // Bounded: the parent never runs a workload this long.
    let _ = tokio::time::timeout(Duration::from_secs(600), async {
        while stdin.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    worker.shutdown(Duration::from_secs(5)).await;
    fresh.store.close().await;
    Ok(())
}
