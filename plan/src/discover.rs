//! This machine (or a snapshot under a root) as a ZOS node: what `zos_hardware` reads, with the
//! operator's kind overrides, turned into the `node` object of a scenario.

use zos_hardware::Hardware;
use zos_hardware::nic::Network;
use zos_types::scenario::{GpuSpec, NodeSpec, PoolKind, PoolSpec};

/// What discovery found.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub node: NodeSpec,
    pub network: Network,
    /// Block devices left out, and why.
    pub skipped_disks: Vec<(String, String)>,
}

/// Kind overrides given by the operator (`--ssd vda`, `--hdd vdb`).
pub struct Overrides<'a> {
    pub ssd: &'a [String],
    pub hdd: &'a [String],
}

/// The node a machine makes: one pool per usable disk, its kind from the overrides or else the
/// rotational flag.
pub fn node(hardware: Hardware, overrides: &Overrides<'_>) -> Discovery {
    let pools = hardware
        .block
        .disks
        .into_iter()
        .map(|disk| {
            let kind = if overrides.ssd.contains(&disk.name) {
                PoolKind::Ssd
            } else if overrides.hdd.contains(&disk.name) || disk.rotational {
                PoolKind::Hdd
            } else {
                PoolKind::Ssd
            };
            PoolSpec {
                name: disk.name,
                kind,
                size: disk.size,
                used: zos_types::Unit::ZERO,
                mounted: true,
                vdisks: false,
                zdb: false,
            }
        })
        .collect();
    let gpus =
        hardware.gpus.into_iter().map(|gpu| GpuSpec { id: gpu.slot, vendor: gpu.vendor, device: gpu.device }).collect();
    let node = NodeSpec {
        cru: hardware.threads,
        mru: hardware.memory.total,
        os_used_mru: hardware.memory.os_used,
        pools,
        public_ips: Vec::new(),
        gpus,
    };
    Discovery { node, network: hardware.network, skipped_disks: hardware.block.skipped }
}
