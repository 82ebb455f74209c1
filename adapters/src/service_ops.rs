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

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use http::header::{ACCEPT, AUTHORIZATION, HeaderName};
use http::{HeaderValue, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::events::{
    ERROR_EVENT_PATH, EventDedupeKey, EventError, EventKind, MAX_EVENT_BYTES, MAX_EVENT_CODE_CHARS,
    MAX_EVENT_TITLE_CHARS, SUCCESS_EVENT_PATH, ServiceEvent, event_url, parse_event,
};
use crate::config::ServiceOpsConfig;
use crate::error::{Operation, Provider, ProviderError};
use crate::http::{Effect, HttpClient, HttpResponse, ProviderRequest};
use crate::redact::{mask_msisdn, sanitize_message};

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
// Enumerations
// ---------------------------------------------------------------------------------------

/// `serviceTypeDTO`: which kind of service ("Enumerated Values": `service_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ServiceType {
    /// `multisim`.
    Multisim,
    /// `security`.
    Security,
    /// `tv`.
    Tv,
    /// `datasharing`.
    Datasharing,
    /// `mobile`.
    Mobile,
    /// `applewatch`.
    Applewatch,
    /// `deviceinsurance`.
    Deviceinsurance,
}

impl ServiceType {
    /// Every service type, in the document's order.
    pub const ALL: [ServiceType; 7] = [
        ServiceType::Multisim,
        ServiceType::Security,
        ServiceType::Tv,
        ServiceType::Datasharing,
        ServiceType::Mobile,
        ServiceType::Applewatch,
        ServiceType::Deviceinsurance,
    ];

    /// The wire form, e.g. `deviceinsurance`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceType::Multisim => "multisim",
            ServiceType::Security => "security",
            ServiceType::Tv => "tv",
            ServiceType::Datasharing => "datasharing",
            ServiceType::Mobile => "mobile",
            ServiceType::Applewatch => "applewatch",
            ServiceType::Deviceinsurance => "deviceinsurance",
        }
    }

    /// The type with this exact wire form.
    pub fn from_wire(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Parses a wire form; anything else is a [`ProviderError::Rejected`] listing the
    /// allowed values.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        Self::from_wire(text).ok_or_else(|| {
            input_error(
                INPUT,
                format!(
                    "unknown service_type `{}`; expected one of {}",
                    sanitize_message(text),
                    Self::ALL.map(Self::as_str).join(", ")
                ),
            )
        })
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceType {
    type Err = ProviderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The `category` of a service device ("Enumerated Values": `category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DeviceCategory {
    /// `STB`: set-top box.
    #[serde(rename = "STB")]
    Stb,
    /// `SMARTWATCH`.
    #[serde(rename = "SMARTWATCH")]
    Smartwatch,
    /// `TABLET`.
    #[serde(rename = "TABLET")]
    Tablet,
    /// `ROUTER`.
    #[serde(rename = "ROUTER")]
    Router,
    /// `PBX`.
    #[serde(rename = "PBX")]
    Pbx,
    /// `SMARTPHONE`.
    #[serde(rename = "SMARTPHONE")]
    Smartphone,
    /// `WIFI_EXTENDER`.
    #[serde(rename = "WIFI_EXTENDER")]
    WifiExtender,
    /// `OTHER`.
    #[serde(rename = "OTHER")]
    Other,
    /// `SIM`: a physical SIM.
    #[serde(rename = "SIM")]
    Sim,
    /// `eSIM` (lowercase `e`, as in the document).
    #[serde(rename = "eSIM")]
    ESim,
}

impl DeviceCategory {
    /// Every category, in the document's order.
    pub const ALL: [DeviceCategory; 10] = [
        DeviceCategory::Stb,
        DeviceCategory::Smartwatch,
        DeviceCategory::Tablet,
        DeviceCategory::Router,
        DeviceCategory::Pbx,
        DeviceCategory::Smartphone,
        DeviceCategory::WifiExtender,
        DeviceCategory::Other,
        DeviceCategory::Sim,
        DeviceCategory::ESim,
    ];

    /// The wire form, e.g. `WIFI_EXTENDER` or `eSIM`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceCategory::Stb => "STB",
            DeviceCategory::Smartwatch => "SMARTWATCH",
            DeviceCategory::Tablet => "TABLET",
            DeviceCategory::Router => "ROUTER",
            DeviceCategory::Pbx => "PBX",
            DeviceCategory::Smartphone => "SMARTPHONE",
            DeviceCategory::WifiExtender => "WIFI_EXTENDER",
            DeviceCategory::Other => "OTHER",
            DeviceCategory::Sim => "SIM",
            DeviceCategory::ESim => "eSIM",
        }
    }

    /// The category with this exact wire form (case-sensitive: `eSIM`, not `ESIM`).
    pub fn from_wire(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// Parses a wire form; anything else is a [`ProviderError::Rejected`] listing the
    /// allowed values.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        Self::from_wire(text).ok_or_else(|| {
            input_error(
                INPUT,
                format!(
                    "unknown device category `{}`; expected one of {}",
                    sanitize_message(text),
                    Self::ALL.map(Self::as_str).join(", ")
                ),
            )
        })
    }
}

impl fmt::Display for DeviceCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceCategory {
    type Err = ProviderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// ---------------------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------------------

/// The `Request-Correlation-Id` of one request: a UUID chosen by the caller, the journey's
/// idempotency key for the step. Stable across retries and crashes; part of the journey's
/// durable state and the key events are matched by.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Uuid", into = "Uuid")]
pub struct CorrelationId(Uuid);

impl CorrelationId {
    /// Wraps a UUID; the nil UUID is refused (it names nothing).
    pub fn new(id: Uuid) -> Result<Self, ProviderError> {
        if id.is_nil() {
            return Err(input_error(
                INPUT,
                "the correlation id must not be the nil UUID",
            ));
        }
        Ok(Self(id))
    }

    /// Parses the hyphenated form (`8-4-4-4-12` hex digits, any case), the only form on the
    /// wire.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        parse_hyphenated(text)
            .ok_or_else(|| {
                input_error(
                    INPUT,
                    "the correlation id must be a UUID in the hyphenated form",
                )
            })
            .and_then(Self::new)
    }

    /// The stable id of one step of one journey: a name-based (v5) UUID of
    /// `"{journey}/{step}"`, so a step re-run after a crash sends the same id. Put an attempt
    /// number in `step` when the journey deliberately makes a *new* request.
    pub fn for_step(journey: &str, step: &str) -> Self {
        let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:handover:service_ops");
        Self(Uuid::new_v5(
            &namespace,
            format!("{journey}/{step}").as_bytes(),
        ))
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

/// Parses only the hyphenated UUID form. Shared with the simulator.
pub(crate) fn parse_hyphenated(text: &str) -> Option<Uuid> {
    let hyphens_at = [8, 13, 18, 23];
    let well_formed = text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| {
            if hyphens_at.contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
    well_formed.then(|| Uuid::try_parse(text).ok()).flatten()
}

impl TryFrom<Uuid> for CorrelationId {
    type Error = ProviderError;

    fn try_from(id: Uuid) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

impl From<CorrelationId> for Uuid {
    fn from(id: CorrelationId) -> Self {
        id.0
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CorrelationId({})", self.0.hyphenated())
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

/// Whether `id` is acceptable as a `service_id` or `device_id`. Shared with the simulator.
pub(crate) fn valid_id(id: &str) -> bool {
    let chars = id.chars().count();
    (1..=MAX_ID_CHARS).contains(&chars)
        && id != "."
        && id != ".."
        && !id.chars().any(|c| c.is_control() || c.is_whitespace())
}

macro_rules! path_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// 1 to [`MAX_ID_CHARS`] characters, no whitespace or control characters, not `.` or
        /// `..`. `Debug` and `Display` mask long digit runs, since an id may be an MSISDN,
        /// IMEI or ICCID.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("A ", $what, " as given, validated.")]
            pub fn new(id: impl Into<String>) -> Result<Self, ProviderError> {
                let id = id.into();
                if valid_id(&id) {
                    Ok(Self(id))
                } else {
                    Err(input_error(
                        INPUT,
                        concat!(
                            "the ", $what,
                            " must be 1 to 128 characters without whitespace or control \
                             characters, and not `.` or `..`"
                        ),
                    ))
                }
            }

            /// The full id, for the wire only.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ProviderError;

            fn try_from(id: String) -> Result<Self, Self::Error> {
                Self::new(id)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), sanitize_message(&self.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&sanitize_message(&self.0))
            }
        }
    };
}

path_id!(
    /// A service identifier (`service_id`): ours when we name the service on create, or the
    /// one the provider assigned (reported in the events).
    ServiceId,
    "service_id"
);
path_id!(
    /// A device identifier (`device_id`, path parameter of the update).
    DeviceId,
    "device_id"
);

/// The provider's "request external reference identifier" from a 202 answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExternalReference(String);

impl ExternalReference {
    /// A reference as received: 1 to [`MAX_REFERENCE_CHARS`] printable ASCII characters.
    pub fn new(reference: impl Into<String>) -> Result<Self, ProviderError> {
        let reference = reference.into();
        let ok = (1..=MAX_REFERENCE_CHARS).contains(&reference.len())
            && reference.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(reference))
        } else {
            Err(input_error(
                INPUT,
                "the external reference must be 1 to 128 printable ASCII characters",
            ))
        }
    }

    /// The reference text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExternalReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------
// Details DTOs
// ---------------------------------------------------------------------------------------

/// `serviceDetailsDTO`. The document does not define it; these fields are our choice (see
/// the [module docs](self)). `Debug` masks the MSISDN and shows only the names of extras.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceDetails {
    /// The customer account the service belongs to. Required.
    pub customer_id: String,
    /// The product or plan code to provision, when the service type needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_code: Option<String>,
    /// The line the service is attached to: 8 to 15 digits, international form without `+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msisdn: Option<String>,
    /// Further provider fields, sent as-is at the same level (at most [`MAX_EXTRA_FIELDS`],
    /// not shadowing the named fields).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ServiceDetails {
    /// Details for a customer, without plan, line or extras.
    pub fn for_customer(customer_id: impl Into<String>) -> Self {
        Self {
            customer_id: customer_id.into(),
            ..Self::default()
        }
    }

    /// Why these details would be refused, if they would. Shared with the simulator.
    pub(crate) fn problem(&self) -> Option<String> {
        if let Some(p) = text_problem("service_details.customer_id", Some(&self.customer_id))
            .or_else(|| text_problem("service_details.plan_code", self.plan_code.as_deref()))
        {
            return Some(p);
        }
        let msisdn_ok =
            |m: &str| (8..=15).contains(&m.len()) && m.bytes().all(|b| b.is_ascii_digit());
        if self.msisdn.as_deref().is_some_and(|m| !msisdn_ok(m)) {
            return Some("service_details.msisdn must be 8 to 15 digits".to_owned());
        }
        extras_problem(
            "service_details",
            &self.extra,
            &["customer_id", "plan_code", "msisdn"],
        )
    }
}

impl fmt::Debug for ServiceDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceDetails")
            .field("customer_id", &sanitize_message(&self.customer_id))
            .field("plan_code", &self.plan_code)
            .field("msisdn", &self.msisdn.as_deref().map(mask_msisdn))
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `deviceDetailsDTO`. The document does not define it; these fields are our choice (see the
/// [module docs](self)). At least one field must be present. `Debug` masks IMEI and ICCID
/// and shows only the names of extras.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeviceDetails {
    /// The device model, e.g. `Apple Watch Series 9`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The manufacturer's serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// 15 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imei: Option<String>,
    /// 18 to 22 digits (SIM and eSIM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iccid: Option<String>,
    /// Further provider fields, sent as-is at the same level (at most [`MAX_EXTRA_FIELDS`],
    /// not shadowing the named fields).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl DeviceDetails {
    /// Why these details would be refused, if they would. Shared with the simulator.
    pub(crate) fn problem(&self) -> Option<String> {
        let all_empty = self.model.is_none()
            && self.serial_number.is_none()
            && self.imei.is_none()
            && self.iccid.is_none()
            && self.extra.is_empty();
        if all_empty {
            return Some("new_service_device_details must name at least one field".to_owned());
        }
        for (field, value) in [
            ("new_service_device_details.model", self.model.as_deref()),
            (
                "new_service_device_details.serial_number",
                self.serial_number.as_deref(),
            ),
        ] {
            if let Some(p) = value.and_then(|v| text_problem(field, Some(v))) {
                return Some(p);
            }
        }
        let digits = |v: &str, lengths: std::ops::RangeInclusive<usize>| {
            lengths.contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit())
        };
        if self.imei.as_deref().is_some_and(|v| !digits(v, 15..=15)) {
            return Some("new_service_device_details.imei must be 15 digits".to_owned());
        }
        if self.iccid.as_deref().is_some_and(|v| !digits(v, 18..=22)) {
            return Some("new_service_device_details.iccid must be 18 to 22 digits".to_owned());
        }
        extras_problem(
            "new_service_device_details",
            &self.extra,
            &["model", "serial_number", "imei", "iccid"],
        )
    }
}

impl fmt::Debug for DeviceDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceDetails")
            .field("model", &self.model)
            .field(
                "serial_number",
                &self.serial_number.as_deref().map(sanitize_message),
            )
            .field("imei", &self.imei.as_deref().map(mask_msisdn))
            .field("iccid", &self.iccid.as_deref().map(mask_msisdn))
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn text_problem(field: &str, value: Option<&str>) -> Option<String> {
    let value = value?;
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_DETAIL_CHARS || value.chars().any(char::is_control) {
        return Some(format!(
            "{field} must be 1 to {MAX_DETAIL_CHARS} characters without control characters"
        ));
    }
    None
}

fn extras_problem(
    object: &str,
    extra: &BTreeMap<String, serde_json::Value>,
    named: &[&str],
) -> Option<String> {
    if extra.len() > MAX_EXTRA_FIELDS {
        return Some(format!(
            "{object} has more than {MAX_EXTRA_FIELDS} extra fields"
        ));
    }
    // Serializing would write both the named field and the extra under one name.
    extra
        .keys()
        .find(|k| named.contains(&k.as_str()) || k.is_empty())
        .map(|k| {
            format!(
                "{object} has an extra field `{}` that is empty or shadows a named field",
                sanitize_message(k)
            )
        })
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
    fn service_types_parse_exactly_and_list_the_allowed_values() {
        for t in ServiceType::ALL {
            assert_eq!(ServiceType::parse(t.as_str()).unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        assert_eq!(
            "deviceinsurance".parse::<ServiceType>().unwrap(),
            ServiceType::Deviceinsurance
        );
        let err = ServiceType::parse("radio").unwrap_err();
        assert!(matches!(err, ProviderError::Rejected { status: None, .. }));
        let shown = err.to_string();
        assert!(shown.contains("unknown service_type `radio`"), "{shown}");
        assert!(shown.contains("multisim, security, tv"), "{shown}");
        assert!(ServiceType::parse("TV").is_err(), "case-sensitive");
    }

    #[test]
    fn device_categories_use_the_documented_spelling() {
        let wire: Vec<&str> = DeviceCategory::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            wire,
            [
                "STB",
                "SMARTWATCH",
                "TABLET",
                "ROUTER",
                "PBX",
                "SMARTPHONE",
                "WIFI_EXTENDER",
                "OTHER",
                "SIM",
                "eSIM"
            ]
        );
        for c in DeviceCategory::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), json!(c.as_str()));
            assert_eq!(
                serde_json::from_value::<DeviceCategory>(json!(c.as_str())).unwrap(),
                c
            );
        }
        let err = DeviceCategory::parse("ESIM").unwrap_err();
        assert!(
            err.to_string().contains("unknown device category `ESIM`"),
            "{err}"
        );
        assert!(serde_json::from_value::<DeviceCategory>(json!("PHONE")).is_err());
    }

    #[test]
    fn correlation_ids_are_hyphenated_uuids_and_stable_per_step() {
        let text = "7d444840-9dc0-11d1-b245-5ffdce74fad2";
        let id = CorrelationId::parse(text).unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(
            CorrelationId::parse(&text.to_uppercase()).unwrap(),
            id,
            "any case"
        );
        for bad in [
            "",
            "7d4448409dc011d1b2455ffdce74fad2",
            "{7d444840-9dc0-11d1-b245-5ffdce74fad2}",
            "urn:uuid:7d444840-9dc0-11d1-b245-5ffdce74fad2",
            "7d444840-9dc0-11d1-b245-5ffdce74fadz",
            "00000000-0000-0000-0000-000000000000",
        ] {
            assert!(CorrelationId::parse(bad).is_err(), "{bad}");
        }
        let a = CorrelationId::for_step("journey-1", "create_service#1");
        assert_eq!(a, CorrelationId::for_step("journey-1", "create_service#1"));
        assert_ne!(a, CorrelationId::for_step("journey-1", "create_service#2"));
        assert_ne!(a, CorrelationId::for_step("journey-2", "create_service#1"));
        let json = serde_json::to_value(a).unwrap();
        assert_eq!(json, json!(a.to_string()));
        assert_eq!(serde_json::from_value::<CorrelationId>(json).unwrap(), a);
    }

    #[test]
    fn ids_are_bounded_and_masked() {
        assert!(ServiceId::new("svc-1").is_ok());
        assert!(ServiceId::new("a/b").is_ok(), "encoded in the path");
        for bad in ["", ".", "..", "a b", "tab\tbed", &"x".repeat(129)] {
            assert!(ServiceId::new(bad).is_err(), "{bad:?}");
            assert!(DeviceId::new(bad).is_err(), "{bad:?}");
        }
        let msisdn = ServiceId::new("966512345678").unwrap();
        assert_eq!(
            format!("{msisdn} {msisdn:?}"),
            "96********78 ServiceId(96********78)"
        );
        let imei = DeviceId::new("imei-356938035643809").unwrap();
        assert!(!format!("{imei:?}").contains("356938035643809"));
    }

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

    #[test]
    fn details_are_validated_before_sending() {
        assert_eq!(ServiceDetails::for_customer("C-1").problem(), None);
        assert!(ServiceDetails::for_customer("").problem().is_some());
        let mut d = ServiceDetails::for_customer("C-1");
        d.msisdn = Some("+966512345678".into());
        assert!(d.problem().unwrap().contains("msisdn"));
        let mut d = ServiceDetails::for_customer("C-1");
        d.extra.insert("customer_id".into(), json!("other"));
        assert!(d.problem().unwrap().contains("shadows"));
        let mut d = ServiceDetails::for_customer("C-1");
        for i in 0..=MAX_EXTRA_FIELDS {
            d.extra.insert(format!("k{i}"), json!(i));
        }
        assert!(d.problem().unwrap().contains("more than 32"));

        assert!(
            DeviceDetails::default()
                .problem()
                .unwrap()
                .contains("at least one")
        );
        let bad_imei = DeviceDetails {
            imei: Some("35693803564380".into()),
            ..DeviceDetails::default()
        };
        assert!(bad_imei.problem().unwrap().contains("imei"));
        let ok = DeviceDetails {
            model: Some("Watch 9".into()),
            imei: Some("356938035643809".into()),
            ..DeviceDetails::default()
        };
        assert_eq!(ok.problem(), None);
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

    #[test]
    fn debug_masks_personal_data() {
        let mut d = ServiceDetails::for_customer("C-1");
        d.msisdn = Some("966512345678".into());
        d.extra.insert("national_id".into(), json!("1234567890"));
        let device = DeviceDetails {
            imei: Some("356938035643809".into()),
            iccid: Some("8996601234567890123".into()),
            ..DeviceDetails::default()
        };
        let shown = format!("{d:?} {device:?}");
        for secret in [
            "966512345678",
            "1234567890",
            "356938035643809",
            "8996601234567890123",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("national_id"), "{shown}");
    }
}
