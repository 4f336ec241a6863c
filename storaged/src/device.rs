//! Block-device discovery from `/sys/block` under a root (`/`, or a hardware snapshot), with ZOS's
//! exclusions, and the filesystem signature a device carries (`blkid -p`).

use crate::command::run;
use std::path::{Path, PathBuf};
use zos_types::Unit;

/// A block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Kernel name, e.g. `vda`.
    pub name: String,
    /// Device node, e.g. `/dev/vda`.
    pub path: PathBuf,
    /// Size.
    pub size: Unit,
    /// The rotational flag.
    pub rotational: bool,
    /// Model, when the device says.
    pub model: String,
    /// Partitions found under it.
    pub partitions: Vec<String>,
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Why ZOS leaves a device alone: ram, zram, loop, floppy, optical, USB, removable, empty.
pub fn excluded(name: &str, sys: &Path) -> Option<&'static str> {
    for (prefix, what) in
        [("ram", "ram disk"), ("zram", "zram"), ("loop", "loop device"), ("fd", "floppy"), ("sr", "optical")]
    {
        if name.starts_with(prefix) {
            return Some(what);
        }
    }
    if read(&sys.join("removable")).as_deref() == Some("1") {
        return Some("removable");
    }
    if std::fs::canonicalize(sys.join("device")).unwrap_or_default().to_string_lossy().contains("/usb") {
        return Some("USB");
    }
    None
}

/// Reads one device from `<root>/sys/block/<name>`.
pub fn read_disk(root: &Path, name: &str) -> Option<Disk> {
    let sys = root.join("sys/block").join(name);
    let sectors: u64 = read(&sys.join("size"))?.parse().ok()?;
    let mut partitions: Vec<String> = std::fs::read_dir(&sys)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|entry| entry.path().join("partition").exists())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    partitions.sort();
    Some(Disk {
        name: name.to_string(),
        path: PathBuf::from("/dev").join(name),
        size: Unit(sectors.saturating_mul(512)),
        rotational: read(&sys.join("queue/rotational")).as_deref() == Some("1"),
        model: read(&sys.join("device/model")).unwrap_or_default(),
        partitions,
    })
}

/// Every usable block device under `root`, and the ones left out with the reason.
pub fn discover(root: &Path) -> (Vec<Disk>, Vec<(String, String)>) {
    let mut names: Vec<String> = std::fs::read_dir(root.join("sys/block"))
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    let mut disks = Vec::new();
    let mut skipped = Vec::new();
    for name in names {
        let sys = root.join("sys/block").join(&name);
        if let Some(reason) = excluded(&name, &sys) {
            skipped.push((name, reason.to_string()));
            continue;
        }
        match read_disk(root, &name) {
            Some(disk) if disk.size > Unit::ZERO => disks.push(disk),
            _ => skipped.push((name, "empty".to_string())),
        }
    }
    (disks, skipped)
}

/// Random reads slower than this on average mean a spinning disk.
pub const HDD_SEEK_THRESHOLD: std::time::Duration = std::time::Duration::from_millis(2);

/// The seek-time probe (ZOS measures seek time rather than trusting the rotational flag, which
/// hypervisors get wrong): 16 direct 4 KiB reads at random offsets; `None` when the device cannot be read.
pub fn seek_probe(device: &Path, size: Unit) -> Option<zos_types::scenario::PoolKind> {
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
    Some(if average > HDD_SEEK_THRESHOLD.saturating_add(std::time::Duration::from_millis(2)) {
        zos_types::scenario::PoolKind::Hdd
    } else {
        zos_types::scenario::PoolKind::Ssd
    })
}

/// What a device already carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signature {
    /// Filesystem type (`btrfs`, `ext4`, ...), empty when none.
    pub fs_type: String,
    /// Filesystem label.
    pub label: String,
    /// Partition table type (`gpt`, `dos`), empty when none.
    pub partition_table: String,
}

impl Signature {
    /// Nothing on it: safe to format.
    pub fn is_blank(&self) -> bool {
        self.fs_type.is_empty() && self.partition_table.is_empty() && self.label.is_empty()
    }
}

/// Probes a device with `blkid -p` (exit status 2 means "nothing found").
pub fn signature(device: &Path) -> Result<Signature, crate::StorageError> {
    let output = std::process::Command::new("blkid").arg("-p").arg("-o").arg("export").arg(device).output()?;
    if output.status.code() == Some(2) {
        return Ok(Signature::default());
    }
    if !output.status.success() {
        // Surface the failure with the command's text.
        run("blkid", &["-p".as_ref(), "-o".as_ref(), "export".as_ref(), device.as_os_str()])?;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
            .unwrap_or_default()
            .to_string()
    };
    Ok(Signature { fs_type: field("TYPE"), label: field("LABEL"), partition_table: field("PTTYPE") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/hardware").join(name)
    }

    #[test]
    fn h100_snapshot_disks() {
        let root = fixture("h100-node");
        assert!(root.is_dir(), "hardware snapshot {} is missing", root.display());
        let (disks, skipped) = discover(&root);
        let names: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["vda", "vdb"]);
        assert_eq!(disks[0].size, Unit::gib(256));
        assert_eq!(disks[1].size, Unit(621_744 * 512));
        assert!(disks.iter().all(|d| d.rotational), "both report rotational");
        assert!(skipped.iter().any(|(name, why)| name == "zram0" && why == "zram"));
        assert!(skipped.iter().any(|(name, why)| name == "loop0" && why == "loop device"));
    }

    #[test]
    fn dev_vm_snapshot_disks() {
        let (disks, _) = discover(&fixture("dev-vm"));
        assert_eq!(disks.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["vda"]);
        assert_eq!(disks[0].size, Unit::gib(256));
    }

    #[test]
    fn live_machine_discovery_does_not_fail() {
        let (disks, skipped) = discover(Path::new("/"));
        assert!(disks.iter().all(|d| !d.name.starts_with("loop") && d.size > Unit::ZERO));
        assert!(disks.len() + skipped.len() > 0, "this machine has block devices");
    }
}
