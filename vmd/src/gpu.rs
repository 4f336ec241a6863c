//! PCI passthrough of the GPUs the ledger granted: vfio needs an IOMMU, and a device is bound to
//! `vfio-pci` before the hypervisor opens it.

use crate::error::{Result, VmError};
use std::path::Path;

/// Whether the kernel has IOMMU groups (an IOMMU is on).
pub fn iommu_present(sys: &Path) -> bool {
    std::fs::read_dir(sys.join("kernel/iommu_groups")).map(|mut d| d.next().is_some()).unwrap_or(false)
}

/// Whether `slot` is a PCI address (`0000:41:00.0`).
pub fn valid_slot(slot: &str) -> bool {
    let parts: Vec<&str> = slot.split([':', '.']).collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    parts.len() == 4 && hex(parts[0], 4) && hex(parts[1], 2) && hex(parts[2], 2) && hex(parts[3], 1)
}

/// Binds `slot` to `vfio-pci` (driver override, unbind, reprobe), unless it is bound already.
pub fn bind_vfio(sys: &Path, slot: &str) -> Result<()> {
    let device = sys.join("bus/pci/devices").join(slot);
    if !device.exists() {
        return Err(VmError::NotFound(format!("PCI device {slot}")));
    }
    let driver = std::fs::read_link(device.join("driver")).ok();
    if driver.as_ref().and_then(|d| d.file_name()).is_some_and(|n| n == "vfio-pci") {
        return Ok(());
    }
    let io = |what: &str| VmError::io(format!("{what} for {slot}"));
    std::fs::write(device.join("driver_override"), "vfio-pci").map_err(io("set the driver override"))?;
    if driver.is_some() {
        std::fs::write(device.join("driver/unbind"), slot).map_err(io("unbind the driver"))?;
    }
    std::fs::write(sys.join("bus/pci/drivers_probe"), slot).map_err(io("probe vfio-pci"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_iommu() {
        assert!(valid_slot("0000:41:00.0"));
        for bad in ["41:00.0", "0000:41:00", "0000:4g:00.0", "../../x"] {
            assert!(!valid_slot(bad), "{bad}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!iommu_present(dir.path()));
        std::fs::create_dir_all(dir.path().join("kernel/iommu_groups/0")).expect("mkdir");
        assert!(iommu_present(dir.path()));
        assert!(matches!(bind_vfio(dir.path(), "0000:41:00.0"), Err(VmError::NotFound(_))));
    }
}
