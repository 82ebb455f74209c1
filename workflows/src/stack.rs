//! Everything on loopback in one process: the provider simulators, the
//! engine with every journey, a worker, and the ingress the simulators call
//! back. The journey tests, `handover demo` and the benchmarks start this.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use handover_adapters::ProvidersConfig;
use handover_adapters::sim::{Simulators, SimulatorsConfig};
use handover_engine::store::{self, PostgresOptions, PostgresStore, Store};
use handover_engine::{Engine, FaultHook, SharedClock, SystemClock, WorkerConfig, WorkerHandle};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::Url;

use crate::ingress::{self, IngressSettings};
use crate::{Providers, registry};

/// Failures starting the stack.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// The database.
    #[error(transparent)]
    Store(#[from] handover_engine::StoreError),
    /// The engine.
    #[error(transparent)]
    Engine(#[from] handover_engine::EngineError),
    /// A provider client's configuration.
    #[error(transparent)]
    Provider(#[from] handover_adapters::ProviderError),
    /// A socket.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
}

/// Adjusts provider clients' configuration before they are built.
pub type TuneProviders = Arc<dyn Fn(&mut ProvidersConfig) + Send + Sync>;

/// Which database, and (for Postgres) which schema.
#[derive(Debug, Clone)]
pub struct DbTarget {
    /// `sqlite://PATH` or `postgres://...`.
    pub url: String,
    /// A Postgres schema of its own (tests); `None`: the default schema.
    pub pg_schema: Option<String>,
}

impl DbTarget {
    /// The database at `url`.
    pub fn url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pg_schema: None,
        }
    }

    /// Opens a store on it (each call is a separate pool, as a separate
    /// process would have).
    pub async fn open(&self) -> Result<Arc<dyn Store>, handover_engine::StoreError> {
        match &self.pg_schema {
            Some(schema) => Ok(Arc::new(
                PostgresStore::connect_with(
                    &self.url,
                    PostgresOptions {
                        schema: Some(schema.clone()),
                        max_connections: 8,
                    },
                )
                .await?,
            )),
            None => store::connect(&self.url).await,
        }
    }
}

/// How to start the stack.
#[derive(Clone)]
pub struct StackConfig {
    /// The database.
    pub db: DbTarget,
    /// The simulators (faults, behaviour).
    pub sims: SimulatorsConfig,
    /// The worker.
    pub worker: WorkerConfig,
    /// The engine's clock.
    pub clock: SharedClock,
    /// The ingress.
    pub ingress: IngressSettings,
    /// The engine's node name.
    pub node_name: String,
    /// A fault hook for crash tests (given to every engine the stack starts).
    pub fault_hook: Option<FaultHook>,
    /// Adjusts the clients' configuration (timeouts, rate limits) before
    /// they are built.
    pub tune_providers: Option<TuneProviders>,
}

impl std::fmt::Debug for StackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackConfig")
            .field("db", &store::redact_url(&self.db.url))
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

impl StackConfig {
    /// Defaults on `db`: quiet simulators, the system clock.
    pub fn new(db: DbTarget) -> Self {
        Self {
            db,
            sims: SimulatorsConfig::default(),
            worker: WorkerConfig::default(),
            clock: Arc::new(SystemClock),
            ingress: IngressSettings::default(),
            node_name: "stack".to_owned(),
            fault_hook: None,
            tune_providers: None,
        }
    }
}

/// The running stack.
#[derive(Debug)]
pub struct Stack {
    /// The engine (a new one after each restart).
    pub engine: Engine,
    /// The simulators.
    pub sims: Simulators,
    /// The provider clients the journeys use.
    pub providers: Providers,
    /// Where the ingress listens.
    pub ingress_url: Url,
    worker: Option<WorkerHandle>,
    server: Option<JoinHandle<()>>,
    addr: SocketAddr,
    config: StackConfig,
    /// Engines started so far (1 + restarts).
    pub generation: u32,
}

impl Stack {
    /// Starts the simulators, the engine, a worker and the ingress.
    ///
    /// The future is boxed: a stack's configuration and start-up are large,
    /// and every test and the demo would otherwise carry them on its stack.
    pub fn start(
        config: StackConfig,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Self, StackError>> + Send>> {
        Box::pin(Self::start_inner(config))
    }

    async fn start_inner(mut config: StackConfig) -> Result<Self, StackError> {
        let sims = Simulators::start(config.sims.clone()).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let ingress_url = Url::parse(&format!("http://{addr}/"))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        // The simulators call back into the ingress.
        let mut clients = ingress::wire_simulators(&sims, &ingress_url)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        if let Some(tune) = &config.tune_providers {
            tune(&mut clients);
        }
        let providers = Providers::from_config(&clients, ingress_url.clone())?;
        if config.ingress.mobily_nafath.is_none() {
            config.ingress.mobily_nafath = clients
                .mobily
                .as_ref()
                .map(handover_adapters::mobily::WebhookCredentials::from_config);
        }
        let engine = Self::engine(&config, &providers).await?;
        let server = Some(serve(listener, engine.clone(), &config.ingress));
        let worker = Some(engine.run_worker());
        Ok(Self {
            engine,
            sims,
            providers,
            ingress_url,
            worker,
            server,
            addr,
            config,
            generation: 1,
        })
    }

    async fn engine(config: &StackConfig, providers: &Providers) -> Result<Engine, StackError> {
        let store = config.db.open().await?;
        let mut builder = Engine::builder(store)
            .registry(registry(providers))
            .clock(config.clock.clone())
            .worker_config(config.worker.clone())
            .node_name(config.node_name.clone());
        if let Some(hook) = &config.fault_hook {
            builder = builder.fault_hook(hook.clone());
        }
        Ok(builder.build().await?)
    }

    /// Kills the engine abruptly (its worker writes nothing more, its leases
    /// are left to expire, its ingress stops answering) and starts a new one on
    /// the same database and the same ingress address.
    pub async fn crash_and_restart(&mut self) -> Result<(), StackError> {
        if let Some(worker) = self.worker.take() {
            worker.crash().await;
        }
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
        self.engine.store().close().await;
        let engine = Self::engine(&self.config, &self.providers).await?;
        let listener = bind_again(self.addr).await?;
        self.server = Some(serve(listener, engine.clone(), &self.config.ingress));
        self.worker = Some(engine.run_worker());
        self.engine = engine;
        self.generation += 1;
        Ok(())
    }

    /// Stops the worker (letting running steps finish) and the ingress.
    pub async fn stop(mut self) {
        if let Some(worker) = self.worker.take() {
            worker.shutdown(Duration::from_secs(10)).await;
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        self.engine.store().close().await;
    }
}

fn serve(listener: TcpListener, engine: Engine, settings: &IngressSettings) -> JoinHandle<()> {
    let router = ingress::router(engine, settings);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the ingress stopped");
        }
    })
}

/// Rebinds the ingress's address after a restart (the old socket may take a
/// moment to go away).
async fn bind_again(addr: SocketAddr) -> Result<TcpListener, std::io::Error> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("could not rebind the ingress")))
}
