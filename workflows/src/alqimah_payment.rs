//! J4. Al-Qimah payment with pending re-check (`alqimah-rest-api.txt`).
//!
//! (Being written: see the module's issue. The journey registers itself in
//! [`register`].)

use handover_engine::Registry;

use crate::Providers;

/// Registers the journey when its provider is configured.
pub fn register(registry: &mut Registry, providers: &Providers) {
    let _ = (registry, providers);
}
