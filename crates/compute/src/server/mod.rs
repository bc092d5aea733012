//! Servers: the stored record ([`model`]), its persistence ([`store`]),
//! Nova's state rules ([`state`]) and the instance action log
//! ([`actions`]). The API validates and records requests; the conductor
//! drives a server through its states with the scheduler and the host's
//! driver.

pub mod actions;
pub mod model;
pub mod state;
pub mod store;

pub use model::{Fault, FlavorSnapshot, NicRequest, Server, ServerAction, TaskState, VmState};
