//! Reach's callbacks (`POST /apisvc/v0/notification/callback`, `POST /apisvc/v0/notification`) and the customer's return from the payment page (`?transId=`).
//!
//! (Being written.)
//!
//! The contract the Reach journeys (J2, J3) rely on:
//!
//! | what arrives | becomes |
//! |---|---|
//! | `PRODUCT_PURCHASE` / `PURCHASE_SUBSEQUENT` callback | signal [`PURCHASE_SIGNAL`] to correlation `reach.txn:<transactionId>` |
//! | `ACTIVATION` callback (also port-in progress) | signal [`ACTIVATION_SIGNAL`] to correlation `reach.customer:<customerId>` |
//! | notifications (`USAGE_NOTIFICATION`, `PORT_OUT`...) | signal [`NOTIFICATION_SIGNAL`] to correlation `reach.customer:<customerId>` (stored; unmatched ones are reported) |
//! | the customer's return from the payment page (`GET {RETURN_PATH}?transId=`) | signal [`PAYMENT_RETURN_SIGNAL`] to correlation `reach.txn:<transId>` |
//!
//! The payload of a callback signal is the callback's JSON body as Reach sent
//! it, once `handover_adapters::reach::callbacks::parse_callback` (or
//! `parse_notification`) accepted it: journeys parse it again with the same
//! function. The payment return's payload is `{"transId": "..."}`. A callback
//! is a wake-up hint: the journey confirms with the status endpoint before
//! acting on money or inventory.

use axum::Router;
use handover_adapters::ProvidersConfig;
use handover_adapters::sim::Simulators;
use handover_engine::Engine;
use url::Url;

use super::IngressSettings;

/// Purchase callbacks (`PRODUCT_PURCHASE`, `PURCHASE_SUBSEQUENT`).
pub const PURCHASE_SIGNAL: &str = "reach.purchase";
/// `ACTIVATION` callbacks (activation and port-in progress).
pub const ACTIVATION_SIGNAL: &str = "reach.activation";
/// Real-time notifications.
pub const NOTIFICATION_SIGNAL: &str = "reach.notification";
/// The customer came back from the payment page.
pub const PAYMENT_RETURN_SIGNAL: &str = "reach.payment-return";
/// Where the payment page sends the customer back (`redirectUrl`).
pub const RETURN_PATH: &str = "/returns/reach";

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
