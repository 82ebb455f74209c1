//! J5. Mobitel carrier billing, Charging as a Service (`mobitel-caas.txt`).
//!
//! Ask Mobitel to charge a customer's line (`chargRequest`), which shows
//! the customer a USSD pop-up; once they approve, `confirm` completes the
//! charge.
//!
//! | state | spec step | what it does |
//! |---|---|---|
//! | [`State::Request`] | "`POST /mobext/mapi/caas/chargRequest` ... returns `reference`" | sends the charge request (no money moves yet), keeps the reference |
//! | [`State::AwaitConsent`] | "`confirm {"ref"}` succeeds once approved. Not yet approved: confirm again on a schedule until the consent window closes" | confirms on a growing durable-timer schedule until approved, declined, expired, or our consent window closes |
//! | (back to [`State::Request`]) | "re-initiate the charge no sooner than 2 minutes later, a bounded number of times" | sleeps [`REINITIATE_GAP`] (durable), then requests again; after `max_initiations` it fails with the reason |
//!
//! # Never two live charges, never charged twice
//!
//! Money moves only when **we** confirm a reference the customer approved,
//! and the journey only ever confirms its latest reference. Mobitel offers no
//! status query for a charge request, so when a request's outcome is unknown
//! (504, timeout, a crash between sending it and recording the reference)
//! the journey cannot learn the reference of the pop-up it may have caused.
//! It then waits the [`REINITIATE_GAP`] (durably) before asking again: by then
//! that pop-up's consent window has closed (Mobitel's re-initiation rule says
//! as much: "after 2 minutes"), so the customer never sees two live pop-ups
//! for one journey, and the unknown one can never be charged because nobody
//! confirms it. A re-run after a crash takes the same path (conservative: a
//! crash before the request was sent costs a 2-minute wait, never a double
//! pop-up). Confirm is repeated freely: the adapter documents (and the
//! simulator implements) that confirming an approved reference again answers
//! success without a second charge.
//!
//! # Decisions where the document is silent
//!
//! - **Declined** ends the journey: the customer said no; prompting them
//!   again would be harassment. Only "no answer" (Mobitel's `expired`, or our
//!   consent window closing with the request still pending) re-initiates.
//! - The **consent window** is ours to set (default 60 s, like the
//!   simulator's; Mobitel documents none). Confirms start after
//!   `first_confirm_ms` (default 5 s) and double up to 20 s; one last confirm
//!   runs when the window closes.
//! - **Re-initiations**: `max_initiations` charge requests in all (default 3,
//!   at most 5), at least [`REINITIATE_GAP`] (2 minutes) apart.
//! - A `2002` refusal ("re-initiated too soon") is not terminal: the journey
//!   waits the gap and asks again (bounded by [`MAX_GAP_WAITS`]).
//! - Insufficient balance, a number that cannot be charged, 400 and 401 fail
//!   the journey with the reason.
//!
//! Business key: the receiver's number (masked wherever shown).

use std::sync::Arc;
use std::time::Duration;

use handover_adapters::mobitel::{
    Amount, ChargeReference, ChargeRequest, Receiver, status as mobitel_status,
};
use handover_adapters::{ConfirmOutcome, ErrorClass, MobitelClient, ProviderError};
use handover_engine::{
    BusinessKey, InvalidInput, NoCompensation, Registry, Start, StepCtx, StepError, StepInfo,
    Timestamp, Transition, Wake, Workflow,
};
use serde::{Deserialize, Serialize};

use crate::Providers;
use crate::common::{poll_interval, step_error};

/// The shortest time between two charge requests of one journey ("you can
/// re-initiate the process by calling this service after 2 minutes").
pub const REINITIATE_GAP: Duration = Duration::from_secs(120);
/// Waits of [`REINITIATE_GAP`] after unknown outcomes or "too soon"
/// refusals, per charge request, before the journey gives up.
pub const MAX_GAP_WAITS: u32 = 3;
const DEFAULT_MAX_INITIATIONS: u32 = 3;
const MAX_INITIATIONS: u32 = 5;
const DEFAULT_CONSENT_WINDOW: Duration = Duration::from_secs(60);
const DEFAULT_FIRST_CONFIRM: Duration = Duration::from_secs(5);
const MAX_CONFIRM_INTERVAL: Duration = Duration::from_secs(20);

/// Registers the journey when its provider is configured.
pub fn register(registry: &mut Registry, providers: &Providers) {
    if let Some(client) = &providers.mobitel {
        registry.register(MobitelBilling::new(client.clone()));
    }
}

/// The Mobitel carrier billing journey.
#[derive(Debug, Clone)]
pub struct MobitelBilling {
    client: Arc<MobitelClient>,
}

impl MobitelBilling {
    /// The journey, charging with `client`.
    pub fn new(client: Arc<MobitelClient>) -> Self {
        Self { client }
    }
}

/// What to charge.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MobitelBillingInput {
    /// Rupees, `"5"` or `"5.50"`.
    pub amount: String,
    /// The customer's Mobitel number (`07XXXXXXXX`, `947...`, `+947...`).
    pub receiver: String,
    /// Charge requests in all before giving up (default 3, 1 to 5).
    #[serde(default)]
    pub max_initiations: Option<u32>,
    /// How long the customer has to approve one pop-up, in seconds (default
    /// 60, 10 to 600).
    #[serde(default)]
    pub consent_window_secs: Option<u64>,
    /// First confirm after this many ms (default 5000, 100 to 60000); doubles
    /// up to 20 s.
    #[serde(default)]
    pub first_confirm_ms: Option<u64>,
}

/// The charge, validated. `receiver` is masked wherever state is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// The amount, as sent (`"5"`, `"5.50"`).
    pub amount: String,
    /// `07XXXXXXXX`.
    pub receiver: String,
    /// Charge requests in all.
    pub max_initiations: u32,
    /// Our consent window per request, ms.
    pub consent_window_ms: u64,
    /// First confirm after, ms.
    pub first_confirm_ms: u64,
}

impl Charge {
    fn request(&self) -> Result<ChargeRequest, ProviderError> {
        Ok(ChargeRequest {
            amount: Amount::parse(&self.amount)?,
            receiver: Receiver::parse(&self.receiver)?,
        })
    }

    fn confirm_interval(&self, confirms: u32) -> Duration {
        poll_interval(
            confirms,
            Duration::from_millis(self.first_confirm_ms),
            MAX_CONFIRM_INTERVAL.max(Duration::from_millis(self.first_confirm_ms)),
        )
    }
}

/// Where the journey is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Send charge request number `initiation` (from 1).
    Request {
        /// What to charge.
        charge: Charge,
        /// Which charge request this is.
        initiation: u32,
        /// Gap waits taken for this request (unknown outcomes, "too soon").
        gap_waits: u32,
    },
    /// The pop-up is on the customer's phone: confirm until approved.
    AwaitConsent {
        /// What to charge.
        charge: Charge,
        /// Which charge request this is.
        initiation: u32,
        /// Mobitel's reference of this request.
        reference: String,
        /// Confirms so far.
        confirms: u32,
        /// When our consent window closes.
        window_ends: Timestamp,
    },
}

/// A completed charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MobitelBillingOutput {
    /// Mobitel's reference of the approved charge.
    pub reference: String,
    /// The amount charged.
    pub amount: String,
    /// Charge requests it took.
    pub initiations: u32,
    /// Confirms of the approved request.
    pub confirms: u32,
}

fn refusal_reason(e: &ProviderError) -> String {
    let code = match e {
        ProviderError::Refused { code, .. } => code.as_deref(),
        _ => None,
    };
    let what = match code {
        Some(mobitel_status::INSUFFICIENT_BALANCE) => {
            "Mobitel refused the charge: the customer's balance does not cover it"
        }
        Some(mobitel_status::NOT_ELIGIBLE) => {
            "Mobitel refused the charge: this number cannot be charged by carrier billing"
        }
        _ => match e {
            ProviderError::Auth { .. } => {
                "Mobitel refused our client id: check the x-ibm-client-id configuration"
            }
            _ => "Mobitel refused the charge",
        },
    };
    format!("{what} ({e})")
}

fn is_too_soon(e: &ProviderError) -> bool {
    matches!(e, ProviderError::Refused { code: Some(code), .. } if code == mobitel_status::TOO_SOON)
}

impl MobitelBilling {
    /// Waits the re-initiation gap before sending request `initiation` again.
    fn gap_wait(
        ctx: &mut StepCtx<Self>,
        charge: Charge,
        initiation: u32,
        gap_waits: u32,
        why: &str,
    ) -> Transition<State, MobitelBillingOutput> {
        if gap_waits >= MAX_GAP_WAITS {
            return Transition::fail(format!(
                "Mobitel's charge request #{initiation} did not get through after {MAX_GAP_WAITS} \
                 waits of 2 minutes ({why}); nothing was charged"
            ));
        }
        ctx.note(format!(
            "charge request #{initiation}: {why}; waiting 2 minutes so any pop-up it caused has \
             closed before asking again"
        ));
        Transition::sleep_until(
            ctx.after(REINITIATE_GAP),
            State::Request {
                charge,
                initiation,
                gap_waits: gap_waits + 1,
            },
        )
    }

    /// The customer did not approve request `initiation` in time.
    fn not_approved(
        ctx: &mut StepCtx<Self>,
        charge: Charge,
        initiation: u32,
        why: &str,
    ) -> Transition<State, MobitelBillingOutput> {
        if initiation >= charge.max_initiations {
            return Transition::fail(format!(
                "the customer did not approve the USSD prompt: {initiation} charge request(s), \
                 none approved ({why}); nothing was charged"
            ));
        }
        ctx.note(format!(
            "charge request #{initiation} not approved ({why}); re-initiating in 2 minutes"
        ));
        Transition::sleep_until(
            ctx.after(REINITIATE_GAP),
            State::Request {
                charge,
                initiation: initiation + 1,
                gap_waits: 0,
            },
        )
    }

    async fn request(
        &self,
        charge: Charge,
        initiation: u32,
        gap_waits: u32,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<State, MobitelBillingOutput>, StepError> {
        // A request whose outcome is unknown may have put a pop-up on the
        // phone whose reference we never got: let it close first.
        if ctx.previous_outcome_unknown() || *ctx.wake() == Wake::Recovered {
            return Ok(Self::gap_wait(
                ctx,
                charge,
                initiation,
                gap_waits,
                "the previous attempt's outcome is unknown",
            ));
        }
        let request = charge
            .request()
            .map_err(|e| StepError::terminal(e.to_string()))?;
        let requested = match self.client.charge_request(&request).await {
            Ok(requested) => requested,
            Err(e) if is_too_soon(&e) => {
                return Ok(Self::gap_wait(
                    ctx,
                    charge,
                    initiation,
                    gap_waits,
                    "Mobitel says it is too soon to re-initiate",
                ));
            }
            Err(e) if matches!(e.class(), ErrorClass::Terminal) => {
                return Ok(Transition::fail(refusal_reason(&e)));
            }
            Err(e) => return Err(step_error(&e)),
        };
        let reference = requested.reference.as_str().to_owned();
        ctx.note(format!(
            "charge request #{initiation} of {}: USSD prompt sent (reference {reference})",
            charge.max_initiations
        ));
        let window_ends = ctx.after(Duration::from_millis(charge.consent_window_ms));
        let first = ctx.after(charge.confirm_interval(0)).min(window_ends);
        Ok(Transition::sleep_until(
            first,
            State::AwaitConsent {
                charge,
                initiation,
                reference,
                confirms: 0,
                window_ends,
            },
        ))
    }

    async fn confirm(
        &self,
        charge: Charge,
        initiation: u32,
        reference: String,
        confirms: u32,
        window_ends: Timestamp,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<State, MobitelBillingOutput>, StepError> {
        let checked = ChargeReference::new(reference.clone())
            .map_err(|e| StepError::terminal(e.to_string()))?;
        let confirms = confirms + 1;
        match self.client.confirm(&checked).await {
            Ok(ConfirmOutcome::Approved { .. }) => Ok(Transition::complete(MobitelBillingOutput {
                reference,
                amount: charge.amount,
                initiations: initiation,
                confirms,
            })),
            Ok(ConfirmOutcome::Pending { .. }) => {
                let now = ctx.now();
                if now >= window_ends {
                    return Ok(Self::not_approved(
                        ctx,
                        charge,
                        initiation,
                        "no answer within the consent window",
                    ));
                }
                let next = ctx
                    .after(charge.confirm_interval(confirms))
                    .min(window_ends);
                Ok(Transition::sleep_until(
                    next,
                    State::AwaitConsent {
                        charge,
                        initiation,
                        reference,
                        confirms,
                        window_ends,
                    },
                ))
            }
            Ok(ConfirmOutcome::Expired { .. }) => Ok(Self::not_approved(
                ctx,
                charge,
                initiation,
                "Mobitel says the prompt expired",
            )),
            Ok(ConfirmOutcome::Declined { .. }) => Ok(Transition::fail(format!(
                "the customer declined the USSD prompt (reference {reference}); nothing was charged"
            ))),
            Err(e) if matches!(e.class(), ErrorClass::Terminal) => Ok(Transition::fail(format!(
                "Mobitel refused to confirm reference {reference} ({e})"
            ))),
            // Confirm is repeated safely: an approved reference confirmed
            // again answers success without a second charge.
            Err(e) => Err(step_error(&e)),
        }
    }
}

impl Workflow for MobitelBilling {
    const NAME: &'static str = "mobitel.carrier-billing";
    type Input = MobitelBillingInput;
    type State = State;
    type Output = MobitelBillingOutput;
    type Compensation = NoCompensation;

    fn start(&self, input: MobitelBillingInput) -> Result<Start<State>, InvalidInput> {
        let bad = |e: ProviderError| InvalidInput::new(e.to_string());
        let amount = Amount::parse(input.amount.trim()).map_err(bad)?;
        let receiver = Receiver::parse(&input.receiver).map_err(bad)?;
        let max_initiations = input.max_initiations.unwrap_or(DEFAULT_MAX_INITIATIONS);
        if !(1..=MAX_INITIATIONS).contains(&max_initiations) {
            return Err(InvalidInput::new(format!(
                "max_initiations must be between 1 and {MAX_INITIATIONS}"
            )));
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let consent_window_ms = input
            .consent_window_secs
            .map_or(ms(DEFAULT_CONSENT_WINDOW), |s| s.clamp(10, 600) * 1000);
        let first_confirm_ms = input
            .first_confirm_ms
            .unwrap_or(ms(DEFAULT_FIRST_CONFIRM))
            .clamp(100, 60_000);
        let charge = Charge {
            amount: amount.to_wire(),
            receiver: receiver.as_str().to_owned(),
            max_initiations,
            consent_window_ms,
            first_confirm_ms,
        };
        Ok(Start::new(State::Request {
            charge,
            initiation: 1,
            gap_waits: 0,
        })
        .business_key(BusinessKey::msisdn(receiver.as_str())))
    }

    fn step_info(&self, state: &State) -> StepInfo {
        match state {
            State::Request { .. } => {
                StepInfo::new("request-charge").timeout(Duration::from_secs(30))
            }
            State::AwaitConsent { charge, .. } => StepInfo::new("await-consent")
                .timeout(Duration::from_secs(30))
                .expected_within(Duration::from_millis(charge.consent_window_ms) + REINITIATE_GAP),
        }
    }

    async fn step(
        &self,
        state: State,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<State, MobitelBillingOutput>, StepError> {
        match state {
            State::Request {
                charge,
                initiation,
                gap_waits,
            } => self.request(charge, initiation, gap_waits, ctx).await,
            State::AwaitConsent {
                charge,
                initiation,
                reference,
                confirms,
                window_ends,
            } => {
                self.confirm(charge, initiation, reference, confirms, window_ends, ctx)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirms_grow_and_cap() {
        let charge = Charge {
            amount: "5".into(),
            receiver: "0712755777".into(),
            max_initiations: 3,
            consent_window_ms: 60_000,
            first_confirm_ms: 5_000,
        };
        let got: Vec<u64> = (0..4)
            .map(|n| charge.confirm_interval(n).as_secs())
            .collect();
        assert_eq!(got, vec![5, 10, 20, 20]);
    }

    #[test]
    fn the_receiver_is_masked_in_shown_state() {
        let state = State::Request {
            charge: Charge {
                amount: "5".into(),
                receiver: "0712755777".into(),
                max_initiations: 3,
                consent_window_ms: 60_000,
                first_confirm_ms: 5_000,
            },
            initiation: 1,
            gap_waits: 0,
        };
        let shown = handover_engine::redact(&serde_json::to_value(&state).unwrap()).to_string();
        assert!(!shown.contains("0712755777"), "{shown}");
    }
}
