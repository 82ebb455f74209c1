//! Simulators of the providers, for tests and the demo.
//!
//! Each simulator is an axum server on its own loopback port (`127.0.0.1:0` unless a port
//! is given) with in-memory state, speaking its provider's wire format as documented in the
//! provider's client module. They share this framework:
//!
//! - [`Ledger`]: the effects a provider applied (charges, orders, activations...), keyed by
//!   the caller's ids, so a test asserts "charged exactly once".
//! - [`FaultPlan`] / [`FaultControl`] and [`Fault`]: deterministic, scriptable misbehaviour
//!   per endpoint and per call, applied before or after the effect as a real failure would.
//! - [`CallbackSender`]: callbacks with duplicated, delayed, reordered, early or lost
//!   delivery.
//! - [`RequestLog`]: every request as received, for wire-format assertions.
//! - A handle per simulator ([`MobitelSim`]) exposing the base URL, ledger, fault control,
//!   behaviour knobs and the "world" actions that play the human side (approve a USSD
//!   pop-up...).
//!
//! [`Simulators`] starts all of them at once for `handover sim` and the demo.

pub mod alqimah;
pub mod callback;
pub mod fault;
pub mod ledger;
pub mod mobily;
pub mod mobitel;
pub mod reach;
mod server;
pub mod service_ops;

use std::io;

use url::Url;

pub use self::alqimah::{AlQimahBehaviour, AlQimahSim, AlQimahSimConfig};
pub use self::callback::{
    Callback, CallbackSender, CallbackSettings, Delivery, DeliveryPlan, SentCallback,
};
pub use self::fault::{
    Endpoints, Fault, FaultControl, FaultPlan, FaultPlanError, FaultWire, InjectedFault,
    answer_fault,
};
pub use self::ledger::{Duplicate, Effect, EffectKind, Ledger};
pub use self::mobily::{MobilyBehaviour, MobilySim, MobilySimConfig};
pub use self::mobitel::{MobitelBehaviour, MobitelSim, MobitelSimConfig};
pub use self::reach::{ReachBehaviour, ReachSim, ReachSimConfig};
pub use self::server::{
    ConnHandle, MAX_REQUEST_BYTES, REQUEST_LOG_CAPACITY, RecordedRequest, RequestLog, SimListener,
    SimStream,
};
pub use self::service_ops::{
    EventOutcome, ServiceOpsBehaviour, ServiceOpsSim, ServiceOpsSimConfig,
};
use crate::config::ProvidersConfig;
use crate::error::Provider;

/// How to start [`Simulators`]: one section per simulator.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SimulatorsConfig {
    /// The Mobitel simulator.
    pub mobitel: MobitelSimConfig,
    /// The Al-Qimah simulator; its `webhook_url` is the knob for where webhooks go (the
    /// engine's ingress).
    pub alqimah: AlQimahSimConfig,
    /// The Reach simulator; `reach.callback_base` is where its callbacks go.
    pub reach: ReachSimConfig,
    /// The Mobily simulator (its `callbacks`, `nafath_webhook_override` and
    /// `three_ds_return_override` point webhooks and browser returns at the engine).
    pub mobily: MobilySimConfig,
    // Colleagues: `reach`, `alqimah`, `mobily`, `service_ops` sections go here.
    /// The service operations simulator; its `callback_base_url` is where it posts
    /// `success_event` / `error_event` (the engine's ingress).
    pub service_ops: ServiceOpsSimConfig,
}

impl SimulatorsConfig {
    /// Every simulator with the [`FaultPlan::chaos`] mix, seeded from `seed`.
    pub fn chaos(seed: u64, slow_ms: u64) -> Self {
        let mut config = Self::default();
        config.mobitel.faults = FaultPlan::chaos(seed, slow_ms);
        config.mobitel.seed = seed;
        config.alqimah.faults = FaultPlan::chaos(seed, slow_ms);
        config.alqimah.seed = seed;
        config.service_ops.faults = FaultPlan::chaos(seed, slow_ms);
        config.service_ops.seed = seed;
        config.reach.faults = FaultPlan::chaos(seed, slow_ms);
        config.reach.seed = seed;
        config.mobily.faults = FaultPlan::chaos(seed, slow_ms);
        config.mobily.seed = seed;
        config
    }
}

/// All available simulators, running. Stop when dropped.
#[derive(Debug)]
#[non_exhaustive]
pub struct Simulators {
    /// Mobitel Charging as a Service.
    pub mobitel: MobitelSim,
    /// Al-Qimah payment platform.
    pub alqimah: AlQimahSim,
    /// Service operations v3.
    pub service_ops: ServiceOpsSim,
    /// Reach plugAPI.
    pub reach: ReachSim,
    /// Mobily (eSIM checkout).
    pub mobily: MobilySim,
}

impl Simulators {
    /// Starts every simulator.
    pub async fn start(config: SimulatorsConfig) -> io::Result<Self> {
        // Boxed: the five start futures together are large, and every caller
        // (tests, the demo, `serve --simulators`) would otherwise carry them.
        Ok(Self {
            mobitel: Box::pin(MobitelSim::start(config.mobitel)).await?,
            alqimah: Box::pin(AlQimahSim::start(config.alqimah)).await?,
            service_ops: Box::pin(ServiceOpsSim::start(config.service_ops)).await?,
            reach: Box::pin(ReachSim::start(config.reach)).await?,
            mobily: Box::pin(MobilySim::start(config.mobily)).await?,
        })
    }

    /// Each simulator's provider and base URL.
    pub fn urls(&self) -> Vec<(Provider, Url)> {
        vec![
            (Provider::Mobitel, self.mobitel.base_url().clone()),
            (Provider::AlQimah, self.alqimah.base_url().clone()),
            (Provider::ServiceOps, self.service_ops.base_url().clone()),
            (Provider::Reach, self.reach.base_url().clone()),
            (Provider::Mobily, self.mobily.base_url().clone()),
        ]
    }

    /// Client configuration pointing every provider at its simulator, with the credentials
    /// the simulators accept.
    pub fn providers_config(&self) -> ProvidersConfig {
        ProvidersConfig {
            mobitel: Some(self.mobitel.client_config()),
            alqimah: Some(self.alqimah.client_config()),
            service_ops: Some(self.service_ops.client_config()),
            reach: Some(self.reach.client_config()),
            mobily: Some(self.mobily.client_config()),
        }
    }
}
