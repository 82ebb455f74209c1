//! The admin JSON API: the operations of the `handover` CLI over HTTP, for
//! dashboards and scripts. Authenticated with a bearer token from
//! configuration; serve it on its own listener (not the ingress's) so it is
//! never exposed where providers reach.
//!
//! | method | path | operation |
//! |---|---|---|
//! | GET | `/admin/journeys?workflow=&status=&key=&since=&limit=` | list |
//! | GET | `/admin/journeys/{id}` | show |
//! | GET | `/admin/stuck?limit=` | stuck |
//! | POST | `/admin/journeys/{id}/retry` `{reason}` | retry the current step now |
//! | POST | `/admin/journeys/{id}/signal` `{name, payload, reason}` | send a signal |
//! | POST | `/admin/journeys/{id}/cancel` `{reason}` | cancel (compensates) |
//! | POST | `/admin/journeys/{id}/skip` `{reason}` | skip the current step |
//! | POST | `/admin/journeys/{id}/rewind` `{to, reason}` | resume from a history entry |
//! | POST | `/admin/journeys/{id}/patch-state` `{state, reason}` | replace the state |
//! | POST | `/admin/signals/{id}/dismiss` `{reason}` | dismiss an unmatched callback |
//! | GET | `/metrics` | Prometheus text (no secrets; no token needed) |
//!
//! The actor recorded for repairs is the `X-Handover-Actor` header (default
//! `admin-api`). Errors: 400 bad input, 401 auth, 404 unknown journey,
//! 409 a worker holds the journey (nothing changed), 422 refused, 503 store
//! unavailable.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::DateTime;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::{CancelOutcome, Engine};
use crate::error::EngineError;
use crate::ids::JourneyId;
use crate::ingress::bearer_matches;
use crate::model::Status;
use crate::store::ListFilter;

/// The admin API's configuration.
#[derive(Clone)]
pub struct AdminConfig {
    /// Bearer tokens accepted. Empty: every request is refused.
    pub tokens: Vec<SecretString>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AdminConfig {{ tokens: [{} redacted] }}",
            self.tokens.len()
        )
    }
}

#[derive(Clone)]
struct ApiState {
    engine: Engine,
    tokens: Arc<Vec<SecretString>>,
}

/// The admin router (and `/metrics`).
pub fn router(engine: Engine, config: &AdminConfig) -> Router {
    let state = ApiState {
        engine,
        tokens: Arc::new(config.tokens.clone()),
    };
    Router::new()
        .route("/admin/journeys", get(list))
        .route("/admin/journeys/{id}", get(show))
        .route("/admin/stuck", get(stuck))
        .route("/admin/journeys/{id}/{action}", post(repair))
        .route("/admin/signals/{id}/dismiss", post(dismiss))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .with_state(state)
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match &e {
            EngineError::NotFound(_) => StatusCode::NOT_FOUND,
            EngineError::Busy { .. } => StatusCode::CONFLICT,
            EngineError::InvalidInput { .. } | EngineError::UnknownWorkflow { .. } => {
                StatusCode::BAD_REQUEST
            }
            EngineError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError(status, e.to_string())
    }
}

fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    if bearer_matches(headers, &state.tokens) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "authentication failed".into(),
        ))
    }
}

fn actor(headers: &HeaderMap) -> String {
    headers
        .get("x-handover-actor")
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect::<String>()
        })
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "admin-api".to_owned())
}

fn id_of(raw: &str) -> Result<JourneyId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("{raw:?} is not a journey id"),
        )
    })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    workflow: Option<String>,
    status: Option<String>,
    key: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
}

/// Parses `--since`: an RFC 3339 time or a span back from now (`2h`, `30m`, `7d`).
pub fn parse_since(raw: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.timestamp_millis());
    }
    let (digits, unit) = raw.split_at(raw.trim_end_matches(char::is_alphabetic).len());
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("{raw:?} is neither an RFC 3339 time nor a span like 30m, 2h, 7d"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{raw:?}: use s, m, h or d")),
    };
    Ok(now_ms - n.saturating_mul(unit_ms))
}

/// Builds a list filter from the CLI's/API's words.
pub fn list_filter(
    workflow: Option<String>,
    status: Option<&str>,
    key: Option<String>,
    since: Option<&str>,
    limit: Option<u32>,
    now_ms: i64,
) -> Result<ListFilter, String> {
    let statuses = match status {
        Some(s) => s
            .split(',')
            .map(|s| s.trim().parse::<Status>())
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![],
    };
    Ok(ListFilter {
        workflow,
        statuses,
        key,
        since_ms: since.map(|s| parse_since(s, now_ms)).transpose()?,
        limit: limit.unwrap_or(50),
    })
}

async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let now = state.engine.clock().now().timestamp_millis();
    let filter = list_filter(
        q.workflow,
        q.status.as_deref(),
        q.key,
        q.since.as_deref(),
        q.limit,
        now,
    )
    .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    Ok(Json(json!(state.engine.list(&filter).await?)))
}

async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(json!(state.engine.show(id_of(&id)?).await?)))
}

#[derive(Debug, Deserialize)]
struct StuckQuery {
    limit: Option<u32>,
}

async fn stuck(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<StuckQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(json!(
        state.engine.stuck(q.limit.unwrap_or(100)).await?
    )))
}

#[derive(Debug, Deserialize)]
struct RepairBody {
    reason: Option<String>,
    name: Option<String>,
    payload: Option<Value>,
    to: Option<i64>,
    state: Option<Value>,
}

async fn repair(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<RepairBody>>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let id = id_of(&id)?;
    let Some(Json(body)) = body else {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "expected a JSON body with a reason".into(),
        ));
    };
    let reason = body
        .reason
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                "a reason is required for every repair".into(),
            )
        })?;
    let actor = actor(&headers);
    let engine = &state.engine;
    let missing =
        |what: &str| ApiError(StatusCode::BAD_REQUEST, format!("{action} needs `{what}`"));
    let report = match action.as_str() {
        "retry" => json!(engine.retry_now(id, &actor, &reason).await?),
        "signal" => {
            let name = body.name.ok_or_else(|| missing("name"))?;
            json!(
                engine
                    .signal_as_operator(
                        id,
                        &name,
                        body.payload.unwrap_or(Value::Null),
                        &actor,
                        &reason
                    )
                    .await?
            )
        }
        "cancel" => match engine.cancel(id, &actor, &reason).await? {
            CancelOutcome::Cancelled => {
                json!({ "journey": id, "action": "cancel", "outcome": "cancelled" })
            }
            CancelOutcome::Requested => {
                json!({ "journey": id, "action": "cancel", "outcome": "requested: a worker is running its step and cancels right after" })
            }
        },
        "skip" => json!(engine.skip(id, &actor, &reason).await?),
        "rewind" => json!(
            engine
                .rewind(id, body.to.ok_or_else(|| missing("to"))?, &actor, &reason)
                .await?
        ),
        "patch-state" => json!(
            engine
                .patch_state(
                    id,
                    body.state.ok_or_else(|| missing("state"))?,
                    &actor,
                    &reason
                )
                .await?
        ),
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("unknown action {other:?}"),
            ));
        }
    };
    tracing::info!(journey.id = %id, %action, %actor, "repair applied");
    Ok(Json(report))
}

async fn dismiss(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let done = state.engine.dismiss_signal(id).await?;
    Ok(Json(json!({ "signal_id": id, "dismissed": done })))
}

async fn metrics(State(state): State<ApiState>) -> Response {
    match state.engine.store().count_by_status().await {
        Ok(counts) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            state.engine.metrics().render(&counts),
        )
            .into_response(),
        Err(e) => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
