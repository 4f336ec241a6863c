//! The capacity ledger of a ZOS node: it admits or rejects workloads against what the node has.
//!
//! One [`Ledger::admit`] serves every caller (provisiond at the door, `zos-plan`, the tests): it
//! walks ZOS's rules (memory as ZOS counts it, disks by storaged's placement rules, and under the
//! `strict` policy CPU, GPUs and public IPv4) and answers a [`Verdict`]: what the workload holds,
//! or every [`Shortfall`] with its numbers. A rejection is a value, never an error. Within a
//! deployment, a workload whose dependency was refused is refused too ([`dependents_of_failed`] is the
//! same rule for a job loop at run time).
//!
//! The ledger keeps running counters, so the cost of a decision does not grow with the number of
//! reservations. All capacity math saturates or is checked.
//!
//! This crate does no I/O and never reads the clock; only the `zos-plan` binary touches files.

#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::arithmetic_side_effects))]

pub mod admission;
pub mod check;
mod demand;
pub mod document;
pub mod headroom;
mod ledger;
pub mod order;
pub mod placement;
mod pool;
pub mod synthetic;
mod verdict;

pub use admission::{DeploymentVerdict, InvalidWorkload, Undo, WorkloadVerdict};
pub use demand::Demand;
pub use ledger::{Ledger, Reservation, RestoreError, Usage, default_reserved_mru};
pub use order::{DependentFailure, dependencies, dependents_of_failed, failed_dependencies};
pub use pool::{Pool, Pools, kind_of};
pub use verdict::{Assignment, PoolPicture, Reason, Resource, Shortfall, Verdict};
pub use zos_types::reservation::{DiskDemand, DiskRole};
