//! The `handover` command line: arguments and dispatch.

pub mod demo;
pub mod journeys;
pub mod serve;
pub mod sim;
pub mod table;

use clap::{Args, Parser, Subcommand};

/// Handover: durable telecom journeys that survive crashes, timeouts and callbacks.
#[derive(Debug, Parser)]
#[command(name = "handover", version, about, long_about = None)]
pub struct Cli {
    /// The database: sqlite://PATH (embedded) or postgres://... (multi-node).
    #[arg(
        long,
        global = true,
        env = "HANDOVER_DATABASE_URL",
        default_value = "sqlite://handover.db"
    )]
    pub db: String,

    /// More log output on stderr (repeat for more). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run hundreds of journeys of every type against the provider
    /// simulators with faults on, crash the engine on the way, and check the
    /// simulators' ledgers for double effects.
    Demo(demo::DemoArgs),
    /// Run the provider simulators alone (prints their addresses).
    Sim(sim::SimArgs),
    /// Run the engine, its workers, the callback ingress and the admin API.
    Serve(serve::ServeArgs),
    /// Find, inspect and repair journeys.
    #[command(subcommand)]
    Journeys(JourneysCommand),
}

/// Who performs a repair and why: every repair is recorded with both.
#[derive(Debug, Args)]
pub struct Audit {
    /// Why (required; recorded in the journey's history).
    #[arg(long)]
    pub reason: String,
    /// Who (recorded in the history). Default: $USER.
    #[arg(long, env = "USER", default_value = "cli")]
    pub actor: String,
}

/// `handover journeys ...`
#[derive(Debug, Subcommand)]
pub enum JourneysCommand {
    /// List journeys, newest first.
    List {
        /// Only this workflow (e.g. reach.purchase).
        #[arg(long)]
        workflow: Option<String>,
        /// Only these statuses (comma-separated: runnable, waiting, compensating,
        /// needs_attention, completed, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// A business key or correlation value: an MSISDN, order id,
        /// transaction id, or a journey id.
        #[arg(long)]
        key: Option<String>,
        /// Created since: an RFC 3339 time or a span back from now (30m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// At most this many (max 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show one journey: where it is, what it waits for, its retries, its timeline.
    Show {
        /// The journey id.
        id: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Journeys (and callbacks) that need a person, each with its reason.
    Stuck {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run the current step (or compensation) now, with a fresh retry budget.
    Retry {
        /// The journey id.
        id: String,
        #[command(flatten)]
        audit: Audit,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Send a signal to a journey, as the provider or the customer would.
    Signal {
        /// The journey id.
        id: String,
        /// The signal name (e.g. otp-code).
        name: String,
        /// The payload, as JSON.
        #[arg(long, default_value = "null")]
        payload: String,
        #[command(flatten)]
        audit: Audit,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a journey: its compensations run, then it ends as cancelled.
    Cancel {
        /// The journey id.
        id: String,
        #[command(flatten)]
        audit: Audit,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Treat the current step as done and move on (only where the workflow allows).
    Skip {
        /// The journey id.
        id: String,
        #[command(flatten)]
        audit: Audit,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Resume from the state recorded at an earlier history entry (replay).
    Rewind {
        /// The journey id.
        id: String,
        /// The history entry (its seq, from `show`).
        #[arg(long)]
        to: i64,
        #[command(flatten)]
        audit: Audit,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Replace the journey's state with the JSON in FILE (it must fit the workflow).
    PatchState {
        /// The journey id.
        id: String,
        /// A file with the new state as JSON (`-` for stdin).
        #[arg(long)]
        file: String,
        #[command(flatten)]
        audit: Audit,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Mark an unmatched callback as handled.
    Dismiss {
        /// The signal id (from `stuck`).
        signal_id: i64,
        #[command(flatten)]
        audit: Audit,
    },
}
