-- Handover schema, PostgreSQL. Times are milliseconds since the Unix epoch (UTC),
-- as in the SQLite schema, so both stores share one model and the engine's clock.
-- Numbered in lockstep with migrations/sqlite.

CREATE TABLE journeys (
    id                  UUID     PRIMARY KEY,
    workflow            TEXT     NOT NULL,
    version             INTEGER  NOT NULL,
    status              TEXT     NOT NULL,
    state               JSONB    NOT NULL,
    business_key_kind   TEXT,
    business_key        TEXT,
    step_name           TEXT     NOT NULL,
    step_since_ms       BIGINT   NOT NULL,
    sla_at_ms           BIGINT,
    step_seq            BIGINT   NOT NULL DEFAULT 0,
    attempt             INTEGER  NOT NULL DEFAULT 1,
    -- When a worker may claim it: the due time when parked, the lease expiry while held.
    ready_at_ms         BIGINT,
    -- When it wants to run: a sleep's end, a retry, a wait's timeout.
    wake_at_ms          BIGINT,
    -- The signals it waits for, as ',a,b,'.
    wait_signals        TEXT,
    wait_on_timeout     JSONB,
    deadline_at_ms      BIGINT,
    lease_owner         TEXT,
    lease_epoch         BIGINT   NOT NULL DEFAULT 0,
    recovered           BOOLEAN  NOT NULL DEFAULT FALSE,
    claims_since_commit INTEGER  NOT NULL DEFAULT 0,
    last_error          TEXT,
    last_error_kind     TEXT,
    attention           TEXT,
    compensations       JSONB    NOT NULL DEFAULT '[]',
    ending              TEXT,
    cancel_request      JSONB,
    output              JSONB,
    failure             TEXT,
    history_seq         BIGINT   NOT NULL DEFAULT 0,
    created_at_ms       BIGINT   NOT NULL,
    updated_at_ms       BIGINT   NOT NULL,
    finished_at_ms      BIGINT
) WITH (fillfactor = 80);

-- The claim query: only journeys something will wake are indexed.
CREATE INDEX journeys_ready ON journeys (ready_at_ms) WHERE ready_at_ms IS NOT NULL;
CREATE INDEX journeys_business_key ON journeys (business_key) WHERE business_key IS NOT NULL;
CREATE INDEX journeys_created ON journeys (created_at_ms);
CREATE INDEX journeys_workflow_created ON journeys (workflow, created_at_ms);
CREATE INDEX journeys_status_created ON journeys (status, created_at_ms);
-- The stuck sweep: overdue steps, passed deadlines, journeys needing a person.
CREATE INDEX journeys_sla ON journeys (sla_at_ms) WHERE sla_at_ms IS NOT NULL;
CREATE INDEX journeys_deadline ON journeys (deadline_at_ms) WHERE deadline_at_ms IS NOT NULL AND finished_at_ms IS NULL;
CREATE INDEX journeys_attention ON journeys (updated_at_ms) WHERE status = 'needs_attention';
CREATE INDEX journeys_finished ON journeys (finished_at_ms) WHERE finished_at_ms IS NOT NULL;

CREATE TABLE history (
    journey_id  UUID    NOT NULL,
    seq         BIGINT  NOT NULL,
    at_ms       BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,
    step        TEXT,
    attempt     INTEGER,
    duration_ms BIGINT,
    detail      JSONB   NOT NULL,
    state       JSONB,
    PRIMARY KEY (journey_id, seq)
);

CREATE TABLE signals (
    id              BIGSERIAL PRIMARY KEY,
    journey_id      UUID,
    addressed_to    TEXT,
    correlation_key TEXT,
    name            TEXT    NOT NULL,
    payload         JSONB   NOT NULL,
    dedupe_key      TEXT    UNIQUE,
    source          TEXT    NOT NULL,
    received_at_ms  BIGINT  NOT NULL,
    consumed_at_ms  BIGINT,
    dismissed_at_ms BIGINT
);

CREATE INDEX signals_pending ON signals (journey_id, id) WHERE consumed_at_ms IS NULL;
CREATE INDEX signals_journey ON signals (journey_id, id);
CREATE INDEX signals_unmatched ON signals (correlation_key, id) WHERE journey_id IS NULL;

-- key is 'namespace:value'; value alone is what operators search by.
CREATE TABLE correlations (
    key           TEXT    PRIMARY KEY,
    value         TEXT    NOT NULL,
    journey_id    UUID    NOT NULL,
    created_at_ms BIGINT  NOT NULL
);

CREATE INDEX correlations_journey ON correlations (journey_id);
CREATE INDEX correlations_value ON correlations (value);

CREATE TABLE schedule_slots (
    job           TEXT    NOT NULL,
    slot_ms       BIGINT  NOT NULL,
    owner         TEXT    NOT NULL,
    claimed_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (job, slot_ms)
);
