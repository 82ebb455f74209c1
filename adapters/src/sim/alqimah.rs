//! The Al-Qimah payment platform simulator.
//!
//! Serves `POST /rest-api/login` and `POST /rest-api/` with the wire format documented in
//! [`crate::alqimah`], with in-memory agent accounts, operations and webhooks:
//!
//! - **Login** checks `Token` against `md5(UserName + AccountNumber + md5(Password) +
//!   APIToken)` of a configured [`SimAccount`] (lowercase hex only, compared in constant
//!   time). Any mismatch answers `status: false` with [`messages::LOGIN_FAILED`]. Success
//!   issues a 40-hex-digit access token living [`AlQimahBehaviour::token_lifetime`], with
//!   `token_expires` written at [`AlQimahBehaviour::utc_offset_minutes`] (default +03:00)
//!   and rounded **down** to the second, so a client never believes a token lives longer
//!   than it does.
//! - **Access tokens**: every `POST /rest-api/` must carry a valid `api-token`. A missing,
//!   unknown or expired token is refused **with HTTP 200 and `status: false`**
//!   ([`messages::TOKEN_MISSING`], [`messages::TOKEN_INVALID`], [`messages::TOKEN_EXPIRED`]),
//!   like every error in the document, before any fault or effect; such refusals are
//!   counted ([`AlQimahSim::token_rejections`]).
//! - **Routing** by `NetworkNumber`/`ServiceNumber`: `0/1` balance, `0/2` status, other
//!   `0/n` [`catalogue::messages::SERVICE_NOT_AVAILABLE`], any other network a payment.
//! - **Strict bodies**: a JSON object; numbers (`NetworkNumber`, `ServiceNumber`,
//!   `TransactionID`, `Amount`, `Quantity`) must be JSON numbers, texts JSON strings; unknown
//!   fields are refused; a payment has exactly one of `Amount`, `OfferCode`, `LinkCode`.
//!   Violations answer `status: false` with a message starting "Bad request:".
//! - **Payments**, in this order: duplicate `TransactionID` (ever used by a payment that
//!   was accepted, whatever its outcome: [`messages::DUPLICATE_TRANSACTION`], no effect);
//!   number check (`7` + 8 digits, `0` + 7 digits or `10` + 6 digits, else
//!   [`messages::INVALID_NUMBER`]); the [`SimCatalogue`] (service, code, required fields,
//!   quantity); balance (price over the account's balance:
//!   [`messages::INSUFFICIENT_BALANCE`]). Then the [`PaymentScript`] decides: succeeded or
//!   pending payments **debit the balance** and record an [`EffectKind::Payment`] keyed by
//!   the `TransactionID` (subject: the number); a payment failed at once takes nothing.
//!   The answer echoes `transactionID` as a string and `referenceID` as a number, as in the
//!   document's payment example.
//! - **Pending and settlement**: see [`settlement`]. A pending payment that settles `Failed`
//!   is refunded ([`EffectKind::Refund`]). Delayed settlements are applied by a background
//!   ticker every [`AlQimahSimConfig::tick`]; poll-count settlements by the status query.
//! - **Status** answers the document's shape (`transactionID` and `referenceID` numbers);
//!   a `TransactionID` unknown to the caller's account answers `status: false`
//!   [`messages::TRANSACTION_NOT_FOUND`].
//! - **Webhooks**: when an operation reaches its final state (at once, unless
//!   [`AlQimahBehaviour::webhook_for_immediate`] is off, or when it settles) and its payment
//!   carried a `WebHookURL`, the simulator sends `GET <WebHookURL>?OperationStatus=1|0&
//!   WebHookCode=...&TransactionID=...&ReferenceID=...&price=...&message=جاهزة|ملغية`
//!   through its [`CallbackSender`], whose [`DeliveryPlan`] scripts duplicates, delays,
//!   reordering, delivery before the HTTP answer and loss.
//!   [`AlQimahBehaviour::wrong_webhook_code`] sends a different code of the same length.
//! - **Faults**: the [`FaultPlan`] is consulted per call after authentication, with the
//!   endpoint names [`LOGIN_ENDPOINT`], [`BALANCE_ENDPOINT`], [`STATUS_ENDPOINT`] and
//!   [`PAYMENT_ENDPOINT`] (login: before processing). Gateway errors (429, 5xx) are nginx-like
//!   HTML pages; [`Fault::Refusal`] answers `status: false` with its message ([`refusal`]).

pub mod catalogue;
pub mod settlement;

mod accounts;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use chrono::FixedOffset;
use http::{HeaderMap, HeaderValue, StatusCode};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use self::accounts::{AccountBook, TokenRefusal};
use self::catalogue::Ask;
pub use self::catalogue::SimCatalogue;
pub use self::settlement::{
    Final, OperationState, PaymentScript, PendingMode, SettleAfter, WorldError,
};
use self::settlement::{NewOperation, OperationBook, Settlement, SettlementRules, WebhookTarget};
use crate::alqimah::login::TOKEN_EXPIRES_FORMAT;
use crate::alqimah::{
    API_PATH, API_TOKEN_HEADER, BALANCE_SERVICE, GLOBAL_NETWORK, LOGIN_PATH, STATUS_SERVICE,
};
use crate::config::AlQimahConfig;
use crate::error::Provider;
use crate::redact::mask_msisdn;
use crate::sim::callback::{Callback, CallbackSender, CallbackSettings, DeliveryPlan};
use crate::sim::fault::{Fault, FaultControl, FaultPlan, FaultWire, answer_fault};
use crate::sim::ledger::{EffectKind, Ledger};
use crate::sim::server::{ConnHandle, RecordedRequest, RequestLog, RunningServer, lock, serve};

/// Fault-plan name of the login.
pub const LOGIN_ENDPOINT: &str = "login";
/// Fault-plan name of the balance query.
pub const BALANCE_ENDPOINT: &str = "balance";
/// Fault-plan name of the status query.
pub const STATUS_ENDPOINT: &str = "status";
/// Fault-plan name of the payments.
pub const PAYMENT_ENDPOINT: &str = "payment";

/// Account number of the default [`SimAccount`].
pub const DEFAULT_ACCOUNT_NUMBER: &str = "1000001";
/// User name of the default [`SimAccount`].
pub const DEFAULT_USER_NAME: &str = "handover-sim";
/// Balance of the default [`SimAccount`], in rials.
pub const DEFAULT_BALANCE: u64 = 1_000_000;

/// The simulator's messages. The document gives none for errors; these are ours, and the
/// client's [`classify_refusal`](crate::alqimah::classify_refusal) recognises them.
pub mod messages {
    /// Login success (the document's).
    pub const LOGIN_SUCCESS: &str = "Login Successful";
    /// Login refused.
    pub const LOGIN_FAILED: &str = "Invalid login credentials";
    /// No `api-token` header.
    pub const TOKEN_MISSING: &str = "api-token header is required";
    /// An `api-token` never issued (or forgotten).
    pub const TOKEN_INVALID: &str = "Invalid token";
    /// An `api-token` past its expiry.
    pub const TOKEN_EXPIRED: &str = "Token expired, please login again";
    /// Balance query success (the document's).
    pub const BALANCE_SUCCESS: &str = "Agent Balance Query Success";
    /// Status query for an unknown `TransactionID`.
    pub const TRANSACTION_NOT_FOUND: &str = "Transaction not found";
    /// Payment with a `TransactionID` used before.
    pub const DUPLICATE_TRANSACTION: &str =
        "Duplicate TransactionID: the transaction already exists";
    /// Payment over the account's balance.
    pub const INSUFFICIENT_BALANCE: &str = "Insufficient balance";
    /// Payment to a number that is not a Yemeni mobile, land line or ADSL number.
    pub const INVALID_NUMBER: &str = "Invalid mobile number";
    /// Payment answer when it succeeded (the document's, typo included).
    pub const PAYMENT_SUCCESS: &str = "Payment succcess";
    /// Operation ready (the document's status message).
    pub const READY: &str = "جاهزة";
    /// Operation failed / cancelled (the document's status message).
    pub const CANCELLED: &str = "ملغية";
    /// Operation pending (the document's status message).
    pub const PENDING: &str = "في الانتظار";
}

/// A [`Fault::Refusal`] answering `status: false` with `message` (use [`messages`] for the
/// recognised reasons).
pub fn refusal(message: &str) -> Fault {
    Fault::refusal("status_false", message)
}

/// An agent account of the simulator. `Debug` redacts the password and API token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SimAccount {
    /// `AccountNumber`.
    pub account_number: String,
    /// `UserName`.
    pub user_name: String,
    /// `Password`.
    pub password: SecretString,
    /// `APIToken`.
    pub api_token: SecretString,
    /// Starting balance, in rials.
    pub balance: u64,
}

impl SimAccount {
    /// An account with these credentials and balance.
    pub fn new(
        account_number: impl Into<String>,
        user_name: impl Into<String>,
        password: SecretString,
        api_token: SecretString,
        balance: u64,
    ) -> Self {
        Self {
            account_number: account_number.into(),
            user_name: user_name.into(),
            password,
            api_token,
            balance,
        }
    }
}

impl Default for SimAccount {
    fn default() -> Self {
        Self::new(
            DEFAULT_ACCOUNT_NUMBER,
            DEFAULT_USER_NAME,
            SecretString::from("handover-sim-password"),
            SecretString::from("handover-sim-api-token"),
            DEFAULT_BALANCE,
        )
    }
}

/// How the simulated Al-Qimah behaves. Changeable while running
/// ([`AlQimahSim::set_behaviour`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct AlQimahBehaviour {
    /// Lifetime of access tokens. Default one hour (the document gives no figure).
    pub token_lifetime: Duration,
    /// UTC offset of `token_expires`, in minutes. Default 180 (Asia/Aden).
    pub utc_offset_minutes: i32,
    /// Which unscripted payments are pending. Default [`PendingMode::Never`].
    pub pending: PendingMode,
    /// When unscripted pending payments settle. Default after one status query.
    pub settle_after: SettleAfter,
    /// How unscripted pending payments settle. Default [`Final::Succeeded`].
    pub settle_to: Final,
    /// Send the webhook for payments final at once too. Default true ("when the status of
    /// the order changes" includes its first final state).
    pub webhook_for_immediate: bool,
    /// Send webhooks with a wrong `WebHookCode` (same length). Default false.
    pub wrong_webhook_code: bool,
    /// Most operations kept; the oldest are forgotten first (and their `TransactionID`s
    /// with them). Default 100 000.
    pub max_operations: usize,
}

impl Default for AlQimahBehaviour {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(3600),
            utc_offset_minutes: 180,
            pending: PendingMode::Never,
            settle_after: SettleAfter::Polls(1),
            settle_to: Final::Succeeded,
            webhook_for_immediate: true,
            wrong_webhook_code: false,
            max_operations: 100_000,
        }
    }
}

impl AlQimahBehaviour {
    /// The default behaviour with pending payments per `pending`, settling `after` to `to`.
    pub fn with_pending(mut self, pending: PendingMode, after: SettleAfter, to: Final) -> Self {
        self.pending = pending;
        self.settle_after = after;
        self.settle_to = to;
        self
    }

    /// The default behaviour with another token lifetime.
    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// The default behaviour sending wrong `WebHookCode`s.
    pub fn with_wrong_webhook_code(mut self) -> Self {
        self.wrong_webhook_code = true;
        self
    }

    fn rules(&self) -> SettlementRules {
        SettlementRules {
            pending: self.pending,
            settle_after: self.settle_after,
            settle_to: self.settle_to,
            max_operations: self.max_operations,
        }
    }
}

/// How to start an [`AlQimahSim`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AlQimahSimConfig {
    /// Loopback port; `None` picks a free one.
    pub port: Option<u16>,
    /// Seed for access tokens, references and pending draws.
    pub seed: u64,
    /// The agent accounts; the first is the one [`AlQimahSim::client_config`] uses. Default:
    /// one [`SimAccount::default`].
    pub accounts: Vec<SimAccount>,
    /// Behaviour knobs.
    pub behaviour: AlQimahBehaviour,
    /// What is sold.
    pub catalogue: SimCatalogue,
    /// Faults to inject.
    pub faults: FaultPlan,
    /// How webhooks travel.
    pub delivery: DeliveryPlan,
    /// Webhook retry and timing settings.
    pub callback_settings: CallbackSettings,
    /// The `webhook_url` put in [`AlQimahSim::client_config`]: where the engine's ingress
    /// (or a test) receives the webhooks. Default none.
    pub webhook_url: Option<Url>,
    /// Period of the ticker settling delayed operations. Default 10 ms.
    pub tick: Duration,
}

impl Default for AlQimahSimConfig {
    fn default() -> Self {
        Self {
            port: None,
            seed: 0,
            accounts: vec![SimAccount::default()],
            behaviour: AlQimahBehaviour::default(),
            catalogue: SimCatalogue::default(),
            faults: FaultPlan::default(),
            delivery: DeliveryPlan::default(),
            callback_settings: CallbackSettings::fast(),
            webhook_url: None,
            tick: Duration::from_millis(10),
        }
    }
}

impl AlQimahSimConfig {
    /// This configuration with another behaviour.
    pub fn with_behaviour(mut self, behaviour: AlQimahBehaviour) -> Self {
        self.behaviour = behaviour;
        self
    }

    /// This configuration with these accounts (the first is the client's).
    pub fn with_accounts(mut self, accounts: Vec<SimAccount>) -> Self {
        self.accounts = accounts;
        self
    }

    /// This configuration with a fault plan.
    pub fn with_faults(mut self, faults: FaultPlan) -> Self {
        self.faults = faults;
        self
    }

    /// This configuration with a webhook delivery plan.
    pub fn with_delivery(mut self, delivery: DeliveryPlan) -> Self {
        self.delivery = delivery;
        self
    }

    /// This configuration telling clients to send `webhook_url` as `WebHookURL`.
    pub fn with_webhook_url(mut self, webhook_url: Url) -> Self {
        self.webhook_url = Some(webhook_url);
        self
    }

    /// This configuration with a seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// This configuration on a port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

/// An operation as the simulator sees it. `Debug` masks the number.
#[derive(Clone, PartialEq, Eq)]
pub struct OperationView {
    /// Our `TransactionID`.
    pub transaction_id: u64,
    /// The agent account charged.
    pub account: String,
    /// `MobileNumber`, if given.
    pub mobile: Option<String>,
    /// The price, in rials.
    pub price: u64,
    /// The `referenceID`.
    pub reference_id: u64,
    /// Where it stands.
    pub state: OperationState,
    /// Status queries answered while it was pending.
    pub polls: u32,
    /// Whether its payment carried a `WebHookURL`.
    pub has_webhook: bool,
}

impl std::fmt::Debug for OperationView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationView")
            .field("transaction_id", &self.transaction_id)
            .field("account", &self.account)
            .field("mobile", &self.mobile.as_deref().map(mask_msisdn))
            .field("price", &self.price)
            .field("reference_id", &self.reference_id)
            .field("state", &self.state)
            .field("polls", &self.polls)
            .field("has_webhook", &self.has_webhook)
            .finish()
    }
}

impl From<settlement::OperationRecord> for OperationView {
    fn from(r: settlement::OperationRecord) -> Self {
        Self {
            transaction_id: r.transaction_id,
            account: r.account,
            mobile: r.mobile,
            price: r.price,
            reference_id: r.reference_id,
            state: r.state,
            polls: r.polls,
            has_webhook: r.webhook.is_some(),
        }
    }
}

struct World {
    accounts: AccountBook,
    book: OperationBook,
}

struct SimState {
    world: Mutex<World>,
    behaviour: Mutex<AlQimahBehaviour>,
    catalogue: SimCatalogue,
    ledger: Ledger,
    faults: FaultControl,
    callbacks: CallbackSender,
    logins: AtomicU64,
    token_rejections: AtomicU64,
}

impl SimState {
    fn behaviour(&self) -> AlQimahBehaviour {
        *lock(&self.behaviour)
    }
}

/// What a handler decided: its answer, and the webhooks to send before answering.
struct Processed {
    response: Response,
    callbacks: Vec<Callback>,
}

impl From<Response> for Processed {
    fn from(response: Response) -> Self {
        Self {
            response,
            callbacks: Vec::new(),
        }
    }
}

/// A running Al-Qimah simulator. Stops (server and settlement ticker) when dropped.
pub struct AlQimahSim {
    server: RunningServer,
    state: Arc<SimState>,
    requests: RequestLog,
    ticker: JoinHandle<()>,
    client_config: AlQimahConfig,
}

impl std::fmt::Debug for AlQimahSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlQimahSim")
            .field("base_url", &self.server.base_url().as_str())
            .finish_non_exhaustive()
    }
}

impl Drop for AlQimahSim {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

impl AlQimahSim {
    /// Starts the simulator on loopback. Fails if no account is configured.
    pub async fn start(config: AlQimahSimConfig) -> io::Result<Self> {
        let first = config.accounts.first().cloned().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the Al-Qimah simulator needs at least one account",
            )
        })?;
        let mut accounts = AccountBook::new(config.seed);
        for a in &config.accounts {
            accounts.add(
                &a.account_number,
                &a.user_name,
                &a.password,
                &a.api_token,
                a.balance,
            );
        }
        let state = Arc::new(SimState {
            world: Mutex::new(World {
                accounts,
                book: OperationBook::new(config.seed),
            }),
            behaviour: Mutex::new(config.behaviour),
            catalogue: config.catalogue,
            ledger: Ledger::new(Provider::AlQimah),
            faults: FaultControl::new(config.faults),
            callbacks: CallbackSender::new(config.callback_settings, config.delivery)?,
            logins: AtomicU64::new(0),
            token_rejections: AtomicU64::new(0),
        });
        let router = Router::new()
            .route(LOGIN_PATH, post(login))
            .route(API_PATH, post(api))
            .with_state(state.clone());
        let requests = RequestLog::default();
        let server = serve(config.port, router, requests.clone()).await?;
        let ticker = tokio::spawn(settle_loop(
            Arc::downgrade(&state),
            config.tick.max(Duration::from_millis(1)),
        ));
        let mut client_config = AlQimahConfig::new(
            server.base_url().clone(),
            first.account_number,
            first.user_name,
            first.password,
            first.api_token,
        );
        client_config.webhook_url = config.webhook_url;
        client_config.token_expires_utc_offset_minutes = config.behaviour.utc_offset_minutes;
        tracing::info!(base_url = %server.base_url(), "Al-Qimah simulator listening");
        Ok(Self {
            server,
            state,
            requests,
            ticker,
            client_config,
        })
    }

    /// Where the simulator listens, e.g. `http://127.0.0.1:41234/`.
    pub fn base_url(&self) -> &Url {
        self.server.base_url()
    }

    /// A client configuration for the first account, pointing at this simulator (with the
    /// configured `webhook_url`).
    pub fn client_config(&self) -> AlQimahConfig {
        self.client_config.clone()
    }

    /// The effects applied so far: [`EffectKind::Payment`] and [`EffectKind::Refund`] keyed
    /// by `TransactionID`.
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

    /// The payment requests received (`POST /rest-api/` with a network other than 0),
    /// oldest first, including refused and faulted ones.
    pub fn payment_requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .all()
            .into_iter()
            .filter(|r| {
                r.path == API_PATH
                    && r.json()
                        .and_then(|b| b.get("NetworkNumber").and_then(Value::as_u64))
                        .is_some_and(|n| n != u64::from(GLOBAL_NETWORK))
            })
            .collect()
    }

    /// The webhook sender: its attempts ([`CallbackSender::sent`]) and delivery plan.
    pub fn callbacks(&self) -> &CallbackSender {
        &self.state.callbacks
    }

    /// The current behaviour.
    pub fn behaviour(&self) -> AlQimahBehaviour {
        self.state.behaviour()
    }

    /// Changes the behaviour; applies to later payments and token checks.
    pub fn set_behaviour(&self, behaviour: AlQimahBehaviour) {
        *lock(&self.state.behaviour) = behaviour;
    }

    /// Successful logins so far.
    pub fn logins(&self) -> u64 {
        self.state.logins.load(Ordering::SeqCst)
    }

    /// Calls refused for a missing, unknown or expired access token so far.
    pub fn token_rejections(&self) -> u64 {
        self.state.token_rejections.load(Ordering::SeqCst)
    }

    /// The next payment that passes every check goes as `script` (queued: each call scripts
    /// one more payment).
    pub fn script_next_payment(&self, script: PaymentScript) {
        lock(&self.state.world).book.script_next(script);
    }

    /// The back office settles a pending operation: refunds it if it fails, sends its
    /// webhook.
    pub async fn settle(&self, transaction_id: u64, to: Final) -> Result<(), WorldError> {
        let wrong_code = self.state.behaviour().wrong_webhook_code;
        let callback = {
            let mut world = lock(&self.state.world);
            let settled = world.book.settle(transaction_id, to)?;
            apply_settlement(&mut world, &self.state.ledger, &settled, wrong_code)
        };
        if let Some(callback) = callback {
            self.state.callbacks.emit(callback).await;
        }
        Ok(())
    }

    /// Every issued access token expires now (server-side expiry or revocation).
    pub fn expire_tokens(&self) {
        lock(&self.state.world).accounts.expire_all(Instant::now());
    }

    /// An account's balance, in rials.
    pub fn balance(&self, account_number: &str) -> Option<u64> {
        lock(&self.state.world).accounts.balance(account_number)
    }

    /// Sets an account's balance (a feed voucher, or draining it for a test).
    pub fn set_balance(&self, account_number: &str, balance: u64) -> Result<(), WorldError> {
        lock(&self.state.world)
            .accounts
            .set_balance(account_number, balance)
            .then_some(())
            .ok_or(WorldError::UnknownAccount)
    }

    /// The operation with this `TransactionID`.
    pub fn operation(&self, transaction_id: u64) -> Option<OperationView> {
        lock(&self.state.world)
            .book
            .get(transaction_id)
            .map(OperationView::from)
    }

    /// Every kept operation, oldest first.
    pub fn operations(&self) -> Vec<OperationView> {
        lock(&self.state.world)
            .book
            .records()
            .into_iter()
            .map(OperationView::from)
            .collect()
    }
}

/// Settles delayed operations as their time comes, and sends their webhooks.
async fn settle_loop(state: Weak<SimState>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(state) = state.upgrade() else {
            return;
        };
        let wrong_code = state.behaviour().wrong_webhook_code;
        let callbacks: Vec<Callback> = {
            let mut world = lock(&state.world);
            if !world.book.has_delayed() {
                continue;
            }
            let due = world.book.due(Instant::now());
            due.iter()
                .filter_map(|s| apply_settlement(&mut world, &state.ledger, s, wrong_code))
                .collect()
        };
        for callback in callbacks {
            state.callbacks.emit(callback).await;
        }
    }
}

/// Applies a settlement's money (refund of a pending payment that failed) and returns its
/// webhook, if its payment asked for one.
fn apply_settlement(
    world: &mut World,
    ledger: &Ledger,
    settled: &Settlement,
    wrong_code: bool,
) -> Option<Callback> {
    if settled.was_pending && settled.to == Final::Failed {
        world.accounts.credit(&settled.account, settled.price);
        ledger.record(
            EffectKind::Refund,
            settled.transaction_id.to_string(),
            settled.mobile.as_deref(),
            json!({ "price": settled.price, "account": settled.account }),
        );
    }
    webhook(settled, wrong_code)
}

/// The documented webhook: `GET` with the six query parameters.
fn webhook(settled: &Settlement, wrong_code: bool) -> Option<Callback> {
    let target: &WebhookTarget = settled.webhook.as_ref()?;
    let code = if wrong_code {
        forged_code(&target.code)
    } else {
        target.code.clone()
    };
    let (status, message) = match settled.to {
        Final::Succeeded => ("1", messages::READY),
        Final::Failed => ("0", messages::CANCELLED),
    };
    let transaction_id = settled.transaction_id.to_string();
    Some(Callback::get_query(
        "webhook",
        transaction_id.clone(),
        target.url.clone(),
        vec![
            ("OperationStatus".to_owned(), status.to_owned()),
            ("WebHookCode".to_owned(), code),
            ("TransactionID".to_owned(), transaction_id),
            ("ReferenceID".to_owned(), settled.reference_id.to_string()),
            ("price".to_owned(), settled.price.to_string()),
            ("message".to_owned(), message.to_owned()),
        ],
    ))
}

/// A code of the same length with every character different, so only the comparison of
/// the contents (the constant-time check) can tell it from the real one.
fn forged_code(code: &str) -> String {
    code.chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect()
}

/// nginx in front of the API for gateway errors; the API's own shape for refusals.
struct Wire;

impl FaultWire for Wire {
    fn error(&self, status: StatusCode, retry_after_secs: Option<u64>) -> Response {
        let title = format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        );
        let page = format!(
            "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        );
        let mut response = (status, page).into_response();
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/html"),
        );
        if let Some(secs) = retry_after_secs {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }

    fn refusal(&self, _code: &str, message: &str) -> Response {
        status_false(message)
    }
}

fn status_false(message: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({ "status": false, "message": message })),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn bad_request(what: &str) -> Response {
    status_false(&format!("Bad request: {what}"))
}

/// Runs a handler body under the fault plan: faults before the effect answer at once;
/// faults after it spoil the answer `process` produced (its webhooks still go out, as the
/// operation did happen).
async fn with_faults(
    state: &SimState,
    conn: &ConnHandle,
    endpoint: &'static str,
    process: impl FnOnce() -> Processed,
) -> Response {
    let fault: Option<Fault> = state.faults.next(endpoint);
    if let Some(f) = &fault
        && !f.after_effect()
    {
        return answer_fault(f, conn, None, &Wire).await;
    }
    let processed = process();
    for callback in processed.callbacks {
        state.callbacks.emit(callback).await;
    }
    match fault {
        Some(f) => answer_fault(&f, conn, Some(processed.response), &Wire).await,
        None => processed.response,
    }
}

async fn login(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    body: Bytes,
) -> Response {
    with_faults(&state, &conn, LOGIN_ENDPOINT, || {
        process_login(&state, &body).into()
    })
    .await
}

fn process_login(state: &SimState, body: &[u8]) -> Response {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return bad_request("the body must be a JSON object");
    };
    if let Some(unknown) = unknown_field(&fields, &["AccountNumber", "UserName", "Token"]) {
        return bad_request(&format!("unknown field {unknown}"));
    }
    let text = |name| fields.get(name).and_then(Value::as_str);
    let (Some(account), Some(user), Some(token)) =
        (text("AccountNumber"), text("UserName"), text("Token"))
    else {
        return bad_request("AccountNumber, UserName and Token must be strings");
    };
    let behaviour = state.behaviour();
    let issued = lock(&state.world).accounts.login(
        account,
        user,
        token,
        Instant::now(),
        behaviour.token_lifetime,
    );
    let Some(access_token) = issued else {
        return status_false(messages::LOGIN_FAILED);
    };
    state.logins.fetch_add(1, Ordering::SeqCst);
    ok(json!({
        "status": true,
        "message": messages::LOGIN_SUCCESS,
        "access_token": access_token,
        "token_expires": format_token_expires(
            SystemTime::now() + behaviour.token_lifetime,
            behaviour.utc_offset_minutes,
        ),
    }))
}

/// `token_expires` at the offset, truncated to the second.
fn format_token_expires(at: SystemTime, offset_minutes: i32) -> String {
    let offset = FixedOffset::east_opt(offset_minutes * 60)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC is a valid offset"));
    chrono::DateTime::<chrono::Utc>::from(at)
        .with_timezone(&offset)
        .format(TOKEN_EXPIRES_FORMAT)
        .to_string()
}

fn unknown_field<'a>(fields: &'a Map<String, Value>, allowed: &[&str]) -> Option<&'a str> {
    fields
        .keys()
        .map(String::as_str)
        .find(|k| !allowed.contains(k))
}

async fn api(
    State(state): State<Arc<SimState>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers.get(API_TOKEN_HEADER).and_then(|v| v.to_str().ok());
    let authenticated = lock(&state.world)
        .accounts
        .authenticate(token, Instant::now());
    let account = match authenticated {
        Ok(account) => account,
        Err(refusal) => {
            state.token_rejections.fetch_add(1, Ordering::SeqCst);
            return status_false(match refusal {
                TokenRefusal::Missing => messages::TOKEN_MISSING,
                TokenRefusal::Unknown => messages::TOKEN_INVALID,
                TokenRefusal::Expired => messages::TOKEN_EXPIRED,
            });
        }
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the body must be a JSON object");
    };
    let number = |name| fields.get(name).and_then(Value::as_u64);
    let (Some(network), Some(service)) = (number("NetworkNumber"), number("ServiceNumber")) else {
        return bad_request("NetworkNumber and ServiceNumber must be whole numbers");
    };
    let global = u64::from(GLOBAL_NETWORK);
    match (network, service) {
        (n, s) if n == global && s == u64::from(BALANCE_SERVICE) => {
            with_faults(&state, &conn, BALANCE_ENDPOINT, || {
                process_balance(&state, &account, &fields).into()
            })
            .await
        }
        (n, s) if n == global && s == u64::from(STATUS_SERVICE) => {
            with_faults(&state, &conn, STATUS_ENDPOINT, || {
                process_status(&state, &account, &fields)
            })
            .await
        }
        (n, _) if n == global => status_false(catalogue::messages::SERVICE_NOT_AVAILABLE),
        _ => {
            with_faults(&state, &conn, PAYMENT_ENDPOINT, || {
                process_payment(&state, &account, network, service, &fields)
            })
            .await
        }
    }
}

fn process_balance(state: &SimState, account: &str, fields: &Map<String, Value>) -> Response {
    if let Some(unknown) = unknown_field(fields, &["NetworkNumber", "ServiceNumber"]) {
        return bad_request(&format!("unknown field {unknown}"));
    }
    let balance = lock(&state.world).accounts.balance(account).unwrap_or(0);
    ok(json!({
        "status": true,
        "agentBalance": balance,
        "message": messages::BALANCE_SUCCESS,
        "transactionID": 0,
    }))
}

/// `TransactionID` as our client sends it: a positive whole JSON number.
fn transaction_id(fields: &Map<String, Value>) -> Option<u64> {
    fields
        .get("TransactionID")
        .and_then(Value::as_u64)
        .filter(|id| *id > 0)
}

fn process_status(state: &SimState, account: &str, fields: &Map<String, Value>) -> Processed {
    if let Some(unknown) =
        unknown_field(fields, &["NetworkNumber", "ServiceNumber", "TransactionID"])
    {
        return bad_request(&format!("unknown field {unknown}")).into();
    }
    let Some(id) = transaction_id(fields) else {
        return bad_request("TransactionID must be a positive whole number").into();
    };
    let wrong_code = state.behaviour().wrong_webhook_code;
    let mut world = lock(&state.world);
    // Another account's operation is as unknown as one never made.
    if world.book.get(id).is_none_or(|r| r.account != account) {
        return status_false(messages::TRANSACTION_NOT_FOUND).into();
    }
    let Some((record, settled)) = world.book.poll(id, Instant::now()) else {
        return status_false(messages::TRANSACTION_NOT_FOUND).into();
    };
    let callbacks = settled
        .and_then(|s| apply_settlement(&mut world, &state.ledger, &s, wrong_code))
        .into_iter()
        .collect();
    let message = match record.state {
        OperationState::Succeeded => messages::READY,
        OperationState::Failed => messages::CANCELLED,
        OperationState::Pending => messages::PENDING,
    };
    Processed {
        response: ok(json!({
            "status": true,
            "operationStatus": record.state.code(),
            "mobileNumber": record.mobile.as_deref().unwrap_or(""),
            "price": record.price,
            "message": message,
            "details": format!("Simulated operation {}", record.reference_id),
            "transactionID": record.transaction_id,
            "referenceID": record.reference_id,
        })),
        callbacks,
    }
}

const PAYMENT_FIELDS: [&str; 11] = [
    "NetworkNumber",
    "ServiceNumber",
    "MobileNumber",
    "Amount",
    "OfferCode",
    "LinkCode",
    "Fields",
    "Quantity",
    "TransactionID",
    "WebHookURL",
    "WebHookCode",
];

/// Yemeni numbers as the document writes them: `7XXXXXXXX`, `0XXXXXXX`, `10XXXXXX`.
fn is_valid_number(number: &str) -> bool {
    let digits = number.bytes().all(|b| b.is_ascii_digit());
    digits
        && ((number.len() == 9 && number.starts_with('7'))
            || (number.len() == 8 && (number.starts_with('0') || number.starts_with("10"))))
}

fn process_payment(
    state: &SimState,
    account: &str,
    network: u64,
    service: u64,
    fields: &Map<String, Value>,
) -> Processed {
    checked_payment(state, account, network, service, fields)
        .unwrap_or_else(|refusal| status_false(&refusal).into())
}

/// The payment checks in the documented order; `Err` is the message of a `status: false`
/// refusal.
fn checked_payment(
    state: &SimState,
    account: &str,
    network: u64,
    service: u64,
    fields: &Map<String, Value>,
) -> Result<Processed, String> {
    let refuse = |message: &str| message.to_owned();
    let bad = |what: &str| format!("Bad request: {what}");
    if let Some(unknown) = unknown_field(fields, &PAYMENT_FIELDS) {
        return Err(bad(&format!("unknown field {unknown}")));
    }
    let id = transaction_id(fields)
        .ok_or_else(|| bad("TransactionID must be a positive whole number"))?;
    let text = |name: &str| -> Result<Option<&str>, String> {
        match fields.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Ok(Some(s.as_str())),
            Some(_) => Err(bad(&format!("{name} must be a non-empty string"))),
        }
    };
    let whole = |name: &str| -> Result<Option<u64>, String> {
        match fields.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| bad(&format!("{name} must be a positive whole number"))),
        }
    };
    let mobile = text("MobileNumber")?;
    let amount = whole("Amount")?;
    let offer = text("OfferCode")?;
    let link = text("LinkCode")?;
    let quantity = whole("Quantity")?;
    let game_fields = match fields.get("Fields") {
        None => None,
        Some(Value::Object(map)) if map.values().all(Value::is_string) => Some(map),
        Some(_) => return Err(bad("Fields must be a JSON object of strings")),
    };
    let webhook_url = text("WebHookURL")?
        .map(|u| {
            Url::parse(u)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| bad("WebHookURL must be an http(s) URL"))
        })
        .transpose()?;
    let webhook_code = text("WebHookCode")?;
    let empty = Map::new();
    let ask = match (amount, offer, link) {
        (Some(amount), None, None) => Ask::TopUp { amount },
        (None, Some(code), None) => Ask::Offer { code },
        (None, None, Some(link_code)) => Ask::Game {
            link_code,
            fields: game_fields.unwrap_or(&empty),
            quantity,
        },
        _ => {
            return Err(bad(
                "exactly one of Amount, OfferCode and LinkCode is required",
            ));
        }
    };
    if !matches!(ask, Ask::Game { .. }) && (game_fields.is_some() || quantity.is_some()) {
        return Err(bad("Fields and Quantity are for game cards only"));
    }
    if !matches!(ask, Ask::Game { .. }) && mobile.is_none() {
        return Err(bad("MobileNumber is required"));
    }

    let behaviour = state.behaviour();
    let rules = behaviour.rules();
    let mut world = lock(&state.world);
    if world.book.contains(id) {
        return Err(refuse(messages::DUPLICATE_TRANSACTION));
    }
    if mobile.is_some_and(|m| !is_valid_number(m)) {
        return Err(refuse(messages::INVALID_NUMBER));
    }
    let price = state
        .catalogue
        .price(network, service, &ask)
        .map_err(refuse)?;
    if world.accounts.balance(account).unwrap_or(0) < price {
        return Err(refuse(messages::INSUFFICIENT_BALANCE));
    }
    let script = world.book.decide(&rules);
    let takes_money = script != PaymentScript::Immediate(Final::Failed);
    let agent_balance = if takes_money {
        world
            .accounts
            .debit(account, price)
            .ok_or_else(|| refuse(messages::INSUFFICIENT_BALANCE))?
    } else {
        world.accounts.balance(account).unwrap_or(0)
    };
    let operation = NewOperation {
        transaction_id: id,
        account: account.to_owned(),
        mobile: mobile.map(str::to_owned),
        price,
        webhook: webhook_url.map(|url| WebhookTarget {
            url,
            code: webhook_code.unwrap_or_default().to_owned(),
        }),
    };
    let record = world
        .book
        .open(operation, script, Instant::now(), &rules)
        .map_err(|_| refuse(messages::DUPLICATE_TRANSACTION))?;
    if takes_money {
        state.ledger.record(
            EffectKind::Payment,
            id.to_string(),
            mobile,
            json!({
                "price": price,
                "account": account,
                "network": network,
                "service": service,
                "reference": record.reference_id,
            }),
        );
    }
    let callbacks = if behaviour.webhook_for_immediate {
        record
            .immediate_settlement()
            .and_then(|s| webhook(&s, behaviour.wrong_webhook_code))
            .into_iter()
            .collect()
    } else {
        Vec::new()
    };
    let message = match record.state {
        OperationState::Succeeded => messages::PAYMENT_SUCCESS,
        OperationState::Failed => messages::CANCELLED,
        OperationState::Pending => messages::PENDING,
    };
    Ok(Processed {
        response: ok(json!({
            "status": true,
            "operationStatus": record.state.code(),
            "agentBalance": agent_balance,
            "price": price,
            "message": message,
            "transactionID": id.to_string(),
            "referenceID": record.reference_id,
        })),
        callbacks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_expires_is_written_at_the_offset_and_truncated() {
        let at = SystemTime::from(
            chrono::DateTime::parse_from_rfc3339("2024-08-05T16:31:45.900+00:00").unwrap(),
        );
        assert_eq!(format_token_expires(at, 180), "2024-08-05 19:31:45");
        assert_eq!(format_token_expires(at, 0), "2024-08-05 16:31:45");
    }

    #[test]
    fn numbers_follow_the_documented_shapes() {
        for ok in ["777123456", "01234567", "10234567"] {
            assert!(is_valid_number(ok), "{ok}");
        }
        for bad in ["7771234567", "877123456", "1123456", "7731234", "0123456x"] {
            assert!(!is_valid_number(bad), "{bad}");
        }
    }

    #[test]
    fn the_wrong_webhook_code_has_the_same_length_and_differs_everywhere() {
        let real = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
        let forged = forged_code(real);
        assert_eq!(forged.len(), real.len());
        assert!(forged.chars().zip(real.chars()).all(|(a, b)| a != b));

        let settled = Settlement {
            transaction_id: 5,
            to: Final::Succeeded,
            was_pending: false,
            account: "a".into(),
            mobile: None,
            price: 1,
            reference_id: 9,
            webhook: Some(WebhookTarget {
                url: Url::parse("http://127.0.0.1:1/hook").unwrap(),
                code: "0a1b".into(),
            }),
        };
        let right = webhook(&settled, false).unwrap();
        let wrong = webhook(&settled, true).unwrap();
        let code = |c: &Callback| format!("{c:?}");
        // Debug of a callback never shows the query (the code is in it).
        assert!(!code(&right).contains("0a1b"));
        assert_eq!(right.key, "5");
        assert_eq!(wrong.key, "5");
    }
}
