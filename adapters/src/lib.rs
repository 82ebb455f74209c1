//! Provider adapters and simulators.
#![warn(missing_docs)]
