//! Block devices from `sys/block` under a root, with ZOS's exclusions (ram, zram, loop, floppy,
//! optical, USB, removable, empty), the rotational flag, and the seek-time probe ZOS uses instead of
//! trusting that flag.

use crate::sysfs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zos_types::Unit;
use zos_types::scenario::PoolKind;

/// A block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Kernel name, e.g. `vda`.
    pub name: String,
    /// Device node, e.g. `/dev/vda`.
    pub path: PathBuf,
    /// Size.
    pub size: Unit,
    /// The rotational flag (what the kernel, or a hypervisor, says; not the medium).
    pub rotational: bool,
    /// Model, when the device says.
    pub model: String,
    /// Partitions found under it.
    pub partitions: Vec<String>,
    /// Devices stacked on it (`sys/block/<name>/holders`: device-mapper, md, bcache).
    pub holders: Vec<String>,
}

/// The block devices of a machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockDevices {
    /// Devices ZOS may use, by name.
    pub disks: Vec<Disk>,
    /// Devices left out, by name, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Why ZOS leaves a device alone: ram, zram, loop, floppy, optical, USB, removable.
pub fn excluded(name: &str, sys: &Path) -> Option<&'static str> {
    for (prefix, what) in
        [("ram", "ram disk"), ("zram", "zram"), ("loop", "loop device"), ("fd", "floppy"), ("sr", "optical")]
    {
        if name.starts_with(prefix) {
            return Some(what);
        }
    }
    if sysfs::value(&sys.join("removable")).as_deref() == Some("1") {
        return Some("removable");
    }
    if std::fs::canonicalize(sys.join("device")).unwrap_or_default().to_string_lossy().contains("/usb") {
        return Some("USB");
    }
    None
}

/// Reads one device from `<root>/sys/block/<name>`; `None` when its size cannot be read.
pub fn read_disk(root: &Path, name: &str) -> Option<Disk> {
    let sys = root.join("sys/block").join(name);
    let sectors: u64 = sysfs::value(&sys.join("size"))?.parse().ok()?;
    let partitions = sysfs::entries(&sys)
        .into_iter()
        .filter(|(_, path)| path.join("partition").exists())
        .map(|(name, _)| name)
        .collect();
    let holders = sysfs::entries(&sys.join("holders")).into_iter().map(|(name, _)| name).collect();
    Some(Disk {
        name: name.to_string(),
        path: PathBuf::from("/dev").join(name),
        size: Unit(sectors.saturating_mul(512)),
        rotational: sysfs::value(&sys.join("queue/rotational")).as_deref() == Some("1"),
        model: sysfs::value(&sys.join("device/model")).unwrap_or_default(),
        partitions,
        holders,
    })
}

/// Every usable block device under `root`, and the ones left out with the reason.
pub fn discover(root: &Path) -> BlockDevices {
    let mut found = BlockDevices::default();
    for (name, sys) in sysfs::entries(&root.join("sys/block")) {
        if let Some(reason) = excluded(&name, &sys) {
            found.skipped.push((name, reason.to_string()));
            continue;
        }
        match read_disk(root, &name) {
            Some(disk) if disk.size > Unit::ZERO => found.disks.push(disk),
            _ => found.skipped.push((name, "empty".to_string())),
        }
    }
    found
}

/// Random reads slower than this on average mean a spinning disk.
pub const HDD_SEEK_THRESHOLD: Duration = Duration::from_millis(2);

/// The seek-time probe (ZOS measures seek time rather than trusting the rotational flag, which
/// hypervisors get wrong): 16 direct 4 KiB reads at random offsets; `None` when the device cannot be read.
pub fn seek_probe(device: &Path, size: Unit) -> Option<PoolKind> {
    let blocks = size.0 / 4096;
    if blocks == 0 {
        return None;
    }
    let mut offset: u64 = 0x9e37_79b9_7f4a_7c15;
    let started = std::time::Instant::now();
    for _ in 0..16 {
        offset = offset.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let block = (offset >> 11) % blocks;
        let status = std::process::Command::new("dd")
            .arg(format!("if={}", device.display()))
            .args(["of=/dev/null", "bs=4096", "count=1", "iflag=direct"])
            .arg(format!("skip={block}"))
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
    }
    let average = started.elapsed() / 16;
    // Each read also pays a process start (about 1 ms); a seek on a spinning disk costs 5 to 10 ms more.
    Some(if average > HDD_SEEK_THRESHOLD.saturating_add(Duration::from_millis(2)) {
        PoolKind::Hdd
    } else {
        PoolKind::Ssd
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn h100_snapshot_disks() {
        let found = discover(&fixture("h100-node"));
        let names: Vec<&str> = found.disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["vda", "vdb"]);
        assert_eq!(found.disks[0].size, Unit::gib(256));
        assert_eq!(found.disks[1].size, Unit(621_744 * 512));
        assert!(found.disks.iter().all(|d| d.rotational), "both report rotational");
        assert!(found.skipped.iter().any(|(name, why)| name == "zram0" && why == "zram"));
        assert!(found.skipped.iter().any(|(name, why)| name == "loop0" && why == "loop device"));
    }

    #[test]
    fn holders_are_read() {
        let root = tempfile::tempdir().expect("tempdir");
        let sys = root.path().join("sys/block/vdc");
        std::fs::create_dir_all(sys.join("holders/dm-0")).expect("holders");
        std::fs::write(sys.join("size"), "2048\n").expect("size");
        let disk = read_disk(root.path(), "vdc").expect("disk");
        assert_eq!(disk.holders, ["dm-0"]);
        assert!(discover(&fixture("dev-vm")).disks.iter().all(|d| d.holders.is_empty()));
    }

    #[test]
    fn dev_vm_snapshot_disks() {
        let found = discover(&fixture("dev-vm"));
        assert_eq!(found.disks.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["vda"]);
        assert_eq!(found.disks[0].size, Unit::gib(256));
    }

    #[test]
    fn live_machine_discovery_does_not_fail() {
        let found = discover(Path::new("/"));
        assert!(found.disks.iter().all(|d| !d.name.starts_with("loop") && d.size > Unit::ZERO));
        assert!(found.disks.len() + found.skipped.len() > 0, "this machine has block devices");
    }
}
