//! Reach Mobile Platform plugAPI: coverage, device and SIM checks, purchase with payment,
//! activation (eSIM and pSIM) and number port-in.
//!
//! Source: `reach-plugapi-guide.txt` ("plugAPI Implementation Guide"). Journeys J2
//! (purchase -> pay -> activate, Scenarios A, C, D) and J3 (port-in with correction loop,
//! Scenario E).
//!
//! # Endpoints
//!
//! | Client call | Endpoint | Guide section | Effect | After `OutcomeUnknown` |
//! |---|---|---|---|---|
//! | [`ReachClient::coverage`] | `POST /apisvc/v0/network/coverage` | 3 A.1 "Check Network Coverage" | read-only | retry |
//! | [`ReachClient::check_imei`] | `GET /apisvc/v0/device/imei/{imei}` | 3 A.2 "Check Device Compatibility" | read-only | retry |
//! | [`ReachClient::plans`] | `GET /apisvc/v0/product/fetch/plan` | 3 A.3 "Fetch Available Plans" | read-only | retry |
//! | [`ReachClient::quote`] | `POST /apisvc/v0/product/quote` | 3 A.4 "Get a Purchase Quote" | read-only | retry |
//! | [`ReachClient::purchase`] | `POST /apisvc/v0/product` | 3 A.5 "Submit the Purchase", E.3 (port-in fields) | **effectful** (order) | re-send with the same `clientAccountId`: `409` gives [`PurchaseOutcome::AlreadySubmitted`] |
//! | [`ReachClient::purchase_status`] | `GET /apisvc/v0/product/status/{transactionId}` | 3 A.6-A.8 | read-only | retry |
//! | [`ReachClient::validate_iccid`] | `POST /apisvc/v0/iccid/validate` | 3 C.1 "Validate the SIM" | read-only | retry |
//! | [`ReachClient::activate`] | `POST /apisvc/v0/activation` | 3 C.2, D.1 | **effectful** (line) | re-send: `409` gives [`ActivationOutcome::AlreadySubmitted`]; or poll the status |
//! | [`ReachClient::activation_status`] | `GET /apisvc/v0/activation/status?customerId=` | 3 C.3, E.4 | read-only | retry |
//! | [`ReachClient::validate_port`] | `PUT /apisvc/v0/port/validate/mdn?mdn=` | 3 E.1 | read-only (a check, despite `PUT`) | retry |
//! | [`ReachClient::update_port_in`] | `PUT /apisvc/v0/update/portin` | 3 E.5 "Correct and Resubmit" | **effectful** (port) | poll the status; re-send: `409` gives [`PortInUpdateOutcome::Conflict`] |
//! | [`callbacks::parse_callback`] | inbound `POST /apisvc/v0/notification/callback` | 2.3, 4.2 | - | - |
//! | [`callbacks::parse_notification`] | inbound `POST /apisvc/v0/notification` | 2.3, 4.1 | - | - |
//!
//! # Authentication (guide 1.2)
//!
//! Every request carries `Authorization: Basic base64("clientapi|" + JWT)` (standard Base64
//! with padding, no spaces; [`basic_authorization`]) and `x-api-key`. On a 401 the client
//! rebuilds the header from its [`JwtSource`] and retries once ("Rebuild auth header; rotate
//! token if needed", guide 5); a second 401 is [`ProviderError::Auth`]. 403 ("no permission /
//! IP not whitelisted") is `Auth` at once. A 401 means the request was not processed, so the
//! retry is safe for effectful calls. The rate limit is per API key (guide 2.4): clients
//! built from one [`ApiKeyLimiters`] share a limiter per key; a 429 is
//! [`ProviderError::RateLimited`] with `Retry-After`.
//!
//! # Wire format: what the guide says and what we chose
//!
//! The guide gives paths, methods and the key response fields; nearly every request body is
//! blank ("Request body:" with nothing after it). Our choices, implemented identically by the
//! simulator ([`crate::sim::reach`]); field names reuse the guide's wherever it has one:
//!
//! - **Coverage body**: the address, `{"address1", "address2"?, "city", "state", "zip",
//!   "country"}` ([`wire::AddressBody`]). Answer: `brandCoverage`, `coverageStrength5G`,
//!   `coverageStrength4G` (guide).
//! - **Plans answer**: a JSON array of plans with the guide's fields `serviceCode`,
//!   `baseLinePrice`, `maxLines`, `fccLabel`, `upGradableTo[]`, `downGradableTo[]`, plus
//!   `name` (ours). At most [`MAX_PLANS`] plans.
//! - **Quote and purchase body** (one structure: "Same structure as the Quote body"):
//!   `clientAccountId`, `planId` (the plan's `serviceCode`: "use as planId"), `simType`
//!   (`PSIM`/`ESIM`, the status answer's name), `redirectUrl` (guide 1.4), `firstName`,
//!   `lastName`, `email`, `shippingAddress` (required for `PSIM`), `imei` (bring your own
//!   device), and the port-in fields of Scenario E: `numberToPort`, `oldCarrier`,
//!   `oldCarrierAccountNumber`, `password` (the PIN, a secret), `oldZip` (all or none).
//! - **Money** is a JSON number of dollars with at most two decimals ([`Usd`]).
//! - **Purchase answer**: `202` `{"transactionId", "clientAccountId"}` (200 is accepted too).
//! - **Purchase status**: `INITIATED` (ours: accepted, no link yet), then the guide's
//!   `PAYMENT_PENDING` (with `link.url` and `link.expireDate`, RFC 3339),
//!   `PAYMENT_PROCESSING`, `COMPLETED` (with `customerId`), `FAILED` (with
//!   `paymentStatusDesc`) ([`PurchaseStatusCode`]). `paymentStatus` is passed through as text.
//! - **ICCID body**: `{"iccId"}`.
//! - **Activation body**: `{"customerId", "esim": true, "imei"}` for eSIM ("Use the device
//!   IMEI and set esim: true"), `{"customerId", "esim": false, "iccId"}` for pSIM. Answer
//!   `202` `{"transactionId", "customerId", "status"}`. A port-in is started by the
//!   activation of a customer whose purchase carried port-in fields ("Activate SIM or
//!   initiate port-in"); its status goes to 9.
//! - **Activation status**: `status` is the guide's numeric code ([`ActivationCode`]), with
//!   `activationMsg`, `mobileNo`, `planName`, `activationDate` (RFC 3339) and
//!   `transactionId` (ours: the current activation or port-in operation).
//! - **Port-in update body**: `{"customerId", "type", ...}` with `type` one of the guide's
//!   six values and the corrected field under its purchase-body name: `password`
//!   (`UPDATE_PIN`), `oldCarrierAccountNumber` (`UPDATE_ACCOUNT`), `oldZip` (`UPDATE_ZIP`).
//!   Answer `200` `{"transactionId", "customerId", "status", "message"}`: a new operation id
//!   and the line's new code (9 after a correction or resubmission, 11 after `CANCEL_PORT`,
//!   1 after `CANCEL_AND_NEW`).
//! - **Errors** are `{"errorCode", "message"}` ([`error_code`]). A `400` whose `errorCode`
//!   is a business reason (anything but [`error_code::INVALID_REQUEST`]) is
//!   [`ProviderError::Refused`]; other statuses follow the shared table in [`crate::http`].
//! - **Business "no"** answers (`brandCoverage=false`, `isValid=false`,
//!   `isPortValidate=false`) are normal `200` answers and come back as enum outcomes
//!   ([`CoverageOutcome::NotCovered`], [`ImeiOutcome::Invalid`], [`IccidOutcome::Invalid`],
//!   [`PortEligibility::NotEligible`]). So are the intermediate and final states of a
//!   purchase ([`PurchaseStatus`]) and a line ([`ActivationStatus`]).
//!
//! # Reconciling effectful calls
//!
//! - **Purchase**: the caller's stable key is `clientAccountId` (guide 1.4: "Your brand's
//!   own reference ID ... You supply this during purchase"), derived from the journey id and
//!   the attempt. One `clientAccountId` names one purchase for good: sending it again, whatever
//!   that purchase's state, is answered `409` (guide 5: "Duplicate request ... Check if
//!   operation already succeeded") with the existing `transactionId` and `status`, returned as
//!   [`PurchaseOutcome::AlreadySubmitted`]. So after `OutcomeUnknown` (504, timeout, lost
//!   connection) the journey simply re-sends the same order: it gets either the new
//!   transaction or the existing one, never a second order. A retry after `FAILED`
//!   ("restart from the quote step") is a new purchase and needs a new `clientAccountId`. A
//!   `409` without a `transactionId` (the key is in use by a different order) is
//!   [`ProviderError::Conflict`].
//! - **Activation** is keyed by `customerId`: a line has one activation at a time. Re-sending
//!   while it is in progress, porting or active is answered `409` with the current
//!   `transactionId` and status ([`ActivationOutcome::AlreadySubmitted`]), never a second
//!   activation. After 8 ACTIVATION_FAILED a new activation is accepted ("Offer retry").
//!   Alternatively, poll [`ReachClient::activation_status`]: 0 means it was not received.
//! - **Port-in update** applies only to a line in 10 PORTING_FAILED (and `CANCEL_PORT` also
//!   in 9). After `OutcomeUnknown`, poll the status: 10 with the same `activationMsg` means
//!   it was not applied (send it again); anything else means it was. Re-sending an applied
//!   update is answered `409` with the current code ([`PortInUpdateOutcome::Conflict`]).
//!   Re-applying a correction is harmless: it sets the same value again.
//!
//! # Callbacks
//!
//! See [`callbacks`] for the inbound bodies, their strict parsers, de-duplication keys and
//! correlation values.

pub mod auth;
pub mod callbacks;
mod outcome;
mod request;
pub mod types;
pub mod wire;

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use http::header::{ACCEPT, AUTHORIZATION, HeaderName};
use http::{HeaderValue, Method, StatusCode};
use secrecy::SecretString;
use url::Url;

use self::auth::HeaderBuilder;
pub use self::auth::{ApiKeyLimiters, JwtSource, RotatingJwt, basic_authorization};
pub use self::outcome::{
    ActivationOutcome, ActivationStatus, CompletedPurchase, CoverageOutcome, Device, IccidOutcome,
    ImeiOutcome, OneTimeCharge, PaymentLink, Plan, PortEligibility, PortInUpdateOutcome,
    PurchaseOutcome, PurchaseStatus, Quote,
};
pub use self::request::{Activation, Address, CustomerDetails, Order, PortInDetails, PortInUpdate};
pub use self::types::{
    ActivationCode, CarrierAccountNumber, CarrierName, ClientAccountId, CustomerId, DeviceMode,
    EventId, IccId, Imei, Mdn, PlanId, PortPin, PurchaseStatusCode, RedirectUrl, SimType,
    TransactionId, Usd, ZipCode,
};
use crate::config::ReachConfig;
use crate::error::{Operation, Provider, ProviderError};
use crate::http::{Effect, HttpClient, HttpResponse, ProviderRequest};
use crate::redact::sanitize_message;
use crate::token::{Token, TokenCache};

/// `POST`: network coverage for an address.
pub const COVERAGE_PATH: &str = "/apisvc/v0/network/coverage";
/// `GET`: device compatibility; template of `/apisvc/v0/device/imei/{imei}`.
pub const IMEI_PATH: &str = "/apisvc/v0/device/imei/{imei}";
/// `GET`: the plan catalog.
pub const PLANS_PATH: &str = "/apisvc/v0/product/fetch/plan";
/// `POST`: a purchase quote.
pub const QUOTE_PATH: &str = "/apisvc/v0/product/quote";
/// `POST`: a new customer purchase (asynchronous).
pub const PURCHASE_PATH: &str = "/apisvc/v0/product";
/// `GET`: a purchase's status; template of `/apisvc/v0/product/status/{transactionId}`.
pub const PURCHASE_STATUS_PATH: &str = "/apisvc/v0/product/status/{transactionId}";
/// `POST`: ICCID validation.
pub const ICCID_PATH: &str = "/apisvc/v0/iccid/validate";
/// `POST`: activation or port-in start (asynchronous).
pub const ACTIVATION_PATH: &str = "/apisvc/v0/activation";
/// `GET`: activation and port-in status (`?customerId=`).
pub const ACTIVATION_STATUS_PATH: &str = "/apisvc/v0/activation/status";
/// `PUT`: port-in eligibility (`?mdn=`).
pub const PORT_VALIDATE_PATH: &str = "/apisvc/v0/port/validate/mdn";
/// `PUT`: port-in correction.
pub const PORT_IN_UPDATE_PATH: &str = "/apisvc/v0/update/portin";
/// Inbound: async operation results (Reach calls us).
pub const CALLBACK_PATH: &str = "/apisvc/v0/notification/callback";
/// Inbound: real-time notifications (Reach calls us).
pub const NOTIFICATION_PATH: &str = "/apisvc/v0/notification";

/// The API key header (guide 1.2, step 5).
pub const API_KEY_HEADER: &str = "x-api-key";

/// Operation name of [`ReachClient::coverage`].
pub const COVERAGE: Operation = Operation::new("reach.coverage");
/// Operation name of [`ReachClient::check_imei`].
pub const IMEI: Operation = Operation::new("reach.imei");
/// Operation name of [`ReachClient::plans`].
pub const PLANS: Operation = Operation::new("reach.plans");
/// Operation name of [`ReachClient::quote`].
pub const QUOTE: Operation = Operation::new("reach.quote");
/// Operation name of [`ReachClient::purchase`].
pub const PURCHASE: Operation = Operation::new("reach.purchase");
/// Operation name of [`ReachClient::purchase_status`].
pub const PURCHASE_STATUS: Operation = Operation::new("reach.purchase_status");
/// Operation name of [`ReachClient::validate_iccid`].
pub const ICCID_VALIDATE: Operation = Operation::new("reach.iccid_validate");
/// Operation name of [`ReachClient::activate`].
pub const ACTIVATION: Operation = Operation::new("reach.activation");
/// Operation name of [`ReachClient::activation_status`].
pub const ACTIVATION_STATUS: Operation = Operation::new("reach.activation_status");
/// Operation name of [`ReachClient::validate_port`].
pub const PORT_VALIDATE: Operation = Operation::new("reach.port_validate");
/// Operation name of [`ReachClient::update_port_in`].
pub const PORT_IN_UPDATE: Operation = Operation::new("reach.port_in_update");

/// Most plans accepted in one catalog answer.
pub const MAX_PLANS: usize = 500;
/// Most upgrade or downgrade targets accepted per plan.
pub const MAX_PLAN_LINKS: usize = 100;

/// `errorCode` values of Reach error bodies `{"errorCode", "message"}`. The guide names
/// none; these are ours, shared with the simulator.
pub mod error_code {
    /// 400: the payload is invalid or misses fields ([`ProviderError::Rejected`](crate::ProviderError::Rejected)).
    pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
    /// 401: bad or expired credentials.
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    /// 403: the caller's IP is not whitelisted (guide 2.1).
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// 404: unknown `transactionId` or `customerId`.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// 409 on purchase: this `clientAccountId` already has a purchase (body carries its
    /// `transactionId` and `status`).
    pub const DUPLICATE_PURCHASE: &str = "DUPLICATE_PURCHASE";
    /// 409 on purchase: this `clientAccountId` is used by a different order.
    pub const CLIENT_ACCOUNT_ID_IN_USE: &str = "CLIENT_ACCOUNT_ID_IN_USE";
    /// 409 on activation: the line already has an activation or port-in (body carries its
    /// `transactionId` and `status`).
    pub const ACTIVATION_EXISTS: &str = "ACTIVATION_EXISTS";
    /// 409 on port-in update: the line is not in a state this update applies to (body
    /// carries the current `status`).
    pub const PORT_STATE_CONFLICT: &str = "PORT_STATE_CONFLICT";
    /// 429.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// 500, 502.
    pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
    /// 503.
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
    /// 504.
    pub const GATEWAY_TIMEOUT: &str = "GATEWAY_TIMEOUT";
    /// 400 refusal: the plan cannot be sold (for this SIM type or area).
    pub const PLAN_NOT_AVAILABLE: &str = "PLAN_NOT_AVAILABLE";
    /// 400 refusal: the device or SIM cannot be activated.
    pub const DEVICE_NOT_COMPATIBLE: &str = "DEVICE_NOT_COMPATIBLE";
}

// ---------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------

/// The Reach client. Cheap to clone; clones share the HTTP connection pool, the rate limiter
/// and the cached `Authorization` header.
#[derive(Clone)]
pub struct ReachClient {
    http: HttpClient,
    api_key: SecretString,
    auth: Arc<TokenCache<HeaderBuilder>>,
}

impl fmt::Debug for ReachClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReachClient")
            .field("base_url", &self.http.base_url().as_str())
            .finish_non_exhaustive()
    }
}

impl ReachClient {
    /// A client using the configured JWT, drawing on the limiter of its API key in
    /// `limiters`.
    pub fn new(config: &ReachConfig, limiters: &ApiKeyLimiters) -> Result<Self, ProviderError> {
        Self::with_jwt_source(config, limiters, Arc::new(config.jwt.clone()))
    }

    /// A client that reads the JWT from `source` whenever it builds the `Authorization`
    /// header (first use, after a 401, every [`auth::HEADER_TTL`]); `config.jwt` is not used.
    pub fn with_jwt_source(
        config: &ReachConfig,
        limiters: &ApiKeyLimiters,
        source: Arc<dyn JwtSource>,
    ) -> Result<Self, ProviderError> {
        let http = HttpClient::new(Provider::Reach, &config.base_url, &config.http)?
            .with_rate_limiter(limiters.limiter_for(config)?);
        Ok(Self {
            http,
            api_key: config.api_key.clone(),
            auth: Arc::new(TokenCache::new(Provider::Reach, HeaderBuilder { source })),
        })
    }

    /// Is this address covered? Read-only.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "reach", zip = %address.zip.as_str()), err(level = tracing::Level::DEBUG))]
    pub async fn coverage(&self, address: &Address) -> Result<CoverageOutcome, ProviderError> {
        let body = address.to_wire();
        let answer: wire::CoverageResponse = self
            .call(
                COVERAGE,
                || {
                    self.http
                        .post(COVERAGE, COVERAGE_PATH, Effect::ReadOnly)
                        .json(&body)
                },
                |a| ok_json(COVERAGE, &a),
            )
            .await?;
        let (strength_5g, strength_4g) = (
            answer.coverage_strength_5g.as_deref().map(sanitize_message),
            answer.coverage_strength_4g.as_deref().map(sanitize_message),
        );
        Ok(if answer.brand_coverage {
            CoverageOutcome::Covered {
                strength_5g,
                strength_4g,
            }
        } else {
            CoverageOutcome::NotCovered {
                strength_5g,
                strength_4g,
            }
        })
    }

    /// Is this device compatible, and with which SIM? Read-only.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "reach", imei = %imei), err(level = tracing::Level::DEBUG))]
    pub async fn check_imei(&self, imei: &Imei) -> Result<ImeiOutcome, ProviderError> {
        let path = format!("/apisvc/v0/device/imei/{}", imei.as_str());
        self.call(
            IMEI,
            || Ok(self.http.get(IMEI, IMEI_PATH).path(path.clone())),
            |a| {
                let answer: wire::ImeiResponse = ok_json(IMEI, &a)?;
                if !answer.is_valid {
                    return Ok(ImeiOutcome::Invalid);
                }
                let mode = answer
                    .mode
                    .as_deref()
                    .and_then(DeviceMode::parse)
                    .ok_or_else(|| a.protocol_error("valid IMEI without a PSIM/ESIM/BOTH mode"))?;
                Ok(ImeiOutcome::Valid(Device {
                    mode,
                    esim_available: answer.esim_available.unwrap_or(mode != DeviceMode::Psim),
                    make: answer.make.as_deref().map(sanitize_message),
                    model: answer.model.as_deref().map(sanitize_message),
                }))
            },
        )
        .await
    }

    /// The plan catalog ("Cache the product catalog. Refresh it at least every 24 hours").
    /// Read-only.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "reach"), err(level = tracing::Level::DEBUG))]
    pub async fn plans(&self) -> Result<Vec<Plan>, ProviderError> {
        self.call(
            PLANS,
            || Ok(self.http.get(PLANS, PLANS_PATH)),
            |a| {
                let plans: Vec<wire::PlanBody> = ok_json(PLANS, &a)?;
                if plans.len() > MAX_PLANS {
                    return Err(a.protocol_error(format!("more than {MAX_PLANS} plans")));
                }
                plans.into_iter().map(|p| plan(&a, p)).collect()
            },
        )
        .await
    }

    /// What the order costs today and monthly. Read-only.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "reach", plan = %order.plan_id), err(level = tracing::Level::DEBUG))]
    pub async fn quote(&self, order: &Order) -> Result<Quote, ProviderError> {
        let body = order.to_wire(QUOTE)?;
        let answer: wire::QuoteResponse = self
            .call(
                QUOTE,
                || {
                    self.http
                        .post(QUOTE, QUOTE_PATH, Effect::ReadOnly)
                        .json(&body)
                },
                |a| ok_json(QUOTE, &a),
            )
            .await?;
        let one = answer.one_time_charge;
        Ok(Quote {
            one_time_charge: OneTimeCharge {
                total_one_time_cost: one.total_one_time_cost,
                sim_kit_cost: one.sim_kit_cost,
                activation_cost: one.activation_cost,
                shipment: one.shipment,
                tax: one.tax,
            },
            estimated_monthly_total: answer.estimated_monthly_cost.total,
        })
    }

    /// Submits the purchase. Effectful and asynchronous: poll
    /// [`Self::purchase_status`] with the returned transaction. Re-sending the same
    /// `clientAccountId` never orders twice (see the [module docs](self)).
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "reach", client_account_id = %order.client_account_id, port_in = order.port_in.is_some()), err(level = tracing::Level::DEBUG))]
    pub async fn purchase(&self, order: &Order) -> Result<PurchaseOutcome, ProviderError> {
        let body = order.to_wire(PURCHASE)?;
        self.call(
            PURCHASE,
            || {
                self.http
                    .post(PURCHASE, PURCHASE_PATH, Effect::Effectful)
                    .json(&body)
            },
            |a| {
                if a.status() == StatusCode::CONFLICT {
                    let existing = conflict_body(&a);
                    return match existing.as_ref().and_then(|b| b.transaction_id.clone()) {
                        Some(id) => Ok(PurchaseOutcome::AlreadySubmitted {
                            transaction_id: TransactionId::new(id).map_err(|_| {
                                a.protocol_error("409 with an invalid transactionId")
                            })?,
                            status: existing
                                .as_ref()
                                .and_then(|b| b.status.as_ref())
                                .and_then(|s| s.as_str())
                                .and_then(PurchaseStatusCode::parse),
                        }),
                        None => Err(a.into_error()),
                    };
                }
                let accepted: wire::AsyncResponse = ok_json(PURCHASE, &a)?;
                let transaction_id = accepted
                    .transaction_id
                    .ok_or_else(|| a.protocol_error("accepted purchase without a transactionId"))
                    .and_then(|id| {
                        TransactionId::new(id).map_err(|_| {
                            a.protocol_error("accepted purchase with an invalid transactionId")
                        })
                    })?;
                Ok(PurchaseOutcome::Submitted { transaction_id })
            },
        )
        .await
    }

    /// Where the purchase stands. Read-only.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "reach", transaction_id = %transaction_id), err(level = tracing::Level::DEBUG))]
    pub async fn purchase_status(
        &self,
        transaction_id: &TransactionId,
    ) -> Result<PurchaseStatus, ProviderError> {
        let path = format!("/apisvc/v0/product/status/{}", transaction_id.as_str());
        self.call(
            PURCHASE_STATUS,
            || {
                Ok(self
                    .http
                    .get(PURCHASE_STATUS, PURCHASE_STATUS_PATH)
                    .path(path.clone()))
            },
            |a| {
                let answer: wire::PurchaseStatusResponse = ok_json(PURCHASE_STATUS, &a)?;
                purchase_status(&a, answer)
            },
        )
        .await
    }

    /// Is this SIM card usable? Read-only.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "reach", icc_id = %icc_id), err(level = tracing::Level::DEBUG))]
    pub async fn validate_iccid(&self, icc_id: &IccId) -> Result<IccidOutcome, ProviderError> {
        let body = wire::IccidRequest {
            icc_id: icc_id.as_str().to_owned(),
        };
        self.call(
            ICCID_VALIDATE,
            || {
                self.http
                    .post(ICCID_VALIDATE, ICCID_PATH, Effect::ReadOnly)
                    .json(&body)
            },
            |a| {
                let answer: wire::IccidResponse = ok_json(ICCID_VALIDATE, &a)?;
                if !answer.is_valid {
                    return Ok(IccidOutcome::Invalid);
                }
                Ok(IccidOutcome::Valid {
                    mode: answer
                        .mode
                        .as_deref()
                        .and_then(DeviceMode::parse)
                        .ok_or_else(|| a.protocol_error("valid ICCID without a mode"))?,
                    wifi_calling: answer.wifi_calling.unwrap_or(false),
                    volte_compatible: answer.volte_compatible.unwrap_or(false),
                })
            },
        )
        .await
    }

    /// Activates the line (or starts the port-in of a customer whose purchase carried
    /// port-in fields). Effectful and asynchronous: poll [`Self::activation_status`].
    /// Re-sending never activates twice (see the [module docs](self)).
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "reach", customer_id = %activation.customer_id()), err(level = tracing::Level::DEBUG))]
    pub async fn activate(
        &self,
        activation: &Activation,
    ) -> Result<ActivationOutcome, ProviderError> {
        let body = activation.to_wire();
        self.call(
            ACTIVATION,
            || {
                self.http
                    .post(ACTIVATION, ACTIVATION_PATH, Effect::Effectful)
                    .json(&body)
            },
            |a| {
                if a.status() == StatusCode::CONFLICT {
                    return match conflict_body(&a).and_then(|b| {
                        let status = code_of(b.status.as_ref())?;
                        Some((b.transaction_id, status))
                    }) {
                        Some((transaction_id, status)) => Ok(ActivationOutcome::AlreadySubmitted {
                            transaction_id: transaction_id.and_then(|t| TransactionId::new(t).ok()),
                            status,
                        }),
                        None => Err(a.into_error()),
                    };
                }
                let accepted: wire::AsyncResponse = ok_json(ACTIVATION, &a)?;
                Ok(ActivationOutcome::Submitted {
                    transaction_id: optional_id(&a, accepted.transaction_id, TransactionId::new)?,
                    status: code_of(accepted.status.as_ref()).unwrap_or(ActivationCode::InProgress),
                })
            },
        )
        .await
    }

    /// Where the line stands. Read-only.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "reach", customer_id = %customer_id), err(level = tracing::Level::DEBUG))]
    pub async fn activation_status(
        &self,
        customer_id: &CustomerId,
    ) -> Result<ActivationStatus, ProviderError> {
        self.call(
            ACTIVATION_STATUS,
            || {
                Ok(self
                    .http
                    .get(ACTIVATION_STATUS, ACTIVATION_STATUS_PATH)
                    .query("customerId", customer_id.as_str()))
            },
            |a| {
                let answer: wire::ActivationStatusResponse = ok_json(ACTIVATION_STATUS, &a)?;
                activation_status(&a, &answer)
            },
        )
        .await
    }

    /// Can this number be ported in? Read-only (a check, although the method is `PUT`).
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "reach", mdn = %mdn), err(level = tracing::Level::DEBUG))]
    pub async fn validate_port(&self, mdn: &Mdn) -> Result<PortEligibility, ProviderError> {
        self.call(
            PORT_VALIDATE,
            || {
                Ok(ProviderRequest::new(
                    Provider::Reach,
                    PORT_VALIDATE,
                    Method::PUT,
                    PORT_VALIDATE_PATH,
                    Effect::ReadOnly,
                )
                .query("mdn", mdn.as_str()))
            },
            |a| {
                let answer: wire::PortValidateResponse = ok_json(PORT_VALIDATE, &a)?;
                let message = answer.message.as_deref().map(sanitize_message);
                Ok(if answer.is_port_validate {
                    PortEligibility::Eligible { message }
                } else {
                    PortEligibility::NotEligible { message }
                })
            },
        )
        .await
    }

    /// Corrects, resubmits or cancels a failed port-in. Effectful: see the
    /// [module docs](self) on reconciling.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "reach", customer_id = %customer_id, update = update.type_name()), err(level = tracing::Level::DEBUG))]
    pub async fn update_port_in(
        &self,
        customer_id: &CustomerId,
        update: &PortInUpdate,
    ) -> Result<PortInUpdateOutcome, ProviderError> {
        let body = update.to_wire(customer_id);
        self.call(
            PORT_IN_UPDATE,
            || {
                ProviderRequest::new(
                    Provider::Reach,
                    PORT_IN_UPDATE,
                    Method::PUT,
                    PORT_IN_UPDATE_PATH,
                    Effect::Effectful,
                )
                .json(&body)
            },
            |a| {
                if a.status() == StatusCode::CONFLICT {
                    return match conflict_body(&a)
                        .and_then(|b| Some((code_of(b.status.as_ref())?, b.message)))
                    {
                        Some((current, message)) => Ok(PortInUpdateOutcome::Conflict {
                            current,
                            message: message.as_deref().map(sanitize_message).unwrap_or_default(),
                        }),
                        None => Err(a.into_error()),
                    };
                }
                let accepted: wire::AsyncResponse = ok_json(PORT_IN_UPDATE, &a)?;
                Ok(PortInUpdateOutcome::Accepted {
                    transaction_id: optional_id(&a, accepted.transaction_id, TransactionId::new)?,
                    status: code_of(accepted.status.as_ref())
                        .ok_or_else(|| a.protocol_error("accepted update without a status"))?,
                })
            },
        )
        .await
    }

    /// Sends one request with the Reach headers; a 401 rebuilds the `Authorization` header
    /// and sends once more (through the token cache). Every other answer goes to `read`.
    async fn call<T>(
        &self,
        operation: Operation,
        build: impl Fn() -> Result<ProviderRequest, ProviderError>,
        read: impl Fn(HttpResponse) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let (build, read) = (&build, &read);
        self.auth
            .with_token(|token: Token| async move {
                let request = build()?
                    .secret_header(AUTHORIZATION, token.secret())?
                    .secret_header(HeaderName::from_static(API_KEY_HEADER), &self.api_key)?
                    .header(ACCEPT, HeaderValue::from_static("application/json"));
                let answer = self.http.send_raw(request).await?;
                if answer.status() == StatusCode::UNAUTHORIZED {
                    tracing::debug!(provider = "reach", %operation, "401: rebuilding the Authorization header");
                    return Err(answer.into_error());
                }
                read(answer)
            })
            .await
    }
}

/// A success answer parsed as `T`; otherwise the error for its status.
fn ok_json<T: serde::de::DeserializeOwned>(
    operation: Operation,
    answer: &HttpResponse,
) -> Result<T, ProviderError> {
    if answer.status().is_success() {
        answer.json()
    } else {
        Err(error_of(operation, answer.clone()))
    }
}

/// A 400 (or 422) whose `errorCode` is a business reason is a refusal; anything else follows
/// the shared table.
fn error_of(operation: Operation, answer: HttpResponse) -> ProviderError {
    if matches!(answer.status().as_u16(), 400 | 422)
        && let Ok(body) = serde_json::from_slice::<wire::AsyncResponse>(answer.body())
        && let Some(code) = body
            .error_code
            .filter(|c| !c.is_empty() && c != error_code::INVALID_REQUEST)
    {
        return ProviderError::Refused {
            provider: Provider::Reach,
            operation,
            code: Some(sanitize_message(&code)),
            message: body
                .message
                .as_deref()
                .map(sanitize_message)
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "refused without a message".to_owned()),
        };
    }
    answer.into_error()
}

fn conflict_body(answer: &HttpResponse) -> Option<wire::AsyncResponse> {
    serde_json::from_slice(answer.body()).ok()
}

/// An activation code sent as a number (or a string of digits).
fn code_of(status: Option<&serde_json::Value>) -> Option<ActivationCode> {
    let code = match status? {
        serde_json::Value::Number(n) => n.as_i64()?,
        serde_json::Value::String(s) if s.len() <= 4 => s.parse().ok()?,
        _ => return None,
    };
    Some(ActivationCode::from_code(code))
}

fn optional_id<T>(
    answer: &HttpResponse,
    id: Option<String>,
    make: impl Fn(String) -> Result<T, ProviderError>,
) -> Result<Option<T>, ProviderError> {
    id.map(|id| make(id).map_err(|_| answer.protocol_error("an id in the answer is invalid")))
        .transpose()
}

fn plan(answer: &HttpResponse, body: wire::PlanBody) -> Result<Plan, ProviderError> {
    let plan_id = |code: String| {
        PlanId::new(code).map_err(|_| answer.protocol_error("a plan with an invalid serviceCode"))
    };
    if body.up_gradable_to.len() > MAX_PLAN_LINKS || body.down_gradable_to.len() > MAX_PLAN_LINKS {
        return Err(answer.protocol_error(format!(
            "a plan with more than {MAX_PLAN_LINKS} upgrade or downgrade targets"
        )));
    }
    Ok(Plan {
        service_code: plan_id(body.service_code)?,
        name: body.name.as_deref().map(sanitize_message),
        base_line_price: body.base_line_price,
        max_lines: body.max_lines,
        fcc_label: body.fcc_label,
        up_gradable_to: body
            .up_gradable_to
            .into_iter()
            .map(plan_id)
            .collect::<Result<_, _>>()?,
        down_gradable_to: body
            .down_gradable_to
            .into_iter()
            .map(plan_id)
            .collect::<Result<_, _>>()?,
    })
}

fn date(
    answer: &HttpResponse,
    text: Option<&str>,
    what: &str,
) -> Result<Option<DateTime<Utc>>, ProviderError> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| answer.protocol_error(format!("{what} is not an RFC 3339 date")))
    })
    .transpose()
}

fn purchase_status(
    answer: &HttpResponse,
    body: wire::PurchaseStatusResponse,
) -> Result<PurchaseStatus, ProviderError> {
    let code = PurchaseStatusCode::parse(&body.status)
        .ok_or_else(|| answer.protocol_error("unknown purchase status"))?;
    let payment_status = body.payment_status.as_deref().map(sanitize_message);
    Ok(match code {
        PurchaseStatusCode::Initiated => PurchaseStatus::Initiated,
        PurchaseStatusCode::PaymentPending => {
            let link = match body.link {
                Some(wire::LinkBody {
                    url: Some(url),
                    expire_date,
                }) => {
                    let url = Url::parse(&url)
                        .ok()
                        .filter(|u| matches!(u.scheme(), "http" | "https"))
                        .ok_or_else(|| answer.protocol_error("link.url is not an http(s) URL"))?;
                    Some(PaymentLink {
                        url,
                        expire_date: date(answer, expire_date.as_deref(), "link.expireDate")?,
                    })
                }
                _ => None,
            };
            PurchaseStatus::PaymentPending {
                link,
                payment_status,
            }
        }
        PurchaseStatusCode::PaymentProcessing => {
            PurchaseStatus::PaymentProcessing { payment_status }
        }
        PurchaseStatusCode::Completed => PurchaseStatus::Completed(CompletedPurchase {
            customer_id: body
                .customer_id
                .ok_or_else(|| answer.protocol_error("COMPLETED without a customerId"))
                .and_then(|id| {
                    CustomerId::new(id)
                        .map_err(|_| answer.protocol_error("COMPLETED with an invalid customerId"))
                })?,
            client_account_id: optional_id(answer, body.client_account_id, ClientAccountId::new)?,
            sim_type: body.sim_type.as_deref().and_then(SimType::parse),
            shipment_status: body.shipment_status.as_deref().map(sanitize_message),
            payment_status,
        }),
        PurchaseStatusCode::Failed => PurchaseStatus::Failed {
            payment_status,
            payment_status_desc: body.payment_status_desc.as_deref().map(sanitize_message),
        },
    })
}

fn activation_status(
    answer: &HttpResponse,
    body: &wire::ActivationStatusResponse,
) -> Result<ActivationStatus, ProviderError> {
    let activation_msg = body.activation_msg.as_deref().map(sanitize_message);
    Ok(match ActivationCode::from_code(body.status) {
        ActivationCode::Inactive => ActivationStatus::Inactive,
        ActivationCode::InProgress => ActivationStatus::InProgress,
        ActivationCode::Active => ActivationStatus::Active {
            mobile_no: body
                .mobile_no
                .as_deref()
                .and_then(|m| Mdn::parse(m).ok())
                .ok_or_else(|| answer.protocol_error("ACTIVE without a valid mobileNo"))?,
            plan_name: body.plan_name.as_deref().map(sanitize_message),
            activation_date: date(answer, body.activation_date.as_deref(), "activationDate")?,
        },
        ActivationCode::Failed => ActivationStatus::Failed { activation_msg },
        ActivationCode::PortingInProgress => ActivationStatus::PortingInProgress,
        ActivationCode::PortingFailed => ActivationStatus::PortingFailed { activation_msg },
        ActivationCode::PortCancelled => ActivationStatus::PortCancelled,
        ActivationCode::Other(code) => ActivationStatus::Other {
            code,
            activation_msg,
        },
    })
}
