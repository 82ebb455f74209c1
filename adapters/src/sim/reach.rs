//! The Reach plugAPI simulator.
//!
//! Serves the paths, methods and bodies documented in [`crate::reach`] on its own loopback
//! port, with in-memory state:
//!
//! - **Gateway:** `403` when the "IP not whitelisted" knob is set; `401` unless
//!   `Authorization` is `Basic <standard Base64 of "clientapi|" + the current JWT>` and
//!   `x-api-key` is the configured key (constant-time comparisons; [`ReachSim::rotate_jwt`]
//!   revokes the old JWT); `429` with `Retry-After` past
//!   [`ReachBehaviour::rate_limit_per_second`] requests per second for the API key.
//! - **Validation:** bodies are JSON objects with exactly the documented fields (an unknown
//!   or mistyped field is `400 INVALID_REQUEST`), ids and numbers are checked.
//! - **Purchases** ([`purchase`]): `INITIATED` -> `PAYMENT_PENDING` with `link.url` on this
//!   simulator's fake payment page (`/payment/checkout/{transactionId}`) -> the customer pays
//!   ([`ReachSim::pay`], the page, or [`CustomerPayment::PayAfter`] with a browser return to
//!   `redirectUrl?transId=`) -> `PAYMENT_PROCESSING` -> `COMPLETED` or `FAILED`. A second
//!   purchase with the same `clientAccountId` is `409` with the existing `transactionId`.
//! - **Lines** ([`mod@line`]): activation 1 -> 2 (or 8), port-in 9 -> 10 per the losing carrier's
//!   record ([`ReachSim::set_losing_carrier`]) until corrected -> 2; 11 on `CANCEL_PORT`.
//! - **Ledger:** [`EffectKind::Order`] keyed by `clientAccountId` when a purchase is
//!   accepted; [`EffectKind::Payment`] keyed by `transactionId` when the customer's card is
//!   charged; [`EffectKind::PortIn`] keyed by `customerId` (subject: the number) when a
//!   port-in is first submitted; [`EffectKind::Activation`] keyed by `customerId` (subject:
//!   the line's number) when a line becomes ACTIVE.
//! - **Callbacks** through a [`CallbackSender`] to `{callback_base}/apisvc/v0/notification/callback`:
//!   `PRODUCT_PURCHASE` when a purchase completes or fails, `ACTIVATION` when a line
//!   reaches 2, 8, 10 or 11; notifications ([`ReachSim::notify`]) to
//!   `{callback_base}/apisvc/v0/notification`. Delivery faults come from the
//!   [`DeliveryPlan`]; a target that is down is retried `max_retries` times (3, like Reach).
//!   A transition that happens while a request is handled (zero delays) sends its callback
//!   before that request's answer when the plan says [`Delivery::before_answer`](crate::sim::Delivery::before_answer).
//! - **Faults:** the [`FaultPlan`] is consulted per call after the gateway checks; endpoint
//!   names are the `*_ENDPOINT` constants. [`Fault::Refusal`](crate::sim::Fault::Refusal)
//!   gives the endpoint's business "no": `brandCoverage: false`, `isValid: false`,
//!   `isPortValidate: false` (with the message), and `400 {"errorCode", "message"}` elsewhere.
//!
//! Time moves by itself: a background tick ([`ReachBehaviour::tick`]) applies due
//! transitions and sends their callbacks, and every request applies those of the record it
//! touches first.

pub mod catalog;
pub mod line;
pub mod purchase;
mod routes;

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

pub use self::catalog::{DeviceProfile, SimPlan, default_catalog};
pub use self::line::LosingCarrierAccount;
use self::line::{LineBook, LineEvent, LineRules};
pub use self::purchase::{CustomerPayment, Progress, WorldError};
use self::purchase::{PurchaseBook, PurchaseEvent, PurchaseRules};
use crate::config::ReachConfig;
use crate::error::Provider;
use crate::reach::{ActivationCode, CALLBACK_PATH, NOTIFICATION_PATH, PurchaseStatusCode, SimType};
use crate::redact::mask_msisdn;
use crate::sim::callback::{
    Callback, CallbackSender, CallbackSettings, DeliveryPlan, SentCallback,
};
use crate::sim::fault::{FaultControl, FaultPlan};
use crate::sim::ledger::{EffectKind, Ledger};
use crate::sim::server::{RequestLog, RunningServer, lock, serve};

/// Fault-plan name of `POST /network/coverage`.
pub const COVERAGE_ENDPOINT: &str = "coverage";
/// Fault-plan name of `GET /device/imei/{imei}`.
pub const IMEI_ENDPOINT: &str = "imei";
/// Fault-plan name of `GET /product/fetch/plan`.
pub const PLANS_ENDPOINT: &str = "plans";
/// Fault-plan name of `POST /product/quote`.
pub const QUOTE_ENDPOINT: &str = "quote";
/// Fault-plan name of `POST /product`.
pub const PURCHASE_ENDPOINT: &str = "purchase";
/// Fault-plan name of `GET /product/status/{transactionId}`.
pub const PURCHASE_STATUS_ENDPOINT: &str = "purchase_status";
/// Fault-plan name of `POST /iccid/validate`.
pub const ICCID_ENDPOINT: &str = "iccid_validate";
/// Fault-plan name of `POST /activation`.
pub const ACTIVATION_ENDPOINT: &str = "activation";
/// Fault-plan name of `GET /activation/status`.
pub const ACTIVATION_STATUS_ENDPOINT: &str = "activation_status";
/// Fault-plan name of `PUT /port/validate/mdn`.
pub const PORT_VALIDATE_ENDPOINT: &str = "port_validate";
/// Fault-plan name of `PUT /update/portin`.
pub const PORT_IN_UPDATE_ENDPOINT: &str = "port_in_update";

/// The fake payment page: `GET` shows it, `POST` (form `result=paid|declined`) pays and
/// redirects the browser to `redirectUrl?transId=...`.
pub const PAYMENT_PAGE_PATH: &str = "/payment/checkout/{transactionId}";

/// The JWT the simulator accepts unless configured otherwise.
pub const DEFAULT_JWT: &str =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJoYW5kb3Zlci1zaW0tcmVhY2gifQ.c2ltdWxhdGVk";
/// The API key the simulator accepts unless configured otherwise.
pub const DEFAULT_API_KEY: &str = "handover-sim-reach-api-key";

/// How the simulated Reach behaves. Defaults are seconds (a demo); tests use
/// [`ReachBehaviour::fast`] or set each knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReachBehaviour {
    /// `INITIATED` -> `PAYMENT_PENDING`. Default 2 s.
    pub link_after: Progress,
    /// How long the payment link stays valid (`link.expireDate`). Default 15 min.
    pub link_ttl: Duration,
    /// `PAYMENT_PROCESSING` -> `COMPLETED`/`FAILED`. Default 2 s.
    pub settle_after: Progress,
    /// What the simulated customer does with the link. Default [`CustomerPayment::Manual`].
    pub customer: CustomerPayment,
    /// 1 ACTIVATION_IN_PROGRESS -> 2 or 8. Default 3 s (the guide says 2 to 10 minutes).
    pub activation_after: Progress,
    /// 9 PORTING_IN_PROGRESS -> 2 or 10. Default 5 s (the guide says minutes to hours).
    pub port_after: Progress,
    /// Requests per second allowed per API key; more get 429. Default none.
    pub rate_limit_per_second: Option<u32>,
    /// `false`: every request gets 403 "IP not whitelisted" (guide 2.1). Default `true`.
    pub ip_whitelisted: bool,
    /// How often due transitions are applied without a request. Default 50 ms.
    pub tick: Duration,
    /// Most purchases and most lines kept; the oldest are forgotten first. Default 100 000.
    pub max_records: usize,
}

impl Default for ReachBehaviour {
    fn default() -> Self {
        Self {
            link_after: Progress::After(Duration::from_secs(2)),
            link_ttl: Duration::from_secs(15 * 60),
            settle_after: Progress::After(Duration::from_secs(2)),
            customer: CustomerPayment::Manual,
            activation_after: Progress::After(Duration::from_secs(3)),
            port_after: Progress::After(Duration::from_secs(5)),
            rate_limit_per_second: None,
            ip_whitelisted: true,
            tick: Duration::from_millis(50),
            max_records: 100_000,
        }
    }
}

impl ReachBehaviour {
    /// Test timings: every timed transition (link issued, payment settled, activation or
    /// port done) happens at the first status poll after its state is entered
    /// ([`Progress::AfterPolls`]`(0)`), so tests are deterministic and need no sleeps; the
    /// customer still pays only when told to. The tick is 5 ms and the link lives 60 s.
    pub fn fast() -> Self {
        Self {
            link_after: Progress::AfterPolls(0),
            link_ttl: Duration::from_secs(60),
            settle_after: Progress::AfterPolls(0),
            activation_after: Progress::AfterPolls(0),
            port_after: Progress::AfterPolls(0),
            tick: Duration::from_millis(5),
            ..Self::default()
        }
    }

    /// Every transition after `delay` (zero: at once, within the request that causes it).
    pub fn with_delays(mut self, delay: Duration) -> Self {
        let after = Progress::After(delay);
        self.link_after = after;
        self.settle_after = after;
        self.activation_after = after;
        self.port_after = after;
        self
    }

    /// This behaviour with another simulated customer.
    pub fn with_customer(mut self, customer: CustomerPayment) -> Self {
        self.customer = customer;
        self
    }

    /// This behaviour with a rate limit.
    pub fn with_rate_limit(mut self, per_second: u32) -> Self {
        self.rate_limit_per_second = Some(per_second);
        self
    }

    fn purchase_rules(&self) -> PurchaseRules {
        PurchaseRules {
            link_after: self.link_after,
            link_ttl: self.link_ttl,
            settle_after: self.settle_after,
            customer: self.customer,
            max_records: self.max_records,
        }
    }

    fn line_rules(&self) -> LineRules {
        LineRules {
            activation_after: self.activation_after,
            port_after: self.port_after,
            max_records: self.max_records,
        }
    }
}

/// How to start a [`ReachSim`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReachSimConfig {
    /// Loopback port; `None` picks a free one.
    pub port: Option<u16>,
    /// Seed for ids.
    pub seed: u64,
    /// The JWT accepted (inside the Basic header).
    pub jwt: SecretString,
    /// The API key accepted (`x-api-key`).
    pub api_key: SecretString,
    /// Behaviour knobs.
    pub behaviour: ReachBehaviour,
    /// Faults to inject.
    pub faults: FaultPlan,
    /// Where callbacks and notifications go: `{callback_base}/apisvc/v0/notification...`.
    /// `None`: none are sent.
    pub callback_base: Option<Url>,
    /// Retries and timing of callback delivery (default: 3 retries, like Reach).
    pub callback_settings: CallbackSettings,
    /// How callbacks travel (duplicated, delayed, reordered, early, lost).
    pub delivery: DeliveryPlan,
}

impl Default for ReachSimConfig {
    fn default() -> Self {
        Self {
            port: None,
            seed: 0,
            jwt: SecretString::from(DEFAULT_JWT),
            api_key: SecretString::from(DEFAULT_API_KEY),
            behaviour: ReachBehaviour::default(),
            faults: FaultPlan::default(),
            callback_base: None,
            callback_settings: CallbackSettings::default(),
            delivery: DeliveryPlan::default(),
        }
    }
}

impl ReachSimConfig {
    /// This configuration with this behaviour.
    pub fn with_behaviour(mut self, behaviour: ReachBehaviour) -> Self {
        self.behaviour = behaviour;
        self
    }

    /// This configuration with these credentials.
    pub fn with_credentials(mut self, jwt: SecretString, api_key: SecretString) -> Self {
        self.jwt = jwt;
        self.api_key = api_key;
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

    /// This configuration sending callbacks under `base`.
    pub fn with_callback_base(mut self, base: Url) -> Self {
        self.callback_base = Some(base);
        self
    }

    /// This configuration with these callback delivery settings and plan.
    pub fn with_delivery(mut self, settings: CallbackSettings, plan: DeliveryPlan) -> Self {
        self.callback_settings = settings;
        self.delivery = plan;
        self
    }
}

/// A notification the world sends (guide 4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimNotification {
    /// `USAGE_NOTIFICATION`.
    Usage {
        /// The subscriber.
        customer_id: String,
        /// Percent of the plan's data used.
        usage_percentage: u32,
    },
    /// `RDN_IMEI_CHANGE`.
    ImeiChange {
        /// The subscriber.
        customer_id: String,
        /// The new device.
        imei: String,
    },
    /// `PORT_OUT`.
    PortOut {
        /// The subscriber.
        customer_id: String,
    },
    /// `PORT_OUT_CONFIRMED`.
    PortOutConfirmed {
        /// The subscriber.
        customer_id: String,
    },
}

/// A purchase as the simulator sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct PurchaseView {
    /// Reach's id.
    pub transaction_id: String,
    /// The caller's key.
    pub client_account_id: String,
    /// Where it stands.
    pub status: PurchaseStatusCode,
    /// Set once completed.
    pub customer_id: Option<String>,
    /// Why it failed.
    pub payment_status_desc: Option<String>,
    /// The number to port in, if any (masked in `Debug`).
    pub number_to_port: Option<String>,
}

impl std::fmt::Debug for PurchaseView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PurchaseView")
            .field("transaction_id", &self.transaction_id)
            .field("client_account_id", &self.client_account_id)
            .field("status", &self.status)
            .field("customer_id", &self.customer_id)
            .field(
                "number_to_port",
                &self.number_to_port.as_deref().map(mask_msisdn),
            )
            .finish_non_exhaustive()
    }
}

/// A line as the simulator sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct LineView {
    /// The subscriber.
    pub customer_id: String,
    /// What was bought.
    pub sim_type: SimType,
    /// Its code.
    pub status: ActivationCode,
    /// The current activation or port-in operation.
    pub transaction_id: Option<String>,
    /// The number once active (masked in `Debug`).
    pub mobile_no: Option<String>,
    /// Why it failed.
    pub activation_msg: Option<String>,
}

impl std::fmt::Debug for LineView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineView")
            .field("customer_id", &self.customer_id)
            .field("sim_type", &self.sim_type)
            .field("status", &self.status)
            .field("transaction_id", &self.transaction_id)
            .field("mobile_no", &self.mobile_no.as_deref().map(mask_msisdn))
            .field("activation_msg", &self.activation_msg)
            .finish()
    }
}

/// World data the handlers read: what is sold, which devices, areas and numbers are fine.
#[derive(Debug)]
struct World {
    plans: Vec<SimPlan>,
    devices: HashMap<String, DeviceProfile>,
    uncovered_zips: HashSet<String>,
    port_refusals: HashMap<String, String>,
    blocked_iccids: HashSet<String>,
}

/// Requests counted in the current one-second window of the API key; a window starts at
/// the first request after the previous one ended.
#[derive(Debug, Default)]
struct RateWindow {
    started: Option<Instant>,
    count: u32,
}

impl RateWindow {
    /// Counts a request; `Err(wait)` when over `limit` in this window.
    fn check(&mut self, limit: u32, now: Instant) -> Result<(), Duration> {
        let window = Duration::from_secs(1);
        let started = match self.started {
            Some(started) if now < started + window => started,
            _ => {
                self.started = Some(now);
                self.count = 0;
                now
            }
        };
        if self.count >= limit {
            return Err(started + window - now);
        }
        self.count += 1;
        Ok(())
    }
}

/// Side effects that leave the simulator: callbacks and browser returns.
#[derive(Debug)]
enum Action {
    Callback(Callback),
    BrowserReturn(Callback),
}

struct SimState {
    jwt: Mutex<SecretString>,
    api_key: SecretString,
    ledger: Ledger,
    faults: FaultControl,
    purchases: Mutex<PurchaseBook>,
    lines: Mutex<LineBook>,
    world: Mutex<World>,
    behaviour: Mutex<ReachBehaviour>,
    rate: Mutex<RateWindow>,
    callbacks: CallbackSender,
    browser: CallbackSender,
    callback_base: Mutex<Option<Url>>,
    base_url: OnceLock<Url>,
    next_event: AtomicU64,
}

impl SimState {
    fn behaviour(&self) -> ReachBehaviour {
        *lock(&self.behaviour)
    }

    /// Applies every due transition and returns what must leave the simulator.
    fn drive(&self, now: DateTime<Utc>) -> Vec<Action> {
        let behaviour = self.behaviour();
        // The purchase book stays locked while its events open lines: nobody
        // may see a completed purchase whose customer has no line yet.
        let mut purchases = lock(&self.purchases);
        let purchase_events = purchases.advance(now, &behaviour.purchase_rules());
        let mut actions = self.on_purchase_events(purchase_events, now);
        drop(purchases);
        let line_events = lock(&self.lines).advance(now, &behaviour.line_rules());
        actions.extend(self.on_line_events(line_events));
        actions
    }

    /// Records purchase events in the ledger, opens lines, and builds callbacks.
    /// Called with the purchase book locked, so that a purchase is never seen
    /// completed before its line exists.
    fn on_purchase_events(&self, events: Vec<PurchaseEvent>, now: DateTime<Utc>) -> Vec<Action> {
        let mut actions = Vec::new();
        for event in events {
            match event {
                PurchaseEvent::Ordered {
                    transaction_id,
                    order,
                } => {
                    let number = order.port.as_ref().map(|p| p.number.clone());
                    self.ledger.record(
                        EffectKind::Order,
                        order.client_account_id.clone(),
                        number.as_deref(),
                        json!({
                            "transactionId": transaction_id,
                            "planId": order.plan_id,
                            "simType": order.sim_type.as_str(),
                            "amountCents": order.amount_cents,
                        }),
                    );
                }
                PurchaseEvent::Paid {
                    transaction_id,
                    client_account_id,
                    amount_cents,
                } => {
                    self.ledger.record(
                        EffectKind::Payment,
                        transaction_id,
                        None,
                        json!({ "clientAccountId": client_account_id, "amountCents": amount_cents }),
                    );
                }
                PurchaseEvent::CustomerReturned {
                    transaction_id,
                    redirect_url,
                } => {
                    actions.push(Action::BrowserReturn(Callback::get_query(
                        "BROWSER_RETURN",
                        transaction_id.clone(),
                        redirect_url,
                        vec![("transId".to_owned(), transaction_id)],
                    )));
                }
                PurchaseEvent::Completed {
                    transaction_id,
                    customer_id,
                    order,
                } => {
                    lock(&self.lines).open(
                        &customer_id,
                        &order.plan_name,
                        order.sim_type,
                        order.port.clone(),
                        now,
                        &self.behaviour().line_rules(),
                    );
                    let body = json!({
                        "type": "PRODUCT_PURCHASE",
                        "transactionId": transaction_id,
                        "customerId": customer_id,
                        "clientAccountId": order.client_account_id,
                        "status": PurchaseStatusCode::Completed.as_str(),
                    });
                    actions.extend(self.callback("PRODUCT_PURCHASE", &transaction_id, body));
                }
                PurchaseEvent::Failed {
                    transaction_id,
                    client_account_id,
                } => {
                    let body = json!({
                        "type": "PRODUCT_PURCHASE",
                        "transactionId": transaction_id,
                        "clientAccountId": client_account_id,
                        "status": PurchaseStatusCode::Failed.as_str(),
                    });
                    actions.extend(self.callback("PRODUCT_PURCHASE", &transaction_id, body));
                }
            }
        }
        actions
    }

    /// Records line events in the ledger and builds `ACTIVATION` callbacks.
    fn on_line_events(&self, events: Vec<LineEvent>) -> Vec<Action> {
        let mut actions = Vec::new();
        for event in events {
            let (customer_id, transaction_id, status, mobile_no, message) = match event {
                LineEvent::PortSubmitted {
                    customer_id,
                    number,
                    transaction_id,
                } => {
                    self.ledger.record(
                        EffectKind::PortIn,
                        customer_id,
                        Some(&number),
                        json!({ "transactionId": transaction_id }),
                    );
                    continue;
                }
                LineEvent::Activated {
                    customer_id,
                    transaction_id,
                    mobile_no,
                    ported,
                } => {
                    self.ledger.record(
                        EffectKind::Activation,
                        customer_id.clone(),
                        Some(&mobile_no),
                        json!({ "transactionId": transaction_id, "ported": ported }),
                    );
                    (
                        customer_id,
                        transaction_id,
                        ActivationCode::Active,
                        Some(mobile_no),
                        None,
                    )
                }
                LineEvent::ActivationFailed {
                    customer_id,
                    transaction_id,
                    message,
                } => (
                    customer_id,
                    transaction_id,
                    ActivationCode::Failed,
                    None,
                    Some(message),
                ),
                LineEvent::PortFailed {
                    customer_id,
                    transaction_id,
                    message,
                } => (
                    customer_id,
                    transaction_id,
                    ActivationCode::PortingFailed,
                    None,
                    Some(message.to_owned()),
                ),
                LineEvent::PortCancelled {
                    customer_id,
                    transaction_id,
                } => (
                    customer_id,
                    transaction_id,
                    ActivationCode::PortCancelled,
                    None,
                    None,
                ),
            };
            let mut body = json!({
                "type": "ACTIVATION",
                "customerId": customer_id,
                "transactionId": transaction_id,
                "status": status.code(),
            });
            if let Some(number) = mobile_no {
                body["mobileNo"] = Value::from(number);
            }
            if let Some(message) = message {
                body["activationMsg"] = Value::from(message);
            }
            actions.extend(self.callback("ACTIVATION", &transaction_id, body));
        }
        actions
    }

    fn callback(&self, name: &str, key: &str, body: Value) -> Option<Action> {
        let url = self.target(CALLBACK_PATH)?;
        Some(Action::Callback(Callback::post_json(name, key, url, body)))
    }

    /// `{callback_base}{path}`, keeping a path prefix of the base.
    fn target(&self, path: &str) -> Option<Url> {
        let base = lock(&self.callback_base).clone()?;
        let joined = format!("{}{path}", base.as_str().trim_end_matches('/'));
        Url::parse(&joined).ok()
    }

    async fn perform(&self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Callback(callback) => self.callbacks.emit(callback).await,
                Action::BrowserReturn(visit) => self.browser.emit(visit).await,
            }
        }
    }
}

/// Aborts the clock task when the simulator is dropped.
#[derive(Debug)]
struct Clock(JoinHandle<()>);

impl Drop for Clock {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running Reach simulator. Stops when dropped.
pub struct ReachSim {
    server: RunningServer,
    state: Arc<SimState>,
    requests: RequestLog,
    _clock: Clock,
}

impl std::fmt::Debug for ReachSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReachSim")
            .field("base_url", &self.server.base_url().as_str())
            .finish_non_exhaustive()
    }
}

impl ReachSim {
    /// Starts the simulator on loopback.
    pub async fn start(config: ReachSimConfig) -> io::Result<Self> {
        let browser_settings = CallbackSettings {
            max_retries: 0,
            ..config.callback_settings
        };
        let state = Arc::new(SimState {
            jwt: Mutex::new(config.jwt),
            api_key: config.api_key,
            ledger: Ledger::new(Provider::Reach),
            faults: FaultControl::new(config.faults),
            purchases: Mutex::new(PurchaseBook::new(config.seed)),
            lines: Mutex::new(LineBook::new(config.seed)),
            world: Mutex::new(World {
                plans: default_catalog(),
                devices: HashMap::new(),
                uncovered_zips: HashSet::new(),
                port_refusals: HashMap::new(),
                blocked_iccids: HashSet::new(),
            }),
            behaviour: Mutex::new(config.behaviour),
            rate: Mutex::new(RateWindow::default()),
            callbacks: CallbackSender::new(config.callback_settings, config.delivery)?,
            browser: CallbackSender::new(browser_settings, DeliveryPlan::new(config.seed))?,
            callback_base: Mutex::new(config.callback_base),
            base_url: OnceLock::new(),
            next_event: AtomicU64::new(1),
        });
        let requests = RequestLog::default();
        let server = serve(config.port, routes::router(state.clone()), requests.clone()).await?;
        let _ = state.base_url.set(server.base_url().clone());
        let clock = Clock(tokio::spawn(run_clock(state.clone())));
        tracing::info!(base_url = %server.base_url(), "Reach simulator listening");
        Ok(Self {
            server,
            state,
            requests,
            _clock: clock,
        })
    }

    /// Where the simulator listens, e.g. `http://127.0.0.1:41234/`.
    pub fn base_url(&self) -> &Url {
        self.server.base_url()
    }

    /// A client configuration pointing at this simulator with its credentials.
    pub fn client_config(&self) -> ReachConfig {
        ReachConfig::new(
            self.base_url().clone(),
            lock(&self.state.jwt).clone(),
            self.state.api_key.clone(),
        )
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

    /// Every callback and notification delivery attempt so far.
    pub fn callbacks_sent(&self) -> Vec<SentCallback> {
        self.state.callbacks.sent()
    }

    /// Every simulated browser return (`GET redirectUrl?transId=`) so far.
    pub fn browser_returns(&self) -> Vec<SentCallback> {
        self.state.browser.sent()
    }

    /// The current behaviour.
    pub fn behaviour(&self) -> ReachBehaviour {
        self.state.behaviour()
    }

    /// Changes the behaviour; applies to existing purchases and lines too.
    pub fn set_behaviour(&self, behaviour: ReachBehaviour) {
        *lock(&self.state.behaviour) = behaviour;
    }

    /// Sends callbacks under `base` from now on (`None`: stop sending).
    pub fn set_callback_base(&self, base: Option<Url>) {
        *lock(&self.state.callback_base) = base;
    }

    /// Replaces the callback delivery plan.
    pub fn set_delivery_plan(&self, plan: DeliveryPlan) {
        self.state.callbacks.set_plan(plan);
    }

    /// Reach rotates (or revokes) the JWT: from now on only `jwt` is accepted.
    pub fn rotate_jwt(&self, jwt: SecretString) {
        *lock(&self.state.jwt) = jwt;
    }

    /// The customer pays at the payment page (`card_accepted: false`: the card is
    /// declined). Callbacks caused by it are sent before this returns or shortly after.
    pub async fn pay(&self, transaction_id: &str, card_accepted: bool) -> Result<(), WorldError> {
        let actions = self.state.pay(transaction_id, card_accepted)?;
        self.state.perform(actions).await;
        Ok(())
    }

    /// Applies every due transition now, instead of waiting for the next tick.
    pub async fn advance(&self) {
        let actions = self.state.drive(Utc::now());
        self.state.perform(actions).await;
    }

    /// Replaces the plan catalog.
    pub fn set_plans(&self, plans: Vec<SimPlan>) {
        lock(&self.state.world).plans = plans;
    }

    /// What `GET /device/imei/{imei}` says about `imei`.
    pub fn set_device(&self, imei: &str, profile: DeviceProfile) {
        lock(&self.state.world)
            .devices
            .insert(imei.to_owned(), profile);
    }

    /// Whether addresses in `zip` are covered (all are, by default).
    pub fn set_coverage(&self, zip: &str, covered: bool) {
        let mut world = lock(&self.state.world);
        if covered {
            world.uncovered_zips.remove(zip);
        } else {
            world.uncovered_zips.insert(zip.to_owned());
        }
    }

    /// `mdn` cannot be ported in: `isPortValidate: false` with `message`.
    pub fn refuse_port(&self, mdn: &str, message: &str) {
        lock(&self.state.world)
            .port_refusals
            .insert(mdn.to_owned(), message.to_owned());
    }

    /// `iccid` is not a usable SIM (`isValid: false`).
    pub fn block_iccid(&self, iccid: &str) {
        lock(&self.state.world)
            .blocked_iccids
            .insert(iccid.to_owned());
    }

    /// What the losing carrier has on file for `mdn` (port-ins must match it).
    pub fn set_losing_carrier(&self, mdn: &str, account: LosingCarrierAccount) {
        lock(&self.state.lines).set_losing_carrier(mdn, account);
    }

    /// The next activation with this IMEI or ICCID fails (status 8) with `message`.
    pub fn fail_activation(&self, device: &str, message: &str) {
        lock(&self.state.lines).fail_device(device, message);
    }

    /// Sends a notification to `{callback_base}/apisvc/v0/notification`; returns its
    /// `eventId` (`None` when no callback base is set).
    pub async fn notify(&self, notification: SimNotification) -> Option<String> {
        let url = self.state.target(NOTIFICATION_PATH)?;
        let event_id = format!(
            "EVT-{:08}",
            self.state.next_event.fetch_add(1, Ordering::Relaxed)
        );
        let (kind, customer_id, extra) = match notification {
            SimNotification::Usage {
                customer_id,
                usage_percentage,
            } => (
                "USAGE_NOTIFICATION",
                customer_id,
                Some(("usagePercentage", json!(usage_percentage))),
            ),
            SimNotification::ImeiChange { customer_id, imei } => {
                ("RDN_IMEI_CHANGE", customer_id, Some(("imei", json!(imei))))
            }
            SimNotification::PortOut { customer_id } => ("PORT_OUT", customer_id, None),
            SimNotification::PortOutConfirmed { customer_id } => {
                ("PORT_OUT_CONFIRMED", customer_id, None)
            }
        };
        let mut body = json!({ "type": kind, "eventId": event_id, "customerId": customer_id });
        if let Some(number) = lock(&self.state.lines)
            .get(&customer_id)
            .and_then(|l| l.mobile_no.clone())
        {
            body["mobileNo"] = Value::from(number);
        }
        if let Some((name, value)) = extra {
            body[name] = value;
        }
        self.state
            .callbacks
            .emit(Callback::post_json(kind, event_id.clone(), url, body))
            .await;
        Some(event_id)
    }

    /// A purchase by its `transactionId`.
    pub fn purchase(&self, transaction_id: &str) -> Option<PurchaseView> {
        lock(&self.state.purchases)
            .get(transaction_id)
            .map(purchase_view)
    }

    /// Every kept purchase, oldest first.
    pub fn purchases(&self) -> Vec<PurchaseView> {
        lock(&self.state.purchases)
            .records()
            .iter()
            .map(purchase_view)
            .collect()
    }

    /// A customer's line.
    pub fn line(&self, customer_id: &str) -> Option<LineView> {
        lock(&self.state.lines).get(customer_id).map(|l| LineView {
            customer_id: l.customer_id.clone(),
            sim_type: l.sim_type,
            status: l.status,
            transaction_id: l.transaction_id.clone(),
            mobile_no: l.mobile_no.clone(),
            activation_msg: l.activation_msg.clone(),
        })
    }
}

fn purchase_view(record: &purchase::PurchaseRecord) -> PurchaseView {
    PurchaseView {
        transaction_id: record.transaction_id.clone(),
        client_account_id: record.order.client_account_id.clone(),
        status: record.status,
        customer_id: record.customer_id.clone(),
        payment_status_desc: record.payment_status_desc.map(str::to_owned),
        number_to_port: record.order.port.as_ref().map(|p| p.number.clone()),
    }
}

impl SimState {
    fn pay(&self, transaction_id: &str, card_accepted: bool) -> Result<Vec<Action>, WorldError> {
        let now = Utc::now();
        let rules = self.behaviour().purchase_rules();
        let mut purchases = lock(&self.purchases);
        let events = purchases.pay(transaction_id, card_accepted, now, &rules)?;
        Ok(self.on_purchase_events(events, now))
    }
}

async fn run_clock(state: Arc<SimState>) {
    loop {
        let tick = state.behaviour().tick.max(Duration::from_millis(1));
        tokio::time::sleep(tick).await;
        let actions = state.drive(Utc::now());
        state.perform(actions).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_window_counts_per_second() {
        let t0 = Instant::now();
        let mut window = RateWindow::default();
        assert!(window.check(2, t0).is_ok());
        assert!(window.check(2, t0 + Duration::from_millis(10)).is_ok());
        assert_eq!(
            window.check(2, t0 + Duration::from_millis(400)),
            Err(Duration::from_millis(600))
        );
        assert!(window.check(2, t0 + Duration::from_millis(1000)).is_ok());
    }
}
