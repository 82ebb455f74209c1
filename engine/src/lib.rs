//! Handover's engine: durable journeys for telecom integrations.
//!
//! A journey is a persisted state machine. Each step of a [`Workflow`] calls
//! a provider and returns a [`Transition`]; the engine commits the new state,
//! its history entry and any timer or wait in one transaction, fenced by a
//! lease, so a journey resumes exactly where it was after a crash, a
//! timeout, a restart or a callback.
//!
//! - [`Engine`]: start journeys, send signals, run workers.
//! - [`Workflow`], [`StepCtx`], [`Transition`], [`Wait`]: what a journey author writes.
//! - [`store`]: SQLite (embedded default) and Postgres (multi-node) behind narrow traits.
//! - [`ingress`]: the HTTP routes that turn callbacks and customer actions into signals.
//! - [`admin`] and [`api`]: find, inspect and repair journeys (library and HTTP).
//!
//! See `engine/ARCHITECTURE.md` for the flow of one step from claim to commit.
#![warn(missing_docs)]

pub mod admin;
pub mod api;
mod clock;
mod context;
mod core;
mod engine;
mod error;
mod ids;
pub mod ingress;
mod metrics;
mod model;
mod registry;
mod retry;
mod sensitive;
pub mod store;
mod worker;
mod workflow;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock, Timestamp};
pub use context::{CompensationCtx, StepCtx};
pub use engine::{
    CancelOutcome, Engine, EngineBuilder, MAX_SIGNAL_PAYLOAD_BYTES, StartOptions, Started,
};
pub use error::{EngineError, InvalidInput, StepError, StoreError};
pub use ids::{
    Actor, BusinessKey, BusinessKeyKind, CorrelationKey, IdempotencyKey, JourneyId, SignalName,
    mask_msisdn,
};
pub use metrics::{Counter, Histogram, Metrics};
pub use model::{
    CancelRequest, Commit, CommitOutcome, Ending, HistoryEntry, HistoryKind, JourneyRecord,
    SignalRecord, Status,
};
pub use registry::Registry;
pub use retry::RetryPolicy;
pub use sensitive::{REDACTED, Sensitive, redact, redact_payload};
pub use store::{Delivery, DeliveryOutcome, NewSignal, SignalTarget};
pub use worker::{FaultHook, FaultPoint, WorkerConfig, WorkerHandle};
pub use workflow::{
    NoCompensation, ReceivedSignal, Start, StepInfo, Transition, Wait, Wake, Workflow,
};
