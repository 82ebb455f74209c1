//! The Al-Qimah webhook (`GET` with the documented query string, `WebHookCode` checked in constant time).
//!
//! (Being written.)

use axum::Router;
use handover_adapters::ProvidersConfig;
use handover_adapters::sim::Simulators;
use handover_engine::Engine;
use url::Url;

use super::IngressSettings;

/// The routes.
pub fn routes(engine: Engine, settings: &IngressSettings) -> Router {
    let _ = (engine, settings);
    Router::new()
}

/// Points the simulator's callbacks at the ingress listening at `ingress_url`,
/// and the client's configuration (`clients`) at our routes under it.
pub fn wire_simulator(
    sims: &Simulators,
    ingress_url: &Url,
    clients: &mut ProvidersConfig,
) -> Result<(), url::ParseError> {
    let _ = (sims, ingress_url, clients);
    Ok(())
}
