//! W4, signals: an HTTP callback into the ingress (`POST
//! /journeys/{id}/signals/go`) until the waiting journey's next step is
//! committed; one at a time, then 100 journeys at once.
//!
//! On Postgres the ingress runs on a second engine (its own pool, no
//! worker), as another node would, so the worker is woken by `NOTIFY`, not
//! in-process. On SQLite (embedded, one process) ingress and worker share
//! the engine.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use handover_engine::ingress::{IngressConfig, router};
use handover_engine::{JourneyId, StartOptions, WorkerConfig};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::baseline::{Baseline, ratio};
use super::env::{
    Backend, GO, Observer, Signalled, Summary, Target, WAIT_LIMIT, engine, ms, open_location,
};

const TOKEN: &str = "bench-app-token";
const CONCURRENT: usize = 100;

/// Runs W4.
pub async fn run(target: &Target, quick: bool, baseline: &Baseline) -> Result<Value> {
    let (sequential, rounds) = if quick { (20usize, 1usize) } else { (300, 5) };
    let fresh = target.fresh("w4").await?;
    let obs = Observer::new();
    let engine = engine(fresh.store.clone(), &obs, WorkerConfig::default()).await?;
    let worker = engine.run_worker();
    let other = match target.backend {
        Backend::Postgres => Some(open_location(fresh.location.clone()).await?),
        Backend::Sqlite => None,
    };
    let ingress_engine = match &other {
        Some(other) => {
            super::env::engine(
                other.store.clone(),
                &Observer::new(),
                WorkerConfig::default(),
            )
            .await?
        }
        None => engine.clone(),
    };
    let config = IngressConfig {
        app_tokens: vec![SecretString::from(TOKEN.to_owned())],
        ..IngressConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server =
        tokio::spawn(async move { axum::serve(listener, router(ingress_engine, &config)).await });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = format!("http://{addr}");
    let result: Result<Value> = async {
        let mut seq_rt = Vec::with_capacity(sequential);
        let mut seq_http = Vec::with_capacity(sequential);
        for _ in 0..sequential {
            let id = JourneyId::new();
            let parked = obs.when_committed(id, 0);
            engine
                .start_with::<Signalled>((), StartOptions::with_id(id))
                .await?;
            tokio::time::timeout(Duration::from_secs(30), parked)
                .await
                .context("a W4 journey did not park within 30 s")??;
            let (rt, http) = signal_once(&client, &base, &obs, id).await?;
            seq_rt.push(rt);
            seq_http.push(http);
        }
        let mut con_rt = Vec::new();
        let mut con_http = Vec::new();
        let mut parked_total = sequential as u64;
        for _ in 0..rounds {
            let ids = engine.start_many::<Signalled>(vec![(); CONCURRENT]).await?;
            parked_total += CONCURRENT as u64;
            obs.wait_committed(0, parked_total, WAIT_LIMIT).await?;
            let mut tasks = tokio::task::JoinSet::new();
            for id in ids {
                let (client, base, obs) = (client.clone(), base.clone(), obs.clone());
                tasks.spawn(async move { signal_once(&client, &base, &obs, id).await });
            }
            while let Some(joined) = tasks.join_next().await {
                let (rt, http) = joined??;
                con_rt.push(rt);
                con_http.push(http);
            }
        }
        let seq = Summary::of(seq_rt);
        let con = Summary::of(con_rt);
        let p99_target = match target.backend {
            Backend::Postgres => 10.0,
            Backend::Sqlite => 3.0,
        };
        Ok(json!({
            "wake_path": match target.backend {
                Backend::Postgres => "ingress on a second engine: NOTIFY to the worker's engine",
                Backend::Sqlite => "ingress and worker in one engine: in-process wake-up",
            },
            "sequential": { "round_trip": seq.json(), "http_202": Summary::of(seq_http).json() },
            "concurrent": {
                "journeys_at_once": CONCURRENT,
                "rounds": rounds,
                "round_trip": con.json(),
                "http_202": Summary::of(con_http).json(),
            },
            "sequential_p50_vs_baseline_commit": ratio(seq.p50, baseline.commit_ms()),
            "target": format!("p99 <= {p99_target} ms"),
            "met": seq.p99 <= p99_target && con.p99 <= p99_target,
        }))
    }
    .await;
    server.abort();
    worker.shutdown(Duration::from_secs(5)).await;
    if let Some(other) = other {
        other.store.close().await;
    }
    fresh.close().await?;
    result
}

/// Sends `go` to journey `id` and waits for the step it wakes to commit:
/// (round trip, HTTP answer time), in ms.
async fn signal_once(
    client: &reqwest::Client,
    base: &str,
    obs: &Observer,
    id: JourneyId,
) -> Result<(f64, f64)> {
    let done = obs.when_committed(id, 1);
    let t0 = Instant::now();
    let response = client
        .post(format!("{base}/journeys/{id}/signals/{GO}"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?;
    let http = ms(t0.elapsed());
    if response.status().as_u16() != 202 {
        bail!("the ingress answered {}", response.status());
    }
    let at = tokio::time::timeout(Duration::from_secs(30), done)
        .await
        .context("a signalled journey's step was not committed within 30 s")??;
    Ok((ms(at.saturating_duration_since(t0)), http))
}
