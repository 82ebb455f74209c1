//! Mobily's Nafath webhook (Basic auth that Handover issues) and the customer's return from the 3-D Secure page.
//!
//! | route | what arrives | becomes |
//! |---|---|---|
//! | `POST {NAFATH_PATH}` | the Nafath webhook, `Authorization: Basic` with the pair we issued ([`IngressSettings::mobily_nafath`]) | signal [`NAFATH_SIGNAL`] to correlation `mobily.nafath:<requestId>` (`{"transactionId", "status"}`), deduplicated by transaction and status |
//! | `GET {RETURN_PATH}?paymentId=&paymentTransId=&result=` | the customer's browser, back from the bank | signal [`THREE_DS_SIGNAL`] to correlation `mobily.payment:<paymentTransId>` (`{"paymentId", "result"}`), deduplicated by transaction and result; answered with a short page |
//!
//! Both are stored before the 2xx. A webhook over [`MAX_WEBHOOK_BYTES`] is
//! 413 before it is read; wrong or missing credentials are 401, checked
//! before parsing, in constant time; a malformed body or query is 400; in
//! all three cases nothing is written. A webhook or return for no known
//! journey is stored unmatched (reported by `journeys stuck`, adopted if the
//! journey registers the key later: a webhook can overtake the initiate
//! answer) and acknowledged.
//!
//! The browser return carries no credential (the bank redirects the
//! customer's browser). It is safe because `paymentTransId` is a UUID derived
//! from the journey id (not guessable) and because a `success` return only
//! makes the journey call `confirmPayment`, which authorises nothing the
//! bank did not authenticate.

use axum::Router;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use handover_adapters::ProvidersConfig;
use handover_adapters::mobily::nafath::MAX_WEBHOOK_BYTES;
use handover_adapters::mobily::{InboundError, NafathWebhook, ThreeDsReturn, WebhookCredentials};
use handover_adapters::sim::Simulators;
use handover_engine::ingress::{Rejection, count_rejection, deliver, outcome_word};
use handover_engine::{CorrelationKey, Engine, NewSignal};
use serde_json::json;
use url::Url;

use super::IngressSettings;
use crate::mobily_esim::{NAFATH_NAMESPACE, NAFATH_SIGNAL, PAYMENT_NAMESPACE, THREE_DS_SIGNAL};

/// Where Mobily posts the Nafath webhook (our `webhookUri`).
pub const NAFATH_PATH: &str = "/ingress/mobily/nafath";
/// Where the bank sends the customer's browser back (our `returnUrl`).
pub const RETURN_PATH: &str = "/ingress/mobily/3ds-return";

#[derive(Clone)]
struct Nafath {
    engine: Engine,
    credentials: Option<WebhookCredentials>,
}

/// The routes.
pub fn routes(engine: Engine, settings: &IngressSettings) -> Router {
    let nafath = Router::new()
        .route(NAFATH_PATH, post(nafath_webhook))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
        .with_state(Nafath {
            engine: engine.clone(),
            credentials: settings.mobily_nafath.clone(),
        });
    let returns = Router::new()
        .route(RETURN_PATH, get(three_ds_return))
        .with_state(engine);
    nafath.merge(returns)
}

fn refused(engine: &Engine, e: &InboundError) -> Rejection {
    count_rejection(engine);
    Rejection {
        status: match e {
            InboundError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        },
        reason: e.to_string(),
    }
}

async fn nafath_webhook(
    State(state): State<Nafath>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let engine = &state.engine;
    // No configured pair: every webhook is refused (never open by accident).
    let authentic = state
        .credentials
        .as_ref()
        .is_some_and(|c| c.verify_headers(&headers));
    if !authentic {
        count_rejection(engine);
        tracing::warn!("Nafath webhook with wrong or missing credentials refused");
        return Err(Rejection::unauthorized());
    }
    let hook = NafathWebhook::parse(&body).map_err(|e| refused(engine, &e))?;
    let key = CorrelationKey::new(NAFATH_NAMESPACE, hook.correlation().as_str())
        .map_err(Rejection::bad_request)?;
    let payload = json!({
        "transactionId": hook.transaction_id.as_str(),
        "status": hook.status,
    });
    let signal = NewSignal::to_correlation(key, NAFATH_SIGNAL, payload)
        .map_err(|e| Rejection::bad_request(e.to_string()))?
        .dedupe(format!("mobily:{}", hook.dedupe_key()))
        .source("ingress:mobily-nafath");
    let delivery = deliver(engine, signal).await?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "received": outcome_word(&delivery.outcome) })),
    )
        .into_response())
}

async fn three_ds_return(
    State(engine): State<Engine>,
    RawQuery(query): RawQuery,
) -> Result<Response, Rejection> {
    let back = ThreeDsReturn::parse_query(query.as_deref().unwrap_or_default())
        .map_err(|e| refused(&engine, &e))?;
    let key = CorrelationKey::new(PAYMENT_NAMESPACE, back.correlation().as_str())
        .map_err(Rejection::bad_request)?;
    let payload = json!({
        "paymentId": back.payment_id.as_str(),
        "result": back.result.wire_name(),
    });
    let signal = NewSignal::to_correlation(key, THREE_DS_SIGNAL, payload)
        .map_err(|e| Rejection::bad_request(e.to_string()))?
        .dedupe(format!("mobily:{}", back.dedupe_key()))
        .source("ingress:mobily-3ds");
    deliver(&engine, signal).await?;
    Ok((
        StatusCode::OK,
        Html("<!doctype html><title>Payment</title><p>Thank you. You can go back to the app.</p>"),
    )
        .into_response())
}

/// Points the simulator's callbacks at the ingress listening at `ingress_url`,
/// and the client's configuration (`clients`) at our routes under it.
///
/// The simulator posts the webhook to the URI and with the credentials the
/// client gives at initiate, and sends the browser to the `returnUrl` given
/// at createPayment, so pointing the client's configuration at our routes is
/// all it takes; the stack gives the ingress the same credentials.
pub fn wire_simulator(
    sims: &Simulators,
    ingress_url: &Url,
    clients: &mut ProvidersConfig,
) -> Result<(), url::ParseError> {
    let _ = sims;
    if let Some(mobily) = clients.mobily.as_mut() {
        mobily.nafath_webhook_url = ingress_url.join(NAFATH_PATH)?;
        mobily.payment_return_url = ingress_url.join(RETURN_PATH)?;
    }
    Ok(())
}
