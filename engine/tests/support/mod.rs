//! Test support shared by the engine's integration tests: a database per
//! test on either backend, and a handful of small workflows with a counting
//! fake provider.
#![allow(dead_code, unreachable_pub)]

pub mod workflows;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use handover_engine::store::{PostgresStore, SqliteStore, Store};
use handover_engine::{Engine, EngineBuilder, ManualClock, WorkerConfig};

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's database. Opening it again gives another store (another
/// "process") on the same data.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
    _container: Option<Box<dyn std::any::Any + Send + Sync>>,
}

static SKIP_NOTICE: AtomicBool = AtomicBool::new(false);

impl TestDb {
    /// A fresh database, or `None` (with a notice) when Postgres is not
    /// available and not required.
    pub async fn open(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("handover.db").display());
                Some(TestDb {
                    backend,
                    url,
                    schema: None,
                    _dir: Some(dir),
                    _container: None,
                })
            }
            Backend::Postgres => {
                let (url, container) = match std::env::var("DATABASE_URL") {
                    Ok(url) if !url.is_empty() => (url, None),
                    _ => match start_container().await {
                        Some((url, container)) => (url, Some(container)),
                        None => {
                            if std::env::var("HANDOVER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                                panic!(
                                    "HANDOVER_REQUIRE_POSTGRES=1 but neither DATABASE_URL nor a Docker engine is available"
                                );
                            }
                            if !SKIP_NOTICE.swap(true, Ordering::SeqCst) {
                                eprintln!(
                                    "NOTE: Postgres tests SKIPPED: set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) or run a Docker engine"
                                );
                            }
                            return None;
                        }
                    },
                };
                let schema = format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
                Some(TestDb {
                    backend,
                    url,
                    schema: Some(schema),
                    _dir: None,
                    _container: container,
                })
            }
        }
    }

    /// A store on this database (each call is a separate connection pool,
    /// as a separate engine process would have).
    pub async fn store(&self) -> Arc<dyn Store> {
        match self.backend {
            Backend::Sqlite => Arc::new(SqliteStore::connect(&self.url).await.expect("sqlite")),
            Backend::Postgres => Arc::new(
                PostgresStore::connect_with_schema(
                    &self.url,
                    self.schema.as_deref().unwrap_or("public"),
                )
                .await
                .expect("postgres"),
            ),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop the test's schema, best effort, from a thread of its own (no
        // async in Drop).
        if let (Backend::Postgres, Some(schema)) = (self.backend, self.schema.clone()) {
            let url = self.url.clone();
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

async fn start_container() -> Option<(String, Box<dyn std::any::Any + Send + Sync>)> {
    use testcontainers::GenericImage;
    use testcontainers::ImageExt;
    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;

    let docker = std::path::Path::new("/var/run/docker.sock").exists()
        || std::env::var("DOCKER_HOST").is_ok();
    if !docker {
        return None;
    }
    let container = GenericImage::new("postgres", "15-alpine")
        .with_exposed_port(5432.tcp())
        .with_wait_for(WaitFor::message_on_stderr(
            "database system is ready to accept connections",
        ))
        .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
        .start()
        .await
        .ok()?;
    let port = container.get_host_port_ipv4(5432.tcp()).await.ok()?;
    // The server restarts once after initdb; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Some((
        format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        Box::new(container),
    ))
}

/// The worker settings tests use: short, in clock time.
pub fn test_worker() -> WorkerConfig {
    WorkerConfig {
        max_in_flight: 64,
        claim_batch: 32,
        lease_ttl: Duration::from_secs(30),
        heartbeat_every: Duration::from_secs(10),
        lookahead: Duration::from_millis(200),
        idle_poll: Duration::from_secs(1),
        ..WorkerConfig::default()
    }
}

/// An engine on `db` with a manual clock; `register` adds workflows.
pub async fn engine(
    db: &TestDb,
    clock: &Arc<ManualClock>,
    register: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> Engine {
    register(
        Engine::builder(db.store().await)
            .clock(clock.clone())
            .worker_config(test_worker()),
    )
    .build()
    .await
    .expect("engine")
}

/// Declares each listed test for both backends:
/// `both!(name, ...)` turns `async fn name(db: TestDb)` into
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::support::TestDb::open($crate::support::Backend::Sqlite).await {
                        super::$name(db).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::support::TestDb::open($crate::support::Backend::Postgres).await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}
