//! J1. Mobily eSIM checkout (`mobily-developer-portal.txt`, "eSIM Sequence Diagram").
//!
//! (Being written: see the module's issue. The journey registers itself in
//! [`register`].)

use handover_engine::Registry;

use crate::Providers;

/// Registers the journey when its provider is configured.
pub fn register(registry: &mut Registry, providers: &Providers) {
    let _ = (registry, providers);
}

/// Adds the journey's scheduled jobs (the provider catalog refresh).
pub fn schedules(
    scheduler: handover_engine::schedule::Scheduler,
    providers: &Providers,
) -> Result<handover_engine::schedule::Scheduler, handover_engine::schedule::ScheduleError> {
    let _ = providers;
    Ok(scheduler)
}
