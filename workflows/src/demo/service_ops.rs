//! J6 in the demo: service creations, one in ten for a service type the
//! provider refuses (403, a terminal refusal the journey fails with).

use std::time::Duration;

use async_trait::async_trait;
use handover_adapters::service_ops::ServiceType;
use handover_adapters::sim::ServiceOpsBehaviour;
use handover_engine::JourneyRecord;
use serde_json::json;

use super::{DemoCase, DemoDriver, DemoError, Expected};
use crate::service_ops::{ServiceChange, ServiceChangeInput};
use crate::stack::Stack;

/// The service type the demo's provider refuses.
const REFUSED: ServiceType = ServiceType::Tv;

/// Drives J6.
#[derive(Debug, Clone, Copy)]
pub struct ServiceOpsDriver;

#[async_trait]
impl DemoDriver for ServiceOpsDriver {
    fn workflow(&self) -> &'static str {
        "service-ops.change"
    }

    fn label(&self) -> &'static str {
        "J6 service-ops"
    }

    fn prepare(&self, stack: &Stack) {
        stack.sims.service_ops.set_behaviour(
            ServiceOpsBehaviour::default()
                .with_event_delay(Duration::from_millis(200))
                .forbidding(REFUSED),
        );
    }

    async fn start(&self, stack: &Stack, i: u64) -> Result<DemoCase, DemoError> {
        let refused = i % 10 == 9;
        let service_type = if refused { "tv" } else { "multisim" };
        let input = ServiceChangeInput::Create {
            service_type: service_type.into(),
            service_id: None,
            customer_id: format!("DEMO-{i}"),
            plan_code: Some("MS-2".into()),
            msisdn: Some(format!("9665{:08}", 10_000_000 + i)),
            event_timeout_secs: Some(60),
        };
        let id = stack
            .engine
            .start::<ServiceChange>(input)
            .await
            .map_err(DemoError::new)?;
        Ok(DemoCase {
            id,
            scenario: if refused { "refused-403" } else { "happy" },
            expect: if refused {
                Expected::Failed
            } else {
                Expected::Completed
            },
            memo: json!({}),
        })
    }

    async fn assist(
        &self,
        _stack: &Stack,
        _case: &DemoCase,
        _record: &JourneyRecord,
    ) -> Result<(), DemoError> {
        // No human in this journey: the provider's event ends the wait.
        Ok(())
    }
}
