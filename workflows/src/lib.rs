//! Handover's telecom journeys and the provider callback ingress.
//!
//! Each journey follows its section of `shared/spec/journeys.md`; each
//! module's docs map its states to the steps of the spec.
//!
//! | journey | module | workflow name | provider document |
//! |---|---|---|---|
//! | J6 service operations with event callbacks | [`service_ops`] | `service-ops.change` | `service-operations-v3.txt` |
//!
//! [`Providers`] holds the clients; [`registry`] registers every journey
//! whose provider is configured; [`ingress::router`] turns callbacks into
//! signals; [`stack::Stack`] runs all of it with the simulators on loopback
//! (tests, the demo, benchmarks).
#![warn(missing_docs)]

pub mod common;
pub mod ingress;
pub mod service_ops;
pub mod stack;

use std::sync::Arc;

use handover_adapters::{ProviderError, ProvidersConfig, ServiceOpsClient, ServiceOpsConfig};
use handover_engine::Registry;
use secrecy::SecretString;
use url::Url;

/// The provider clients the journeys use, and where providers reach us.
#[derive(Debug, Clone)]
pub struct Providers {
    /// Service operations.
    pub service_ops: Option<Arc<ServiceOpsClient>>,
    /// Our public base URL (callbacks, webhooks and payment returns are
    /// addressed under it).
    pub public_base_url: Url,
}

impl Providers {
    /// Builds the clients of every configured provider.
    pub fn from_config(
        config: &ProvidersConfig,
        public_base_url: Url,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            service_ops: config
                .service_ops
                .as_ref()
                .map(ServiceOpsClient::new)
                .transpose()?
                .map(Arc::new),
            public_base_url,
        })
    }
}

/// Every journey whose provider is configured in `providers`.
pub fn registry(providers: &Providers) -> Registry {
    let mut registry = Registry::new();
    if let Some(client) = &providers.service_ops {
        registry.register(service_ops::ServiceChange::new(client.clone()));
    }
    registry
}

/// Adds the journeys' scheduled jobs (provider catalog refreshes) to
/// `scheduler`.
pub fn schedules(
    scheduler: handover_engine::schedule::Scheduler,
    providers: &Providers,
) -> Result<handover_engine::schedule::Scheduler, handover_engine::schedule::ScheduleError> {
    let _ = providers;
    Ok(scheduler)
}

/// Every journey type, registered for tools that read and repair journeys
/// but run no steps (the `handover journeys` commands): they need each
/// workflow's types to decode states, show step names and retry budgets, and
/// validate `patch-state`. The clients point nowhere and are never called.
pub fn registry_for_tools() -> Registry {
    let nowhere = Url::parse("http://127.0.0.1:9/").expect("a valid literal URL");
    let placeholder = || SecretString::from("offline");
    let mut config = ProvidersConfig::default();
    config.service_ops = Some(ServiceOpsConfig::new(nowhere.clone(), placeholder()));
    match Providers::from_config(&config, nowhere) {
        Ok(providers) => registry(&providers),
        Err(e) => {
            tracing::warn!(error = %e, "could not build offline clients; journeys show without step details");
            Registry::new()
        }
    }
}
