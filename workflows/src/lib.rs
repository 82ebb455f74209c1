//! Handover's telecom journeys and the provider callback ingress.
//!
//! Each journey follows its section of `shared/spec/journeys.md`; each
//! module's docs map its states to the steps of the spec.
#![warn(missing_docs)]

use handover_engine::Registry;

/// Every journey type, registered for tools that read and repair journeys
/// but run no steps (the `handover journeys` commands): they need each
/// workflow's types to decode states, show step names and retry budgets, and
/// validate `patch-state`.
pub fn registry_for_tools() -> Registry {
    Registry::new()
}
