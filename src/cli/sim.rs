//! `handover sim`: the provider simulators alone, for trying a client or an
//! integration by hand.

use anyhow::Result;
use clap::Args;
use handover_adapters::sim::{Simulators, SimulatorsConfig};

/// `handover sim` options.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Misbehave like a real network: the soak tests' fault mix (20 % of calls
    /// get a 429, 5xx, 504, slow answer or dropped connection), seeded.
    #[arg(long)]
    pub chaos: bool,
    /// The fault seed (with `--chaos`).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Starts every simulator, prints where each listens, and runs until Ctrl-C.
pub async fn run(args: SimArgs) -> Result<()> {
    let config = if args.chaos {
        SimulatorsConfig::chaos(args.seed, 12_000)
    } else {
        SimulatorsConfig::default()
    };
    let sims = Simulators::start(config).await?;
    for (provider, url) in sims.urls() {
        println!("{provider:<12} {url}");
    }
    println!("(Ctrl-C to stop)");
    tokio::signal::ctrl_c().await?;
    drop(sims);
    Ok(())
}
