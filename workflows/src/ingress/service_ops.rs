//! Service operations' `success_event` and `error_event`.
//!
//! The provider posts `serviceCallbackDTO` to `{base}/success_event` or
//! `{base}/error_event` with the `Request-Correlation-Id` header naming the
//! request, so the journey is found by that id. The document defines no
//! authentication for events: deploy the route behind an allow-list of the
//! provider's addresses (or mutual TLS). A malformed event is answered 400
//! (the document's "Not found" code) and nothing is stored.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use handover_adapters::service_ops::{CORRELATION_HEADER, EventKind, MAX_EVENT_BYTES, parse_event};
use handover_engine::ingress::{Rejection, count_rejection, deliver, outcome_word};
use handover_engine::{CorrelationKey, Engine, NewSignal};
use serde_json::json;

use crate::service_ops::{CORRELATION_NAMESPACE, EVENT_SIGNAL, EventPayload};

/// Where the provider posts events (the base URL to register with it).
pub const BASE_PATH: &str = "/callbacks/service-ops";

/// The routes.
pub fn routes(engine: Engine) -> Router {
    Router::new()
        .route("/callbacks/service-ops/{event}", post(event))
        .layer(DefaultBodyLimit::max(MAX_EVENT_BYTES))
        .with_state(engine)
}

async fn event(
    State(engine): State<Engine>,
    Path(event): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let Some(kind) = EventKind::from_wire_name(&event) else {
        count_rejection(&engine);
        return Err(Rejection {
            status: StatusCode::NOT_FOUND,
            reason: "no such event".into(),
        });
    };
    let correlation = headers
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok());
    let parsed = parse_event(kind, correlation, &body).map_err(|e| {
        count_rejection(&engine);
        Rejection {
            status: e.http_status(),
            reason: e.to_string(),
        }
    })?;
    let key = CorrelationKey::new(CORRELATION_NAMESPACE, parsed.correlation_id().to_string())
        .map_err(Rejection::bad_request)?;
    let payload = json!(EventPayload {
        kind: kind.wire_name().to_owned(),
        code: parsed.code.clone(),
        title: parsed.title.clone(),
        service_id: parsed.service_id.as_str().to_owned(),
    });
    let signal = NewSignal::to_correlation(key, EVENT_SIGNAL, payload)
        .map_err(|e| Rejection::bad_request(e.to_string()))?
        .dedupe(format!("service-ops:{}", parsed.dedupe_key()))
        .source("ingress:service-ops");
    let delivery = deliver(&engine, signal).await?;
    Ok((
        StatusCode::OK,
        Json(json!({ "received": outcome_word(&delivery.outcome) })),
    )
        .into_response())
}
