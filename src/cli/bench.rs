//! `handover bench`: the engine's performance, measured against the
//! database's own in the same run.
//!
//! First the store's baseline (single-row insert transactions with the same
//! driver and pool, 1 and 16 writers), then six workloads, each on a fresh
//! store of its own (see `docs/PERFORMANCE.md` for what each measures and
//! the targets). Every result is printed absolute and as a ratio to the
//! baseline, and written as JSON with `--json`. Timing targets are reported,
//! never enforced: the exit status says only whether every workload ran.
//!
//! Commits and queries are counted by the store itself
//! ([`StoreStats`](handover_engine::store::StoreStats)): every write
//! transaction the engine commits (claims, step commits, heartbeats,
//! releases, starts, signal deliveries) and every statement batch it sends.

mod baseline;
mod env;
mod latency;
mod recovery;
mod scale;
mod signals;
mod throughput;
mod timers;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};

use env::{Target, load_average, round3};

/// The workloads, in the order they run.
const WORKLOADS: [&str; 6] = ["w1", "w2", "w3", "w4", "w5", "w6"];

/// `handover bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A reduced run (small counts, about 30 s per store) for CI: it checks
    /// that everything runs, its timings mean little.
    #[arg(long)]
    pub quick: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<String>,
    /// Only these workloads (comma-separated: w1,...,w6). Default: all.
    #[arg(long)]
    pub only: Option<String>,
}

/// `handover bench-worker` (hidden): the engine process W5 kills.
#[derive(Debug, Args)]
pub struct BenchWorkerArgs {
    /// The store: sqlite://PATH, or a postgres:// URL with `--schema`.
    #[arg(long)]
    pub store: String,
    /// The Postgres schema of the workload.
    #[arg(long)]
    pub schema: Option<String>,
    /// The lease TTL, ms.
    #[arg(long)]
    pub lease_ttl_ms: u64,
}

/// Runs the W5 child worker.
pub async fn worker(args: BenchWorkerArgs) -> Result<String> {
    recovery::child(&args.store, args.schema.as_deref(), args.lease_ttl_ms).await?;
    Ok(String::new())
}

/// Runs the bench; returns the printed report.
pub async fn run(db: &str, args: BenchArgs) -> Result<String> {
    let target = Target::parse(db)?;
    let selected: Vec<&str> = match &args.only {
        None => WORKLOADS.to_vec(),
        Some(list) => {
            let wanted: Vec<String> = list.split(',').map(|s| s.trim().to_lowercase()).collect();
            if let Some(bad) = wanted.iter().find(|w| !WORKLOADS.contains(&w.as_str())) {
                anyhow::bail!("unknown workload {bad:?}: choose from w1..w6");
            }
            WORKLOADS
                .iter()
                .copied()
                .filter(|w| wanted.iter().any(|x| x == w))
                .collect()
        }
    };
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let load_before = load_average();
    eprintln!(
        "bench: {} store{}, load average {load_before}",
        target.backend.as_str(),
        if args.quick { " (quick)" } else { "" }
    );

    eprintln!("bench: baseline");
    let fresh = target.fresh("baseline").await?;
    let run_for = if args.quick {
        Duration::from_millis(700)
    } else {
        Duration::from_secs(3)
    };
    let measured = baseline::measure(&fresh, run_for).await;
    fresh.close().await?;
    let base = measured.context("measuring the store's baseline")?;

    let mut results = serde_json::Map::new();
    let mut failures = Vec::new();
    for w in selected {
        eprintln!("bench: {w}");
        let t = Instant::now();
        let outcome = match w {
            "w1" => latency::run(&target, args.quick, &base).await,
            "w2" => throughput::run(&target, args.quick, &base).await,
            "w3" => timers::run(&target, args.quick).await,
            "w4" => signals::run(&target, args.quick, &base).await,
            "w5" => recovery::run(&target, args.quick).await,
            _ => scale::run(&target, args.quick).await,
        };
        let value = match outcome {
            Ok(mut v) => {
                if let Value::Object(m) = &mut v {
                    m.insert("wall_s".into(), json!(round3(t.elapsed().as_secs_f64())));
                }
                v
            }
            Err(e) => {
                failures.push(format!("{w}: {e:#}"));
                json!({ "error": format!("{e:#}") })
            }
        };
        results.insert(w.to_owned(), value);
    }

    let report = json!({
        "handover_version": env!("CARGO_PKG_VERSION"),
        "store": target.backend.as_str(),
        "quick": args.quick,
        "started_at": started_at,
        "wall_s": round3(started.elapsed().as_secs_f64()),
        "machine": {
            "cpus": std::thread::available_parallelism().map_or(0, usize::from),
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        "baseline": base.json(),
        "workloads": Value::Object(results),
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {path}"))?;
    }
    let text = render(&report);
    if failures.is_empty() {
        Ok(text)
    } else {
        print!("{text}");
        anyhow::bail!("some workloads failed:\n  {}", failures.join("\n  "))
    }
}

/// The human-readable report: one line per measurement, absolute and as a
/// ratio to the baseline where one applies.
fn render(report: &Value) -> String {
    let mut out = String::new();
    let b = &report["baseline"];
    let _ = writeln!(
        out,
        "handover bench: {} store{}, {} CPUs, load {} -> {}, {} s",
        report["store"].as_str().unwrap_or("?"),
        if report["quick"].as_bool() == Some(true) {
            " (quick)"
        } else {
            ""
        },
        report["machine"]["cpus"],
        report["machine"]["load_average_before"]
            .as_str()
            .unwrap_or(""),
        report["machine"]["load_average_after"]
            .as_str()
            .unwrap_or(""),
        report["wall_s"],
    );
    let _ = writeln!(
        out,
        "baseline  1 writer: {} commits/s (p50 {} ms)   16 writers: {} commits/s (p50 {} ms)",
        b["one_writer"]["commits_per_s"],
        b["one_writer"]["latency"]["p50_ms"],
        b["sixteen_writers"]["commits_per_s"],
        b["sixteen_writers"]["latency"]["p50_ms"],
    );
    let w = &report["workloads"];
    let met = |v: &Value| match v["met"].as_bool() {
        Some(true) => "MET",
        Some(false) => "NOT MET",
        None => "FAILED",
    };
    let err = |v: &Value| {
        v["error"]
            .as_str()
            .map(|e| format!("  error: {e}\n"))
            .unwrap_or_default()
    };
    if let Some(v) = w.get("w1") {
        let _ = writeln!(out, "\nW1 latency [{}] target: {}", met(v), v["target"]);
        if let Some(runs) = v["runs"].as_array() {
            for r in runs {
                let _ = writeln!(
                    out,
                    "  N={:<3} journey p50 {} ms  p99 {} ms  commits/step {}",
                    r["steps"],
                    r["journey"]["p50_ms"],
                    r["journey"]["p99_ms"],
                    r["commits_per_step"]
                );
            }
        }
        let _ = writeln!(
            out,
            "  per-step overhead {} ms = {}x one baseline commit",
            v["per_step_overhead_ms"], v["per_step_overhead_vs_baseline_commit"]
        );
        out.push_str(&err(v));
    }
    if let Some(v) = w.get("w2") {
        let _ = writeln!(out, "\nW2 throughput [{}] target: {}", met(v), v["target"]);
        let _ = writeln!(
            out,
            "  {} journeys x {} steps drained in {} s: {} journeys/s, {} steps/s ({}x the 16-writer baseline)",
            v["journeys"],
            v["steps_per_journey"],
            v["seconds_to_drain"],
            v["journeys_per_s"],
            v["steps_per_s"],
            v["steps_per_s_vs_baseline_16_writers"]
        );
        let _ = writeln!(
            out,
            "  commits/step {} ({} commits/s = {}x baseline), steps per worker commit {}, peak RSS {} KiB",
            v["commits_per_step"],
            v["store_commits_per_s"],
            v["commits_per_s_vs_baseline_16_writers"],
            v["steps_per_worker_commit"],
            v["peak_rss_kib"]
        );
        out.push_str(&err(v));
    }
    if let Some(v) = w.get("w3") {
        let _ = writeln!(out, "\nW3 timers [{}] target: {}", met(v), v["target"]);
        for (label, key) in [
            ("same instant", "same_instant_lateness"),
            ("spread", "spread_lateness"),
        ] {
            let _ = writeln!(
                out,
                "  {label:<12} lateness p50 {} ms  p99 {} ms  max {} ms ({} journeys)",
                v[key]["p50_ms"], v[key]["p99_ms"], v[key]["max_ms"], v[key]["n"]
            );
        }
        let _ = writeln!(
            out,
            "  idle: {} store queries/s with {} journeys asleep",
            v["idle_store_queries_per_s"], v["journeys_per_phase"]
        );
        out.push_str(&err(v));
    }
    if let Some(v) = w.get("w4") {
        let _ = writeln!(out, "\nW4 signals [{}] target: {}", met(v), v["target"]);
        let _ = writeln!(
            out,
            "  sequential  round trip p50 {} ms  p99 {} ms ({}x a baseline commit at p50)",
            v["sequential"]["round_trip"]["p50_ms"],
            v["sequential"]["round_trip"]["p99_ms"],
            v["sequential_p50_vs_baseline_commit"]
        );
        let _ = writeln!(
            out,
            "  100 at once round trip p50 {} ms  p99 {} ms",
            v["concurrent"]["round_trip"]["p50_ms"], v["concurrent"]["round_trip"]["p99_ms"]
        );
        out.push_str(&err(v));
    }
    if let Some(v) = w.get("w5") {
        let _ = writeln!(out, "\nW5 recovery [{}] target: {}", met(v), v["target"]);
        let _ = writeln!(
            out,
            "  {} journeys, killed with {} unfinished ({} leased); lease TTL {} ms",
            v["journeys"], v["unfinished_at_kill"], v["leased_by_dead_worker"], v["lease_ttl_ms"]
        );
        let _ = writeln!(
            out,
            "  first resumed step {} ms after the kill; drained {} s after; duplicates {}",
            v["first_resumed_step_after_kill_ms"],
            v["drain_after_kill_s"],
            v["duplicate_step_executions"]
        );
        out.push_str(&err(v));
    }
    if let Some(v) = w.get("w6") {
        let _ = writeln!(out, "\nW6 scale [{}] target: {}", met(v), v["target"]);
        let _ = writeln!(
            out,
            "  {} finished + {} waiting journeys (written in {} s)",
            v["finished_journeys"], v["waiting_journeys"], v["filled_in_s"]
        );
        for (label, key) in [
            ("claim query", "claim_query"),
            ("journeys list --key", "journeys_list_key"),
            ("journeys stuck", "journeys_stuck"),
        ] {
            let _ = writeln!(
                out,
                "  {label:<20} p50 {} ms  p99 {} ms",
                v[key]["p50_ms"], v[key]["p99_ms"]
            );
        }
        let _ = writeln!(
            out,
            "  RSS {} KiB on the empty store, {} KiB on the full one",
            v["rss_kib_empty_store"], v["rss_kib_full_store"]
        );
        out.push_str(&err(v));
    }
    out
}
