//! The demo's fleet: one [`DemoDriver`] per journey type.
//!
//! `handover demo` (and the CI-sized run of it) starts a [`Stack`] with the
//! simulators' faults on, asks every driver to start its share of journeys,
//! and then keeps calling [`DemoDriver::assist`] on each unfinished journey so
//! the human side (OTP codes, payment returns, port-in corrections, USSD
//! approvals, SIM arrival) is played automatically. When every journey has
//! ended it compares each outcome with the scenario's [`Expected`] outcome and
//! checks the simulators' ledgers for double effects.
//!
//! A driver is also what a journey's end-to-end tests use to play the
//! customer, so the demo and the tests exercise the same paths.

pub mod alqimah_payment;
pub mod fleet;
pub mod mobily_esim;
pub mod mobitel_billing;
pub mod reach_port_in;
pub mod reach_purchase;
pub mod service_ops;

use async_trait::async_trait;
use handover_engine::{JourneyId, JourneyRecord};

use crate::stack::Stack;

/// How a scenario is expected to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// `completed`.
    Completed,
    /// `failed` with no compensation (a business refusal, a timeout the
    /// scenario provokes).
    Failed,
    /// `failed` or `cancelled` after its compensations ran.
    Compensated,
    /// `cancelled`.
    Cancelled,
}

/// One started journey of the fleet.
#[derive(Debug, Clone)]
pub struct DemoCase {
    /// The journey.
    pub id: JourneyId,
    /// The scenario's short name (`happy`, `not-eligible`, `wrong-otp-once`...).
    pub scenario: &'static str,
    /// How it must end.
    pub expect: Expected,
    /// Whatever the driver needs to remember to play the human side (e.g. the
    /// MSISDN, the OTP the customer types first).
    pub memo: serde_json::Value,
}

/// A failure of the demo's own driving (not of a journey).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DemoError(pub String);

impl DemoError {
    /// An error with this message.
    pub fn new(message: impl std::fmt::Display) -> Self {
        Self(message.to_string())
    }
}

/// Starts and assists the demo's journeys of one type.
#[async_trait]
pub trait DemoDriver: Send + Sync + std::fmt::Debug {
    /// The workflow's `NAME`.
    fn workflow(&self) -> &'static str;

    /// A short label for progress tables (`J6 service-ops`).
    fn label(&self) -> &'static str;

    /// Sets the simulators up for this journey type (behaviour knobs, world
    /// data such as customers and balances) before any journey starts, and
    /// again after nothing: it is called once.
    fn prepare(&self, stack: &Stack) {
        let _ = stack;
    }

    /// Starts the `i`-th journey of this type. The scenario is chosen from
    /// `i` deterministically (mostly happy paths, some business refusals and
    /// provoked failures at realistic rates).
    async fn start(&self, stack: &Stack, i: u64) -> Result<DemoCase, DemoError>;

    /// Plays the human or the world for an unfinished journey. Called
    /// repeatedly (every few hundred ms) for each unfinished journey with its
    /// latest record, also after an engine restart: it must be idempotent
    /// (sending the same signal twice is fine: give it a dedupe key).
    async fn assist(
        &self,
        stack: &Stack,
        case: &DemoCase,
        record: &JourneyRecord,
    ) -> Result<(), DemoError>;
}

/// Every journey type's driver.
pub fn drivers() -> Vec<Box<dyn DemoDriver>> {
    vec![
        Box::new(service_ops::ServiceOpsDriver),
        Box::new(reach_purchase::ReachPurchaseDriver),
        Box::new(reach_port_in::ReachPortInDriver),
        Box::new(alqimah_payment::AlQimahPaymentDriver),
        Box::new(mobitel_billing::MobitelBillingDriver),
        Box::new(mobily_esim::MobilyEsimDriver),
    ]
}
