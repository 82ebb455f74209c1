//! The `handover` command line.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};
use handover_engine::{Engine, Registry};
use tracing_subscriber::EnvFilter;

fn init_tracing(verbose: u8, quiet: bool) {
    let default = match verbose {
        // The demo shows its own progress; its provoked failures would
        // drown it in warnings.
        0 if quiet => "error",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// An engine on `db` that can read and repair every journey type (it runs no
/// worker: `handover serve` does).
async fn tools_engine(db: &str) -> anyhow::Result<Engine> {
    let store = handover_engine::store::connect(db).await?;
    let registry: Registry = handover_workflows::registry_for_tools();
    Ok(Engine::builder(store).registry(registry).build().await?)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, matches!(cli.command, Command::Demo(_)));
    let result = match cli.command {
        Command::Demo(args) => Box::pin(cli::demo::run(&cli.db, args)).await,
        Command::Sim(args) => cli::sim::run(args).await.map(|()| String::new()),
        Command::Serve(args) => cli::serve::run(&cli.db, args).await.map(|()| String::new()),
        Command::Journeys(command) => match tools_engine(&cli.db).await {
            Ok(engine) => cli::journeys::run(&engine, command).await,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(text) => {
            print!("{text}");
            if !text.is_empty() && !text.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
