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
    /// Each pool's disk and how its kind was decided.
    pub classified: Vec<(String, String)>,
}

/// Kind overrides given by the operator (`--ssd vda`, `--hdd vdb`).
pub struct Overrides<'a> {
    pub ssd: &'a [String],
    pub hdd: &'a [String],
}

/// How a disk's kind was decided, and why (shown next to each pool).
fn classify(disk: &zos_hardware::block::Disk, overrides: &Overrides<'_>, live: bool) -> (PoolKind, &'static str) {
    if overrides.ssd.contains(&disk.name) {
        return (PoolKind::Ssd, "--ssd");
    }
    if overrides.hdd.contains(&disk.name) {
        return (PoolKind::Hdd, "--hdd");
    }
    // ZOS measures seek time rather than trusting the rotational flag, which hypervisors get wrong.
    if live && let Some(kind) = zos_hardware::block::seek_probe(&disk.path, disk.size) {
        return (kind, "seek-time probe");
    }
    if disk.name.starts_with("vd") || disk.name.starts_with("xvd") {
        return (PoolKind::Ssd, "virtual disk: its rotational flag is the hypervisor's; taken as SSD");
    }
    if disk.rotational { (PoolKind::Hdd, "rotational flag") } else { (PoolKind::Ssd, "rotational flag") }
}

/// The node a machine makes: one pool per usable disk, its kind from the overrides, else the seek-time
/// probe on the live machine, else (a snapshot, or an unreadable disk) SSD for a virtual disk and the
/// rotational flag for any other.
pub fn node(hardware: Hardware, overrides: &Overrides<'_>, live: bool) -> Discovery {
    let mut classified = Vec::new();
    let pools = hardware
        .block
        .disks
        .into_iter()
        .map(|disk| {
            let (kind, why) = classify(&disk, overrides, live);
            classified.push((disk.name.clone(), why.to_string()));
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
    Discovery { node, network: hardware.network, skipped_disks: hardware.block.skipped, classified }
}
