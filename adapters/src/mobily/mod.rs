//! Mobily (Saudi Arabia) developer-portal APIs: the 17-step eSIM checkout (journey J1).
//!
//! Source: `mobily-developer-portal.txt` (the portal's export). Line numbers below refer to
//! that file. The document lists products and paths, **no methods, bodies, answers or status
//! codes**: everything marked *ours* is our choice, written down here and implemented the
//! same way by the simulator ([`crate::sim::mobily`]).
//!
//! # Authentication
//!
//! Every call carries the `apikey` header ("Prerequisites: apikey", lines 9 and 24) and
//! `Authorization: Bearer <JWT>` ("JWT: You need to generate the JWT from Authentication &
//! Authorization Product", line 10). The JWT comes from **`POST
//! /apis/apigee-oauth/access-token?grant_type=client_credentials`** ("Apigee Client Access
//! Token Generation", line 190) with `Authorization: Basic base64(client_id:client_secret)`
//! and the `apikey`. *Ours:* we chose Apigee over Keycloak
//! (`/auth/realms/mobily/protocol/openid-connect/token`, line 180) because the `apikey`
//! header is an Apigee concept (the gateway in front of every product), and because its
//! canonical form needs no request body (Keycloak needs a form-encoded body). The answer is
//! Apigee's (`access_token`, `expires_in` as a string of seconds, `token_type`
//! `BearerToken`); `expires_in` is also accepted as a number (Keycloak's form). The
//! simulator serves both token paths.
//!
//! The token is cached in a [`TokenCache`] shared by every journey using this client (one
//! refresh at a time), refreshed ahead of expiry, and renewed **once** on a 401; a second
//! 401 is a terminal [`ProviderError::Auth`]. Gateway errors are Apigee's
//! `{"fault":{"faultstring", "detail":{"errorcode"}}}`; the `faultstring` becomes the error
//! message.
//!
//! # Endpoints by journey step
//!
//! Effect: **E** effectful (money or inventory; a lost answer is `OutcomeUnknown`), **R**
//! read-only or safe to repeat (a lost answer is retryable). Key: the
//! [`IdempotencyKey`] sent as `X-Idempotency-Key` (*ours*; also in a body field where the
//! document names one).
//!
//! | Step | Client call | Endpoint | Lines | Effect | Key | After `OutcomeUnknown` |
//! |---|---|---|---|---|---|---|
//! | 1 | [`products`](MobilyClient::products) | `GET /wcm/api/products` (*ours*: WCM has no path in the document) | 292-293 | R | - | retry |
//! | 2 | [`authenticate`](MobilyClient::authenticate) | `POST /apis/apigee-oauth/access-token` | 10, 190 | R | - | retry |
//! | 3 | [`product_details`](MobilyClient::product_details) | `POST /catalog-agg-query/graphql` | 298-303 | R | - | retry |
//! | 3 | [`create_cart`](MobilyClient::create_cart) | `POST /api/shopping-cart/v3/shoppingCart` | 273, 306 | R¹ | - | retry (an orphan cart costs nothing) |
//! | 3 | [`update_and_validate`](MobilyClient::update_and_validate) | `POST /mobily-shopping-cart-management/api/update-and-validate` | 276, 307 | R | - | retry |
//! | 4-14 | [`checkout_structure`](MobilyClient::checkout_structure) | `POST /checkout-api/v3/checkout/structure` | 49, 312 | R | - | retry |
//! | 4-14 | [`capture`](MobilyClient::capture) | `POST /checkout-api/v3/checkout/captureData` | 48, 313 | R² | - | retry (a section is overwritten) |
//! | 6 | [`tcc_eligibility`](MobilyClient::tcc_eligibility) | `POST /bmi-tcc-eligibility/services/tcc/eligibilityCheck` | 257, 326 | R | - | retry |
//! | 6, 11 | [`customer_products`](MobilyClient::customer_products) | `POST /bmi-customer-management/services/installedbase/getCustomerProductDetails` | 33, 327, 362 | R | - | retry |
//! | 7 | [`available_numbers`](MobilyClient::available_numbers) | `POST /resource-pool-management/services/resourcePoolManagement/AvailabilityCheck` | 245, 334 | R | - | retry |
//! | 7 | [`reserve_number`](MobilyClient::reserve_number) | `POST .../resourcePoolManagement/Reservation` | 246, 335 | **E** | header | re-send with the same key: the original reservation is returned |
//! | 8 | [`dues`](MobilyClient::dues) | `POST /bmi-customer-unpaidbills/services/customer/dues` | 251, 343 | R | - | retry |
//! | 9 | [`package_eligibility`](MobilyClient::package_eligibility) | `POST /package-eligibilty-check` (sic) | 54, 348-349 | R | - | retry |
//! | 10 | [`security_deposit`](MobilyClient::security_deposit) | `POST /bmi-customer-security-deposit/services/deposit/get` | 240, 354 | R | - | retry |
//! | 11 | [`generate_otp`](MobilyClient::generate_otp) | `POST /mobily-otp-services/services/otp/generation` | 62, 363 | R³ | - | generate again (the old code dies) |
//! | 11 | [`regenerate_otp`](MobilyClient::regenerate_otp) | `POST /mobily-otp-services/services/otp/regeneration` | 63, 207, 364 | R³ | - | retry |
//! | 11 | [`validate_otp`](MobilyClient::validate_otp) | `POST /mobily-otp-services/otp-rayah/validate` | 60, 365 | R⁴ | - | retry |
//! | 12 | [`nafath_initiate`](MobilyClient::nafath_initiate) | `POST /cem/nafath/auth/v1/initiate` | 197, 370-372 | R³ | - | initiate again (the customer picks the newest number) |
//! | 12 | [`nafath_status`](MobilyClient::nafath_status) | `POST /cem/nafath/auth/v1/tokeninfo` | 198, 373 | R | - | retry |
//! | 13 | [`sim_details`](MobilyClient::sim_details) | `POST /bmi-sim-details/services/sim/get` | 41, 380 | R⁵ | - | retry (one ICCID per number) |
//! | 13 | [`tcc_register`](MobilyClient::tcc_register) | `POST /bmi-tcc-eligibility/services/tcc/register` | 256, 381 | **E** | header | re-send with the same key |
//! | 15 | [`post_order`](MobilyClient::post_order) | `POST /OrderGenerator/postProductOrder` | 225, 393 | **E** | header + `externalOrderId` | [`order_inquiry`](MobilyClient::order_inquiry) by `externalOrderId`, or re-send with the same key |
//! | 15 | [`create_session`](MobilyClient::create_session) | `POST /api/payment/v2/createSession` | 394-397 | R¹ | - | retry (an unused session expires) |
//! | 15 | [`create_payment`](MobilyClient::create_payment) | `POST /api/payment/v2/createPayment` | 398-399 | **E** | header + `paymentTransId` | [`payment_status`](MobilyClient::payment_status) by `paymentTransId` |
//! | 15 | [`confirm_payment`](MobilyClient::confirm_payment) | `POST /api/payment/v2/confirmPayment` | 400 | **E** | header + `paymentTransId` | [`payment_status`](MobilyClient::payment_status), or confirm again |
//! | 15 | [`payment_status`](MobilyClient::payment_status) | `GET /cem/dpc/inquiry/v1/request/{refId}` | 126 | R | - | retry |
//! | 16 | [`order_inquiry`](MobilyClient::order_inquiry) | `POST /OrderGenerator/orderTracking/orderInquiry` | 228, 402-403 | R | - | retry |
//! | 17 | [`qr_code`](MobilyClient::qr_code) | `POST /mobily-qr-code/services/qr/get` (also `/qr/get`, line 234) | 405-408 | R | - | retry |
//! | saga | [`void_payment`](MobilyClient::void_payment) | `POST /cem/bff/ecom/v1/initiatePayment`, `operation: "Void"` | 134 | **E** | header + `channelTransactionId` | re-send with the same key, or [`payment_status`](MobilyClient::payment_status) shows `VOIDED` |
//! | saga | [`cancel_mnp_order`](MobilyClient::cancel_mnp_order) | `POST /OrderGenerator/cancelMNPOrder` | 222 | **E** | header | re-send (cancelling a cancelled order succeeds) or [`order_inquiry`](MobilyClient::order_inquiry) |
//! | saga | [`cancel_order`](MobilyClient::cancel_order) | `PUT /OrderGenerator/updateOrderStatus/{orderId}` | 227 | **E** | header | as above |
//!
//! ¹ Creates provider state but moves no money or inventory; a duplicate is abandoned.
//! ² Capturing a section again replaces it (upsert), so repeating is harmless.
//! ³ Sends an SMS or a Nafath push: a side effect on the customer's phone, not on money or
//! inventory. Repeating supersedes the earlier code or request, so these are retried freely.
//! ⁴ A repeat may use up one attempt; validating a code that was already accepted answers
//! "verified" again. ⁵ The simulator (and, we assume, Mobily) assigns one eSIM profile per
//! number, so repeating returns the same ICCID.
//!
//! Reconciling without a status query (reservation, TCC registration) relies on Mobily
//! honouring `X-Idempotency-Key`; the document does not say it does. **Verify before
//! go-live**; if it does not, reservations are still bounded (they lapse), and TCC
//! registration is per number, so a repeat registers the same line again.
//!
//! # Wire format (all *ours*)
//!
//! - Methods: `POST` with a JSON body, except the WCM list (`GET`), the payment inquiry (`GET`,
//!   `refId` in the path) and `updateOrderStatus` (`PUT`, `orderId` in the path). Personal
//!   data (national ids, numbers) is never put in a URL.
//! - Field names are camelCase, reusing the document's words: `shoppingCartId`,
//!   `productOfferingId`, `orderId`, `externalOrderId` (line 227 "by External Order Id"),
//!   `msisdn`, `iccid`, `nationalId`, `idType`, `sessionId`, `paymentTransId` (line 398
//!   "Payment Trans ID"), `refId` (line 126), `amount` + `currency`. Checkout section names
//!   are the document's, including `TCCEligibiliyCheck` (sic, line 328); see
//!   [`checkout::Section`].
//! - Numbers are `9665XXXXXXXX`; amounts are strings with two decimals (`"30.00"`) and
//!   `"currency": "SAR"`; ids are opaque strings.
//! - Every answer except GraphQL carries `{"code", "message"}`; `code` `"0000"` is success,
//!   the other codes are in [`codes`]. Business answers are **HTTP 200** with their code,
//!   like the BMI/EAI services; 400 (`4000`) is a malformed request, 404 (`4004`) an unknown
//!   id; gateway failures follow [`crate::http`].
//! - Normal business states are outcomes, not errors: [`EligibilityOutcome`],
//!   [`DuesOutcome`], [`PackageEligibility`], [`DepositOutcome`], [`OtpValidation`],
//!   [`NafathStatus`], [`PaymentOutcome`], [`ConfirmPaymentOutcome`], [`PaymentState`],
//!   [`VoidOutcome`], [`QrOutcome`]. Other non-success codes are
//!   [`ProviderError::Refused`] with the code.
//! - Nafath: we call `tokeninfo` (the spelling of the eSIM section, line 373, which J1
//!   follows); the Authentication section spells it `tokenInfo` (line 198); the simulator
//!   accepts both. The webhook Mobily sends us is described in [`nafath`].
//! - 3-D Secure: `createPayment` answers `PENDING_3DS` with `redirectUrl` (the bank page);
//!   the customer's browser comes back to our `returnUrl` with
//!   `?paymentId=&paymentTransId=&result=` ([`payment::ThreeDsReturn`]).
//! - Not used: the cart `PATCH` of sections 8 and 10 (lines 344, 355): dues and the accepted
//!   deposit are recorded through `captureData` sections instead.

pub mod catalog;
pub mod checkout;
pub mod eligibility;
pub mod nafath;
pub mod orders;
pub mod otp;
pub mod payment;
pub mod qr;
pub mod resources;
pub mod types;

mod auth;

use std::fmt;
use std::sync::Arc;

use http::header::{ACCEPT, AUTHORIZATION, HeaderName};
use http::{HeaderValue, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use self::catalog::{Cart, Product, ProductDetails};
pub use self::checkout::{
    CaptureData, CheckoutStructure, ContactDetails, NumberChoice, Section, SectionState, SimType,
};
pub use self::eligibility::{
    CustomerLookup, CustomerProducts, DepositOutcome, DuesOutcome, EligibilityOutcome, Line,
    PackageEligibility, SimDetails, TccRegistered, TccRegistration,
};
pub use self::nafath::{
    InboundError, NafathChallenge, NafathStatus, NafathWebhook, WebhookCredentials,
};
pub use self::orders::{OrderInfo, OrderLookup, OrderState, OrderType, PostedOrder};
pub use self::otp::{Language, OtpSent, OtpValidation};
pub use self::payment::{
    ConfirmPaymentOutcome, PaymentOutcome, PaymentRequest, PaymentSession, PaymentState,
    PaymentStatus, ThreeDsResult, ThreeDsReturn, VoidOutcome,
};
pub use self::qr::{QrCode, QrOutcome};
pub use self::resources::{NumberCategory, Reservation};
pub use self::types::*;
use crate::config::MobilyConfig;
use crate::error::{Operation, Provider, ProviderError};
use crate::http::{Effect, HttpClient, HttpResponse, ProviderRequest, classify_status};
use crate::redact::sanitize_message;
use crate::token::TokenCache;

/// The paths, exactly as the simulator serves them.
pub mod paths {
    /// WCM product list (*ours*: the document names WCM but no path).
    pub const PRODUCTS: &str = "/wcm/api/products";
    /// Apigee client-credentials token (line 190). The path the client uses.
    pub const APIGEE_TOKEN: &str = "/apis/apigee-oauth/access-token";
    /// Keycloak token (line 180). Served by the simulator, not used by the client.
    pub const KEYCLOAK_TOKEN: &str = "/auth/realms/mobily/protocol/openid-connect/token";
    /// Product catalogue GraphQL (line 303).
    pub const CATALOG_GRAPHQL: &str = "/catalog-agg-query/graphql";
    /// Create shopping cart (lines 273, 306).
    pub const SHOPPING_CART: &str = "/api/shopping-cart/v3/shoppingCart";
    /// Product offer qualification (lines 276, 307).
    pub const UPDATE_AND_VALIDATE: &str =
        "/mobily-shopping-cart-management/api/update-and-validate";
    /// Generate checkout structure (lines 49, 312).
    pub const CHECKOUT_STRUCTURE: &str = "/checkout-api/v3/checkout/structure";
    /// Capture a checkout section (lines 48, 313).
    pub const CAPTURE_DATA: &str = "/checkout-api/v3/checkout/captureData";
    /// TCC eligibility check (line 326).
    pub const TCC_ELIGIBILITY: &str = "/bmi-tcc-eligibility/services/tcc/eligibilityCheck";
    /// Customer account/product details (lines 327, 362).
    pub const CUSTOMER_PRODUCTS: &str =
        "/bmi-customer-management/services/installedbase/getCustomerProductDetails";
    /// Numbers available for reservation (line 334).
    pub const AVAILABILITY_CHECK: &str =
        "/resource-pool-management/services/resourcePoolManagement/AvailabilityCheck";
    /// Reserve a number (line 335).
    pub const RESERVATION: &str =
        "/resource-pool-management/services/resourcePoolManagement/Reservation";
    /// Overdue bills (line 343).
    pub const DUES: &str = "/bmi-customer-unpaidbills/services/customer/dues";
    /// Package eligibility, spelled as in the document (line 54).
    pub const PACKAGE_ELIGIBILITY: &str = "/package-eligibilty-check";
    /// Security deposit inquiry (line 354).
    pub const SECURITY_DEPOSIT: &str = "/bmi-customer-security-deposit/services/deposit/get";
    /// Generate an OTP (line 363).
    pub const OTP_GENERATION: &str = "/mobily-otp-services/services/otp/generation";
    /// Re-send an OTP (lines 207, 364).
    pub const OTP_REGENERATION: &str = "/mobily-otp-services/services/otp/regeneration";
    /// Validate an OTP (line 365).
    pub const OTP_VALIDATE: &str = "/mobily-otp-services/otp-rayah/validate";
    /// Nafath random number (lines 197, 372).
    pub const NAFATH_INITIATE: &str = "/cem/nafath/auth/v1/initiate";
    /// Nafath status inquiry, the eSIM section's spelling (line 373). Used by the client.
    pub const NAFATH_TOKENINFO: &str = "/cem/nafath/auth/v1/tokeninfo";
    /// Nafath status inquiry, the Authentication section's spelling (line 198). Served by
    /// the simulator too.
    pub const NAFATH_TOKENINFO_CAMEL: &str = "/cem/nafath/auth/v1/tokenInfo";
    /// Get SIM (line 380).
    pub const SIM_GET: &str = "/bmi-sim-details/services/sim/get";
    /// TCC registration (line 381).
    pub const TCC_REGISTER: &str = "/bmi-tcc-eligibility/services/tcc/register";
    /// Post the order from the cart (lines 225, 393).
    pub const POST_PRODUCT_ORDER: &str = "/OrderGenerator/postProductOrder";
    /// Payment session (line 394).
    pub const CREATE_SESSION: &str = "/api/payment/v2/createSession";
    /// 3-D Secure enrolment (line 398).
    pub const CREATE_PAYMENT: &str = "/api/payment/v2/createPayment";
    /// Proceed with the payment (line 400).
    pub const CONFIRM_PAYMENT: &str = "/api/payment/v2/confirmPayment";
    /// Payment request details by our reference (line 126), template.
    pub const PAYMENT_INQUIRY: &str = "/cem/dpc/inquiry/v1/request/{refId}";
    /// Prefix of [`PAYMENT_INQUIRY`].
    pub const PAYMENT_INQUIRY_PREFIX: &str = "/cem/dpc/inquiry/v1/request/";
    /// Authorize/Capture/Void for e-commerce channels (line 134); we send only `Void`.
    pub const INITIATE_PAYMENT: &str = "/cem/bff/ecom/v1/initiatePayment";
    /// Order tracking (line 228).
    pub const ORDER_INQUIRY: &str = "/OrderGenerator/orderTracking/orderInquiry";
    /// QR code enquiry (line 408). Used by the client.
    pub const QR_GET: &str = "/mobily-qr-code/services/qr/get";
    /// QR code, the QR product's short path (line 234). Served by the simulator too.
    pub const QR_GET_SHORT: &str = "/qr/get";
    /// Cancel an MNP order (line 222).
    pub const CANCEL_MNP_ORDER: &str = "/OrderGenerator/cancelMNPOrder";
    /// Update an order's status (line 227), template.
    pub const UPDATE_ORDER_STATUS: &str = "/OrderGenerator/updateOrderStatus/{orderId}";
    /// Prefix of [`UPDATE_ORDER_STATUS`].
    pub const UPDATE_ORDER_STATUS_PREFIX: &str = "/OrderGenerator/updateOrderStatus/";
}

/// Header names.
pub mod headers {
    /// The gateway key on every call.
    pub const APIKEY: &str = "apikey";
    /// Our idempotency key on effectful calls (*ours*).
    pub const IDEMPOTENCY_KEY: &str = "x-idempotency-key";
}

/// The `code` values of Mobily answers. The document gives none; these are ours, shared by
/// the client and the simulator.
pub mod codes {
    /// Success.
    pub const SUCCESS: &str = "0000";
    /// TCC: the customer may not have another line (CST limit).
    pub const NOT_ELIGIBLE: &str = "1101";
    /// The customer may not buy this package.
    pub const PACKAGE_NOT_ELIGIBLE: &str = "1102";
    /// TCC refused the registration.
    pub const TCC_REGISTRATION_REFUSED: &str = "1103";
    /// The customer has overdue bills (postpaid).
    pub const DUES_OWED: &str = "1201";
    /// The number is not available (taken, or reserved by someone else).
    pub const NUMBER_UNAVAILABLE: &str = "1301";
    /// Wrong OTP; `attemptsLeft` says how many remain.
    pub const OTP_WRONG: &str = "1401";
    /// The OTP expired: regenerate.
    pub const OTP_EXPIRED: &str = "1402";
    /// No attempts left on this OTP.
    pub const OTP_LOCKED: &str = "1403";
    /// Too many regenerations.
    pub const OTP_TOO_MANY_RESENDS: &str = "1404";
    /// Tahaqoq: the number does not belong to the id.
    pub const OTP_ID_MISMATCH: &str = "1405";
    /// Nafath: the customer rejected the request.
    pub const NAFATH_REJECTED: &str = "1501";
    /// Nafath: the id has no Nafath account.
    pub const NAFATH_NOT_REGISTERED: &str = "1502";
    /// The payment was declined.
    pub const PAYMENT_DECLINED: &str = "1601";
    /// confirmPayment before the customer finished 3-D Secure.
    pub const PAYMENT_PENDING_3DS: &str = "1602";
    /// Void of a payment that is not authorised (never was, or already voided).
    pub const NOTHING_TO_VOID: &str = "1603";
    /// The QR code is not generated yet.
    pub const QR_NOT_READY: &str = "1701";
    /// The order is too far along to cancel.
    pub const ORDER_NOT_CANCELLABLE: &str = "1801";
    /// cancelMNPOrder for an order that is not MNP (or the reverse).
    pub const WRONG_ORDER_TYPE: &str = "1802";
    /// The cart does not qualify (product offer qualification).
    pub const CART_NOT_QUALIFIED: &str = "1901";
    /// The checkout misses a required section.
    pub const CHECKOUT_INCOMPLETE: &str = "1902";
    /// 400: malformed request.
    pub const INVALID_REQUEST: &str = "4000";
    /// 404: unknown id.
    pub const NOT_FOUND: &str = "4004";
}

/// Operation names, `mobily.<call>`.
pub mod ops {
    use crate::error::Operation;

    macro_rules! ops {
        ($($name:ident = $text:expr;)*) => {
            $(#[doc = concat!("`", $text, "`")] pub const $name: Operation = Operation::new($text);)*
        };
    }
    ops! {
        TOKEN = "mobily.token";
        PRODUCTS = "mobily.products";
        PRODUCT_DETAILS = "mobily.product_details";
        CREATE_CART = "mobily.create_cart";
        UPDATE_AND_VALIDATE = "mobily.update_and_validate";
        CHECKOUT_STRUCTURE = "mobily.checkout_structure";
        CAPTURE_DATA = "mobily.capture_data";
        TCC_ELIGIBILITY = "mobily.tcc_eligibility";
        CUSTOMER_PRODUCTS = "mobily.customer_products";
        AVAILABILITY_CHECK = "mobily.availability_check";
        RESERVE_NUMBER = "mobily.reserve_number";
        DUES = "mobily.dues";
        PACKAGE_ELIGIBILITY = "mobily.package_eligibility";
        SECURITY_DEPOSIT = "mobily.security_deposit";
        OTP_GENERATE = "mobily.otp_generate";
        OTP_REGENERATE = "mobily.otp_regenerate";
        OTP_VALIDATE = "mobily.otp_validate";
        NAFATH_INITIATE = "mobily.nafath_initiate";
        NAFATH_STATUS = "mobily.nafath_status";
        SIM_DETAILS = "mobily.sim_details";
        TCC_REGISTER = "mobily.tcc_register";
        POST_ORDER = "mobily.post_order";
        CREATE_SESSION = "mobily.create_session";
        CREATE_PAYMENT = "mobily.create_payment";
        CONFIRM_PAYMENT = "mobily.confirm_payment";
        PAYMENT_STATUS = "mobily.payment_status";
        VOID_PAYMENT = "mobily.void_payment";
        ORDER_INQUIRY = "mobily.order_inquiry";
        QR_CODE = "mobily.qr_code";
        CANCEL_MNP_ORDER = "mobily.cancel_mnp_order";
        CANCEL_ORDER = "mobily.cancel_order";
    }
}

/// The Mobily client. Cheap to clone; clones share the HTTP client and the JWT cache, so
/// every journey should use clones of one client per set of credentials.
#[derive(Clone)]
pub struct MobilyClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    apikey: SecretString,
    tokens: TokenCache<auth::TokenFetcher>,
    callbacks: nafath::CallbackTarget,
    return_url: url::Url,
}

impl fmt::Debug for MobilyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MobilyClient")
            .field("base_url", &self.inner.http.base_url().as_str())
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

/// One endpoint: what to log, where, and how to classify a lost answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Endpoint {
    pub operation: Operation,
    pub method: Verb,
    pub template: &'static str,
    pub effect: Effect,
}

impl Endpoint {
    pub(crate) const fn post(operation: Operation, template: &'static str, effect: Effect) -> Self {
        Self {
            operation,
            method: Verb::Post,
            template,
            effect,
        }
    }
}

/// The HTTP methods Mobily calls use (a `Copy` stand-in for [`Method`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Post,
    Put,
}

impl Verb {
    fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Put => Method::PUT,
        }
    }
}

/// The `{code, message}` every answer but GraphQL carries.
#[derive(Debug, Deserialize)]
struct Status {
    #[serde(default, deserialize_with = "wire::string_or_number_opt")]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// A 2xx answer with its status parsed.
#[derive(Debug)]
pub(crate) struct Answer {
    pub response: HttpResponse,
    pub operation: Operation,
    /// `code`, `"0000"` when absent on a 2xx answer.
    pub code: String,
    /// `message`, sanitized (empty when absent).
    pub message: String,
}

impl Answer {
    pub(crate) fn is_success(&self) -> bool {
        self.code == codes::SUCCESS
    }

    /// Parses the body (tolerant: unknown fields are ignored).
    pub(crate) fn body<T: DeserializeOwned>(&self) -> Result<T, ProviderError> {
        self.response.json()
    }

    /// A [`ProviderError::Refused`] carrying this answer's code and message.
    pub(crate) fn refused(&self) -> ProviderError {
        ProviderError::Refused {
            provider: Provider::Mobily,
            operation: self.operation,
            code: Some(sanitize_message(&self.code)),
            message: if self.message.is_empty() {
                "refused without a message".to_owned()
            } else {
                self.message.clone()
            },
        }
    }

    /// `Ok` on success, otherwise the refusal.
    pub(crate) fn success_or_refused(&self) -> Result<(), ProviderError> {
        if self.is_success() {
            Ok(())
        } else {
            Err(self.refused())
        }
    }

    /// A protocol error about this answer.
    pub(crate) fn protocol(&self, reason: &str) -> ProviderError {
        self.response.protocol_error(reason)
    }
}

impl MobilyClient {
    /// Builds the client from its configuration. No call is made until the first request.
    pub fn new(config: &MobilyConfig) -> Result<Self, ProviderError> {
        config.validate().map_err(|e| ProviderError::Config {
            provider: Provider::Mobily,
            operation: Operation::new("mobily.config"),
            reason: e.to_string(),
        })?;
        let http = HttpClient::new(Provider::Mobily, &config.base_url, &config.http)?;
        let fetcher = auth::TokenFetcher::new(
            http.clone(),
            config.apikey.clone(),
            &config.client_id,
            &config.client_secret,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                tokens: TokenCache::new(Provider::Mobily, fetcher),
                http,
                apikey: config.apikey.clone(),
                callbacks: nafath::CallbackTarget::from_config(config),
                return_url: config.payment_return_url.clone(),
            }),
        })
    }

    /// Step 2: obtains (or reuses) the JWT, so a misconfiguration shows before the journey
    /// starts. Every call does this by itself; calling it is optional.
    pub async fn authenticate(&self) -> Result<(), ProviderError> {
        self.inner.tokens.get().await.map(|_| ())
    }

    /// Sends a request with the `apikey`, the JWT (renewed once on a 401) and the optional
    /// idempotency key, and returns any answer that is not a 401.
    pub(crate) async fn send<B: Serialize + Sync>(
        &self,
        endpoint: Endpoint,
        path: Option<&str>,
        body: Option<&B>,
        key: Option<&IdempotencyKey>,
    ) -> Result<HttpResponse, ProviderError> {
        let inner = &self.inner;
        inner
            .tokens
            .with_token(|token| async move {
                let mut request = ProviderRequest::new(
                    Provider::Mobily,
                    endpoint.operation,
                    endpoint.method.method(),
                    endpoint.template,
                    endpoint.effect,
                );
                if let Some(path) = path {
                    request = request.path(path);
                }
                let bearer =
                    SecretString::from(format!("Bearer {}", token.secret().expose_secret()));
                request = request
                    .secret_header(HeaderName::from_static(headers::APIKEY), &inner.apikey)?
                    .secret_header(AUTHORIZATION, &bearer)?
                    .header(ACCEPT, HeaderValue::from_static("application/json"));
                if let Some(key) = key {
                    let value = HeaderValue::from_str(key.as_str())
                        .map_err(|_| invalid("idempotency key is not a header value"))?;
                    request =
                        request.header(HeaderName::from_static(headers::IDEMPOTENCY_KEY), value);
                }
                if let Some(body) = body {
                    request = request.json(body)?;
                }
                let answer = inner.http.send_raw(request).await?;
                if answer.status() == StatusCode::UNAUTHORIZED {
                    return Err(error_from(endpoint, &answer));
                }
                Ok(answer)
            })
            .await
    }

    /// [`Self::send`], then: a non-2xx answer is an error; a 2xx answer has its
    /// `{code, message}` parsed.
    pub(crate) async fn call<B: Serialize + Sync>(
        &self,
        endpoint: Endpoint,
        body: &B,
        key: Option<&IdempotencyKey>,
    ) -> Result<Answer, ProviderError> {
        let response = self.send(endpoint, None, Some(body), key).await?;
        answer_of(endpoint, response)
    }

    pub(crate) fn callbacks(&self) -> &nafath::CallbackTarget {
        &self.inner.callbacks
    }

    pub(crate) fn return_url(&self) -> &url::Url {
        &self.inner.return_url
    }
}

/// Checks the status of an answer and parses its `{code, message}`.
pub(crate) fn answer_of(
    endpoint: Endpoint,
    response: HttpResponse,
) -> Result<Answer, ProviderError> {
    if !response.status().is_success() {
        return Err(error_from(endpoint, &response));
    }
    let status: Status = response.json()?;
    Ok(Answer {
        operation: endpoint.operation,
        code: status.code.unwrap_or_else(|| codes::SUCCESS.to_owned()),
        message: status
            .message
            .as_deref()
            .map(sanitize_message)
            .unwrap_or_default(),
        response,
    })
}

/// A non-2xx answer as an error by the shared table, with the message taken from Apigee's
/// `fault.faultstring` or its token errors (`Error`, `error_description`) when present.
pub(crate) fn error_from(endpoint: Endpoint, response: &HttpResponse) -> ProviderError {
    let body = response.body();
    let gateway_message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let text = v
                .pointer("/fault/faultstring")
                .or_else(|| v.get("Error"))
                .or_else(|| v.get("error_description"))?;
            text.as_str().map(str::to_owned)
        });
    let rewritten;
    let body: &[u8] = match gateway_message {
        Some(message) => {
            rewritten =
                serde_json::to_vec(&serde_json::json!({ "message": message })).unwrap_or_default();
            &rewritten
        }
        None => body,
    };
    classify_status(
        Provider::Mobily,
        endpoint.operation,
        endpoint.effect,
        response.status(),
        response.headers(),
        body,
    )
}

/// Serde helpers shared by the wire structs of every product.
pub mod wire {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StringOrNumber {
        String(String),
        Number(serde_json::Number),
    }

    /// Reads a string or a number as text.
    pub fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(match StringOrNumber::deserialize(d)? {
            StringOrNumber::String(s) => s,
            StringOrNumber::Number(n) => n.to_string(),
        })
    }

    /// `#[serde(with = "url_field")]`: a URL as a string (the workspace's `url` has no serde
    /// feature).
    pub mod url_field {
        use serde::{Deserialize, Deserializer, Serializer};
        use url::Url;

        /// Serializes a URL as its string.
        pub fn serialize<S: Serializer>(url: &Url, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(url.as_str())
        }

        /// Parses an absolute http(s) URL.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
            let text = String::deserialize(d)?;
            let url = Url::parse(&text).map_err(|_| serde::de::Error::custom("invalid URL"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(serde::de::Error::custom("URL must be http(s)"));
            }
            Ok(url)
        }
    }

    /// `#[serde(default, with = "url_field_opt")]`: an optional URL.
    pub mod url_field_opt {
        use serde::{Deserialize, Deserializer, Serializer};
        use url::Url;

        /// Serializes an optional URL (call with `skip_serializing_if = "Option::is_none"`).
        pub fn serialize<S: Serializer>(url: &Option<Url>, s: S) -> Result<S::Ok, S::Error> {
            match url {
                Some(url) => super::url_field::serialize(url, s),
                None => s.serialize_none(),
            }
        }

        /// Parses an optional absolute http(s) URL.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(with = "super::url_field")] Url);
            Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
        }
    }

    /// Reads an optional string or number as text.
    pub fn string_or_number_opt<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<String>, D::Error> {
        Ok(Option::<StringOrNumber>::deserialize(d)?.map(|v| match v {
            StringOrNumber::String(s) => s,
            StringOrNumber::Number(n) => n.to_string(),
        }))
    }
}
