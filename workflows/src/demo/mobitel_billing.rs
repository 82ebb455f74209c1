//! J5 in the demo: Mobitel carrier billing. The driver plays the customer
//! approving the USSD pop-up: most approve the first one; one in 25 misses
//! it and approves the second (after the journey's 2-minute re-initiation
//! gap, Mobitel's rule, so these take over two minutes of real time); one in
//! 25 never answers and the journey fails after its two charge requests.
//! The slow two are rare so that a small demo (CI's 30 journeys) ends in
//! about a minute; the default 300 includes two of each.

use async_trait::async_trait;
use handover_adapters::sim::mobitel::ChargeState;
use handover_engine::JourneyRecord;
use serde_json::json;

use super::{DemoCase, DemoDriver, DemoError, Expected};
use crate::mobitel_billing::{MobitelBilling, MobitelBillingInput};
use crate::stack::Stack;

/// Drives J5.
#[derive(Debug, Clone, Copy)]
pub struct MobitelBillingDriver;

#[async_trait]
impl DemoDriver for MobitelBillingDriver {
    fn workflow(&self) -> &'static str {
        "mobitel.carrier-billing"
    }

    fn label(&self) -> &'static str {
        "J5 mobitel-billing"
    }

    async fn start(&self, stack: &Stack, i: u64) -> Result<DemoCase, DemoError> {
        let (scenario, expect) = match i % 25 {
            12 => ("approved-late", Expected::Completed),
            24 => ("never-approved", Expected::Failed),
            _ => ("happy", Expected::Completed),
        };
        // One receiver per journey: Mobitel's re-initiation rule is per number.
        let receiver = format!("07{:08}", 10_000_000 + i % 89_999_999);
        let input = MobitelBillingInput {
            amount: "5".into(),
            receiver: receiver.clone(),
            max_initiations: Some(2),
            consent_window_secs: Some(10),
            first_confirm_ms: Some(500),
        };
        let id = stack
            .engine
            .start::<MobitelBilling>(input)
            .await
            .map_err(DemoError::new)?;
        Ok(DemoCase {
            id,
            scenario,
            expect,
            memo: json!({ "receiver": receiver }),
        })
    }

    async fn assist(
        &self,
        stack: &Stack,
        case: &DemoCase,
        _record: &JourneyRecord,
    ) -> Result<(), DemoError> {
        let Some(receiver) = case.memo["receiver"].as_str() else {
            return Err(DemoError::new("the case lost its receiver"));
        };
        let wanted = match case.scenario {
            "happy" => 1,
            "approved-late" => 2,
            _ => return Ok(()),
        };
        let mine: Vec<_> = stack
            .sims
            .mobitel
            .charge_requests()
            .into_iter()
            .filter(|c| c.receiver == receiver)
            .collect();
        if mine.len() >= wanted
            && let Some(latest) = mine.last()
            && latest.state == ChargeState::Pending
        {
            // Approving twice is harmless; a pop-up that expired meanwhile
            // is simply not approved.
            let _ = stack.sims.mobitel.approve(&latest.reference);
        }
        Ok(())
    }
}
