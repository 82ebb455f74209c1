//! Two engine instances on one Postgres database sharing the work.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example postgres_cluster
//! ```
//!
//! Each instance has its own pool and worker, as two processes would: they
//! claim due journeys with `FOR UPDATE SKIP LOCKED`, hold them under leases
//! fenced by an epoch, and wake each other with `LISTEN/NOTIFY`. The example
//! starts 200 three-step journeys from one node and shows how many steps
//! each node ran; the total is exactly three per journey (no step ran twice).
//! It uses a schema of its own and drops it at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use handover::engine::store::PostgresStore;
use handover::engine::{
    InvalidInput, NoCompensation, Start, StepCtx, StepError, StepInfo, Transition, Workflow,
};
use serde::{Deserialize, Serialize};

const JOURNEYS: u32 = 200;

/// Three no-op steps; counts the steps this node ran.
#[derive(Debug, Clone)]
struct ThreeSteps {
    ran: Arc<AtomicU64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Step(u8);

impl Workflow for ThreeSteps {
    const NAME: &'static str = "example.three-steps";
    type Input = ();
    type State = Step;
    type Output = ();
    type Compensation = NoCompensation;

    fn start(&self, (): ()) -> Result<Start<Step>, InvalidInput> {
        Ok(Start::new(Step(1)))
    }

    fn step_info(&self, _state: &Step) -> StepInfo {
        StepInfo::new("work")
    }

    async fn step(
        &self,
        Step(n): Step,
        _ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<Step, ()>, StepError> {
        self.ran.fetch_add(1, Ordering::Relaxed);
        Ok(if n < 3 {
            Transition::next(Step(n + 1))
        } else {
            Transition::complete(())
        })
    }
}

async fn node(
    url: &str,
    schema: &str,
    name: &str,
) -> anyhow::Result<(handover::Engine, Arc<AtomicU64>)> {
    let store = PostgresStore::connect_with_schema(url, schema).await?;
    let ran = Arc::new(AtomicU64::new(0));
    let engine = handover::Engine::builder(Arc::new(store))
        .register(ThreeSteps { ran: ran.clone() })
        .node_name(name)
        .build()
        .await?;
    Ok((engine, ran))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        println!("postgres_cluster: skipped: set DATABASE_URL=postgres://... to run it");
        return Ok(());
    };
    let schema = format!("cluster_example_{}", std::process::id());
    let (a, ran_a) = node(&url, &schema, "node-a").await?;
    let (b, ran_b) = node(&url, &schema, "node-b").await?;
    let worker_a = a.run_worker();
    let worker_b = b.run_worker();

    let began = Instant::now();
    let ids = a
        .start_many::<ThreeSteps>(vec![(); JOURNEYS as usize])
        .await?;
    for id in &ids {
        a.wait_until_finished(*id, Duration::from_secs(60))
            .await
            .with_context(|| format!("journey {id} did not finish"))?;
    }
    let (on_a, on_b) = (ran_a.load(Ordering::Relaxed), ran_b.load(Ordering::Relaxed));
    println!(
        "{JOURNEYS} journeys in {:.2}s: node-a ran {on_a} steps, node-b ran {on_b} (total {}, expected {})",
        began.elapsed().as_secs_f64(),
        on_a + on_b,
        JOURNEYS * 3
    );
    worker_a.shutdown(Duration::from_secs(5)).await;
    worker_b.shutdown(Duration::from_secs(5)).await;

    let pool = sqlx::PgPool::connect(&url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&pool)
    .await?;
    anyhow::ensure!(
        on_a + on_b == u64::from(JOURNEYS) * 3,
        "a step ran twice or not at all"
    );
    Ok(())
}
