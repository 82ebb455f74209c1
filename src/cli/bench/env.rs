//! What every workload shares: a fresh store per workload, the bench
//! workflows, the commit observer, and small statistics helpers.
//!
//! Each workload gets its own empty store (a SQLite file next to the one
//! named by `--db`, or a Postgres schema of its own) so one workload's rows
//! never slow the next, and so the bench never touches the user's data.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use handover_engine::store::{PostgresStore, SqliteStore, Store};
use handover_engine::{
    Engine, FaultHook, FaultPoint, InvalidInput, JourneyId, NoCompensation, Start, StepCtx,
    StepError, StepInfo, Transition, Wait, WorkerConfig, Workflow,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{PgPool, SqlitePool};
use tokio::sync::oneshot;

/// The longest any single wait in a workload may take before the workload
/// is reported as failed (it never hangs the bench).
pub const WAIT_LIMIT: Duration = Duration::from_secs(300);

/// Which database the bench runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The database named by `--db`, from which each workload makes its own
/// fresh store.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL given.
    pub url: String,
    /// Its kind.
    pub backend: Backend,
}

impl Target {
    /// Parses `--db`.
    pub fn parse(url: &str) -> Result<Self> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite://") {
            if url.contains(":memory:") || url.contains("mode=memory") {
                bail!(
                    "the bench needs an SQLite file (fsync is what it measures): use sqlite://PATH"
                );
            }
            Backend::Sqlite
        } else {
            bail!("unsupported database URL: use sqlite://PATH or postgres://...");
        };
        Ok(Self {
            url: url.to_owned(),
            backend,
        })
    }

    /// A fresh, empty store for workload `name`.
    pub async fn fresh(&self, name: &str) -> Result<Fresh> {
        let location = self.location(name);
        remove_location(&location).await?;
        open_location(location).await
    }

    /// Where workload `name`'s store lives.
    pub fn location(&self, name: &str) -> Location {
        match self.backend {
            Backend::Sqlite => {
                let base = self
                    .url
                    .trim_start_matches("sqlite://")
                    .split('?')
                    .next()
                    .unwrap_or("handover.db");
                Location::Sqlite {
                    path: format!("{base}.bench-{name}"),
                }
            }
            Backend::Postgres => Location::Postgres {
                url: self.url.clone(),
                schema: format!("handover_bench_{}_{name}", std::process::id()),
            },
        }
    }
}

/// Where one workload's store lives (also passed to the W5 child process).
#[derive(Debug, Clone)]
pub enum Location {
    /// An SQLite file.
    Sqlite {
        /// Its path.
        path: String,
    },
    /// A schema in a Postgres database.
    Postgres {
        /// The database.
        url: String,
        /// The schema.
        schema: String,
    },
}

/// The pool the engine writes with, for the bench's own SQL.
#[derive(Debug, Clone)]
pub enum Pool {
    /// SQLite's single writer connection.
    Sqlite(SqlitePool),
    /// The Postgres pool.
    Postgres(PgPool),
}

/// One workload's store.
#[derive(Debug)]
pub struct Fresh {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Its writer pool.
    pub pool: Pool,
    /// Where it is.
    pub location: Location,
}

/// Opens the store at `location` (creating it if missing).
pub async fn open_location(location: Location) -> Result<Fresh> {
    match &location {
        Location::Sqlite { path } => {
            let store = SqliteStore::connect(&format!("sqlite://{path}"))
                .await
                .with_context(|| format!("opening {path}"))?;
            let pool = Pool::Sqlite(store.pool().clone());
            Ok(Fresh {
                store: Arc::new(store),
                pool,
                location,
            })
        }
        Location::Postgres { url, schema } => {
            let store = PostgresStore::connect_with_schema(url, schema)
                .await
                .context("connecting to Postgres")?;
            let pool = Pool::Postgres(store.pool().clone());
            Ok(Fresh {
                store: Arc::new(store),
                pool,
                location,
            })
        }
    }
}

async fn remove_location(location: &Location) -> Result<()> {
    match location {
        Location::Sqlite { path } => {
            for suffix in ["", "-wal", "-shm"] {
                let file = format!("{path}{suffix}");
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("removing {file}")),
                }
            }
        }
        Location::Postgres { url, schema } => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .context("connecting to Postgres")?;
            // The schema name is ours (a fixed prefix, the pid and a
            // workload name), never user input.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(&pool)
            .await?;
            pool.close().await;
        }
    }
    Ok(())
}

impl Fresh {
    /// Closes the store and deletes its data.
    pub async fn close(self) -> Result<()> {
        self.store.close().await;
        remove_location(&self.location).await
    }
}

// ---------------------------------------------------------------------------
// The commit observer.

/// Step sequences tracked by the per-sequence counters.
const MAX_TRACKED_SEQ: usize = 128;

/// Sees every step commit of the bench engine (through the engine's
/// [`FaultHook`] at [`FaultPoint::AfterCommit`], which never faults here),
/// and what the bench workflows record as they run.
#[derive(Debug)]
pub struct Observer {
    waiters: Mutex<HashMap<(JourneyId, i64), oneshot::Sender<Instant>>>,
    committed_at_seq: Vec<AtomicU64>,
    lateness_ms: Mutex<Vec<f64>>,
    recording: AtomicBool,
    executions: Mutex<Vec<(JourneyId, u32, Instant)>>,
}

impl Observer {
    /// A new observer.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            waiters: Mutex::new(HashMap::new()),
            committed_at_seq: (0..MAX_TRACKED_SEQ).map(|_| AtomicU64::new(0)).collect(),
            lateness_ms: Mutex::new(Vec::new()),
            recording: AtomicBool::new(false),
            executions: Mutex::new(Vec::new()),
        })
    }

    /// The hook to install on the engine.
    pub fn hook(self: &Arc<Self>) -> FaultHook {
        let me = self.clone();
        Arc::new(move |point, id, seq| {
            if point == FaultPoint::AfterCommit {
                me.committed(id, seq);
            }
            false
        })
    }

    fn committed(&self, id: JourneyId, seq: i64) {
        let at = Instant::now();
        if let Some(counter) = usize::try_from(seq)
            .ok()
            .and_then(|s| self.committed_at_seq.get(s))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let waiter = self
            .waiters
            .lock()
            .ok()
            .and_then(|mut w| w.remove(&(id, seq)));
        if let Some(tx) = waiter {
            let _ = tx.send(at);
        }
    }

    /// Resolves with the instant the step at `seq` of journey `id` is committed.
    pub fn when_committed(&self, id: JourneyId, seq: i64) -> oneshot::Receiver<Instant> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiters.lock() {
            w.insert((id, seq), tx);
        }
        rx
    }

    /// Steps committed so far at step sequence `seq` (all journeys).
    pub fn committed_at(&self, seq: usize) -> u64 {
        self.committed_at_seq
            .get(seq)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Waits (polling every 5 ms) until `committed_at(seq) >= target`.
    pub async fn wait_committed(&self, seq: usize, target: u64, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        while self.committed_at(seq) < target {
            if Instant::now() >= deadline {
                bail!(
                    "only {} of {target} journeys got past step {seq} within {limit:?}",
                    self.committed_at(seq)
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    fn woke_late(&self, ms: f64) {
        if let Ok(mut v) = self.lateness_ms.lock() {
            v.push(ms);
        }
    }

    /// Takes the wake-up lateness samples recorded so far.
    pub fn take_lateness(&self) -> Vec<f64> {
        self.lateness_ms
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    /// Starts recording every step execution (W5).
    pub fn record_executions(&self) {
        self.recording.store(true, Ordering::SeqCst);
    }

    fn executed(&self, id: JourneyId, index: u32) {
        if self.recording.load(Ordering::Relaxed)
            && let Ok(mut v) = self.executions.lock()
        {
            v.push((id, index, Instant::now()));
        }
    }

    /// The step executions recorded: journey, step index, when.
    pub fn executions(&self) -> Vec<(JourneyId, u32, Instant)> {
        self.executions
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// The bench workflows: no provider calls, so what is measured is the engine
// and the database.

/// N no-op steps.
#[derive(Debug, Clone)]
pub struct Steps {
    obs: Arc<Observer>,
}

/// How many steps.
#[derive(Debug, Serialize, Deserialize)]
pub struct StepsInput {
    /// Steps (1..=10 000).
    pub steps: u32,
}

/// Which step is next.
#[derive(Debug, Serialize, Deserialize)]
pub struct StepsState {
    i: u32,
    n: u32,
}

/// The most steps a bench journey may have.
const MAX_STEPS: u32 = 10_000;

impl Workflow for Steps {
    const NAME: &'static str = "bench.steps";
    type Input = StepsInput;
    type State = StepsState;
    type Output = u32;
    type Compensation = NoCompensation;

    fn start(&self, input: StepsInput) -> Result<Start<StepsState>, InvalidInput> {
        if input.steps == 0 || input.steps > MAX_STEPS {
            return Err(InvalidInput::new(format!("steps must be 1..={MAX_STEPS}")));
        }
        Ok(Start::new(StepsState {
            i: 0,
            n: input.steps,
        }))
    }

    fn step_info(&self, _state: &StepsState) -> StepInfo {
        StepInfo::new("noop")
    }

    async fn step(
        &self,
        state: StepsState,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<StepsState, u32>, StepError> {
        self.obs.executed(ctx.journey_id(), state.i);
        Ok(if state.i + 1 >= state.n {
            Transition::complete(state.n)
        } else {
            Transition::next(StepsState {
                i: state.i + 1,
                n: state.n,
            })
        })
    }
}

/// Sleeps until an instant, then records how late it woke.
#[derive(Debug, Clone)]
pub struct Sleep {
    obs: Arc<Observer>,
}

/// When to wake (ms since the epoch).
#[derive(Debug, Serialize, Deserialize)]
pub struct SleepInput {
    /// The instant.
    pub until_ms: i64,
}

/// Asleep, then awake.
#[derive(Debug, Serialize, Deserialize)]
pub enum SleepState {
    /// Going to sleep.
    Asleep {
        /// Until.
        until_ms: i64,
    },
    /// Woken by the timer.
    Awake {
        /// It was due at.
        until_ms: i64,
    },
}

fn at_ms(ms: i64) -> Result<DateTime<Utc>, StepError> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .ok_or_else(|| StepError::terminal(format!("{ms} is not a time")))
}

impl Workflow for Sleep {
    const NAME: &'static str = "bench.sleep";
    type Input = SleepInput;
    type State = SleepState;
    type Output = ();
    type Compensation = NoCompensation;

    fn start(&self, input: SleepInput) -> Result<Start<SleepState>, InvalidInput> {
        Ok(Start::new(SleepState::Asleep {
            until_ms: input.until_ms,
        }))
    }

    fn step_info(&self, state: &SleepState) -> StepInfo {
        StepInfo::new(match state {
            SleepState::Asleep { .. } => "sleep",
            SleepState::Awake { .. } => "wake",
        })
    }

    async fn step(
        &self,
        state: SleepState,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<SleepState, ()>, StepError> {
        match state {
            SleepState::Asleep { until_ms } => Ok(Transition::sleep_until(
                at_ms(until_ms)?,
                SleepState::Awake { until_ms },
            )),
            SleepState::Awake { until_ms } => {
                let late = ctx.now() - at_ms(until_ms)?;
                let late_us = late.num_microseconds().unwrap_or(i64::MAX);
                self.obs.woke_late(late_us as f64 / 1_000.0);
                Ok(Transition::complete(()))
            }
        }
    }
}

/// The signal W4 sends.
pub const GO: &str = "go";

/// Parks for the signal `go`, then completes.
#[derive(Debug, Clone)]
pub struct Signalled;

/// Waiting for `go`.
#[derive(Debug, Serialize, Deserialize)]
pub enum SignalState {
    /// Waiting.
    Waiting,
}

impl Workflow for Signalled {
    const NAME: &'static str = "bench.signal";
    type Input = ();
    type State = SignalState;
    type Output = ();
    type Compensation = NoCompensation;

    fn start(&self, _input: ()) -> Result<Start<SignalState>, InvalidInput> {
        Ok(Start::new(SignalState::Waiting))
    }

    fn step_info(&self, _state: &SignalState) -> StepInfo {
        StepInfo::new("await-go")
    }

    async fn step(
        &self,
        state: SignalState,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<SignalState, ()>, StepError> {
        Ok(if ctx.signal().is_some() {
            Transition::complete(())
        } else {
            Transition::wait(state, Wait::for_signal(GO))
        })
    }
}

/// An engine on `store` with the bench workflows, observed by `obs`.
pub async fn engine(
    store: Arc<dyn Store>,
    obs: &Arc<Observer>,
    config: WorkerConfig,
) -> Result<Engine> {
    Ok(Engine::builder(store)
        .register(Steps { obs: obs.clone() })
        .register(Sleep { obs: obs.clone() })
        .register(Signalled)
        .fault_hook(obs.hook())
        .worker_config(config)
        .node_name("bench")
        .build()
        .await?)
}

// ---------------------------------------------------------------------------
// Statistics.

/// Milliseconds, fractional.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// Percentiles of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Summary {
    /// Summarises `samples` (nearest-rank percentiles).
    pub fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let rank = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Self {
            n,
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples[n - 1],
            mean: samples.iter().sum::<f64>() / n as f64,
        }
    }

    /// As JSON (milliseconds).
    pub fn json(&self) -> Value {
        json!({
            "n": self.n,
            "p50_ms": round3(self.p50),
            "p99_ms": round3(self.p99),
            "max_ms": round3(self.max),
            "mean_ms": round3(self.mean),
        })
    }
}

/// Rounds to three decimals (for the report).
pub fn round3(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

/// This process's resident set and its peak since the last reset, in KiB.
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak resident set (Linux: `echo 5 > /proc/self/clear_refs`),
/// so each workload reports its own peak. Best effort.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The load average when measured (the machine is shared; numbers are only
/// comparable under similar load).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}
