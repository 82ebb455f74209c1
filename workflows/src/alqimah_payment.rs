//! J4. Al-Qimah payment with pending re-check (`alqimah-rest-api.txt`).
//!
//! Pay a balance top-up (`Amount`), an offer (`OfferCode`) or a game / gift
//! card (`LinkCode`, `Fields`, `Quantity`) with our own `TransactionID`, and
//! follow a pending (`operationStatus` -1) payment until it settles.
//!
//! | state | spec step | what it does |
//! |---|---|---|
//! | [`State::Prepare`] | "a unique `TransactionID` that is stable for the journey ... a per-transaction `WebHookCode`" | derives the `TransactionID` from the journey id, draws a random `WebHookCode`, registers correlation `alqimah.txn:<TransactionID>`; all committed **before** anything is sent, so a webhook can always be matched and verified |
//! | [`State::Pay`] | "Payment `POST /rest-api/`" | sends the payment; on any re-run ([`StepCtx::may_have_run_before`]) asks the status by `TransactionID` first and sends only if Al-Qimah never saw it ([`AlQimahClient::reconcile_payment`]) |
//! | [`State::Pending`] | "Pending is re-checked with `NetworkNumber=0, ServiceNumber=2, TransactionID` on a growing schedule up to a deadline, while the webhook may settle it first" | parks on a durable timer **and** the webhook signal; the timer runs a status query, a verified webhook settles at once |
//! | [`State::Unsettled`] | (the deadline passed) | one last status query, then stops for a person |
//!
//! # Decisions where the document is silent
//!
//! - **`TransactionID`**: 53 bits of [`StepCtx::stable_key`] (a hash of the
//!   journey id), so every attempt and every node computes the same id with
//!   no sequence to coordinate. Two journeys colliding is a ~1e-16 chance per
//!   pair; if it happens Al-Qimah refuses the duplicate and reconciliation
//!   sees another number on the operation and stops with a terminal error
//!   instead of adopting someone else's payment.
//! - **A verified webhook is trusted.** Its `WebHookCode` is a 128-bit random
//!   secret sent only to Al-Qimah with this payment and checked in constant
//!   time by the ingress ([`crate::ingress::alqimah`]), so a webhook that
//!   reaches the journey is Al-Qimah's word, as good as a status answer; a
//!   second query would only add a call that can fail while the outcome is
//!   already known. A pending (-1) webhook just re-arms the wait.
//! - **The deadline does not fail the journey.** A pending payment has
//!   already debited the agent account; failing would hide money in limbo.
//!   Past the deadline the journey asks once more, then needs attention with
//!   the `TransactionID` and `ReferenceID` to chase (an operator's `retry`
//!   asks again).
//! - **Refusals** (`status: false`) are classified by the adapter
//!   ([`RefusalReason`]): insufficient balance, invalid number, refused
//!   login/token, anything else; each fails the journey with a sentence a
//!   person can act on. A duplicate `TransactionID` means "maybe paid": it is
//!   an outcome-unknown error, and the retry reconciles.
//! - A payment that Al-Qimah reports **failed** (`operationStatus` 0) fails
//!   the journey; trying again is a new journey (a new `TransactionID`).
//!
//! Business key: the customer's number (masked wherever shown); the
//! `TransactionID` is searchable too (it is the correlation key's value).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use handover_adapters::alqimah::{
    Amount, GameFields, MobileNumber, OperationReport, OperationStatus, PaymentRequest, Product,
    ProductCode, Quantity, RefusalReason, ServiceRef, StatusLookup, TransactionId, WebHookCode,
};
use handover_adapters::{AlQimahClient, ErrorClass, ProviderError};
use handover_engine::{
    BusinessKey, CorrelationKey, InvalidInput, NoCompensation, Registry, RetryPolicy, Sensitive,
    Start, StepCtx, StepError, StepInfo, Timestamp, Transition, Wait, Workflow,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::Providers;
use crate::common::{poll_interval, step_error};

/// The signal a verified webhook becomes (see the ingress).
pub const WEBHOOK_SIGNAL: &str = "alqimah.webhook";
/// The signal an unverifiable webhook (no journey knows its `TransactionID`)
/// is stored as: never consumed by a journey, reported as unmatched.
pub const UNVERIFIED_SIGNAL: &str = "alqimah.webhook-unverified";
/// The correlation namespace of our `TransactionID`s.
pub const CORRELATION_NAMESPACE: &str = "alqimah.txn";

const DEFAULT_FIRST_RECHECK: Duration = Duration::from_secs(30);
const DEFAULT_MAX_RECHECK: Duration = Duration::from_secs(30 * 60);
const DEFAULT_SETTLE_WITHIN: Duration = Duration::from_secs(24 * 3600);
/// Bounds on the caller's schedule (a re-check every 10 ms at the fastest,
/// a week at the longest).
const MIN_RECHECK_MS: u64 = 10;
const MAX_SETTLE_WITHIN: Duration = Duration::from_secs(7 * 24 * 3600);

/// Registers the journey when its provider is configured.
pub fn register(registry: &mut Registry, providers: &Providers) {
    if let Some(client) = &providers.alqimah {
        registry.register(AlQimahPayment::new(client.clone()));
    }
}

/// The Al-Qimah payment journey.
#[derive(Debug, Clone)]
pub struct AlQimahPayment {
    client: Arc<AlQimahClient>,
}

impl AlQimahPayment {
    /// The journey, paying with `client`.
    pub fn new(client: Arc<AlQimahClient>) -> Self {
        Self { client }
    }
}

/// What to pay. Exactly one of `amount`, `offer_code`, `link_code`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AlQimahPaymentInput {
    /// `NetworkNumber` (1 or more; 0 is for account operations).
    pub network: u16,
    /// `ServiceNumber`.
    pub service: u32,
    /// `MobileNumber` (required for top-ups and offers).
    #[serde(default)]
    pub mobile_number: Option<String>,
    /// Balance top-up: `Amount`, a positive whole number.
    #[serde(default)]
    pub amount: Option<u64>,
    /// Offer: `OfferCode`.
    #[serde(default)]
    pub offer_code: Option<String>,
    /// Game or gift card: `LinkCode`.
    #[serde(default)]
    pub link_code: Option<String>,
    /// Game card `Fields` (`PlayerID`...).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Game card `Quantity` (free-quantity categories).
    #[serde(default)]
    pub quantity: Option<u32>,
    /// First re-check of a pending payment, in ms (default 30 s); doubles.
    #[serde(default)]
    pub first_recheck_ms: Option<u64>,
    /// Longest gap between re-checks, in ms (default 30 min).
    #[serde(default)]
    pub max_recheck_ms: Option<u64>,
    /// How long a pending payment may take to settle, in ms (default 24 h).
    #[serde(default)]
    pub settle_within_ms: Option<u64>,
}

/// The product, validated (the adapter's types, in a stored shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProductSpec {
    /// Balance top-up.
    TopUp {
        /// `Amount`.
        amount: u64,
    },
    /// Offer.
    Offer {
        /// `OfferCode`.
        offer_code: String,
    },
    /// Game or gift card.
    GameCard {
        /// `LinkCode`.
        link_code: String,
        /// `Fields`.
        fields: BTreeMap<String, String>,
        /// `Quantity`.
        quantity: Option<u32>,
    },
}

/// The payment, validated. `mobile_number` is masked wherever state is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// `NetworkNumber`.
    pub network: u16,
    /// `ServiceNumber`.
    pub service: u32,
    /// `MobileNumber`.
    pub mobile_number: Option<String>,
    /// What is bought.
    pub product: ProductSpec,
}

impl Payment {
    fn validate(input: &AlQimahPaymentInput) -> Result<(Self, Product), InvalidInput> {
        let bad = |e: ProviderError| InvalidInput::new(e.to_string());
        let kinds = [
            input.amount.is_some(),
            input.offer_code.is_some(),
            input.link_code.is_some(),
        ]
        .iter()
        .filter(|k| **k)
        .count();
        if kinds != 1 {
            return Err(InvalidInput::new(
                "give exactly one of amount (top-up), offer_code (offer) or link_code (game card)",
            ));
        }
        ServiceRef::new(input.network, input.service).map_err(bad)?;
        let mobile = input
            .mobile_number
            .as_deref()
            .map(MobileNumber::parse)
            .transpose()
            .map_err(bad)?;
        if input.link_code.is_none() && (!input.fields.is_empty() || input.quantity.is_some()) {
            return Err(InvalidInput::new(
                "fields and quantity belong to game cards (link_code) only",
            ));
        }
        let need_mobile = || {
            mobile.clone().ok_or_else(|| {
                InvalidInput::new("mobile_number is required for top-ups and offers")
            })
        };
        let (spec, product) = if let Some(amount) = input.amount {
            let checked = Amount::new(amount).map_err(|_| {
                InvalidInput::new("amount must be a positive whole number (at most 1000000000)")
            })?;
            (
                ProductSpec::TopUp { amount },
                Product::TopUp {
                    mobile: need_mobile()?,
                    amount: checked,
                },
            )
        } else if let Some(code) = &input.offer_code {
            let offer_code = ProductCode::parse(code.trim()).map_err(bad)?;
            (
                ProductSpec::Offer {
                    offer_code: offer_code.as_str().to_owned(),
                },
                Product::Offer {
                    mobile: need_mobile()?,
                    offer_code,
                },
            )
        } else {
            let code = input.link_code.as_deref().unwrap_or_default();
            let link_code = ProductCode::parse(code.trim()).map_err(bad)?;
            let mut fields = GameFields::new();
            for (k, v) in &input.fields {
                fields = fields.with(k, v).map_err(bad)?;
            }
            let quantity = input.quantity.map(Quantity::new).transpose().map_err(bad)?;
            (
                ProductSpec::GameCard {
                    link_code: link_code.as_str().to_owned(),
                    fields: input.fields.clone(),
                    quantity: input.quantity,
                },
                Product::GameCard {
                    mobile: mobile.clone(),
                    link_code,
                    fields,
                    quantity,
                },
            )
        };
        Ok((
            Self {
                network: input.network,
                service: input.service,
                mobile_number: mobile.as_ref().map(|m| m.as_str().to_owned()),
                product: spec,
            },
            product,
        ))
    }

    /// The adapter's request (validated again: a stored state may have been
    /// patched by hand).
    fn request(
        &self,
        transaction_id: TransactionId,
        code: &Sensitive<String>,
    ) -> Result<PaymentRequest, ProviderError> {
        let mobile = self
            .mobile_number
            .as_deref()
            .map(MobileNumber::parse)
            .transpose()?;
        let need = |m: Option<MobileNumber>| m.ok_or_else(missing_mobile);
        let product = match &self.product {
            ProductSpec::TopUp { amount } => Product::TopUp {
                mobile: need(mobile)?,
                amount: Amount::new(*amount)?,
            },
            ProductSpec::Offer { offer_code } => Product::Offer {
                mobile: need(mobile)?,
                offer_code: ProductCode::parse(offer_code)?,
            },
            ProductSpec::GameCard {
                link_code,
                fields,
                quantity,
            } => {
                let mut game = GameFields::new();
                for (k, v) in fields {
                    game = game.with(k, v)?;
                }
                Product::GameCard {
                    mobile,
                    link_code: ProductCode::parse(link_code)?,
                    fields: game,
                    quantity: quantity.map(Quantity::new).transpose()?,
                }
            }
        };
        Ok(PaymentRequest {
            transaction_id,
            service: ServiceRef::new(self.network, self.service)?,
            product,
            webhook_code: WebHookCode::from_stored(SecretString::from(code.expose().clone()))?,
        })
    }
}

/// A stored top-up or offer without a number (only a hand-patched state).
fn missing_mobile() -> ProviderError {
    ProviderError::Rejected {
        provider: handover_adapters::Provider::AlQimah,
        operation: handover_adapters::alqimah::PAY,
        status: None,
        message: "a top-up or offer needs a mobile number".into(),
    }
}

/// The re-check schedule of a pending payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// First re-check after this many ms; doubles.
    pub first_ms: u64,
    /// At most this many ms between re-checks.
    pub max_ms: u64,
    /// The payment must settle within this many ms of the pending answer.
    pub settle_within_ms: u64,
}

impl Schedule {
    fn from_input(input: &AlQimahPaymentInput) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let week = ms(MAX_SETTLE_WITHIN);
        let first = input
            .first_recheck_ms
            .unwrap_or(ms(DEFAULT_FIRST_RECHECK))
            .clamp(MIN_RECHECK_MS, week);
        let max = input
            .max_recheck_ms
            .unwrap_or(ms(DEFAULT_MAX_RECHECK))
            .clamp(first, week);
        let settle_within_ms = input
            .settle_within_ms
            .unwrap_or(ms(DEFAULT_SETTLE_WITHIN))
            .clamp(MIN_RECHECK_MS, week);
        Self {
            first_ms: first,
            max_ms: max,
            settle_within_ms,
        }
    }

    fn interval(&self, checks: u32) -> Duration {
        poll_interval(
            checks,
            Duration::from_millis(self.first_ms),
            Duration::from_millis(self.max_ms),
        )
    }
}

/// Our identifiers of the payment, fixed before it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ids {
    /// Our `TransactionID`.
    pub transaction_id: u64,
    /// The per-payment `WebHookCode` (secret: redacted wherever shown).
    pub webhook_code: Sensitive<String>,
}

/// Where the journey is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Fix the `TransactionID` and `WebHookCode`, register the correlation.
    Prepare {
        /// What to pay.
        payment: Payment,
        /// The re-check schedule.
        schedule: Schedule,
    },
    /// Send (or reconcile) the payment.
    Pay {
        /// What to pay.
        payment: Payment,
        /// The re-check schedule.
        schedule: Schedule,
        /// Our ids.
        ids: Ids,
    },
    /// Pending at Al-Qimah: re-check on a timer, or take the webhook.
    Pending {
        /// Our ids.
        ids: Ids,
        /// Al-Qimah's reference, once known.
        reference_id: Option<String>,
        /// The re-check schedule.
        schedule: Schedule,
        /// Re-checks so far.
        checks: u32,
        /// When waiting ends.
        settle_by: Timestamp,
    },
    /// Still pending past the deadline.
    Unsettled {
        /// Our ids.
        ids: Ids,
        /// Al-Qimah's reference, once known.
        reference_id: Option<String>,
        /// Re-checks made.
        checks: u32,
    },
}

impl State {
    /// Our ids, once fixed (the ingress checks webhooks against them).
    pub fn ids(&self) -> Option<&Ids> {
        match self {
            State::Prepare { .. } => None,
            State::Pay { ids, .. } | State::Pending { ids, .. } | State::Unsettled { ids, .. } => {
                Some(ids)
            }
        }
    }
}

/// How the payment settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettledBy {
    /// The payment's own answer.
    PaymentAnswer,
    /// A status query (a re-check, or reconciliation after an unknown outcome).
    StatusQuery,
    /// Al-Qimah's verified webhook.
    Webhook,
}

/// A completed payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlQimahPaymentOutput {
    /// Our `TransactionID`.
    pub transaction_id: u64,
    /// Al-Qimah's `ReferenceID`.
    pub reference_id: Option<String>,
    /// The price charged to the agent account, as Al-Qimah wrote it.
    pub price: Option<String>,
    /// What told us.
    pub settled_by: SettledBy,
    /// Status re-checks made while pending.
    pub rechecks: u32,
}

/// The webhook signal's payload (built by the ingress once the
/// `WebHookCode` matched; the code itself is not in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookPayload {
    /// `OperationStatus`: 1, 0 or -1.
    pub operation_status: i8,
    /// `TransactionID`.
    pub transaction_id: u64,
    /// `ReferenceID`.
    pub reference_id: String,
    /// `price`.
    pub price: String,
    /// `message` (sanitized).
    pub message: String,
}

/// Derives the journey's `TransactionID` from its stable key.
fn transaction_id(ctx: &StepCtx<AlQimahPayment>) -> Result<TransactionId, StepError> {
    let bits = ctx.stable_key("alqimah.transaction-id").as_numeric()
        & handover_adapters::alqimah::MAX_TRANSACTION_ID;
    TransactionId::new(bits.max(1)).map_err(|e| StepError::terminal(e.to_string()))
}

/// A refusal or other terminal provider error as a sentence for people.
fn refusal_reason(e: &ProviderError) -> String {
    let what = match RefusalReason::of(e) {
        Some(RefusalReason::InsufficientBalance) => {
            "Al-Qimah refused the payment: the agent account's balance does not cover it"
        }
        Some(RefusalReason::InvalidNumber) => {
            "Al-Qimah refused the payment: the mobile number is not valid for this service"
        }
        Some(RefusalReason::LoginFailed) => {
            "Al-Qimah refused our login: check the account number, user name, password and API token"
        }
        Some(RefusalReason::TokenRejected) => {
            "Al-Qimah rejected our access token even after a new login"
        }
        _ => "Al-Qimah refused the payment",
    };
    format!("{what} ({e})")
}

fn ts_ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

impl AlQimahPayment {
    fn settled(
        ids: &Ids,
        report: &OperationReport,
        by: SettledBy,
        rechecks: u32,
    ) -> Transition<State, AlQimahPaymentOutput> {
        match report.status {
            OperationStatus::Succeeded => Transition::complete(AlQimahPaymentOutput {
                transaction_id: ids.transaction_id,
                reference_id: report.reference_id.as_ref().map(|r| r.as_str().to_owned()),
                price: report.price.as_ref().map(|p| p.as_str().to_owned()),
                settled_by: by,
                rechecks,
            }),
            OperationStatus::Failed => Transition::fail(format!(
                "Al-Qimah reports the payment failed (TransactionID {}, ReferenceID {}): {}",
                ids.transaction_id,
                report.reference_id.as_ref().map_or("none", |r| r.as_str()),
                report.message
            )),
            OperationStatus::Pending => {
                // Callers handle pending before calling this.
                Transition::fail("internal: a pending report was taken for a final one")
            }
        }
    }

    /// Parks in `Pending` until the next re-check (or the deadline), or the webhook.
    fn wait_pending(
        ctx: &StepCtx<Self>,
        ids: Ids,
        reference_id: Option<String>,
        schedule: Schedule,
        checks: u32,
        settle_by: Timestamp,
    ) -> Transition<State, AlQimahPaymentOutput> {
        if ts_ms(ctx.now()) >= ts_ms(settle_by) {
            return Transition::next(State::Unsettled {
                ids,
                reference_id,
                checks,
            });
        }
        let next = ctx.after(schedule.interval(checks)).min(settle_by);
        Transition::wait(
            State::Pending {
                ids,
                reference_id,
                schedule,
                checks,
                settle_by,
            },
            Wait::for_signal(WEBHOOK_SIGNAL).until(next),
        )
    }

    async fn pay(
        &self,
        payment: Payment,
        schedule: Schedule,
        ids: Ids,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<State, AlQimahPaymentOutput>, StepError> {
        let txn = TransactionId::new(ids.transaction_id).map_err(|e| step_error(&e))?;
        let request = payment
            .request(txn, &ids.webhook_code)
            .map_err(|e| StepError::terminal(e.to_string()))?;
        let (answer, by) = if ctx.may_have_run_before() {
            // A previous attempt may have reached Al-Qimah: status first.
            match self.client.reconcile_payment(&request).await {
                Ok(r) if r.was_sent() => (Ok(r.report().clone()), SettledBy::PaymentAnswer),
                Ok(r) => {
                    ctx.note(format!(
                        "reconciled: Al-Qimah already had TransactionID {txn}; not sent again"
                    ));
                    (Ok(r.report().clone()), SettledBy::StatusQuery)
                }
                Err(e) => (Err(e), SettledBy::PaymentAnswer),
            }
        } else {
            (self.client.pay(&request).await, SettledBy::PaymentAnswer)
        };
        let report = match answer {
            Ok(report) => report,
            Err(e) if matches!(e.class(), ErrorClass::Terminal) => {
                return Ok(Transition::fail(refusal_reason(&e)));
            }
            Err(e) => return Err(step_error(&e)),
        };
        let reference_id = report.reference_id.as_ref().map(|r| r.as_str().to_owned());
        if report.status == OperationStatus::Pending {
            ctx.note(format!(
                "pending at Al-Qimah (TransactionID {txn}); re-checking by status query and waiting for the webhook"
            ));
            let settle_by = ctx.after(Duration::from_millis(schedule.settle_within_ms));
            return Ok(Self::wait_pending(
                ctx,
                ids,
                reference_id,
                schedule,
                0,
                settle_by,
            ));
        }
        Ok(Self::settled(&ids, &report, by, 0))
    }

    async fn recheck(
        &self,
        ids: Ids,
        reference_id: Option<String>,
        schedule: Schedule,
        checks: u32,
        settle_by: Timestamp,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<State, AlQimahPaymentOutput>, StepError> {
        if let Some(hook) = ctx.signal_payload::<WebhookPayload>(WEBHOOK_SIGNAL)? {
            if hook.transaction_id != ids.transaction_id {
                return Err(StepError::terminal(
                    "a webhook for another TransactionID reached this journey",
                ));
            }
            let status = OperationStatus::from_code(i64::from(hook.operation_status));
            match status {
                Some(OperationStatus::Succeeded) => {
                    return Ok(Transition::complete(AlQimahPaymentOutput {
                        transaction_id: ids.transaction_id,
                        reference_id: Some(hook.reference_id),
                        price: Some(hook.price),
                        settled_by: SettledBy::Webhook,
                        rechecks: checks,
                    }));
                }
                Some(OperationStatus::Failed) => {
                    return Ok(Transition::fail(format!(
                        "Al-Qimah's webhook reports the payment failed (TransactionID {}, ReferenceID {}): {}",
                        ids.transaction_id, hook.reference_id, hook.message
                    )));
                }
                _ => {
                    ctx.note("webhook: still pending");
                    let reference_id = reference_id.or(Some(hook.reference_id));
                    return Ok(Self::wait_pending(
                        ctx,
                        ids,
                        reference_id,
                        schedule,
                        checks,
                        settle_by,
                    ));
                }
            }
        }
        let txn = TransactionId::new(ids.transaction_id).map_err(|e| step_error(&e))?;
        let report = match self.client.operation_status(txn).await {
            Ok(StatusLookup::Found(report)) => report,
            Ok(StatusLookup::NotFound { .. }) => {
                return Err(StepError::retryable(format!(
                    "Al-Qimah answered pending for TransactionID {txn} but its status query does not know it"
                )));
            }
            Err(e) if matches!(e.class(), ErrorClass::Terminal) => {
                return Err(StepError::retryable(format!(
                    "the status query for TransactionID {txn} was refused: {e}"
                )));
            }
            Err(e) => return Err(step_error(&e)),
        };
        let checks = checks + 1;
        if report.status == OperationStatus::Pending {
            let reference_id =
                reference_id.or_else(|| report.reference_id.map(|r| r.as_str().to_owned()));
            return Ok(Self::wait_pending(
                ctx,
                ids,
                reference_id,
                schedule,
                checks,
                settle_by,
            ));
        }
        Ok(Self::settled(&ids, &report, SettledBy::StatusQuery, checks))
    }

    async fn last_check(
        &self,
        ids: Ids,
        reference_id: Option<String>,
        checks: u32,
    ) -> Result<Transition<State, AlQimahPaymentOutput>, StepError> {
        let txn = TransactionId::new(ids.transaction_id).map_err(|e| step_error(&e))?;
        match self.client.operation_status(txn).await {
            Ok(StatusLookup::Found(report)) if report.status.is_final() => Ok(Self::settled(
                &ids,
                &report,
                SettledBy::StatusQuery,
                checks + 1,
            )),
            Ok(_) => Err(StepError::retryable(format!(
                "the payment is still pending at Al-Qimah after the deadline ({checks} re-checks): \
                 the agent account was debited; ask Al-Qimah about TransactionID {txn} (ReferenceID {}), \
                 then retry this step to check again",
                reference_id.as_deref().unwrap_or("unknown")
            ))),
            Err(e) => Err(StepError::retryable(format!(
                "the last status query for TransactionID {txn} failed: {e}; retry this step"
            ))),
        }
    }
}

impl Workflow for AlQimahPayment {
    const NAME: &'static str = "alqimah.payment";
    type Input = AlQimahPaymentInput;
    type State = State;
    type Output = AlQimahPaymentOutput;
    type Compensation = NoCompensation;

    fn start(&self, input: AlQimahPaymentInput) -> Result<Start<State>, InvalidInput> {
        let (payment, _) = Payment::validate(&input)?;
        let schedule = Schedule::from_input(&input);
        let key = payment.mobile_number.as_deref().map(BusinessKey::msisdn);
        let mut start = Start::new(State::Prepare { payment, schedule });
        if let Some(key) = key {
            start = start.business_key(key);
        }
        Ok(start)
    }

    fn step_info(&self, state: &State) -> StepInfo {
        match state {
            State::Prepare { .. } => StepInfo::new("prepare-payment"),
            State::Pay { .. } => StepInfo::new("send-payment").timeout(Duration::from_secs(60)),
            State::Pending { schedule, .. } => StepInfo::new("await-settlement")
                .timeout(Duration::from_secs(60))
                .expected_within(Duration::from_millis(schedule.settle_within_ms)),
            State::Unsettled { .. } => StepInfo::new("unsettled")
                .retry(RetryPolicy::never())
                .timeout(Duration::from_secs(60)),
        }
    }

    async fn step(
        &self,
        state: State,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<State, AlQimahPaymentOutput>, StepError> {
        match state {
            State::Prepare { payment, schedule } => {
                let txn = transaction_id(ctx)?;
                ctx.correlate(
                    CorrelationKey::new(CORRELATION_NAMESPACE, txn.to_string())
                        .map_err(StepError::terminal)?,
                )?;
                let code = WebHookCode::generate();
                Ok(Transition::next(State::Pay {
                    payment,
                    schedule,
                    ids: Ids {
                        transaction_id: txn.get(),
                        webhook_code: Sensitive::new(code.expose_secret().to_owned()),
                    },
                }))
            }
            State::Pay {
                payment,
                schedule,
                ids,
            } => self.pay(payment, schedule, ids, ctx).await,
            State::Pending {
                ids,
                reference_id,
                schedule,
                checks,
                settle_by,
            } => {
                self.recheck(ids, reference_id, schedule, checks, settle_by, ctx)
                    .await
            }
            State::Unsettled {
                ids,
                reference_id,
                checks,
            } => self.last_check(ids, reference_id, checks).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top_up() -> AlQimahPaymentInput {
        AlQimahPaymentInput {
            network: 1,
            service: 103,
            mobile_number: Some("777123456".into()),
            amount: Some(100),
            ..Default::default()
        }
    }

    #[test]
    fn inputs_are_validated() {
        assert!(Payment::validate(&top_up()).is_ok());
        let mut two = top_up();
        two.offer_code = Some("PREWhatsApp".into());
        assert!(
            Payment::validate(&two)
                .unwrap_err()
                .message
                .contains("exactly one")
        );
        let mut zero = top_up();
        zero.amount = Some(0);
        assert!(
            Payment::validate(&zero)
                .unwrap_err()
                .message
                .contains("positive")
        );
        let mut no_mobile = top_up();
        no_mobile.mobile_number = None;
        assert!(
            Payment::validate(&no_mobile)
                .unwrap_err()
                .message
                .contains("mobile_number")
        );
        let mut network0 = top_up();
        network0.network = 0;
        assert!(Payment::validate(&network0).is_err());
        let mut fields = top_up();
        fields.fields.insert("PlayerID".into(), "1".into());
        assert!(Payment::validate(&fields).is_err());
        let game = AlQimahPaymentInput {
            network: 8,
            service: 801,
            link_code: Some("pubg_60".into()),
            fields: [("PlayerID".to_owned(), "5123".to_owned())].into(),
            ..Default::default()
        };
        let (payment, _) = Payment::validate(&game).unwrap();
        assert!(payment.mobile_number.is_none());
    }

    #[test]
    fn the_schedule_is_bounded() {
        let s = Schedule::from_input(&AlQimahPaymentInput {
            first_recheck_ms: Some(0),
            max_recheck_ms: Some(1),
            settle_within_ms: Some(u64::MAX),
            ..top_up()
        });
        assert_eq!(s.first_ms, MIN_RECHECK_MS);
        assert_eq!(s.max_ms, MIN_RECHECK_MS);
        assert_eq!(s.settle_within_ms, 7 * 24 * 3600 * 1000);
        let d = Schedule::from_input(&top_up());
        assert_eq!(d.interval(0), Duration::from_secs(30));
        assert_eq!(d.interval(10), Duration::from_secs(1800));
    }

    #[test]
    fn secrets_and_numbers_do_not_show_in_state() {
        let (payment, _) = Payment::validate(&top_up()).unwrap();
        let state = State::Pay {
            payment,
            schedule: Schedule::from_input(&top_up()),
            ids: Ids {
                transaction_id: 42,
                webhook_code: Sensitive::new("0123456789abcdef0123456789abcdef".into()),
            },
        };
        let shown = handover_engine::redact(&serde_json::to_value(&state).unwrap()).to_string();
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(!shown.contains("777123456"), "{shown}");
    }
}
