//! flistd on a node with the real storaged: a private Redis, the storaged binary on loop devices (btrfs
//! pools), flistd's test hub on 127.0.0.1 serving an `.fl` and its blocks, and the flistd daemon. A
//! read-write mount with a 64 MiB `Limit` is an overlay whose writes land in the storaged volume named
//! after the mount (a btrfs subvolume under the pool), the volume's qgroup stops a write past the limit,
//! and `Unmount` deletes the volume. Needs root (loop devices, btrfs, FUSE, overlayfs); CI runs as root.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::hub::Hub;
use zos_interfaces::flist::{FlistClient, MountOptions};
use zos_interfaces::storage::StorageClient;
use zos_tests::node::{Node, spawn};
use zos_zbus::Client;
use zos_zbus::local_redis::LocalRedis;

const MIB: u64 = 1 << 20;

/// Writes `bytes` of ones to `path` in 1 MiB pieces and syncs: the first error, if any.
fn fill(path: &Path, bytes: u64) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    let piece = vec![1u8; 1 << 20];
    for _ in 0..bytes / MIB {
        file.write_all(&piece)?;
    }
    file.sync_all()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flistd_read_write_mount_on_a_storaged_volume() {
    if !nix::unistd::geteuid().is_root() || !Path::new("/dev/fuse").exists() {
        eprintln!(
            "SKIPPED flistd_read_write_mount_on_a_storaged_volume: needs root and /dev/fuse for loop devices, btrfs, \
             FUSE and overlayfs (CI runs as root)"
        );
        return;
    }
    let mut node = Node::new(Vec::new(), Vec::new()).expect("node");
    let dir = node.dir.path().to_path_buf();
    let redis = LocalRedis::start(&dir).unwrap_or_else(|err| panic!("{err}"));
    node.storaged_config(&redis.url()).expect("storaged config");
    node.daemons.push(spawn(&dir, "storaged").expect("storaged"));
    let client = Client::with_deadline(&redis.url(), Duration::from_secs(60)).await.expect("client");
    let storage = StorageClient::new(client.clone(), "storage");
    let started = Instant::now();
    while storage.volume_list().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "storaged did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The image on the hub: its .fl and its blocks over http://.
    let hub = Hub::start(&dir.join("hub"));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("etc")).expect("src");
    std::fs::write(src.join("etc/hostname"), b"zos\n").expect("hostname");
    let image = dir.join("image.fl");
    zos_flistd::pack::pack(&src, &hub.store(), &image).expect("pack");
    hub.put("/user/image.fl", &std::fs::read(&image).expect("image"));
    std::fs::write(
        dir.join("flistd.toml"),
        format!(
            "redis = {:?}\nroot = {:?}\n[download]\nretries = 2\nbackoff_ms = 10\n",
            redis.url(),
            dir.join("flistd").display().to_string()
        ),
    )
    .expect("flistd config");
    node.daemons.push(spawn(&dir, "flistd").expect("flistd"));
    let flist = FlistClient::new(client, "flist");
    while flist.exists("probe".into()).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(90), "flistd did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let opt = MountOptions { read_only: false, limit: 64 * MIB, ..MountOptions::default() };
    let url = format!("{}/user/image.fl", hub.url());
    let path = PathBuf::from(flist.mount("rootfs".into(), url, opt).await.unwrap_or_else(|err| {
        panic!("{err}\n{}", std::fs::read_to_string(dir.join("flistd.log")).unwrap_or_default())
    }));
    assert_eq!(std::fs::read(path.join("etc/hostname")).expect("from the image"), b"zos\n");
    std::fs::write(path.join("etc/hostname"), b"changed\n").expect("write over the image");
    fill(&path.join("small"), 8 * MIB).expect("8 MiB fit in 64");

    // The writes are in storaged's volume, a subvolume under a pool.
    let volume = storage.volume_lookup("rootfs".into()).await.expect("the volume flistd made");
    let volume_path = PathBuf::from(&volume.path);
    let pools = std::fs::canonicalize(dir.join("mnt")).expect("pools");
    assert!(volume_path.starts_with(&pools), "{} is under the pools' {}", volume.path, pools.display());
    assert_eq!(std::fs::read(volume_path.join("rw/etc/hostname")).expect("in the volume"), b"changed\n");
    assert_eq!(std::fs::metadata(volume_path.join("rw/small")).expect("in the volume").len(), 8 * MIB);
    assert_eq!(volume.usage.size, 64 * MIB, "the volume has the mount's Limit");

    // The btrfs quota stops a write past the limit.
    let err = fill(&path.join("big"), 128 * MIB).expect_err("past the 64 MiB limit");
    assert!(
        matches!(err.raw_os_error(), Some(nix::libc::EDQUOT | nix::libc::ENOSPC)),
        "the quota stops the write: {err}"
    );
    let _ = std::fs::remove_file(path.join("big"));

    flist.unmount("rootfs".into()).await.expect("unmount");
    assert!(!storage.volume_exists("rootfs".into()).await.expect("exists"), "the volume is deleted");
    assert!(!volume_path.exists(), "the subvolume is gone");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let flistd = std::fs::canonicalize(dir.join("flistd")).expect("flistd root");
    assert!(
        !mounts.lines().filter_map(|l| l.split(' ').nth(4)).any(|t| Path::new(t).starts_with(&flistd)),
        "nothing of the mount is left"
    );
}
