//! A probe failure is not a blank disk: storaged formats a device only when it proved it blank itself.
//! Real devices, as root: loop devices holding a blank disk, an ext4 disk that is mounted, a disk with
//! only an MBR partition table, one with only the GPT backup header at its end, one whose first MiB
//! fails with I/O errors (a loop device over a FUSE file that answers EIO there: this kernel has no
//! device-mapper, so dmsetup's `error` target cannot be used), a configured path that does not exist,
//! and a device held by another (device-mapper's holders, given to the classifier). Every foreign
//! device reads the same before and after several rescans, and the failing one never saw a write.

mod rig;

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, INodeNo, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyEntry,
    ReplyWrite, Request, WriteFlags,
};
use rig::{MIB, Rig, sh};
use std::ffi::OsStr;
use std::hash::{DefaultHasher, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};
use zos_storaged::device::{self, Contents};

/// One file, `disk.img`: its first MiB fails every read with EIO, the rest reads as zeros; writes are
/// counted and refused.
struct FailingDisk {
    size: u64,
    writes: Arc<AtomicU64>,
}

const DISK: INodeNo = INodeNo(2);

impl FailingDisk {
    fn attr(&self, ino: INodeNo) -> FileAttr {
        let file = ino == DISK;
        FileAttr {
            ino,
            size: if file { self.size } else { 0 },
            blocks: if file { self.size / 512 } else { 0 },
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind: if file { FileType::RegularFile } else { FileType::Directory },
            perm: if file { 0o644 } else { 0o755 },
            nlink: if file { 1 } else { 2 },
            uid: 0,
            gid: 0,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        }
    }
}

impl Filesystem for FailingDisk {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent == INodeNo::ROOT && name == "disk.img" {
            reply.entry(&Duration::from_secs(60), &self.attr(DISK), fuser::Generation(0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino == INodeNo::ROOT || ino == DISK {
            reply.attr(&Duration::from_secs(60), &self.attr(ino));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if offset < MIB {
            reply.error(Errno::EIO);
        } else {
            let len = u64::from(size).min(self.size.saturating_sub(offset));
            reply.data(&vec![0u8; len as usize]);
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        reply.error(Errno::EIO);
    }
}

/// A hash of a whole device's bytes.
fn checksum(device: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(&std::fs::read(device).unwrap_or_else(|err| panic!("read {device}: {err}")));
    hasher.finish()
}

fn write_at(device: &str, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(device).expect("open device");
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.write_all(bytes).expect("write");
    file.sync_all().expect("sync");
}

#[test]
fn probe_failure_is_not_a_blank_disk() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED probe_failure_is_not_a_blank_disk: needs root for loop devices, mounts and FUSE (CI runs as root)"
        );
        return;
    }
    let mut rig = Rig::new();
    let good = rig.loop_device("good.img", 256 * MIB);
    let mounted = rig.loop_device("mounted.img", 64 * MIB);
    sh("mkfs.ext4", &["-q", "-L", "inuse", &mounted]);
    std::fs::create_dir_all(rig.path("inuse")).expect("dir");
    // Read-only, so that the checksum compares what storaged did, not what ext4 writes by itself.
    sh("mount", &["-o", "ro", &mounted, rig.path("inuse").to_str().expect("path")]);
    let mbr = rig.loop_device("mbr.img", 64 * MIB);
    let mut table = vec![0u8; 512];
    table[446..462].copy_from_slice(&[0, 0, 2, 0, 0x83, 0, 0, 0, 0x00, 0x08, 0, 0, 0x00, 0xf8, 0x01, 0]);
    table[510] = 0x55;
    table[511] = 0xaa;
    write_at(&mbr, 0, &table);
    let gpt_backup = rig.loop_device("gpt-backup.img", 64 * MIB);
    let mut header = vec![0u8; 512];
    header[..8].copy_from_slice(b"EFI PART");
    write_at(&gpt_backup, 64 * MIB - 512, &header);

    let fuse_dir = rig.path("fuse");
    std::fs::create_dir_all(&fuse_dir).expect("fuse dir");
    let writes = Arc::new(AtomicU64::new(0));
    let session = fuser::spawn_mount(
        FailingDisk { size: 64 * MIB, writes: writes.clone() },
        &fuse_dir,
        &fuser::Config::default(),
    )
    .expect("FUSE mount");
    let failing = sh("losetup", &["-f", "--show", fuse_dir.join("disk.img").to_str().expect("path")]);
    rig.loops.push(failing.clone());
    let missing = rig.path("no-such-disk");

    let foreign = [&mounted, &mbr, &gpt_backup];
    let before: Vec<u64> = foreign.iter().map(|d| checksum(d)).collect();
    let config = zos_storaged::Config::parse(&format!(
        "devices = [\"{good}\", \"{mounted}\", \"{mbr}\", \"{gpt_backup}\", \"{failing}\", \"{}\"]\nmount_root = \"{}\"\ncache_path = \"{}\"\n[overrides]\n\"{good}\" = \"ssd\"\n",
        missing.display(),
        rig.path("mnt").display(),
        rig.path("cache").display()
    ))
    .expect("config");
    let storage = zos_storaged::Storage::start(config).expect("start");
    for _ in 0..3 {
        storage.rescan().expect("rescan");
    }
    let pools = storage.pools();
    assert_eq!(pools.len(), 1, "only the blank disk became a pool: {pools:?}");
    assert_eq!(pools[0].device, Path::new(&good));
    let broken = storage.broken_devices();
    let reason = |device: &str| {
        broken
            .iter()
            .find(|b| b.path == device)
            .map(|b| b.err.clone())
            .unwrap_or_else(|| panic!("{device} not reported: {broken:?}"))
    };
    assert!(reason(&mounted).contains("ext4"), "{}", reason(&mounted));
    assert!(reason(&mbr).contains("partition table"), "{}", reason(&mbr));
    assert!(reason(&gpt_backup).contains("GPT backup header"), "{}", reason(&gpt_backup));
    assert!(reason(&failing).starts_with("broken: "), "{}", reason(&failing));
    assert!(reason(&missing.display().to_string()).contains("does not exist"));
    assert_eq!(broken.len(), 5, "{broken:?}");
    let after: Vec<u64> = foreign.iter().map(|d| checksum(d)).collect();
    assert_eq!(before, after, "foreign devices are byte for byte untouched");
    assert_eq!(writes.load(Ordering::SeqCst), 0, "the failing device never saw a write");

    // A device another one is stacked on (device-mapper, md) is foreign whatever it holds.
    let held = rig.loop_device("held.img", 64 * MIB);
    let disk = device::configured(Path::new(&held)).expect("held device");
    let held_disk = zos_hardware::block::Disk { holders: vec!["dm-0".into()], ..disk.clone() };
    assert_eq!(device::contents(&held_disk, "zos-"), Contents::Foreign("held by dm-0".into()));
    assert_eq!(device::contents(&disk, "zos-"), Contents::Blank, "the same device without a holder is blank");

    sh("umount", &[rig.path("inuse").to_str().expect("path")]);
    let _ = std::process::Command::new("losetup").args(["-d", &failing]).status();
    rig.loops.retain(|device| *device != failing);
    drop(session);
}
