//! Handover: a durable workflow / saga engine for telecom integration journeys.
//!
//! This crate is the facade: it re-exports the engine, the provider adapters
//! and the telecom journeys, so an embedding service depends on one crate.
//!
//! - [`engine`]: the runtime (workflow API, stores, workers, ingress, admin).
//! - [`adapters`]: typed clients for the providers, and their simulators.
//! - [`workflows`]: the six telecom journeys and the provider callback routes.
#![warn(missing_docs)]

pub use handover_adapters as adapters;
pub use handover_engine as engine;
pub use handover_workflows as workflows;

pub use handover_engine::{
    Engine, JourneyId, StepCtx, StepError, StepInfo, Transition, Wait, Workflow,
};
