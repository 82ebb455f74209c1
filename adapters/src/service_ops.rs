//! Service operations (v3): create a service, update a service device, and the
//! `success_event` / `error_event` callbacks that report how the request ended.
//!
//! Source: `service-operations-v3.txt` ("V3 / Service Operations"). The flow (journey J6):
//! send the request with our `Request-Correlation-Id`, get `202 Accepted`, then wait (with a
//! timeout) for the provider to post `success_event` or `error_event` carrying the same
//! `Request-Correlation-Id`.
//!
//! # Endpoints
//!
//! The document gives parameters, DTO names and status codes, but **no paths and no methods**
//! (and blank request examples). The paths and methods below are our choice, shaped as REST
//! resources from the document's parameters (`service_type` in the path of both operations;
//! `service_id` and `device_id` in the path of the update).
//!
//! | Client call | Endpoint (our choice) | Seed section | Effect |
//! |---|---|---|---|
//! | [`ServiceOpsClient::create_service`] | `POST /v3/services/{service_type}` | "Service Operations", first operation: parameters `Request-Correlation-Id`, `service_type`, body `createServiceRequestDTO` ("Create a new service") | the provider accepts the request (202) and creates the service asynchronously |
//! | [`ServiceOpsClient::update_service_device`] | `PUT /v3/services/{service_type}/{service_id}/devices/{device_id}` | "Service Operations", second operation: parameters `service_type`, `service_id` ("Service identifier whose device will be updated"), `device_id`, body `updateServiceDeviceRequestDTO` ("Update an existing service device") | the provider accepts (202) and updates the device asynchronously |
//! | inbound: [`parse_event`] with [`EventKind::Success`] | `POST {callback_base}/success_event` | "success_event" (under each operation): header `Request-Correlation-Id`, body `serviceCallbackDTO` | none: reports the outcome |
//! | inbound: [`parse_event`] with [`EventKind::Error`] | `POST {callback_base}/error_event` | "error_event" (under each operation): same header and body | none: reports the outcome |
//!
//! `POST` for create because the provider may assign the service id (`service_id` is
//! optional in `createServiceRequestDTO`); `PUT` for the update because it replaces the
//! device's details under an identifier we name. `{callback_base}` is the base URL we
//! register with the provider out of band (the document does not say how); the provider
//! posts each event to it with the event's name appended as the last path segment
//! ([`event_url`]).
//!
//! # Wire format: what the document says and what we chose
//!
//! - **Headers.** Every call carries `Request-Correlation-Id` (documented, `string(uuid)`,
//!   optional in the document; we always send it): a UUID in the hyphenated form, chosen by
//!   the caller ([`CorrelationId`]), the journey's idempotency key for the step. Also
//!   `Accept: application/json` and `Content-Type: application/json`.
//! - **Authentication.** The document lists 401 ("Unauthorized request") and 403 ("Forbidden
//!   resource") but no scheme. We chose **`Authorization: Bearer <api_token>`** with a static
//!   token issued by the provider (`[service_ops] api_token`, a secret). 401: missing or
//!   wrong token; 403: a valid token not entitled to the resource (for instance a service
//!   type the account is not subscribed to).
//! - **`service_type`** ("Enumerated Values"): one of `multisim`, `security`, `tv`,
//!   `datasharing`, `mobile`, `applewatch`, `deviceinsurance`, lowercase as listed
//!   ([`ServiceType`]). Anything else is refused before sending.
//! - **`createServiceRequestDTO`**: `service_id` (optional string) and `service_details`
//!   (`serviceDetailsDTO`, required), as documented. The document does not define
//!   `serviceDetailsDTO`; our fields are in [`ServiceDetails`]: `customer_id` (required),
//!   `plan_code`, `msisdn` (optional), plus any extra provider fields in an open map.
//! - **`updateServiceDeviceRequestDTO`**: `category` (required, one of `STB`, `SMARTWATCH`,
//!   `TABLET`, `ROUTER`, `PBX`, `SMARTPHONE`, `WIFI_EXTENDER`, `OTHER`, `SIM`, `eSIM`, exactly
//!   as listed, note the lowercase `e` of `eSIM`; [`DeviceCategory`]) and
//!   `new_service_device_details` (`deviceDetailsDTO`, required). `deviceDetailsDTO` is not
//!   defined either; ours is [`DeviceDetails`]: `model`, `serial_number`, `imei`, `iccid`
//!   (all optional, at least one field present) plus extras.
//! - **Ids in the path** (`service_id`, `device_id`): 1 to [`MAX_ID_CHARS`] characters, no
//!   whitespace or control characters, not `.` or `..`; percent-encoded as path segments.
//! - **`202 Accepted`**: "returned the request external reference identifier", schema
//!   "None". We read an optional JSON body `{"external_reference": "..."}` and an optional
//!   echo of `Request-Correlation-Id`. An empty or unreadable body is still an acceptance
//!   (the reference is then `None`); an echo naming *another* correlation id is a
//!   [`ProviderError::Protocol`] with `effect_possible`. Any other 2xx is unexpected and
//!   treated the same way (accepted or not, we cannot tell: re-send with the same id).
//! - **`genericErrorResponseDTO`** (400, 401, 403, 406, 500; not defined in the document):
//!   `{"code": "...", "message": "..."}` ([`wire::GenericErrorResponseDto`]). The message,
//!   sanitized, goes into the error, followed by `(code ...)`.
//! - **406 Not Acceptable** ("Not Acceptable"): answered when `Accept` excludes
//!   `application/json`, and (our choice, the document lists no 415) when the body is not
//!   declared `application/json`.
//! - **`serviceCallbackDTO`**: `code`, `title`, `service_id`, all required strings, as
//!   documented. The document gives no codes; the simulator uses the ones in [`codes`]. The
//!   journey must branch on the **event kind** (`success_event` or `error_event`), not on the
//!   code, which is for people.
//! - **Event `Request-Correlation-Id`**: documented as `string` ("Workflow Id"); since the
//!   provider echoes the id we sent, we require the same hyphenated UUID form.
//!
//! # Error classes
//!
//! | Answer | Error | Class |
//! |---|---|---|
//! | 202 | `Ok(`[`Accepted`]`)` | - |
//! | 400, 406 | [`ProviderError::Rejected`] | terminal |
//! | 401, 403 | [`ProviderError::Auth`] | terminal |
//! | 500, 502, 503 | [`ProviderError::Unavailable`] | retryable: re-send with the **same** correlation id |
//! | 504, timeout, connection lost | [`ProviderError::OutcomeUnknown`] | reconcile (below) |
//! | invalid input (before sending) | [`ProviderError::Rejected`] with `status: None` | terminal |
//!
//! # Retrying and reconciling
//!
//! Both calls are **effectful** and carry the caller's [`CorrelationId`], which stays the
//! same across retries and crashes of the step ([`CorrelationId::for_step`] derives it from
//! the journey and step). The provider offers no status query, so there is nothing to query
//! after an `OutcomeUnknown`; instead:
//!
//! - Re-sending with the **same** correlation id is idempotent: the provider (and the
//!   simulator) answers `202` again, with the same external reference, and applies nothing a
//!   second time. So after a 500, a 504, a timeout or a lost connection the journey simply
//!   re-sends.
//! - Re-using a correlation id for a *different* request (other path or body) is refused with
//!   400 (`CORRELATION_ID_REUSED`): a new attempt needs a new step name or attempt number in
//!   [`CorrelationId::for_step`].
//! - Events may come before the 202, more than once, out of order, or never. De-duplicate by
//!   [`ServiceEvent::dedupe_key`]. If no event arrives within the journey's timeout, re-send
//!   the request with the same id: a repeat of a request whose outcome was already reported
//!   makes the provider post that outcome again (same dedupe key). This re-post is an
//!   **assumption** the document does not state (the simulator implements it, and it can be
//!   switched off); verify it against the real service before go-live, and otherwise mark the
//!   journey as needing attention after the timeout.
//!
//! These are choices the document leaves open; the simulator ([`crate::sim::service_ops`])
//! implements exactly the same ones.

mod events;
mod model;

use std::fmt;

use http::header::{ACCEPT, AUTHORIZATION, HeaderName};
use http::{HeaderValue, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use self::events::{
    ERROR_EVENT_PATH, EventDedupeKey, EventError, EventKind, MAX_EVENT_BYTES, MAX_EVENT_CODE_CHARS,
    MAX_EVENT_TITLE_CHARS, SUCCESS_EVENT_PATH, ServiceEvent, event_url, parse_event,
};
pub use self::model::{
    CorrelationId, DeviceCategory, DeviceDetails, DeviceId, ExternalReference, ServiceDetails,
    ServiceId, ServiceType,
};
pub(crate) use self::model::{parse_hyphenated, valid_id};
use crate::config::ServiceOpsConfig;
use crate::error::{Operation, Provider, ProviderError};
use crate::http::{Effect, HttpClient, HttpResponse, ProviderRequest};
use crate::redact::sanitize_message;

/// Path template of the create call (our choice; the document gives no path).
pub const CREATE_SERVICE_PATH: &str = "/v3/services/{service_type}";
/// Path template of the device update (our choice; the document gives no path).
pub const UPDATE_SERVICE_DEVICE_PATH: &str =
    "/v3/services/{service_type}/{service_id}/devices/{device_id}";
/// The correlation header, on calls and on events (lower-case, as HTTP/2 sends it; header
/// names are case-insensitive).
pub const CORRELATION_HEADER: &str = "request-correlation-id";

/// Operation name of [`ServiceOpsClient::create_service`].
pub const CREATE_SERVICE: Operation = Operation::new("service_ops.create_service");
/// Operation name of [`ServiceOpsClient::update_service_device`].
pub const UPDATE_SERVICE_DEVICE: Operation = Operation::new("service_ops.update_service_device");
/// Operation named by input values rejected while parsing them, before any call.
pub const INPUT: Operation = Operation::new("service_ops.input");

/// Longest `service_id` or `device_id`, in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest free-text detail field (`customer_id`, `plan_code`, `model`, `serial_number`).
pub const MAX_DETAIL_CHARS: usize = 128;
/// Most extra fields in a details object.
pub const MAX_EXTRA_FIELDS: usize = 32;
/// Longest external reference accepted from a 202 answer.
pub const MAX_REFERENCE_CHARS: usize = 128;

/// The codes of `genericErrorResponseDTO` and `serviceCallbackDTO`. The document defines
/// none; these are ours, shared by the client's docs and the simulator.
pub mod codes {
    /// `success_event` after a create.
    pub const SERVICE_CREATED: &str = "SERVICE_CREATED";
    /// `success_event` after a device update.
    pub const SERVICE_DEVICE_UPDATED: &str = "SERVICE_DEVICE_UPDATED";
    /// `error_event`: the service to update does not exist (for this service type).
    pub const SERVICE_NOT_FOUND: &str = "SERVICE_NOT_FOUND";
    /// `error_event`: a create named a `service_id` that already exists.
    pub const SERVICE_ALREADY_EXISTS: &str = "SERVICE_ALREADY_EXISTS";
    /// 400: the request is invalid (body, path or header).
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// 400: the correlation id was already used for a different request.
    pub const CORRELATION_ID_REUSED: &str = "CORRELATION_ID_REUSED";
    /// 401: missing or wrong token.
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    /// 403: the token is valid but not entitled to this resource.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// 406: `Accept` or the body's content type is not JSON.
    pub const NOT_ACCEPTABLE: &str = "NOT_ACCEPTABLE";
    /// 500.
    pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
}

fn input_error(operation: Operation, message: impl Into<String>) -> ProviderError {
    ProviderError::Rejected {
        provider: Provider::ServiceOps,
        operation,
        status: None,
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------
// Requests and answers
// ---------------------------------------------------------------------------------------

/// A service to create (`createServiceRequestDTO` plus the path's `service_type`).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateService {
    /// Which kind of service (path parameter).
    pub service_type: ServiceType,
    /// The id to give the service; `None` lets the provider assign one (reported in the
    /// event's `service_id`).
    pub service_id: Option<ServiceId>,
    /// `service_details`.
    pub service_details: ServiceDetails,
}

/// A device update (`updateServiceDeviceRequestDTO` plus the path parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateServiceDevice {
    /// The service's type (path parameter).
    pub service_type: ServiceType,
    /// The service whose device is updated (path parameter).
    pub service_id: ServiceId,
    /// The device to update (path parameter).
    pub device_id: DeviceId,
    /// `category`.
    pub category: DeviceCategory,
    /// `new_service_device_details`.
    pub new_service_device_details: DeviceDetails,
}

/// `202 Accepted`: the provider took the request; its outcome comes as an event naming
/// `correlation_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The correlation id the request carried (and the events will carry).
    pub correlation_id: CorrelationId,
    /// The provider's external reference, when the answer carried one.
    pub reference: Option<ExternalReference>,
}

/// Wire structures, named after the document's DTOs (`createServiceRequestDTO` is
/// `CreateServiceRequestDto`, and so on).
pub mod wire {
    use super::*;

    /// `createServiceRequestDTO`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CreateServiceRequestDto {
        /// `service_id` (optional).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub service_id: Option<String>,
        /// `service_details` (`serviceDetailsDTO`).
        pub service_details: ServiceDetails,
    }

    /// `updateServiceDeviceRequestDTO`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct UpdateServiceDeviceRequestDto {
        /// `category`.
        pub category: DeviceCategory,
        /// `new_service_device_details` (`deviceDetailsDTO`).
        pub new_service_device_details: DeviceDetails,
    }

    /// `genericErrorResponseDTO` (our fields: the document does not define it). Both
    /// optional when reading, so a gateway's differently-shaped error still classifies.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct GenericErrorResponseDto {
        /// A stable, machine-readable code, see [`super::codes`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub code: Option<String>,
        /// A message for people.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub message: Option<String>,
    }

    /// The body of a 202 answer (our choice; the document says "returned the request
    /// external reference identifier" with schema "None").
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct AcceptedDto {
        /// The provider's reference for the request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub external_reference: Option<String>,
    }

    /// `serviceCallbackDTO`, the body of `success_event` and `error_event`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ServiceCallbackDto {
        /// `code`.
        pub code: String,
        /// `title`.
        pub title: String,
        /// `service_id`.
        pub service_id: String,
    }
}

// ---------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------

/// The service operations client. Cheap to clone; share one per token.
#[derive(Clone)]
pub struct ServiceOpsClient {
    http: HttpClient,
    authorization: SecretString,
}

impl fmt::Debug for ServiceOpsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceOpsClient")
            .field("base_url", &self.http.base_url().as_str())
            .finish_non_exhaustive()
    }
}

impl ServiceOpsClient {
    /// Builds the client from its configuration.
    pub fn new(config: &ServiceOpsConfig) -> Result<Self, ProviderError> {
        let http = HttpClient::new(Provider::ServiceOps, &config.base_url, &config.http)?;
        Ok(Self::with_http(http, &config.api_token))
    }

    /// Builds the client over an existing HTTP client (to share a rate limiter).
    pub fn with_http(http: HttpClient, api_token: &SecretString) -> Self {
        Self {
            http,
            authorization: SecretString::from(format!("Bearer {}", api_token.expose_secret())),
        }
    }

    /// Asks the provider to create a service. Effectful; re-send with the same
    /// `correlation_id` after any non-terminal failure (see the [module docs](self)).
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(provider = "service_ops", correlation_id = %correlation_id,
               service_type = %request.service_type),
        err(level = tracing::Level::DEBUG)
    )]
    pub async fn create_service(
        &self,
        correlation_id: &CorrelationId,
        request: &CreateService,
    ) -> Result<Accepted, ProviderError> {
        if let Some(problem) = request.service_details.problem() {
            return Err(input_error(CREATE_SERVICE, problem));
        }
        let body = wire::CreateServiceRequestDto {
            service_id: request.service_id.as_ref().map(|id| id.as_str().to_owned()),
            service_details: request.service_details.clone(),
        };
        let path = encoded_path(&["v3", "services", request.service_type.as_str()]);
        let call = ProviderRequest::new(
            Provider::ServiceOps,
            CREATE_SERVICE,
            Method::POST,
            CREATE_SERVICE_PATH,
            Effect::Effectful,
        )
        .path(path);
        self.call(call, correlation_id, &body).await
    }

    /// Asks the provider to update a device of a service. Effectful; re-send with the same
    /// `correlation_id` after any non-terminal failure (see the [module docs](self)).
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(provider = "service_ops", correlation_id = %correlation_id,
               service_type = %request.service_type, service_id = %request.service_id),
        err(level = tracing::Level::DEBUG)
    )]
    pub async fn update_service_device(
        &self,
        correlation_id: &CorrelationId,
        request: &UpdateServiceDevice,
    ) -> Result<Accepted, ProviderError> {
        if let Some(problem) = request.new_service_device_details.problem() {
            return Err(input_error(UPDATE_SERVICE_DEVICE, problem));
        }
        let body = wire::UpdateServiceDeviceRequestDto {
            category: request.category,
            new_service_device_details: request.new_service_device_details.clone(),
        };
        let path = encoded_path(&[
            "v3",
            "services",
            request.service_type.as_str(),
            request.service_id.as_str(),
            "devices",
            request.device_id.as_str(),
        ]);
        let call = ProviderRequest::new(
            Provider::ServiceOps,
            UPDATE_SERVICE_DEVICE,
            Method::PUT,
            UPDATE_SERVICE_DEVICE_PATH,
            Effect::Effectful,
        )
        .path(path);
        self.call(call, correlation_id, &body).await
    }

    async fn call<T: Serialize>(
        &self,
        request: ProviderRequest,
        correlation_id: &CorrelationId,
        body: &T,
    ) -> Result<Accepted, ProviderError> {
        let correlation = HeaderValue::from_str(&correlation_id.to_string())
            .expect("a hyphenated UUID is a valid header value");
        let request = request
            .secret_header(AUTHORIZATION, &self.authorization)?
            .header(HeaderName::from_static(CORRELATION_HEADER), correlation)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .json(body)?;
        let answer = self.http.send_raw(request).await?;
        if answer.status() == StatusCode::ACCEPTED {
            return accepted(&answer, *correlation_id);
        }
        if answer.status().is_success() {
            return Err(answer.protocol_error(format!(
                "expected 202 Accepted, got {}; re-send with the same correlation id",
                answer.status()
            )));
        }
        Err(error_with_code(answer))
    }
}

/// Percent-encodes each segment (a `/` inside an id becomes `%2F`) into an absolute path.
fn encoded_path(segments: &[&str]) -> String {
    let mut url = url::Url::parse("http://path.invalid/").expect("a valid fixed URL");
    url.path_segments_mut()
        .expect("an http URL has path segments")
        .extend(segments);
    url.path().to_owned()
}

fn accepted(
    answer: &HttpResponse,
    correlation_id: CorrelationId,
) -> Result<Accepted, ProviderError> {
    if let Some(echo) = answer.headers().get(CORRELATION_HEADER) {
        let same = echo
            .to_str()
            .ok()
            .and_then(|s| CorrelationId::parse(s).ok())
            == Some(correlation_id);
        if !same {
            return Err(answer.protocol_error(
                "the 202 answer names another Request-Correlation-Id; re-send with ours",
            ));
        }
    }
    let body = answer.body();
    let reference = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        // The document gives the 202 no schema: a body we cannot read does not undo the
        // acceptance.
        match serde_json::from_slice::<wire::AcceptedDto>(body) {
            Ok(dto) => dto
                .external_reference
                .and_then(|r| ExternalReference::new(r).ok()),
            Err(_) => {
                tracing::debug!(
                    provider = "service_ops",
                    "202 body without a readable reference"
                );
                None
            }
        }
    };
    Ok(Accepted {
        correlation_id,
        reference,
    })
}

/// The shared classification, with the `genericErrorResponseDTO` code appended to the
/// message.
fn error_with_code(answer: HttpResponse) -> ProviderError {
    let code = serde_json::from_slice::<serde_json::Value>(answer.body())
        .ok()
        .and_then(|v| match v.get("code") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .map(|c| sanitize_message(&c))
        .filter(|c| !c.is_empty());
    let mut error = answer.into_error();
    if let Some(code) = code {
        match &mut error {
            ProviderError::Rejected { message, .. } | ProviderError::Auth { message, .. } => {
                *message = format!("{message} (code {code})");
            }
            _ => {}
        }
    }
    error
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_encode_each_segment() {
        assert_eq!(encoded_path(&["v3", "services", "tv"]), "/v3/services/tv");
        assert_eq!(
            encoded_path(&["v3", "services", "tv", "a/b c", "devices", "d%1"]),
            "/v3/services/tv/a%2Fb%20c/devices/d%251"
        );
    }

    #[test]
    fn wire_names_match_the_document() {
        let mut details = ServiceDetails::for_customer("C-1");
        details.msisdn = Some("966512345678".into());
        details.extra.insert("bundle".into(), json!("gold"));
        let body = wire::CreateServiceRequestDto {
            service_id: Some("svc-1".into()),
            service_details: details,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({
                "service_id": "svc-1",
                "service_details": { "customer_id": "C-1", "msisdn": "966512345678", "bundle": "gold" }
            })
        );
        let without_id = wire::CreateServiceRequestDto {
            service_id: None,
            service_details: ServiceDetails::for_customer("C-1"),
        };
        assert_eq!(
            serde_json::to_value(&without_id).unwrap(),
            json!({ "service_details": { "customer_id": "C-1" } })
        );
        let update = wire::UpdateServiceDeviceRequestDto {
            category: DeviceCategory::ESim,
            new_service_device_details: DeviceDetails {
                iccid: Some("8996601234567890123".into()),
                ..DeviceDetails::default()
            },
        };
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            json!({ "category": "eSIM", "new_service_device_details": { "iccid": "8996601234567890123" } })
        );
        assert!(
            serde_json::from_value::<wire::UpdateServiceDeviceRequestDto>(json!({
                "category": "SIM", "new_service_device_details": {}, "surprise": 1
            }))
            .is_err(),
            "unknown top-level fields are refused"
        );
    }

    /// A stand-in provider answering each service type with an odd but possible answer.
    async fn odd_provider() -> ServiceOpsClient {
        use axum::Router;
        use axum::response::IntoResponse;
        use axum::routing::post;

        let other_id = "0b7e1c6a-3f0e-4a8e-9d55-2f6f7a1e0c11";
        let router = Router::new().route(
            "/v3/services/{service_type}",
            post(
                move |axum::extract::Path(t): axum::extract::Path<String>| async move {
                    match t.as_str() {
                        "tv" => StatusCode::ACCEPTED.into_response(),
                        "multisim" => (StatusCode::ACCEPTED, "queued").into_response(),
                        "mobile" => (StatusCode::ACCEPTED, [(CORRELATION_HEADER, other_id)], "{}")
                            .into_response(),
                        "security" => (StatusCode::OK, "{}").into_response(),
                        _ => (
                            StatusCode::BAD_REQUEST,
                            r#"{"code":4001,"message":"line 0712755777 is barred"}"#,
                        )
                            .into_response(),
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let base = url::Url::parse(&format!("http://{addr}/")).unwrap();
        ServiceOpsClient::new(&ServiceOpsConfig::new(base, SecretString::from("t"))).unwrap()
    }

    #[tokio::test]
    async fn odd_answers_are_classified_safely() {
        let client = odd_provider().await;
        let id = CorrelationId::for_step("j", "s");
        let call = |t| {
            let client = client.clone();
            async move {
                let request = CreateService {
                    service_type: t,
                    service_id: None,
                    service_details: ServiceDetails::for_customer("C-1"),
                };
                client.create_service(&id, &request).await
            }
        };
        // The document gives the 202 no schema: no body, or an unreadable one, is still an
        // acceptance.
        for t in [ServiceType::Tv, ServiceType::Multisim] {
            assert_eq!(
                call(t).await.unwrap(),
                Accepted {
                    correlation_id: id,
                    reference: None
                }
            );
        }
        // An answer about another request, or a status we did not expect: it may have been
        // accepted, so re-send with the same id.
        for t in [ServiceType::Mobile, ServiceType::Security] {
            let err = call(t).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    ProviderError::Protocol {
                        effect_possible: true,
                        ..
                    }
                ),
                "{t}: {err:?}"
            );
            assert_eq!(err.class(), crate::ErrorClass::OutcomeUnknown);
        }
        // A numeric code is kept; the message is sanitized.
        let err = call(ServiceType::Datasharing).await.unwrap_err();
        assert_eq!(
            err,
            ProviderError::Rejected {
                provider: Provider::ServiceOps,
                operation: CREATE_SERVICE,
                status: Some(StatusCode::BAD_REQUEST),
                message: "line 07******77 is barred (code 4001)".into(),
            }
        );
    }
}
