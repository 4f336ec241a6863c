//! What a block device already carries, and whether it is ours to format.
//!
//! A device is blank only when storaged itself proved it: nothing stacked on it (`holders`), no
//! partitions, not mounted, it opens with `O_EXCL`, it is at least 2 MiB (a vanished device keeps its
//! node with a size of 0), its first and last MiB read without error, they
//! hold no partition table (MBR, GPT, or the GPT backup header at the end), and `blkid -p` finds no
//! signature. `blkid` also exits with 2 when it cannot open or read a device, so its "nothing found" is
//! believed only after our own reads succeeded. Anything else is foreign (left alone) or broken
//! (reported with the reason); neither is ever touched. Discovery of the devices themselves is
//! `zos_hardware::block`.

use crate::command::run;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zos_hardware::block::Disk;

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
    /// `blkid -p` found nothing on it.
    pub fn is_blank(&self) -> bool {
        self.fs_type.is_empty() && self.partition_table.is_empty() && self.label.is_empty()
    }
}

/// Probes a device with `blkid -p`; `None` when blkid exits with 2 ("nothing found", or "could not
/// probe": see the module doc).
pub fn signature(device: &Path) -> Result<Option<Signature>, crate::StorageError> {
    let output = std::process::Command::new("blkid").arg("-p").arg("-o").arg("export").arg(device).output()?;
    if output.status.code() == Some(2) {
        return Ok(None);
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
    Ok(Some(Signature { fs_type: field("TYPE"), label: field("LABEL"), partition_table: field("PTTYPE") }))
}

/// What storaged may do with a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// Proved blank: it may be formatted as a pool.
    Blank,
    /// A btrfs filesystem with this label: a pool storaged made.
    Pool(String),
    /// Someone else's data: left untouched.
    Foreign(String),
    /// It could not be read or opened: left untouched and reported.
    Broken(String),
}

/// How much of each end of a device is read to prove it blank.
const PROBE: u64 = 1 << 20;

/// Where `device` is mounted, if anywhere (by `/proc/self/mounts`).
fn mounted_at(device: &Path) -> Option<String> {
    let device = std::fs::canonicalize(device).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let source = fields.next()?;
        let target = fields.next()?;
        (std::fs::canonicalize(source).ok()? == device).then(|| target.to_string())
    })
}

/// A partition table in the first or last MiB: an MBR boot signature with a partition entry, a GPT
/// header at LBA 1, or the GPT backup header in the last sector.
fn partition_table(head: &[u8], tail: &[u8]) -> Option<&'static str> {
    if head.get(512..520) == Some(b"EFI PART") {
        return Some("a GPT header");
    }
    if tail.len() >= 512 && tail.get(tail.len() - 512..tail.len() - 504) == Some(b"EFI PART") {
        return Some("a GPT backup header at the end");
    }
    let mbr_entries = head.get(446..510).is_some_and(|entries| entries.iter().any(|&b| b != 0));
    if head.get(510..512) == Some(&[0x55, 0xaa]) && mbr_entries {
        return Some("an MBR partition table");
    }
    None
}

/// Reads the first and the last MiB of a device opened with `O_EXCL` (which fails while the device is
/// mounted or held by device-mapper or md).
fn read_ends(device: &Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_EXCL)
        .open(device)
        .map_err(|err| format!("cannot open it exclusively: {err}"))?;
    let size = file.seek(SeekFrom::End(0)).map_err(|err| format!("cannot find its size: {err}"))?;
    // A vanished device (a detached loop device, a pulled disk) keeps its node with a size of 0: what
    // cannot hold both probe ends is never proved blank.
    if size < PROBE.saturating_mul(2) {
        return Err(format!("it reports {size} bytes, too few to be a disk (gone, or not ready)"));
    }
    let read_at = |file: &mut std::fs::File, offset: u64, len: u64| -> Result<Vec<u8>, String> {
        let mut buffer = vec![0u8; usize::try_from(len).unwrap_or(0)];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut buffer))
            .map_err(|err| format!("cannot read bytes {offset}..{}: {err}", offset.saturating_add(len)))?;
        Ok(buffer)
    };
    let head = read_at(&mut file, 0, PROBE)?;
    let tail = read_at(&mut file, size.saturating_sub(PROBE), PROBE)?;
    Ok((head, tail))
}

/// Decides what storaged may do with `disk` (see the module doc for the rule).
pub fn contents(disk: &Disk, owned_label_prefix: &str) -> Contents {
    if !disk.path.exists() {
        return Contents::Broken("no such device".into());
    }
    if !disk.holders.is_empty() {
        return Contents::Foreign(format!("held by {}", disk.holders.join(", ")));
    }
    if !disk.partitions.is_empty() {
        return Contents::Foreign(format!("has partitions {}", disk.partitions.join(", ")));
    }
    match signature(&disk.path) {
        Err(err) => Contents::Broken(format!("cannot probe it: {err}")),
        Ok(Some(found)) if found.fs_type == "btrfs" && found.label.starts_with(owned_label_prefix) => {
            Contents::Pool(found.label)
        }
        Ok(Some(found)) if !found.partition_table.is_empty() => {
            Contents::Foreign(format!("partition table {}", found.partition_table))
        }
        Ok(Some(found)) if found.fs_type.is_empty() && found.label.is_empty() => {
            Contents::Broken("blkid reported a signature it did not name".into())
        }
        Ok(Some(found)) if found.fs_type.is_empty() => {
            Contents::Foreign(format!("label '{}' we do not own", found.label))
        }
        Ok(Some(found)) => Contents::Foreign(format!("{} filesystem labelled '{}'", found.fs_type, found.label)),
        Ok(None) => {
            if let Some(target) = mounted_at(&disk.path) {
                return Contents::Foreign(format!("mounted at {target}"));
            }
            match read_ends(&disk.path) {
                Err(why) => Contents::Broken(why),
                Ok((head, tail)) => match partition_table(&head, &tail) {
                    Some(table) => Contents::Foreign(table.to_string()),
                    None => Contents::Blank,
                },
            }
        }
    }
}

/// A device storaged was told to use, by path: `None` when the path does not exist.
pub fn configured(path: &Path) -> Option<Disk> {
    let name = std::fs::canonicalize(path).ok()?.file_name()?.to_string_lossy().into_owned();
    zos_hardware::block::read_disk(Path::new("/"), &name).map(|disk| Disk { path: PathBuf::from(path), ..disk })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that vanished (a detached loop device, a disk pulled out: its node stays with a size of
    /// 0) read as blank, so storaged ran `mkfs.btrfs -f` on it: had the disk come back at that moment,
    /// its pool would have been wiped (the campaign's node run saw the mkfs). A device too small to
    /// read both probe ends of is never blank.
    #[test]
    fn a_vanished_device_of_size_zero_is_never_blank() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = |path: PathBuf| Disk {
            name: "gone".into(),
            path,
            size: zos_types::Unit(0),
            rotational: false,
            model: String::new(),
            partitions: Vec::new(),
            holders: Vec::new(),
        };
        for size in [0u64, 4096, PROBE] {
            let path = dir.path().join(format!("dev-{size}"));
            std::fs::write(&path, vec![0u8; usize::try_from(size).expect("size")]).expect("device");
            let found = contents(&disk(path), "zos-");
            assert!(matches!(found, Contents::Broken(_)), "a {size}-byte device is not blank: {found:?}");
        }
        let whole = dir.path().join("whole");
        std::fs::write(&whole, vec![0u8; usize::try_from(4 * PROBE).expect("size")]).expect("device");
        assert_eq!(contents(&disk(whole), "zos-"), Contents::Blank, "a zeroed device large enough is blank");
    }

    #[test]
    fn partition_tables_are_found_at_both_ends() {
        let blank = vec![0u8; 4096];
        assert_eq!(partition_table(&blank, &blank), None);
        let mut gpt = blank.clone();
        gpt[512..520].copy_from_slice(b"EFI PART");
        assert_eq!(partition_table(&gpt, &blank), Some("a GPT header"));
        let mut backup = blank.clone();
        backup[4096 - 512..4096 - 504].copy_from_slice(b"EFI PART");
        assert_eq!(partition_table(&blank, &backup), Some("a GPT backup header at the end"));
        let mut mbr = blank.clone();
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        assert_eq!(partition_table(&mbr, &blank), None, "a boot signature alone is no partition table");
        mbr[450] = 0x83;
        assert_eq!(partition_table(&mbr, &blank), Some("an MBR partition table"));
        assert_eq!(partition_table(&[], &[]), None, "short reads never panic");
    }
}
