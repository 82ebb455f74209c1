//! Reach's callbacks (`POST /apisvc/v0/notification/callback`, `POST /apisvc/v0/notification`) and the customer's return from the payment page (`?transId=`).
//!
//! Every route follows the engine's ingress rules: the signal is committed
//! before the 200 (well within Reach's 10 s), duplicates (Reach retries up to
//! 3 times) are acknowledged and change nothing (de-duplicated by the
//! adapter's `dedupe_key`), a callback for no known journey is stored and
//! reported (`journeys stuck`), a body over 64 KiB gets 413 before parsing,
//! a malformed one 400, and a store that is down 503: nothing is written in
//! those cases.
//!
//! Authentication: the guide defines none for callbacks. When
//! [`IngressSettings::reach_callback_auth`] is set, both callback routes
//! require HTTP Basic credentials (register the callback URL with Reach as
//! `https://user:password@host/`), and refuse anything else with 401 and
//! nothing written; otherwise deploy them behind an allow-list of Reach's
//! addresses. The payment return is a customer's browser: it cannot carry
//! credentials, so it only wakes the journey, which confirms with
//! `/product/status/{transactionId}` (a forged return costs one status
//! query).
//!
//! The contract the Reach journeys (J2, J3) rely on:
//!
//! | what arrives | becomes |
//! |---|---|
//! | `PRODUCT_PURCHASE` / `PURCHASE_SUBSEQUENT` callback | signal [`PURCHASE_SIGNAL`] to correlation `reach.txn:<transactionId>` |
//! | `ACTIVATION` callback (also port-in progress) | signal [`ACTIVATION_SIGNAL`] to correlation `reach.customer:<customerId>` |
//! | notifications (`USAGE_NOTIFICATION`, `PORT_OUT`...) | signal [`NOTIFICATION_SIGNAL`] to correlation `reach.customer:<customerId>` (stored; unmatched ones are reported) |
//! | the customer's return from the payment page (`GET {RETURN_PATH}?transId=`) | signal [`PAYMENT_RETURN_SIGNAL`] to correlation `reach.txn:<transId>` |
//!
//! The payload of a callback signal is the callback's JSON body as Reach sent
//! it, once `handover_adapters::reach::callbacks::parse_callback` (or
//! `parse_notification`) accepted it: journeys parse it again with the same
//! function. The payment return's payload is `{"transId": "..."}`. A callback
//! is a wake-up hint: the journey confirms with the status endpoint before
//! acting on money or inventory.

use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use handover_adapters::ProvidersConfig;
use handover_adapters::reach::callbacks::{
    CallbackError, CallbackType, Correlation, MAX_CALLBACK_BYTES, TRANSACTION_NAMESPACE,
    parse_callback, parse_notification,
};
use handover_adapters::reach::{CALLBACK_PATH, NOTIFICATION_PATH, TransactionId};
use handover_adapters::sim::Simulators;
use handover_engine::ingress::{
    Rejection, constant_time_eq, count_rejection, deliver, outcome_word,
};
use handover_engine::{CorrelationKey, Engine, NewSignal};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use super::IngressSettings;

/// Purchase callbacks (`PRODUCT_PURCHASE`, `PURCHASE_SUBSEQUENT`).
pub const PURCHASE_SIGNAL: &str = "reach.purchase";
/// `ACTIVATION` callbacks (activation and port-in progress).
pub const ACTIVATION_SIGNAL: &str = "reach.activation";
/// Real-time notifications.
pub const NOTIFICATION_SIGNAL: &str = "reach.notification";
/// The customer came back from the payment page.
pub const PAYMENT_RETURN_SIGNAL: &str = "reach.payment-return";
/// Where the payment page sends the customer back (`redirectUrl`).
pub const RETURN_PATH: &str = "/returns/reach";
/// The longest query string accepted on the payment return.
const MAX_RETURN_QUERY_CHARS: usize = 2048;

/// HTTP Basic credentials Reach's callbacks must carry (optional: see the
/// module docs).
#[derive(Clone)]
pub struct ReachCallbackAuth {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: SecretString,
}

impl std::fmt::Debug for ReachCallbackAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReachCallbackAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl ReachCallbackAuth {
    /// The `Authorization` header value these credentials give.
    fn header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password.expose_secret());
        format!("Basic {}", base64(pair.as_bytes()))
    }
}

/// Standard Base64 with padding (RFC 4648), for the expected Basic header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[derive(Clone)]
struct RouteState {
    engine: Engine,
    /// The exact `Authorization` value required, when callbacks are
    /// authenticated.
    expected: Option<SecretString>,
}

impl RouteState {
    fn authorize(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        let Some(expected) = &self.expected else {
            return Ok(());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if constant_time_eq(presented.trim(), expected.expose_secret()) {
            Ok(())
        } else {
            count_rejection(&self.engine);
            Err(Rejection::unauthorized())
        }
    }

    fn refuse(&self, e: &CallbackError) -> Rejection {
        count_rejection(&self.engine);
        match e {
            CallbackError::TooLarge { .. } => Rejection {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                reason: e.to_string(),
            },
            _ => Rejection::bad_request(e.to_string()),
        }
    }
}

/// The routes.
pub fn routes(engine: Engine, settings: &IngressSettings) -> Router {
    let state = RouteState {
        engine,
        expected: settings
            .reach_callback_auth
            .as_ref()
            .map(|auth| SecretString::from(auth.header())),
    };
    Router::new()
        .route(CALLBACK_PATH, post(callback))
        .route(NOTIFICATION_PATH, post(notification))
        .layer(DefaultBodyLimit::max(MAX_CALLBACK_BYTES))
        .route(RETURN_PATH, get(payment_return))
        .with_state(state)
}

fn key(correlation: &Correlation) -> Result<CorrelationKey, Rejection> {
    CorrelationKey::new(correlation.namespace(), correlation.value())
        .map_err(Rejection::bad_request)
}

fn received(outcome: &handover_engine::DeliveryOutcome) -> Response {
    (
        StatusCode::OK,
        Json(json!({ "received": outcome_word(outcome) })),
    )
        .into_response()
}

/// `POST /apisvc/v0/notification/callback`.
async fn callback(
    State(state): State<RouteState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    state.authorize(&headers)?;
    let parsed = parse_callback(&body).map_err(|e| state.refuse(&e))?;
    let name = match parsed.callback_type() {
        CallbackType::ProductPurchase | CallbackType::PurchaseSubsequent => PURCHASE_SIGNAL,
        CallbackType::Activation => ACTIVATION_SIGNAL,
    };
    // The body as Reach sent it (the parser accepted it as a JSON object).
    let payload: Value = serde_json::from_slice(&body).unwrap_or_else(|_| parsed.to_body());
    let signal = NewSignal::to_correlation(key(&parsed.correlation())?, name, payload)
        .map_err(|e| Rejection::bad_request(e.to_string()))?
        .dedupe(parsed.dedupe_key())
        .source("ingress:reach");
    let delivery = deliver(&state.engine, signal).await?;
    Ok(received(&delivery.outcome))
}

/// `POST /apisvc/v0/notification`.
async fn notification(
    State(state): State<RouteState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    state.authorize(&headers)?;
    let parsed = parse_notification(&body).map_err(|e| state.refuse(&e))?;
    let payload: Value = serde_json::from_slice(&body).unwrap_or_else(|_| parsed.to_body());
    let signal =
        NewSignal::to_correlation(key(&parsed.correlation())?, NOTIFICATION_SIGNAL, payload)
            .map_err(|e| Rejection::bad_request(e.to_string()))?
            .dedupe(parsed.dedupe_key())
            .source("ingress:reach");
    let delivery = deliver(&state.engine, signal).await?;
    Ok(received(&delivery.outcome))
}

/// `GET {RETURN_PATH}?transId=...`: the customer's browser, back from the
/// payment page.
async fn payment_return(
    State(state): State<RouteState>,
    RawQuery(query): RawQuery,
) -> Result<Response, Rejection> {
    let query = query.unwrap_or_default();
    let trans_id = (query.len() <= MAX_RETURN_QUERY_CHARS)
        .then(|| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "transId")
                .map(|(_, v)| v.into_owned())
        })
        .flatten()
        .and_then(|t| TransactionId::new(t).ok())
        .ok_or_else(|| {
            count_rejection(&state.engine);
            Rejection::bad_request("expected ?transId=<transactionId>")
        })?;
    let key = CorrelationKey::new(TRANSACTION_NAMESPACE, trans_id.as_str())
        .map_err(Rejection::bad_request)?;
    let signal = NewSignal::to_correlation(
        key,
        PAYMENT_RETURN_SIGNAL,
        json!({ "transId": trans_id.as_str() }),
    )
    .map_err(|e| Rejection::bad_request(e.to_string()))?
    // A reload of the page is the same return.
    .dedupe(format!("reach:return:{trans_id}"))
    .source("ingress:reach-return");
    deliver(&state.engine, signal).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Thank you. We are confirming your payment; you can close this page.",
    )
        .into_response())
}

/// Points the simulator's callbacks at the ingress listening at `ingress_url`,
/// and the client's configuration (`clients`) at our routes under it.
pub fn wire_simulator(
    sims: &Simulators,
    ingress_url: &Url,
    clients: &mut ProvidersConfig,
) -> Result<(), url::ParseError> {
    // The Reach client takes the return URL per order (from the public base
    // URL), so its configuration needs nothing.
    let _ = clients;
    sims.reach.set_callback_base(Some(ingress_url.clone()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"reach:s3cr>t?"), "cmVhY2g6czNjcj50Pw==");
    }
}
