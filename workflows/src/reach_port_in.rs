//! J3. Reach number port-in with its correction loop (`reach-plugapi-guide.txt`, Scenario E).
//!
//! The customer keeps their number: check it can be ported, buy a plan with
//! the port-in fields, activate (which starts the port), then poll the line
//! for minutes to hours. When the losing carrier refuses the details (10
//! PORTING_FAILED) the customer corrects them and the port is resubmitted,
//! a bounded number of times, within an overall deadline.
//!
//! | state | spec step | what it does |
//! |---|---|---|
//! | [`State::Validate`] | `PUT /apisvc/v0/port/validate/mdn?mdn=` "(isPortValidate=false stops)" | read-only check; `false` fails the journey with Reach's message |
//! | [`State::Purchase`] | "purchase with port-in fields (numberToPort, oldCarrier, oldCarrierAccountNumber, password, oldZip; the PIN is a secret)" | `POST /product` with `clientAccountId` = the journey's stable key `purchase`; registers `reach.txn:<transactionId>` |
//! | [`State::AwaitPurchase`] | (Scenario A: payment link, customer pays, `COMPLETED`) | polls the purchase (growing interval), woken by `PRODUCT_PURCHASE` callbacks and the customer's return; on `COMPLETED` registers `reach.customer:<customerId>`; `FAILED` fails with `paymentStatusDesc` |
//! | [`State::Activate`] | "-> activation" | `POST /activation` (eSIM, the device's IMEI): the line goes to 9 |
//! | [`State::Porting`] | "poll status with a long, growing interval (minutes to hours)" | durable timer; an `ACTIVATION` callback wakes it at once and is confirmed with `GET /activation/status`: 9 (and 1) keep waiting, 2 completes, 11 completes as cancelled, 10 records `activationMsg` |
//! | [`State::AwaitCorrection`] | "wait for the customer's correction (signal carrying one of UPDATE_PIN, ...)" | parks for [`CORRECTION_SIGNAL`] until the correction timeout; a malformed correction is noted and the wait goes on |
//! | [`State::Correct`] | "`PUT /apisvc/v0/update/portin` -> back to polling" | sends the update, then polls again; `CANCEL_AND_NEW` continues as a new-number activation |
//! | [`State::CorrectionTimedOut`] | (the wait's timeout) | fails: the port is left 10 PORTING_FAILED at Reach |
//!
//! **Bounds.** At most `max_corrections` updates (default 5, at most 10): a
//! failure after the last one fails the journey with the carrier's reason.
//! The journey's deadline (default 30 days) fails it wherever it is. Poll
//! intervals grow from `port_poll_first_ms` (5 min) to `port_poll_max_ms`
//! (2 h). All of them are in [`PortInTimings`], each clamped.
//!
//! **No double effect.** The purchase's `clientAccountId` is stable for the
//! journey: Reach answers a re-send `409` with the existing transaction, so
//! a retry after an unknown outcome reconciles by re-sending (Reach offers no
//! status query by `clientAccountId`; the 409 *is* the reconciliation). The
//! activation and each port-in update reconcile by `GET /activation/status`
//! before re-sending: a line past 0 INACTIVE was activated; an update was
//! applied unless the line is still 10 with the same `activationMsg`.
//! Reach's update body carries no idempotency key, so each correction's key
//! ([`StepCtx::idempotency_key`], one per step) is recorded in the history
//! note to trace it.
//!
//! **Callbacks** are hints: every wake-up of [`State::Porting`] confirms with
//! the status endpoint. A callback that arrives while the journey waits for
//! something else (the customer's correction) stays in the inbox and wakes
//! the next poll at once: one extra status query, never a wrong decision.
//!
//! **Secrets.** The PIN (input, state, corrections) is [`Sensitive`]; the
//! number, the account number, the IMEI and the buyer are `Sensitive` too,
//! with a masked copy of the number for people. Callback payloads are parsed
//! again with [`parse_callback`] and only their status is noted.
//!
//! **Decisions where the spec is silent.** The port-in is an eSIM (the
//! device's IMEI); a pSIM port-in would add J2's wait for the SIM. A failed
//! payment fails the journey (J2 owns the retry-from-quote loop). 11
//! PORT_CANCELLED completes with outcome `cancelled` (a customer's decision,
//! not an incident). The purchase part duplicates a little of J2's purchase
//! on purpose (this journey needs the port-in fields and its own states).
//!
//! Business key: the MDN being ported (shown masked).

mod correction;
mod model;

use std::sync::Arc;
use std::time::Duration;

use handover_adapters::ReachClient;
use handover_adapters::reach::callbacks::{
    CUSTOMER_NAMESPACE, Callback, TRANSACTION_NAMESPACE, parse_callback,
};
use handover_adapters::reach::{
    Activation, ActivationStatus, ClientAccountId, CustomerDetails, CustomerId, Imei, Mdn, Order,
    PlanId, PortEligibility, PortInDetails, PortInUpdateOutcome, PurchaseOutcome, PurchaseStatus,
    RedirectUrl, SimType, TransactionId, ZipCode,
};
use handover_adapters::reach::{CarrierAccountNumber, CarrierName, PortPin};
use handover_engine::{
    BusinessKey, CorrelationKey, InvalidInput, NoCompensation, Registry, RetryPolicy, Start,
    StepCtx, StepError, StepInfo, Transition, Wait, Wake, Workflow,
};
use secrecy::SecretString;

pub use self::correction::{CorrectionError, CorrectionPayload};
pub use self::model::{
    Buyer, Correction, DEFAULT_MAX_CORRECTIONS, Line, LineDecision, MAX_ACTIVATIONS,
    MAX_CORRECTIONS_LIMIT, Mode, PortInInput, PortInOutcome, PortInOutput, PortInTimings,
    PortOrder, Settings, State, decide, update_was_applied,
};
use crate::Providers;
use crate::common::step_error;
use crate::ingress::reach::{
    ACTIVATION_SIGNAL, PAYMENT_RETURN_SIGNAL, PURCHASE_SIGNAL, RETURN_PATH,
};

/// The signal carrying the customer's correction (see [`CorrectionPayload`]),
/// sent to the journey by id (`POST /journeys/{id}/signals/reach.port-in.correction`).
pub const CORRECTION_SIGNAL: &str = "reach.port-in.correction";

/// How long a port-in usually takes ("minutes to hours"): past it, `journeys
/// stuck` reports the journey.
pub const PORT_EXPECTED: Duration = Duration::from_secs(2 * 3_600);
/// How long the customer usually takes to pay.
const PAYMENT_EXPECTED: Duration = Duration::from_secs(30 * 60);

/// The port-in journey.
#[derive(Debug, Clone)]
pub struct ReachPortIn {
    client: Arc<ReachClient>,
    redirect_url: String,
}

impl ReachPortIn {
    /// The journey, calling Reach with `client`; the payment page sends the
    /// customer back to `redirect_url`.
    pub fn new(client: Arc<ReachClient>, redirect_url: impl Into<String>) -> Self {
        Self {
            client,
            redirect_url: redirect_url.into(),
        }
    }
}

/// Registers the journey when its provider is configured.
pub fn register(registry: &mut Registry, providers: &Providers) {
    if let Some(client) = &providers.reach {
        let base = providers.public_base_url.as_str().trim_end_matches('/');
        registry.register(ReachPortIn::new(
            client.clone(),
            format!("{base}{RETURN_PATH}"),
        ));
    }
}

fn terminal(e: impl std::fmt::Display) -> StepError {
    StepError::terminal(e.to_string())
}

fn key(namespace: &str, value: &str) -> Result<CorrelationKey, StepError> {
    CorrelationKey::new(namespace, value).map_err(StepError::terminal)
}

/// The order as the adapter takes it (secrets exposed only into the request).
fn order_for(
    order: &PortOrder,
    client_account_id: ClientAccountId,
    redirect_url: &str,
) -> Result<Order, StepError> {
    let invalid = |e: handover_adapters::ProviderError| terminal(e);
    let buyer = order.buyer.expose();
    Ok(Order {
        client_account_id,
        plan_id: PlanId::new(order.plan_id.clone()).map_err(invalid)?,
        sim_type: SimType::Esim,
        redirect_url: RedirectUrl::parse(redirect_url).map_err(invalid)?,
        customer: CustomerDetails::new(&buyer.first_name, &buyer.last_name, &buyer.email)
            .map_err(invalid)?,
        shipping_address: None,
        imei: Some(Imei::parse(order.imei.expose()).map_err(invalid)?),
        port_in: Some(PortInDetails {
            number_to_port: Mdn::parse(order.mdn.expose()).map_err(invalid)?,
            old_carrier: CarrierName::new(&order.old_carrier).map_err(invalid)?,
            old_carrier_account_number: CarrierAccountNumber::parse(order.account.expose())
                .map_err(invalid)?,
            password: PortPin::new(SecretString::from(order.pin.expose().clone()))
                .map_err(invalid)?,
            old_zip: ZipCode::parse(&order.old_zip).map_err(invalid)?,
        }),
    })
}

impl Workflow for ReachPortIn {
    const NAME: &'static str = "reach.port-in";
    type Input = PortInInput;
    type State = State;
    type Output = PortInOutput;
    type Compensation = NoCompensation;

    fn start(&self, input: PortInInput) -> Result<Start<State>, InvalidInput> {
        let order = input.validate()?;
        let deadline = Duration::from_millis(order.settings.timings.deadline_ms);
        let business_key = BusinessKey::msisdn(order.mdn.expose());
        Ok(Start::new(State::Validate { order })
            .business_key(business_key)
            .deadline_in(deadline))
    }

    fn step_info(&self, state: &State) -> StepInfo {
        let call = |name| StepInfo::new(name).timeout(Duration::from_secs(30));
        match state {
            State::Validate { .. } => call("validate-port"),
            State::Purchase { .. } => call("purchase"),
            State::AwaitPurchase { .. } => call("await-payment").expected_within(PAYMENT_EXPECTED),
            State::Activate { .. } => call("activate"),
            State::Porting { .. } => call("await-port").expected_within(PORT_EXPECTED),
            State::AwaitCorrection { line, .. } => call("await-correction").expected_within(
                Duration::from_millis(line.settings.timings.correction_timeout_ms),
            ),
            State::Correct { .. } => call("correct-port"),
            State::CorrectionTimedOut { .. } => {
                StepInfo::new("correction-timed-out").retry(RetryPolicy::never())
            }
        }
    }

    async fn step(
        &self,
        state: State,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<State, PortInOutput>, StepError> {
        match state {
            State::Validate { order } => self.validate(order).await,
            State::Purchase { order } => self.purchase(order, ctx).await,
            State::AwaitPurchase {
                imei,
                mdn_masked,
                transaction_id,
                polls,
                payment_url,
                settings,
            } => {
                self.await_purchase(
                    PurchaseWait {
                        imei,
                        mdn_masked,
                        transaction_id,
                        polls,
                        payment_url,
                        settings,
                    },
                    ctx,
                )
                .await
            }
            State::Activate { line } => self.activate(line, ctx).await,
            State::Porting { line, polls } => self.porting(line, polls, ctx).await,
            State::AwaitCorrection { line, until_ms } => await_correction(line, until_ms, ctx),
            State::Correct { line, correction } => self.correct(line, correction, ctx).await,
            State::CorrectionTimedOut { line } => Ok(Transition::fail(format!(
                "no correction from the customer within {} s after the port-in of {} failed ({}); \
                 the port is left 10 PORTING_FAILED at Reach (customer {}): send a correction \
                 to a new journey or cancel the port with Reach",
                line.settings.timings.correction_timeout_ms / 1000,
                line.mdn_masked,
                line.last_failure.as_deref().unwrap_or("no reason given"),
                line.customer_id
            ))),
        }
    }
}

/// [`State::AwaitPurchase`]'s fields.
struct PurchaseWait {
    imei: handover_engine::Sensitive<String>,
    mdn_masked: String,
    transaction_id: String,
    polls: u32,
    payment_url: Option<String>,
    settings: Settings,
}

impl PurchaseWait {
    fn into_state(self) -> State {
        State::AwaitPurchase {
            imei: self.imei,
            mdn_masked: self.mdn_masked,
            transaction_id: self.transaction_id,
            polls: self.polls,
            payment_url: self.payment_url,
            settings: self.settings,
        }
    }
}

type Step = Result<Transition<State, PortInOutput>, StepError>;

impl ReachPortIn {
    async fn validate(&self, order: PortOrder) -> Step {
        let mdn = Mdn::parse(order.mdn.expose()).map_err(terminal)?;
        match self
            .client
            .validate_port(&mdn)
            .await
            .map_err(|e| step_error(&e))?
        {
            PortEligibility::Eligible { .. } => Ok(Transition::next(State::Purchase { order })),
            PortEligibility::NotEligible { message } => Ok(Transition::fail(format!(
                "the number {} cannot be ported in (isPortValidate=false): {}",
                order.mdn_masked,
                message.as_deref().unwrap_or("Reach gave no reason")
            ))),
        }
    }

    async fn purchase(&self, order: PortOrder, ctx: &mut StepCtx<Self>) -> Step {
        // One clientAccountId for the journey: a re-send is answered 409
        // with the same transaction, never a second order.
        let client_account_id =
            ClientAccountId::new(ctx.stable_key("purchase").as_str()).map_err(terminal)?;
        let request = order_for(&order, client_account_id, &self.redirect_url)?;
        let outcome = self
            .client
            .purchase(&request)
            .await
            .map_err(|e| step_error(&e))?;
        if let PurchaseOutcome::AlreadySubmitted { status, .. } = &outcome {
            ctx.note(format!(
                "reconciled: Reach already had this order ({}); not ordered again",
                status.map_or("status not given", |s| s.as_str())
            ));
        }
        let transaction_id = outcome.transaction_id().as_str().to_owned();
        ctx.correlate(key(TRANSACTION_NAMESPACE, &transaction_id)?)?;
        Ok(Transition::next(
            PurchaseWait {
                imei: order.imei,
                mdn_masked: order.mdn_masked,
                transaction_id,
                polls: 0,
                payment_url: None,
                settings: order.settings,
            }
            .into_state(),
        ))
    }

    async fn await_purchase(&self, mut wait: PurchaseWait, ctx: &mut StepCtx<Self>) -> Step {
        if let Some(signal) = ctx.signal() {
            ctx.note(format!(
                "woken by {}; confirming with the purchase status",
                signal.name
            ));
        }
        let transaction_id = TransactionId::new(wait.transaction_id.clone()).map_err(terminal)?;
        let status = self
            .client
            .purchase_status(&transaction_id)
            .await
            .map_err(|e| step_error(&e))?;
        match status {
            PurchaseStatus::Completed(done) => {
                ctx.correlate(key(CUSTOMER_NAMESPACE, done.customer_id.as_str())?)?;
                Ok(Transition::next(State::Activate {
                    line: Line {
                        customer_id: done.customer_id.as_str().to_owned(),
                        imei: wait.imei,
                        mdn_masked: wait.mdn_masked,
                        mode: Mode::Port,
                        corrections: 0,
                        activations: 0,
                        last_failure: None,
                        settings: wait.settings,
                    },
                }))
            }
            PurchaseStatus::Failed {
                payment_status_desc,
                ..
            } => Ok(Transition::fail(format!(
                "the purchase {} failed: {}",
                wait.transaction_id,
                payment_status_desc.as_deref().unwrap_or("no reason given")
            ))),
            other => {
                if let PurchaseStatus::PaymentPending {
                    link: Some(link), ..
                } = &other
                    && wait.payment_url.is_none()
                {
                    ctx.note("payment link issued; waiting for the customer to pay");
                    wait.payment_url = Some(link.url.to_string());
                }
                let until = ctx.after(wait.settings.timings.purchase_poll(wait.polls));
                wait.polls = wait.polls.saturating_add(1);
                Ok(Transition::wait(
                    wait.into_state(),
                    Wait::for_signals(&[PURCHASE_SIGNAL, PAYMENT_RETURN_SIGNAL]).until(until),
                ))
            }
        }
    }

    async fn activate(&self, mut line: Line, ctx: &mut StepCtx<Self>) -> Step {
        let customer_id = CustomerId::new(line.customer_id.clone()).map_err(terminal)?;
        if ctx.may_have_run_before() {
            let status = self
                .client
                .activation_status(&customer_id)
                .await
                .map_err(|e| step_error(&e))?;
            if !matches!(status, ActivationStatus::Inactive) {
                ctx.note(format!(
                    "reconciled: the line is already {}; activation not sent again",
                    status.code()
                ));
                line.activations = line.activations.saturating_add(1);
                return Ok(Transition::next(State::Porting { line, polls: 0 }));
            }
        }
        let activation = Activation::Esim {
            customer_id,
            imei: Imei::parse(line.imei.expose()).map_err(terminal)?,
        };
        let outcome = self
            .client
            .activate(&activation)
            .await
            .map_err(|e| step_error(&e))?;
        if let handover_adapters::reach::ActivationOutcome::AlreadySubmitted { status, .. } =
            outcome
        {
            ctx.note(format!(
                "Reach already had an activation (line {status}); not activated twice"
            ));
        }
        line.activations = line.activations.saturating_add(1);
        Ok(Transition::next(State::Porting { line, polls: 0 }))
    }

    async fn porting(&self, mut line: Line, polls: u32, ctx: &mut StepCtx<Self>) -> Step {
        if let Some(signal) = ctx.signal().cloned() {
            if signal.name.as_str() == CORRECTION_SIGNAL {
                // While the port runs only a cancellation applies.
                match Correction::parse(&signal.payload) {
                    Ok(Correction::CancelPort) => {
                        return Ok(Transition::next(State::Correct {
                            line,
                            correction: Correction::CancelPort,
                        }));
                    }
                    Ok(other) => ctx.note(format!(
                        "ignored {} while the port is in progress (only CANCEL_PORT applies now)",
                        other.type_name()
                    )),
                    Err(e) => ctx.note(format!("ignored a correction: {e}")),
                }
            } else {
                let body = serde_json::to_vec(&signal.payload).unwrap_or_default();
                match parse_callback(&body) {
                    Ok(Callback::Activation(callback)) => ctx.note(format!(
                        "ACTIVATION callback says {}; confirming with the status endpoint",
                        callback.status
                    )),
                    Ok(_) | Err(_) => {
                        ctx.note("ignored an unexpected callback; polling the status");
                    }
                }
            }
        }
        let customer_id = CustomerId::new(line.customer_id.clone()).map_err(terminal)?;
        let status = self
            .client
            .activation_status(&customer_id)
            .await
            .map_err(|e| step_error(&e))?;
        match decide(&line, &status) {
            LineDecision::KeepPolling => {
                // A callback that turned out to be no news repeats the current
                // interval; a timer (or the first poll) moves to the next, longer one.
                let (interval, polls) = if matches!(ctx.wake(), Wake::Signal) && polls > 0 {
                    (polls - 1, polls)
                } else {
                    (polls, polls.saturating_add(1))
                };
                let until = ctx.after(line.settings.timings.port_poll(interval));
                Ok(Transition::wait(
                    State::Porting { line, polls },
                    Wait::for_signals(&[ACTIVATION_SIGNAL, CORRECTION_SIGNAL]).until(until),
                ))
            }
            LineDecision::Reactivate => {
                ctx.note("Reach reports the line 0 INACTIVE: sending the activation again");
                Ok(Transition::next(State::Activate { line }))
            }
            LineDecision::Done(output) => Ok(Transition::complete(output)),
            LineDecision::Fail(reason) => Ok(Transition::fail(reason)),
            LineDecision::AwaitCorrection(reason) => {
                ctx.note(format!(
                    "port-in failed (10 PORTING_FAILED): {}; waiting for the customer's correction",
                    reason.as_deref().unwrap_or("no reason given")
                ));
                line.last_failure = reason;
                let until = ctx.after(Duration::from_millis(
                    line.settings.timings.correction_timeout_ms,
                ));
                Ok(Transition::wait(
                    State::AwaitCorrection {
                        line: line.clone(),
                        until_ms: until.timestamp_millis(),
                    },
                    Wait::for_signal(CORRECTION_SIGNAL)
                        .until(until)
                        .on_timeout(State::CorrectionTimedOut { line }),
                ))
            }
        }
    }

    async fn correct(&self, line: Line, correction: Correction, ctx: &mut StepCtx<Self>) -> Step {
        let customer_id = CustomerId::new(line.customer_id.clone()).map_err(terminal)?;
        let number = line.corrections.saturating_add(1);
        let after = |mut line: Line| {
            line.corrections = number;
            line.last_failure = None;
            if correction == Correction::CancelAndNew {
                line.mode = Mode::NewNumber;
            }
            Transition::next(State::Porting { line, polls: 0 })
        };
        if ctx.may_have_run_before() {
            let status = self
                .client
                .activation_status(&customer_id)
                .await
                .map_err(|e| step_error(&e))?;
            if update_was_applied(line.last_failure.as_deref(), &status) {
                ctx.note(format!(
                    "reconciled: correction #{number} ({}) was already applied (line now {}); not sent again",
                    correction.type_name(),
                    status.code()
                ));
                return Ok(after(line));
            }
        }
        let update = correction.to_update().map_err(terminal)?;
        let outcome = self
            .client
            .update_port_in(&customer_id, &update)
            .await
            .map_err(|e| step_error(&e))?;
        match outcome {
            PortInUpdateOutcome::Accepted { status, .. } => ctx.note(format!(
                "correction #{number} {} sent (key {}); line now {status}",
                correction.type_name(),
                ctx.idempotency_key()
            )),
            PortInUpdateOutcome::Conflict { current, message } => ctx.note(format!(
                "correction #{number} {}: Reach answered 409 (line {current}: {message}); \
                 the status poll decides what comes next",
                correction.type_name()
            )),
        }
        Ok(after(line))
    }
}

/// [`State::AwaitCorrection`]: a correction arrived (or the step was re-run
/// without one, e.g. by an operator).
fn await_correction(line: Line, until_ms: i64, ctx: &mut StepCtx<ReachPortIn>) -> Step {
    let until = chrono::DateTime::from_timestamp_millis(until_ms).unwrap_or_else(|| ctx.now());
    let parsed = ctx
        .signal()
        .filter(|s| s.name.as_str() == CORRECTION_SIGNAL)
        .map(|s| Correction::parse(&s.payload));
    match parsed {
        Some(Ok(correction)) => {
            ctx.note(format!(
                "the customer sent {} (correction #{})",
                correction.type_name(),
                line.corrections.saturating_add(1)
            ));
            Ok(Transition::next(State::Correct { line, correction }))
        }
        other => {
            if let Some(Err(e)) = other {
                ctx.note(format!("refused a correction: {e}; still waiting"));
            }
            Ok(Transition::wait(
                State::AwaitCorrection {
                    line: line.clone(),
                    until_ms,
                },
                Wait::for_signal(CORRECTION_SIGNAL)
                    .until(until)
                    .on_timeout(State::CorrectionTimedOut { line }),
            ))
        }
    }
}
