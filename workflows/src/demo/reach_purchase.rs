//! J2 in the demo: Reach purchases. Of every 20: 13 happy eSIM purchases, 3
//! physical SIMs that arrive a moment after payment (`sim-arrived`), one
//! address without coverage and one unsupported device (business refusals
//! the journey fails with), and 2 customers whose card is declined once and
//! who then retry from the quote (completed on the second purchase).
//!
//! The driver plays the customer: it pays on Reach's page
//! ([`ReachSim::pay`](handover_adapters::sim::ReachSim::pay)) once the journey
//! shows the payment link, comes back from the page (the payment-return
//! signal the ingress would store for the browser's `GET`), asks for a retry
//! after a declined card, and reports the SIM's arrival. The J2 tests use the
//! same functions ([`input`], [`play_customer`]).

use std::time::Duration;

use async_trait::async_trait;
use handover_adapters::reach::SimType;
use handover_adapters::reach::callbacks::TRANSACTION_NAMESPACE;
use handover_adapters::sim::ReachBehaviour;
use handover_adapters::sim::reach::DeviceProfile;
use handover_engine::{CorrelationKey, JourneyId, JourneyRecord, NewSignal, Sensitive};
use serde_json::{Value, json};

use super::{DemoCase, DemoDriver, DemoError, Expected};
use crate::common::luhn;
use crate::ingress::reach::PAYMENT_RETURN_SIGNAL;
use crate::reach_purchase::{
    AddressInput, RETRY_SIGNAL, ReachPurchase, ReachPurchaseInput, SIM_ARRIVED_SIGNAL, Timing,
};
use crate::stack::Stack;

/// A ZIP code the demo's Reach does not cover.
pub const UNCOVERED_ZIP: &str = "59999";

/// `prefix` followed by `n` (zero-padded to `digits`) and a Luhn check digit.
pub fn with_check_digit(prefix: &str, n: u64, digits: usize) -> String {
    let body = format!("{prefix}{n:0digits$}");
    (0..10u8)
        .map(|d| format!("{body}{d}"))
        .find(|candidate| luhn(candidate))
        .unwrap_or(body)
}

/// A valid IMEI of its own for journey `i`.
pub fn imei_for(i: u64) -> String {
    with_check_digit("35", i % 1_000_000_000_000, 12)
}

/// A usable ICCID of its own for journey `i`.
pub fn iccid_for(i: u64) -> String {
    with_check_digit("8901260", i % 1_000_000_000_000, 12)
}

/// Short waits and polls (seconds for the customer, 200 ms polls).
pub fn demo_timing() -> Timing {
    Timing {
        link_poll_ms: 200,
        poll_first_ms: 200,
        poll_max_ms: 2_000,
        max_polls: 200,
        payment_window_secs: 120,
        retry_window_secs: 120,
        sim_arrival_secs: 300,
    }
}

/// The purchase input of customer `i`.
pub fn input(i: u64, sim: Option<SimType>, zip: &str, timing: Timing) -> ReachPurchaseInput {
    ReachPurchaseInput {
        order_ref: Some(format!("ORD-{i}")),
        first_name: Sensitive::new("Ada".into()),
        last_name: Sensitive::new(format!("Customer{i}")),
        email: Sensitive::new(format!("customer{i}@example.com")),
        address: Sensitive::new(AddressInput {
            address1: format!("{} Main St", 100 + i % 900),
            address2: None,
            city: "Austin".into(),
            state: "TX".into(),
            zip: zip.into(),
        }),
        imei: Sensitive::new(imei_for(i)),
        plan_id: "PLAN-15GB".into(),
        sim_type: sim,
        timing,
    }
}

/// What the customer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Customer {
    /// The first `declines` payment attempts are declined by the card issuer.
    pub declines: u32,
    /// Asks to pay again after a failed payment.
    pub retries: bool,
    /// The ICCID to report when a physical SIM is awaited (`None`: it never
    /// arrives).
    pub sim: Option<u64>,
    /// Comes back from the payment page after paying.
    pub returns: bool,
}

/// The stage's name in a stored state (`"AwaitCustomer"`, `"PaymentFailed"`).
pub fn stage_of(state: &Value) -> Option<&str> {
    match &state["stage"] {
        Value::String(s) => Some(s),
        Value::Object(map) => map.keys().next().map(String::as_str),
        _ => None,
    }
}

async fn signal(stack: &Stack, signal: NewSignal) -> Result<(), DemoError> {
    stack
        .engine
        .signal(signal)
        .await
        .map(|_| ())
        .map_err(DemoError::new)
}

/// Plays `customer` for journey `id`, whose latest record is `record`: pays
/// once the link is shown, comes back from the page, retries after a decline,
/// reports the SIM. Idempotent: every signal carries a dedupe key, paying an
/// already-paid purchase is ignored.
pub async fn play_customer(
    stack: &Stack,
    id: JourneyId,
    record: &JourneyRecord,
    customer: Customer,
) -> Result<(), DemoError> {
    let state = &record.state;
    let progress = &state["progress"];
    let attempt = progress["purchase_attempt"].as_u64().unwrap_or(0);
    match stage_of(state) {
        Some("AwaitCustomer") => {
            let Some(txn) = progress["transaction_id"].as_str() else {
                return Ok(());
            };
            let accepted = attempt > u64::from(customer.declines);
            // Already paid (or expired) is fine: the customer clicked twice.
            let _ = stack.sims.reach.pay(txn, accepted).await;
            if customer.returns {
                let key =
                    CorrelationKey::new(TRANSACTION_NAMESPACE, txn).map_err(DemoError::new)?;
                signal(
                    stack,
                    NewSignal::to_correlation(
                        key,
                        PAYMENT_RETURN_SIGNAL,
                        json!({ "transId": txn }),
                    )
                    .map_err(DemoError::new)?
                    .dedupe(format!("reach:return:{txn}"))
                    .source("demo"),
                )
                .await?;
            }
        }
        Some("PaymentFailed") if customer.retries => {
            signal(
                stack,
                NewSignal::to_journey(id, RETRY_SIGNAL, json!({}))
                    .map_err(DemoError::new)?
                    .dedupe(format!("demo:retry:{id}:{attempt}"))
                    .source("demo"),
            )
            .await?;
        }
        Some("AwaitSim") => {
            if let Some(n) = customer.sim {
                signal(
                    stack,
                    NewSignal::to_journey(id, SIM_ARRIVED_SIGNAL, json!({ "iccid": iccid_for(n) }))
                        .map_err(DemoError::new)?
                        .dedupe(format!("demo:sim:{id}:{n}"))
                        .source("demo"),
                )
                .await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Drives J2.
#[derive(Debug, Clone, Copy)]
pub struct ReachPurchaseDriver;

fn scenario(i: u64) -> (&'static str, Expected) {
    match i % 20 {
        12..=14 => ("psim", Expected::Completed),
        15 => ("no-coverage", Expected::Failed),
        16 => ("invalid-imei", Expected::Failed),
        17 | 18 => ("declined-then-retry", Expected::Completed),
        _ => ("happy-esim", Expected::Completed),
    }
}

fn customer_of(scenario: &str, i: u64) -> Customer {
    Customer {
        declines: u32::from(scenario == "declined-then-retry"),
        retries: true,
        sim: Some(i),
        returns: true,
    }
}

#[async_trait]
impl DemoDriver for ReachPurchaseDriver {
    fn workflow(&self) -> &'static str {
        <ReachPurchase as handover_engine::Workflow>::NAME
    }

    fn label(&self) -> &'static str {
        "J2 reach-purchase"
    }

    fn prepare(&self, stack: &Stack) {
        stack
            .sims
            .reach
            .set_behaviour(ReachBehaviour::default().with_delays(Duration::from_millis(300)));
        stack.sims.reach.set_coverage(UNCOVERED_ZIP, false);
    }

    async fn start(&self, stack: &Stack, i: u64) -> Result<DemoCase, DemoError> {
        let (name, expect) = scenario(i);
        let sim = (name == "psim").then_some(SimType::Psim);
        let zip = if name == "no-coverage" {
            UNCOVERED_ZIP
        } else {
            "78701"
        };
        if name == "invalid-imei" {
            stack
                .sims
                .reach
                .set_device(&imei_for(i), DeviceProfile::unsupported());
        }
        let id = stack
            .engine
            .start::<ReachPurchase>(input(i, sim, zip, demo_timing()))
            .await
            .map_err(DemoError::new)?;
        Ok(DemoCase {
            id,
            scenario: name,
            expect,
            memo: json!({ "i": i }),
        })
    }

    async fn assist(
        &self,
        stack: &Stack,
        case: &DemoCase,
        record: &JourneyRecord,
    ) -> Result<(), DemoError> {
        let i = case.memo["i"].as_u64().unwrap_or(0);
        play_customer(stack, case.id, record, customer_of(case.scenario, i)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_numbers_pass_their_checks() {
        for i in [0, 1, 17, 999_999] {
            assert!(crate::common::imei(&imei_for(i)).is_ok());
            let iccid = iccid_for(i);
            assert!(
                crate::common::iccid(&iccid).is_ok() && luhn(&iccid),
                "{iccid}"
            );
        }
    }
}
