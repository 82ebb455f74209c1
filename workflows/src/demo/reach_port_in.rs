//! J3 in the demo: number port-ins. Most go ACTIVE after 0 to 2
//! corrections (a wrong PIN, then a wrong ZIP), one in ten asks to port a
//! number Reach refuses (`isPortValidate=false`), one in ten is cancelled by
//! the customer (`CANCEL_PORT`) after the first failure.
//!
//! The driver plays the customer: it pays at the payment page when the
//! journey waits for the payment, and answers each port failure with the
//! correction its `activationMsg` asks for.

use async_trait::async_trait;
use handover_adapters::sim::reach::LosingCarrierAccount;
use handover_engine::{JourneyRecord, NewSignal, Sensitive};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{DemoCase, DemoDriver, DemoError, Expected};
use crate::reach_port_in::{CORRECTION_SIGNAL, PortInInput, PortInTimings, ReachPortIn};
use crate::stack::Stack;

/// The PIN and ZIP the losing carrier has on file for every demo number.
const RIGHT_PIN: &str = "1357";
const RIGHT_ZIP: &str = "10001";
const ACCOUNT: &str = "998877665";

/// Drives J3.
#[derive(Debug, Clone, Copy)]
pub struct ReachPortInDriver;

/// What the `i`-th journey does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Ports after `n` corrections (0 to 2).
    Corrections(u8),
    /// Reach refuses the number.
    NotPortable,
    /// The customer cancels after the first failure.
    Cancel,
}

impl Scenario {
    fn of(i: u64) -> Self {
        match i % 10 {
            9 => Scenario::NotPortable,
            8 => Scenario::Cancel,
            n => Scenario::Corrections(u8::try_from(n % 3).unwrap_or(0)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scenario::Corrections(0) => "happy",
            Scenario::Corrections(1) => "wrong-pin",
            Scenario::Corrections(_) => "wrong-pin-and-zip",
            Scenario::NotPortable => "not-portable",
            Scenario::Cancel => "cancel-port",
        }
    }
}

/// Demo timings: seconds instead of hours.
fn timings() -> PortInTimings {
    PortInTimings {
        purchase_poll_ms: 500,
        port_poll_first_ms: 1_000,
        port_poll_max_ms: 10_000,
        correction_timeout_ms: 10 * 60_000,
        deadline_ms: 3_600_000,
    }
}

#[async_trait]
impl DemoDriver for ReachPortInDriver {
    fn workflow(&self) -> &'static str {
        "reach.port-in"
    }

    fn label(&self) -> &'static str {
        "J3 reach port-in"
    }

    async fn start(&self, stack: &Stack, i: u64) -> Result<DemoCase, DemoError> {
        let scenario = Scenario::of(i);
        // A distinct number per journey (a live number cannot be ported twice).
        let number = format!("646{:07}", 1_000_000 + i % 9_000_000);
        let reach = &stack.sims.reach;
        reach.set_losing_carrier(
            &number,
            LosingCarrierAccount {
                account_number: ACCOUNT.into(),
                pin: SecretString::from(RIGHT_PIN),
                zip: RIGHT_ZIP.into(),
                transient_failures: 0,
            },
        );
        if scenario == Scenario::NotPortable {
            reach.refuse_port(&number, "The number has an active port-out lock.");
        }
        let (pin, zip) = match scenario {
            Scenario::Corrections(0) | Scenario::NotPortable => (RIGHT_PIN, RIGHT_ZIP),
            Scenario::Corrections(1) | Scenario::Cancel => ("0000", RIGHT_ZIP),
            Scenario::Corrections(_) => ("0000", "99999"),
        };
        let input = PortInInput {
            number_to_port: number,
            old_carrier: "T-Mobile".into(),
            old_carrier_account_number: ACCOUNT.into(),
            pin: Sensitive::new(pin.into()),
            old_zip: zip.into(),
            plan_id: "PLAN-UNL".into(),
            imei: "356938035643809".into(),
            first_name: "Demo".into(),
            last_name: format!("Customer{i}"),
            email: format!("demo{i}@example.com"),
            max_corrections: Some(3),
            timings: timings(),
        };
        let id = stack
            .engine
            .start::<ReachPortIn>(input)
            .await
            .map_err(DemoError::new)?;
        Ok(DemoCase {
            id,
            scenario: scenario.name(),
            expect: match scenario {
                Scenario::NotPortable => Expected::Failed,
                // A cancelled port completes with outcome `cancelled`.
                Scenario::Corrections(_) | Scenario::Cancel => Expected::Completed,
            },
            memo: json!({ "cancel": scenario == Scenario::Cancel }),
        })
    }

    async fn assist(
        &self,
        stack: &Stack,
        case: &DemoCase,
        record: &JourneyRecord,
    ) -> Result<(), DemoError> {
        match record.step_name.as_str() {
            "await-payment" => {
                if let Some(transaction_id) =
                    record.state["AwaitPurchase"]["transaction_id"].as_str()
                {
                    // Paying twice is refused by the page ("not awaiting payment"): fine.
                    let _ = stack.sims.reach.pay(transaction_id, true).await;
                }
                Ok(())
            }
            "await-correction" => {
                let line = &record.state["AwaitCorrection"]["line"];
                let corrections = line["corrections"].as_u64().unwrap_or(0);
                let reason = line["last_failure"].as_str().unwrap_or_default();
                let payload = if case.memo["cancel"] == Value::Bool(true) {
                    json!({"type": "CANCEL_PORT"})
                } else {
                    correction_for(reason)
                };
                let signal = NewSignal::to_journey(case.id, CORRECTION_SIGNAL, payload)
                    .map_err(DemoError::new)?
                    .dedupe(format!("demo-{}-{corrections}", case.id))
                    .source("demo-customer");
                stack
                    .engine
                    .signal(signal)
                    .await
                    .map(|_| ())
                    .map_err(DemoError::new)
            }
            _ => Ok(()),
        }
    }
}

/// What a customer sends for a carrier's refusal.
fn correction_for(reason: &str) -> Value {
    let reason = reason.to_ascii_lowercase();
    if reason.contains("pin") {
        json!({"type": "UPDATE_PIN", "password": RIGHT_PIN})
    } else if reason.contains("zip") {
        json!({"type": "UPDATE_ZIP", "oldZip": RIGHT_ZIP})
    } else if reason.contains("account") {
        json!({"type": "UPDATE_ACCOUNT", "oldCarrierAccountNumber": ACCOUNT})
    } else {
        json!({"type": "RESUBMIT_PORT"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_are_mostly_happy_with_some_refusals_and_cancellations() {
        let names: Vec<_> = (0..10).map(|i| Scenario::of(i).name()).collect();
        assert_eq!(names.iter().filter(|n| **n == "not-portable").count(), 1);
        assert_eq!(names.iter().filter(|n| **n == "cancel-port").count(), 1);
        assert!(names.contains(&"wrong-pin-and-zip"));
        assert_eq!(
            correction_for(
                "Port-in rejected by the losing carrier: the PIN (password) is incorrect."
            )["type"],
            "UPDATE_PIN"
        );
        assert_eq!(
            correction_for("the billing ZIP code does not match.")["type"],
            "UPDATE_ZIP"
        );
        assert_eq!(correction_for("did not respond")["type"], "RESUBMIT_PORT");
    }
}
