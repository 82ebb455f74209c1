//! `handover serve`: the engine, its workers, the callback ingress and the
//! admin API in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use handover_adapters::ProvidersConfig;
use handover_adapters::sim::{Simulators, SimulatorsConfig};
use handover_engine::api::{self, AdminConfig};
use handover_engine::schedule::Scheduler;
use handover_engine::{Engine, WorkerConfig};
use handover_workflows::ingress::{self, IngressSettings};
use handover_workflows::{Providers, registry};
use secrecy::SecretString;
use tokio::net::TcpListener;
use url::Url;

/// `handover serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where providers and customer apps reach the ingress.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub ingress_addr: SocketAddr,
    /// Where operators reach the admin API and /metrics (keep it private).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub admin_addr: SocketAddr,
    /// The URL providers use to reach the ingress (callbacks, webhooks and
    /// payment returns are addressed under it). Default: http://INGRESS_ADDR/.
    #[arg(long, env = "HANDOVER_PUBLIC_URL")]
    pub public_url: Option<Url>,
    /// Provider configuration (TOML sections per provider); environment
    /// variables HANDOVER_<PROVIDER>_<FIELD> override it.
    #[arg(long, env = "HANDOVER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Run the provider simulators in this process and talk to them
    /// (a self-contained trial; never in production).
    #[arg(long)]
    pub simulators: bool,
    /// Journeys run at once by this process.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
    /// Seconds a lease lasts without a heartbeat (how long a crashed node's
    /// journeys wait before another node takes them).
    #[arg(long, default_value_t = 30)]
    pub lease_ttl_secs: u64,
    /// A name for this node in leases and logs.
    #[arg(long, env = "HANDOVER_NODE", default_value = "node")]
    pub node: String,
    /// Days the history of ended journeys is kept (pruned nightly).
    #[arg(long, default_value_t = 30)]
    pub retention_days: u64,
    /// When the stuck sweep runs (cron, six fields, seconds first).
    #[arg(long, default_value = "0 * * * * *")]
    pub sweep_cron: String,
}

/// Secrets that come from the environment only (never flags: they would
/// show in `ps`).
fn tokens(var: &str) -> Vec<SecretString> {
    std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| SecretString::from(t.to_owned()))
        .collect()
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(db: &str, args: ServeArgs) -> Result<()> {
    let public = match &args.public_url {
        Some(url) => url.clone(),
        None => Url::parse(&format!("http://{}/", args.ingress_addr))?,
    };
    let (clients, sims) = if args.simulators {
        let sims = Simulators::start(SimulatorsConfig::default()).await?;
        (ingress::wire_simulators(&sims, &public)?, Some(sims))
    } else {
        let config = match &args.config {
            Some(path) => ProvidersConfig::load(path)
                .with_context(|| format!("loading {}", path.display()))?,
            None => ProvidersConfig::from_env()?,
        };
        (config, None)
    };
    let providers = Providers::from_config(&clients, public.clone())?;
    let store = handover_engine::store::connect(db).await?;
    let engine = Engine::builder(store)
        .registry(registry(&providers))
        .worker_config(WorkerConfig {
            max_in_flight: args.max_in_flight,
            lease_ttl: Duration::from_secs(args.lease_ttl_secs.max(3)),
            heartbeat_every: Duration::from_secs((args.lease_ttl_secs / 3).max(1)),
            ..WorkerConfig::default()
        })
        .node_name(args.node.clone())
        .build()
        .await?;
    let journeys: Vec<String> = engine
        .registry()
        .workflows()
        .iter()
        .map(|(n, v)| format!("{n} v{v}"))
        .collect();
    let app_tokens = tokens("HANDOVER_APP_TOKENS");
    let admin_tokens = tokens("HANDOVER_ADMIN_TOKEN");
    if admin_tokens.is_empty() {
        tracing::warn!("HANDOVER_ADMIN_TOKEN is not set: the admin API refuses every request");
    }
    let ingress_router = ingress::router(
        engine.clone(),
        &IngressSettings {
            app_tokens,
            mobily_nafath: clients
                .mobily
                .as_ref()
                .map(handover_adapters::mobily::WebhookCredentials::from_config),
            ..IngressSettings::default()
        },
    );
    let admin_router = api::router(
        engine.clone(),
        &AdminConfig {
            tokens: admin_tokens,
        },
    );
    let ingress_listener = TcpListener::bind(args.ingress_addr)
        .await
        .with_context(|| format!("binding the ingress to {}", args.ingress_addr))?;
    let admin_listener = TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("binding the admin API to {}", args.admin_addr))?;
    let worker = engine.run_worker();
    let scheduler = handover_workflows::schedules(
        Scheduler::new(&engine, &args.node).with_builtins(
            &args.sweep_cron,
            Duration::from_secs(args.retention_days * 86_400),
        )?,
        &providers,
    )?
    .start()
    .await?;
    eprintln!(
        "handover serve: node {} ({}) on {}\n  ingress  http://{}  (providers reach it as {public})\n  admin    http://{}/admin  and /metrics\n  journeys {}",
        worker.owner(),
        engine.store().backend(),
        handover_engine::store::redact_url(db),
        args.ingress_addr,
        args.admin_addr,
        if journeys.is_empty() {
            "(none configured)".to_owned()
        } else {
            journeys.join(", ")
        },
    );
    if let Some(sims) = &sims {
        for (provider, url) in sims.urls() {
            eprintln!("  simulator {provider:<12} {url}");
        }
    }
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let stop = shutdown.clone();
    let ingress_task = tokio::spawn(async move {
        axum::serve(ingress_listener, ingress_router)
            .with_graceful_shutdown(async move { stop.notified().await })
            .await
    });
    let stop = shutdown.clone();
    let admin_task = tokio::spawn(async move {
        axum::serve(admin_listener, admin_router)
            .with_graceful_shutdown(async move { stop.notified().await })
            .await
    });
    shutdown_signal().await;
    eprintln!("handover serve: stopping (running steps finish first)");
    scheduler.shutdown().await;
    worker.shutdown(Duration::from_secs(30)).await;
    shutdown.notify_waiters();
    let _ = tokio::time::timeout(Duration::from_secs(5), ingress_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), admin_task).await;
    engine.store().close().await;
    drop(sims);
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
