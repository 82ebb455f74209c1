//! The Mobitel Charging-as-a-Service simulator.
//!
//! Serves `POST /mobext/mapi/caas/chargRequest` and `POST /mobext/mapi/caas/confirm` with the
//! wire format documented in [`crate::mobitel`], in front of an IBM API Connect-like gateway:
//!
//! - **Gateway:** `x-ibm-client-id` missing or unknown answers 401 with the gateway's JSON
//!   (`{"httpCode", "httpMessage", "moreInformation"}`); injected 429/5xx use the same shape.
//! - **Validation:** `amount` must be a JSON *string* of positive rupees (two decimals at
//!   most); `receiver` a Sri Lankan mobile `07XXXXXXXX`; `ref` a non-empty string. Otherwise
//!   400 with status `4000`. An unknown `ref` is 404 with `4004`.
//! - **Consent:** see [`consent`]: pending until the customer answers
//!   ([`MobitelSim::approve`], [`MobitelSim::decline`], or a [`ConsentPolicy`]), expiring
//!   after the consent window, re-initiation refused (`2002`) within the gap.
//! - **Ledger:** a [`EffectKind::ChargeRequest`] keyed by the reference when the pop-up is
//!   sent; a [`EffectKind::Charge`] keyed by the reference when confirm completes an approved
//!   request (once, however often confirm is repeated). Subjects are the receiver.
//! - **Faults:** the [`FaultPlan`] is consulted per call after authentication; endpoint
//!   names are [`CHARGE_REQUEST_ENDPOINT`] and [`CONFIRM_ENDPOINT`]. [`Fault::Refusal`]
//!   answers 200 with the given status code, like Mobitel's own refusals.

pub mod consent;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::time::Instant;
use url::Url;

pub use self::consent::{ChargeState, ConsentPolicy, WorldError};
use self::consent::{Confirmed, ConsentBook, ConsentRules};
use crate::config::MobitelConfig;
use crate::error::Provider;
use crate::mobitel::{
    CHARGE_REQUEST_PATH, CLIENT_ID_HEADER, CONFIRM_PATH, is_sri_lankan_mobile, parse_amount_cents,
    status,
};
use crate::redact::mask_msisdn;
use crate::sim::fault::{Fault, FaultControl, FaultPlan, FaultWire, answer_fault};
use crate::sim::ledger::{EffectKind, Ledger};
use crate::sim::server::{ConnHandle, RequestLog, RunningServer, lock, serve};

/// Fault-plan name of the charge request endpoint.
pub const CHARGE_REQUEST_ENDPOINT: &str = "chargRequest";
/// Fault-plan name of the confirm endpoint.
pub const CONFIRM_ENDPOINT: &str = "confirm";

/// The client id the simulator accepts unless configured otherwise.
pub const DEFAULT_CLIENT_ID: &str = "handover-sim-mobitel-client";

/// How the simulated Mobitel behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MobitelBehaviour {
    /// How long the pop-up waits for the customer. Default 60 s (the document gives no
    /// figure; USSD sessions are short).
    pub consent_window: Duration,
    /// How long after an unapproved request the same receiver may be charged again.
    /// Default 120 s ("you can re-initiate the process by calling this service after 2
    /// minutes").
    pub reinitiate_gap: Duration,
    /// How the simulated customer answers. Default [`ConsentPolicy::Manual`].
    pub consent: ConsentPolicy,
    /// Most charge requests kept; the oldest are forgotten first. Default 100 000.
    pub max_charge_requests: usize,
}

impl Default for MobitelBehaviour {
    fn default() -> Self {
        Self {
            consent_window: Duration::from_secs(60),
            reinitiate_gap: Duration::from_secs(120),
            consent: ConsentPolicy::Manual,
            max_charge_requests: 100_000,
        }
    }
}

impl MobitelBehaviour {
    /// The default behaviour with another consent policy.
    pub fn with_consent(mut self, consent: ConsentPolicy) -> Self {
        self.consent = consent;
        self
    }

    /// The default behaviour with other windows (tests use milliseconds).
    pub fn with_windows(mut self, consent_window: Duration, reinitiate_gap: Duration) -> Self {
        self.consent_window = consent_window;
        self.reinitiate_gap = reinitiate_gap;
        self
    }

    fn rules(&self) -> ConsentRules {
        ConsentRules {
            consent_window: self.consent_window,
            reinitiate_gap: self.reinitiate_gap,
            policy: self.consent,
            max_records: self.max_charge_requests,
        }
    }
}

/// How to start a [`MobitelSim`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MobitelSimConfig {
    /// Loopback port; `None` picks a free one.
    pub port: Option<u16>,
    /// Seed for references.
    pub seed: u64,
    /// The registered client id (`x-ibm-client-id`).
    pub client_id: SecretString,
    /// Behaviour knobs.
    pub behaviour: MobitelBehaviour,
    /// Faults to inject.
    pub faults: FaultPlan,
}

impl Default for MobitelSimConfig {
    fn default() -> Self {
        Self {
            port: None,
            seed: 0,
            client_id: SecretString::from(DEFAULT_CLIENT_ID),
            behaviour: MobitelBehaviour::default(),
            faults: FaultPlan::default(),
        }
    }
}

impl MobitelSimConfig {
    /// The default configuration with this behaviour.
    pub fn with_behaviour(mut self, behaviour: MobitelBehaviour) -> Self {
        self.behaviour = behaviour;
        self
    }

    /// The default configuration accepting this client id.
    pub fn with_client_id(mut self, client_id: SecretString) -> Self {
        self.client_id = client_id;
        self
    }

    /// The default configuration on this port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The default configuration with this seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The default configuration with this fault plan.
    pub fn with_faults(mut self, faults: FaultPlan) -> Self {
        self.faults = faults;
        self
    }
}

/// A charge request as the simulator sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct ChargeView {
    /// Mobitel's reference.
    pub reference: String,
    /// The receiver (full number; `Debug` masks it).
    pub receiver: String,
    /// The amount as sent.
    pub amount: String,
    /// Where it stands now.
    pub state: ChargeState,
    /// How many confirms it has seen while pending.
    pub confirms: u32,
}

impl std::fmt::Debug for ChargeView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChargeView")
            .field("reference", &self.reference)
            .field("receiver", &mask_msisdn(&self.receiver))
            .field("amount", &self.amount)
            .field("state", &self.state)
            .field("confirms", &self.confirms)
            .finish()
    }
}

struct SimState {
    client_id: SecretString,
    ledger: Ledger,
    faults: FaultControl,
    book: Mutex<ConsentBook>,
    behaviour: Mutex<MobitelBehaviour>,
}

impl SimState {
    fn rules(&self) -> ConsentRules {
        lock(&self.behaviour).rules()
    }
}

/// A running Mobitel simulator. Stops when dropped.
pub struct MobitelSim {
    server: RunningServer,
    state: Arc<SimState>,
    requests: RequestLog,
}

impl std::fmt::Debug for MobitelSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MobitelSim")
            .field("base_url", &self.server.base_url().as_str())
            .finish_non_exhaustive()
    }
}

impl MobitelSim {
    /// Starts the simulator on loopback.
    pub async fn start(config: MobitelSimConfig) -> io::Result<Self> {
        let state = Arc::new(SimState {
            client_id: config.client_id,
            ledger: Ledger::new(Provider::Mobitel),
            faults: FaultControl::new(config.faults),
            book: Mutex::new(ConsentBook::new(config.seed)),
            behaviour: Mutex::new(config.behaviour),
        });
        let router = Router::new()
            .route(CHARGE_REQUEST_PATH, post(charge_request))
            .route(CONFIRM_PATH, post(confirm))
            .with_state(state.clone());
        let requests = RequestLog::default();
        let server = serve(config.port, router, requests.clone()).await?;
        tracing::info!(base_url = %server.base_url(), "Mobitel simulator listening");
        Ok(Self {
            server,
            state,
            requests,
        })
    }

    /// Where the simulator listens, e.g. `http://127.0.0.1:41234/`.
    pub fn base_url(&self) -> &Url {
        self.server.base_url()
    }

    /// A client configuration pointing at this simulator with its client id.
    pub fn client_config(&self) -> MobitelConfig {
        MobitelConfig::new(self.base_url().clone(), self.state.client_id.clone())
    }

    /// The effects applied so far.
    pub fn ledger(&self) -> &Ledger {
        &self.state.ledger
    }

    /// The fault plan, to script or replace while running.
    pub fn faults(&self) -> &FaultControl {
        &self.state.faults
    }

    /// The requests received (wire-format assertions).
    pub fn requests(&self) -> &RequestLog {
        &self.requests
    }

    /// The current behaviour.
    pub fn behaviour(&self) -> MobitelBehaviour {
        *lock(&self.state.behaviour)
    }

    /// Changes the behaviour; applies to existing requests too.
    pub fn set_behaviour(&self, behaviour: MobitelBehaviour) {
        *lock(&self.state.behaviour) = behaviour;
    }

    /// The customer approves the pop-up of `reference`.
    pub fn approve(&self, reference: &str) -> Result<(), WorldError> {
        self.answer(reference, true)
    }

    /// The customer declines the pop-up of `reference`.
    pub fn decline(&self, reference: &str) -> Result<(), WorldError> {
        self.answer(reference, false)
    }

    fn answer(&self, reference: &str, approve: bool) -> Result<(), WorldError> {
        let rules = self.state.rules();
        lock(&self.state.book).answer(reference, approve, Instant::now(), &rules)
    }

    /// Every kept charge request, oldest first.
    pub fn charge_requests(&self) -> Vec<ChargeView> {
        let rules = self.state.rules();
        lock(&self.state.book)
            .records(Instant::now(), &rules)
            .into_iter()
            .map(|r| ChargeView {
                reference: r.reference,
                receiver: r.receiver,
                amount: r.amount,
                state: r.state,
                confirms: r.confirms,
            })
            .collect()
    }

    /// The latest charge request for `receiver` (what the customer's phone shows).
    pub fn latest_for(&self, receiver: &str) -> Option<ChargeView> {
        self.charge_requests()
            .into_iter()
            .rev()
            .find(|c| c.receiver == receiver)
    }
}

/// The gateway's and Mobitel's error shapes.
struct Wire;

impl FaultWire for Wire {
    fn error(&self, status: StatusCode, retry_after_secs: Option<u64>) -> Response {
        let more = match status {
            StatusCode::TOO_MANY_REQUESTS => "Rate Limit exceeded",
            StatusCode::SERVICE_UNAVAILABLE => "The service is temporarily unavailable.",
            StatusCode::GATEWAY_TIMEOUT => "The backend did not respond in time.",
            _ => "An internal error occurred.",
        };
        let mut response = gateway_error(status, more);
        if let Some(secs) = retry_after_secs {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }

    fn refusal(&self, code: &str, message: &str) -> Response {
        caas(StatusCode::OK, None, message, code)
    }
}

fn gateway_error(status: StatusCode, more_information: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "httpCode": status.as_u16().to_string(),
            "httpMessage": status.canonical_reason().unwrap_or("Error"),
            "moreInformation": more_information,
        })),
    )
        .into_response()
}

fn caas(status: StatusCode, reference: Option<&str>, message: &str, code: &str) -> Response {
    (
        status,
        axum::Json(json!({ "reference": reference, "message": message, "status": code })),
    )
        .into_response()
}

fn invalid(message: &str) -> Response {
    caas(
        StatusCode::BAD_REQUEST,
        None,
        message,
        status::INVALID_REQUEST,
    )
}

/// Checks `x-ibm-client-id` like the gateway: missing and unknown are both 401. Returns
/// the refusal, if any.
fn deny_unauthenticated(state: &SimState, headers: &HeaderMap) -> Option<Response> {
    let Some(given) = headers.get(CLIENT_ID_HEADER) else {
        return Some(gateway_error(
            StatusCode::UNAUTHORIZED,
            "Cannot find valid subscription for the incoming API request.",
        ));
    };
    let known = state.client_id.expose_secret().as_bytes();
    if bool::from(given.as_bytes().ct_eq(known)) {
        None
    } else {
        Some(gateway_error(
            StatusCode::UNAUTHORIZED,
            "Invalid client id or secret.",
        ))
    }
}

/// Runs a handler body under the fault plan: faults before the effect answer at once,
/// faults after it spoil the answer `process` produced.
async fn with_faults(
    state: &SimState,
    conn: &ConnHandle,
    endpoint: &'static str,
    process: impl FnOnce() -> Response,
) -> Response {
    let fault: Option<Fault> = state.faults.next(endpoint);
    match fault {
        Some(f) if !f.after_effect() => answer_fault(&f, conn, None, &Wire).await,
        Some(f) => {
            let normal = process();
            answer_fault(&f, conn, Some(normal), &Wire).await
        }
        None => process(),
    }
}

async fn charge_request(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = deny_unauthenticated(&state, &headers) {
        return denied;
    }
    with_faults(&state, &conn, CHARGE_REQUEST_ENDPOINT, || {
        process_charge_request(&state, &body)
    })
    .await
}

fn process_charge_request(state: &SimState, body: &[u8]) -> Response {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return invalid("Request body must be a JSON object.");
    };
    let amount = match fields.get("amount") {
        Some(Value::String(a)) if parse_amount_cents(a).is_some_and(|c| c > 0) => a.clone(),
        _ => return invalid("amount must be a positive amount in rupees, as a string."),
    };
    let receiver = match fields.get("receiver") {
        Some(Value::String(r)) if is_sri_lankan_mobile(r) => r.clone(),
        _ => return invalid("receiver must be a mobile number 07XXXXXXXX."),
    };
    let rules = state.rules();
    let opened = lock(&state.book).request(&receiver, &amount, Instant::now(), &rules);
    match opened {
        Ok(reference) => {
            state.ledger.record(
                EffectKind::ChargeRequest,
                reference.clone(),
                Some(&receiver),
                json!({ "amount": amount }),
            );
            caas(
                StatusCode::OK,
                Some(&reference),
                "Charging request sent to the customer for approval.",
                status::SUCCESS,
            )
        }
        Err(wait) => {
            let mut response = caas(
                StatusCode::OK,
                None,
                "The previous request to this customer was not approved; re-initiate after 2 minutes.",
                status::TOO_SOON,
            );
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
    }
}

async fn confirm(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = deny_unauthenticated(&state, &headers) {
        return denied;
    }
    with_faults(&state, &conn, CONFIRM_ENDPOINT, || {
        process_confirm(&state, &body)
    })
    .await
}

fn process_confirm(state: &SimState, body: &[u8]) -> Response {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return invalid("Request body must be a JSON object.");
    };
    let reference = match fields.get("ref") {
        Some(Value::String(r)) if !r.is_empty() && r.len() <= 64 => r.clone(),
        _ => return invalid("ref must be the reference of a charging request."),
    };
    let rules = state.rules();
    let outcome = lock(&state.book).confirm(&reference, Instant::now(), &rules);
    let r = Some(reference.as_str());
    match outcome {
        Confirmed::Unknown => caas(
            StatusCode::NOT_FOUND,
            r,
            "Invalid reference.",
            status::UNKNOWN_REFERENCE,
        ),
        Confirmed::Pending => caas(
            StatusCode::OK,
            r,
            "Waiting for the customer's approval.",
            status::PENDING,
        ),
        Confirmed::Declined => caas(
            StatusCode::OK,
            r,
            "The customer declined the charge.",
            status::DECLINED,
        ),
        Confirmed::Expired => caas(
            StatusCode::OK,
            r,
            "The customer did not respond in time.",
            status::EXPIRED,
        ),
        Confirmed::Charged {
            first,
            receiver,
            amount,
        } => {
            if first {
                state.ledger.record(
                    EffectKind::Charge,
                    reference.clone(),
                    Some(&receiver),
                    json!({ "amount": amount }),
                );
            }
            caas(
                StatusCode::OK,
                r,
                "Transaction successful.",
                status::SUCCESS,
            )
        }
    }
}
