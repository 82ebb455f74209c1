//! J3's durable types and its pure decisions: the input and its validation,
//! the states, the customer's correction (parsed from a signal), and what a
//! line status means for the journey. No I/O here, so every rule is tested
//! with plain values.
//!
//! # Durable contract
//! `State`, `PortInInput`, `PortInOutput`, `Correction` and the signal
//! payloads are stored: add fields with `#[serde(default)]`, never rename.

use std::fmt;
use std::time::Duration;

use handover_adapters::reach::{
    ActivationStatus, CarrierAccountNumber, CarrierName, CustomerDetails, Imei, Mdn, PlanId,
    PortPin, ZipCode,
};
use handover_engine::{InvalidInput, Sensitive, mask_msisdn};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use super::correction::Correction;
use crate::common::poll_interval;

/// Corrections allowed by default before the journey gives up.
pub const DEFAULT_MAX_CORRECTIONS: u32 = 5;
/// The most corrections a caller may allow.
pub const MAX_CORRECTIONS_LIMIT: u32 = 10;
/// Times the activation may be re-sent because Reach says the line is
/// 0 INACTIVE (the activation was not received) before a person is asked.
pub const MAX_ACTIVATIONS: u32 = 3;

/// The port-in's timings, in milliseconds. Every field has a production
/// default and a bound; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortInTimings {
    /// First purchase-status poll interval (doubles, capped at 12×). Default 5 s (the guide's
    /// pace); the `PRODUCT_PURCHASE` callback and the customer's return wake it sooner.
    pub purchase_poll_ms: u64,
    /// First port-status poll interval. Default 5 min.
    pub port_poll_first_ms: u64,
    /// Longest port-status poll interval. Default 2 h.
    pub port_poll_max_ms: u64,
    /// How long the customer has to send a correction after a failure. Default 72 h.
    pub correction_timeout_ms: u64,
    /// The whole journey's deadline. Default 30 days.
    pub deadline_ms: u64,
}

impl Default for PortInTimings {
    fn default() -> Self {
        Self {
            purchase_poll_ms: 5_000,
            port_poll_first_ms: 5 * 60_000,
            port_poll_max_ms: 2 * 3_600_000,
            correction_timeout_ms: 72 * 3_600_000,
            deadline_ms: 30 * 86_400_000,
        }
    }
}

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;

impl PortInTimings {
    /// Clamps every field into its bound (a caller cannot make the journey
    /// poll in a tight loop or wait for ever).
    pub fn bounded(self) -> Self {
        let port_poll_first_ms = self.port_poll_first_ms.clamp(10, 60 * MINUTE_MS);
        Self {
            purchase_poll_ms: self.purchase_poll_ms.clamp(10, 5 * MINUTE_MS),
            port_poll_first_ms,
            port_poll_max_ms: self
                .port_poll_max_ms
                .clamp(port_poll_first_ms, 6 * 60 * MINUTE_MS),
            correction_timeout_ms: self.correction_timeout_ms.clamp(100, 30 * DAY_MS),
            deadline_ms: self.deadline_ms.clamp(1_000, 90 * DAY_MS),
        }
    }

    /// The `n`-th port poll interval (from 0): first, doubling, capped.
    pub fn port_poll(&self, n: u32) -> Duration {
        poll_interval(
            n,
            Duration::from_millis(self.port_poll_first_ms),
            Duration::from_millis(self.port_poll_max_ms),
        )
    }

    /// The `n`-th purchase poll interval (from 0).
    pub fn purchase_poll(&self, n: u32) -> Duration {
        let first = Duration::from_millis(self.purchase_poll_ms);
        poll_interval(n, first, first.saturating_mul(12))
    }
}

/// What starting a port-in takes (guide Scenario E). The PIN is a secret;
/// the number and the account number are personal data (stored, never
/// shown).
#[derive(Clone, Serialize, Deserialize)]
pub struct PortInInput {
    /// The 10-digit US number to bring over (`numberToPort`).
    pub number_to_port: String,
    /// The losing carrier (`oldCarrier`), e.g. `T-Mobile`.
    pub old_carrier: String,
    /// The account number at the losing carrier (`oldCarrierAccountNumber`).
    pub old_carrier_account_number: String,
    /// The transfer PIN (`password`).
    pub pin: Sensitive<String>,
    /// The billing ZIP at the losing carrier (`oldZip`).
    pub old_zip: String,
    /// The plan's `serviceCode`.
    pub plan_id: String,
    /// The eSIM device's IMEI (the port-in activates an eSIM).
    pub imei: String,
    /// The customer's first name.
    pub first_name: String,
    /// The customer's last name.
    pub last_name: String,
    /// The customer's e-mail.
    pub email: String,
    /// Corrections allowed before giving up (default 5, at most 10).
    #[serde(default)]
    pub max_corrections: Option<u32>,
    /// Timings (production defaults).
    #[serde(default)]
    pub timings: PortInTimings,
}

impl fmt::Debug for PortInInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortInInput")
            .field("number_to_port", &mask_msisdn(&self.number_to_port))
            .field("old_carrier", &self.old_carrier)
            .field("plan_id", &self.plan_id)
            .finish_non_exhaustive()
    }
}

/// The customer, as stored (personal data: all of it sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buyer {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// E-mail.
    pub email: String,
}

/// The validated order, as stored until the purchase is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortOrder {
    /// The number, 10 digits.
    pub mdn: Sensitive<String>,
    /// The number masked, for people.
    pub mdn_masked: String,
    /// `oldCarrier`.
    pub old_carrier: String,
    /// `oldCarrierAccountNumber`.
    pub account: Sensitive<String>,
    /// `password`.
    pub pin: Sensitive<String>,
    /// `oldZip`.
    pub old_zip: String,
    /// `planId`.
    pub plan_id: String,
    /// The device.
    pub imei: Sensitive<String>,
    /// Who buys.
    pub buyer: Sensitive<Buyer>,
    /// Limits.
    pub settings: Settings,
}

/// The bounds the journey keeps while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Corrections allowed.
    pub max_corrections: u32,
    /// Timings, bounded.
    pub timings: PortInTimings,
}

fn invalid(field: &str, e: impl fmt::Display) -> InvalidInput {
    InvalidInput::new(format!("{field}: {e}"))
}

impl PortInInput {
    /// Checks every field (shape only: eligibility is Reach's answer) and
    /// builds the order.
    pub fn validate(self) -> Result<PortOrder, InvalidInput> {
        let mdn = Mdn::parse(&self.number_to_port).map_err(|_| {
            InvalidInput::new("number_to_port must be a 10-digit US number (NANP, e.g. 2125550100)")
        })?;
        CarrierName::new(&self.old_carrier).map_err(|e| invalid("old_carrier", message(&e)))?;
        let account = CarrierAccountNumber::parse(&self.old_carrier_account_number)
            .map_err(|e| invalid("old_carrier_account_number", message(&e)))?;
        PortPin::new(SecretString::from(self.pin.expose().clone())).map_err(|_| {
            InvalidInput::new("pin must be 1 to 32 visible ASCII characters (not shown)")
        })?;
        let zip = ZipCode::parse(&self.old_zip)
            .map_err(|_| invalid("old_zip", "must be 12345 or 12345-6789"))?;
        let plan = PlanId::new(self.plan_id.trim()).map_err(|e| invalid("plan_id", message(&e)))?;
        let imei = Imei::parse(&self.imei).map_err(|_| invalid("imei", "must be 15 digits"))?;
        CustomerDetails::new(&self.first_name, &self.last_name, &self.email)
            .map_err(|e| invalid("customer", message(&e)))?;
        let max_corrections = self
            .max_corrections
            .unwrap_or(DEFAULT_MAX_CORRECTIONS)
            .clamp(1, MAX_CORRECTIONS_LIMIT);
        Ok(PortOrder {
            mdn_masked: mask_msisdn(mdn.as_str()),
            mdn: Sensitive::new(mdn.as_str().to_owned()),
            old_carrier: self.old_carrier.trim().to_owned(),
            account: Sensitive::new(account.as_str().to_owned()),
            pin: self.pin,
            old_zip: zip.as_str().to_owned(),
            plan_id: plan.as_str().to_owned(),
            imei: Sensitive::new(imei.as_str().to_owned()),
            buyer: Sensitive::new(Buyer {
                first_name: self.first_name.trim().to_owned(),
                last_name: self.last_name.trim().to_owned(),
                email: self.email.trim().to_owned(),
            }),
            settings: Settings {
                max_corrections,
                timings: self.timings.bounded(),
            },
        })
    }
}

/// An adapter error's message without the provider/operation prefix.
fn message(e: &handover_adapters::ProviderError) -> String {
    let text = e.to_string();
    text.rsplit_once(": ")
        .map_or(text.clone(), |(_, m)| m.to_owned())
}

/// What the journey is doing once the customer exists at Reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Bringing the customer's number over.
    Port,
    /// `CANCEL_AND_NEW`: activating a new number instead.
    NewNumber,
}

/// The customer's line at Reach, once the purchase completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Reach's `customerId`.
    pub customer_id: String,
    /// The device (for the activation).
    pub imei: Sensitive<String>,
    /// The ported number, masked.
    pub mdn_masked: String,
    /// Port or new number.
    pub mode: Mode,
    /// Port-in updates applied so far.
    pub corrections: u32,
    /// Activations sent after Reach reported the line 0 INACTIVE.
    pub activations: u32,
    /// The last `activationMsg` (why the port failed), sanitized.
    pub last_failure: Option<String>,
    /// Limits.
    pub settings: Settings,
}

/// Where the journey is. See the [module docs](super) for the map to the
/// spec's steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// `PUT /port/validate/mdn`.
    Validate {
        /// The order.
        order: PortOrder,
    },
    /// `POST /product` with the port-in fields.
    Purchase {
        /// The order.
        order: PortOrder,
    },
    /// Polling `GET /product/status/{transactionId}` until the customer paid.
    AwaitPurchase {
        /// The device, kept for the activation.
        imei: Sensitive<String>,
        /// The number, masked.
        mdn_masked: String,
        /// Reach's purchase.
        transaction_id: String,
        /// Polls so far (the interval grows with it).
        polls: u32,
        /// The payment page for the customer, once issued.
        payment_url: Option<String>,
        /// Limits.
        settings: Settings,
    },
    /// `POST /activation`: starts the port-in.
    Activate {
        /// The line.
        line: Line,
    },
    /// Polling `GET /activation/status` (or woken by an `ACTIVATION` callback).
    Porting {
        /// The line.
        line: Line,
        /// Polls since the last submission (the interval grows with it).
        polls: u32,
    },
    /// 10 PORTING_FAILED: waiting for the customer's correction.
    AwaitCorrection {
        /// The line (its `last_failure` says why).
        line: Line,
        /// When the wait ends (ms since the epoch).
        until_ms: i64,
    },
    /// `PUT /update/portin`.
    Correct {
        /// The line.
        line: Line,
        /// What to send.
        correction: Correction,
    },
    /// No correction came in time.
    CorrectionTimedOut {
        /// The line.
        line: Line,
    },
}

/// How the port-in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortInOutcome {
    /// The number was ported and is live.
    Ported,
    /// `CANCEL_AND_NEW`: a new number is live instead.
    NewNumber,
    /// 11 PORT_CANCELLED (the customer's `CANCEL_PORT`, or the carrier).
    Cancelled,
}

/// What a finished port-in produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInOutput {
    /// How it ended.
    pub outcome: PortInOutcome,
    /// Reach's `customerId`.
    pub customer_id: String,
    /// The live number (the app may show it to its customer; redacted for operators).
    pub mobile_no: Option<Sensitive<String>>,
    /// The live number, masked.
    pub mobile_no_masked: Option<String>,
    /// `planName`.
    pub plan_name: Option<String>,
    /// Port-in updates applied.
    pub corrections: u32,
}

/// What a line status means for a journey in [`State::Porting`] (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineDecision {
    /// 1 or 9: poll again later (or when a callback comes).
    KeepPolling,
    /// 0: the activation was not received: send it again.
    Reactivate,
    /// 2, or 11: the journey ends with this output.
    Done(PortInOutput),
    /// 10, corrections left: wait for the customer with this reason.
    AwaitCorrection(Option<String>),
    /// The journey fails with this reason.
    Fail(String),
}

/// Decides what a line status means (see [`LineDecision`]).
pub fn decide(line: &Line, status: &ActivationStatus) -> LineDecision {
    let output = |outcome, mobile: Option<&Mdn>, plan: Option<&String>| PortInOutput {
        outcome,
        customer_id: line.customer_id.clone(),
        mobile_no: mobile.map(|m| Sensitive::new(m.as_str().to_owned())),
        mobile_no_masked: mobile.map(|m| mask_msisdn(m.as_str())),
        plan_name: plan.cloned(),
        corrections: line.corrections,
    };
    match status {
        ActivationStatus::InProgress | ActivationStatus::PortingInProgress => {
            LineDecision::KeepPolling
        }
        ActivationStatus::Inactive if line.activations < MAX_ACTIVATIONS => {
            LineDecision::Reactivate
        }
        ActivationStatus::Inactive => LineDecision::Fail(format!(
            "Reach still reports the line 0 INACTIVE after {MAX_ACTIVATIONS} activations; \
             ask Reach support about customer {}",
            line.customer_id
        )),
        ActivationStatus::Active {
            mobile_no,
            plan_name,
            ..
        } => LineDecision::Done(output(
            match line.mode {
                Mode::Port => PortInOutcome::Ported,
                Mode::NewNumber => PortInOutcome::NewNumber,
            },
            Some(mobile_no),
            plan_name.as_ref(),
        )),
        ActivationStatus::PortCancelled => {
            LineDecision::Done(output(PortInOutcome::Cancelled, None, None))
        }
        ActivationStatus::PortingFailed { activation_msg }
            if line.corrections >= line.settings.max_corrections =>
        {
            LineDecision::Fail(format!(
                "the port-in of {} failed again after {} corrections (the most allowed): {}",
                line.mdn_masked,
                line.corrections,
                activation_msg.as_deref().unwrap_or("no reason given")
            ))
        }
        ActivationStatus::PortingFailed { activation_msg } => {
            LineDecision::AwaitCorrection(activation_msg.clone())
        }
        ActivationStatus::Failed { activation_msg } => LineDecision::Fail(format!(
            "the activation failed (8 ACTIVATION_FAILED): {}; contact Reach support",
            activation_msg.as_deref().unwrap_or("no reason given")
        )),
        ActivationStatus::Other {
            code,
            activation_msg,
        } => LineDecision::Fail(format!(
            "Reach reported line status {code}, which a port-in does not expect: {}",
            activation_msg.as_deref().unwrap_or("no message")
        )),
    }
}

/// Whether an update whose outcome was unknown was applied, judged from the
/// line status read afterwards (adapter docs: "10 with the same
/// `activationMsg` means it was not applied").
pub fn update_was_applied(failure_before: Option<&str>, status: &ActivationStatus) -> bool {
    match status {
        ActivationStatus::PortingFailed { activation_msg } => {
            activation_msg.as_deref() != failure_before
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PortInInput {
        PortInInput {
            number_to_port: "+1 212-555-0100".into(),
            old_carrier: "T-Mobile".into(),
            old_carrier_account_number: "998877665".into(),
            pin: Sensitive::new("482916".into()),
            old_zip: "10001".into(),
            plan_id: "PLAN-UNL".into(),
            imei: "356938035643809".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: "ada@example.com".into(),
            max_corrections: None,
            timings: PortInTimings::default(),
        }
    }

    fn line(corrections: u32) -> Line {
        let order = input().validate().unwrap();
        Line {
            customer_id: "CUS-1".into(),
            imei: order.imei,
            mdn_masked: order.mdn_masked,
            mode: Mode::Port,
            corrections,
            activations: 1,
            last_failure: None,
            settings: Settings {
                max_corrections: 2,
                timings: PortInTimings::default(),
            },
        }
    }

    #[test]
    fn inputs_are_validated_with_clear_errors_and_secrets_stay_hidden() {
        let order = input().validate().unwrap();
        assert_eq!(order.mdn.expose(), "2125550100");
        assert_eq!(order.mdn_masked, "212*****00");
        assert_eq!(order.settings.max_corrections, DEFAULT_MAX_CORRECTIONS);
        let shown = handover_engine::redact(&serde_json::to_value(&order).unwrap()).to_string();
        for secret in ["2125550100", "482916", "998877665", "Lovelace"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        type Breaker = fn(&mut PortInInput);
        let cases: [(Breaker, &str); 6] = [
            (|i| i.number_to_port = "0125550100".into(), "number_to_port"),
            (|i| i.old_zip = "1000".into(), "old_zip"),
            (|i| i.pin = Sensitive::new(String::new()), "pin"),
            (|i| i.imei = "123".into(), "imei"),
            (|i| i.old_carrier = " ".into(), "old_carrier"),
            (|i| i.email = "nope".into(), "customer"),
        ];
        for (break_it, field) in cases {
            let mut bad = input();
            break_it(&mut bad);
            let err = bad.validate().unwrap_err();
            assert!(err.message.contains(field), "{field}: {err}");
        }
        let mut many = input();
        many.max_corrections = Some(99);
        many.timings.port_poll_first_ms = 0;
        let order = many.validate().unwrap();
        assert_eq!(order.settings.max_corrections, MAX_CORRECTIONS_LIMIT);
        assert_eq!(order.settings.timings.port_poll_first_ms, 10);
    }

    #[test]
    fn line_statuses_decide_the_next_step() {
        assert_eq!(
            decide(&line(0), &ActivationStatus::PortingInProgress),
            LineDecision::KeepPolling
        );
        assert_eq!(
            decide(
                &line(1),
                &ActivationStatus::PortingFailed {
                    activation_msg: Some("wrong PIN".into())
                }
            ),
            LineDecision::AwaitCorrection(Some("wrong PIN".into()))
        );
        assert!(matches!(
            decide(&line(2), &ActivationStatus::PortingFailed { activation_msg: None }),
            LineDecision::Fail(reason) if reason.contains("after 2 corrections")
        ));
        let LineDecision::Done(done) = decide(
            &line(1),
            &ActivationStatus::Active {
                mobile_no: Mdn::parse("2125550100").unwrap(),
                plan_name: Some("Unlimited".into()),
                activation_date: None,
            },
        ) else {
            panic!("done expected")
        };
        assert_eq!(done.outcome, PortInOutcome::Ported);
        assert_eq!(done.mobile_no_masked.as_deref(), Some("212*****00"));
        let mut new = line(1);
        new.mode = Mode::NewNumber;
        assert!(matches!(
            decide(
                &new,
                &ActivationStatus::Active {
                    mobile_no: Mdn::parse("5120000001").unwrap(),
                    plan_name: None,
                    activation_date: None,
                }
            ),
            LineDecision::Done(PortInOutput {
                outcome: PortInOutcome::NewNumber,
                ..
            })
        ));
        assert!(matches!(
            decide(&line(0), &ActivationStatus::PortCancelled),
            LineDecision::Done(PortInOutput {
                outcome: PortInOutcome::Cancelled,
                ..
            })
        ));
        assert_eq!(
            decide(&line(0), &ActivationStatus::Inactive),
            LineDecision::Reactivate
        );
        let mut tried = line(0);
        tried.activations = MAX_ACTIVATIONS;
        assert!(matches!(
            decide(&tried, &ActivationStatus::Inactive),
            LineDecision::Fail(_)
        ));
    }

    #[test]
    fn an_unknown_update_outcome_is_judged_by_the_failure_message() {
        let failed = |m: &str| ActivationStatus::PortingFailed {
            activation_msg: Some(m.into()),
        };
        assert!(!update_was_applied(Some("wrong PIN"), &failed("wrong PIN")));
        assert!(update_was_applied(Some("wrong PIN"), &failed("wrong ZIP")));
        assert!(update_was_applied(
            Some("wrong PIN"),
            &ActivationStatus::PortingInProgress
        ));
    }

    #[test]
    fn polls_grow_from_minutes_to_hours() {
        let t = PortInTimings::default();
        let minutes: Vec<u64> = (0..7).map(|n| t.port_poll(n).as_secs() / 60).collect();
        assert_eq!(minutes, vec![5, 10, 20, 40, 80, 120, 120]);
    }
}
