//! The Al-Qimah webhook (`GET` with the documented query string, `WebHookCode` checked in constant time).
//!
//! Al-Qimah calls the `WebHookURL` we send with each payment,
//! `GET {WEBHOOK_PATH}?OperationStatus=1&WebHookCode=...&TransactionID=...&ReferenceID=...&price=...&message=...`
//! ("Example Webhook Request").
//!
//! # How the ingress knows the expected `WebHookCode`: it looks it up
//!
//! The journey draws a random 128-bit code per payment and stores it (as a
//! [`Sensitive`](handover_engine::Sensitive) value) in its state, together
//! with the `TransactionID` and the correlation key `alqimah.txn:<id>`, in
//! the commit **before** the payment is sent. The ingress finds that journey
//! by the `TransactionID` (the store's key search, restricted to
//! `alqimah.payment` journeys whose state holds that very id) and compares
//! the presented code with the stored one in constant time
//! ([`Webhook::verify_code`]). We chose the lookup over a keyed hash
//! (`HMAC(secret, TransactionID)`) because it needs no extra secret to
//! distribute and rotate between the ingress and the workers, a leaked code
//! is worth one payment only, and the journey, not a configuration value,
//! stays the single source of truth. The cost is one indexed read per
//! webhook.
//!
//! # Answers
//!
//! | request | answer | written |
//! |---|---|---|
//! | a parameter missing, repeated or malformed, query over 4 KiB | 400 | nothing |
//! | a known `TransactionID` with the wrong code | 401 | nothing (counted, logged without the code) |
//! | a known `TransactionID` with its code | 200 `{"received": "delivered"}` | signal [`WEBHOOK_SIGNAL`] to `alqimah.txn:<id>`, de-duplicated by `TransactionID:OperationStatus` |
//! | the same webhook again | 200 `{"received": "duplicate"}` | nothing new |
//! | a `TransactionID` no journey has | 200 `{"received": "unmatched"}` | signal [`UNVERIFIED_SIGNAL`] (no code in it), reported by `journeys stuck`; no journey ever waits for that name, so it can never settle a payment |
//! | the store is down | 503 with `Retry-After` | nothing (Al-Qimah retries) |
//!
//! The code never appears in a stored payload, a log line or an answer.

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use handover_adapters::ProvidersConfig;
use handover_adapters::alqimah::{TransactionId, WebHookCode, Webhook, parse_webhook};
use handover_adapters::sim::Simulators;
use handover_engine::ingress::{Rejection, count_rejection, deliver, outcome_word};
use handover_engine::store::ListFilter;
use handover_engine::{CorrelationKey, Engine, NewSignal, Workflow};
use secrecy::SecretString;
use serde_json::json;
use url::Url;

use super::IngressSettings;
use crate::alqimah_payment::{
    AlQimahPayment, CORRELATION_NAMESPACE, UNVERIFIED_SIGNAL, WEBHOOK_SIGNAL, WebhookPayload,
};

/// Where Al-Qimah calls us (the `WebHookURL` is this path under our public URL).
pub const WEBHOOK_PATH: &str = "/callbacks/alqimah/webhook";

/// Journeys read per lookup: the key search also matches business keys (a
/// customer number can look like a `TransactionID`), so a few candidates are
/// checked for the one whose state holds the id.
const LOOKUP_LIMIT: u32 = 8;

/// The routes.
pub fn routes(engine: Engine, settings: &IngressSettings) -> Router {
    let _ = settings;
    Router::new()
        .route(WEBHOOK_PATH, get(webhook))
        .with_state(engine)
}

/// Points the simulator's callbacks at the ingress listening at `ingress_url`,
/// and the client's configuration (`clients`) at our routes under it.
///
/// The simulator sends each webhook to the `WebHookURL` of its payment, so
/// configuring the client is all it takes.
pub fn wire_simulator(
    sims: &Simulators,
    ingress_url: &Url,
    clients: &mut ProvidersConfig,
) -> Result<(), url::ParseError> {
    let _ = sims;
    let url = ingress_url.join(WEBHOOK_PATH)?;
    if let Some(alqimah) = clients.alqimah.as_mut() {
        alqimah.webhook_url = Some(url);
    }
    Ok(())
}

/// The code stored by the journey that owns `transaction_id`, if one does.
async fn expected_code(
    engine: &Engine,
    transaction_id: TransactionId,
) -> Result<Option<WebHookCode>, Rejection> {
    let candidates = engine
        .store()
        .list(&ListFilter {
            workflow: Some(AlQimahPayment::NAME.to_owned()),
            key: Some(transaction_id.to_string()),
            limit: LOOKUP_LIMIT,
            ..ListFilter::default()
        })
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "could not look up an Al-Qimah webhook's journey; asked the sender to retry");
            Rejection::unavailable()
        })?;
    for record in candidates {
        let Ok(state) =
            serde_json::from_value::<crate::alqimah_payment::State>(record.state.clone())
        else {
            continue;
        };
        if let Some(ids) = state.ids()
            && ids.transaction_id == transaction_id.get()
        {
            return Ok(WebHookCode::from_stored(SecretString::from(
                ids.webhook_code.expose().clone(),
            ))
            .ok());
        }
    }
    Ok(None)
}

fn payload(hook: &Webhook) -> serde_json::Value {
    json!(WebhookPayload {
        operation_status: hook.operation_status.code(),
        transaction_id: hook.transaction_id.get(),
        reference_id: hook.reference_id.as_str().to_owned(),
        price: hook.price.as_str().to_owned(),
        message: hook.message.clone(),
    })
}

async fn webhook(
    State(engine): State<Engine>,
    RawQuery(query): RawQuery,
) -> Result<Response, Rejection> {
    let hook = parse_webhook(query.as_deref().unwrap_or_default()).map_err(|e| {
        count_rejection(&engine);
        Rejection::bad_request(e.to_string())
    })?;
    let key = CorrelationKey::new(CORRELATION_NAMESPACE, hook.transaction_id.to_string())
        .map_err(Rejection::bad_request)?;
    let signal = match expected_code(&engine, hook.transaction_id).await? {
        Some(expected) => {
            if !hook.verify_code(&expected) {
                count_rejection(&engine);
                tracing::warn!(
                    transaction_id = %hook.transaction_id,
                    "Al-Qimah webhook refused: wrong WebHookCode"
                );
                return Err(Rejection::unauthorized());
            }
            NewSignal::to_correlation(key, WEBHOOK_SIGNAL, payload(&hook))
                .map_err(|e| Rejection::bad_request(e.to_string()))?
                .dedupe(format!("alqimah:{}", hook.dedupe_key()))
        }
        None => {
            tracing::warn!(
                transaction_id = %hook.transaction_id,
                "Al-Qimah webhook for a TransactionID no journey has; stored unverified"
            );
            NewSignal::to_correlation(key, UNVERIFIED_SIGNAL, payload(&hook))
                .map_err(|e| Rejection::bad_request(e.to_string()))?
                .dedupe(format!("alqimah-unverified:{}", hook.dedupe_key()))
        }
    };
    let delivery = deliver(&engine, signal.source("ingress:alqimah")).await?;
    Ok((
        StatusCode::OK,
        Json(json!({ "received": outcome_word(&delivery.outcome) })),
    )
        .into_response())
}
