//! The service operations (v3) simulator.
//!
//! Serves `POST /v3/services/{service_type}` and
//! `PUT /v3/services/{service_type}/{service_id}/devices/{device_id}` with the wire format and
//! the choices documented in [`crate::service_ops`], and posts `success_event` /
//! `error_event` to the configured callback base URL.
//!
//! Each request is checked in this order:
//!
//! 1. **Auth:** `Authorization: Bearer <token>`; missing or wrong is 401 (with
//!    `WWW-Authenticate: Bearer`). A valid token for a service type listed in
//!    [`ServiceOpsBehaviour::forbidden_service_types`] is 403 (`FORBIDDEN`).
//! 2. **Path:** an unknown `service_type`, or a `service_id` / `device_id` that is not a
//!    valid id, is 400 (`BAD_REQUEST`).
//! 3. **Content negotiation:** an `Accept` that excludes `application/json`, or a body not
//!    declared `application/json`, is 406 (`NOT_ACCEPTABLE`).
//! 4. **Faults:** the [`FaultPlan`] is consulted once per call (endpoint names
//!    [`CREATE_SERVICE_ENDPOINT`], [`UPDATE_SERVICE_DEVICE_ENDPOINT`]). Faults before the
//!    effect answer at once; the others let the request be admitted (ledger, event
//!    scheduled) and then spoil the answer. [`Fault::Refusal`](crate::sim::Fault::Refusal)
//!    answers a
//!    `genericErrorResponseDTO` whose status follows its code ([`refusal_status`]).
//! 5. **Validation:** `Request-Correlation-Id`, when present, must be a hyphenated UUID
//!    (400); when absent (the document makes it optional) the simulator generates one and
//!    echoes it, without any idempotency for the caller. The body must be the documented DTO
//!    with our detail fields, validated as the client validates them (400).
//! 6. **Admission** (see [`lifecycle`]): the first request under a correlation id is
//!    recorded in the ledger as [`EffectKind::ServiceChange`] keyed by the correlation id
//!    (subject: the service id) and its event is scheduled after
//!    [`ServiceOpsBehaviour::event_delay`]; the same request again answers 202 with the same
//!    reference and applies nothing (and, with
//!    [`ServiceOpsBehaviour::repost_outcome_on_repeat`], posts the outcome again if it was
//!    already reported); a different request under a used id is 400
//!    (`CORRELATION_ID_REUSED`).
//!
//! The answer is `202 Accepted` with `Request-Correlation-Id` echoed and the body
//! `{"external_reference": "SO-..."}`.
//!
//! Events go through the shared [`CallbackSender`] (its [`DeliveryPlan`] duplicates, delays,
//! reorders or loses them) to `{callback_base_url}/success_event` or `/error_event` with the
//! `Request-Correlation-Id` header. An event due at admission (`event_delay` zero) is handed
//! to the sender *before* the 202 is returned, so [`Delivery::before_answer`] really precedes
//! the answer. Without a callback base URL, events are settled but not posted (a warning is
//! logged).
//!
//! [`Delivery::before_answer`]: crate::sim::Delivery::before_answer

pub mod lifecycle;

use std::collections::BTreeSet;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use self::lifecycle::{Admission, ChangeBook, ChangeRecord, LifecycleRules, Requested, Submission};
pub use self::lifecycle::{Change, ChangeState, DueEvent, EventOutcome, WorldError};
use crate::config::ServiceOpsConfig;
use crate::error::Provider;
use crate::service_ops::{
    CORRELATION_HEADER, CREATE_SERVICE_PATH, CorrelationId, DeviceCategory, ServiceType,
    UPDATE_SERVICE_DEVICE_PATH, codes, event_url, parse_hyphenated, valid_id, wire,
};
use crate::sim::callback::{Callback, CallbackSender, CallbackSettings, DeliveryPlan};
use crate::sim::fault::{FaultControl, FaultPlan, FaultWire, answer_fault};
use crate::sim::ledger::{EffectKind, Ledger};
use crate::sim::server::{ConnHandle, RequestLog, RunningServer, lock, serve};

/// Fault-plan name of the create endpoint.
pub const CREATE_SERVICE_ENDPOINT: &str = "create_service";
/// Fault-plan name of the device update endpoint.
pub const UPDATE_SERVICE_DEVICE_ENDPOINT: &str = "update_service_device";

/// The token the simulator accepts unless configured otherwise.
pub const DEFAULT_API_TOKEN: &str = "handover-sim-service-ops-token";

/// How the simulated provider behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceOpsBehaviour {
    /// What it reports for accepted requests. Default [`EventOutcome::Success`].
    pub outcome: EventOutcome,
    /// How long after acceptance the event is posted. Default 1 s.
    pub event_delay: Duration,
    /// Service types the token is not entitled to (403). Default none.
    pub forbidden_service_types: BTreeSet<ServiceType>,
    /// Whether a repeat of a request whose outcome was already reported posts that outcome
    /// again (an assumption, see [`crate::service_ops`]). Default true.
    pub repost_outcome_on_repeat: bool,
    /// Most requests remembered (oldest forgotten first; a forgotten id counts as new).
    /// Default 10 000.
    pub max_changes: usize,
    /// Most services held. Default 10 000.
    pub max_services: usize,
}

impl Default for ServiceOpsBehaviour {
    fn default() -> Self {
        Self {
            outcome: EventOutcome::Success,
            event_delay: Duration::from_secs(1),
            forbidden_service_types: BTreeSet::new(),
            repost_outcome_on_repeat: true,
            max_changes: 10_000,
            max_services: 10_000,
        }
    }
}

impl ServiceOpsBehaviour {
    /// This behaviour reporting `outcome`.
    pub fn with_outcome(mut self, outcome: EventOutcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// This behaviour posting events `delay` after acceptance.
    pub fn with_event_delay(mut self, delay: Duration) -> Self {
        self.event_delay = delay;
        self
    }

    /// This behaviour refusing `service_type` with 403.
    pub fn forbidding(mut self, service_type: ServiceType) -> Self {
        self.forbidden_service_types.insert(service_type);
        self
    }

    /// This behaviour with [`Self::repost_outcome_on_repeat`] set.
    pub fn with_repost_on_repeat(mut self, repost: bool) -> Self {
        self.repost_outcome_on_repeat = repost;
        self
    }

    fn rules(&self) -> LifecycleRules {
        LifecycleRules {
            outcome: self.outcome.clone(),
            event_delay: self.event_delay,
            max_changes: self.max_changes,
            max_services: self.max_services,
        }
    }
}

/// How to start a [`ServiceOpsSim`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceOpsSimConfig {
    /// Loopback port; `None` picks a free one.
    pub port: Option<u16>,
    /// Seed for references, assigned service ids and generated correlation ids.
    pub seed: u64,
    /// The token accepted as `Authorization: Bearer <token>`.
    pub api_token: SecretString,
    /// Where events are posted (`{base}/success_event`, `{base}/error_event`); `None` posts
    /// nothing until [`ServiceOpsSim::set_callback_base_url`] is called.
    pub callback_base_url: Option<Url>,
    /// Behaviour knobs.
    pub behaviour: ServiceOpsBehaviour,
    /// Faults to inject.
    pub faults: FaultPlan,
    /// How events travel.
    pub delivery: DeliveryPlan,
    /// Event delivery timing and retries.
    pub callback_settings: CallbackSettings,
}

impl Default for ServiceOpsSimConfig {
    fn default() -> Self {
        Self {
            port: None,
            seed: 0,
            api_token: SecretString::from(DEFAULT_API_TOKEN),
            callback_base_url: None,
            behaviour: ServiceOpsBehaviour::default(),
            faults: FaultPlan::default(),
            delivery: DeliveryPlan::default(),
            callback_settings: CallbackSettings::default(),
        }
    }
}

impl ServiceOpsSimConfig {
    /// This configuration with this behaviour.
    pub fn with_behaviour(mut self, behaviour: ServiceOpsBehaviour) -> Self {
        self.behaviour = behaviour;
        self
    }

    /// This configuration posting events under `url`.
    pub fn with_callback_base_url(mut self, url: Url) -> Self {
        self.callback_base_url = Some(url);
        self
    }

    /// This configuration accepting this token.
    pub fn with_api_token(mut self, token: SecretString) -> Self {
        self.api_token = token;
        self
    }

    /// This configuration on this port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// This configuration with this seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// This configuration with this fault plan.
    pub fn with_faults(mut self, faults: FaultPlan) -> Self {
        self.faults = faults;
        self
    }

    /// This configuration delivering events by this plan.
    pub fn with_delivery(mut self, delivery: DeliveryPlan) -> Self {
        self.delivery = delivery;
        self
    }

    /// This configuration with these delivery settings ([`CallbackSettings::fast`] in tests).
    pub fn with_callback_settings(mut self, settings: CallbackSettings) -> Self {
        self.callback_settings = settings;
        self
    }
}

/// A request as the simulator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeView {
    /// Its `Request-Correlation-Id`.
    pub correlation_id: CorrelationId,
    /// The external reference returned with the 202.
    pub reference: String,
    /// What it asks for (with the assigned service id on a create without one).
    pub change: Change,
    /// Where it stands.
    pub state: ChangeState,
    /// Its event, once settled.
    pub event: Option<DueEvent>,
    /// How many times it was submitted (1 + repeats).
    pub submissions: u32,
}

impl From<ChangeRecord> for ChangeView {
    fn from(r: ChangeRecord) -> Self {
        Self {
            correlation_id: r.correlation_id,
            reference: r.reference,
            change: r.change,
            state: r.state,
            event: r.event,
            submissions: r.submissions,
        }
    }
}

/// A service the simulated provider holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceView {
    /// Its type.
    pub service_type: ServiceType,
    /// Its id.
    pub service_id: String,
    /// Its devices and their categories.
    pub devices: Vec<(String, DeviceCategory)>,
}

struct SimState {
    api_token: SecretString,
    ledger: Ledger,
    faults: FaultControl,
    book: Mutex<ChangeBook>,
    behaviour: Mutex<ServiceOpsBehaviour>,
    callback_base_url: Mutex<Option<Url>>,
    sender: CallbackSender,
    /// Wakes the event pump when a new event is scheduled.
    wake: Notify,
}

impl SimState {
    fn behaviour(&self) -> ServiceOpsBehaviour {
        lock(&self.behaviour).clone()
    }
}

/// A running service operations simulator. Stops (server and event pump) when dropped.
pub struct ServiceOpsSim {
    server: RunningServer,
    pump: JoinHandle<()>,
    state: Arc<SimState>,
    requests: RequestLog,
}

impl std::fmt::Debug for ServiceOpsSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceOpsSim")
            .field("base_url", &self.server.base_url().as_str())
            .finish_non_exhaustive()
    }
}

impl Drop for ServiceOpsSim {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

impl ServiceOpsSim {
    /// Starts the simulator on loopback.
    pub async fn start(config: ServiceOpsSimConfig) -> io::Result<Self> {
        let sender = CallbackSender::new(config.callback_settings, config.delivery)?;
        let state = Arc::new(SimState {
            api_token: config.api_token,
            ledger: Ledger::new(Provider::ServiceOps),
            faults: FaultControl::new(config.faults),
            book: Mutex::new(ChangeBook::new(config.seed)),
            behaviour: Mutex::new(config.behaviour),
            callback_base_url: Mutex::new(config.callback_base_url),
            sender,
            wake: Notify::new(),
        });
        let router = Router::new()
            .route(CREATE_SERVICE_PATH, post(create_service))
            .route(UPDATE_SERVICE_DEVICE_PATH, put(update_service_device))
            .with_state(state.clone());
        let requests = RequestLog::default();
        let server = serve(config.port, router, requests.clone()).await?;
        let pump = tokio::spawn(pump_events(state.clone()));
        tracing::info!(base_url = %server.base_url(), "service operations simulator listening");
        Ok(Self {
            server,
            pump,
            state,
            requests,
        })
    }

    /// Where the simulator listens, e.g. `http://127.0.0.1:41234/`.
    pub fn base_url(&self) -> &Url {
        self.server.base_url()
    }

    /// A client configuration pointing at this simulator with its token.
    pub fn client_config(&self) -> ServiceOpsConfig {
        ServiceOpsConfig::new(self.base_url().clone(), self.state.api_token.clone())
    }

    /// The effects applied so far ([`EffectKind::ServiceChange`] per correlation id).
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

    /// The event sender: its delivery attempts ([`CallbackSender::sent`]) and plan
    /// ([`CallbackSender::set_plan`]).
    pub fn callbacks(&self) -> &CallbackSender {
        &self.state.sender
    }

    /// The current behaviour.
    pub fn behaviour(&self) -> ServiceOpsBehaviour {
        self.state.behaviour()
    }

    /// Changes the behaviour; applies to requests admitted from now on.
    pub fn set_behaviour(&self, behaviour: ServiceOpsBehaviour) {
        *lock(&self.state.behaviour) = behaviour;
    }

    /// Where events are posted.
    pub fn callback_base_url(&self) -> Option<Url> {
        lock(&self.state.callback_base_url).clone()
    }

    /// Posts events under `url` from now on (the receiver may start after the simulator).
    pub fn set_callback_base_url(&self, url: Url) {
        *lock(&self.state.callback_base_url) = Some(url);
    }

    /// World: a service that already exists at the provider (created by another channel),
    /// so that device updates of it succeed.
    pub fn add_service(
        &self,
        service_type: ServiceType,
        service_id: &str,
    ) -> Result<(), WorldError> {
        let rules = self.state.behaviour().rules();
        lock(&self.state.book).add_service(service_type, service_id, &rules)
    }

    /// World: the back office carries out a request that is still processing or silent now,
    /// under the business rules, and the event is posted.
    pub async fn complete(&self, correlation_id: CorrelationId) -> Result<DueEvent, WorldError> {
        self.settle(correlation_id, &EventOutcome::Success).await
    }

    /// World: the back office fails a request that is still processing or silent, and
    /// `error_event` is posted with `code` and `title`.
    pub async fn fail(
        &self,
        correlation_id: CorrelationId,
        code: &str,
        title: &str,
    ) -> Result<DueEvent, WorldError> {
        self.settle(correlation_id, &EventOutcome::error(code, title))
            .await
    }

    async fn settle(
        &self,
        correlation_id: CorrelationId,
        outcome: &EventOutcome,
    ) -> Result<DueEvent, WorldError> {
        let rules = self.state.behaviour().rules();
        let event = lock(&self.state.book)
            .settle_now(correlation_id, outcome, &rules)?
            .ok_or(WorldError::UnknownRequest)?;
        emit(&self.state, &event).await;
        Ok(event)
    }

    /// Every remembered request, oldest first.
    pub fn changes(&self) -> Vec<ChangeView> {
        lock(&self.state.book)
            .changes()
            .into_iter()
            .map(ChangeView::from)
            .collect()
    }

    /// The request with this correlation id.
    pub fn change(&self, correlation_id: CorrelationId) -> Option<ChangeView> {
        lock(&self.state.book)
            .change(correlation_id)
            .map(ChangeView::from)
    }

    /// Every service held, in creation order.
    pub fn services(&self) -> Vec<ServiceView> {
        lock(&self.state.book)
            .services()
            .into_iter()
            .map(|(service_type, service_id, record)| ServiceView {
                service_type,
                service_id,
                devices: record.devices.into_iter().collect(),
            })
            .collect()
    }
}

/// Posts events as they fall due, until the simulator is dropped.
async fn pump_events(state: Arc<SimState>) {
    loop {
        let rules = state.behaviour().rules();
        let (events, next) = {
            let mut book = lock(&state.book);
            let events = book.due(Instant::now(), &rules);
            (events, book.next_due())
        };
        for event in &events {
            emit(&state, event).await;
        }
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = state.wake.notified() => {}
                }
            }
            None => state.wake.notified().await,
        }
    }
}

/// Hands one event to the sender (inline when its plan says "before the answer").
async fn emit(state: &SimState, event: &DueEvent) {
    let Some(base) = lock(&state.callback_base_url).clone() else {
        tracing::warn!(kind = %event.kind, "no callback base URL configured: event not posted");
        return;
    };
    let body = wire::ServiceCallbackDto {
        code: event.code.clone(),
        title: event.title.clone(),
        service_id: event.service_id.clone(),
    };
    let body = serde_json::to_value(body).unwrap_or(Value::Null);
    let correlation = event.correlation_id.to_string();
    let header =
        HeaderValue::from_str(&correlation).expect("a hyphenated UUID is a valid header value");
    let callback = Callback::post_json(
        event.kind.wire_name(),
        correlation,
        event_url(&base, event.kind),
        body,
    )
    .header(HeaderName::from_static(CORRELATION_HEADER), header);
    state.sender.emit(callback).await;
}

// ---------------------------------------------------------------------------------------
// Wire shapes
// ---------------------------------------------------------------------------------------

/// A `genericErrorResponseDTO` answer.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = wire::GenericErrorResponseDto {
        code: Some(code.to_owned()),
        message: Some(message.to_owned()),
    };
    (status, axum::Json(body)).into_response()
}

fn bad_request(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message)
}

/// The status of a [`Fault::Refusal`](crate::sim::Fault::Refusal) answer, by its code: `UNAUTHORIZED...` 401,
/// `FORBIDDEN...` 403, `NOT_ACCEPTABLE...` 406, anything else 400.
pub fn refusal_status(code: &str) -> StatusCode {
    if code.starts_with(codes::UNAUTHORIZED) {
        StatusCode::UNAUTHORIZED
    } else if code.starts_with(codes::FORBIDDEN) {
        StatusCode::FORBIDDEN
    } else if code.starts_with(codes::NOT_ACCEPTABLE) {
        StatusCode::NOT_ACCEPTABLE
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// The provider's error shapes for injected faults.
struct Wire;

impl FaultWire for Wire {
    fn error(&self, status: StatusCode, retry_after_secs: Option<u64>) -> Response {
        let (code, message) = match status {
            StatusCode::TOO_MANY_REQUESTS => ("TOO_MANY_REQUESTS", "Rate limit exceeded"),
            StatusCode::BAD_GATEWAY => ("BAD_GATEWAY", "Bad gateway"),
            StatusCode::SERVICE_UNAVAILABLE => (
                "SERVICE_UNAVAILABLE",
                "The service is temporarily unavailable",
            ),
            StatusCode::GATEWAY_TIMEOUT => {
                ("GATEWAY_TIMEOUT", "The backend did not answer in time")
            }
            _ => (codes::INTERNAL_ERROR, "Internal Server Error"),
        };
        let mut response = error_response(status, code, message);
        if let Some(secs) = retry_after_secs {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }

    fn refusal(&self, code: &str, message: &str) -> Response {
        error_response(refusal_status(code), code, message)
    }
}

// ---------------------------------------------------------------------------------------
// Checks before the fault plan
// ---------------------------------------------------------------------------------------

fn deny_unauthenticated(state: &SimState, headers: &HeaderMap) -> Option<Response> {
    let unauthorized = |message: &str, challenge: &'static str| {
        let mut response = error_response(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, message);
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        response
    };
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Some(unauthorized("Missing bearer token", "Bearer"));
    };
    let token = value.to_str().ok().and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let known = state.api_token.expose_secret().as_bytes();
    match token {
        Some(token) if bool::from(token.as_bytes().ct_eq(known)) => None,
        _ => Some(unauthorized(
            "Invalid bearer token",
            "Bearer error=\"invalid_token\"",
        )),
    }
}

fn deny_forbidden(state: &SimState, service_type: ServiceType) -> Option<Response> {
    lock(&state.behaviour)
        .forbidden_service_types
        .contains(&service_type)
        .then(|| {
            error_response(
                StatusCode::FORBIDDEN,
                codes::FORBIDDEN,
                &format!("This account is not entitled to {service_type} services"),
            )
        })
}

/// 406 when `Accept` excludes JSON or the body is not declared JSON.
fn deny_not_acceptable(headers: &HeaderMap) -> Option<Response> {
    let media = |v: &str| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    let accepts_json = headers.get_all(ACCEPT).iter().all(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(media)
                .any(|m| matches!(m.as_str(), "application/json" | "application/*" | "*/*"))
        })
    });
    if !accepts_json {
        return Some(error_response(
            StatusCode::NOT_ACCEPTABLE,
            codes::NOT_ACCEPTABLE,
            "Only application/json answers are available",
        ));
    }
    let declared_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| media(v) == "application/json");
    if !declared_json {
        return Some(error_response(
            StatusCode::NOT_ACCEPTABLE,
            codes::NOT_ACCEPTABLE,
            "The body must be application/json",
        ));
    }
    None
}

fn unknown_service_type() -> Response {
    bad_request(&format!(
        "service_type must be one of {}",
        ServiceType::ALL.map(ServiceType::as_str).join(", ")
    ))
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

/// Runs `process` under the fault plan: faults before the effect answer without polling it,
/// faults after it spoil the answer it produced.
async fn with_faults(
    state: &SimState,
    conn: &ConnHandle,
    endpoint: &'static str,
    process: impl Future<Output = Response>,
) -> Response {
    match state.faults.next(endpoint) {
        Some(f) if !f.after_effect() => answer_fault(&f, conn, None, &Wire).await,
        Some(f) => {
            let normal = process.await;
            answer_fault(&f, conn, Some(normal), &Wire).await
        }
        None => process.await,
    }
}

async fn create_service(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = deny_unauthenticated(&state, &headers) {
        return denied;
    }
    let Ok(Path(raw_type)) = path else {
        return bad_request("The path is not valid");
    };
    let Some(service_type) = ServiceType::from_wire(&raw_type) else {
        return unknown_service_type();
    };
    if let Some(denied) =
        deny_forbidden(&state, service_type).or_else(|| deny_not_acceptable(&headers))
    {
        return denied;
    }
    with_faults(
        &state,
        &conn,
        CREATE_SERVICE_ENDPOINT,
        process_create(&state, service_type, &headers, &body),
    )
    .await
}

async fn process_create(
    state: &SimState,
    service_type: ServiceType,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let (value, dto) = match parse_body::<wire::CreateServiceRequestDto>(body) {
        Ok(parsed) => parsed,
        Err(problem) => return bad_request(&problem),
    };
    if let Some(id) = &dto.service_id
        && !valid_id(id)
    {
        return bad_request("service_id must be 1 to 128 characters without whitespace");
    }
    if let Some(problem) = dto.service_details.problem() {
        return bad_request(&problem);
    }
    let requested = Requested::Create {
        service_type,
        service_id: dto.service_id,
    };
    admit(state, headers, requested, value).await
}

async fn update_service_device(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = deny_unauthenticated(&state, &headers) {
        return denied;
    }
    let Ok(Path((raw_type, service_id, device_id))) = path else {
        return bad_request("The path is not valid");
    };
    let Some(service_type) = ServiceType::from_wire(&raw_type) else {
        return unknown_service_type();
    };
    if !valid_id(&service_id) || !valid_id(&device_id) {
        return bad_request(
            "service_id and device_id must be 1 to 128 characters without whitespace",
        );
    }
    if let Some(denied) =
        deny_forbidden(&state, service_type).or_else(|| deny_not_acceptable(&headers))
    {
        return denied;
    }
    with_faults(
        &state,
        &conn,
        UPDATE_SERVICE_DEVICE_ENDPOINT,
        process_update(&state, service_type, service_id, device_id, &headers, &body),
    )
    .await
}

async fn process_update(
    state: &SimState,
    service_type: ServiceType,
    service_id: String,
    device_id: String,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let (value, dto) = match parse_body::<wire::UpdateServiceDeviceRequestDto>(body) {
        Ok(parsed) => parsed,
        Err(problem) => return bad_request(&problem),
    };
    if let Some(problem) = dto.new_service_device_details.problem() {
        return bad_request(&problem);
    }
    let requested = Requested::UpdateDevice {
        service_type,
        service_id,
        device_id,
        category: dto.category,
    };
    admit(state, headers, requested, value).await
}

/// Parses a JSON object body into the DTO; the error says what is wrong without echoing
/// values.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<(Value, T), String> {
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Err("The body must be a JSON object".to_owned()),
    };
    let dto = serde_json::from_value::<T>(value.clone())
        .map_err(|e| crate::redact::scrub_parser_message(&e.to_string()))?;
    Ok((value, dto))
}

/// Validates the correlation header, admits the request, and answers.
async fn admit(
    state: &SimState,
    headers: &HeaderMap,
    requested: Requested,
    body: Value,
) -> Response {
    let behaviour = state.behaviour();
    let rules = behaviour.rules();
    let header = headers.get(CORRELATION_HEADER).map(|v| v.to_str());
    let (admission, due) = {
        let mut book = lock(&state.book);
        let correlation_id = match header {
            None => book.generate_correlation_id(),
            Some(Ok(text)) => {
                match parse_hyphenated(text.trim()).and_then(|id| CorrelationId::new(id).ok()) {
                    Some(id) => id,
                    None => {
                        return bad_request(
                            "Request-Correlation-Id must be a UUID in the hyphenated form",
                        );
                    }
                }
            }
            Some(Err(_)) => {
                return bad_request("Request-Correlation-Id must be a UUID in the hyphenated form");
            }
        };
        let now = Instant::now();
        let admission = book.submit(
            Submission {
                correlation_id,
                requested,
                body,
            },
            now,
            &rules,
        );
        // Settled under the same lock, so an event due at once is this handler's to post
        // (before the answer, when the delivery plan says so), not the pump's.
        let due = book.due(now, &rules);
        ((correlation_id, admission), due)
    };
    let (correlation_id, admission) = admission;
    let reference = match admission {
        Admission::Reused => {
            return error_response(
                StatusCode::BAD_REQUEST,
                codes::CORRELATION_ID_REUSED,
                "This Request-Correlation-Id was already used for a different request",
            );
        }
        Admission::New { reference, change } => {
            state.ledger.record(
                EffectKind::ServiceChange,
                correlation_id.to_string(),
                Some(change.service_id()),
                change_detail(&change),
            );
            state.wake.notify_one();
            reference
        }
        Admission::Repeat { reference, settled } => {
            if let Some(event) = settled.filter(|_| behaviour.repost_outcome_on_repeat) {
                emit(state, &event).await;
            }
            reference
        }
    };
    for event in &due {
        emit(state, event).await;
    }
    let mut response = (
        StatusCode::ACCEPTED,
        axum::Json(wire::AcceptedDto {
            external_reference: Some(reference),
        }),
    )
        .into_response();
    response.headers_mut().insert(
        HeaderName::from_static(CORRELATION_HEADER),
        HeaderValue::from_str(&correlation_id.to_string())
            .expect("a hyphenated UUID is a valid header value"),
    );
    response
}

fn change_detail(change: &Change) -> Value {
    match change {
        Change::Create { service_type, .. } => {
            json!({ "operation": "create_service", "service_type": service_type })
        }
        Change::UpdateDevice {
            service_type,
            device_id,
            category,
            ..
        } => json!({
            "operation": "update_service_device",
            "service_type": service_type,
            "device_id": device_id,
            "category": category,
        }),
    }
}
