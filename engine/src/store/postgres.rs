//! The Postgres store: production and multi-node. Several engine processes
//! share one database: claims use `FOR UPDATE SKIP LOCKED`, every write is
//! fenced by the lease epoch, and `LISTEN/NOTIFY` wakes idle workers on other
//! nodes. A batch commit is a handful of set-based statements
//! (`jsonb_to_recordset`, `unnest`), one transaction for many journeys.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{FromRow, Postgres, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

use super::{
    AdminStore, CreateOutcome, Delivery, DeliveryOutcome, JourneyStore, LeaseOne, ListFilter,
    NewJourney, NewSignal, ScheduleStore, SignalStore, SignalTarget, StatusCount, Store,
    StoreStats, StuckReport, WorkStore, decode_signals, encode_signals, redact_url,
    sqlite::normalise_key,
};
use crate::error::StoreError;
use crate::ids::{BusinessKey, BusinessKeyKind, JourneyId, SignalName};
use crate::model::{
    CancelRequest, Commit, CommitOutcome, Ending, HistoryEntry, HistoryKind, JourneyRecord, Ready,
    SignalRecord, Status,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

const JOURNEY_COLUMNS: &str = "j.id, j.workflow, j.version, j.status, j.state, j.business_key_kind, \
    j.business_key, j.step_name, j.step_since_ms, j.sla_at_ms, j.step_seq, j.attempt, j.ready_at_ms, \
    j.wake_at_ms, j.wait_signals, j.wait_on_timeout, j.deadline_at_ms, j.lease_owner, j.lease_epoch, \
    j.recovered, j.claims_since_commit, j.last_error, j.last_error_kind, j.attention, j.compensations, \
    j.ending, j.cancel_request, j.output, j.failure, j.history_seq, j.created_at_ms, j.updated_at_ms, \
    j.finished_at_ms";

const SIGNAL_COLUMNS: &str = "id, journey_id, addressed_to, correlation_key, name, payload, \
    dedupe_key, source, received_at_ms, consumed_at_ms";

/// The Postgres store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    channel: String,
    stats: Arc<StoreStats>,
}

/// How to connect to Postgres.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Put all tables in this schema (created if missing): how tests and
    /// several Handover deployments share one database. `None`: the
    /// connection's default schema.
    pub schema: Option<String>,
    /// Connections in the pool (one more is used for LISTEN).
    pub max_connections: u32,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: None,
            max_connections: 16,
        }
    }
}

impl PostgresStore {
    /// Connects to `url` (tables in the default schema) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects with all tables in `schema` (see [`PostgresOptions::schema`]).
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        Self::connect_with(
            url,
            PostgresOptions {
                schema: Some(schema.to_owned()),
                ..PostgresOptions::default()
            },
        )
        .await
    }

    /// Connects with options.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        if let Some(schema) = &options.schema {
            check_schema(schema)?;
        }
        Self::open(
            url,
            options.schema.as_deref(),
            options.max_connections.max(2),
        )
        .await
    }
}

fn check_schema(schema: &str) -> Result<(), StoreError> {
    {
        if schema.is_empty()
            || schema.len() > 48
            || !schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(StoreError::Database(format!(
                "schema name {schema:?} must be 1-48 characters of a-z, 0-9 and _"
            )));
        }
        Ok(())
    }
}

impl PostgresStore {
    async fn open(
        url: &str,
        schema: Option<&str>,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Database(format!("bad Postgres URL {}: {e}", redact_url(url)))
        })?;
        options = options.application_name("handover");
        if let Some(schema) = schema {
            let setup = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}"
            )))
            .execute(&setup)
            .await?;
            setup.close().await;
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        let channel = match schema {
            Some(schema) => format!("handover_wake_{schema}"),
            None => "handover_wake".to_owned(),
        };
        Ok(Self {
            pool,
            channel,
            stats: Arc::new(StoreStats::default()),
        })
    }

    /// The connection pool (shared with an embedding application).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.stats.query();
        Ok(self.pool.begin().await?)
    }

    async fn commit_tx(&self, tx: Transaction<'static, Postgres>) -> Result<(), StoreError> {
        tx.commit().await?;
        self.stats.commit();
        Ok(())
    }

    async fn notify(&self, tx: &mut Transaction<'static, Postgres>) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(&self.channel)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

#[derive(FromRow)]
struct Row {
    id: Uuid,
    workflow: String,
    version: i32,
    status: String,
    state: Value,
    business_key_kind: Option<String>,
    business_key: Option<String>,
    step_name: String,
    step_since_ms: i64,
    sla_at_ms: Option<i64>,
    step_seq: i64,
    attempt: i32,
    ready_at_ms: Option<i64>,
    wake_at_ms: Option<i64>,
    wait_signals: Option<String>,
    wait_on_timeout: Option<Value>,
    deadline_at_ms: Option<i64>,
    lease_owner: Option<String>,
    lease_epoch: i64,
    recovered: bool,
    claims_since_commit: i32,
    last_error: Option<String>,
    last_error_kind: Option<String>,
    attention: Option<String>,
    compensations: Value,
    ending: Option<String>,
    cancel_request: Option<Value>,
    output: Option<Value>,
    failure: Option<String>,
    history_seq: i64,
    created_at_ms: i64,
    updated_at_ms: i64,
    finished_at_ms: Option<i64>,
}

impl TryFrom<Row> for JourneyRecord {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        let compensations = match r.compensations {
            Value::Array(items) => items,
            other => return Err(StoreError::Corrupt(format!("compensations: {other}"))),
        };
        Ok(JourneyRecord {
            id: JourneyId::from_uuid(r.id),
            workflow: r.workflow,
            version: u32::try_from(r.version).unwrap_or_default(),
            status: Status::from_str(&r.status).map_err(StoreError::Corrupt)?,
            state: r.state,
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
            wait_on_timeout: r.wait_on_timeout,
            deadline_at_ms: r.deadline_at_ms,
            lease_owner: r.lease_owner,
            lease_epoch: r.lease_epoch,
            recovered: r.recovered,
            claims_since_commit: r.claims_since_commit,
            last_error: r.last_error,
            last_error_kind: r.last_error_kind,
            attention: r.attention,
            compensations,
            ending: r.ending.as_deref().and_then(Ending::parse),
            cancel_request: r
                .cancel_request
                .map(serde_json::from_value::<CancelRequest>)
                .transpose()?,
            output: r.output,
            failure: r.failure,
            history_seq: r.history_seq,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
            finished_at_ms: r.finished_at_ms,
        })
    }
}

fn records(rows: Vec<Row>) -> Result<Vec<JourneyRecord>, StoreError> {
    rows.into_iter().map(JourneyRecord::try_from).collect()
}

#[derive(FromRow)]
struct HistoryRow {
    seq: i64,
    at_ms: i64,
    kind: String,
    step: Option<String>,
    attempt: Option<i32>,
    duration_ms: Option<i64>,
    detail: Value,
    state: Option<Value>,
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
            detail: r.detail,
            state: r.state,
        })
    }
}

#[derive(FromRow)]
struct SignalRow {
    id: i64,
    journey_id: Option<Uuid>,
    addressed_to: Option<String>,
    correlation_key: Option<String>,
    name: String,
    payload: Value,
    dedupe_key: Option<String>,
    source: String,
    received_at_ms: i64,
    consumed_at_ms: Option<i64>,
}

impl TryFrom<SignalRow> for SignalRecord {
    type Error = StoreError;
    fn try_from(r: SignalRow) -> Result<Self, StoreError> {
        Ok(SignalRecord {
            id: r.id,
            journey_id: r.journey_id.map(JourneyId::from_uuid),
            addressed_to: r.addressed_to,
            correlation_key: r.correlation_key,
            name: SignalName::new(r.name).map_err(StoreError::Corrupt)?,
            payload: r.payload,
            dedupe_key: r.dedupe_key,
            source: r.source,
            received_at_ms: r.received_at_ms,
            consumed_at_ms: r.consumed_at_ms,
        })
    }
}

fn history_json(id: Uuid, entries: &[HistoryEntry], out: &mut Vec<Value>) {
    for h in entries {
        out.push(json!({
            "journey_id": id,
            "seq": h.seq,
            "at_ms": h.at_ms,
            "kind": h.kind.as_str(),
            "step": h.step,
            "attempt": h.attempt,
            "duration_ms": h.duration_ms,
            "detail": h.detail,
            "state": h.state,
        }));
    }
}

async fn insert_history(
    tx: &mut Transaction<'static, Postgres>,
    rows: Vec<Value>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO history (journey_id, seq, at_ms, kind, step, attempt, duration_ms, detail, state) \
         SELECT journey_id, seq, at_ms, kind, step, attempt, duration_ms, detail, \
                CASE WHEN state = 'null'::jsonb THEN NULL ELSE state END \
         FROM jsonb_to_recordset($1) AS h(journey_id uuid, seq bigint, at_ms bigint, kind text, \
              step text, attempt int, duration_ms bigint, detail jsonb, state jsonb) \
         ON CONFLICT DO NOTHING",
    )
    .bind(Value::Array(rows))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Registers correlation keys (newest journey wins a key) and adopts the
/// callbacks that arrived before the keys were known.
async fn register_correlations(
    tx: &mut Transaction<'static, Postgres>,
    pairs: Vec<(String, String, Uuid)>,
    now_ms: i64,
) -> Result<(), StoreError> {
    if pairs.is_empty() {
        return Ok(());
    }
    // One row per key in a statement (ON CONFLICT cannot touch a row twice).
    let mut dedup: std::collections::BTreeMap<String, (String, Uuid)> = Default::default();
    for (key, value, id) in pairs {
        dedup.insert(key, (value, id));
    }
    let keys: Vec<String> = dedup.keys().cloned().collect();
    let values: Vec<String> = dedup.values().map(|(v, _)| v.clone()).collect();
    let ids: Vec<Uuid> = dedup.values().map(|(_, id)| *id).collect();
    // A callback for a key that is being registered right now must not fall
    // between the two transactions (each blind to the other's uncommitted
    // row under READ COMMITTED): `deliver` takes the same per-key lock before
    // storing a signal as unmatched, so one of them waits and then sees the
    // other. Keys already registered to the same journey need no lock (a
    // callback for them finds the journey). Locks are taken in hash order.
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock(h)) FROM ( \
           SELECT hashtextextended(c.k, 0) AS h FROM unnest($1::text[], $2::uuid[]) AS c(k, j) \
           WHERE NOT EXISTS (SELECT 1 FROM correlations x WHERE x.key = c.k AND x.journey_id = c.j) \
           ORDER BY 1) s",
    )
    .bind(&keys)
    .bind(&ids)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO correlations (key, value, journey_id, created_at_ms) \
         SELECT k, v, j, $4 FROM unnest($1::text[], $2::text[], $3::uuid[]) AS c(k, v, j) \
         ON CONFLICT (key) DO UPDATE SET journey_id = excluded.journey_id, created_at_ms = excluded.created_at_ms",
    )
    .bind(&keys)
    .bind(&values)
    .bind(&ids)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE signals s SET journey_id = c.j FROM unnest($1::text[], $2::uuid[]) AS c(k, j) \
         WHERE s.journey_id IS NULL AND s.correlation_key = c.k AND s.dismissed_at_ms IS NULL",
    )
    .bind(&keys)
    .bind(&ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl JourneyStore for PostgresStore {
    async fn create(&self, journey: &NewJourney) -> Result<CreateOutcome, StoreError> {
        Ok(self
            .create_many(std::slice::from_ref(journey))
            .await?
            .pop()
            .unwrap_or(CreateOutcome::Created))
    }

    async fn create_many(&self, journeys: &[NewJourney]) -> Result<Vec<CreateOutcome>, StoreError> {
        if journeys.is_empty() {
            return Ok(vec![]);
        }
        let rows: Vec<Value> = journeys
            .iter()
            .map(|j| {
                json!({
                    "id": j.id.as_uuid(),
                    "workflow": j.workflow,
                    "version": j.version,
                    "state": j.state,
                    "bk_kind": j.business_key.as_ref().map(|k| k.kind.as_str()),
                    "bk": j.business_key.as_ref().map(|k| k.value.as_str()),
                    "step_name": j.step_name,
                    "now_ms": j.now_ms,
                    "sla_at_ms": j.sla_at_ms,
                    "deadline_at_ms": j.deadline_at_ms,
                    "history_seq": j.started.seq,
                })
            })
            .collect();
        let mut tx = self.begin().await?;
        let created: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO journeys (id, workflow, version, status, state, business_key_kind, business_key, \
             step_name, step_since_ms, sla_at_ms, step_seq, attempt, ready_at_ms, deadline_at_ms, \
             history_seq, created_at_ms, updated_at_ms) \
             SELECT id, workflow, version, 'runnable', state, bk_kind, bk, step_name, now_ms, sla_at_ms, 0, 1, \
                    now_ms, deadline_at_ms, history_seq, now_ms, now_ms \
             FROM jsonb_to_recordset($1) AS n(id uuid, workflow text, version int, state jsonb, bk_kind text, \
                  bk text, step_name text, now_ms bigint, sla_at_ms bigint, deadline_at_ms bigint, history_seq bigint) \
             ON CONFLICT (id) DO NOTHING RETURNING id",
        )
        .bind(Value::Array(rows))
        .fetch_all(&mut *tx)
        .await?;
        let created: std::collections::HashSet<Uuid> = created.into_iter().collect();
        let mut history = Vec::new();
        let mut correlations = Vec::new();
        let mut out = Vec::with_capacity(journeys.len());
        let mut existing = Vec::new();
        for j in journeys {
            let id = j.id.as_uuid();
            if created.contains(&id) {
                history_json(id, std::slice::from_ref(&j.started), &mut history);
                for key in &j.correlations {
                    correlations.push((key.as_str().to_owned(), key.value().to_owned(), id));
                }
                out.push(CreateOutcome::Created);
            } else {
                existing.push((out.len(), id));
                out.push(CreateOutcome::Created);
            }
        }
        for (index, id) in existing {
            let workflow: String =
                sqlx::query_scalar("SELECT workflow FROM journeys WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            out[index] = CreateOutcome::Existing { workflow };
        }
        insert_history(&mut tx, history).await?;
        let now = journeys.first().map(|j| j.now_ms).unwrap_or_default();
        register_correlations(&mut tx, correlations, now).await?;
        if !created.is_empty() {
            self.notify(&mut tx).await?;
        }
        self.commit_tx(tx).await?;
        Ok(out)
    }

    async fn get(&self, id: JourneyId) -> Result<Option<JourneyRecord>, StoreError> {
        self.stats.query();
        let sql = format!("SELECT {JOURNEY_COLUMNS} FROM journeys j WHERE j.id = $1");
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        row.map(JourneyRecord::try_from).transpose()
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<JourneyRecord>, StoreError> {
        self.stats.query();
        let mut q = sqlx::QueryBuilder::<Postgres>::new(format!(
            "SELECT {JOURNEY_COLUMNS} FROM journeys j WHERE TRUE"
        ));
        if let Some(workflow) = &filter.workflow {
            q.push(" AND j.workflow = ").push_bind(workflow.clone());
        }
        if !filter.statuses.is_empty() {
            let statuses: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect();
            q.push(" AND j.status = ANY(").push_bind(statuses).push(")");
        }
        if let Some(key) = &filter.key {
            let key = normalise_key(key);
            let as_id = Uuid::parse_str(&key).ok();
            // One indexed lookup per kind of key, united: an OR across them
            // made Postgres scan every journey (0.5-1 s at a million rows).
            q.push(" AND j.id IN (SELECT id FROM journeys WHERE business_key = ")
                .push_bind(key.clone())
                .push(" UNION ALL SELECT id FROM journeys WHERE id = ")
                .push_bind(as_id)
                .push(" UNION ALL SELECT journey_id FROM correlations WHERE value = ")
                .push_bind(key)
                .push(")");
        }
        if let Some(since) = filter.since_ms {
            q.push(" AND j.created_at_ms >= ").push_bind(since);
        }
        q.push(" ORDER BY j.created_at_ms DESC LIMIT ")
            .push_bind(i64::from(filter.limit.clamp(1, 1000)));
        let rows: Vec<Row> = q.build_query_as().fetch_all(&self.pool).await?;
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
             WHERE journey_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(id.as_uuid())
        .bind(after_seq)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
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
             WHERE journey_id = $1 AND seq = $2",
        )
        .bind(id.as_uuid())
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        row.map(HistoryEntry::try_from).transpose()
    }

    async fn correlations(&self, id: JourneyId) -> Result<Vec<String>, StoreError> {
        self.stats.query();
        Ok(sqlx::query_scalar(
            "SELECT key FROM correlations WHERE journey_id = $1 ORDER BY created_at_ms",
        )
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await?)
    }

    async fn count_by_status(&self) -> Result<Vec<StatusCount>, StoreError> {
        self.stats.query();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT workflow, status, COUNT(*) FROM journeys GROUP BY workflow, status ORDER BY workflow, status",
        )
        .fetch_all(&self.pool)
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

#[async_trait]
impl WorkStore for PostgresStore {
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
            "WITH due AS ( \
               SELECT id FROM journeys WHERE ready_at_ms <= $3 AND (lease_owner IS NULL OR ready_at_ms <= $4) \
               ORDER BY ready_at_ms LIMIT $5 FOR UPDATE SKIP LOCKED) \
             UPDATE journeys j SET recovered = (j.lease_owner IS NOT NULL), \
               claims_since_commit = j.claims_since_commit + 1, lease_owner = $1, \
               lease_epoch = j.lease_epoch + 1, ready_at_ms = $2 \
             FROM due WHERE j.id = due.id RETURNING {JOURNEY_COLUMNS}"
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
        let ids: Vec<Uuid> = ids.iter().map(JourneyId::as_uuid).collect();
        let sql = format!(
            "SELECT {SIGNAL_COLUMNS} FROM signals WHERE consumed_at_ms IS NULL AND journey_id = ANY($1) ORDER BY id"
        );
        let rows: Vec<SignalRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&ids)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(SignalRecord::try_from).collect()
    }

    async fn commit(
        &self,
        owner: &str,
        batch: &[Commit],
        lease_until_ms: i64,
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(vec![]);
        }
        let updates: Vec<Value> = batch
            .iter()
            .map(|c| {
                let u = &c.update;
                let (ready_at, keep) = match u.ready {
                    Ready::KeepLease => (Some(lease_until_ms), true),
                    Ready::At(at) => (Some(at), false),
                    Ready::Never => (None, false),
                };
                json!({
                    "id": c.id.as_uuid(),
                    "epoch": c.epoch,
                    "version": u.version,
                    "status": u.status.as_str(),
                    "state": u.state,
                    "step_name": u.step_name,
                    "step_since_ms": u.step_since_ms,
                    "sla_at_ms": u.sla_at_ms,
                    "step_seq": u.step_seq,
                    "attempt": u.attempt,
                    "ready_at_ms": ready_at,
                    "wake_at_ms": u.wake_at_ms,
                    "wait_signals": encode_signals(&u.wait_signals),
                    "wait_on_timeout": u.wait_on_timeout,
                    "deadline_at_ms": u.deadline_at_ms,
                    "last_error": u.last_error,
                    "last_error_kind": u.last_error_kind,
                    "attention": u.attention,
                    "compensations": u.compensations,
                    "ending": u.ending.map(Ending::as_str),
                    "clear_cancel": u.clear_cancel_request,
                    "output": u.output,
                    "failure": u.failure,
                    "history_seq": u.history_seq,
                    "finished_at_ms": u.finished_at_ms,
                    "bk_kind": u.business_key.as_ref().map(|k| k.kind.as_str()),
                    "bk": u.business_key.as_ref().map(|k| k.value.as_str()),
                    "keep": keep,
                    "now_ms": c.now_ms,
                })
            })
            .collect();
        let ids: Vec<Uuid> = batch.iter().map(|c| c.id.as_uuid()).collect();
        let mut tx = self.begin().await?;
        let committed: Vec<(Uuid, bool)> = sqlx::query_as(
            "WITH locked AS MATERIALIZED (SELECT id FROM journeys WHERE id = ANY($3) ORDER BY id FOR UPDATE) \
             UPDATE journeys j SET version = u.version, status = u.status, state = u.state, \
               step_name = u.step_name, step_since_ms = u.step_since_ms, sla_at_ms = u.sla_at_ms, \
               step_seq = u.step_seq, attempt = u.attempt, ready_at_ms = u.ready_at_ms, \
               wake_at_ms = u.wake_at_ms, wait_signals = u.wait_signals, \
               wait_on_timeout = CASE WHEN u.wait_on_timeout = 'null'::jsonb THEN NULL ELSE u.wait_on_timeout END, \
               deadline_at_ms = u.deadline_at_ms, last_error = u.last_error, \
               last_error_kind = u.last_error_kind, attention = u.attention, \
               compensations = u.compensations, ending = u.ending, \
               cancel_request = CASE WHEN u.clear_cancel THEN NULL ELSE j.cancel_request END, \
               output = CASE WHEN u.output = 'null'::jsonb THEN NULL ELSE u.output END, \
               failure = u.failure, history_seq = u.history_seq, finished_at_ms = u.finished_at_ms, \
               business_key_kind = u.bk_kind, business_key = u.bk, \
               lease_owner = CASE WHEN u.keep THEN j.lease_owner ELSE NULL END, \
               recovered = FALSE, claims_since_commit = 0, updated_at_ms = u.now_ms \
             FROM jsonb_to_recordset($1) AS u(id uuid, epoch bigint, version int, status text, state jsonb, \
               step_name text, step_since_ms bigint, sla_at_ms bigint, step_seq bigint, attempt int, \
               ready_at_ms bigint, wake_at_ms bigint, wait_signals text, wait_on_timeout jsonb, \
               deadline_at_ms bigint, last_error text, last_error_kind text, attention text, \
               compensations jsonb, ending text, clear_cancel boolean, output jsonb, failure text, \
               history_seq bigint, finished_at_ms bigint, bk_kind text, bk text, keep boolean, now_ms bigint) \
             WHERE j.id = u.id AND j.id IN (SELECT id FROM locked) \
               AND j.lease_epoch = u.epoch AND j.lease_owner = $2 \
             RETURNING j.id, j.cancel_request IS NOT NULL",
        )
        .bind(Value::Array(updates))
        .bind(owner)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let committed: std::collections::HashMap<Uuid, bool> = committed.into_iter().collect();

        let mut history = Vec::new();
        let mut consumed = Vec::new();
        let mut correlations = Vec::new();
        let mut waiting = Vec::new();
        let mut out = Vec::with_capacity(batch.len());
        let now = batch.iter().map(|c| c.now_ms).max().unwrap_or_default();
        for c in batch {
            let id = c.id.as_uuid();
            let Some(cancel_pending) = committed.get(&id) else {
                out.push(CommitOutcome::LeaseLost);
                continue;
            };
            history_json(id, &c.history, &mut history);
            consumed.extend(c.consumed_signal);
            for key in &c.correlations {
                correlations.push((key.as_str().to_owned(), key.value().to_owned(), id));
            }
            if c.update.status == Status::Waiting {
                waiting.push(id);
            }
            out.push(CommitOutcome::Committed {
                cancel_requested: *cancel_pending,
                woke: false,
            });
        }
        insert_history(&mut tx, history).await?;
        if !consumed.is_empty() {
            sqlx::query("UPDATE signals SET consumed_at_ms = $2 WHERE id = ANY($1)")
                .bind(&consumed)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        register_correlations(&mut tx, correlations, now).await?;
        if !waiting.is_empty() {
            let woke: Vec<Uuid> = sqlx::query_scalar(
                "UPDATE journeys j SET ready_at_ms = $2 \
                 WHERE j.id = ANY($1) AND j.status = 'waiting' AND j.lease_owner IS NULL AND EXISTS ( \
                   SELECT 1 FROM signals s WHERE s.journey_id = j.id AND s.consumed_at_ms IS NULL \
                   AND position(',' || s.name || ',' in j.wait_signals) > 0) RETURNING j.id",
            )
            .bind(&waiting)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            if !woke.is_empty() {
                self.notify(&mut tx).await?;
                for (c, outcome) in batch.iter().zip(out.iter_mut()) {
                    if let CommitOutcome::Committed { woke: w, .. } = outcome {
                        *w = woke.contains(&c.id.as_uuid());
                    }
                }
            }
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
        let ids: Vec<Uuid> = held.iter().map(|(id, _)| id.as_uuid()).collect();
        let epochs: Vec<i64> = held.iter().map(|(_, e)| *e).collect();
        let mut tx = self.begin().await?;
        let kept: Vec<Uuid> = sqlx::query_scalar(
            "WITH locked AS MATERIALIZED (SELECT id FROM journeys WHERE id = ANY($2) ORDER BY id FOR UPDATE) \
             UPDATE journeys j SET ready_at_ms = $4 FROM unnest($2::uuid[], $3::bigint[]) AS h(id, epoch) \
             WHERE j.id = h.id AND j.id IN (SELECT id FROM locked) \
               AND j.lease_epoch = h.epoch AND j.lease_owner = $1 RETURNING j.id",
        )
        .bind(owner)
        .bind(&ids)
        .bind(&epochs)
        .bind(lease_until_ms)
        .fetch_all(&mut *tx)
        .await?;
        self.commit_tx(tx).await?;
        Ok(kept.into_iter().map(JourneyId::from_uuid).collect())
    }

    async fn release(
        &self,
        owner: &str,
        held: &[(JourneyId, i64, Option<i64>)],
    ) -> Result<(), StoreError> {
        if held.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = held.iter().map(|(id, _, _)| id.as_uuid()).collect();
        let epochs: Vec<i64> = held.iter().map(|(_, e, _)| *e).collect();
        let ready: Vec<Option<i64>> = held.iter().map(|(_, _, r)| *r).collect();
        let mut tx = self.begin().await?;
        sqlx::query(
            "WITH locked AS MATERIALIZED (SELECT id FROM journeys WHERE id = ANY($2) ORDER BY id FOR UPDATE) \
             UPDATE journeys j SET ready_at_ms = h.ready, lease_owner = NULL, \
             claims_since_commit = GREATEST(j.claims_since_commit - 1, 0) \
             FROM unnest($2::uuid[], $3::bigint[], $4::bigint[]) AS h(id, epoch, ready) \
             WHERE j.id = h.id AND j.id IN (SELECT id FROM locked) \
               AND j.lease_epoch = h.epoch AND j.lease_owner = $1",
        )
        .bind(owner)
        .bind(&ids)
        .bind(&epochs)
        .bind(&ready)
        .execute(&mut *tx)
        .await?;
        self.notify(&mut tx).await?;
        self.commit_tx(tx).await
    }

    async fn next_ready_at(&self) -> Result<Option<i64>, StoreError> {
        self.stats.query();
        Ok(sqlx::query_scalar(
            "SELECT MIN(ready_at_ms) FROM journeys WHERE ready_at_ms IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}

#[async_trait]
impl SignalStore for PostgresStore {
    async fn deliver(&self, signal: &NewSignal, now_ms: i64) -> Result<Delivery, StoreError> {
        let mut tx = self.begin().await?;
        // Lock the journey row first: a worker committing a wait at this very
        // moment then either sees this signal or is seen by the wake below.
        let (journey, addressed_to, correlation): (
            Option<(Uuid, String)>,
            Option<String>,
            Option<String>,
        ) = match &signal.target {
            SignalTarget::Journey(id) => {
                let found: Option<(Uuid, String)> =
                    sqlx::query_as("SELECT id, status FROM journeys WHERE id = $1 FOR UPDATE")
                        .bind(id.as_uuid())
                        .fetch_optional(&mut *tx)
                        .await?;
                (found, Some(id.to_string()), None)
            }
            SignalTarget::Correlation(key) => {
                const RESOLVE: &str = "SELECT j.id, j.status FROM correlations c \
                     JOIN journeys j ON j.id = c.journey_id WHERE c.key = $1 FOR UPDATE OF j";
                let mut found: Option<(Uuid, String)> = sqlx::query_as(RESOLVE)
                    .bind(key.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if found.is_none() {
                    // About to store it unmatched: take the key's lock (see
                    // `register_correlations`) and look again, so a commit
                    // registering the key right now is either seen here or
                    // sees this signal.
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                        .bind(key.as_str())
                        .execute(&mut *tx)
                        .await?;
                    found = sqlx::query_as(RESOLVE)
                        .bind(key.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                }
                (found, None, Some(key.as_str().to_owned()))
            }
            SignalTarget::Unparsed(raw) => (None, Some(raw.clone()), None),
        };
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO signals (journey_id, addressed_to, correlation_key, name, payload, dedupe_key, source, received_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        )
        .bind(journey.as_ref().map(|(id, _)| *id))
        .bind(addressed_to)
        .bind(correlation)
        .bind(signal.name.as_str())
        .bind(&signal.payload)
        .bind(signal.dedupe_key.as_deref())
        .bind(&signal.source)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(signal_id) = inserted else {
            let signal_id: i64 = sqlx::query_scalar("SELECT id FROM signals WHERE dedupe_key = $1")
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
                    "UPDATE journeys SET ready_at_ms = $2 WHERE id = $1 AND status = 'waiting' \
                     AND lease_owner IS NULL AND position(',' || $3 || ',' in wait_signals) > 0",
                )
                .bind(id)
                .bind(now_ms)
                .bind(signal.name.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                if woke {
                    self.notify(&mut tx).await?;
                }
                DeliveryOutcome::Delivered {
                    journey: JourneyId::from_uuid(id),
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
            "SELECT {SIGNAL_COLUMNS} FROM signals WHERE journey_id = $1 ORDER BY id DESC LIMIT $2"
        );
        let rows: Vec<SignalRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(SignalRecord::try_from).collect()
    }

    async fn unmatched(&self, limit: u32) -> Result<Vec<SignalRecord>, StoreError> {
        self.stats.query();
        let sql = format!(
            "SELECT {SIGNAL_COLUMNS} FROM signals WHERE journey_id IS NULL AND dismissed_at_ms IS NULL \
             ORDER BY id DESC LIMIT $1"
        );
        let rows: Vec<SignalRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(SignalRecord::try_from).collect()
    }

    async fn dismiss(&self, signal_id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE signals SET dismissed_at_ms = $2 WHERE id = $1 AND journey_id IS NULL AND dismissed_at_ms IS NULL",
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
impl AdminStore for PostgresStore {
    async fn lease_one(
        &self,
        id: JourneyId,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<LeaseOne, StoreError> {
        let mut tx = self.begin().await?;
        let previous: Option<Option<i64>> =
            sqlx::query_scalar("SELECT ready_at_ms FROM journeys WHERE id = $1 FOR UPDATE")
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
        let sql = format!(
            "UPDATE journeys j SET recovered = (j.lease_owner IS NOT NULL), lease_owner = $2, \
             lease_epoch = j.lease_epoch + 1, ready_at_ms = $3 \
             WHERE j.id = $1 AND (j.lease_owner IS NULL OR j.ready_at_ms <= $4) RETURNING {JOURNEY_COLUMNS}"
        );
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(owner)
            .bind(lease_until_ms)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
        let outcome = match row {
            Some(row) => LeaseOne::Leased(Box::new(row.try_into()?), previous.flatten()),
            None => {
                let holder: Option<(Option<String>, Option<i64>)> =
                    sqlx::query_as("SELECT lease_owner, ready_at_ms FROM journeys WHERE id = $1")
                        .bind(id.as_uuid())
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
            "UPDATE journeys SET cancel_request = $2 WHERE id = $1 AND finished_at_ms IS NULL",
        )
        .bind(id.as_uuid())
        .bind(serde_json::to_value(request)?)
        .execute(&mut *tx)
        .await?;
        self.commit_tx(tx).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn stuck(&self, now_ms: i64, limit: u32) -> Result<StuckReport, StoreError> {
        self.stats.query();
        let limit = i64::from(limit.clamp(1, 1000));
        let sql = format!(
            "SELECT {JOURNEY_COLUMNS} FROM journeys j WHERE j.id IN ( \
               SELECT id FROM journeys WHERE status = 'needs_attention' \
               UNION SELECT id FROM journeys WHERE sla_at_ms <= $1 AND finished_at_ms IS NULL \
               UNION SELECT id FROM journeys WHERE deadline_at_ms <= $1 AND finished_at_ms IS NULL) \
             ORDER BY j.updated_at_ms LIMIT $2"
        );
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(StuckReport {
            journeys: records(rows)?,
            unmatched_signals: self.unmatched(u32::try_from(limit).unwrap_or(1000)).await?,
        })
    }

    async fn prune_history(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE journeys SET history_seq = 0 WHERE id IN ( \
               SELECT id FROM journeys WHERE finished_at_ms < $1 AND history_seq > 0 \
               ORDER BY finished_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id",
        )
        .bind(before_ms)
        .bind(i64::from(limit.clamp(1, 100_000)))
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM history WHERE journey_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        self.commit_tx(tx).await?;
        Ok(ids.len() as u64)
    }
}

#[async_trait]
impl ScheduleStore for PostgresStore {
    async fn claim_slot(
        &self,
        job: &str,
        slot_ms: i64,
        owner: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "INSERT INTO schedule_slots (job, slot_ms, owner, claimed_at_ms) VALUES ($1, $2, $3, $4) \
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
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn stats(&self) -> &StoreStats {
        &self.stats
    }

    async fn watch(&self, notify: Arc<Notify>) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        let channel = self.channel.clone();
        tokio::spawn(async move {
            // Reconnects forever: a database outage must not end the listener.
            let mut backoff = Duration::from_millis(100);
            loop {
                let listener = async {
                    let mut listener = PgListener::connect_with(&pool).await?;
                    listener.listen(&channel).await?;
                    // Work may have become due while we were not listening.
                    notify.notify_waiters();
                    loop {
                        listener.recv().await?;
                        notify.notify_waiters();
                    }
                    #[allow(unreachable_code)]
                    Ok::<(), sqlx::Error>(())
                };
                match listener.await {
                    Ok(()) => return,
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
