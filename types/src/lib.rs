//! The ZOS wire model, shared by every crate of zos-rs.
//!
//! A deployment written for ZOS reads here unchanged: JSON field names, units (bytes, binary
//! multiples), the per-type capacity table, validation rules and messages, the update diff and the
//! challenge hash are those of ZOS's `gridtypes` package (see `reference/zos-behaviour.md`).
//! Where ZOS has a known weakness we keep its wire format and fix the behaviour; each such place
//! says so in its docs.
//!
//! This crate does no I/O and never reads the clock.

#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::arithmetic_side_effects))]

mod capacity;
mod challenge;
mod deployment;
mod id;
mod limits;
mod request;
pub mod reservation;
mod result;
pub mod scenario;
pub mod text;
mod unit;
pub mod workload;

pub use capacity::Capacity;
pub use challenge::Challenge;
pub use deployment::{Deployment, KeyGetter, Signature, SignatureRequest, SignatureRequirement, Upgrade};
pub use id::{MAX_NAME_LEN, WorkloadId, network_id, validate_name};
pub use limits::Limits;
pub use request::TwinRequest;
pub use reservation::ReservationRecord;
pub use result::{ResultState, Timestamp, WorkloadResult};
pub use unit::Unit;
pub use workload::{Workload, WorkloadData, WorkloadType};

/// Re-exported so that callers can sign deployments without naming the crate.
pub use ed25519_dalek::{SigningKey, VerifyingKey};
