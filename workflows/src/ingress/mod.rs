//! The provider callback ingress: each provider's routes, mounted beside the
//! engine's generic `POST /journeys/{id}/signals/{name}`.
//!
//! Every route follows the engine's ingress rules
//! ([`handover_engine::ingress`]): persisted before the 2xx, 413 before
//! parsing, 401/400 with nothing written, duplicates acknowledged and
//! ignored, unknown keys stored and reported, 503 when the store is down.
//!
//! | route | provider | becomes |
//! |---|---|---|
//! | `POST /callbacks/service-ops/success_event`, `/error_event` | service operations | signal `service-ops.event` to the journey with that `Request-Correlation-Id` |
//! | `POST /apisvc/v0/notification/callback`, `/apisvc/v0/notification` | Reach | signals `reach.purchase` / `reach.activation` / `reach.notification` by `reach.txn:` or `reach.customer:` (see [`reach`]) |
//! | `GET /returns/reach?transId=` | the customer's browser after Reach's payment page | signal `reach.payment-return` to `reach.txn:<transId>` |
//! | `GET /callbacks/alqimah/webhook?OperationStatus=&WebHookCode=&TransactionID=...` | Al-Qimah | signal to the `alqimah.payment` journey of that `TransactionID`, after its `WebHookCode` matched in constant time (see [`alqimah`]) |
//! | `POST /ingress/mobily/nafath` | Mobily Nafath (Basic auth we issue) | signal to the journey of that Nafath request (see [`mobily`]) |
//! | `GET /ingress/mobily/3ds-return` | the customer's browser after the 3-D Secure page | signal to the journey of that payment (see [`mobily`]) |
//! | `POST /journeys/{id}/signals/{name}` | customer apps (bearer token) | signal `name` to journey `id` |
//!
//! [`router`] is what `handover serve` listens with; embedders mount it in
//! their own axum service.

pub mod alqimah;
pub mod mobily;
pub mod reach;
pub mod service_ops;

use axum::Router;
use handover_adapters::ProvidersConfig;
use handover_adapters::sim::Simulators;
use handover_engine::Engine;
use handover_engine::ingress::{self, DEFAULT_BODY_LIMIT_BYTES, IngressConfig};
use secrecy::SecretString;
use url::Url;

/// The ingress's settings.
#[derive(Clone)]
pub struct IngressSettings {
    /// Bearer tokens of customer-facing apps (the generic signal route).
    pub app_tokens: Vec<SecretString>,
    /// The largest accepted body on the generic route.
    pub body_limit_bytes: usize,
    /// Basic credentials Reach's callbacks must carry (`None`: none asked).
    pub reach_callback_auth: Option<reach::ReachCallbackAuth>,
    /// The Basic-auth pair we issued to Mobily for the Nafath webhook
    /// (`None`: every webhook is refused).
    pub mobily_nafath: Option<handover_adapters::mobily::WebhookCredentials>,
}

impl std::fmt::Debug for IngressSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressSettings")
            .field(
                "app_tokens",
                &format!("[{} redacted]", self.app_tokens.len()),
            )
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("reach_callback_auth", &self.reach_callback_auth)
            .field("mobily_nafath", &self.mobily_nafath)
            .finish()
    }
}

impl Default for IngressSettings {
    fn default() -> Self {
        Self {
            app_tokens: Vec::new(),
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            reach_callback_auth: None,
            mobily_nafath: None,
        }
    }
}

/// Every ingress route, sharing `engine`.
pub fn router(engine: Engine, settings: &IngressSettings) -> Router {
    let generic = IngressConfig {
        app_tokens: settings.app_tokens.clone(),
        body_limit_bytes: settings.body_limit_bytes,
    };
    ingress::router(engine.clone(), &generic)
        .merge(service_ops::routes(engine.clone()))
        .merge(reach::routes(engine.clone(), settings))
        .merge(alqimah::routes(engine.clone(), settings))
        .merge(mobily::routes(engine, settings))
}

/// Points every simulator's callbacks, webhooks and browser returns at the
/// ingress listening at `ingress_url`, and returns the clients'
/// configuration for talking to the simulators (with our webhook and return
/// URLs under `ingress_url`). The loopback [`crate::stack::Stack`] and
/// `handover serve --simulators` start with this.
pub fn wire_simulators(
    sims: &Simulators,
    ingress_url: &Url,
) -> Result<ProvidersConfig, url::ParseError> {
    let mut clients = sims.providers_config();
    sims.service_ops
        .set_callback_base_url(ingress_url.join(service_ops::BASE_PATH)?);
    reach::wire_simulator(sims, ingress_url, &mut clients)?;
    alqimah::wire_simulator(sims, ingress_url, &mut clients)?;
    mobily::wire_simulator(sims, ingress_url, &mut clients)?;
    Ok(clients)
}
