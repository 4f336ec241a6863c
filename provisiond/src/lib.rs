//! provisiond's engine (issue 7, in progress): admission at the door over the planner ledger, one
//! atomic durable write per user action over `zos-cache`, and the job loop that runs workloads through
//! [`engine::Managers`] in ZOS's order.
//!
//! Not here yet: the reconciler, the node runtime command, and the end-to-end tests with real daemons.

#![warn(missing_docs)]

mod door;
pub mod engine;
pub mod modules;
mod service;
pub mod twins;
pub mod zmachine;

pub use engine::{Engine, EngineError, Managers, Outcome};
pub use service::Service;
pub use twins::TwinRegistry;
pub use zos_interfaces::provision::{Counters, StateChange, UsersCounters};
