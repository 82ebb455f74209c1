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
//!   pending payments **debit the balance** and record an [`EffectKind::Payment`](crate::sim::EffectKind::Payment) keyed by
//!   the `TransactionID` (subject: the number); a payment failed at once takes nothing.
//!   The answer echoes `transactionID` as a string and `referenceID` as a number, as in the
//!   document's payment example.
//! - **Pending and settlement**: see [`settlement`]. A pending payment that settles `Failed`
//!   is refunded ([`EffectKind::Refund`](crate::sim::EffectKind::Refund)). Delayed settlements are applied by a background
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
mod handlers;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use self::accounts::AccountBook;
pub use self::catalogue::SimCatalogue;
use self::handlers::{SimState, World, apply_settlement, settle_loop};
pub use self::settlement::{
    Final, OperationState, PaymentScript, PendingMode, SettleAfter, WorldError,
};
use self::settlement::{OperationBook, SettlementRules};
use crate::alqimah::{API_PATH, GLOBAL_NETWORK};
use crate::config::AlQimahConfig;
use crate::error::Provider;
use crate::redact::mask_msisdn;
use crate::sim::callback::{CallbackSender, CallbackSettings, DeliveryPlan};
use crate::sim::fault::{Fault, FaultControl, FaultPlan};
use crate::sim::ledger::Ledger;
use crate::sim::server::{RecordedRequest, RequestLog, RunningServer, lock, serve};

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
        let router = handlers::router(state.clone());
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

    /// The effects applied so far: [`EffectKind::Payment`](crate::sim::EffectKind::Payment) and [`EffectKind::Refund`](crate::sim::EffectKind::Refund) keyed
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
