//! Contract tests: the Reach client against the Reach simulator over real HTTP on loopback.
//! The wire format is asserted on the simulator's side, from the raw requests it received,
//! so a drift between the chosen names and the client shows up here. Callbacks are received
//! by a small ingress server and parsed with the client's parsers.

#[path = "reach_contract/support.rs"]
mod support;

#[path = "reach_contract/auth.rs"]
mod auth;
#[path = "reach_contract/callbacks.rs"]
mod callbacks;
#[path = "reach_contract/chaos.rs"]
mod chaos;
#[path = "reach_contract/checks.rs"]
mod checks;
#[path = "reach_contract/errors.rs"]
mod errors;
#[path = "reach_contract/lines.rs"]
mod lines;
#[path = "reach_contract/port_in.rs"]
mod port_in;
#[path = "reach_contract/purchase.rs"]
mod purchase;
