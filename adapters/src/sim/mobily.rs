//! The Mobily simulator: every endpoint of the eSIM checkout (journey J1) behind a
//! simulated Apigee gateway, with the wire format documented in [`crate::mobily`].
//!
//! - **Gateway** ([`gateway`]): `apikey` missing or wrong is 401 with Apigee's fault body;
//!   [`MobilyBehaviour::apikey_blocked`] makes it 403. Every other call needs a JWT from
//!   `POST /apis/apigee-oauth/access-token` (Basic client credentials, `grant_type` in the
//!   query) or `POST /auth/realms/mobily/protocol/openid-connect/token` (Keycloak form body);
//!   missing, unknown or expired tokens are 401. Tokens live
//!   [`MobilyBehaviour::token_lifetime`]; [`MobilySim::expire_tokens`] expires them all.
//! - **World** ([`world`], [`flows`]): a fixed catalogue ([`CATALOGUE`]), customers by
//!   national id ([`MobilySim::set_customer`]: lines, dues, deposit, refusals), carts whose
//!   checkout needs the sections of the product and number option, a pool of numbers, one
//!   eSIM profile per number, OTP codes ([`MobilySim::otp_for`]), Nafath requests
//!   ([`NafathPolicy`], [`MobilySim::nafath_answer`]) whose webhook goes to the caller's URI
//!   with the caller's Basic credentials, card payments with a bank page for 3-D Secure
//!   ([`ThreeDsPolicy`], [`MobilySim::complete_3ds`], [`MobilyBehaviour::three_ds_auto`]),
//!   orders that move on with tracking inquiries, and QR codes ready after
//!   [`QrPolicy`].
//! - **Ledger**: [`EffectKind::Reservation`], [`EffectKind::Registration`] (TCC),
//!   [`EffectKind::Order`], [`EffectKind::Payment`] (authorised), [`EffectKind::Void`],
//!   [`EffectKind::Cancel`], each keyed by the caller's `X-Idempotency-Key` (for payments:
//!   `paymentTransId`), subject the line's number. A repeat with the same key replays the
//!   first answer without a new effect.
//! - **Faults**: the [`FaultPlan`] is asked once per call after authentication, by the
//!   endpoint names in [`endpoints`]. [`Fault::Refusal`](crate::sim::Fault::Refusal)
//!   answers HTTP 200 with the given code, so `Fault::refusal(codes::NOT_ELIGIBLE, ..)` on
//!   the eligibility endpoint is a not-eligible answer, and so on.

pub mod commerce;
pub mod customers;
pub mod flows;
pub mod gateway;
mod handlers;
pub mod payments;
pub mod world;

use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post, put};
use secrecy::SecretString;
use tokio::time::Instant;
use url::Url;

pub use self::commerce::AutoThreeDs;
use self::flows::FlowRules;
pub use self::flows::NafathPolicy;
use self::gateway::{Auth, TokenBook, api};
pub use self::payments::ThreeDsPolicy;
pub use self::world::{CATALOGUE, CustomerProfile, QrPolicy, SimProduct};
use self::world::{World, WorldRules};
use crate::config::{MobilyCallbacks, MobilyConfig};
use crate::error::Provider;
use crate::mobily::nafath::NafathStatus;
use crate::mobily::orders::{OrderState, OrderType};
use crate::mobily::payment::PaymentStatus;
use crate::mobily::{Msisdn, NationalId, paths};
use crate::redact::mask_msisdn;
use crate::sim::callback::{CallbackSender, CallbackSettings, DeliveryPlan};
use crate::sim::fault::{FaultControl, FaultPlan};
use crate::sim::ledger::{EffectKind, Ledger};
use crate::sim::server::{RequestLog, RunningServer, lock, serve};

/// Fault-plan names of the endpoints.
pub mod endpoints {
    macro_rules! names {
        ($($name:ident = $text:expr;)*) => {
            $(#[doc = concat!("`", $text, "`")] pub const $name: &str = $text;)*
        };
    }
    names! {
        TOKEN = "token";
        PRODUCTS = "products";
        GRAPHQL = "graphql";
        SHOPPING_CART = "shoppingCart";
        UPDATE_AND_VALIDATE = "updateAndValidate";
        CHECKOUT_STRUCTURE = "checkoutStructure";
        CAPTURE_DATA = "captureData";
        TCC_ELIGIBILITY = "eligibilityCheck";
        CUSTOMER_PRODUCTS = "getCustomerProductDetails";
        AVAILABILITY_CHECK = "AvailabilityCheck";
        RESERVATION = "Reservation";
        DUES = "dues";
        PACKAGE_ELIGIBILITY = "packageEligibility";
        SECURITY_DEPOSIT = "deposit";
        OTP_GENERATION = "otpGeneration";
        OTP_REGENERATION = "otpRegeneration";
        OTP_VALIDATE = "otpValidate";
        NAFATH_INITIATE = "nafathInitiate";
        NAFATH_TOKENINFO = "nafathTokeninfo";
        SIM_GET = "simGet";
        TCC_REGISTER = "tccRegister";
        POST_PRODUCT_ORDER = "postProductOrder";
        CREATE_SESSION = "createSession";
        CREATE_PAYMENT = "createPayment";
        CONFIRM_PAYMENT = "confirmPayment";
        PAYMENT_INQUIRY = "paymentInquiry";
        INITIATE_PAYMENT = "initiatePayment";
        ORDER_INQUIRY = "orderInquiry";
        QR_GET = "qrGet";
        CANCEL_MNP_ORDER = "cancelMNPOrder";
        UPDATE_ORDER_STATUS = "updateOrderStatus";
    }
}

/// The API key the simulator accepts unless configured otherwise.
pub const DEFAULT_APIKEY: &str = "handover-sim-mobily-apikey";
/// The client id the simulator accepts unless configured otherwise.
pub const DEFAULT_CLIENT_ID: &str = "handover-sim";
/// The client secret the simulator accepts unless configured otherwise.
pub const DEFAULT_CLIENT_SECRET: &str = "handover-sim-mobily-client-secret";

/// How the simulated Mobily behaves. Change it while running with
/// [`MobilySim::set_behaviour`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MobilyBehaviour {
    /// JWT lifetime. Default 1799 s (Apigee's usual); at least 1 s.
    pub token_lifetime: Duration,
    /// The gateway answers 403 to every data call (the key is not subscribed).
    pub apikey_blocked: bool,
    /// TCC's limit of lines per customer. Default 10.
    pub max_lines: u32,
    /// The postpaid security deposit, in halalas. Default SAR 500.
    pub postpaid_deposit_halalas: u64,
    /// How long a reservation holds a number. Default 15 min.
    pub reservation_hold: Duration,
    /// OTP code lifetime. Default 5 min.
    pub otp_ttl: Duration,
    /// Wrong codes allowed per OTP. Default 3.
    pub otp_max_attempts: u32,
    /// Re-sends allowed per OTP. Default 3.
    pub otp_max_regenerations: u32,
    /// How the customer answers Nafath. Default [`NafathPolicy::Manual`].
    pub nafath: NafathPolicy,
    /// How long a Nafath request waits. Default 180 s.
    pub nafath_window: Duration,
    /// How the bank treats payments. Default [`ThreeDsPolicy::Challenge`].
    pub three_ds: ThreeDsPolicy,
    /// The customer completes 3-D Secure by themselves and their browser calls the return
    /// URL. Default `None` (tests call [`MobilySim::complete_3ds`]).
    pub three_ds_auto: Option<AutoThreeDs>,
    /// When QR codes are ready. Default after 2 inquiries following payment.
    pub qr: QrPolicy,
    /// Order tracking inquiries per fulfilment stage. Default 1.
    pub order_stage_inquiries: u32,
    /// Most records of each kind kept (carts, OTPs, Nafath requests, payments). Default 100 000.
    pub max_records: usize,
}

impl Default for MobilyBehaviour {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(1799),
            apikey_blocked: false,
            max_lines: 10,
            postpaid_deposit_halalas: 50_000,
            reservation_hold: Duration::from_secs(900),
            otp_ttl: Duration::from_secs(300),
            otp_max_attempts: 3,
            otp_max_regenerations: 3,
            nafath: NafathPolicy::Manual,
            nafath_window: Duration::from_secs(180),
            three_ds: ThreeDsPolicy::Challenge,
            three_ds_auto: None,
            qr: QrPolicy::AfterInquiries(2),
            order_stage_inquiries: 1,
            max_records: 100_000,
        }
    }
}

impl MobilyBehaviour {
    /// With another Nafath policy.
    pub fn with_nafath(mut self, policy: NafathPolicy) -> Self {
        self.nafath = policy;
        self
    }

    /// With another 3-D Secure policy.
    pub fn with_three_ds(mut self, policy: ThreeDsPolicy) -> Self {
        self.three_ds = policy;
        self
    }

    /// With the customer finishing 3-D Secure by themselves.
    pub fn with_three_ds_auto(mut self, auto: AutoThreeDs) -> Self {
        self.three_ds_auto = Some(auto);
        self
    }

    /// With another QR policy.
    pub fn with_qr(mut self, policy: QrPolicy) -> Self {
        self.qr = policy;
        self
    }

    /// With another JWT lifetime.
    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }
}

/// How to start a [`MobilySim`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MobilySimConfig {
    /// Loopback port; `None` picks a free one.
    pub port: Option<u16>,
    /// Seed for ids, numbers and codes.
    pub seed: u64,
    /// The `apikey` accepted.
    pub apikey: SecretString,
    /// The client id accepted by the token endpoints.
    pub client_id: String,
    /// The client secret accepted by the token endpoints.
    pub client_secret: SecretString,
    /// Behaviour knobs.
    pub behaviour: MobilyBehaviour,
    /// Faults to inject.
    pub faults: FaultPlan,
    /// How webhooks and browser returns travel.
    pub delivery: DeliveryPlan,
    /// Retry and timing settings of the callback sender.
    pub callback_settings: CallbackSettings,
    /// Send Nafath webhooks here instead of the URI given in initiate (the demo's ingress).
    pub nafath_webhook_override: Option<Url>,
    /// Send the customer's browser here instead of the return URL given in createPayment.
    pub three_ds_return_override: Option<Url>,
    /// The callback URLs and webhook credentials put in [`MobilySim::client_config`].
    pub callbacks: MobilyCallbacks,
}

impl Default for MobilySimConfig {
    fn default() -> Self {
        // Nothing listens on port 9 (discard): webhooks go nowhere until a test or the demo
        // gives real URLs.
        let nowhere =
            |path: &str| Url::parse(&format!("http://127.0.0.1:9/{path}")).expect("static URL");
        Self {
            port: None,
            seed: 0,
            apikey: SecretString::from(DEFAULT_APIKEY),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: SecretString::from(DEFAULT_CLIENT_SECRET),
            behaviour: MobilyBehaviour::default(),
            faults: FaultPlan::default(),
            delivery: DeliveryPlan::default(),
            callback_settings: CallbackSettings::fast(),
            nafath_webhook_override: None,
            three_ds_return_override: None,
            callbacks: MobilyCallbacks {
                nafath_webhook_url: nowhere("nafath"),
                nafath_webhook_username: "mobily-nafath".to_owned(),
                nafath_webhook_password: SecretString::from("handover-sim-webhook-password"),
                payment_return_url: nowhere("3ds-return"),
            },
        }
    }
}

impl MobilySimConfig {
    /// With this behaviour.
    pub fn with_behaviour(mut self, behaviour: MobilyBehaviour) -> Self {
        self.behaviour = behaviour;
        self
    }

    /// With this fault plan.
    pub fn with_faults(mut self, faults: FaultPlan) -> Self {
        self.faults = faults;
        self
    }

    /// With this delivery plan for webhooks and browser returns.
    pub fn with_delivery(mut self, delivery: DeliveryPlan) -> Self {
        self.delivery = delivery;
        self
    }

    /// With these callback URLs and webhook credentials in [`MobilySim::client_config`].
    pub fn with_callbacks(mut self, callbacks: MobilyCallbacks) -> Self {
        self.callbacks = callbacks;
        self
    }

    /// With this seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// On this port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

/// Why a world action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorldError {
    /// Nothing with this id.
    #[error("unknown {0}")]
    Unknown(&'static str),
    /// It is no longer waiting for this action.
    #[error("not waiting for this action any more")]
    NotPending,
}

pub(crate) struct SimState {
    pub apikey: SecretString,
    pub client_id: String,
    pub client_secret: SecretString,
    base_url: OnceLock<Url>,
    behaviour: Mutex<MobilyBehaviour>,
    pub world: Mutex<World>,
    pub tokens: Mutex<TokenBook>,
    pub ledger: Ledger,
    pub faults: FaultControl,
    pub sender: CallbackSender,
    pub nafath_override: Option<Url>,
    pub return_override: Option<Url>,
}

impl SimState {
    pub fn behaviour(&self) -> MobilyBehaviour {
        *lock(&self.behaviour)
    }

    pub fn base_url(&self) -> &Url {
        static FALLBACK: OnceLock<Url> = OnceLock::new();
        self.base_url.get().unwrap_or_else(|| {
            FALLBACK.get_or_init(|| Url::parse("http://127.0.0.1/").expect("static URL"))
        })
    }

    pub fn world_rules(&self) -> WorldRules {
        let b = self.behaviour();
        WorldRules {
            max_lines: b.max_lines,
            postpaid_deposit: b.postpaid_deposit_halalas,
            reservation_hold: b.reservation_hold,
            qr: b.qr,
            order_stage_inquiries: b.order_stage_inquiries,
            max_records: b.max_records,
        }
    }

    pub fn flow_rules(&self) -> FlowRules {
        let b = self.behaviour();
        FlowRules {
            otp_ttl: b.otp_ttl,
            otp_max_attempts: b.otp_max_attempts,
            otp_max_regenerations: b.otp_max_regenerations,
            nafath: b.nafath,
            nafath_window: b.nafath_window,
            max_records: b.max_records,
        }
    }
}

/// A Nafath request as the simulator sees it. `Debug` hides the id and the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct NafathView {
    /// Nafath's transaction.
    pub transaction_id: String,
    /// The caller's correlation id.
    pub request_id: String,
    /// The number shown to the customer.
    pub random: String,
    /// Where it stands.
    pub status: NafathStatus,
    /// Whether its webhook was handed to the sender.
    pub webhook_sent: bool,
    /// The webhook URI given at initiate.
    pub webhook_uri: String,
}

impl std::fmt::Debug for NafathView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NafathView")
            .field("transaction_id", &self.transaction_id)
            .field("status", &self.status)
            .field("webhook_sent", &self.webhook_sent)
            .finish_non_exhaustive()
    }
}

/// An order as the simulator sees it. `Debug` masks the number.
#[derive(Clone, PartialEq, Eq)]
pub struct OrderView {
    /// Mobily's order number.
    pub order_id: String,
    /// The caller's reference.
    pub external_order_id: String,
    /// New or MNP.
    pub order_type: OrderType,
    /// Its status.
    pub status: OrderState,
    /// The line.
    pub msisdn: String,
    /// Total in halalas.
    pub total_halalas: u64,
}

impl std::fmt::Debug for OrderView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderView")
            .field("order_id", &self.order_id)
            .field("order_type", &self.order_type)
            .field("status", &self.status)
            .field("msisdn", &mask_msisdn(&self.msisdn))
            .finish_non_exhaustive()
    }
}

/// A payment as the simulator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentView {
    /// The gateway's id.
    pub payment_id: String,
    /// The caller's `paymentTransId`.
    pub payment_trans_id: String,
    /// Its order.
    pub order_id: String,
    /// Its status.
    pub status: PaymentStatus,
    /// Amount in halalas.
    pub amount_halalas: u64,
}

/// A running Mobily simulator. Stops when dropped.
pub struct MobilySim {
    server: RunningServer,
    state: Arc<SimState>,
    requests: RequestLog,
    callbacks: MobilyCallbacks,
}

impl std::fmt::Debug for MobilySim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MobilySim")
            .field("base_url", &self.server.base_url().as_str())
            .finish_non_exhaustive()
    }
}

fn router(state: Arc<SimState>) -> Router {
    use self::commerce as c;
    use self::endpoints as e;
    use self::handlers as h;
    use self::paths as p;
    let jwt = |endpoint, process| api(endpoint, Auth::Jwt, process);
    Router::new()
        .route(
            p::APIGEE_TOKEN,
            post(api(e::TOKEN, Auth::Apikey, gateway::apigee_token)),
        )
        .route(
            p::KEYCLOAK_TOKEN,
            post(api(e::TOKEN, Auth::Apikey, gateway::keycloak_token)),
        )
        .route(p::PRODUCTS, get(jwt(e::PRODUCTS, h::products)))
        .route(p::CATALOG_GRAPHQL, post(jwt(e::GRAPHQL, h::graphql)))
        .route(
            p::SHOPPING_CART,
            post(jwt(e::SHOPPING_CART, h::create_cart)),
        )
        .route(
            p::UPDATE_AND_VALIDATE,
            post(jwt(e::UPDATE_AND_VALIDATE, h::update_and_validate)),
        )
        .route(
            p::CHECKOUT_STRUCTURE,
            post(jwt(e::CHECKOUT_STRUCTURE, h::structure)),
        )
        .route(p::CAPTURE_DATA, post(jwt(e::CAPTURE_DATA, h::capture)))
        .route(
            p::TCC_ELIGIBILITY,
            post(jwt(e::TCC_ELIGIBILITY, h::tcc_eligibility)),
        )
        .route(
            p::CUSTOMER_PRODUCTS,
            post(jwt(e::CUSTOMER_PRODUCTS, h::customer_products)),
        )
        .route(
            p::AVAILABILITY_CHECK,
            post(jwt(e::AVAILABILITY_CHECK, h::availability)),
        )
        .route(p::RESERVATION, post(jwt(e::RESERVATION, h::reservation)))
        .route(p::DUES, post(jwt(e::DUES, h::dues)))
        .route(
            p::PACKAGE_ELIGIBILITY,
            post(jwt(e::PACKAGE_ELIGIBILITY, h::package)),
        )
        .route(
            p::SECURITY_DEPOSIT,
            post(jwt(e::SECURITY_DEPOSIT, h::deposit)),
        )
        .route(
            p::OTP_GENERATION,
            post(jwt(e::OTP_GENERATION, h::otp_generation)),
        )
        .route(
            p::OTP_REGENERATION,
            post(jwt(e::OTP_REGENERATION, h::otp_regeneration)),
        )
        .route(p::OTP_VALIDATE, post(jwt(e::OTP_VALIDATE, h::otp_validate)))
        .route(
            p::NAFATH_INITIATE,
            post(jwt(e::NAFATH_INITIATE, c::nafath_initiate)),
        )
        .route(
            p::NAFATH_TOKENINFO,
            post(jwt(e::NAFATH_TOKENINFO, c::nafath_tokeninfo)),
        )
        .route(
            p::NAFATH_TOKENINFO_CAMEL,
            post(jwt(e::NAFATH_TOKENINFO, c::nafath_tokeninfo)),
        )
        .route(p::SIM_GET, post(jwt(e::SIM_GET, c::sim_get)))
        .route(p::TCC_REGISTER, post(jwt(e::TCC_REGISTER, c::tcc_register)))
        .route(
            p::POST_PRODUCT_ORDER,
            post(jwt(e::POST_PRODUCT_ORDER, c::post_order)),
        )
        .route(
            p::CREATE_SESSION,
            post(jwt(e::CREATE_SESSION, c::create_session)),
        )
        .route(
            p::CREATE_PAYMENT,
            post(jwt(e::CREATE_PAYMENT, c::create_payment)),
        )
        .route(
            p::CONFIRM_PAYMENT,
            post(jwt(e::CONFIRM_PAYMENT, c::confirm_payment)),
        )
        .route(
            "/cem/dpc/inquiry/v1/request/{ref_id}",
            get(jwt(e::PAYMENT_INQUIRY, c::payment_inquiry)),
        )
        .route(
            p::INITIATE_PAYMENT,
            post(jwt(e::INITIATE_PAYMENT, c::initiate_payment)),
        )
        .route(
            p::ORDER_INQUIRY,
            post(jwt(e::ORDER_INQUIRY, c::order_inquiry)),
        )
        .route(p::QR_GET, post(jwt(e::QR_GET, c::qr_get)))
        .route(p::QR_GET_SHORT, post(jwt(e::QR_GET, c::qr_get)))
        .route(
            p::CANCEL_MNP_ORDER,
            post(jwt(e::CANCEL_MNP_ORDER, c::cancel_mnp)),
        )
        .route(
            "/OrderGenerator/updateOrderStatus/{order_id}",
            put(jwt(e::UPDATE_ORDER_STATUS, c::update_order_status)),
        )
        .route("/sim/3ds/{payment_id}", get(c::bank_page))
        .route("/sim/3ds/{payment_id}/complete", get(c::bank_complete))
        .with_state(state)
}

impl MobilySim {
    /// Starts the simulator on loopback.
    pub async fn start(config: MobilySimConfig) -> io::Result<Self> {
        let sender = CallbackSender::new(config.callback_settings, config.delivery)?;
        let state = Arc::new(SimState {
            apikey: config.apikey,
            client_id: config.client_id,
            client_secret: config.client_secret,
            base_url: OnceLock::new(),
            behaviour: Mutex::new(config.behaviour),
            world: Mutex::new(World::new(config.seed)),
            tokens: Mutex::new(TokenBook::new(config.seed)),
            ledger: Ledger::new(Provider::Mobily),
            faults: FaultControl::new(config.faults),
            sender,
            nafath_override: config.nafath_webhook_override,
            return_override: config.three_ds_return_override,
        });
        let requests = RequestLog::default();
        let server = serve(config.port, router(state.clone()), requests.clone()).await?;
        let _ = state.base_url.set(server.base_url().clone());
        tracing::info!(base_url = %server.base_url(), "Mobily simulator listening");
        Ok(Self {
            server,
            state,
            requests,
            callbacks: config.callbacks,
        })
    }

    /// Where the simulator listens, e.g. `http://127.0.0.1:41234/`.
    pub fn base_url(&self) -> &Url {
        self.server.base_url()
    }

    /// A client configuration pointing at this simulator with its credentials and the
    /// configured callback URLs.
    pub fn client_config(&self) -> MobilyConfig {
        self.client_config_with(self.callbacks.clone())
    }

    /// A client configuration with other callback URLs and webhook credentials.
    pub fn client_config_with(&self, callbacks: MobilyCallbacks) -> MobilyConfig {
        MobilyConfig::new(
            self.base_url().clone(),
            self.state.apikey.clone(),
            self.state.client_id.clone(),
            self.state.client_secret.clone(),
            callbacks,
        )
        .expect("the simulator's callback settings are valid")
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

    /// The webhook and browser-return sender: its [`CallbackSender::sent`] log, and
    /// [`CallbackSender::set_plan`] to script duplicates, delays, loss.
    pub fn callbacks(&self) -> &CallbackSender {
        &self.state.sender
    }

    /// The current behaviour.
    pub fn behaviour(&self) -> MobilyBehaviour {
        self.state.behaviour()
    }

    /// Changes the behaviour (applies to later calls; Nafath policies apply to requests
    /// initiated afterwards).
    pub fn set_behaviour(&self, behaviour: MobilyBehaviour) {
        *lock(&self.state.behaviour) = behaviour;
    }

    /// How many JWTs the gateway has issued.
    pub fn tokens_issued(&self) -> u64 {
        lock(&self.state.tokens).issued
    }

    /// Expires every JWT issued so far: the next call with one gets 401.
    pub fn expire_tokens(&self) {
        lock(&self.state.tokens).expire_all();
    }

    /// Sets what Mobily knows of a customer.
    pub fn set_customer(&self, national_id: &NationalId, profile: CustomerProfile) {
        lock(&self.state.world)
            .customers
            .insert(national_id.as_str().to_owned(), profile);
    }

    /// Someone else takes `msisdn`: it is no longer offered nor reservable.
    pub fn take_number(&self, msisdn: &Msisdn) {
        lock(&self.state.world)
            .taken
            .insert(msisdn.as_str().to_owned());
    }

    /// The code of the latest OTP sent to `msisdn` (what the customer reads in the SMS).
    pub fn otp_for(&self, msisdn: &Msisdn) -> Option<String> {
        lock(&self.state.world)
            .otp
            .latest_for(msisdn.as_str())
            .map(|r| r.code.clone())
    }

    /// The latest OTP sent to `msisdn` expires now.
    pub fn expire_otp(&self, msisdn: &Msisdn) -> Result<(), WorldError> {
        if lock(&self.state.world).otp.force_expire(msisdn.as_str()) {
            Ok(())
        } else {
            Err(WorldError::Unknown("OTP"))
        }
    }

    /// Every kept Nafath request, oldest first.
    pub fn nafath_requests(&self) -> Vec<NafathView> {
        let rules = self.state.flow_rules();
        lock(&self.state.world)
            .nafath
            .records(Instant::now(), &rules)
            .into_iter()
            .map(|r| NafathView {
                transaction_id: r.transaction_id,
                request_id: r.request_id,
                random: r.random,
                status: r.status,
                webhook_sent: r.webhook_sent,
                webhook_uri: r.webhook_uri,
            })
            .collect()
    }

    /// The customer answers a Nafath request in the app; the webhook goes out now (subject
    /// to the delivery plan).
    pub async fn nafath_answer(
        &self,
        transaction_id: &str,
        approve: bool,
    ) -> Result<(), WorldError> {
        let rules = self.state.flow_rules();
        let due = {
            let mut world = lock(&self.state.world);
            world
                .nafath
                .answer(transaction_id, approve, Instant::now(), &rules)?;
            world
                .nafath
                .due_webhook(transaction_id, Instant::now(), &rules)
        };
        if let Some(callback) = due
            .as_ref()
            .and_then(|r| commerce::nafath_webhook(&self.state, r))
        {
            self.state.sender.emit(callback).await;
        } else {
            // A late-webhook policy: the scheduled task delivers it.
            commerce::schedule_nafath(&self.state, transaction_id.to_owned());
        }
        Ok(())
    }

    /// The customer finishes the bank's 3-D Secure page; returns the URL the bank sends
    /// their browser to (our return URL with `paymentId`, `paymentTransId`, `result`).
    pub fn complete_3ds(&self, payment_id: &str, success: bool) -> Result<Url, WorldError> {
        let return_url = lock(&self.state.world)
            .payments
            .by_payment_id(payment_id)
            .map(|p| p.return_url.clone())
            .ok_or(WorldError::Unknown("payment"))?;
        self.state.finish_3ds(payment_id, success, &return_url)
    }

    /// A payment by the caller's `paymentTransId`.
    pub fn payment(&self, payment_trans_id: &str) -> Option<PaymentView> {
        lock(&self.state.world)
            .payments
            .get(payment_trans_id)
            .map(|p| PaymentView {
                payment_id: p.payment_id.clone(),
                payment_trans_id: p.payment_trans_id.clone(),
                order_id: p.order_id.clone(),
                status: p.status,
                amount_halalas: p.amount,
            })
    }

    /// An order by Mobily's order number.
    pub fn order(&self, order_id: &str) -> Option<OrderView> {
        lock(&self.state.world)
            .orders
            .get(order_id)
            .map(|o| OrderView {
                order_id: o.id.clone(),
                external_order_id: o.external_id.clone(),
                order_type: o.order_type,
                status: o.status,
                msisdn: o.msisdn.clone(),
                total_halalas: o.total,
            })
    }

    /// Effects of one kind so far (a shortcut for tests and the demo).
    pub fn effects(&self, kind: EffectKind) -> usize {
        self.state.ledger.count_kind(kind)
    }
}
