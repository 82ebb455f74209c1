//! The HTTP ingress: callbacks and customer actions in, signals out.
//!
//! The rules every route follows (provider routes in `handover-workflows`
//! build on the helpers here):
//! - a request is **persisted before the 2xx** (the signal is committed by
//!   the time the answer leaves), and answered as soon as that commit is done;
//! - bodies over the limit get **413 before any parsing** (`Content-Length`
//!   is checked first, streamed bodies are cut at the limit);
//! - failed authentication gets **401 with nothing written**; malformed input
//!   gets **400 with nothing written**;
//! - a duplicate (same dedupe key) is acknowledged and changes nothing;
//! - a callback for no known journey is stored and reported (`journeys stuck`),
//!   and acknowledged, so the provider does not retry it forever;
//! - a database that is down gets **503 with `Retry-After`**, so providers
//!   retry later: nothing is lost.
//!
//! [`router`] serves the generic, authenticated
//! `POST /journeys/{id}/signals/{name}` for customer-facing apps (OTP codes,
//! deposit acceptance, port-in corrections).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::ids::{JourneyId, SignalName};
use crate::store::{Delivery, DeliveryOutcome, NewSignal, SignalTarget};

/// The default request body limit (64 KiB): callbacks are small.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 200;

/// How the generic signal route is protected.
#[derive(Clone)]
pub struct IngressConfig {
    /// Bearer tokens customer-facing apps present. Empty: the route refuses
    /// every request (it is never open by accident).
    pub app_tokens: Vec<SecretString>,
    /// The largest accepted body.
    pub body_limit_bytes: usize,
}

impl std::fmt::Debug for IngressConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressConfig")
            .field(
                "app_tokens",
                &format!("[{} redacted]", self.app_tokens.len()),
            )
            .field("body_limit_bytes", &self.body_limit_bytes)
            .finish()
    }
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            app_tokens: Vec::new(),
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
        }
    }
}

/// An ingress failure, answered with a status and a short JSON reason that
/// never echoes the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status.
    pub status: StatusCode,
    /// Why, for the caller.
    pub reason: String,
}

impl Rejection {
    /// 400: malformed input.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason: reason.into(),
        }
    }

    /// 401: failed authentication.
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            reason: "authentication failed".into(),
        }
    }

    /// 415: not JSON.
    pub fn unsupported_media_type() -> Self {
        Self {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "expected Content-Type: application/json".into(),
        }
    }

    /// 503: the store is unavailable; retry later.
    pub fn unavailable() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "temporarily unavailable; retry later".into(),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.reason }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Constant-time string comparison (for tokens, webhook codes, passwords).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    // `ct_eq` on slices of different lengths is false without leaking where
    // they differ; length itself is not secret here.
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether `headers` carry `Authorization: Bearer <one of tokens>`.
pub fn bearer_matches(headers: &HeaderMap, tokens: &[SecretString]) -> bool {
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Compare against every token so timing does not tell which matched.
    tokens.iter().fold(false, |found, token| {
        constant_time_eq(presented.trim(), token.expose_secret()) | found
    })
}

/// Whether the request says its body is JSON.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v.split(';').next().unwrap_or_default().trim();
            mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
        })
        .unwrap_or(false)
}

/// Stores a signal and maps the outcome for an HTTP answer: `Ok` once it is
/// committed (delivered, duplicate or unmatched-and-stored), `503` if the
/// store is down, `400` if the engine refused it.
pub async fn deliver(engine: &Engine, signal: NewSignal) -> Result<Delivery, Rejection> {
    match engine.signal(signal).await {
        Ok(delivery) => Ok(delivery),
        Err(EngineError::Store(e)) => {
            tracing::warn!(error = %e, "could not store a callback; asked the sender to retry");
            Err(Rejection::unavailable())
        }
        Err(e) => Err(Rejection::bad_request(e.to_string())),
    }
}

/// Counts a refused request (for `/metrics`).
pub fn count_rejection(engine: &Engine) {
    engine.metrics().ingress_rejected.inc();
}

/// The outcome as a short word for answers and logs.
pub fn outcome_word(outcome: &DeliveryOutcome) -> &'static str {
    match outcome {
        DeliveryOutcome::Delivered { .. } => "delivered",
        DeliveryOutcome::Duplicate { .. } => "duplicate",
        DeliveryOutcome::Unmatched => "unmatched",
    }
}

#[derive(Clone)]
struct AppState {
    engine: Engine,
    tokens: Arc<Vec<SecretString>>,
}

/// The generic signal route, `POST /journeys/{id}/signals/{name}`, for
/// customer-facing apps. Authenticated by bearer token; the JSON body is the
/// signal's payload; an `Idempotency-Key` header makes retries take effect
/// once. Answers `202` with `{signal_id, outcome}`.
pub fn router(engine: Engine, config: &IngressConfig) -> Router {
    let state = AppState {
        engine,
        tokens: Arc::new(config.app_tokens.clone()),
    };
    Router::new()
        .route("/journeys/{id}/signals/{name}", post(app_signal))
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .with_state(state)
}

async fn app_signal(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let engine = &state.engine;
    let reject = |r: Rejection| {
        count_rejection(engine);
        r
    };
    if !bearer_matches(&headers, &state.tokens) {
        return Err(reject(Rejection::unauthorized()));
    }
    if !is_json(&headers) {
        return Err(reject(Rejection::unsupported_media_type()));
    }
    let name = SignalName::new(name).map_err(|e| reject(Rejection::bad_request(e)))?;
    let payload: Value = serde_json::from_slice(&body).map_err(|e| {
        reject(Rejection::bad_request(format!(
            "body is not valid JSON: {}",
            json_error_word(&e)
        )))
    })?;
    let dedupe = match headers.get("idempotency-key") {
        Some(v) => {
            let key = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
                .ok_or_else(|| {
                    reject(Rejection::bad_request(
                        "Idempotency-Key must be 1-200 visible characters",
                    ))
                })?;
            Some(format!("app:{id}:{name}:{key}"))
        }
        None => None,
    };
    let target = match id.parse::<JourneyId>() {
        Ok(id) => SignalTarget::Journey(id),
        Err(_) => SignalTarget::Unparsed(id.chars().take(100).collect()),
    };
    let delivery = deliver(
        engine,
        NewSignal {
            target,
            name,
            payload,
            dedupe_key: dedupe,
            source: "app".to_owned(),
        },
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "signal_id": delivery.signal_id,
            "outcome": outcome_word(&delivery.outcome),
        })),
    )
        .into_response())
}

/// A JSON parse error's category as a word, never its position or the
/// input (which may hold secrets).
pub fn json_error_word(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "wrong shape",
        serde_json::error::Category::Eof => "truncated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_compared_exactly() {
        let tokens = vec![
            SecretString::from("s3cret-token"),
            SecretString::from("other"),
        ];
        let mut h = HeaderMap::new();
        assert!(!bearer_matches(&h, &tokens));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret-token"),
        );
        assert!(bearer_matches(&h, &tokens));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret-toke"),
        );
        assert!(!bearer_matches(&h, &tokens));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret-token"),
        );
        assert!(!bearer_matches(&h, &tokens));
        assert!(!bearer_matches(&h, &[]));
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(is_json(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json(&h));
    }
}
