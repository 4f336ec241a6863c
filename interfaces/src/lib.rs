//! The contracts between the node's modules, in one place (as ZOS keeps its interfaces in `pkg/` and
//! their stubs in `pkg/stubs`): every module's zbus interface with its types, service trait, typed
//! client and server dispatch, declared once with [`zos_zbus::interface!`], and the process contract
//! every daemon keeps with its supervisor ([`daemon`]: configuration, logs, shutdown, exit codes).
//!
//! A module's callers depend on this crate, never on the module's own crate: provisiond talks to
//! storaged and networkd through [`storage::StorageClient`] and [`network::NetworkClient`].

#![warn(missing_docs)]

pub mod daemon;
pub mod flist;
pub mod network;
pub mod provision;
pub mod storage;
pub mod vm;
