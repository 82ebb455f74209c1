//! Journey tests' support: a database per test on either store, and the
//! stack (simulators + engine + ingress) on it with fast settings.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use handover_engine::{JourneyId, JourneyRecord, Status, WorkerConfig};
use handover_workflows::stack::{DbTarget, Stack, StackConfig};

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's database.
pub struct TestDb {
    pub target: DbTarget,
    _dir: Option<tempfile::TempDir>,
}

static SKIP_NOTICE: AtomicBool = AtomicBool::new(false);

impl TestDb {
    /// A fresh database, or `None` when Postgres is unavailable and not required.
    pub fn open(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("journeys.db").display());
                Some(TestDb {
                    target: DbTarget::url(url),
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => match std::env::var("DATABASE_URL") {
                Ok(url) if !url.is_empty() => Some(TestDb {
                    target: DbTarget {
                        url,
                        pg_schema: Some(format!(
                            "w_{}",
                            &uuid::Uuid::new_v4().simple().to_string()[..16]
                        )),
                    },
                    _dir: None,
                }),
                _ => {
                    if std::env::var("HANDOVER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                        panic!("HANDOVER_REQUIRE_POSTGRES=1 but DATABASE_URL is not set");
                    }
                    if !SKIP_NOTICE.swap(true, Ordering::SeqCst) {
                        eprintln!(
                            "NOTE: Postgres journey tests SKIPPED: set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
                        );
                    }
                    None
                }
            },
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(schema) = self.target.pg_schema.clone() {
            let url = self.target.url.clone();
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(pool) = sqlx::PgPool::connect(&url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS {schema} CASCADE"
                        )))
                        .execute(&pool)
                        .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// Worker settings for journey tests: short leases so a crashed engine's
/// journeys are picked up within ~2 s.
pub fn fast_worker() -> WorkerConfig {
    WorkerConfig {
        max_in_flight: 64,
        claim_batch: 32,
        lease_ttl: Duration::from_secs(2),
        heartbeat_every: Duration::from_millis(500),
        lookahead: Duration::from_millis(100),
        idle_poll: Duration::from_millis(200),
        ..WorkerConfig::default()
    }
}

/// A stack config on `db` with fast settings.
pub fn config(db: &TestDb) -> StackConfig {
    let mut config = StackConfig::new(db.target.clone());
    config.worker = fast_worker();
    config
}

/// Starts a stack.
pub async fn stack(config: StackConfig) -> Stack {
    Stack::start(config).await.expect("stack starts")
}

/// Waits (real time) until the journey has ended or needs attention.
pub async fn settled(stack: &Stack, id: JourneyId, within: Duration) -> JourneyRecord {
    stack
        .engine
        .wait_for(id, within, |r| {
            r.status.is_terminal() || r.status == Status::NeedsAttention
        })
        .await
        .expect("journey settles")
}

/// Declares each listed test for both stores.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::support::TestDb::open($crate::support::Backend::Sqlite) {
                        super::$name(db).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::support::TestDb::open($crate::support::Backend::Postgres) {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

/// A fault hook that crashes the worker once, at `point` of step `seq`, and
/// the flag that tells the test it fired.
pub fn crash_once(
    point: handover_engine::FaultPoint,
    seq: i64,
) -> (handover_engine::FaultHook, Arc<AtomicBool>) {
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    let hook: handover_engine::FaultHook =
        Arc::new(move |p, _id, s| p == point && s == seq && !flag.swap(true, Ordering::SeqCst));
    (hook, fired)
}

/// Waits until `flag` is set.
pub async fn until_set(flag: &AtomicBool, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while !flag.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fault point was never reached"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
