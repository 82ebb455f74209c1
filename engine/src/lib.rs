//! Handover engine.
#![warn(missing_docs)]
