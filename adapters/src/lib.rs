//! Provider adapters and simulators.
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod http;
pub mod mobitel;
pub mod redact;
pub mod sim;
pub mod token;

pub use config::{ConfigError, HttpSettings, MobitelConfig, ProvidersConfig};
pub use error::{ErrorClass, Operation, Provider, ProviderError};
pub use mobitel::{ConfirmOutcome, MobitelClient};
