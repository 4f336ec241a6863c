//! storaged: owns every disk of the node (reference/zos-behaviour.md section 3).
//!
//! Each usable whole disk becomes one btrfs pool (label `zos-...`, mounted under the mount root, quotas
//! on); volumes are subvolumes with a qgroup limit, vdisks are NOCOW fully allocated files in a
//! `vdisks` subvolume, zdb devices are HDD pools with a `zdb` subvolume. Usage is reservation-based, as
//! in ZOS. Placement is the planner's code (`zos_planner::Pools`), not a copy.
//!
//! Never destroys data: a disk with partitions, a filesystem we did not create, or a label we do not
//! own is reported (`BrokenDevices`) and left untouched.

#![warn(missing_docs)]

pub mod btrfs;
pub mod cache_volume;
mod command;
pub mod config;
pub mod device;
mod error;
mod service;
pub mod storage;

pub use config::Config;
pub use error::{StorageError, validate_name};
pub use storage::Storage;
