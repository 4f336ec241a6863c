//! networkd: discovers the node's network and gives workloads their network resources
//! (reference/zos-behaviour.md section 4).
//!
//! A `network` workload becomes a network resource: a namespace `n-<netid>` that routes for the
//! subnet (its `.1`), a bridge `b-<netid>` that VM taps join, a link into the node's NAT namespace with
//! a lease from 100.127/16, and a WireGuard interface `w-<netid>` where the kernel has WireGuard.
//! Public IPv4 addresses come from the node's pool (the config); the planner decides which address a
//! workload gets, networkd applies it on a `p-` tap. Names and addresses are ZOS's, derived from the
//! network id, so they are the same on every run.

#![warn(missing_docs)]

pub mod address;
pub mod config;
pub mod network;
mod service;

pub use config::Config;
pub use network::{NetError, Networker};
