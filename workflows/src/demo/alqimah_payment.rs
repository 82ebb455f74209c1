//! J4 in the demo: Al-Qimah top-ups. Most succeed at once; two in ten are
//! scripted pending (settling a moment later, by the simulator's ticker and
//! its webhook, or by our status re-check, whichever comes first); one in
//! ten asks more than the agent account holds and is refused for
//! insufficient balance.
//!
//! Pending scripts are queued in the simulator, so under concurrency another
//! journey may take one; both outcomes are "completed", so the expectation
//! holds whichever journey goes pending.

use std::time::Duration;

use async_trait::async_trait;
use handover_adapters::sim::alqimah::{Final, PaymentScript, SettleAfter};
use handover_engine::JourneyRecord;
use serde_json::json;

use super::{DemoCase, DemoDriver, DemoError, Expected};
use crate::alqimah_payment::{AlQimahPayment, AlQimahPaymentInput};
use crate::stack::Stack;

/// More than the simulator's default agent balance (1 000 000 rials).
const TOO_MUCH: u64 = 5_000_000;

/// Drives J4.
#[derive(Debug, Clone, Copy)]
pub struct AlQimahPaymentDriver;

#[async_trait]
impl DemoDriver for AlQimahPaymentDriver {
    fn workflow(&self) -> &'static str {
        "alqimah.payment"
    }

    fn label(&self) -> &'static str {
        "J4 alqimah-payment"
    }

    async fn start(&self, stack: &Stack, i: u64) -> Result<DemoCase, DemoError> {
        let (scenario, expect, amount) = match i % 10 {
            9 => ("insufficient-balance", Expected::Failed, TOO_MUCH),
            3 | 6 => ("pending-then-settled", Expected::Completed, 100),
            _ => ("happy", Expected::Completed, 100),
        };
        if scenario == "pending-then-settled" {
            stack
                .sims
                .alqimah
                .script_next_payment(PaymentScript::Pending {
                    after: SettleAfter::Delay(Duration::from_millis(1_500)),
                    to: Final::Succeeded,
                });
        }
        let input = AlQimahPaymentInput {
            network: 1,
            service: 103,
            // `7` and eight digits: a Yemeni mobile.
            mobile_number: Some(format!("7{:08}", 10_000_000 + i % 89_999_999)),
            amount: Some(amount),
            first_recheck_ms: Some(1_000),
            max_recheck_ms: Some(5_000),
            settle_within_ms: Some(120_000),
            ..AlQimahPaymentInput::default()
        };
        let id = stack
            .engine
            .start::<AlQimahPayment>(input)
            .await
            .map_err(DemoError::new)?;
        Ok(DemoCase {
            id,
            scenario,
            expect,
            memo: json!({}),
        })
    }

    async fn assist(
        &self,
        _stack: &Stack,
        _case: &DemoCase,
        _record: &JourneyRecord,
    ) -> Result<(), DemoError> {
        // No human: Al-Qimah settles pending payments on its own.
        Ok(())
    }
}
