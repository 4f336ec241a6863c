//! provisiond's engine: admission at the door over the planner ledger (batched, one durable write per
//! batch over `zos-cache`), the job loop that runs workloads through [`engine::Managers`] in ZOS's
//! order, the module managers over zbus ([`modules`], with the zmachine path and the reconciler), and
//! the `provision` and `statistics` services the daemon serves.

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
