//! HTTP handlers of the Reach simulator: gateway checks, strict validation of every body
//! (parsed from raw JSON, independently of the client's serde types, so a naming drift
//! between the two shows up in the contract tests), and the answers' wire format.

use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use http::header::{AUTHORIZATION, LOCATION, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use tokio::time::Instant;
use url::Url;

use super::catalog::{DeviceProfile, QuoteCents, quote};
use super::line::{DeviceRef, PortUpdateSpec, Refused};
use super::purchase::{OrderSpec, PortSpec, PurchaseRecord, Submitted};
use super::{
    ACTIVATION_ENDPOINT, ACTIVATION_STATUS_ENDPOINT, Action, COVERAGE_ENDPOINT, ICCID_ENDPOINT,
    IMEI_ENDPOINT, PLANS_ENDPOINT, PORT_IN_UPDATE_ENDPOINT, PORT_VALIDATE_ENDPOINT,
    PURCHASE_ENDPOINT, PURCHASE_STATUS_ENDPOINT, QUOTE_ENDPOINT, SimState,
};
use crate::reach::auth::AUTH_PREFIX;
use crate::reach::types::{is_acceptable_redirect, is_id, is_mdn, is_zip, luhn_valid};
use crate::reach::{
    ACTIVATION_PATH, ACTIVATION_STATUS_PATH, API_KEY_HEADER, COVERAGE_PATH, DeviceMode, ICCID_PATH,
    IMEI_PATH, PLANS_PATH, PORT_IN_UPDATE_PATH, PORT_VALIDATE_PATH, PURCHASE_PATH,
    PURCHASE_STATUS_PATH, QUOTE_PATH, SimType, Usd, error_code,
};
use crate::redact::sanitize_message;
use crate::sim::fault::{FaultWire, answer_fault};
use crate::sim::server::{ConnHandle, lock};

pub(super) fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route(COVERAGE_PATH, post(coverage))
        .route(IMEI_PATH, get(imei))
        .route(PLANS_PATH, get(plans))
        .route(QUOTE_PATH, post(quote_handler))
        .route(PURCHASE_PATH, post(purchase))
        .route(PURCHASE_STATUS_PATH, get(purchase_status))
        .route(ICCID_PATH, post(iccid))
        .route(ACTIVATION_PATH, post(activation))
        .route(ACTIVATION_STATUS_PATH, get(activation_status))
        .route(PORT_VALIDATE_PATH, put(port_validate))
        .route(PORT_IN_UPDATE_PATH, put(port_in_update))
        .route(
            super::PAYMENT_PAGE_PATH,
            get(payment_page).post(payment_submit),
        )
        .with_state(state)
}

// ---------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    answer(status, json!({ "errorCode": code, "message": message }))
}

fn not_found(message: &str) -> Response {
    error(StatusCode::NOT_FOUND, error_code::NOT_FOUND, message)
}

/// Why a request is refused before it touches any state: `400` with Reach's error body.
#[derive(Debug)]
struct Reject {
    code: &'static str,
    message: String,
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        error(StatusCode::BAD_REQUEST, self.code, &self.message)
    }
}

/// `400 INVALID_REQUEST`: malformed (the client's fault).
fn invalid(message: impl Into<String>) -> Reject {
    Reject {
        code: error_code::INVALID_REQUEST,
        message: message.into(),
    }
}

/// `400` with a business code: a refusal.
fn refused(code: &'static str, message: impl Into<String>) -> Reject {
    Reject {
        code,
        message: message.into(),
    }
}

type Processed = (Response, Vec<Action>);

fn only(response: impl IntoResponse) -> Processed {
    (response.into_response(), Vec::new())
}

/// Reach's error shapes for injected faults, and each endpoint's business "no".
struct Wire {
    endpoint: &'static str,
}

impl FaultWire for Wire {
    fn error(&self, status: StatusCode, retry_after_secs: Option<u64>) -> Response {
        let (code, message) = match status {
            StatusCode::TOO_MANY_REQUESTS => (
                error_code::RATE_LIMITED,
                "Rate limit exceeded for this API key.",
            ),
            StatusCode::SERVICE_UNAVAILABLE => (
                error_code::SERVICE_UNAVAILABLE,
                "The platform is temporarily unavailable.",
            ),
            StatusCode::GATEWAY_TIMEOUT => (error_code::GATEWAY_TIMEOUT, "Upstream timeout."),
            _ => (error_code::INTERNAL_ERROR, "Unexpected platform error."),
        };
        let mut response = error(status, code, message);
        if let Some(secs) = retry_after_secs {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }

    fn refusal(&self, code: &str, message: &str) -> Response {
        match self.endpoint {
            COVERAGE_ENDPOINT => answer(
                StatusCode::OK,
                json!({ "brandCoverage": false, "coverageStrength5G": "NONE", "coverageStrength4G": "NONE" }),
            ),
            IMEI_ENDPOINT | ICCID_ENDPOINT => answer(StatusCode::OK, json!({ "isValid": false })),
            PORT_VALIDATE_ENDPOINT => answer(
                StatusCode::OK,
                json!({ "isPortValidate": false, "message": message }),
            ),
            _ => error(StatusCode::BAD_REQUEST, code, message),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Gateway
// ---------------------------------------------------------------------------------------

/// IP allow-list, credentials, rate limit: the refusal, if any.
fn guard(state: &SimState, headers: &HeaderMap) -> Option<Response> {
    let behaviour = state.behaviour();
    if !behaviour.ip_whitelisted {
        return Some(error(
            StatusCode::FORBIDDEN,
            error_code::FORBIDDEN,
            "Forbidden: the caller's IP address is not whitelisted.",
        ));
    }
    if !authenticated(state, headers) {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            error_code::UNAUTHORIZED,
            "Invalid or expired credentials.",
        ));
    }
    if let Some(limit) = behaviour.rate_limit_per_second
        && let Err(wait) = lock(&state.rate).check(limit, Instant::now())
    {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = Wire { endpoint: "" }.error(StatusCode::TOO_MANY_REQUESTS, None);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return Some(response);
    }
    None
}

/// `x-api-key` is the key and `Authorization` is `Basic base64("clientapi|" + JWT)`:
/// standard alphabet, canonical padding, the current JWT.
fn authenticated(state: &SimState, headers: &HeaderMap) -> bool {
    let key_ok = headers.get(API_KEY_HEADER).is_some_and(|given| {
        bool::from(
            given
                .as_bytes()
                .ct_eq(state.api_key.expose_secret().as_bytes()),
        )
    });
    let jwt: SecretString = lock(&state.jwt).clone();
    let jwt_ok = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .is_some_and(|credential| {
            credential.strip_prefix(AUTH_PREFIX).is_some_and(|given| {
                bool::from(given.as_bytes().ct_eq(jwt.expose_secret().as_bytes()))
            })
        });
    // Both are checked whatever the first says (no early exit on the key).
    key_ok & jwt_ok
}

/// Gateway checks, then the fault plan, then `process` (whose actions are performed before
/// the answer leaves, so "before the answer" callbacks really precede it).
async fn serve_call(
    state: &SimState,
    conn: &ConnHandle,
    headers: &HeaderMap,
    endpoint: &'static str,
    process: impl FnOnce() -> Processed,
) -> Response {
    if let Some(denied) = guard(state, headers) {
        return denied;
    }
    let wire = Wire { endpoint };
    match state.faults.next(endpoint) {
        Some(fault) if !fault.after_effect() => answer_fault(&fault, conn, None, &wire).await,
        Some(fault) => {
            let (normal, actions) = process();
            state.perform(actions).await;
            answer_fault(&fault, conn, Some(normal), &wire).await
        }
        None => {
            let (normal, actions) = process();
            state.perform(actions).await;
            normal
        }
    }
}

// ---------------------------------------------------------------------------------------
// Strict bodies
// ---------------------------------------------------------------------------------------

/// A JSON object body with exactly the allowed fields. Messages name fields, never values.
struct Body {
    fields: Map<String, Value>,
}

impl Body {
    fn parse(bytes: &[u8], allowed: &[&str]) -> Result<Self, Reject> {
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(bytes) else {
            return Err(invalid("The request body must be a JSON object."));
        };
        Self::of(fields, allowed)
    }

    fn of(fields: Map<String, Value>, allowed: &[&str]) -> Result<Self, Reject> {
        if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            let name: String = unknown.chars().take(40).collect();
            return Err(invalid(format!(
                "Unknown field {}.",
                sanitize_message(&name)
            )));
        }
        Ok(Self { fields })
    }

    fn text(&self, name: &str) -> Result<Option<&str>, Reject> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= 2048 => Ok(Some(s)),
            Some(_) => Err(invalid(format!("{name} must be a string."))),
        }
    }

    fn required(&self, name: &str) -> Result<&str, Reject> {
        self.text(name)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| invalid(format!("{name} is required.")))
    }

    fn checked(&self, name: &str, ok: impl Fn(&str) -> bool) -> Result<&str, Reject> {
        let value = self.required(name)?;
        if ok(value) {
            Ok(value)
        } else {
            Err(invalid(format!("{name} is invalid.")))
        }
    }

    fn boolean(&self, name: &str) -> Result<bool, Reject> {
        match self.fields.get(name) {
            Some(Value::Bool(b)) => Ok(*b),
            None | Some(Value::Null) => Err(invalid(format!("{name} is required."))),
            Some(_) => Err(invalid(format!("{name} must be a boolean."))),
        }
    }

    fn object(&self, name: &str, allowed: &[&str]) -> Result<Option<Body>, Reject> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(fields)) => Body::of(fields.clone(), allowed).map(Some),
            Some(_) => Err(invalid(format!("{name} must be an object."))),
        }
    }
}

fn digits(s: &str, lengths: std::ops::RangeInclusive<usize>) -> bool {
    lengths.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_name(s: &str) -> bool {
    s.chars().count() <= 254 && !s.chars().any(char::is_control)
}

const ADDRESS_FIELDS: [&str; 6] = ["address1", "address2", "city", "state", "zip", "country"];

/// Checks an address object; returns its ZIP.
fn address(body: &Body) -> Result<String, Reject> {
    body.checked("address1", is_name)?;
    if let Some(line) = body.text("address2")?
        && !is_name(line)
    {
        return Err(invalid("address2 is invalid."));
    }
    body.checked("city", is_name)?;
    body.checked("state", |s| {
        s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
    })?;
    body.checked("country", |s| s == "USA")?;
    Ok(body.checked("zip", is_zip)?.to_owned())
}

const ORDER_FIELDS: [&str; 14] = [
    "clientAccountId",
    "planId",
    "simType",
    "redirectUrl",
    "firstName",
    "lastName",
    "email",
    "shippingAddress",
    "imei",
    "numberToPort",
    "oldCarrier",
    "oldCarrierAccountNumber",
    "password",
    "oldZip",
];

const PORT_FIELDS: [&str; 5] = [
    "numberToPort",
    "oldCarrier",
    "oldCarrierAccountNumber",
    "password",
    "oldZip",
];

/// Validates a quote or purchase body against the catalog and the port rules.
fn order(state: &SimState, bytes: &[u8]) -> Result<(OrderSpec, QuoteCents), Reject> {
    let body = Body::parse(bytes, &ORDER_FIELDS)?;
    let client_account_id = body.checked("clientAccountId", is_id)?.to_owned();
    let plan_id = body.required("planId")?.to_owned();
    let sim_type = match body.required("simType")? {
        "PSIM" => SimType::Psim,
        "ESIM" => SimType::Esim,
        _ => return Err(invalid("simType must be PSIM or ESIM.")),
    };
    let redirect_url = Url::parse(body.required("redirectUrl")?)
        .ok()
        .filter(is_acceptable_redirect)
        .ok_or_else(|| invalid("redirectUrl must be an https:// URL."))?;
    body.checked("firstName", is_name)?;
    body.checked("lastName", is_name)?;
    body.checked("email", |e| {
        e.len() <= 254
            && e.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
    })?;
    match body.object("shippingAddress", &ADDRESS_FIELDS)? {
        Some(shipping) => {
            address(&shipping)?;
        }
        None if sim_type == SimType::Psim => {
            return Err(invalid("shippingAddress is required for a PSIM order."));
        }
        None => {}
    }
    if body.text("imei")?.is_some() {
        body.checked("imei", |s| digits(s, 15..=15))?;
    }
    let given = PORT_FIELDS
        .iter()
        .filter(|f| body.fields.get(**f).is_some_and(|v| !v.is_null()))
        .count();
    let port = match given {
        0 => None,
        5 => {
            let number = body.checked("numberToPort", is_mdn)?.to_owned();
            let spec = PortSpec {
                carrier: body.checked("oldCarrier", is_name)?.to_owned(),
                account: body
                    .checked("oldCarrierAccountNumber", |s| {
                        s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric())
                    })?
                    .to_owned(),
                pin: SecretString::from(body.checked("password", |s| s.len() <= 32)?),
                zip: body.checked("oldZip", is_zip)?.to_owned(),
                number,
            };
            if let Some(reason) = port_refusal(state, &spec.number) {
                return Err(refused("PORT_NOT_ELIGIBLE", &reason));
            }
            Some(spec)
        }
        _ => {
            return Err(invalid(
                "Port-in needs numberToPort, oldCarrier, oldCarrierAccountNumber, password and oldZip.",
            ));
        }
    };
    let world = lock(&state.world);
    let plan = world
        .plans
        .iter()
        .find(|p| p.service_code == plan_id)
        .ok_or_else(|| refused(error_code::PLAN_NOT_AVAILABLE, "The plan is not available."))?;
    let price = quote(plan, sim_type);
    Ok((
        OrderSpec {
            client_account_id,
            plan_id,
            plan_name: plan.name.clone(),
            sim_type,
            redirect_url,
            amount_cents: price.total_one_time,
            port,
        },
        price,
    ))
}

/// Why `number` cannot be ported in, if it cannot.
fn port_refusal(state: &SimState, number: &str) -> Option<String> {
    if let Some(reason) = lock(&state.world).port_refusals.get(number) {
        return Some(reason.clone());
    }
    lock(&state.lines)
        .number_in_use(number)
        .then(|| "The number is already active on this network.".to_owned())
}

fn usd(cents: u64) -> Value {
    Usd::from_cents(cents)
        .map(|u| Value::Number(u.to_json()))
        .unwrap_or(Value::Null)
}

fn query_param(query: Option<&str>, name: &str) -> Result<String, Reject> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    match pairs.as_slice() {
        [(key, value)] if key == name => Ok(value.clone()),
        _ => Err(invalid(format!("The query must be exactly {name}=..."))),
    }
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

async fn coverage(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_call(&state, &conn, &headers, COVERAGE_ENDPOINT, || {
        let zip = match Body::parse(&body, &ADDRESS_FIELDS).and_then(|b| address(&b)) {
            Ok(zip) => zip,
            Err(r) => return only(r),
        };
        let five: String = zip.chars().take(5).collect();
        let covered = !lock(&state.world).uncovered_zips.contains(&five);
        only(answer(
            StatusCode::OK,
            if covered {
                json!({ "brandCoverage": true, "coverageStrength5G": "GOOD", "coverageStrength4G": "EXCELLENT" })
            } else {
                json!({ "brandCoverage": false, "coverageStrength5G": "NONE", "coverageStrength4G": "NONE" })
            },
        ))
    })
    .await
}

fn device_profile(state: &SimState, imei: &str) -> DeviceProfile {
    lock(&state.world)
        .devices
        .get(imei)
        .cloned()
        .unwrap_or_else(|| DeviceProfile::default_for(luhn_valid(imei)))
}

async fn imei(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    Path(imei): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve_call(&state, &conn, &headers, IMEI_ENDPOINT, || {
        if !digits(&imei, 15..=15) {
            return only(invalid("The IMEI must be 15 digits."));
        }
        let profile = device_profile(&state, &imei);
        only(answer(
            StatusCode::OK,
            if profile.valid {
                json!({
                    "isValid": true,
                    "mode": profile.mode.as_str(),
                    "esimAvailable": profile.mode != DeviceMode::Psim,
                    "make": profile.make,
                    "model": profile.model,
                })
            } else {
                json!({ "isValid": false })
            },
        ))
    })
    .await
}

async fn plans(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    headers: HeaderMap,
) -> Response {
    serve_call(&state, &conn, &headers, PLANS_ENDPOINT, || {
        let plans: Vec<Value> = lock(&state.world)
            .plans
            .iter()
            .map(|p| {
                json!({
                    "serviceCode": p.service_code,
                    "name": p.name,
                    "baseLinePrice": usd(p.base_line_price_cents),
                    "maxLines": p.max_lines,
                    "fccLabel": p.fcc_label,
                    "upGradableTo": p.up_gradable_to,
                    "downGradableTo": p.down_gradable_to,
                })
            })
            .collect();
        only(answer(StatusCode::OK, Value::Array(plans)))
    })
    .await
}

async fn quote_handler(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_call(&state, &conn, &headers, QUOTE_ENDPOINT, || {
        let price = match order(&state, &body) {
            Ok((_, price)) => price,
            Err(r) => return only(r),
        };
        only(answer(
            StatusCode::OK,
            json!({
                "oneTimeCharge": {
                    "simKitCost": usd(price.sim_kit),
                    "activationCost": usd(price.activation),
                    "shipment": usd(price.shipment),
                    "tax": usd(price.tax),
                    "totalOneTimeCost": usd(price.total_one_time),
                },
                "estimatedMonthlyCost": { "total": usd(price.monthly_total) },
            }),
        ))
    })
    .await
}

async fn purchase(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_call(&state, &conn, &headers, PURCHASE_ENDPOINT, || {
        let order = match order(&state, &body) {
            Ok((order, _)) => order,
            Err(r) => return only(r),
        };
        let client_account_id = order.client_account_id.clone();
        let now = Utc::now();
        let rules = state.behaviour().purchase_rules();
        let mut purchases = lock(&state.purchases);
        let (submitted, events) = purchases.submit(order, now, &rules);
        let actions = state.on_purchase_events(events, now);
        drop(purchases);
        let response = match submitted {
            Submitted::New(transaction_id) => answer(
                StatusCode::ACCEPTED,
                json!({ "transactionId": transaction_id, "clientAccountId": client_account_id }),
            ),
            Submitted::Existing {
                transaction_id,
                status,
            } => answer(
                StatusCode::CONFLICT,
                json!({
                    "errorCode": error_code::DUPLICATE_PURCHASE,
                    "message": "A purchase with this clientAccountId already exists.",
                    "transactionId": transaction_id,
                    "status": status.as_str(),
                }),
            ),
            Submitted::KeyInUse => error(
                StatusCode::CONFLICT,
                error_code::CLIENT_ACCOUNT_ID_IN_USE,
                "This clientAccountId is used by a different order.",
            ),
        };
        (response, actions)
    })
    .await
}

fn render_purchase(state: &SimState, record: &PurchaseRecord) -> Value {
    let link = (record.status == crate::reach::PurchaseStatusCode::PaymentPending)
        .then(|| {
            let base = state.base_url.get()?;
            let url = format!(
                "{}/payment/checkout/{}",
                base.as_str().trim_end_matches('/'),
                record.transaction_id
            );
            Some(json!({
                "url": url,
                "expireDate": record.link_expires.map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true)),
            }))
        })
        .flatten();
    json!({
        "transactionId": record.transaction_id,
        "clientAccountId": record.order.client_account_id,
        "status": record.status.as_str(),
        "paymentStatus": record.payment_status,
        "link": link,
        "customerId": record.customer_id,
        "shipmentStatus": record.shipment_status,
        "simType": record.order.sim_type.as_str(),
        "paymentStatusDesc": record.payment_status_desc,
    })
}

async fn purchase_status(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    Path(transaction_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve_call(&state, &conn, &headers, PURCHASE_STATUS_ENDPOINT, || {
        let now = Utc::now();
        let rules = state.behaviour().purchase_rules();
        let mut purchases = lock(&state.purchases);
        let (record, events) = purchases.poll(&transaction_id, now, &rules);
        let actions = state.on_purchase_events(events, now);
        drop(purchases);
        let response = match record {
            Some(record) => answer(StatusCode::OK, render_purchase(&state, &record)),
            None => not_found("Unknown transactionId."),
        };
        (response, actions)
    })
    .await
}

fn iccid_usable(state: &SimState, iccid: &str) -> bool {
    luhn_valid(iccid)
        && iccid.starts_with("89")
        && !lock(&state.world).blocked_iccids.contains(iccid)
}

async fn iccid(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_call(&state, &conn, &headers, ICCID_ENDPOINT, || {
        let iccid = match Body::parse(&body, &["iccId"])
            .and_then(|b| b.checked("iccId", |s| digits(s, 19..=20)).map(str::to_owned))
        {
            Ok(iccid) => iccid,
            Err(r) => return only(r),
        };
        only(answer(
            StatusCode::OK,
            if iccid_usable(&state, &iccid) {
                json!({ "isValid": true, "mode": "PSIM", "wifiCalling": true, "volteCompatible": true })
            } else {
                json!({ "isValid": false })
            },
        ))
    })
    .await
}

fn parse_activation(state: &SimState, bytes: &[u8]) -> Result<(String, DeviceRef), Reject> {
    let body = Body::parse(bytes, &["customerId", "esim", "imei", "iccId"])?;
    let customer_id = body.checked("customerId", is_id)?.to_owned();
    let device = if body.boolean("esim")? {
        if body.text("iccId")?.is_some() {
            return Err(invalid("An eSIM activation takes an imei, not an iccId."));
        }
        let imei = body.checked("imei", |s| digits(s, 15..=15))?;
        let profile = device_profile(state, imei);
        if !profile.valid || !profile.mode.supports(SimType::Esim) {
            return Err(refused(
                error_code::DEVICE_NOT_COMPATIBLE,
                "The device cannot take an eSIM.",
            ));
        }
        DeviceRef::Esim(imei.to_owned())
    } else {
        if body.text("imei")?.is_some() {
            return Err(invalid("A pSIM activation takes an iccId, not an imei."));
        }
        let iccid = body.checked("iccId", |s| digits(s, 19..=20))?;
        if !iccid_usable(state, iccid) {
            return Err(refused(
                error_code::DEVICE_NOT_COMPATIBLE,
                "The SIM card cannot be activated.",
            ));
        }
        DeviceRef::Psim(iccid.to_owned())
    };
    Ok((customer_id, device))
}

async fn activation(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_call(&state, &conn, &headers, ACTIVATION_ENDPOINT, || {
        let (customer_id, device) = match parse_activation(&state, &body) {
            Ok(parsed) => parsed,
            Err(r) => return only(r),
        };
        let outcome = lock(&state.lines).activate(
            &customer_id,
            device,
            Utc::now(),
            &state.behaviour().line_rules(),
        );
        match outcome {
            Ok((accepted, events)) => (
                answer(
                    StatusCode::ACCEPTED,
                    json!({
                        "transactionId": accepted.transaction_id,
                        "customerId": customer_id,
                        "status": accepted.status.code(),
                    }),
                ),
                state.on_line_events(events),
            ),
            Err(Refused::UnknownCustomer) => only(not_found("Unknown customerId.")),
            Err(Refused::Conflict {
                transaction_id,
                status,
            }) => only(answer(
                StatusCode::CONFLICT,
                json!({
                    "errorCode": error_code::ACTIVATION_EXISTS,
                    "message": "The line already has an activation or port-in.",
                    "transactionId": transaction_id,
                    "status": status.code(),
                }),
            )),
        }
    })
    .await
}

async fn activation_status(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    serve_call(&state, &conn, &headers, ACTIVATION_STATUS_ENDPOINT, || {
        let customer_id = match query_param(query.as_deref(), "customerId") {
            Ok(id) if is_id(&id) => id,
            Ok(_) => return only(invalid("customerId is invalid.")),
            Err(r) => return only(r),
        };
        let (line, events) =
            lock(&state.lines).poll(&customer_id, Utc::now(), &state.behaviour().line_rules());
        let actions = state.on_line_events(events);
        let response = match line {
            Some(line) => answer(
                StatusCode::OK,
                json!({
                    "customerId": line.customer_id,
                    "transactionId": line.transaction_id,
                    "status": line.status.code(),
                    "activationMsg": line.activation_msg,
                    "mobileNo": line.mobile_no,
                    "planName": line.plan_name,
                    "activationDate": line.activation_date.map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true)),
                }),
            ),
            None => not_found("Unknown customerId."),
        };
        (response, actions)
    })
    .await
}

async fn port_validate(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    serve_call(&state, &conn, &headers, PORT_VALIDATE_ENDPOINT, || {
        let mdn = match query_param(query.as_deref(), "mdn") {
            Ok(mdn) if is_mdn(&mdn) => mdn,
            Ok(_) => return only(invalid("mdn must be a 10-digit number.")),
            Err(r) => return only(r),
        };
        only(answer(
            StatusCode::OK,
            match port_refusal(&state, &mdn) {
                None => json!({ "isPortValidate": true, "message": "The number is eligible for port-in." }),
                Some(reason) => json!({ "isPortValidate": false, "message": reason }),
            },
        ))
    })
    .await
}

fn parse_port_update(bytes: &[u8]) -> Result<(String, PortUpdateSpec), Reject> {
    let body = Body::parse(
        bytes,
        &[
            "customerId",
            "type",
            "password",
            "oldCarrierAccountNumber",
            "oldZip",
        ],
    )?;
    let customer_id = body.checked("customerId", is_id)?.to_owned();
    let kind = body.required("type")?;
    let (update, field) = match kind {
        "UPDATE_PIN" => (
            PortUpdateSpec::Pin(SecretString::from(
                body.checked("password", |s| s.len() <= 32)?,
            )),
            Some("password"),
        ),
        "UPDATE_ACCOUNT" => (
            PortUpdateSpec::Account(
                body.checked("oldCarrierAccountNumber", |s| {
                    s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric())
                })?
                .to_owned(),
            ),
            Some("oldCarrierAccountNumber"),
        ),
        "UPDATE_ZIP" => (
            PortUpdateSpec::Zip(body.checked("oldZip", is_zip)?.to_owned()),
            Some("oldZip"),
        ),
        "RESUBMIT_PORT" => (PortUpdateSpec::Resubmit, None),
        "CANCEL_PORT" => (PortUpdateSpec::Cancel, None),
        "CANCEL_AND_NEW" => (PortUpdateSpec::CancelAndNew, None),
        _ => return Err(invalid("type is not a port-in update type.")),
    };
    // Exactly the corrected field of this type, nothing else.
    let extra = ["password", "oldCarrierAccountNumber", "oldZip"]
        .into_iter()
        .filter(|f| Some(*f) != field)
        .find(|f| body.fields.get(*f).is_some_and(|v| !v.is_null()));
    if let Some(extra) = extra {
        return Err(invalid(format!(
            "{extra} does not belong to a {kind} update."
        )));
    }
    Ok((customer_id, update))
}

async fn port_in_update(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_call(&state, &conn, &headers, PORT_IN_UPDATE_ENDPOINT, || {
        let (customer_id, update) = match parse_port_update(&body) {
            Ok(parsed) => parsed,
            Err(r) => return only(r),
        };
        let outcome = lock(&state.lines).update_port(
            &customer_id,
            update,
            Utc::now(),
            &state.behaviour().line_rules(),
        );
        match outcome {
            Ok((accepted, events)) => (
                answer(
                    StatusCode::OK,
                    json!({
                        "transactionId": accepted.transaction_id,
                        "customerId": customer_id,
                        "status": accepted.status.code(),
                        "message": "Port-in update accepted.",
                    }),
                ),
                state.on_line_events(events),
            ),
            Err(Refused::UnknownCustomer) => only(not_found("Unknown customerId.")),
            Err(Refused::Conflict {
                transaction_id,
                status,
            }) => only(answer(
                StatusCode::CONFLICT,
                json!({
                    "errorCode": error_code::PORT_STATE_CONFLICT,
                    "message": "The port-in is not in a state this update applies to.",
                    "transactionId": transaction_id,
                    "status": status.code(),
                }),
            )),
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------
// The fake payment page (the customer's browser, not the API: no gateway, no faults)
// ---------------------------------------------------------------------------------------

async fn payment_page(
    State(state): State<Arc<SimState>>,
    Path(transaction_id): Path<String>,
) -> Response {
    let status = lock(&state.purchases)
        .get(&transaction_id)
        .map(|r| r.status);
    match status {
        Some(status) if is_id(&transaction_id) => axum::response::Html(format!(
            "<!doctype html><title>Reach checkout (simulated)</title>\
             <h1>Checkout {transaction_id}</h1><p>Status: {status}</p>\
             <form method=post><button name=result value=paid>Pay</button>\
             <button name=result value=declined>Use a declined card</button></form>"
        ))
        .into_response(),
        _ => (StatusCode::NOT_FOUND, "Unknown checkout.").into_response(),
    }
}

async fn payment_submit(
    State(state): State<Arc<SimState>>,
    Path(transaction_id): Path<String>,
    body: Bytes,
) -> Response {
    let result = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "result")
        .map(|(_, v)| v.into_owned());
    let card_accepted = match result.as_deref() {
        Some("paid") => true,
        Some("declined") => false,
        _ => return (StatusCode::BAD_REQUEST, "result must be paid or declined.").into_response(),
    };
    let redirect = lock(&state.purchases)
        .get(&transaction_id)
        .map(|r| r.order.redirect_url.clone());
    match (state.pay(&transaction_id, card_accepted), redirect) {
        (Ok(actions), Some(mut location)) => {
            state.perform(actions).await;
            location
                .query_pairs_mut()
                .append_pair("transId", &transaction_id);
            match HeaderValue::from_str(location.as_str()) {
                Ok(value) => (StatusCode::SEE_OTHER, [(LOCATION, value)]).into_response(),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        (Err(e), _) => (StatusCode::CONFLICT, e.to_string()).into_response(),
        (Ok(_), None) => (StatusCode::NOT_FOUND, "Unknown checkout.").into_response(),
    }
}
