//! Telecom journeys.
#![warn(missing_docs)]
