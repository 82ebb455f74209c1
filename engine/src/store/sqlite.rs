//! The SQLite store: the embedded default. One process; WAL; a single writer
//! connection (writers queue in the pool, not in SQLite's busy handler) and a
//! few readers.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{FromRow, Sqlite, Transaction};
use tokio::sync::Notify;

use super::{
    AdminStore, CreateOutcome, Delivery, DeliveryOutcome, JourneyStore, LeaseOne, ListFilter,
    NewJourney, NewSignal, ScheduleStore, SignalStore, SignalTarget, StatusCount, Store,
    StoreStats, StuckReport, WorkStore, decode_signals, encode_signals,
};
use crate::error::StoreError;
use crate::ids::{BusinessKey, BusinessKeyKind, JourneyId, SignalName};
use crate::model::{
    CancelRequest, Commit, CommitOutcome, Ending, HistoryEntry, HistoryKind, JourneyRecord, Ready,
    SignalRecord, Status,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

const JOURNEY_COLUMNS: &str = "id, workflow, version, status, state, business_key_kind, business_key, \
    step_name, step_since_ms, sla_at_ms, step_seq, attempt, ready_at_ms, wake_at_ms, wait_signals, \
    wait_on_timeout, deadline_at_ms, lease_owner, lease_epoch, recovered, claims_since_commit, \
    last_error, last_error_kind, attention, compensations, ending, cancel_request, output, failure, \
    history_seq, created_at_ms, updated_at_ms, finished_at_ms";

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    stats: Arc<StoreStats>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://PATH`
    /// or `sqlite::memory:`) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit survives power loss, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(false)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        // An in-memory database exists once per connection: share the writer.
        let reader = if memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options.read_only(true))
                .await?
        };
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(Self {
            writer,
            reader,
            stats: Arc::new(StoreStats::default()),
        })
    }

    /// The write pool (one connection: SQLite has one writer), for an
    /// embedding service that keeps its own tables in the same database.
    /// Its writes queue behind the engine's commits, as any SQLite writer's do.
    pub fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.stats.query();
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn commit_tx(&self, tx: Transaction<'static, Sqlite>) -> Result<(), StoreError> {
        tx.commit().await?;
        self.stats.commit();
        Ok(())
    }
}

#[derive(FromRow)]
struct Row {
    id: String,
    workflow: String,
    version: i64,
    status: String,
    state: String,
    business_key_kind: Option<String>,
    business_key: Option<String>,
    step_name: String,
    step_since_ms: i64,
    sla_at_ms: Option<i64>,
    step_seq: i64,
    attempt: i64,
    ready_at_ms: Option<i64>,
    wake_at_ms: Option<i64>,
    wait_signals: Option<String>,
    wait_on_timeout: Option<String>,
    deadline_at_ms: Option<i64>,
    lease_owner: Option<String>,
    lease_epoch: i64,
    recovered: bool,
    claims_since_commit: i64,
    last_error: Option<String>,
    last_error_kind: Option<String>,
    attention: Option<String>,
    compensations: String,
    ending: Option<String>,
    cancel_request: Option<String>,
    output: Option<String>,
    failure: Option<String>,
    history_seq: i64,
    created_at_ms: i64,
    updated_at_ms: i64,
    finished_at_ms: Option<i64>,
}

fn json(raw: &str) -> Result<Value, StoreError> {
    Ok(serde_json::from_str(raw)?)
}

fn opt_json(raw: Option<&str>) -> Result<Option<Value>, StoreError> {
    raw.map(json).transpose()
}

fn parse_id(raw: &str) -> Result<JourneyId, StoreError> {
    JourneyId::from_str(raw).map_err(|e| StoreError::Corrupt(format!("journey id {raw:?}: {e}")))
}

impl TryFrom<Row> for JourneyRecord {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        let compensations = match json(&r.compensations)? {
            Value::Array(items) => items,
            other => return Err(StoreError::Corrupt(format!("compensations: {other}"))),
        };
        Ok(JourneyRecord {
            id: parse_id(&r.id)?,
            workflow: r.workflow,
            version: u32::try_from(r.version).unwrap_or_default(),
            status: Status::from_str(&r.status).map_err(StoreError::Corrupt)?,
            state: json(&r.state)?,
            business_key: match (r.business_key_kind, r.business_key) {
                (Some(kind), Some(value)) => Some(BusinessKey {
                    kind: BusinessKeyKind::parse(&kind),
                    value,
                }),
                _ => None,
            },
            step_name: r.step_name,
            step_since_ms: r.step_since_ms,
            sla_at_ms: r.sla_at_ms,
            step_seq: r.step_seq,
            attempt: u32::try_from(r.attempt).unwrap_or(1),
            ready_at_ms: r.ready_at_ms,
            wake_at_ms: r.wake_at_ms,
            wait_signals: decode_signals(r.wait_signals.as_deref())?,
            wait_on_timeout: opt_json(r.wait_on_timeout.as_deref())?,
            deadline_at_ms: r.deadline_at_ms,
            lease_owner: r.lease_owner,
            lease_epoch: r.lease_epoch,
            recovered: r.recovered,
            claims_since_commit: i32::try_from(r.claims_since_commit).unwrap_or(i32::MAX),
            last_error: r.last_error,
            last_error_kind: r.last_error_kind,
            attention: r.attention,
            compensations,
            ending: r.ending.as_deref().and_then(Ending::parse),
            cancel_request: r
                .cancel_request
                .as_deref()
                .map(serde_json::from_str::<CancelRequest>)
                .transpose()?,
            output: opt_json(r.output.as_deref())?,
            failure: r.failure,
            history_seq: r.history_seq,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
            finished_at_ms: r.finished_at_ms,
        })
    }
}

#[derive(FromRow)]
struct HistoryRow {
    seq: i64,
    at_ms: i64,
    kind: String,
    step: Option<String>,
    attempt: Option<i64>,
    duration_ms: Option<i64>,
    detail: String,
    state: Option<String>,
}

impl TryFrom<HistoryRow> for HistoryEntry {
    type Error = StoreError;
    fn try_from(r: HistoryRow) -> Result<Self, StoreError> {
        Ok(HistoryEntry {
            seq: r.seq,
            at_ms: r.at_ms,
            kind: HistoryKind::parse(&r.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("history kind {:?}", r.kind)))?,
            step: r.step,
            attempt: r.attempt.and_then(|a| u32::try_from(a).ok()),
            duration_ms: r.duration_ms,
            detail: json(&r.detail)?,
            state: opt_json(r.state.as_deref())?,
        })
    }
}

#[derive(FromRow)]
struct SignalRow {
    id: i64,
    journey_id: Option<String>,
    addressed_to: Option<String>,
    correlation_key: Option<String>,
    name: String,
    payload: String,
    dedupe_key: Option<String>,
    source: String,
    received_at_ms: i64,
    consumed_at_ms: Option<i64>,
}

const SIGNAL_COLUMNS: &str = "id, journey_id, addressed_to, correlation_key, name, payload, \
    dedupe_key, source, received_at_ms, consumed_at_ms";

impl TryFrom<SignalRow> for SignalRecord {
    type Error = StoreError;
    fn try_from(r: SignalRow) -> Result<Self, StoreError> {
        Ok(SignalRecord {
            id: r.id,
            journey_id: r.journey_id.as_deref().map(parse_id).transpose()?,
            addressed_to: r.addressed_to,
            correlation_key: r.correlation_key,
            name: SignalName::new(r.name).map_err(StoreError::Corrupt)?,
            payload: json(&r.payload)?,
            dedupe_key: r.dedupe_key,
            source: r.source,
            received_at_ms: r.received_at_ms,
            consumed_at_ms: r.consumed_at_ms,
        })
    }
}

fn records(rows: Vec<Row>) -> Result<Vec<JourneyRecord>, StoreError> {
    rows.into_iter().map(JourneyRecord::try_from).collect()
}

async fn insert_history(
    tx: &mut Transaction<'static, Sqlite>,
    id: &str,
    entries: &[HistoryEntry],
) -> Result<(), StoreError> {
    for h in entries {
        sqlx::query(
            "INSERT INTO history (journey_id, seq, at_ms, kind, step, attempt, duration_ms, detail, state) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(h.seq)
        .bind(h.at_ms)
        .bind(h.kind.as_str())
        .bind(h.step.as_deref())
        .bind(h.attempt.map(i64::from))
        .bind(h.duration_ms)
        .bind(h.detail.to_string())
        .bind(h.state.as_ref().map(Value::to_string))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn register_correlations(
    tx: &mut Transaction<'static, Sqlite>,
    id: &str,
    keys: &[crate::ids::CorrelationKey],
    now_ms: i64,
) -> Result<(), StoreError> {
    for key in keys {
        // The newest journey to register a key receives its callbacks.
        sqlx::query(
            "INSERT INTO correlations (key, value, journey_id, created_at_ms) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (key) DO UPDATE SET journey_id = excluded.journey_id, created_at_ms = excluded.created_at_ms",
        )
        .bind(key.as_str())
        .bind(key.value())
        .bind(id)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
        // Callbacks that arrived before the key was known are adopted.
        sqlx::query(
            "UPDATE signals SET journey_id = ?1 WHERE journey_id IS NULL AND correlation_key = ?2 AND dismissed_at_ms IS NULL",
        )
        .bind(id)
        .bind(key.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Makes a waiting journey due now if an unconsumed signal it waits for is
/// in its inbox. Returns whether it did.
async fn wake_if_signalled(
    tx: &mut Transaction<'static, Sqlite>,
    id: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE journeys SET ready_at_ms = ?2 \
         WHERE id = ?1 AND status = 'waiting' AND lease_owner IS NULL AND EXISTS ( \
           SELECT 1 FROM signals s WHERE s.journey_id = journeys.id AND s.consumed_at_ms IS NULL \
           AND instr(journeys.wait_signals, ',' || s.name || ',') > 0)",
    )
    .bind(id)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[async_trait]
impl JourneyStore for SqliteStore {
    async fn create(&self, journey: &NewJourney) -> Result<CreateOutcome, StoreError> {
        Ok(self
            .create_many(std::slice::from_ref(journey))
            .await?
            .pop()
            .unwrap_or(CreateOutcome::Created))
    }

    async fn create_many(&self, journeys: &[NewJourney]) -> Result<Vec<CreateOutcome>, StoreError> {
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(journeys.len());
        for j in journeys {
            let id = j.id.to_string();
            let inserted = sqlx::query(
                "INSERT INTO journeys (id, workflow, version, status, state, business_key_kind, business_key, \
                 step_name, step_since_ms, sla_at_ms, step_seq, attempt, ready_at_ms, deadline_at_ms, \
                 history_seq, created_at_ms, updated_at_ms) \
                 VALUES (?1, ?2, ?3, 'runnable', ?4, ?5, ?6, ?7, ?8, ?9, 0, 1, ?8, ?10, ?11, ?8, ?8) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&id)
            .bind(&j.workflow)
            .bind(i64::from(j.version))
            .bind(j.state.to_string())
            .bind(j.business_key.as_ref().map(|k| k.kind.as_str()))
            .bind(j.business_key.as_ref().map(|k| k.value.as_str()))
            .bind(&j.step_name)
            .bind(j.now_ms)
            .bind(j.sla_at_ms)
            .bind(j.deadline_at_ms)
            .bind(j.started.seq)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                let workflow: String =
                    sqlx::query_scalar("SELECT workflow FROM journeys WHERE id = ?1")
                        .bind(&id)
                        .fetch_one(&mut *tx)
                        .await?;
                out.push(CreateOutcome::Existing { workflow });
                continue;
            }
            insert_history(&mut tx, &id, std::slice::from_ref(&j.started)).await?;
            register_correlations(&mut tx, &id, &j.correlations, j.now_ms).await?;
            out.push(CreateOutcome::Created);
        }
        self.commit_tx(tx).await?;
        Ok(out)
    }

    async fn get(&self, id: JourneyId) -> Result<Option<JourneyRecord>, StoreError> {
        self.stats.query();
        let sql = format!("SELECT {JOURNEY_COLUMNS} FROM journeys WHERE id = ?1");
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(JourneyRecord::try_from).transpose()
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<JourneyRecord>, StoreError> {
        self.stats.query();
        // Only the filters in use go into the SQL, so each can use its index.
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(format!(
            "SELECT {JOURNEY_COLUMNS} FROM journeys WHERE 1 = 1"
        ));
        if let Some(workflow) = &filter.workflow {
            q.push(" AND workflow = ").push_bind(workflow.clone());
        }
        if !filter.statuses.is_empty() {
            q.push(" AND status IN (");
            let mut sep = q.separated(", ");
            for s in &filter.statuses {
                sep.push_bind(s.as_str());
            }
            q.push(")");
        }
        if let Some(key) = &filter.key {
            let key = normalise_key(key);
            q.push(" AND (business_key = ")
                .push_bind(key.clone())
                .push(" OR id = ")
                .push_bind(key.clone())
                .push(" OR id IN (SELECT journey_id FROM correlations WHERE value = ")
                .push_bind(key)
                .push("))");
        }
        if let Some(since) = filter.since_ms {
            q.push(" AND created_at_ms >= ").push_bind(since);
        }
        q.push(" ORDER BY created_at_ms DESC LIMIT ")
            .push_bind(i64::from(filter.limit.clamp(1, 1000)));
        let rows: Vec<Row> = q.build_query_as().fetch_all(&self.reader).await?;
        records(rows)
    }

    async fn history(
        &self,
        id: JourneyId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.stats.query();
        let rows: Vec<HistoryRow> = sqlx::query_as(
            "SELECT seq, at_ms, kind, step, attempt, duration_ms, detail, state FROM history \
             WHERE journey_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )
        .bind(id.to_string())
        .bind(after_seq)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(HistoryEntry::try_from).collect()
    }

    async fn history_entry(
        &self,
        id: JourneyId,
        seq: i64,
    ) -> Result<Option<HistoryEntry>, StoreError> {
        self.stats.query();
        let row: Option<HistoryRow> = sqlx::query_as(
            "SELECT seq, at_ms, kind, step, attempt, duration_ms, detail, state FROM history \
             WHERE journey_id = ?1 AND seq = ?2",
        )
        .bind(id.to_string())
        .bind(seq)
        .fetch_optional(&self.reader)
        .await?;
        row.map(HistoryEntry::try_from).transpose()
    }

    async fn correlations(&self, id: JourneyId) -> Result<Vec<String>, StoreError> {
        self.stats.query();
        Ok(sqlx::query_scalar(
            "SELECT key FROM correlations WHERE journey_id = ?1 ORDER BY created_at_ms",
        )
        .bind(id.to_string())
        .fetch_all(&self.reader)
        .await?)
    }

    async fn count_by_status(&self) -> Result<Vec<StatusCount>, StoreError> {
        self.stats.query();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT workflow, status, COUNT(*) FROM journeys GROUP BY workflow, status ORDER BY workflow, status",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(workflow, status, count)| {
                Ok(StatusCount {
                    workflow,
                    status: Status::from_str(&status).map_err(StoreError::Corrupt)?,
                    count,
                })
            })
            .collect()
    }
}

/// Phone numbers are stored as digits; accept `+966 50...` when searching.
pub(crate) fn normalise_key(key: &str) -> String {
    let trimmed = key.trim();
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let phone_like = trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'));
    if phone_like && digits.len() >= 7 {
        digits
    } else {
        trimmed.to_owned()
    }
}

#[async_trait]
impl WorkStore for SqliteStore {
    async fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        lookahead_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<JourneyRecord>, StoreError> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "UPDATE journeys SET recovered = (lease_owner IS NOT NULL), \
             claims_since_commit = claims_since_commit + 1, lease_owner = ?1, \
             lease_epoch = lease_epoch + 1, ready_at_ms = ?2 \
             WHERE id IN (SELECT id FROM journeys WHERE ready_at_ms <= ?3 \
               AND (lease_owner IS NULL OR ready_at_ms <= ?4) ORDER BY ready_at_ms LIMIT ?5) \
             RETURNING {JOURNEY_COLUMNS}"
        );
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(lease_until_ms)
            .bind(now_ms + lookahead_ms)
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(vec![]);
        }
        self.commit_tx(tx).await?;
        records(rows)
    }

    async fn pending_signals(&self, ids: &[JourneyId]) -> Result<Vec<SignalRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        self.stats.query();
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let sql = format!(
            "SELECT {SIGNAL_COLUMNS} FROM signals WHERE consumed_at_ms IS NULL \
             AND journey_id IN (SELECT value FROM json_each(?1)) ORDER BY id"
        );
        // Read through the writer: a signal committed a moment ago must be seen.
        let rows: Vec<SignalRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(serde_json::to_string(&ids)?)
            .fetch_all(&self.writer)
            .await?;
        rows.into_iter().map(SignalRecord::try_from).collect()
    }

    async fn commit(
        &self,
        owner: &str,
        batch: &[Commit],
        lease_until_ms: i64,
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(batch.len());
        for c in batch {
            let id = c.id.to_string();
            let u = &c.update;
            let (ready_at, keep) = match u.ready {
                Ready::KeepLease => (Some(lease_until_ms), true),
                Ready::At(at) => (Some(at), false),
                Ready::Never => (None, false),
            };
            let cancel_pending: Option<bool> = sqlx::query_scalar(
                "UPDATE journeys SET version = ?1, status = ?2, state = ?3, step_name = ?4, step_since_ms = ?5, \
                 sla_at_ms = ?6, step_seq = ?7, attempt = ?8, ready_at_ms = ?9, wake_at_ms = ?10, \
                 wait_signals = ?11, wait_on_timeout = ?12, deadline_at_ms = ?13, last_error = ?14, \
                 last_error_kind = ?15, attention = ?16, compensations = ?17, ending = ?18, \
                 cancel_request = CASE WHEN ?19 THEN NULL ELSE cancel_request END, output = ?20, \
                 failure = ?21, history_seq = ?22, finished_at_ms = ?23, business_key_kind = ?24, \
                 business_key = ?25, lease_owner = CASE WHEN ?26 THEN lease_owner ELSE NULL END, \
                 recovered = 0, claims_since_commit = 0, updated_at_ms = ?27 \
                 WHERE id = ?28 AND lease_epoch = ?29 AND lease_owner = ?30 \
                 RETURNING cancel_request IS NOT NULL",
            )
            .bind(i64::from(u.version))
            .bind(u.status.as_str())
            .bind(u.state.to_string())
            .bind(&u.step_name)
            .bind(u.step_since_ms)
            .bind(u.sla_at_ms)
            .bind(u.step_seq)
            .bind(i64::from(u.attempt))
            .bind(ready_at)
            .bind(u.wake_at_ms)
            .bind(encode_signals(&u.wait_signals))
            .bind(u.wait_on_timeout.as_ref().map(Value::to_string))
            .bind(u.deadline_at_ms)
            .bind(u.last_error.as_deref())
            .bind(u.last_error_kind.as_deref())
            .bind(u.attention.as_deref())
            .bind(Value::Array(u.compensations.clone()).to_string())
            .bind(u.ending.map(Ending::as_str))
            .bind(u.clear_cancel_request)
            .bind(u.output.as_ref().map(Value::to_string))
            .bind(u.failure.as_deref())
            .bind(u.history_seq)
            .bind(u.finished_at_ms)
            .bind(u.business_key.as_ref().map(|k| k.kind.as_str()))
            .bind(u.business_key.as_ref().map(|k| k.value.as_str()))
            .bind(keep)
            .bind(c.now_ms)
            .bind(&id)
            .bind(c.epoch)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(cancel_pending) = cancel_pending else {
                out.push(CommitOutcome::LeaseLost);
                continue;
            };
            insert_history(&mut tx, &id, &c.history).await?;
            if let Some(signal) = c.consumed_signal {
                sqlx::query("UPDATE signals SET consumed_at_ms = ?1 WHERE id = ?2")
                    .bind(c.now_ms)
                    .bind(signal)
                    .execute(&mut *tx)
                    .await?;
            }
            register_correlations(&mut tx, &id, &c.correlations, c.now_ms).await?;
            let woke =
                u.status == Status::Waiting && wake_if_signalled(&mut tx, &id, c.now_ms).await?;
            out.push(CommitOutcome::Committed {
                cancel_requested: cancel_pending,
                woke,
            });
        }
        self.commit_tx(tx).await?;
        Ok(out)
    }

    async fn heartbeat(
        &self,
        owner: &str,
        held: &[(JourneyId, i64)],
        lease_until_ms: i64,
    ) -> Result<Vec<JourneyId>, StoreError> {
        if held.is_empty() {
            return Ok(vec![]);
        }
        let pairs: Vec<(String, i64)> = held.iter().map(|(id, e)| (id.to_string(), *e)).collect();
        let mut tx = self.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE journeys SET ready_at_ms = ?3 \
             FROM (SELECT json_extract(value, '$[0]') AS hid, json_extract(value, '$[1]') AS hep FROM json_each(?2)) AS h \
             WHERE journeys.id = h.hid AND journeys.lease_epoch = h.hep AND journeys.lease_owner = ?1 \
             RETURNING journeys.id",
        )
        .bind(owner)
        .bind(serde_json::to_string(&pairs)?)
        .bind(lease_until_ms)
        .fetch_all(&mut *tx)
        .await?;
        self.commit_tx(tx).await?;
        ids.iter().map(|s| parse_id(s)).collect()
    }

    async fn release(
        &self,
        owner: &str,
        held: &[(JourneyId, i64, Option<i64>)],
    ) -> Result<(), StoreError> {
        if held.is_empty() {
            return Ok(());
        }
        let triples: Vec<(String, i64, Option<i64>)> = held
            .iter()
            .map(|(id, e, r)| (id.to_string(), *e, *r))
            .collect();
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE journeys SET ready_at_ms = h.ready, lease_owner = NULL, \
             claims_since_commit = MAX(claims_since_commit - 1, 0) \
             FROM (SELECT json_extract(value, '$[0]') AS hid, json_extract(value, '$[1]') AS hep, \
                   json_extract(value, '$[2]') AS ready FROM json_each(?2)) AS h \
             WHERE journeys.id = h.hid AND journeys.lease_epoch = h.hep AND journeys.lease_owner = ?1",
        )
        .bind(owner)
        .bind(serde_json::to_string(&triples)?)
        .execute(&mut *tx)
        .await?;
        self.commit_tx(tx).await
    }

    async fn next_ready_at(&self) -> Result<Option<i64>, StoreError> {
        self.stats.query();
        Ok(sqlx::query_scalar(
            "SELECT MIN(ready_at_ms) FROM journeys WHERE ready_at_ms IS NOT NULL",
        )
        .fetch_one(&self.reader)
        .await?)
    }
}

#[async_trait]
impl SignalStore for SqliteStore {
    async fn deliver(&self, signal: &NewSignal, now_ms: i64) -> Result<Delivery, StoreError> {
        let mut tx = self.begin().await?;
        let (journey, addressed_to, correlation): (
            Option<(String, String)>,
            Option<String>,
            Option<String>,
        ) = match &signal.target {
            SignalTarget::Journey(id) => {
                let found: Option<(String, String)> =
                    sqlx::query_as("SELECT id, status FROM journeys WHERE id = ?1")
                        .bind(id.to_string())
                        .fetch_optional(&mut *tx)
                        .await?;
                (found, Some(id.to_string()), None)
            }
            SignalTarget::Correlation(key) => {
                let found: Option<(String, String)> = sqlx::query_as(
                        "SELECT j.id, j.status FROM correlations c JOIN journeys j ON j.id = c.journey_id WHERE c.key = ?1",
                    )
                    .bind(key.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                (found, None, Some(key.as_str().to_owned()))
            }
            SignalTarget::Unparsed(raw) => (None, Some(raw.clone()), None),
        };
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO signals (journey_id, addressed_to, correlation_key, name, payload, dedupe_key, source, received_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        )
        .bind(journey.as_ref().map(|(id, _)| id.as_str()))
        .bind(addressed_to)
        .bind(correlation)
        .bind(signal.name.as_str())
        .bind(signal.payload.to_string())
        .bind(signal.dedupe_key.as_deref())
        .bind(&signal.source)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(signal_id) = inserted else {
            let signal_id: i64 = sqlx::query_scalar("SELECT id FROM signals WHERE dedupe_key = ?1")
                .bind(signal.dedupe_key.as_deref())
                .fetch_one(&mut *tx)
                .await?;
            tx.rollback().await?;
            return Ok(Delivery {
                signal_id,
                outcome: DeliveryOutcome::Duplicate { signal_id },
            });
        };
        let outcome = match journey {
            Some((id, status)) => {
                let woke = sqlx::query(
                    "UPDATE journeys SET ready_at_ms = ?2 WHERE id = ?1 AND status = 'waiting' \
                     AND lease_owner IS NULL AND instr(wait_signals, ',' || ?3 || ',') > 0",
                )
                .bind(&id)
                .bind(now_ms)
                .bind(signal.name.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                DeliveryOutcome::Delivered {
                    journey: parse_id(&id)?,
                    woke,
                    status: Status::from_str(&status).map_err(StoreError::Corrupt)?,
                }
            }
            None => DeliveryOutcome::Unmatched,
        };
        self.commit_tx(tx).await?;
        Ok(Delivery { signal_id, outcome })
    }

    async fn signals_for(
        &self,
        id: JourneyId,
        limit: u32,
    ) -> Result<Vec<SignalRecord>, StoreError> {
        self.stats.query();
        let sql = format!(
            "SELECT {SIGNAL_COLUMNS} FROM signals WHERE journey_id = ?1 ORDER BY id DESC LIMIT ?2"
        );
        let rows: Vec<SignalRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(SignalRecord::try_from).collect()
    }

    async fn unmatched(&self, limit: u32) -> Result<Vec<SignalRecord>, StoreError> {
        self.stats.query();
        let sql = format!(
            "SELECT {SIGNAL_COLUMNS} FROM signals WHERE journey_id IS NULL AND dismissed_at_ms IS NULL \
             ORDER BY id DESC LIMIT ?1"
        );
        let rows: Vec<SignalRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(SignalRecord::try_from).collect()
    }

    async fn dismiss(&self, signal_id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE signals SET dismissed_at_ms = ?2 WHERE id = ?1 AND journey_id IS NULL AND dismissed_at_ms IS NULL",
        )
        .bind(signal_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        self.commit_tx(tx).await?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn lease_one(
        &self,
        id: JourneyId,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<LeaseOne, StoreError> {
        let mut tx = self.begin().await?;
        let previous: Option<Option<i64>> =
            sqlx::query_scalar("SELECT ready_at_ms FROM journeys WHERE id = ?1")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let sql = format!(
            "UPDATE journeys SET recovered = (lease_owner IS NOT NULL), lease_owner = ?2, \
             lease_epoch = lease_epoch + 1, ready_at_ms = ?3 \
             WHERE id = ?1 AND (lease_owner IS NULL OR ready_at_ms <= ?4) RETURNING {JOURNEY_COLUMNS}"
        );
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(owner)
            .bind(lease_until_ms)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
        let outcome = match row {
            Some(row) => LeaseOne::Leased(Box::new(row.try_into()?), previous.flatten()),
            None => {
                let holder: Option<(Option<String>, Option<i64>)> =
                    sqlx::query_as("SELECT lease_owner, ready_at_ms FROM journeys WHERE id = ?1")
                        .bind(id.to_string())
                        .fetch_optional(&mut *tx)
                        .await?;
                match holder {
                    Some((owner, until)) => LeaseOne::Busy {
                        owner: owner.unwrap_or_default(),
                        until_ms: until.unwrap_or_default(),
                    },
                    None => LeaseOne::NotFound,
                }
            }
        };
        self.commit_tx(tx).await?;
        Ok(outcome)
    }

    async fn request_cancel(
        &self,
        id: JourneyId,
        request: &CancelRequest,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE journeys SET cancel_request = ?2 WHERE id = ?1 AND finished_at_ms IS NULL",
        )
        .bind(id.to_string())
        .bind(serde_json::to_string(request)?)
        .execute(&mut *tx)
        .await?;
        self.commit_tx(tx).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn stuck(&self, now_ms: i64, limit: u32) -> Result<StuckReport, StoreError> {
        self.stats.query();
        let limit = i64::from(limit.clamp(1, 1000));
        let sql = format!(
            "SELECT {JOURNEY_COLUMNS} FROM journeys WHERE id IN ( \
               SELECT id FROM journeys WHERE status = 'needs_attention' \
               UNION SELECT id FROM journeys WHERE sla_at_ms <= ?1 AND finished_at_ms IS NULL \
               UNION SELECT id FROM journeys WHERE deadline_at_ms <= ?1 AND finished_at_ms IS NULL) \
             ORDER BY updated_at_ms LIMIT ?2"
        );
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        Ok(StuckReport {
            journeys: records(rows)?,
            unmatched_signals: self.unmatched(u32::try_from(limit).unwrap_or(1000)).await?,
        })
    }

    async fn prune_history(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM journeys WHERE finished_at_ms < ?1 AND history_seq > 0 ORDER BY finished_at_ms LIMIT ?2",
        )
        .bind(before_ms)
        .bind(i64::from(limit.clamp(1, 100_000)))
        .fetch_all(&mut *tx)
        .await?;
        let ids_json = serde_json::to_string(&ids)?;
        sqlx::query("DELETE FROM history WHERE journey_id IN (SELECT value FROM json_each(?1))")
            .bind(&ids_json)
            .execute(&mut *tx)
            .await?;
        // history_seq = 0 marks "pruned" so the journey is not selected again;
        // the journey row itself (outcome, keys) is kept.
        sqlx::query(
            "UPDATE journeys SET history_seq = 0 WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(&ids_json)
        .execute(&mut *tx)
        .await?;
        self.commit_tx(tx).await?;
        Ok(ids.len() as u64)
    }
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn claim_slot(
        &self,
        job: &str,
        slot_ms: i64,
        owner: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "INSERT INTO schedule_slots (job, slot_ms, owner, claimed_at_ms) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (job, slot_ms) DO NOTHING",
        )
        .bind(job)
        .bind(slot_ms)
        .bind(owner)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        self.commit_tx(tx).await?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn stats(&self) -> &StoreStats {
        &self.stats
    }

    async fn watch(&self, _notify: Arc<Notify>) -> Result<(), StoreError> {
        // One process per SQLite file: the engine's in-process wake-ups suffice.
        Ok(())
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
