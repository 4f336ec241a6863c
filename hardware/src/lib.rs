//! Hardware discovery of a ZOS node: what a machine has, read from `/proc` and `/sys` under a root
//! directory (`/` on a node, or a captured snapshot such as `tests/fixtures/hardware/h100-node`).
//!
//! Every reader takes the root and does its I/O only below it (the live machine's `ip -j` output is
//! the one exception, read from a snapshot's `cmd/` instead), so a snapshot test and a real node run the
//! same code. `zos-plan discover`, storaged, networkd and provisiond all read the machine through
//! this crate.

#![warn(missing_docs)]

pub mod block;
pub mod cpu;
mod error;
pub mod gpu;
pub mod memory;
pub mod nic;
mod sysfs;

pub use error::HardwareError;

use std::path::Path;

/// Everything discovery found on one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hardware {
    /// Logical CPUs (threads).
    pub threads: u64,
    /// Memory: total and what the OS uses now.
    pub memory: memory::Memory,
    /// Block devices ZOS may use, and the ones left out with the reason.
    pub block: block::BlockDevices,
    /// Network interfaces, the default gateway and the management interface.
    pub network: nic::Network,
    /// GPUs (PCI display controllers).
    pub gpus: Vec<gpu::Gpu>,
}

impl Hardware {
    /// Reads the machine under `root`. Fails only when CPU or memory cannot be read; disks, NICs and
    /// GPUs that cannot be read are simply not there.
    pub fn read(root: &Path) -> Result<Hardware, HardwareError> {
        Ok(Hardware {
            threads: cpu::threads(root)?,
            memory: memory::Memory::read(root)?,
            block: block::discover(root),
            network: nic::discover(root),
            gpus: gpu::discover(root),
        })
    }
}

/// The hardware snapshots this repository carries, for tests.
#[cfg(test)]
fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hardware").join(name)
}
