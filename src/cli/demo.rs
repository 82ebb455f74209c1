//! `handover demo`: hundreds of journeys of every type against the provider
//! simulators with faults on, an engine crash on the way, and a ledger check
//! at the end.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use handover_engine::WorkerConfig;
use handover_workflows::demo::drivers;
use handover_workflows::demo::fleet::{self, FleetConfig, Progress, Report};
use handover_workflows::stack::{DbTarget, Stack, StackConfig};

/// The database `--db` names when nobody chose one.
pub const DEFAULT_DB: &str = "sqlite://handover.db";

/// `handover demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Journeys to run, spread over the six journey types.
    #[arg(long, default_value_t = 300)]
    pub journeys: u64,
    /// Kill the engine abruptly and start a new one every SECS seconds.
    /// Default: once, when about a third of the journeys have ended.
    #[arg(long, value_name = "SECS")]
    pub crash_every: Option<u64>,
    /// Never crash the engine.
    #[arg(long, conflicts_with = "crash_every")]
    pub no_crash: bool,
    /// Turn the simulators' faults off.
    #[arg(long)]
    pub no_faults: bool,
    /// Seed of the simulators' faults (the same seed, the same faults).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

/// Runs the demo; fails unless every journey ended as expected and the
/// ledgers show no double effect.
pub async fn run(db: &str, args: DemoArgs) -> Result<String> {
    let url = demo_db(db)?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "Handover demo: {} journeys of {} types on {}",
        args.journeys,
        drivers().len(),
        handover_engine::store::redact_url(&url)
    )?;
    let mut config = StackConfig::new(DbTarget::url(url.clone()));
    config.node_name = "demo".into();
    config.worker = WorkerConfig {
        lease_ttl: Duration::from_secs(3),
        heartbeat_every: Duration::from_secs(1),
        ..WorkerConfig::default()
    };
    // Slow answers must outlast the clients' timeout to be "outcome unknown".
    let client_timeout_ms = 1_500;
    if !args.no_faults {
        config.sims = fleet::demo_faults(args.seed, client_timeout_ms + 1_000)
            .context("the demo's fault plan")?;
    }
    config.tune_providers = Some(Arc::new(move |clients| {
        for http in [
            clients.mobily.as_mut().map(|c| &mut c.http),
            clients.reach.as_mut().map(|c| &mut c.http),
            clients.alqimah.as_mut().map(|c| &mut c.http),
            clients.mobitel.as_mut().map(|c| &mut c.http),
            clients.service_ops.as_mut().map(|c| &mut c.http),
        ]
        .into_iter()
        .flatten()
        {
            http.timeout_ms = client_timeout_ms;
            http.rate_per_second = 2_000;
            http.rate_burst = 200;
        }
    }));
    let mut stack = Stack::start(config).await.context("starting the stack")?;
    writeln!(
        out,
        "simulators: {}",
        stack
            .sims
            .urls()
            .iter()
            .map(|(p, u)| format!("{p} {u}"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(out, "ingress:    {}", stack.ingress_url)?;
    writeln!(
        out,
        "faults:     {}\n",
        if args.no_faults {
            "off"
        } else {
            "on (429, 500, 503, 504 after the effect, slow answers, dropped connections)"
        }
    )?;

    let drivers = drivers();
    let fleet_config = FleetConfig {
        journeys: args.journeys,
        crash_every: args.crash_every.map(Duration::from_secs),
        no_crash: args.no_crash,
        timeout: Duration::from_secs(args.timeout_secs),
    };
    let mut view = ProgressView::new();
    let report = fleet::run(&mut stack, &drivers, &fleet_config, |p| view.show(p))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    view.finish();
    stack.stop().await;

    let summary = summary(&report, &handover_engine::store::redact_url(&url));
    if report.passed() {
        Ok(summary)
    } else {
        print!("{summary}");
        bail!("the demo did not end as expected (see above)")
    }
}

/// The database to use: a fresh SQLite file unless `--db` names one.
fn demo_db(db: &str) -> Result<String> {
    if db != DEFAULT_DB {
        return Ok(db.to_owned());
    }
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let path = PathBuf::from(format!("handover-demo-{stamp}.db"));
    let path = std::env::current_dir()
        .context("the current directory")?
        .join(path);
    Ok(format!("sqlite://{}", path.display()))
}

/// Live progress: a table redrawn in place on a terminal, a line every few
/// seconds otherwise.
struct ProgressView {
    tty: bool,
    drawn_lines: usize,
    last_line: Option<std::time::Instant>,
}

impl ProgressView {
    fn new() -> Self {
        Self {
            tty: std::io::stdout().is_terminal(),
            drawn_lines: 0,
            last_line: None,
        }
    }

    fn show(&mut self, p: &Progress) {
        let mut out = std::io::stdout();
        if self.tty {
            let table = progress_table(p);
            if self.drawn_lines > 0 {
                let _ = write!(out, "\x1b[{}A", self.drawn_lines);
            }
            for line in table.lines() {
                let _ = writeln!(out, "\x1b[2K{line}");
            }
            self.drawn_lines = table.lines().count();
        } else if self
            .last_line
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(3))
        {
            self.last_line = Some(std::time::Instant::now());
            let settled: u64 = p.per_type.iter().map(|(_, c)| c.settled()).sum();
            let started: u64 = p.per_type.iter().map(|(_, c)| c.started).sum();
            let waiting: u64 = p.per_type.iter().map(|(_, c)| c.waiting).sum();
            let _ = writeln!(
                out,
                "[{:>5.1}s] {settled}/{started} ended, {waiting} waiting, crashes {}",
                p.elapsed.as_secs_f64(),
                p.crashes
            );
        }
        let _ = out.flush();
    }

    fn finish(&mut self) {
        println!();
    }
}

fn progress_table(p: &Progress) -> String {
    let mut s = format!(
        "{:<20} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}\n",
        "journey", "started", "running", "waiting", "done", "failed", "attention"
    );
    for (label, c) in &p.per_type {
        let _ = writeln!(
            s,
            "{label:<20} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
            c.started, c.running, c.waiting, c.completed, c.failed, c.attention
        );
    }
    let _ = writeln!(
        s,
        "elapsed {:.1}s, engine crashes {}",
        p.elapsed.as_secs_f64(),
        p.crashes
    );
    s
}

fn ms(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.1}s", v as f64 / 1000.0))
}

fn summary(report: &Report, url: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<20} {:>7} {:>9} {:>11} {:>11} {:>10} {:>7} {:>7}",
        "journey", "started", "completed", "failed (ok)", "compensated", "unexpected", "p50", "p99"
    );
    for (label, t) in &report.per_type {
        let _ = writeln!(
            s,
            "{label:<20} {:>7} {:>9} {:>11} {:>11} {:>10} {:>7} {:>7}",
            t.started,
            t.completed,
            t.failed_as_expected,
            t.compensated,
            t.unexpected.len(),
            ms(t.quantile_ms(0.5)),
            ms(t.quantile_ms(0.99)),
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "retries:                {}", report.retries);
    let _ = writeln!(
        s,
        "signals received:       {} ({} duplicates ignored)",
        report.signals_received, report.signals_duplicate
    );
    let _ = writeln!(s, "engine crashes survived: {}", report.crashes);
    let _ = writeln!(
        s,
        "ledger check:           each charge, reservation, order and activation happened exactly once: {} ({} effects)",
        if report.ledger_duplicates.is_empty() {
            "yes"
        } else {
            "NO"
        },
        report.ledger_effects
    );
    for dup in report.ledger_duplicates.iter().take(20) {
        let _ = writeln!(s, "  applied twice: {dup}");
    }
    let unexpected: Vec<&String> = report
        .per_type
        .iter()
        .flat_map(|(_, t)| &t.unexpected)
        .collect();
    for u in unexpected.iter().take(20) {
        let _ = writeln!(s, "  unexpected: {u}");
    }
    if !report.finished {
        let _ = writeln!(
            s,
            "  the run timed out before every journey ended ({:.0}s)",
            report.elapsed.as_secs_f64()
        );
    }
    let _ = writeln!(
        s,
        "\nresult: {} in {:.1}s",
        if report.passed() { "PASS" } else { "FAIL" },
        report.elapsed.as_secs_f64()
    );
    let _ = writeln!(s, "\nInspect what happened:");
    let _ = writeln!(s, "  handover --db {url} journeys list");
    let _ = writeln!(s, "  handover --db {url} journeys stuck");
    let _ = writeln!(s, "  handover --db {url} journeys show <ID>");
    s
}
