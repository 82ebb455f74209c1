//! Storage: narrow traits by role, one implementation per database.
//!
//! [`SqliteStore`] (embedded default) and [`PostgresStore`] (production,
//! multi-node) each own their SQL and their migrations
//! (`migrations/{sqlite,postgres}`, numbered in lockstep, applied at
//! connect). One conformance suite (`engine/tests/`) runs against both.
//!
//! The traits are `pub` so operators' tools and tests can read the store, but
//! writes that move journeys (claim, commit) are only meaningful through the
//! engine, which holds the lease they are fenced by.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::Notify;

use crate::error::StoreError;
use crate::ids::{BusinessKey, CorrelationKey, JourneyId, SignalName};
use crate::model::{
    CancelRequest, Commit, CommitOutcome, HistoryEntry, JourneyRecord, SignalRecord, Status,
};

mod postgres;
mod sqlite;

pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;

/// A new journey's first row.
#[derive(Debug, Clone)]
pub struct NewJourney {
    /// Its id.
    pub id: JourneyId,
    /// Its workflow.
    pub workflow: String,
    /// The version it starts on.
    pub version: u32,
    /// Its first state.
    pub state: Value,
    /// Its business key.
    pub business_key: Option<BusinessKey>,
    /// Its first step's name.
    pub step_name: String,
    /// When its first step becomes overdue (ms).
    pub sla_at_ms: Option<i64>,
    /// Its deadline (ms).
    pub deadline_at_ms: Option<i64>,
    /// Correlation keys known from the start.
    pub correlations: Vec<CorrelationKey>,
    /// The `journey_started` history entry.
    pub started: HistoryEntry,
    /// Now (ms).
    pub now_ms: i64,
}

/// Whether a journey was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// A new row was written.
    Created,
    /// A journey with this id existed already (an idempotent re-start).
    Existing {
        /// Its workflow.
        workflow: String,
    },
}

/// Where a signal is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalTarget {
    /// A journey by id.
    Journey(JourneyId),
    /// A journey by a correlation key it registered.
    Correlation(CorrelationKey),
    /// A journey id that did not parse (kept and reported as unmatched).
    Unparsed(String),
}

/// A signal to store.
#[derive(Debug, Clone)]
pub struct NewSignal {
    /// Where it goes.
    pub target: SignalTarget,
    /// Its name.
    pub name: SignalName,
    /// Its payload.
    pub payload: Value,
    /// The sender's id for it: a second signal with the same dedupe key is
    /// ignored. Prefix it with the source (`reach:TX-1:COMPLETED`).
    pub dedupe_key: Option<String>,
    /// Where it came from.
    pub source: String,
}

/// What happened to a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Stored for the journey; `woke` if the journey was waiting for it.
    Delivered {
        /// The journey.
        journey: JourneyId,
        /// Whether it became due at once.
        woke: bool,
        /// The journey's status when the signal arrived.
        status: Status,
    },
    /// The dedupe key was seen before; nothing was stored.
    Duplicate {
        /// The first signal's id.
        signal_id: i64,
    },
    /// No journey matched; stored for operators (and for a journey that
    /// registers the correlation key later).
    Unmatched,
}

/// A stored (or duplicate) signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The stored signal's id.
    pub signal_id: i64,
    /// What happened.
    pub outcome: DeliveryOutcome,
}

/// Filters for listing journeys.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this workflow.
    pub workflow: Option<String>,
    /// Only these statuses.
    pub statuses: Vec<Status>,
    /// Business key or correlation key value (exact).
    pub key: Option<String>,
    /// Created at or after (ms).
    pub since_ms: Option<i64>,
    /// At most this many (capped at 1000).
    pub limit: u32,
}

/// Journeys that need a person: the candidates, with the raw facts; the
/// operator layer turns them into one-line reasons.
#[derive(Debug, Clone, Default)]
pub struct StuckReport {
    /// Needs attention, past their step's expected time, or past deadline.
    pub journeys: Vec<JourneyRecord>,
    /// Signals that matched no journey and were not dismissed.
    pub unmatched_signals: Vec<SignalRecord>,
}

/// Journeys counted by workflow and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    /// The workflow.
    pub workflow: String,
    /// The status.
    pub status: Status,
    /// How many.
    pub count: i64,
}

/// Store-level counters (for benchmarks and metrics).
#[derive(Debug, Default)]
pub struct StoreStats {
    commits: AtomicU64,
    queries: AtomicU64,
}

impl StoreStats {
    pub(crate) fn commit(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn query(&self) {
        self.queries.fetch_add(1, Ordering::Relaxed);
    }

    /// Write transactions committed by this process.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Statements sent by this process.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

/// Creating and reading journeys.
#[async_trait]
pub trait JourneyStore: Send + Sync {
    /// Writes a new journey (idempotent on its id).
    async fn create(&self, journey: &NewJourney) -> Result<CreateOutcome, StoreError>;
    /// Writes many new journeys in one transaction.
    async fn create_many(&self, journeys: &[NewJourney]) -> Result<Vec<CreateOutcome>, StoreError>;
    /// One journey.
    async fn get(&self, id: JourneyId) -> Result<Option<JourneyRecord>, StoreError>;
    /// Journeys matching `filter`, newest first.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<JourneyRecord>, StoreError>;
    /// A journey's history, oldest first, at most `limit` entries from `after_seq`.
    async fn history(
        &self,
        id: JourneyId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, StoreError>;
    /// One history entry.
    async fn history_entry(
        &self,
        id: JourneyId,
        seq: i64,
    ) -> Result<Option<HistoryEntry>, StoreError>;
    /// The correlation keys a journey registered.
    async fn correlations(&self, id: JourneyId) -> Result<Vec<String>, StoreError>;
    /// Journey counts by workflow and status.
    async fn count_by_status(&self) -> Result<Vec<StatusCount>, StoreError>;
}

/// Claiming due journeys, keeping leases, and committing steps.
#[async_trait]
pub trait WorkStore: Send + Sync {
    /// Leases up to `limit` journeys that are due by `now_ms + lookahead_ms`
    /// (never one whose lease is still valid), until `lease_until_ms`.
    async fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        lookahead_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<JourneyRecord>, StoreError>;
    /// Unconsumed signals of these journeys, oldest first.
    async fn pending_signals(&self, ids: &[JourneyId]) -> Result<Vec<SignalRecord>, StoreError>;
    /// Commits several journeys' steps in one transaction. Each write is
    /// fenced by its epoch: a stale one is refused (`LeaseLost`) and the
    /// others still commit. `lease_until_ms` is the expiry written for
    /// journeys the worker keeps.
    async fn commit(
        &self,
        owner: &str,
        batch: &[Commit],
        lease_until_ms: i64,
    ) -> Result<Vec<CommitOutcome>, StoreError>;
    /// Extends the leases this worker still holds; returns the ids it still
    /// holds (any other was lost).
    async fn heartbeat(
        &self,
        owner: &str,
        held: &[(JourneyId, i64)],
        lease_until_ms: i64,
    ) -> Result<Vec<JourneyId>, StoreError>;
    /// Gives journeys back without changing them (shutdown): they become
    /// claimable at `ready_at_ms`.
    async fn release(
        &self,
        owner: &str,
        held: &[(JourneyId, i64, Option<i64>)],
    ) -> Result<(), StoreError>;
    /// The earliest time any unleased journey becomes due.
    async fn next_ready_at(&self) -> Result<Option<i64>, StoreError>;
}

/// The signal inbox.
#[async_trait]
pub trait SignalStore: Send + Sync {
    /// Stores a signal and wakes its journey if it waits for it, atomically.
    async fn deliver(&self, signal: &NewSignal, now_ms: i64) -> Result<Delivery, StoreError>;
    /// A journey's signals (consumed or not), newest first.
    async fn signals_for(&self, id: JourneyId, limit: u32)
    -> Result<Vec<SignalRecord>, StoreError>;
    /// Signals that matched no journey and were not dismissed.
    async fn unmatched(&self, limit: u32) -> Result<Vec<SignalRecord>, StoreError>;
    /// Marks an unmatched signal as handled by a person.
    async fn dismiss(&self, signal_id: i64, now_ms: i64) -> Result<bool, StoreError>;
}

/// What operators' repairs need beyond the worker path.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Leases one journey for a repair if no worker holds it; returns the
    /// journey (with its new epoch) or who holds it.
    async fn lease_one(
        &self,
        id: JourneyId,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<LeaseOne, StoreError>;
    /// Asks the worker holding a journey to cancel it after its step.
    async fn request_cancel(
        &self,
        id: JourneyId,
        request: &CancelRequest,
    ) -> Result<bool, StoreError>;
    /// Journeys that need a person at `now_ms`, and unmatched signals.
    async fn stuck(&self, now_ms: i64, limit: u32) -> Result<StuckReport, StoreError>;
    /// Deletes the history of journeys that ended before `before_ms`
    /// (at most `limit` journeys); returns the journeys pruned.
    async fn prune_history(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError>;
}

/// The result of [`AdminStore::lease_one`].
#[derive(Debug, Clone)]
pub enum LeaseOne {
    /// Leased for the caller; with the `ready_at_ms` it had before (to give
    /// it back unchanged if the repair is refused).
    Leased(Box<JourneyRecord>, Option<i64>),
    /// A worker holds it.
    Busy {
        /// The holder.
        owner: String,
        /// Its lease expiry (ms).
        until_ms: i64,
    },
    /// No such journey.
    NotFound,
}

/// Cluster-wide scheduled-job slots.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Claims the run of `job` for the time slot `slot_ms`; true for exactly
    /// one caller across all nodes.
    async fn claim_slot(
        &self,
        job: &str,
        slot_ms: i64,
        owner: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
}

/// A complete store.
#[async_trait]
pub trait Store:
    JourneyStore + WorkStore + SignalStore + AdminStore + ScheduleStore + std::fmt::Debug
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Counters of this process's use of the store.
    fn stats(&self) -> &StoreStats;
    /// Wakes `notify` when another process makes work due (Postgres
    /// LISTEN/NOTIFY); in-process wake-ups are the engine's own.
    async fn watch(&self, notify: Arc<Notify>) -> Result<(), StoreError>;
    /// Closes the connection pool.
    async fn close(&self);
}

/// Opens the store a URL names: `sqlite://path` (created if missing),
/// `sqlite::memory:`, or `postgres://...`.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::Database(format!(
            "unsupported database URL {:?}: use sqlite://PATH or postgres://...",
            redact_url(url)
        )))
    }
}

/// A database URL with any password removed, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `,a,b,` for a list of signal names (matched with `instr`/`position`).
pub(crate) fn encode_signals(names: &[SignalName]) -> Option<String> {
    if names.is_empty() {
        None
    } else {
        let mut out = String::from(",");
        for n in names {
            out.push_str(n.as_str());
            out.push(',');
        }
        Some(out)
    }
}

pub(crate) fn decode_signals(raw: Option<&str>) -> Result<Vec<SignalName>, StoreError> {
    raw.unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| SignalName::new(s).map_err(StoreError::Corrupt))
        .collect()
}
