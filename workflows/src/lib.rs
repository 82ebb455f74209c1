//! Handover's telecom journeys and the provider callback ingress.
//!
//! Each journey follows its section of `shared/spec/journeys.md`; each
//! module's docs map its states to the steps of the spec.
//!
//! | journey | module | workflow name | provider document |
//! |---|---|---|---|
//! | J1 Mobily eSIM checkout (17 steps) | [`mobily_esim`] | `mobily.esim-checkout` | `mobily-developer-portal.txt` |
//! | J2 Reach purchase, pay, activate | [`reach_purchase`] | `reach.purchase` | `reach-plugapi-guide.txt` |
//! | J3 Reach number port-in with correction loop | [`reach_port_in`] | `reach.port-in` | `reach-plugapi-guide.txt` |
//! | J4 Al-Qimah payment with pending re-check | [`alqimah_payment`] | `alqimah.payment` | `alqimah-rest-api.txt` |
//! | J5 Mobitel carrier billing | [`mobitel_billing`] | `mobitel.carrier-billing` | `mobitel-caas.txt` |
//! | J6 service operations with event callbacks | [`service_ops`] | `service-ops.change` | `service-operations-v3.txt` |
//!
//! [`Providers`] holds the clients; [`registry`] registers every journey
//! whose provider is configured; [`ingress::router`] turns callbacks into
//! signals; [`stack::Stack`] runs all of it with the simulators on loopback
//! (tests, the demo, benchmarks).
#![warn(missing_docs)]

pub mod alqimah_payment;
pub mod common;
pub mod demo;
pub mod ingress;
pub mod mobily_esim;
pub mod mobitel_billing;
pub mod reach_port_in;
pub mod reach_purchase;
pub mod service_ops;
pub mod stack;

use std::sync::Arc;

use handover_adapters::reach::ApiKeyLimiters;
use handover_adapters::{
    AlQimahClient, AlQimahConfig, MobilyCallbacks, MobilyClient, MobilyConfig, MobitelClient,
    MobitelConfig, ProviderError, ProvidersConfig, ReachClient, ReachConfig, ServiceOpsClient,
    ServiceOpsConfig,
};
use handover_engine::Registry;
use secrecy::SecretString;
use url::Url;

/// The provider clients the journeys use, and where providers reach us.
#[derive(Debug, Clone)]
pub struct Providers {
    /// Mobily (J1).
    pub mobily: Option<Arc<MobilyClient>>,
    /// Reach (J2, J3).
    pub reach: Option<Arc<ReachClient>>,
    /// Al-Qimah (J4).
    pub alqimah: Option<Arc<AlQimahClient>>,
    /// Mobitel (J5).
    pub mobitel: Option<Arc<MobitelClient>>,
    /// Service operations (J6).
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
        // Reach limits per API key: every client of one key shares one limiter.
        let reach_limiters = ApiKeyLimiters::new();
        Ok(Self {
            mobily: config
                .mobily
                .as_ref()
                .map(MobilyClient::new)
                .transpose()?
                .map(Arc::new),
            reach: config
                .reach
                .as_ref()
                .map(|c| ReachClient::new(c, &reach_limiters))
                .transpose()?
                .map(Arc::new),
            alqimah: config
                .alqimah
                .as_ref()
                .map(AlQimahClient::new)
                .transpose()?
                .map(Arc::new),
            mobitel: config
                .mobitel
                .as_ref()
                .map(MobitelClient::new)
                .transpose()?
                .map(Arc::new),
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
    mobily_esim::register(&mut registry, providers);
    reach_purchase::register(&mut registry, providers);
    reach_port_in::register(&mut registry, providers);
    alqimah_payment::register(&mut registry, providers);
    mobitel_billing::register(&mut registry, providers);
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
    let scheduler = mobily_esim::schedules(scheduler, providers)?;
    reach_purchase::schedules(scheduler, providers)
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
    config.mobitel = Some(MobitelConfig::new(nowhere.clone(), placeholder()));
    config.reach = Some(ReachConfig::new(
        nowhere.clone(),
        placeholder(),
        placeholder(),
    ));
    config.alqimah = Some(AlQimahConfig::new(
        nowhere.clone(),
        "0",
        "offline",
        placeholder(),
        placeholder(),
    ));
    config.mobily = MobilyConfig::new(
        nowhere.clone(),
        placeholder(),
        "offline",
        placeholder(),
        MobilyCallbacks {
            nafath_webhook_url: nowhere.clone(),
            nafath_webhook_username: "offline".into(),
            nafath_webhook_password: SecretString::from("offline-placeholder-password"),
            payment_return_url: nowhere.clone(),
        },
    )
    .map_err(|e| tracing::warn!(error = %e, "offline Mobily configuration refused"))
    .ok();
    match Providers::from_config(&config, nowhere) {
        Ok(providers) => registry(&providers),
        Err(e) => {
            tracing::warn!(error = %e, "could not build offline clients; journeys show without step details");
            Registry::new()
        }
    }
}
