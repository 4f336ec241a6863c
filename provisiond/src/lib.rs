//! provisiond's engine (issue 7, in progress): admission at the door over the planner ledger, one
//! atomic durable write per user action over `zos-cache`, and the job loop that runs workloads through
//! [`engine::Managers`] in ZOS's order.
//!
//! Not here yet: the `provision@0.0.1`/`statistics@0.0.1` zbus API, the reconciler, the managers that call storaged and networkd, `zosctl`, the daemon
//! and the node runtime.

#![warn(missing_docs)]

pub mod engine;
pub mod twins;

pub use engine::{Counters, Engine, EngineError, Managers, Outcome, UsersCounters};
pub use twins::TwinRegistry;
