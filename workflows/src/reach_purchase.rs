//! J2. Reach purchase, pay, activate (`reach-plugapi-guide.txt`, Scenarios A,
//! C, D): workflow `reach.purchase`.
//!
//! A new customer buys a plan: coverage and device checks, the plan from the
//! cached catalog, a quote, the asynchronous purchase, the customer's payment
//! on Reach's page, then the line's activation (an eSIM at once, a physical
//! SIM once it arrived).
//!
//! | stage ([`Stage`]) | step name | spec step | what it does |
//! |---|---|---|---|
//! | `Coverage` | `check-coverage` | coverage `POST /network/coverage` | `brandCoverage=false` fails the journey ("not available in your area") |
//! | `Device` | `check-device` | IMEI `GET /device/imei/{imei}` | `isValid=false` fails; `mode` (and the customer's choice) decides PSIM/ESIM ([`decide::choose_sim`]) |
//! | `Plan` | `pick-plan` | plans `GET /product/fetch/plan` (cached) | reads the plan from the [`catalog`] cache (fetching when stale or unknown) |
//! | `Quote` | `quote` | quote `POST /product/quote` | records the one-time and monthly cost; a retry after `FAILED` starts here with a new `clientAccountId` |
//! | `Purchase` | `purchase` | purchase `POST /product` | effectful: the attempt's `clientAccountId` is its idempotency key; a `409` names the existing purchase (see below) |
//! | `AwaitLink` | `await-payment-link` | poll `GET /product/status/{transactionId}` every 5 s until `PAYMENT_PENDING` with `link.url` | durable timer; the purchase callback wakes it early |
//! | `AwaitCustomer` | `await-customer-payment` | wait for the customer's return (`redirectUrl?transId=`) or `link.expireDate` | parks for [`PAYMENT_RETURN_SIGNAL`] or [`PURCHASE_SIGNAL`] about the current `transactionId` (a late one of an earlier, failed attempt is noted and ignored); at the expiry it goes to read the result |
//! | `AwaitPaymentResult` | `await-payment-result` | poll until `COMPLETED` or `FAILED`, or the `PRODUCT_PURCHASE` callback | growing interval ([`Timing::poll`]); a callback ends the wait at once and is confirmed by a status query; stores `customerId` |
//! | `PaymentFailed` | `await-payment-retry` | FAILED: record `paymentStatusDesc`, allow a retry from the quote step | parks for [`RETRY_SIGNAL`] (the customer wants to try again) up to [`MAX_PURCHASE_ATTEMPTS`] purchases; no retry in time fails the journey with the description |
//! | `AwaitSim` | `await-sim-arrival` | PSIM: wait (days) for a `sim-arrived` signal | [`SIM_ARRIVED_SIGNAL`] with `{"iccid"}`; past the window a person is asked (the customer has paid) |
//! | `ValidateSim` | `validate-sim` | `POST /iccid/validate` | an unusable SIM goes back to waiting for another (bounded) |
//! | `Activate` | `activate` | activation `POST /activation` (IMEI and `esim: true`, or the ICCID) | effectful, keyed by `customerId`: after a possible earlier send it first asks the status and sends only if Reach has none |
//! | `AwaitActivation` | `await-activation` | poll `GET /activation/status?customerId=` (0, 1, 2, 8) or the `ACTIVATION` callback | 2 completes with the number; 8 fails with `activationMsg`; 0 re-sends (bounded) |
//! | `GiveUp` | `give-up` | (a customer wait timed out) | fails the journey with the reason |
//! | `NeedsPerson` | `needs-person` | (stuck beyond the bounds) | `needs_attention` with what to do; `handover journeys skip` resumes the stage it names |
//!
//! # No double effect
//!
//! - **Purchase.** The `clientAccountId` is `HO-` and the journey's stable key
//!   for `reach.purchase:<attempt>`: the same on every retry and after a
//!   crash, new for each retry after `FAILED`. After "outcome unknown" (504,
//!   timeout) the `transactionId` was never received, so no status query is
//!   possible yet: the step re-sends the same order, and Reach answers `409`
//!   with the existing `transactionId` ("check whether it already
//!   succeeded"); the next stage then reconciles through
//!   `/product/status/{transactionId}`. If a `transactionId` is already known
//!   (an operator rewound the journey), the step asks the status first and
//!   sends nothing when the purchase exists.
//! - **Activation.** Keyed by `customerId`; a step that may have sent before
//!   asks `/activation/status` first and sends only on 0 (INACTIVE).
//! - **Callbacks are hints.** Every callback or return only wakes the journey;
//!   it acts on the status endpoint's answer.
//!
//! # Business key and searching
//!
//! The engine fixes a journey's business key at start, before the
//! `transactionId` or the number exist, so the key is the caller's
//! `order_ref` when given. The `transactionId` of every attempt and the
//! `customerId` are registered correlation keys (`reach.txn:`,
//! `reach.customer:`), which `handover journeys list --key` also searches.
//! The MSISDN is never a key: it would be shown unmasked with the
//! correlation keys; it is in the output, redacted, and masked.

pub mod catalog;
pub mod decide;
pub mod model;

use std::sync::Arc;
use std::time::Duration;

use handover_adapters::ReachClient;
use handover_adapters::reach::callbacks::{CUSTOMER_NAMESPACE, TRANSACTION_NAMESPACE};
use handover_adapters::reach::{
    Activation, ActivationOutcome, ActivationStatus, Address, ClientAccountId, CoverageOutcome,
    CustomerDetails, CustomerId, IccId, IccidOutcome, Imei, ImeiOutcome, Order, PlanId,
    PurchaseOutcome, RedirectUrl, SimType, TransactionId, ZipCode,
};
use handover_engine::{
    BusinessKey, CorrelationKey, InvalidInput, NoCompensation, Registry, RetryPolicy, Sensitive,
    Start, StepCtx, StepError, StepInfo, Transition, Wait, Workflow, mask_msisdn,
};

use self::catalog::PlanCache;
use self::decide::{ActivationDecision, LinkDecision, PaymentDecision};
pub use self::model::{
    AddressInput, Buyer, OrderData, Progress, QuoteFacts, ReachPurchaseInput, ReachPurchaseOutput,
    SimArrived, Stage, State, Timing,
};
use crate::Providers;
use crate::common::step_error;
use crate::ingress::reach::{
    ACTIVATION_SIGNAL, PAYMENT_RETURN_SIGNAL, PURCHASE_SIGNAL, RETURN_PATH,
};

/// The physical SIM reached the customer: `{"iccid": "..."}` (from the
/// customer's app or the shipping partner, by journey id).
pub const SIM_ARRIVED_SIGNAL: &str = "sim-arrived";
/// The customer wants to pay again after a failed payment (any payload).
pub const RETRY_SIGNAL: &str = "retry-purchase";
/// Most purchases one journey makes (the first and the retries after
/// `FAILED`).
pub const MAX_PURCHASE_ATTEMPTS: u32 = 3;
/// Most unusable SIMs accepted before a person is asked.
const MAX_UNUSABLE_SIMS: u32 = 3;
/// Most activations sent while Reach keeps saying 0 (INACTIVE).
const MAX_ACTIVATION_SENDS: u32 = 3;
/// The time limit of one step (a provider call and a 401 re-auth).
const STEP_TIMEOUT: Duration = Duration::from_secs(45);

/// The journey.
#[derive(Debug, Clone)]
pub struct ReachPurchase {
    client: Arc<ReachClient>,
    plans: Arc<PlanCache>,
    redirect: RedirectUrl,
}

impl ReachPurchase {
    /// The journey on `client`, reading plans from `plans`, sending customers
    /// back to `redirect` after payment.
    pub fn new(client: Arc<ReachClient>, plans: Arc<PlanCache>, redirect: RedirectUrl) -> Self {
        Self {
            client,
            plans,
            redirect,
        }
    }
}

/// Registers the journey when Reach is configured.
pub fn register(registry: &mut Registry, providers: &Providers) {
    let Some(client) = &providers.reach else {
        return;
    };
    let redirect = providers
        .public_base_url
        // Relative, so a public base URL with a path prefix keeps it.
        .join(RETURN_PATH.trim_start_matches('/'))
        .map_err(|e| e.to_string())
        .and_then(|url| RedirectUrl::parse(url.as_str()).map_err(|e| e.to_string()));
    match redirect {
        Ok(redirect) => {
            registry.register(ReachPurchase::new(
                client.clone(),
                catalog::cache_for(client),
                redirect,
            ));
        }
        Err(e) => tracing::error!(
            error = %e,
            "reach.purchase is not registered: the public base URL gives no valid payment return URL (https, or http on loopback)"
        ),
    }
}

/// Adds the Reach plan catalog refresh (see [`catalog`]).
pub fn schedules(
    scheduler: handover_engine::schedule::Scheduler,
    providers: &Providers,
) -> Result<handover_engine::schedule::Scheduler, handover_engine::schedule::ScheduleError> {
    let Some(client) = providers.reach.clone() else {
        return Ok(scheduler);
    };
    let cache = catalog::cache_for(&client);
    scheduler.job(catalog::REFRESH_JOB, catalog::REFRESH_CRON, move |engine| {
        let (client, cache) = (client.clone(), cache.clone());
        async move {
            let now = engine.clock().now();
            match cache.refresh(&client, now).await {
                Ok(plans) => Ok(format!("{} Reach plans cached", plans.len())),
                Err(e) => Err(format!(
                    "Reach plan refresh failed (journeys fetch on demand): {e}"
                )),
            }
        }
    })
}

fn invalid(e: impl std::fmt::Display) -> InvalidInput {
    InvalidInput::new(e.to_string())
}

/// Whether `text` is an acceptable order reference.
fn is_ref(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A state with `stage`, the rest cloned.
fn at(order: &OrderData, progress: &Progress, stage: Stage) -> State {
    State {
        order: order.clone(),
        progress: progress.clone(),
        stage,
    }
}

fn broken(what: &str) -> StepError {
    StepError::terminal(format!(
        "the journey's state has no {what} at this stage: repair it (patch-state or rewind)"
    ))
}

fn correlation(namespace: &str, value: &str) -> Result<CorrelationKey, StepError> {
    CorrelationKey::new(namespace, value).map_err(StepError::terminal)
}

fn needs_person(reason: String, resume: Stage) -> Stage {
    Stage::NeedsPerson {
        reason,
        resume: Box::new(resume),
    }
}

type Step = Result<Transition<State, ReachPurchaseOutput>, StepError>;

impl ReachPurchase {
    fn address(order: &OrderData) -> Result<Address, StepError> {
        let a = order.address.expose();
        let zip = ZipCode::parse(&a.zip).map_err(|e| step_error(&e))?;
        Address::new(&a.address1, a.address2.as_deref(), &a.city, &a.state, zip)
            .map_err(|e| step_error(&e))
    }

    fn imei(order: &OrderData) -> Result<Imei, StepError> {
        Imei::parse(order.imei.expose()).map_err(|e| step_error(&e))
    }

    fn order(
        &self,
        order: &OrderData,
        sim: SimType,
        client_account_id: ClientAccountId,
    ) -> Result<Order, StepError> {
        let buyer = order.buyer.expose();
        Ok(Order {
            client_account_id,
            plan_id: order.plan_id.clone(),
            sim_type: sim,
            redirect_url: self.redirect.clone(),
            customer: CustomerDetails::new(&buyer.first_name, &buyer.last_name, &buyer.email)
                .map_err(|e| step_error(&e))?,
            shipping_address: match sim {
                SimType::Psim => Some(Self::address(order)?),
                SimType::Esim => None,
            },
            imei: Some(Self::imei(order)?),
            port_in: None,
        })
    }

    async fn coverage(&self, order: &OrderData, progress: Progress) -> Step {
        match self
            .client
            .coverage(&Self::address(order)?)
            .await
            .map_err(|e| step_error(&e))?
        {
            CoverageOutcome::Covered { .. } => {
                Ok(Transition::next(at(order, &progress, Stage::Device)))
            }
            CoverageOutcome::NotCovered { .. } => Ok(Transition::fail(
                "Reach has no coverage at the service address (brandCoverage=false): \
                 the service is not available in this area",
            )),
        }
    }

    async fn device(&self, order: &OrderData, mut progress: Progress) -> Step {
        let device = match self
            .client
            .check_imei(&Self::imei(order)?)
            .await
            .map_err(|e| step_error(&e))?
        {
            ImeiOutcome::Valid(device) => device,
            ImeiOutcome::Invalid => {
                return Ok(Transition::fail(
                    "the device is not compatible with Reach (isValid=false for its IMEI)",
                ));
            }
        };
        let sim = match decide::choose_sim(device.mode, order.prefer) {
            Ok(sim) => sim,
            Err(reason) => return Ok(Transition::fail(reason)),
        };
        if sim == SimType::Esim && !device.esim_available {
            return Ok(Transition::fail(
                "the device supports eSIM but Reach cannot provision one to it (esimAvailable=false)",
            ));
        }
        progress.sim_type = Some(sim);
        Ok(Transition::next(at(order, &progress, Stage::Plan)))
    }

    async fn plan(&self, order: &OrderData, mut progress: Progress, ctx: &StepCtx<Self>) -> Step {
        let now = ctx.now();
        let find = |plans: &[handover_adapters::reach::Plan]| {
            plans
                .iter()
                .find(|p| p.service_code == order.plan_id)
                .cloned()
        };
        let plans = self
            .plans
            .get(&self.client, now)
            .await
            .map_err(|e| step_error(&e))?;
        let plan = match find(&plans) {
            Some(plan) => Some(plan),
            // A plan launched since the last refresh: look once more.
            None => find(
                &self
                    .plans
                    .refresh(&self.client, now)
                    .await
                    .map_err(|e| step_error(&e))?,
            ),
        };
        let Some(plan) = plan else {
            return Ok(Transition::fail(format!(
                "plan {} is not in Reach's catalog",
                order.plan_id.as_str()
            )));
        };
        progress.plan_name = plan.name;
        progress.purchase_attempt = 1;
        Ok(Transition::next(at(order, &progress, Stage::Quote)))
    }

    async fn quote(&self, order: &OrderData, mut progress: Progress, ctx: &StepCtx<Self>) -> Step {
        let sim = progress.sim_type.ok_or_else(|| broken("SIM type"))?;
        let attempt = progress.purchase_attempt.max(1);
        let key = ctx.stable_key(&format!("reach.purchase:{attempt}"));
        let client_account_id = ClientAccountId::new(format!("HO-{}", key.as_uuid().simple()))
            .map_err(|e| step_error(&e))?;
        let quote = self
            .client
            .quote(&self.order(order, sim, client_account_id.clone())?)
            .await
            .map_err(|e| step_error(&e))?;
        progress.quote = Some(QuoteFacts {
            total_one_time_cents: quote.one_time_charge.total_one_time_cost.cents(),
            monthly_total_cents: quote.estimated_monthly_total.cents(),
        });
        progress.purchase_attempt = attempt;
        progress.client_account_id = Some(client_account_id);
        progress.transaction_id = None;
        progress.payment_link = None;
        progress.link_expires = None;
        Ok(Transition::next(at(order, &progress, Stage::Purchase)))
    }

    async fn purchase(
        &self,
        order: &OrderData,
        mut progress: Progress,
        ctx: &mut StepCtx<Self>,
    ) -> Step {
        let sim = progress.sim_type.ok_or_else(|| broken("SIM type"))?;
        let client_account_id = progress
            .client_account_id
            .clone()
            .ok_or_else(|| broken("clientAccountId"))?;
        if let Some(known) = progress.transaction_id.clone()
            && ctx.may_have_run_before()
            && self.client.purchase_status(&known).await.is_ok()
        {
            ctx.note(format!(
                "reconciled: purchase {known} already exists; not ordered again"
            ));
            return Ok(Transition::next(at(
                order,
                &progress,
                Stage::AwaitLink { polls: 0 },
            )));
        }
        let outcome = self
            .client
            .purchase(&self.order(order, sim, client_account_id.clone())?)
            .await
            .map_err(|e| step_error(&e))?;
        let transaction_id = outcome.transaction_id().clone();
        match &outcome {
            PurchaseOutcome::AlreadySubmitted { status, .. } => ctx.note(format!(
                "reconciled: Reach already had purchase {transaction_id} for {client_account_id} \
                 (409, status {}); not ordered again",
                status.map_or("unknown", |s| s.as_str())
            )),
            PurchaseOutcome::Submitted { .. } if ctx.may_have_run_before() => ctx.note(
                "re-sent after an earlier attempt: Reach had no purchase for this clientAccountId",
            ),
            PurchaseOutcome::Submitted { .. } => {}
        }
        ctx.correlate(correlation(TRANSACTION_NAMESPACE, transaction_id.as_str())?)?;
        progress.transaction_id = Some(transaction_id);
        Ok(Transition::next(at(
            order,
            &progress,
            Stage::AwaitLink { polls: 0 },
        )))
    }

    fn transaction(progress: &Progress) -> Result<TransactionId, StepError> {
        progress
            .transaction_id
            .clone()
            .ok_or_else(|| broken("transactionId"))
    }

    fn customer(progress: &Progress) -> Result<CustomerId, StepError> {
        progress
            .customer_id
            .clone()
            .ok_or_else(|| broken("customerId"))
    }

    async fn await_link(
        &self,
        order: &OrderData,
        mut progress: Progress,
        polls: u32,
        ctx: &StepCtx<Self>,
    ) -> Step {
        let transaction_id = Self::transaction(&progress)?;
        let status = self
            .client
            .purchase_status(&transaction_id)
            .await
            .map_err(|e| step_error(&e))?;
        let timing = order.timing;
        Ok(match decide::on_link_status(&status) {
            LinkDecision::Poll if polls + 1 >= timing.max_polls => Transition::next(at(
                order,
                &progress,
                needs_person(
                    format!(
                        "Reach gave no payment link for purchase {transaction_id} after {} polls; \
                         ask Reach, then skip to poll again",
                        polls + 1
                    ),
                    Stage::AwaitLink { polls: 0 },
                ),
            )),
            LinkDecision::Poll => Transition::wait(
                at(order, &progress, Stage::AwaitLink { polls: polls + 1 }),
                Wait::for_signal(PURCHASE_SIGNAL).until(ctx.after(timing.link_poll())),
            ),
            LinkDecision::Link { url, expires } => {
                progress.payment_link = Some(url);
                progress.link_expires =
                    Some(expires.unwrap_or_else(|| {
                        ctx.after(Duration::from_secs(timing.payment_window_secs))
                    }));
                Transition::next(at(order, &progress, Stage::AwaitCustomer))
            }
            LinkDecision::Settling => {
                Transition::next(at(order, &progress, Stage::AwaitPaymentResult { polls: 0 }))
            }
        })
    }

    fn await_customer(order: &OrderData, progress: &Progress, ctx: &mut StepCtx<Self>) -> Step {
        let settle = at(order, progress, Stage::AwaitPaymentResult { polls: 0 });
        let current = Self::transaction(progress)?;
        if let Some(signal) = ctx.signal() {
            let returned = signal.name.as_str() == PAYMENT_RETURN_SIGNAL;
            let about = signal
                .payload
                .get(if returned { "transId" } else { "transactionId" })
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            if about.as_deref() == Some(current.as_str()) {
                let why = if returned {
                    "the customer came back from the payment page"
                } else {
                    "Reach sent the purchase callback"
                };
                ctx.note(format!("{why}: reading the payment result"));
                return Ok(Transition::next(settle));
            }
            // A late callback or return of an earlier, failed attempt: the
            // customer has not paid this one yet.
            ctx.note(format!(
                "ignored a {} about {} while waiting for the payment of {current}",
                signal.name,
                about.as_deref().unwrap_or("no transaction")
            ));
        }
        let until = progress
            .link_expires
            .unwrap_or_else(|| ctx.after(Duration::from_secs(order.timing.payment_window_secs)));
        Ok(Transition::wait(
            at(order, progress, Stage::AwaitCustomer),
            Wait::for_signals(&[PAYMENT_RETURN_SIGNAL, PURCHASE_SIGNAL])
                .until(until)
                .on_timeout(settle),
        ))
    }

    async fn await_payment_result(
        &self,
        order: &OrderData,
        mut progress: Progress,
        polls: u32,
        ctx: &mut StepCtx<Self>,
    ) -> Step {
        let transaction_id = Self::transaction(&progress)?;
        let status = self
            .client
            .purchase_status(&transaction_id)
            .await
            .map_err(|e| step_error(&e))?;
        let timing = order.timing;
        Ok(match decide::on_payment_status(&status) {
            PaymentDecision::Poll if polls + 1 >= timing.max_polls => Transition::next(at(
                order,
                &progress,
                needs_person(
                    format!(
                        "purchase {transaction_id} is still {} after {} polls; ask Reach, then \
                         skip to poll again",
                        status.code().as_str(),
                        polls + 1
                    ),
                    Stage::AwaitPaymentResult { polls: 0 },
                ),
            )),
            PaymentDecision::Poll => Transition::wait(
                at(
                    order,
                    &progress,
                    Stage::AwaitPaymentResult { polls: polls + 1 },
                ),
                Wait::for_signal(PURCHASE_SIGNAL).until(ctx.after(timing.poll(polls))),
            ),
            PaymentDecision::Completed {
                customer_id,
                sim_type,
            } => {
                let sim = progress.sim_type.ok_or_else(|| broken("SIM type"))?;
                if sim_type.is_some_and(|s| s != sim) {
                    ctx.note(format!(
                        "Reach reports a {} purchase; the journey ordered {}",
                        sim_type.map_or("", SimType::as_str),
                        sim.as_str()
                    ));
                }
                ctx.correlate(correlation(CUSTOMER_NAMESPACE, customer_id.as_str())?)?;
                ctx.note(format!(
                    "paid: purchase {transaction_id}, customer {customer_id}"
                ));
                progress.customer_id = Some(customer_id);
                let next = match sim {
                    SimType::Esim => Stage::Activate { sends: 0 },
                    SimType::Psim => Stage::AwaitSim {
                        until: None,
                        unusable: 0,
                    },
                };
                Transition::next(at(order, &progress, next))
            }
            PaymentDecision::Failed { desc } => {
                ctx.note(format!(
                    "payment attempt {} failed: {desc}",
                    progress.purchase_attempt
                ));
                if progress.payment_failures.len() < MAX_PURCHASE_ATTEMPTS as usize {
                    progress.payment_failures.push(desc);
                }
                Transition::next(at(order, &progress, Stage::PaymentFailed { until: None }))
            }
        })
    }

    fn payment_failed(
        order: &OrderData,
        mut progress: Progress,
        until: Option<handover_engine::Timestamp>,
        ctx: &mut StepCtx<Self>,
    ) -> Step {
        let last = progress
            .payment_failures
            .last()
            .cloned()
            .unwrap_or_else(|| "no description".to_owned());
        let attempts = progress.purchase_attempt;
        if attempts >= MAX_PURCHASE_ATTEMPTS {
            return Ok(Transition::fail(format!(
                "the payment failed {attempts} times (the most a journey tries); last: {last}"
            )));
        }
        if ctx
            .signal()
            .is_some_and(|s| s.name.as_str() == RETRY_SIGNAL)
        {
            ctx.note(format!(
                "the customer retries: purchase attempt {} from the quote",
                attempts + 1
            ));
            progress.purchase_attempt = attempts + 1;
            return Ok(Transition::next(at(order, &progress, Stage::Quote)));
        }
        let window = order.timing.retry_window_secs;
        let until = until.unwrap_or_else(|| ctx.after(Duration::from_secs(window)));
        Ok(Transition::wait(
            at(
                order,
                &progress,
                Stage::PaymentFailed { until: Some(until) },
            ),
            Wait::for_signal(RETRY_SIGNAL).until(until).on_timeout(at(
                order,
                &progress,
                Stage::GiveUp {
                    reason: format!(
                        "the payment failed ({last}) and the customer did not try again within \
                         {window} s"
                    ),
                },
            )),
        ))
    }

    fn await_sim(
        order: &OrderData,
        mut progress: Progress,
        until: Option<handover_engine::Timestamp>,
        mut unusable: u32,
        ctx: &mut StepCtx<Self>,
    ) -> Step {
        let window = order.timing.sim_arrival_secs;
        let until = until.unwrap_or_else(|| ctx.after(Duration::from_secs(window)));
        if let Some(signal) = ctx
            .signal()
            .filter(|s| s.name.as_str() == SIM_ARRIVED_SIGNAL)
        {
            // A bad payload must not fail a paid journey: it is noted and the
            // wait goes on.
            match serde_json::from_value::<SimArrived>(signal.payload.clone())
                .map_err(|_| "the payload is not {\"iccid\": \"...\"}".to_owned())
                .and_then(|s| crate::common::iccid(&s.iccid).map_err(|e| e.message))
            {
                Ok(iccid) => {
                    progress.icc_id = Some(Sensitive::new(iccid));
                    return Ok(Transition::next(at(
                        order,
                        &progress,
                        Stage::ValidateSim {
                            until: Some(until),
                            unusable,
                        },
                    )));
                }
                Err(why) => {
                    ctx.note(format!("sim-arrived ignored: {why}"));
                    unusable += 1;
                }
            }
        }
        if unusable >= MAX_UNUSABLE_SIMS {
            return Ok(Transition::next(at(
                order,
                &progress,
                needs_person(
                    format!(
                        "{unusable} SIM cards reported for customer {} were unusable; check the \
                         shipment, then skip to wait for a new card",
                        progress
                            .customer_id
                            .as_ref()
                            .map_or("?", CustomerId::as_str)
                    ),
                    Stage::AwaitSim {
                        until: None,
                        unusable: 0,
                    },
                ),
            )));
        }
        let customer = Self::customer(&progress)?;
        Ok(Transition::wait(
            at(
                order,
                &progress,
                Stage::AwaitSim {
                    until: Some(until),
                    unusable,
                },
            ),
            Wait::for_signal(SIM_ARRIVED_SIGNAL).until(until).on_timeout(at(
                order,
                &progress,
                needs_person(
                    format!(
                        "the physical SIM of customer {customer} (paid) was not reported arrived \
                         within {window} s; check the shipment, then skip to wait again"
                    ),
                    Stage::AwaitSim {
                        until: None,
                        unusable,
                    },
                ),
            )),
        ))
    }

    async fn validate_sim(
        &self,
        order: &OrderData,
        mut progress: Progress,
        until: Option<handover_engine::Timestamp>,
        unusable: u32,
        ctx: &mut StepCtx<Self>,
    ) -> Step {
        let iccid = progress
            .icc_id
            .as_ref()
            .ok_or_else(|| broken("ICCID"))
            .and_then(|i| IccId::parse(i.expose()).map_err(|e| step_error(&e)))?;
        match self
            .client
            .validate_iccid(&iccid)
            .await
            .map_err(|e| step_error(&e))?
        {
            IccidOutcome::Valid { .. } => Ok(Transition::next(at(
                order,
                &progress,
                Stage::Activate { sends: 0 },
            ))),
            IccidOutcome::Invalid => {
                ctx.note(format!(
                    "SIM {iccid} is not usable (isValid=false): waiting for another"
                ));
                progress.icc_id = None;
                Ok(Transition::next(at(
                    order,
                    &progress,
                    Stage::AwaitSim {
                        until,
                        unusable: unusable + 1,
                    },
                )))
            }
        }
    }

    async fn activate(
        &self,
        order: &OrderData,
        mut progress: Progress,
        sends: u32,
        ctx: &mut StepCtx<Self>,
    ) -> Step {
        let customer_id = Self::customer(&progress)?;
        if ctx.may_have_run_before() {
            let status = self
                .client
                .activation_status(&customer_id)
                .await
                .map_err(|e| step_error(&e))?;
            if status != ActivationStatus::Inactive {
                ctx.note(format!(
                    "reconciled: Reach already has an activation for {customer_id} (code {}); \
                     not sent again",
                    status.code().code()
                ));
                return Ok(Transition::next(at(
                    order,
                    &progress,
                    Stage::AwaitActivation {
                        polls: 0,
                        sends: sends + 1,
                    },
                )));
            }
        }
        let activation = match progress.sim_type.ok_or_else(|| broken("SIM type"))? {
            SimType::Esim => Activation::Esim {
                customer_id: customer_id.clone(),
                imei: Self::imei(order)?,
            },
            SimType::Psim => Activation::Psim {
                customer_id: customer_id.clone(),
                icc_id: progress
                    .icc_id
                    .as_ref()
                    .ok_or_else(|| broken("ICCID"))
                    .and_then(|i| IccId::parse(i.expose()).map_err(|e| step_error(&e)))?,
            },
        };
        let (ActivationOutcome::Submitted { transaction_id, .. }
        | ActivationOutcome::AlreadySubmitted { transaction_id, .. }) = self
            .client
            .activate(&activation)
            .await
            .map_err(|e| step_error(&e))?;
        if transaction_id.is_some() {
            progress.activation_transaction_id = transaction_id;
        }
        Ok(Transition::next(at(
            order,
            &progress,
            Stage::AwaitActivation {
                polls: 0,
                sends: sends + 1,
            },
        )))
    }

    async fn await_activation(
        &self,
        order: &OrderData,
        progress: Progress,
        polls: u32,
        sends: u32,
        ctx: &StepCtx<Self>,
    ) -> Step {
        let customer_id = Self::customer(&progress)?;
        let status = self
            .client
            .activation_status(&customer_id)
            .await
            .map_err(|e| step_error(&e))?;
        let timing = order.timing;
        let ask = |reason: String, resume: Stage| {
            Transition::next(at(order, &progress, needs_person(reason, resume)))
        };
        Ok(match decide::on_activation_status(&status) {
            ActivationDecision::Active { mobile_no } => Transition::complete(ReachPurchaseOutput {
                transaction_id: Self::transaction(&progress)?,
                customer_id,
                sim_type: progress.sim_type.ok_or_else(|| broken("SIM type"))?,
                plan_id: order.plan_id.clone(),
                mobile_no_masked: mask_msisdn(&mobile_no),
                mobile_no: Sensitive::new(mobile_no),
                purchase_attempts: progress.purchase_attempt,
                payment_failures: progress.payment_failures.clone(),
            }),
            ActivationDecision::Poll if polls + 1 >= timing.max_polls => ask(
                format!(
                    "the activation of customer {customer_id} is still in progress after {} \
                     polls; ask Reach, then skip to poll again",
                    polls + 1
                ),
                Stage::AwaitActivation { polls: 0, sends },
            ),
            ActivationDecision::Poll => Transition::wait(
                at(
                    order,
                    &progress,
                    Stage::AwaitActivation {
                        polls: polls + 1,
                        sends,
                    },
                ),
                Wait::for_signal(ACTIVATION_SIGNAL).until(ctx.after(timing.poll(polls))),
            ),
            ActivationDecision::Resend if sends >= MAX_ACTIVATION_SENDS => ask(
                format!(
                    "Reach shows no activation for customer {customer_id} after {sends} sends; \
                     ask Reach, then skip to send again"
                ),
                Stage::Activate { sends: 0 },
            ),
            ActivationDecision::Resend => {
                Transition::next(at(order, &progress, Stage::Activate { sends }))
            }
            ActivationDecision::Failed { message } => Transition::fail(format!(
                "the activation failed (8 ACTIVATION_FAILED): {message}. The purchase is paid: \
                 contact Reach support about customer {customer_id}"
            )),
            ActivationDecision::Unexpected { code } => ask(
                format!(
                    "the line of customer {customer_id} shows status {code}, which a purchase \
                     without port-in should never reach; ask Reach"
                ),
                Stage::AwaitActivation { polls: 0, sends },
            ),
        })
    }
}

impl Workflow for ReachPurchase {
    const NAME: &'static str = "reach.purchase";
    type Input = ReachPurchaseInput;
    type State = State;
    type Output = ReachPurchaseOutput;
    type Compensation = NoCompensation;

    fn start(&self, input: ReachPurchaseInput) -> Result<Start<State>, InvalidInput> {
        let imei = crate::common::imei(input.imei.expose())?;
        let address = input.address.expose().clone();
        let zip = ZipCode::parse(&address.zip)
            .map_err(|_| InvalidInput::new("ZIP code must be 5 digits"))?;
        Address::new(
            &address.address1,
            address.address2.as_deref(),
            &address.city,
            &address.state,
            zip,
        )
        .map_err(invalid)?;
        CustomerDetails::new(
            input.first_name.expose(),
            input.last_name.expose(),
            input.email.expose(),
        )
        .map_err(invalid)?;
        let plan_id = PlanId::new(input.plan_id.trim()).map_err(invalid)?;
        if let Some(order_ref) = &input.order_ref
            && !is_ref(order_ref)
        {
            return Err(InvalidInput::new(
                "order_ref must be 1 to 64 letters, digits or -_.:",
            ));
        }
        let order = OrderData {
            buyer: Sensitive::new(Buyer {
                first_name: input.first_name.expose().trim().to_owned(),
                last_name: input.last_name.expose().trim().to_owned(),
                email: input.email.expose().trim().to_owned(),
            }),
            address: Sensitive::new(address),
            imei: Sensitive::new(imei),
            plan_id,
            prefer: input.sim_type,
            timing: input.timing.clamped(),
        };
        let mut start = Start::new(State {
            order,
            progress: Progress::default(),
            stage: Stage::Coverage,
        });
        if let Some(order_ref) = input.order_ref {
            start = start.business_key(BusinessKey::order_id(order_ref));
        }
        Ok(start)
    }

    fn step_info(&self, state: &State) -> StepInfo {
        let timing = state.order.timing;
        let call = |name| StepInfo::new(name).timeout(STEP_TIMEOUT);
        match &state.stage {
            Stage::Coverage => call("check-coverage"),
            Stage::Device => call("check-device"),
            Stage::Plan => call("pick-plan"),
            Stage::Quote => call("quote"),
            Stage::Purchase => call("purchase"),
            Stage::AwaitLink { .. } => {
                call("await-payment-link").expected_within(timing.link_poll() * timing.max_polls)
            }
            Stage::AwaitCustomer => call("await-customer-payment")
                .expected_within(Duration::from_secs(timing.payment_window_secs)),
            Stage::AwaitPaymentResult { .. } => {
                call("await-payment-result").expected_within(Duration::from_secs(3600))
            }
            Stage::PaymentFailed { .. } => call("await-payment-retry")
                .expected_within(Duration::from_secs(timing.retry_window_secs)),
            Stage::AwaitSim { .. } => call("await-sim-arrival")
                .expected_within(Duration::from_secs(timing.sim_arrival_secs)),
            Stage::ValidateSim { .. } => call("validate-sim"),
            Stage::Activate { .. } => call("activate"),
            Stage::AwaitActivation { .. } => {
                call("await-activation").expected_within(Duration::from_secs(3600))
            }
            Stage::GiveUp { .. } => call("give-up").retry(RetryPolicy::never()),
            Stage::NeedsPerson { .. } => call("needs-person").retry(RetryPolicy::never()),
        }
    }

    async fn step(&self, state: State, ctx: &mut StepCtx<Self>) -> Step {
        let State {
            order,
            progress,
            stage,
        } = state;
        match stage {
            Stage::Coverage => self.coverage(&order, progress).await,
            Stage::Device => self.device(&order, progress).await,
            Stage::Plan => self.plan(&order, progress, ctx).await,
            Stage::Quote => self.quote(&order, progress, ctx).await,
            Stage::Purchase => self.purchase(&order, progress, ctx).await,
            Stage::AwaitLink { polls } => self.await_link(&order, progress, polls, ctx).await,
            Stage::AwaitCustomer => Self::await_customer(&order, &progress, ctx),
            Stage::AwaitPaymentResult { polls } => {
                self.await_payment_result(&order, progress, polls, ctx)
                    .await
            }
            Stage::PaymentFailed { until } => Self::payment_failed(&order, progress, until, ctx),
            Stage::AwaitSim { until, unusable } => {
                Self::await_sim(&order, progress, until, unusable, ctx)
            }
            Stage::ValidateSim { until, unusable } => {
                self.validate_sim(&order, progress, until, unusable, ctx)
                    .await
            }
            Stage::Activate { sends } => self.activate(&order, progress, sends, ctx).await,
            Stage::AwaitActivation { polls, sends } => {
                self.await_activation(&order, progress, polls, sends, ctx)
                    .await
            }
            Stage::GiveUp { reason } => Ok(Transition::fail(reason)),
            Stage::NeedsPerson { reason, .. } => Err(StepError::retryable(reason)),
        }
    }

    fn skip(&self, state: &State) -> Option<State> {
        match &state.stage {
            Stage::NeedsPerson { resume, .. } => Some(State {
                order: state.order.clone(),
                progress: state.progress.clone(),
                stage: (**resume).clone(),
            }),
            _ => None,
        }
    }
}
