//! GPUs: PCI display controllers (class `0x03xxxx`) under `sys/bus/pci/devices`.

use crate::sysfs;
use std::path::Path;

/// A GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// PCI slot, e.g. `0000:00:06.0`.
    pub slot: String,
    /// Vendor id in hex without `0x`, e.g. `10de`.
    pub vendor: String,
    /// Device id in hex without `0x`.
    pub device: String,
}

/// Every PCI display controller under `root`, by slot.
pub fn discover(root: &Path) -> Vec<Gpu> {
    sysfs::entries(&root.join("sys/bus/pci/devices"))
        .into_iter()
        .filter(|(_, path)| sysfs::value(&path.join("class")).is_some_and(|class| class.starts_with("0x03")))
        .map(|(slot, path)| {
            let hex =
                |file: &str| sysfs::value(&path.join(file)).unwrap_or_default().trim_start_matches("0x").to_string();
            Gpu { slot, vendor: hex("vendor"), device: hex("device") }
        })
        .collect()
}
