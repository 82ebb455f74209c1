//! The step and compensation functions of J1: one match arm per [`At`].
//!
//! Each arm does at most one effectful call (money or inventory); the
//! read-only calls and captures around it are safe to repeat on a retry.

use std::sync::Arc;
use std::time::Duration;

use handover_adapters::mobily::{
    CaptureData, ConfirmPaymentOutcome, CustomerLookup, DepositOutcome, DuesOutcome,
    EligibilityOutcome, IdempotencyKey as MobilyKey, Msisdn, NafathRequestId, NafathStatus,
    NafathTransactionId, NumberCategory, NumberChoice, OrderLookup, OrderState, OrderType, OtpCode,
    OtpId, OtpValidation, PackageEligibility, PaymentOutcome, PaymentRequest, PaymentState,
    PaymentStatus, PaymentType, QrOutcome, SimType, TccRegistration, VoidOutcome, codes,
};
use handover_adapters::{MobilyClient, ProviderError};
use handover_engine::{
    CompensationCtx, CorrelationKey, IdempotencyKey, Sensitive, StepCtx, StepError, Transition,
    Wait,
};
use serde::{Deserialize, Serialize};

use super::{
    ACCEPT_DEPOSIT_SIGNAL, At, Checkout, Compensation, EsimCheckout, EsimCheckoutOutput,
    MAX_NUMBER_TRIES, MAX_OTP_RESENDS, MAX_WRONG_OTP, NAFATH_NAMESPACE, NAFATH_SIGNAL,
    ORDER_NAMESPACE, OTP_SIGNAL, PAYMENT_NAMESPACE, PlacedOrder, State, THREE_DS_SIGNAL, catalog,
};
use crate::common::{poll_interval, step_error};

type Step = Transition<State, EsimCheckoutOutput>;

/// Longest interval between two `tokeninfo` polls.
const NAFATH_POLL_MAX: Duration = Duration::from_secs(30);
/// Longest interval between two QR inquiries.
const QR_POLL_MAX: Duration = Duration::from_secs(600);
/// Free numbers asked for at once.
const NUMBERS_OFFERED: u32 = 20;
/// The reason given to Mobily when the saga cancels an order.
const CANCEL_REASON: &str = "checkout journey failed";

/// The payload of [`ACCEPT_DEPOSIT_SIGNAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositAnswer {
    /// Whether the customer accepts the deposit.
    pub accepted: bool,
}

/// The payload of [`OTP_SIGNAL`] (`code` is redacted in operator views).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpAnswer {
    /// What the customer typed.
    pub code: String,
}

/// The payload of [`NAFATH_SIGNAL`], built by the ingress from the webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NafathPayload {
    /// Nafath's transaction.
    pub transaction_id: String,
    /// The final status (`APPROVED`, `REJECTED`, `EXPIRED`).
    pub status: NafathStatus,
}

/// The payload of [`THREE_DS_SIGNAL`], built by the ingress from the return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreeDsPayload {
    /// The gateway's payment.
    pub payment_id: String,
    /// `success` or `failure`.
    pub result: String,
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "takes the error by value so it reads `.map_err(se)`"
)]
fn se(e: ProviderError) -> StepError {
    step_error(&e)
}

/// The engine's key in Mobily's key type (a UUID always fits).
fn mobily_key(key: &IdempotencyKey) -> Result<MobilyKey, StepError> {
    MobilyKey::new(key.as_str()).map_err(se)
}

fn at(at: At, checkout: Checkout) -> State {
    State { at, checkout }
}

fn next(to: At, checkout: Checkout) -> Step {
    Transition::next(at(to, checkout))
}

fn missing(what: &str) -> StepError {
    StepError::terminal(format!("the journey lost its {what}: repair the state"))
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

impl Checkout {
    fn cart(&self) -> Result<&handover_adapters::mobily::CartId, StepError> {
        self.cart.as_ref().ok_or_else(|| missing("shopping cart"))
    }

    fn line(&self) -> Result<&Msisdn, StepError> {
        self.line
            .as_ref()
            .map(Sensitive::expose)
            .ok_or_else(|| missing("line number"))
    }

    fn order(&self) -> Result<&PlacedOrder, StepError> {
        self.order.as_ref().ok_or_else(|| missing("order"))
    }

    fn postpaid(&self) -> bool {
        self.payment_type == Some(PaymentType::Postpaid)
    }

    fn order_type(&self) -> OrderType {
        match self.number.expose() {
            NumberChoice::Mnp { .. } => OrderType::Mnp,
            NumberChoice::New => OrderType::New,
        }
    }

    /// After step 7 (or 6 for a port-in): step 8 for postpaid, else 9.
    fn after_number(&self) -> At {
        if self.postpaid() {
            At::OverdueBills
        } else {
            At::PackageEligibility
        }
    }
}

fn await_otp(
    checkout: Checkout,
    otp_id: OtpId,
    wrong: u32,
    resends: u32,
    ctx: &StepCtx<EsimCheckout>,
) -> Step {
    let within = ms(checkout.timeouts.otp_ms);
    let give_up = at(
        At::GiveUp {
            reason: format!(
                "the customer did not enter the one-time code within {}",
                secs(within)
            ),
        },
        checkout.clone(),
    );
    Transition::wait(
        at(
            At::AwaitOtp {
                otp_id,
                wrong,
                resends,
            },
            checkout,
        ),
        Wait::for_signal(OTP_SIGNAL)
            .until(ctx.after(within))
            .on_timeout(give_up),
    )
}

fn await_nafath(
    checkout: Checkout,
    transaction: NafathTransactionId,
    random: String,
    polls: u32,
    deadline: handover_engine::Timestamp,
    ctx: &StepCtx<EsimCheckout>,
) -> Step {
    let poll = poll_interval(polls, ms(checkout.timeouts.nafath_poll_ms), NAFATH_POLL_MAX);
    let wake = ctx.after(poll).min(deadline);
    // No `on_timeout`: the timer re-runs the step, which polls `tokeninfo`.
    Transition::wait(
        at(
            At::AwaitNafath {
                transaction,
                random,
                polls,
                deadline,
            },
            checkout,
        ),
        Wait::for_signal(NAFATH_SIGNAL).until(wake),
    )
}

fn correlate(
    ctx: &mut StepCtx<EsimCheckout>,
    namespace: &str,
    value: &str,
) -> Result<(), StepError> {
    ctx.correlate(CorrelationKey::new(namespace, value).map_err(StepError::terminal)?)
}

/// Runs the step for `state`.
pub(super) async fn run(
    client: &Arc<MobilyClient>,
    state: State,
    ctx: &mut StepCtx<EsimCheckout>,
) -> Result<Step, StepError> {
    let State { at: here, checkout } = state;
    let mut c = checkout;
    match here {
        // 1, 2. The product must be sellable; the JWT is obtained (and cached).
        At::Products => {
            let Some(product) = catalog::sellable(client, &c.product).await.map_err(se)? else {
                return Ok(Transition::fail(format!(
                    "Mobily does not sell {} (not in the product list)",
                    c.product
                )));
            };
            client.authenticate().await.map_err(se)?;
            ctx.note(format!(
                "{} ({:?}, SAR {})",
                product.name,
                product.payment_type,
                product.price.to_wire()
            ));
            c.payment_type = Some(product.payment_type);
            Ok(next(At::Cart, c))
        }
        // 3. Details, cart, qualification.
        At::Cart => {
            let details = client.product_details(&c.product).await.map_err(se)?;
            if !details.sim_types.contains(&SimType::Esim) {
                return Ok(Transition::fail(format!(
                    "{} is not offered as an eSIM",
                    c.product
                )));
            }
            // An orphan cart from an earlier attempt costs nothing.
            let cart = client.create_cart(&c.product).await.map_err(se)?;
            client
                .update_and_validate(&cart.id, c.national_id.expose())
                .await
                .map_err(se)?;
            c.cart = Some(cart.id);
            Ok(next(At::NumberOption, c))
        }
        // 4. Number option.
        At::NumberOption => {
            let cart = c.cart()?.clone();
            let structure = client.checkout_structure(&cart).await.map_err(se)?;
            let unknown = structure.unknown_required();
            if !unknown.is_empty() {
                return Err(StepError::terminal(format!(
                    "Mobily's checkout requires sections this journey does not know: {}",
                    unknown.join(", ")
                )));
            }
            client
                .capture(&cart, &CaptureData::NumberOption(c.number.expose().clone()))
                .await
                .map_err(se)?;
            Ok(next(At::SimOption, c))
        }
        // 5. SIM option.
        At::SimOption => {
            let cart = c.cart()?.clone();
            client
                .capture(
                    &cart,
                    &CaptureData::SimOption {
                        sim_type: SimType::Esim,
                    },
                )
                .await
                .map_err(se)?;
            Ok(next(At::TccEligibility, c))
        }
        // 6. TCC eligibility.
        At::TccEligibility => {
            let payment_type = c.payment_type.ok_or_else(|| missing("payment type"))?;
            match client
                .tcc_eligibility(c.national_id.expose(), payment_type)
                .await
                .map_err(se)?
            {
                EligibilityOutcome::NotEligible { code, reason } => {
                    return Ok(Transition::fail(format!(
                        "not eligible (TCC {code}): {reason}"
                    )));
                }
                EligibilityOutcome::Eligible {
                    active_lines,
                    max_lines,
                } => ctx.note(format!(
                    "eligible: {} of {} lines",
                    active_lines.map_or("?".into(), |n| n.to_string()),
                    max_lines.map_or("?".into(), |n| n.to_string())
                )),
            }
            let known = client
                .customer_products(&CustomerLookup::NationalId(c.national_id.expose().clone()))
                .await
                .map_err(se)?;
            ctx.note(format!(
                "installed base: {} ({} Mobily lines)",
                if known.exists {
                    "known customer"
                } else {
                    "new customer"
                },
                known.lines.len()
            ));
            let cart = c.cart()?.clone();
            client
                .capture(&cart, &CaptureData::TccEligibilityCheck { eligible: true })
                .await
                .map_err(se)?;
            if let NumberChoice::Mnp { msisdn, .. } = c.number.expose() {
                c.line = Some(Sensitive::new(msisdn.clone()));
                let to = c.after_number();
                Ok(next(to, c))
            } else {
                Ok(next(At::PickNumber { tries: 0 }, c))
            }
        }
        // 7. Availability check: the choice is checkpointed before the
        // reservation, so a retried reservation reserves the same number.
        At::PickNumber { tries } => {
            if tries >= MAX_NUMBER_TRIES {
                return Ok(Transition::fail(format!(
                    "no number could be reserved: {tries} chosen numbers were taken by others"
                )));
            }
            let free = client
                .available_numbers(NumberCategory::Standard, NUMBERS_OFFERED)
                .await
                .map_err(se)?;
            if free.is_empty() {
                return Err(StepError::retryable("Mobily has no free number right now"));
            }
            // Concurrent checkouts see the same list: spread their choices
            // (by journey) so they rarely race for one number.
            let spread = ctx.journey_id().as_uuid().as_u128() as usize;
            let first = free[(spread + tries as usize) % free.len()].clone();
            Ok(next(
                At::ReserveNumber {
                    msisdn: Sensitive::new(first),
                    tries: tries + 1,
                },
                c,
            ))
        }
        // 7. Reservation (effect: the step's key; a re-send replays it).
        At::ReserveNumber { msisdn, tries } => {
            let cart = c.cart()?.clone();
            let key = mobily_key(&ctx.idempotency_key())?;
            if ctx.may_have_run_before() {
                ctx.note("re-sending the reservation with the same key (Mobily replays the first)");
            }
            let reservation = match client.reserve_number(msisdn.expose(), &cart, &key).await {
                Ok(r) => r,
                Err(e) if e.refusal_code() == Some(codes::NUMBER_UNAVAILABLE) => {
                    ctx.note(format!(
                        "{} was taken meanwhile: choosing another",
                        msisdn.expose()
                    ));
                    return Ok(next(At::PickNumber { tries }, c));
                }
                Err(e) => return Err(se(e)),
            };
            client
                .capture(
                    &cart,
                    &CaptureData::NumberReservation {
                        msisdn: reservation.msisdn.clone(),
                        reservation_id: reservation.id,
                    },
                )
                .await
                .map_err(se)?;
            ctx.note(format!("reserved {}", reservation.msisdn));
            c.line = Some(Sensitive::new(reservation.msisdn));
            let to = c.after_number();
            Ok(next(to, c))
        }
        // 8. Overdue bills (postpaid).
        At::OverdueBills => {
            match client.dues(c.national_id.expose()).await.map_err(se)? {
                DuesOutcome::DuesOwed { amount, message } => {
                    return Ok(Transition::fail(format!(
                        "overdue bills{}: {message}",
                        amount.map_or(String::new(), |a| format!(" of SAR {}", a.to_wire()))
                    )));
                }
                DuesOutcome::NoDues => {}
            }
            let cart = c.cart()?.clone();
            client
                .capture(&cart, &CaptureData::OverdueBills { has_dues: false })
                .await
                .map_err(se)?;
            Ok(next(At::PackageEligibility, c))
        }
        // 9. Package eligibility.
        At::PackageEligibility => {
            match client
                .package_eligibility(c.national_id.expose(), &c.product)
                .await
                .map_err(se)?
            {
                PackageEligibility::NotEligible { code, reason } => Ok(Transition::fail(format!(
                    "not eligible for {} ({code}): {reason}",
                    c.product
                ))),
                PackageEligibility::Eligible if c.postpaid() => Ok(next(At::SecurityDeposit, c)),
                PackageEligibility::Eligible => Ok(next(At::SendOtp, c)),
            }
        }
        // 10. Security deposit (postpaid): the customer must accept it.
        At::SecurityDeposit => {
            let cart = c.cart()?.clone();
            match client
                .security_deposit(c.national_id.expose(), &c.product)
                .await
                .map_err(se)?
            {
                DepositOutcome::NotRequired => {
                    let zero = handover_adapters::mobily::Sar::halalas(0).map_err(se)?;
                    client
                        .capture(
                            &cart,
                            &CaptureData::SecurityDeposit {
                                accepted: true,
                                amount: zero,
                            },
                        )
                        .await
                        .map_err(se)?;
                    Ok(next(At::SendOtp, c))
                }
                DepositOutcome::Required { amount } => {
                    let within = ms(c.timeouts.deposit_ms);
                    ctx.note(format!(
                        "deposit of SAR {}: waiting for the customer's acceptance",
                        amount.to_wire()
                    ));
                    let give_up = at(
                        At::GiveUp {
                            reason: format!(
                                "the customer did not accept the security deposit within {}",
                                secs(within)
                            ),
                        },
                        c.clone(),
                    );
                    Ok(Transition::wait(
                        at(At::AwaitDeposit { amount }, c),
                        Wait::for_signal(ACCEPT_DEPOSIT_SIGNAL)
                            .until(ctx.after(within))
                            .on_timeout(give_up),
                    ))
                }
            }
        }
        At::AwaitDeposit { amount } => {
            let Some(answer) = ctx.signal_payload::<DepositAnswer>(ACCEPT_DEPOSIT_SIGNAL)? else {
                return Err(StepError::terminal("await-deposit ran without its signal"));
            };
            if !answer.accepted {
                return Ok(Transition::fail(format!(
                    "the customer declined the security deposit of SAR {}",
                    amount.to_wire()
                )));
            }
            let cart = c.cart()?.clone();
            client
                .capture(
                    &cart,
                    &CaptureData::SecurityDeposit {
                        accepted: true,
                        amount,
                    },
                )
                .await
                .map_err(se)?;
            Ok(next(At::SendOtp, c))
        }
        // 11. OTP: generation (a repeat supersedes the earlier code).
        At::SendOtp => {
            let sent = client
                .generate_otp(c.contact.expose(), c.national_id.expose(), c.language)
                .await
                .map_err(se)?;
            ctx.note(format!("one-time code sent to {}", c.contact.expose()));
            Ok(await_otp(c, sent.otp_id, 0, 0, ctx))
        }
        At::AwaitOtp {
            otp_id,
            wrong,
            resends,
        } => {
            let Some(answer) = ctx.signal_payload::<OtpAnswer>(OTP_SIGNAL)? else {
                return Err(StepError::terminal("await-otp ran without its signal"));
            };
            let validation = match OtpCode::parse(&answer.code) {
                // Not even the shape of a code: a wrong try, without asking Mobily.
                Err(_) => OtpValidation::Wrong { attempts_left: 1 },
                Ok(code) => client
                    .validate_otp(&otp_id, c.contact.expose(), &code)
                    .await
                    .map_err(se)?,
            };
            match validation {
                OtpValidation::Verified => {
                    let cart = c.cart()?.clone();
                    client
                        .capture(
                            &cart,
                            &CaptureData::OtpVerification {
                                msisdn: c.contact.expose().clone(),
                                otp_id,
                                verified: true,
                            },
                        )
                        .await
                        .map_err(se)?;
                    Ok(next(At::NafathInitiate, c))
                }
                OtpValidation::Wrong { attempts_left } => {
                    let wrong = wrong + 1;
                    if wrong >= MAX_WRONG_OTP {
                        return Ok(Transition::fail(format!(
                            "wrong one-time code entered {wrong} times"
                        )));
                    }
                    ctx.note(format!("wrong code ({wrong} of {MAX_WRONG_OTP})"));
                    if attempts_left == 0 {
                        Ok(next(
                            At::ResendOtp {
                                otp_id,
                                wrong,
                                resends,
                            },
                            c,
                        ))
                    } else {
                        Ok(await_otp(c, otp_id, wrong, resends, ctx))
                    }
                }
                OtpValidation::Expired | OtpValidation::Locked => {
                    ctx.note(format!("code {validation:?}: re-sending"));
                    Ok(next(
                        At::ResendOtp {
                            otp_id,
                            wrong,
                            resends,
                        },
                        c,
                    ))
                }
            }
        }
        At::ResendOtp {
            otp_id,
            wrong,
            resends,
        } => {
            if resends >= MAX_OTP_RESENDS {
                return Ok(Transition::fail(format!(
                    "the one-time code was re-sent {resends} times without being verified"
                )));
            }
            let sent = match client.regenerate_otp(&otp_id, c.contact.expose()).await {
                Ok(sent) => sent,
                Err(e) if e.refusal_code() == Some(codes::OTP_TOO_MANY_RESENDS) => {
                    return Ok(Transition::fail(format!("one-time code: {e}")));
                }
                Err(e) => return Err(se(e)),
            };
            ctx.note(format!("code re-sent (#{})", resends + 1));
            Ok(await_otp(c, sent.otp_id, wrong, resends + 1, ctx))
        }
        // 12. Nafath: initiate with our webhook and our correlation id.
        At::NafathInitiate => {
            let request = NafathRequestId::new(ctx.stable_key("nafath").as_str()).map_err(se)?;
            let challenge = match client
                .nafath_initiate(c.national_id.expose(), &request)
                .await
            {
                Ok(challenge) => challenge,
                Err(e) if e.refusal_code() == Some(codes::NAFATH_NOT_REGISTERED) => {
                    return Ok(Transition::fail(format!("Nafath: {e}")));
                }
                Err(e) => return Err(se(e)),
            };
            correlate(ctx, NAFATH_NAMESPACE, request.as_str())?;
            let within = ms(c.timeouts.nafath_ms).min(challenge.expires_in.max(ms(1_000)));
            let deadline = ctx.after(within);
            ctx.note(format!(
                "Nafath request sent; the customer picks {} in the app",
                challenge.random
            ));
            Ok(await_nafath(
                c,
                challenge.transaction_id,
                challenge.random,
                0,
                deadline,
                ctx,
            ))
        }
        At::AwaitNafath {
            transaction,
            random,
            polls,
            deadline,
        } => {
            let hook = ctx.signal_payload::<NafathPayload>(NAFATH_SIGNAL)?;
            let status = match hook {
                Some(hook) if hook.transaction_id == transaction.as_str() => {
                    ctx.note("Nafath webhook received");
                    hook.status
                }
                // A webhook of an earlier initiate (its answer was lost), or
                // the webhook is late: ask Nafath about ours.
                _ => client.nafath_status(&transaction).await.map_err(se)?,
            };
            match status {
                NafathStatus::Approved => {
                    let cart = c.cart()?.clone();
                    client
                        .capture(
                            &cart,
                            &CaptureData::NafathVerification {
                                transaction_id: transaction,
                                status,
                            },
                        )
                        .await
                        .map_err(se)?;
                    Ok(next(At::TccRegister, c))
                }
                NafathStatus::Rejected => Ok(Transition::fail(
                    "the customer rejected the Nafath identity check",
                )),
                NafathStatus::Expired => Ok(Transition::fail(
                    "the Nafath identity check expired without an answer",
                )),
                NafathStatus::Waiting if ctx.now() >= deadline => Ok(Transition::fail(format!(
                    "Nafath: no answer within {} ({} polls)",
                    secs(ms(c.timeouts.nafath_ms)),
                    polls + 1
                ))),
                NafathStatus::Waiting => Ok(await_nafath(
                    c,
                    transaction,
                    random,
                    polls + 1,
                    deadline,
                    ctx,
                )),
            }
        }
        // 13. eSIM profile, TCC registration (effect: the step's key).
        At::TccRegister => {
            let line = c.line()?.clone();
            let iccid = client.sim_details(&line).await.map_err(se)?.iccid;
            let key = mobily_key(&ctx.idempotency_key())?;
            let registration = TccRegistration {
                national_id: c.national_id.expose().clone(),
                msisdn: line,
                iccid: iccid.clone(),
            };
            let registered = match client.tcc_register(&registration, &key).await {
                Ok(r) => r,
                Err(e) if e.refusal_code() == Some(codes::TCC_REGISTRATION_REFUSED) => {
                    return Ok(Transition::fail(format!("TCC registration refused: {e}")));
                }
                Err(e) => return Err(se(e)),
            };
            let cart = c.cart()?.clone();
            client
                .capture(
                    &cart,
                    &CaptureData::Sim {
                        iccid: iccid.clone(),
                        registration_id: registered.registration_id,
                    },
                )
                .await
                .map_err(se)?;
            c.iccid = Some(iccid);
            Ok(next(At::DeliveryDetails, c))
        }
        // 14. Contact details; the checkout must now be complete.
        At::DeliveryDetails => {
            let cart = c.cart()?.clone();
            client
                .capture(
                    &cart,
                    &CaptureData::DeliveryDetails(c.details.expose().clone()),
                )
                .await
                .map_err(se)?;
            let missing = client
                .checkout_structure(&cart)
                .await
                .map_err(se)?
                .missing();
            if !missing.is_empty() {
                return Err(StepError::terminal(format!(
                    "the checkout is still missing {missing:?}"
                )));
            }
            Ok(next(At::PostOrder, c))
        }
        // 15. The order (effect: the journey's order key, also externalOrderId).
        At::PostOrder => {
            let cart = c.cart()?.clone();
            let key = mobily_key(&ctx.stable_key("order"))?;
            let order_type = c.order_type();
            if ctx.may_have_run_before() {
                let found = client
                    .order_inquiry(&OrderLookup::ExternalOrderId(key.clone()))
                    .await
                    .map_err(se)?;
                match found.first() {
                    Some(o) if o.status == OrderState::Cancelled => {
                        return Err(StepError::terminal(format!(
                            "order {} for this journey is already cancelled",
                            o.order_id
                        )));
                    }
                    Some(o) => ctx.note(format!(
                        "reconciled: order {} was already posted; the re-send replays it",
                        o.order_id
                    )),
                    None => ctx.note("reconciled: no order yet for this journey"),
                }
            }
            let posted = client
                .post_order(&cart, order_type, &key)
                .await
                .map_err(se)?;
            ctx.push_compensation(Compensation::CancelOrder {
                order_id: posted.order_id.clone(),
                order_type,
            })?;
            correlate(ctx, ORDER_NAMESPACE, posted.order_id.as_str())?;
            ctx.note(format!(
                "order {} posted, SAR {}",
                posted.order_id,
                posted.total.to_wire()
            ));
            c.order = Some(PlacedOrder {
                id: posted.order_id,
                order_type,
                total: posted.total,
            });
            Ok(next(At::CreatePayment, c))
        }
        // 15. Payment (effect: the journey's payment key = paymentTransId).
        At::CreatePayment => create_payment(client, c, ctx).await,
        At::AwaitThreeDs { payment_id, .. } => {
            let Some(back) = ctx.signal_payload::<ThreeDsPayload>(THREE_DS_SIGNAL)? else {
                return Err(StepError::terminal(
                    "await-3ds-return ran without its signal",
                ));
            };
            if back.result != "success" {
                return Ok(Transition::fail(
                    "3-D Secure failed: the bank did not authenticate the card",
                ));
            }
            Ok(next(At::ConfirmPayment { payment_id }, c))
        }
        At::ConfirmPayment { payment_id } => {
            let key = mobily_key(&ctx.stable_key("payment"))?;
            if ctx.may_have_run_before()
                && let PaymentState::Found {
                    status: PaymentStatus::Authorised,
                    ..
                } = client.payment_status(&key).await.map_err(se)?
            {
                ctx.note("reconciled: the payment is already authorised");
                c.payment_id = Some(payment_id);
                return Ok(next(At::OrderSubmitted, c));
            }
            match client
                .confirm_payment(&payment_id, &key)
                .await
                .map_err(se)?
            {
                ConfirmPaymentOutcome::Authorised { payment_id } => {
                    c.payment_id = Some(payment_id);
                    Ok(next(At::OrderSubmitted, c))
                }
                ConfirmPaymentOutcome::Pending3ds => Err(StepError::retryable(
                    "the gateway has not seen the end of 3-D Secure yet",
                )),
                ConfirmPaymentOutcome::Declined { code, message } => Ok(Transition::fail(format!(
                    "payment declined ({code}): {message}"
                ))),
            }
        }
        // 16. Mobily fulfils: record where the order stands.
        At::OrderSubmitted => {
            let order = c.order()?.clone();
            let found = client
                .order_inquiry(&OrderLookup::OrderId(order.id.clone()))
                .await
                .map_err(se)?;
            let Some(info) = found.into_iter().find(|o| o.order_id == order.id) else {
                return Err(StepError::retryable(format!(
                    "order {} is not tracked yet",
                    order.id
                )));
            };
            if matches!(info.status, OrderState::Cancelled | OrderState::Failed) {
                return Ok(Transition::fail(format!(
                    "Mobily reports order {} as {:?}",
                    order.id, info.status
                )));
            }
            ctx.note(format!("order {} is {:?}", order.id, info.status));
            let deadline = ctx.after(ms(c.timeouts.qr_deadline_ms));
            Ok(next(At::QrCode { polls: 0, deadline }, c))
        }
        // 17. QR code, re-inquired on durable timers.
        At::QrCode { polls, deadline } => {
            let order = c.order()?.clone();
            let line = c.line()?.clone();
            match client.qr_code(&order.id, &line).await.map_err(se)? {
                QrOutcome::Ready(qr) => Ok(Transition::complete(EsimCheckoutOutput {
                    order_id: order.id.as_str().to_owned(),
                    msisdn: Sensitive::new(line.as_str().to_owned()),
                    iccid: qr.iccid.as_str().to_owned(),
                    activation_code: Sensitive::new(qr.activation_code().to_owned()),
                    paid: order.total.to_wire(),
                })),
                QrOutcome::NotReady { .. } if ctx.now() >= deadline => {
                    Ok(Transition::fail(format!(
                        "the eSIM QR code was not ready within {} ({} inquiries)",
                        secs(ms(c.timeouts.qr_deadline_ms)),
                        polls + 1
                    )))
                }
                QrOutcome::NotReady { retry_after } => {
                    let wait = poll_interval(polls, ms(c.timeouts.qr_poll_ms), QR_POLL_MAX)
                        .max(retry_after.unwrap_or_default());
                    let wake = ctx.after(wait).min(deadline);
                    Ok(Transition::sleep_until(
                        wake,
                        at(
                            At::QrCode {
                                polls: polls + 1,
                                deadline,
                            },
                            c,
                        ),
                    ))
                }
            }
        }
        At::GiveUp { reason } => Ok(Transition::fail(reason)),
    }
}

/// Step 15's payment: reconcile by the payment inquiry when an earlier
/// attempt may have created it, else session + createPayment.
async fn create_payment(
    client: &Arc<MobilyClient>,
    mut c: Checkout,
    ctx: &mut StepCtx<EsimCheckout>,
) -> Result<Step, StepError> {
    let order = c.order()?.clone();
    let key = mobily_key(&ctx.stable_key("payment"))?;
    let void = Compensation::VoidPayment {
        amount: order.total,
    };
    if ctx.may_have_run_before() {
        match client.payment_status(&key).await.map_err(se)? {
            PaymentState::NotFound => ctx.note("reconciled: no payment yet"),
            PaymentState::Found {
                payment_id, status, ..
            } => {
                ctx.note(format!("reconciled: payment {payment_id} is {status:?}"));
                match status {
                    PaymentStatus::Authorised => {
                        ctx.push_compensation(void)?;
                        return Ok(next(At::ConfirmPayment { payment_id }, c));
                    }
                    PaymentStatus::Pending3ds => {
                        // The bank page address is in the lost answer; the
                        // customer's app still has the one it was given, or
                        // the gateway's page by payment id.
                        ctx.push_compensation(void)?;
                        correlate(ctx, PAYMENT_NAMESPACE, key.as_str())?;
                        return Ok(await_three_ds(c, payment_id, None, ctx));
                    }
                    PaymentStatus::Declined => {
                        return Ok(Transition::fail("payment declined"));
                    }
                    PaymentStatus::Voided => {
                        return Err(StepError::terminal(
                            "this journey's payment is already voided",
                        ));
                    }
                }
            }
        }
    }
    let session = client
        .create_session(&order.id, order.total)
        .await
        .map_err(se)?;
    let request = PaymentRequest {
        session_id: session.session_id,
        order_id: order.id.clone(),
        amount: order.total,
    };
    let outcome = client.create_payment(&request, &key).await.map_err(se)?;
    match outcome {
        PaymentOutcome::Declined { code, message } => Ok(Transition::fail(format!(
            "payment declined ({code}): {message}"
        ))),
        PaymentOutcome::Authorised { payment_id } => {
            ctx.push_compensation(void)?;
            ctx.note("payment authorised without a challenge");
            c.payment_id = Some(payment_id.clone());
            Ok(next(At::ConfirmPayment { payment_id }, c))
        }
        PaymentOutcome::Requires3ds {
            payment_id,
            redirect_url,
        } => {
            ctx.push_compensation(void)?;
            correlate(ctx, PAYMENT_NAMESPACE, key.as_str())?;
            ctx.note("3-D Secure: the customer is sent to the bank page");
            Ok(await_three_ds(
                c,
                payment_id,
                Some(redirect_url.to_string()),
                ctx,
            ))
        }
    }
}

fn await_three_ds(
    checkout: Checkout,
    payment_id: handover_adapters::mobily::PaymentId,
    redirect_url: Option<String>,
    ctx: &StepCtx<EsimCheckout>,
) -> Step {
    let within = ms(checkout.timeouts.three_ds_ms);
    let give_up = at(
        At::GiveUp {
            reason: format!(
                "the customer did not come back from the 3-D Secure page within {}",
                secs(within)
            ),
        },
        checkout.clone(),
    );
    Transition::wait(
        at(
            At::AwaitThreeDs {
                payment_id,
                redirect_url,
            },
            checkout,
        ),
        Wait::for_signal(THREE_DS_SIGNAL)
            .until(ctx.after(within))
            .on_timeout(give_up),
    )
}

/// Runs one compensation (idempotent: re-run after a crash or a retry).
pub(super) async fn compensate(
    client: &Arc<MobilyClient>,
    compensation: Compensation,
    ctx: &mut CompensationCtx,
) -> Result<(), StepError> {
    match compensation {
        Compensation::CancelOrder {
            order_id,
            order_type,
        } => {
            if ctx.may_have_run_before() {
                let found = client
                    .order_inquiry(&OrderLookup::OrderId(order_id.clone()))
                    .await
                    .map_err(se)?;
                if found
                    .iter()
                    .any(|o| o.order_id == order_id && o.status == OrderState::Cancelled)
                {
                    return Ok(());
                }
            }
            let key = mobily_key(&ctx.idempotency_key())?;
            client
                .cancel(&order_id, order_type, CANCEL_REASON, &key)
                .await
                .map_err(se)?;
            Ok(())
        }
        Compensation::VoidPayment { amount } => {
            let payment = mobily_key(&ctx.stable_key("payment"))?;
            if ctx.may_have_run_before() {
                match client.payment_status(&payment).await.map_err(se)? {
                    PaymentState::NotFound
                    | PaymentState::Found {
                        status: PaymentStatus::Voided | PaymentStatus::Declined,
                        ..
                    } => return Ok(()),
                    PaymentState::Found { .. } => {}
                }
            }
            let key = mobily_key(&ctx.idempotency_key())?;
            match client
                .void_payment(&payment, amount, &key)
                .await
                .map_err(se)?
            {
                // Never authorised (3-D Secure not finished) or already voided.
                VoidOutcome::Voided | VoidOutcome::NothingToVoid { .. } => Ok(()),
            }
        }
    }
}
