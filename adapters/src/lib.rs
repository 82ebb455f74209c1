//! Typed HTTP clients for Handover's telecom providers, and faithful simulators of each.
//!
//! # What is here
//!
//! - [`error`]: [`ProviderError`], the one error type of every provider call, and
//!   [`ErrorClass`] (`Terminal`, `Retryable { retry_after }`, `OutcomeUnknown`), which the
//!   workflow layer maps onto the engine's step errors.
//! - [`http`]: the shared HTTP layer: per-provider timeouts and rate limiter, bounded bodies,
//!   and the classification of every outcome by whether the call was effectful.
//! - [`config`]: provider configuration from TOML and `HANDOVER_<PROVIDER>_<FIELD>`
//!   environment variables; credentials are `secrecy::SecretString`.
//! - [`token`]: a single-flight access-token cache for providers with short-lived tokens.
//! - [`redact`]: masking of MSISDNs and sanitizing of provider messages.
//! - Provider clients: [`mobitel`] (Charging as a Service). Reach, Al-Qimah, Mobily and
//!   service operations follow the same pattern (see `adapters/README.md`).
//! - [`alqimah`]: the Al-Qimah payment platform (login token, payments with pending
//!   re-checks, reconciliation by `TransactionID`, the inbound webhook parser).
//! - [`service_ops`]: service operations v3 (create a service, update a service device)
//!   and the parsers of its `success_event` / `error_event` callbacks.
//! - [`mobily`]: Mobily's developer-portal APIs for the 17-step eSIM checkout (journey J1),
//!   with the inbound Nafath webhook and 3-D Secure return parsers.
//! - [`sim`]: the simulators, their shared framework (ledger of effects, fault plans,
//!   callback delivery) and [`sim::Simulators`] to start them all.
//!
//! # Example
//!
//! A charge against the Mobitel simulator, the customer approving on their phone:
//!
//! ```
//! use handover_adapters::mobitel::{Amount, ChargeRequest, Receiver};
//! use handover_adapters::sim::{MobitelSim, MobitelSimConfig};
//! use handover_adapters::{ConfirmOutcome, MobitelClient};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = MobitelSim::start(MobitelSimConfig::default()).await?;
//! let client = MobitelClient::new(&sim.client_config())?;
//!
//! let request = ChargeRequest {
//!     amount: Amount::rupees(5)?,
//!     receiver: Receiver::parse("0712755777")?,
//! };
//! let reference = client.charge_request(&request).await?.reference;
//! assert!(matches!(client.confirm(&reference).await?, ConfirmOutcome::Pending { .. }));
//!
//! sim.approve(reference.as_str())?; // the customer presses "OK" on the USSD pop-up
//! assert!(matches!(client.confirm(&reference).await?, ConfirmOutcome::Approved { .. }));
//! assert_eq!(
//!     sim.ledger().count(handover_adapters::sim::EffectKind::Charge, reference.as_str()),
//!     1
//! );
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod alqimah;
pub mod config;
pub mod error;
pub mod http;
pub mod mobily;
pub mod mobitel;
pub mod reach;
pub mod redact;
pub mod service_ops;
pub mod sim;
pub mod token;

pub use alqimah::AlQimahClient;
pub use config::AlQimahConfig;
pub use config::ReachConfig;
pub use config::ServiceOpsConfig;
pub use config::{ConfigError, HttpSettings, MobitelConfig, ProvidersConfig};
pub use config::{MobilyCallbacks, MobilyConfig};
pub use error::{ErrorClass, Operation, Provider, ProviderError};
pub use mobily::MobilyClient;
pub use mobitel::{ConfirmOutcome, MobitelClient};
pub use reach::ReachClient;
pub use service_ops::ServiceOpsClient;
