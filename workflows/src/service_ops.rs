//! J6. Service operations with event callbacks (`service-operations-v3.txt`).
//!
//! Create a service of a `service_type`, or update a service device, with a
//! `Request-Correlation-Id`; the provider answers `202 Accepted` and later
//! posts `success_event` or `error_event` carrying that id.
//!
//! | state | spec step | what it does |
//! |---|---|---|
//! | [`State::Send`] | "Create a service ... or update a service device with a `Request-Correlation-Id` (uuid) header → `202 Accepted`" | sends the request with the journey's correlation id (the same on every retry and re-send), registers the id so the event finds the journey |
//! | [`State::AwaitEvent`] | "wait for `success_event` or `error_event` ... with a timeout" | parks until the event signal; success completes, error fails with the provider's code and title; a timeout re-sends (the provider re-posts the outcome of a request it already has) |
//! | [`State::Unanswered`] | (timeout after the re-sends) | stops for a person: the provider accepted the request but never said how it ended |
//!
//! Errors: 400/401/403/406 are terminal (the journey fails with the
//! provider's message); 500 is retried with the same correlation id; a
//! timeout or 504 is retried too (re-sending with the same id is idempotent:
//! the provider answers 202 again and applies nothing twice).
//!
//! Business key: the service id when the caller names one, else the line's
//! MSISDN, else none (the correlation id is searchable too).

use std::sync::Arc;
use std::time::Duration;

use handover_adapters::service_ops::{
    CorrelationId, CreateService, DeviceCategory, DeviceDetails, DeviceId, ServiceDetails,
    ServiceId, ServiceOpsClient, ServiceType, UpdateServiceDevice,
};
use handover_engine::{
    BusinessKey, CorrelationKey, InvalidInput, NoCompensation, RetryPolicy, Start, StepCtx,
    StepError, StepInfo, Transition, Wait, Workflow,
};
use serde::{Deserialize, Serialize};

use crate::common::{msisdn, step_error};

/// The signal an event becomes (see the ingress).
pub const EVENT_SIGNAL: &str = "service-ops.event";
/// The correlation namespace of request ids.
pub const CORRELATION_NAMESPACE: &str = "service-ops.corr";
/// Re-sends after a timeout before a person is asked.
const MAX_RESENDS: u32 = 2;
/// How long to wait for the event by default.
const DEFAULT_EVENT_TIMEOUT: Duration = Duration::from_secs(600);

/// The service operations journey.
#[derive(Debug, Clone)]
pub struct ServiceChange {
    client: Arc<ServiceOpsClient>,
}

impl ServiceChange {
    /// The journey, calling the provider with `client`.
    pub fn new(client: Arc<ServiceOpsClient>) -> Self {
        Self { client }
    }
}

/// What to change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum ServiceChangeInput {
    /// Create a service.
    Create {
        /// One of multisim, security, tv, datasharing, mobile, applewatch, deviceinsurance.
        service_type: String,
        /// The id to give it (the provider assigns one if absent).
        #[serde(default)]
        service_id: Option<String>,
        /// The customer account.
        customer_id: String,
        /// The plan or product code.
        #[serde(default)]
        plan_code: Option<String>,
        /// The line the service attaches to.
        #[serde(default)]
        msisdn: Option<String>,
        /// How long to wait for the provider's event (seconds; default 600).
        #[serde(default)]
        event_timeout_secs: Option<u64>,
    },
    /// Update a service's device.
    UpdateDevice {
        /// The service's type.
        service_type: String,
        /// The service.
        service_id: String,
        /// The device.
        device_id: String,
        /// One of STB, SMARTWATCH, TABLET, ROUTER, PBX, SMARTPHONE, WIFI_EXTENDER, OTHER, SIM, eSIM.
        category: String,
        /// The new device's details.
        device: DeviceDetails,
        /// How long to wait for the provider's event (seconds; default 600).
        #[serde(default)]
        event_timeout_secs: Option<u64>,
    },
}

/// The request, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Create.
    Create {
        /// Type.
        service_type: ServiceType,
        /// Id.
        service_id: Option<ServiceId>,
        /// Details.
        details: ServiceDetails,
    },
    /// Update a device.
    UpdateDevice {
        /// Type.
        service_type: ServiceType,
        /// Service.
        service_id: ServiceId,
        /// Device.
        device_id: DeviceId,
        /// Category.
        category: DeviceCategory,
        /// Details.
        device: DeviceDetails,
    },
}

/// Where the journey is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum State {
    /// Send (or re-send) the request.
    Send {
        /// What to send.
        request: Request,
        /// Re-sends so far.
        resends: u32,
        /// The event timeout.
        timeout_secs: u64,
    },
    /// Wait for the provider's event.
    AwaitEvent {
        /// What was sent (to re-send on timeout).
        request: Request,
        /// Re-sends so far.
        resends: u32,
        /// The event timeout.
        timeout_secs: u64,
        /// The provider's reference from the 202, if any.
        reference: Option<String>,
    },
    /// No event after the re-sends.
    Unanswered {
        /// Re-sends made.
        resends: u32,
    },
}

/// How the change ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceChangeOutput {
    /// The service (assigned by the provider on create without an id).
    pub service_id: String,
    /// The event's code.
    pub code: String,
    /// The event's title.
    pub title: String,
}

/// The event signal's payload (built by the ingress from `serviceCallbackDTO`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPayload {
    /// `success_event` or `error_event`.
    pub kind: String,
    /// `code`.
    pub code: String,
    /// `title`.
    pub title: String,
    /// `service_id`.
    pub service_id: String,
}

fn bad(e: impl std::fmt::Display) -> InvalidInput {
    InvalidInput::new(e.to_string())
}

impl Workflow for ServiceChange {
    const NAME: &'static str = "service-ops.change";
    type Input = ServiceChangeInput;
    type State = State;
    type Output = ServiceChangeOutput;
    type Compensation = NoCompensation;

    fn start(&self, input: ServiceChangeInput) -> Result<Start<State>, InvalidInput> {
        let (request, timeout, key) = match input {
            ServiceChangeInput::Create {
                service_type,
                service_id,
                customer_id,
                plan_code,
                msisdn: line,
                event_timeout_secs,
            } => {
                let service_type = ServiceType::parse(&service_type).map_err(bad)?;
                let service_id = service_id.map(ServiceId::new).transpose().map_err(bad)?;
                let line = line.map(|m| msisdn("msisdn", &m)).transpose()?;
                if customer_id.trim().is_empty() {
                    return Err(InvalidInput::new("customer_id is required"));
                }
                let key = match (&service_id, &line) {
                    (Some(id), _) => Some(BusinessKey::order_id(id.as_str())),
                    (None, Some(m)) => Some(BusinessKey::msisdn(m)),
                    _ => None,
                };
                let details = ServiceDetails {
                    customer_id,
                    plan_code,
                    msisdn: line,
                    ..ServiceDetails::default()
                };
                (
                    Request::Create {
                        service_type,
                        service_id,
                        details,
                    },
                    event_timeout_secs,
                    key,
                )
            }
            ServiceChangeInput::UpdateDevice {
                service_type,
                service_id,
                device_id,
                category,
                device,
                event_timeout_secs,
            } => {
                let request = Request::UpdateDevice {
                    service_type: ServiceType::parse(&service_type).map_err(bad)?,
                    service_id: ServiceId::new(service_id).map_err(bad)?,
                    device_id: DeviceId::new(device_id).map_err(bad)?,
                    category: DeviceCategory::parse(&category).map_err(bad)?,
                    device,
                };
                let key = match &request {
                    Request::UpdateDevice { service_id, .. } => {
                        Some(BusinessKey::order_id(service_id.as_str()))
                    }
                    Request::Create { .. } => None,
                };
                (request, event_timeout_secs, key)
            }
        };
        let timeout_secs = timeout
            .unwrap_or(DEFAULT_EVENT_TIMEOUT.as_secs())
            .clamp(1, 7 * 86_400);
        let mut start = Start::new(State::Send {
            request,
            resends: 0,
            timeout_secs,
        });
        if let Some(key) = key {
            start = start.business_key(key);
        }
        Ok(start)
    }

    fn step_info(&self, state: &State) -> StepInfo {
        match state {
            State::Send { .. } => StepInfo::new("send-request").timeout(Duration::from_secs(30)),
            State::AwaitEvent { timeout_secs, .. } => StepInfo::new("await-event")
                .expected_within(Duration::from_secs(*timeout_secs) * (MAX_RESENDS + 1)),
            State::Unanswered { .. } => StepInfo::new("unanswered").retry(RetryPolicy::never()),
        }
    }

    async fn step(
        &self,
        state: State,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<State, ServiceChangeOutput>, StepError> {
        // One correlation id for the whole journey: re-sends reuse it.
        let correlation =
            CorrelationId::new(ctx.stable_key("request").as_uuid()).map_err(|e| step_error(&e))?;
        match state {
            State::Send {
                request,
                resends,
                timeout_secs,
            } => {
                let accepted = match &request {
                    Request::Create {
                        service_type,
                        service_id,
                        details,
                    } => {
                        self.client
                            .create_service(
                                &correlation,
                                &CreateService {
                                    service_type: *service_type,
                                    service_id: service_id.clone(),
                                    service_details: details.clone(),
                                },
                            )
                            .await
                    }
                    Request::UpdateDevice {
                        service_type,
                        service_id,
                        device_id,
                        category,
                        device,
                    } => {
                        self.client
                            .update_service_device(
                                &correlation,
                                &UpdateServiceDevice {
                                    service_type: *service_type,
                                    service_id: service_id.clone(),
                                    device_id: device_id.clone(),
                                    category: *category,
                                    new_service_device_details: device.clone(),
                                },
                            )
                            .await
                    }
                }
                .map_err(|e| step_error(&e))?;
                ctx.correlate(
                    CorrelationKey::new(CORRELATION_NAMESPACE, correlation.to_string())
                        .map_err(StepError::terminal)?,
                )?;
                if resends > 0 {
                    ctx.note(format!("re-sent (#{resends}) with the same correlation id"));
                }
                let until = ctx.after(Duration::from_secs(timeout_secs));
                let next_resends = resends + 1;
                let on_timeout = if next_resends > MAX_RESENDS {
                    State::Unanswered {
                        resends: MAX_RESENDS,
                    }
                } else {
                    State::Send {
                        request: request.clone(),
                        resends: next_resends,
                        timeout_secs,
                    }
                };
                Ok(Transition::wait(
                    State::AwaitEvent {
                        request,
                        resends,
                        timeout_secs,
                        reference: accepted.reference.map(|r| r.as_str().to_owned()),
                    },
                    Wait::for_signal(EVENT_SIGNAL)
                        .until(until)
                        .on_timeout(on_timeout),
                ))
            }
            State::AwaitEvent { .. } => {
                let Some(event) = ctx.signal_payload::<EventPayload>(EVENT_SIGNAL)? else {
                    return Err(StepError::terminal("await-event ran without its event"));
                };
                if event.kind == "success_event" {
                    Ok(Transition::complete(ServiceChangeOutput {
                        service_id: event.service_id,
                        code: event.code,
                        title: event.title,
                    }))
                } else {
                    Ok(Transition::fail(format!(
                        "the provider reported an error: {} ({})",
                        event.title, event.code
                    )))
                }
            }
            State::Unanswered { resends } => Err(StepError::retryable(format!(
                "the provider accepted the request but sent no success_event or error_event, \
                 even after {resends} re-sends; ask the provider about correlation id {correlation}"
            ))),
        }
    }
}
