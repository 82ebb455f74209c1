//! Al-Qimah payment platform REST API: balance top-ups, offers and game cards, with pending
//! re-checks and webhooks.
//!
//! Source: `alqimah-rest-api.txt` ("Al-Qimah REST-API Documentation"). Journey J4: log in,
//! pay with our own unique `TransactionID`, and follow a pending operation by status query
//! and webhook until it succeeds or fails, never paying twice.
//!
//! # Endpoints
//!
//! | Client call | Request | Seed section | Effect |
//! |---|---|---|---|
//! | (token cache) | `POST /rest-api/login` `{AccountNumber, UserName, Token}` | "Generate Login Token", "Login" | issues an access token |
//! | [`AlQimahClient::balance`] | `POST /rest-api/` `{NetworkNumber: 0, ServiceNumber: 1}` | "Global Operations", "Get Account Balance" | none |
//! | [`AlQimahClient::operation_status`] | `POST /rest-api/` `{NetworkNumber: 0, ServiceNumber: 2, TransactionID}` | "Get Operation Status" | none |
//! | [`AlQimahClient::pay`] with [`Product::TopUp`] | `POST /rest-api/` `{NetworkNumber, ServiceNumber, MobileNumber, Amount, TransactionID, WebHookURL, WebHookCode}` | "Payment Operations", "Payment Balance" | **debits the agent account** |
//! | [`AlQimahClient::pay`] with [`Product::Offer`] | same with `OfferCode` instead of `Amount` | "Payment Offers" | **debits the agent account** |
//! | [`AlQimahClient::pay`] with [`Product::GameCard`] | same with `LinkCode`, `Fields`, `Quantity` | "Payment Game Services and Gift Cards" | **debits the agent account** |
//! | [`AlQimahClient::reconcile_payment`] | status, then the payment only if Al-Qimah never saw it | "Get Operation Status" | at most one payment |
//! | ingress: [`parse_webhook`] | `GET <WebHookURL>?OperationStatus&WebHookCode&TransactionID&ReferenceID&price&message` | "Example Webhook Request" | none |
//!
//! The base URL is `https://softibs.com` in the document. Every call but the login carries
//! the access token in the `api-token` header.
//!
//! # Authentication
//!
//! - The login `Token` is `md5(UserName + AccountNumber + md5(Password) + APIToken)`,
//!   lowercase hex over UTF-8 ([`login_token`]), computed once when the client is built; the
//!   password and API token are not kept. `AccountNumber` is sent as a JSON string (it is
//!   text in the token).
//! - The `access_token` lives in a [`TokenCache`] shared by every clone of the client, so
//!   concurrent journeys share one login at a time. It is renewed `token_refresh_skew_ms`
//!   before `token_expires` (capped at half its lifetime by the cache).
//! - **`token_expires` has no zone** ("2024-08-05 19:31:45"). We read it at
//!   `token_expires_utc_offset_minutes` from UTC, default **+03:00 (Asia/Aden)**: Al-Qimah
//!   serves Yemen (Yemeni rial prices, Yemeni networks) and Yemen has no daylight saving
//!   time. A wrong guess is survivable: too late an expiry ends in a token rejection, which
//!   triggers a new login and one retry; an expiry already past logs a warning and renews the
//!   token at each use. A missing or unreadable `token_expires` assumes 5 minutes; lifetimes
//!   are capped at one day ([`login::token_lifetime`]).
//! - A login answered `status: false` is [`ProviderError::Auth`] (401) on `alqimah.login`:
//!   terminal, an operator must fix the credentials.
//! - A rejected access token (`status: false` recognised as a token problem, or HTTP 401)
//!   makes the client forget the token, log in again and repeat the call **once**; a second
//!   rejection is [`ProviderError::Auth`] (401). Repeating a payment here is safe: a
//!   rejected token means the request was not processed.
//!
//! # Wire format: what the document says and what we chose
//!
//! - **Requests** are JSON (`Content-Type: application/json`) with the request tables'
//!   PascalCase names. `NetworkNumber`, `ServiceNumber`, `Amount`, `Quantity` and
//!   `TransactionID` are JSON **numbers**; `MobileNumber`, `OfferCode`, `LinkCode`,
//!   `WebHookURL`, `WebHookCode` strings. Fields that do not belong to the product's kind are
//!   omitted, not sent empty.
//! - **`TransactionID`** is a positive integer up to 2^53 - 1 ([`TransactionId`]): the
//!   document's examples are numbers (`"transactionID": 1234`), a number survives both an
//!   integer and a string column on their side, and 2^53 keeps it exact in any JSON parser.
//!   The journey allocates it from a durable sequence and stores it before the first send.
//!   Answers may echo it as a number or a string (the document shows both); the echo must
//!   equal ours or the answer is a protocol error.
//! - **Network and service numbers** come from the caller ([`ServiceRef`]): the document's
//!   "Networks Data" and "Services Data" tables are empty. Its examples: `1`/`103` top-up,
//!   `2`/`202` offer, `8`/`801` game card. Network 0 is refused for payments.
//! - **`Amount`** is a whole number ([`Amount`]); the document's example is `100` and, for
//!   some networks, it counts units.
//! - **`Fields`** (game cards) is sent as a **nested JSON object**
//!   (`"Fields": {"PlayerID": "..."}`), as the document's value column shows it. The
//!   description ("field in JSON format") could also mean a JSON-encoded string: verify
//!   against the real service; the change would be confined to [`wire::PaymentBody`].
//!   `Quantity` is sent only when given (free-quantity categories); `MobileNumber` is optional
//!   for game cards (the document gives no example).
//! - **`WebHookURL`** is the configured `webhook_url` (our ingress), the same for every
//!   payment; **`WebHookCode`** is per payment, a random token the journey stores
//!   ([`WebHookCode`]). Without a configured `webhook_url`, neither is sent.
//! - **Answers**: `status: true` with `operationStatus` 1/0/-1 are [`OperationStatus`]
//!   outcomes in an [`OperationReport`], not errors. Money values (`price`, `agentBalance`)
//!   are kept as decimal text ([`Price`]). A `status: true` answer to a payment that cannot
//!   be read is [`ProviderError::Protocol`] with `effect_possible`: reconcile.
//! - **HTTP statuses**: the document shows none but 200. Non-2xx answers follow the shared
//!   table in [`crate::http`] (429 with `Retry-After`, 500/502/503 retryable, 504 "may have
//!   succeeded", 401/403 auth).
//!
//! # `status: false` answers
//!
//! They carry only a message; [`classify_refusal`] sorts them by the table in
//! [`refusal`]:
//!
//! | Reason | Error |
//! |---|---|
//! | login refused | [`ProviderError::Auth`] (401) on `alqimah.login` |
//! | token expired/invalid | re-login, retry once, then [`ProviderError::Auth`] (401) |
//! | duplicate `TransactionID` | [`ProviderError::Conflict`] (class `OutcomeUnknown`): the payment may exist, reconcile |
//! | insufficient balance | [`ProviderError::Refused`] code `insufficient_balance` |
//! | invalid number | [`ProviderError::Refused`] code `invalid_number` |
//! | status query: transaction not found | [`StatusLookup::NotFound`] (not an error) |
//! | anything else | [`ProviderError::Refused`] without code, terminal, sanitized message |
//!
//! [`RefusalReason::of`] reads the reason back from an error.
//!
//! # Not paying twice
//!
//! The payment is **effectful**. When it ends in [`ErrorClass::OutcomeUnknown`]
//! (`OutcomeUnknown` after a 504, a timeout or a dropped connection; `Conflict` after a
//! duplicate refusal; `Protocol` with `effect_possible`), the journey must **not** send it
//! again blindly. It calls [`AlQimahClient::reconcile_payment`] with the same stored
//! [`PaymentRequest`], which:
//!
//! 1. asks the status by `TransactionID`;
//! 2. if Al-Qimah knows the operation, returns its state ([`Reconciled::AlreadyKnown`]) and
//!    sends nothing;
//! 3. if Al-Qimah answers "not found", sends the payment once ([`Reconciled::Sent`]); if that
//!    send is refused as a duplicate (the original arrived in between), asks the status
//!    again and returns it.
//!
//! The same applies on resume after a crash between sending and recording the answer: the
//! step calls `reconcile_payment`, never `pay`. The last line of defence is Al-Qimah's own
//! rule that "the same ID cannot be used for multiple transactions", which the simulator
//! enforces. A report for our `TransactionID` with another `mobileNumber` means the id
//! collides with someone else's payment: reconciliation fails with a terminal
//! [`ProviderError::Protocol`] for an operator rather than adopt it.
//!
//! A payment that ends `Failed` (`operationStatus` 0) consumed its `TransactionID`; trying
//! again needs a new one (a new step attempt), decided by the journey.
//!
//! [`TokenCache`]: crate::token::TokenCache
//! [`ErrorClass::OutcomeUnknown`]: crate::ErrorClass::OutcomeUnknown

pub mod login;
pub mod refusal;
mod types;
pub mod webhook;
pub mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::FixedOffset;
use http::header::{ACCEPT, HeaderName};
use http::{HeaderValue, StatusCode};
use secrecy::ExposeSecret;
use serde::Serialize;
use url::Url;

use self::login::Login;
pub use self::login::login_token;
pub use self::refusal::{CallKind, RefusalReason, classify_refusal};
pub use self::types::{
    AgentBalance, Amount, GameFields, MAX_AMOUNT, MAX_CODE_CHARS, MAX_FIELD_VALUE_CHARS,
    MAX_GAME_FIELDS, MAX_QUANTITY, MAX_TRANSACTION_ID, MobileNumber, OperationReport,
    OperationStatus, PaymentRequest, Price, Product, ProductCode, Quantity, Reconciled,
    ReferenceId, ServiceRef, StatusLookup, TransactionId, WEBHOOK_CODE_CHARS, WebHookCode,
};
pub use self::webhook::{Webhook, WebhookError, WebhookKey, parse_webhook};
use crate::config::AlQimahConfig;
use crate::error::{Operation, Provider, ProviderError};
use crate::http::{Effect, HttpClient, HttpResponse};
use crate::redact::sanitize_message;
use crate::token::TokenCache;

/// `POST` path of the login ("Login").
pub const LOGIN_PATH: &str = "/rest-api/login";
/// `POST` path of every other operation ("Get Account Balance", "Payment Balance"...).
pub const API_PATH: &str = "/rest-api/";
/// The header carrying the access token ("Request Headers: api-token").
pub const API_TOKEN_HEADER: &str = "api-token";

/// `NetworkNumber` of the account ("Global") operations.
pub const GLOBAL_NETWORK: u16 = 0;
/// `ServiceNumber` of the balance query on the global network.
pub const BALANCE_SERVICE: u32 = 1;
/// `ServiceNumber` of the status query on the global network.
pub const STATUS_SERVICE: u32 = 2;

/// Operation name of the login.
pub const LOGIN: Operation = Operation::new("alqimah.login");
/// Operation name of [`AlQimahClient::balance`].
pub const BALANCE: Operation = Operation::new("alqimah.balance");
/// Operation name of [`AlQimahClient::operation_status`].
pub const OPERATION_STATUS: Operation = Operation::new("alqimah.operation_status");
/// Operation name of [`AlQimahClient::pay`].
pub const PAY: Operation = Operation::new("alqimah.pay");

/// The Al-Qimah client. Cheap to clone; clones share the access token, so build one per
/// account and hand clones to the journeys.
#[derive(Clone)]
pub struct AlQimahClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    tokens: TokenCache<Login>,
    webhook_url: Option<Url>,
}

impl fmt::Debug for AlQimahClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlQimahClient")
            .field("base_url", &self.inner.http.base_url().as_str())
            .field(
                "webhook_url",
                &self.inner.webhook_url.as_ref().map(Url::as_str),
            )
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

/// An answer with `status: true`, or the classified reason of a `status: false`.
enum Answer {
    Accepted(HttpResponse),
    Refused {
        reason: RefusalReason,
        message: String,
    },
}

impl AlQimahClient {
    /// Builds the client from its configuration (validated again here). No call is made:
    /// the first request logs in.
    pub fn new(config: &AlQimahConfig) -> Result<Self, ProviderError> {
        config.validate().map_err(|e| ProviderError::Config {
            provider: Provider::AlQimah,
            operation: Operation::new("alqimah.config"),
            reason: e.to_string(),
        })?;
        let http = HttpClient::new(Provider::AlQimah, &config.base_url, &config.http)?;
        let offset = FixedOffset::east_opt(config.token_expires_utc_offset_minutes * 60)
            .ok_or_else(|| ProviderError::Config {
                provider: Provider::AlQimah,
                operation: Operation::new("alqimah.config"),
                reason: "token_expires_utc_offset_minutes is out of range".to_owned(),
            })?;
        let refresher = Login {
            http: http.clone(),
            account_number: config.account_number.clone(),
            user_name: config.user_name.clone(),
            token: login_token(
                &config.user_name,
                &config.account_number,
                &config.password,
                &config.api_token,
            ),
            offset,
        };
        let tokens = TokenCache::new(Provider::AlQimah, refresher)
            .with_skew(Duration::from_millis(config.token_refresh_skew_ms));
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                tokens,
                webhook_url: config.webhook_url.clone(),
            }),
        })
    }

    /// The `WebHookURL` sent with payments, if any.
    pub fn webhook_url(&self) -> Option<&Url> {
        self.inner.webhook_url.as_ref()
    }

    /// The agent account's balance ("Get Account Balance"). Read-only.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "alqimah"), err(level = tracing::Level::DEBUG))]
    pub async fn balance(&self) -> Result<AgentBalance, ProviderError> {
        let body = wire::GlobalBody {
            network_number: GLOBAL_NETWORK,
            service_number: BALANCE_SERVICE,
            transaction_id: None,
        };
        let answer = match self
            .call(BALANCE, Effect::ReadOnly, CallKind::Balance, &body)
            .await?
        {
            Answer::Accepted(answer) => answer,
            Answer::Refused { reason, message } => return Err(refused(BALANCE, reason, message)),
        };
        let parsed: wire::BalanceAnswer = answer.json()?;
        let balance = parsed
            .agent_balance
            .and_then(|b| Price::parse(&b.text()))
            .ok_or_else(|| {
                answer.protocol_error("balance answer without a numeric agentBalance")
            })?;
        Ok(AgentBalance {
            balance,
            message: sanitize_message(parsed.message.as_deref().unwrap_or_default()),
        })
    }

    /// The state of our operation `transaction_id` ("Get Operation Status"). Read-only.
    ///
    /// "Not found" is [`StatusLookup::NotFound`], not an error: it is what tells
    /// reconciliation that the payment never arrived.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "alqimah", transaction_id = %transaction_id), err(level = tracing::Level::DEBUG))]
    pub async fn operation_status(
        &self,
        transaction_id: TransactionId,
    ) -> Result<StatusLookup, ProviderError> {
        let body = wire::GlobalBody {
            network_number: GLOBAL_NETWORK,
            service_number: STATUS_SERVICE,
            transaction_id: Some(transaction_id.get()),
        };
        match self
            .call(
                OPERATION_STATUS,
                Effect::ReadOnly,
                CallKind::OperationStatus,
                &body,
            )
            .await?
        {
            Answer::Accepted(answer) => {
                read_operation(&answer, transaction_id).map(StatusLookup::Found)
            }
            Answer::Refused {
                reason: RefusalReason::TransactionNotFound,
                message,
            } => Ok(StatusLookup::NotFound { message }),
            Answer::Refused { reason, message } => Err(refused(OPERATION_STATUS, reason, message)),
        }
    }

    /// Sends a payment. **Effectful**: after any error of class `OutcomeUnknown`, call
    /// [`Self::reconcile_payment`], never this again (see the [module docs](self)).
    ///
    /// `Succeeded`, `Failed` and `Pending` are outcomes in the report. A duplicate
    /// `TransactionID` is [`ProviderError::Conflict`]; insufficient balance and invalid
    /// numbers are [`ProviderError::Refused`] with their code.
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(provider = "alqimah", transaction_id = %request.transaction_id, mobile = ?request.product.mobile().map(ToString::to_string)),
        err(level = tracing::Level::DEBUG)
    )]
    pub async fn pay(&self, request: &PaymentRequest) -> Result<OperationReport, ProviderError> {
        let body = self.payment_body(request);
        match self
            .call(PAY, Effect::Effectful, CallKind::Payment, &body)
            .await?
        {
            Answer::Accepted(answer) => read_operation(&answer, request.transaction_id),
            Answer::Refused { reason, message } => Err(refused(PAY, reason, message)),
        }
    }

    /// Sends the payment only if Al-Qimah has never seen its `TransactionID`; otherwise
    /// returns what Al-Qimah knows. The safe way to (re-)send a payment whose earlier outcome
    /// is unknown, and the way to resume a payment step after a crash.
    ///
    /// Errors of the status query are returned as they are (retry the reconciliation later);
    /// an unrecognised `status: false` to the status query is a terminal refusal, never taken
    /// for "not found".
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "alqimah", transaction_id = %request.transaction_id), err(level = tracing::Level::DEBUG))]
    pub async fn reconcile_payment(
        &self,
        request: &PaymentRequest,
    ) -> Result<Reconciled, ProviderError> {
        if let StatusLookup::Found(report) = self.operation_status(request.transaction_id).await? {
            return same_payment(request, report).map(Reconciled::AlreadyKnown);
        }
        match self.pay(request).await {
            Ok(report) => Ok(Reconciled::Sent(report)),
            // The original arrived between our status query and this send.
            Err(conflict @ ProviderError::Conflict { .. }) => {
                match self.operation_status(request.transaction_id).await? {
                    StatusLookup::Found(report) => {
                        same_payment(request, report).map(Reconciled::AlreadyKnown)
                    }
                    StatusLookup::NotFound { .. } => Err(conflict),
                }
            }
            Err(other) => Err(other),
        }
    }

    fn payment_body(&self, request: &PaymentRequest) -> wire::PaymentBody {
        let mut body = wire::PaymentBody {
            network_number: request.service.network(),
            service_number: request.service.service(),
            mobile_number: request.product.mobile().map(|m| m.as_str().to_owned()),
            amount: None,
            offer_code: None,
            link_code: None,
            fields: None,
            quantity: None,
            transaction_id: request.transaction_id.get(),
            webhook_url: None,
            webhook_code: None,
        };
        match &request.product {
            Product::TopUp { amount, .. } => body.amount = Some(amount.get()),
            Product::Offer { offer_code, .. } => {
                body.offer_code = Some(offer_code.as_str().to_owned());
            }
            Product::GameCard {
                link_code,
                fields,
                quantity,
                ..
            } => {
                body.link_code = Some(link_code.as_str().to_owned());
                body.fields = Some(fields.as_map().clone());
                body.quantity = quantity.map(Quantity::get);
            }
        }
        if let Some(url) = &self.inner.webhook_url {
            body.webhook_url = Some(url.as_str().to_owned());
            body.webhook_code = Some(request.webhook_code.expose_secret().to_owned());
        }
        body
    }

    /// One `POST /rest-api/` with the access token; a token rejection becomes a 401 `Auth`
    /// error so the token cache logs in again and repeats the call once.
    async fn call<B: Serialize + Sync>(
        &self,
        operation: Operation,
        effect: Effect,
        kind: CallKind,
        body: &B,
    ) -> Result<Answer, ProviderError> {
        let inner = &*self.inner;
        inner
            .tokens
            .with_token(|token| async move {
                let request = inner
                    .http
                    .post(operation, API_PATH, effect)
                    .secret_header(HeaderName::from_static(API_TOKEN_HEADER), token.secret())?
                    .header(ACCEPT, HeaderValue::from_static("application/json"))
                    .json(body)?;
                let answer = inner.http.send(request).await?;
                let envelope: wire::Envelope = answer.json()?;
                if envelope.status {
                    return Ok(Answer::Accepted(answer));
                }
                // A provider echoing the token back must not put it in an error.
                let raw = scrub_secret(
                    &envelope.message.unwrap_or_default(),
                    token.secret().expose_secret(),
                );
                let reason = classify_refusal(kind, &raw);
                let message = sanitize_message(&raw);
                if reason == RefusalReason::TokenRejected {
                    return Err(ProviderError::Auth {
                        provider: Provider::AlQimah,
                        operation,
                        status: StatusCode::UNAUTHORIZED,
                        message: format!("access token rejected: {message}"),
                    });
                }
                Ok(Answer::Refused { reason, message })
            })
            .await
    }
}

/// `message` without any occurrence of `secret`.
pub(crate) fn scrub_secret(message: &str, secret: &str) -> String {
    if secret.is_empty() {
        message.to_owned()
    } else {
        message.replace(secret, "[REDACTED]")
    }
}

/// The error for a classified `status: false` answer (other than a token rejection).
fn refused(operation: Operation, reason: RefusalReason, message: String) -> ProviderError {
    let message = if message.is_empty() {
        "refused without a message".to_owned()
    } else {
        message
    };
    match reason {
        RefusalReason::DuplicateTransaction => ProviderError::Conflict {
            provider: Provider::AlQimah,
            operation,
            message: format!("TransactionID already used: {message}"),
        },
        _ => ProviderError::Refused {
            provider: Provider::AlQimah,
            operation,
            code: reason.code().map(str::to_owned),
            message,
        },
    }
}

/// Reads a `status: true` status or payment answer about `ours`.
fn read_operation(
    answer: &HttpResponse,
    ours: TransactionId,
) -> Result<OperationReport, ProviderError> {
    let parsed: wire::OperationAnswer = answer.json()?;
    let status = parsed
        .operation_status
        .as_ref()
        .and_then(|s| s.text().parse::<i64>().ok())
        .and_then(OperationStatus::from_code)
        .ok_or_else(|| answer.protocol_error("answer without an operationStatus of 1, 0 or -1"))?;
    if let Some(echo) = &parsed.transaction_id
        && TransactionId::parse(&echo.text()).ok() != Some(ours)
    {
        return Err(answer.protocol_error("answer about another transactionID"));
    }
    let money = |field: &Option<wire::Scalar>, name: &str| match field {
        None => Ok(None),
        Some(v) => Price::parse(&v.text())
            .map(Some)
            .ok_or_else(|| answer.protocol_error(format!("{name} is not a number"))),
    };
    Ok(OperationReport {
        status,
        transaction_id: ours,
        reference_id: parsed
            .reference_id
            .as_ref()
            .and_then(|r| ReferenceId::new(r.text())),
        price: money(&parsed.price, "price")?,
        message: sanitize_message(parsed.message.as_deref().unwrap_or_default()),
        details: parsed.details.as_deref().map(sanitize_message),
        agent_balance: money(&parsed.agent_balance, "agentBalance")?,
        mobile: parsed
            .mobile_number
            .as_ref()
            .and_then(|m| MobileNumber::parse(&m.text()).ok()),
    })
}

/// Checks that the operation Al-Qimah reports for our `TransactionID` is this payment.
fn same_payment(
    request: &PaymentRequest,
    report: OperationReport,
) -> Result<OperationReport, ProviderError> {
    match (request.product.mobile(), &report.mobile) {
        (Some(ours), Some(theirs)) if ours != theirs => Err(ProviderError::Protocol {
            provider: Provider::AlQimah,
            operation: OPERATION_STATUS,
            reason: format!(
                "TransactionID {} belongs to a payment for another number: the id collides \
                 with another payment; an operator must check the account",
                request.transaction_id
            ),
            effect_possible: false,
        }),
        _ => Ok(report),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn client(webhook: Option<&str>) -> AlQimahClient {
        let mut config = AlQimahConfig::new(
            Url::parse("http://127.0.0.1:9").unwrap(),
            "1000001",
            "agent",
            SecretString::from("pw-secret-1"),
            SecretString::from("api-secret-2"),
        );
        config.webhook_url = webhook.map(|w| Url::parse(w).unwrap());
        AlQimahClient::new(&config).unwrap()
    }

    fn request(product: Product) -> PaymentRequest {
        PaymentRequest {
            transaction_id: TransactionId::new(1234).unwrap(),
            service: ServiceRef::new(1, 103).unwrap(),
            product,
            webhook_code: WebHookCode::from_stored(SecretString::from(
                "abcdef0123456789abcdef0123456789",
            ))
            .unwrap(),
        }
    }

    #[test]
    fn payment_bodies_carry_only_their_kind_s_fields() {
        let c = client(Some("https://hooks.example/alqimah"));
        let topup = c.payment_body(&request(Product::TopUp {
            mobile: MobileNumber::parse("777123456").unwrap(),
            amount: Amount::new(100).unwrap(),
        }));
        assert_eq!(
            serde_json::to_value(&topup).unwrap(),
            serde_json::json!({
                "NetworkNumber": 1, "ServiceNumber": 103, "MobileNumber": "777123456",
                "Amount": 100, "TransactionID": 1234,
                "WebHookURL": "https://hooks.example/alqimah",
                "WebHookCode": "abcdef0123456789abcdef0123456789"
            })
        );
        let game = c.payment_body(&request(Product::GameCard {
            mobile: None,
            link_code: ProductCode::parse("pubg_60").unwrap(),
            fields: GameFields::new().with("PlayerID", "5123").unwrap(),
            quantity: None,
        }));
        assert_eq!(
            serde_json::to_value(&game).unwrap(),
            serde_json::json!({
                "NetworkNumber": 1, "ServiceNumber": 103, "LinkCode": "pubg_60",
                "Fields": {"PlayerID": "5123"}, "TransactionID": 1234,
                "WebHookURL": "https://hooks.example/alqimah",
                "WebHookCode": "abcdef0123456789abcdef0123456789"
            })
        );
        // Without a webhook URL, no webhook fields.
        let plain = client(None).payment_body(&request(Product::Offer {
            mobile: MobileNumber::parse("777123456").unwrap(),
            offer_code: ProductCode::parse("PREWhatsApp").unwrap(),
        }));
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            serde_json::json!({
                "NetworkNumber": 1, "ServiceNumber": 103, "MobileNumber": "777123456",
                "OfferCode": "PREWhatsApp", "TransactionID": 1234
            })
        );
        assert!(!format!("{plain:?}").contains("777123456"));
    }

    #[test]
    fn debug_of_the_client_shows_no_credentials() {
        let shown = format!("{:?}", client(None));
        for secret in ["pw-secret-1", "api-secret-2"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn refusals_map_to_the_shared_errors() {
        let e = refused(PAY, RefusalReason::DuplicateTransaction, "dup".into());
        assert!(matches!(e, ProviderError::Conflict { .. }), "{e:?}");
        assert_eq!(e.class(), crate::ErrorClass::OutcomeUnknown);
        let e = refused(PAY, RefusalReason::InsufficientBalance, "low".into());
        assert_eq!(e.refusal_code(), Some("insufficient_balance"));
        assert_eq!(e.class(), crate::ErrorClass::Terminal);
        let e = refused(PAY, RefusalReason::Unrecognised, String::new());
        assert!(
            matches!(&e, ProviderError::Refused { code: None, message, .. } if message == "refused without a message"),
            "{e:?}"
        );
    }
}
