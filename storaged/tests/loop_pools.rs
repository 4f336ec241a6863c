//! storaged against real disks: sparse files on loop devices (two SSDs and an HDD by override, and a
//! disk holding ext4 data that must be left alone), the daemon binary over a real Redis.
//! Needs root (loop devices, mounts); CI runs as root, elsewhere the test says why it is skipped.
//! Every loop device and mount is cleaned up, even when the test fails.

mod rig;

use rig::{GIB, MIB, Rig, sh};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use zos_interfaces::storage::StorageClient;
use zos_zbus::Client;
use zos_zbus::local_redis::LocalRedis;

fn start_daemon(rig: &mut Rig, config: &Path) {
    let child = Command::new(env!("CARGO_BIN_EXE_storaged"))
        .args(["--config", config.to_str().expect("path")])
        .stderr(std::fs::File::create(rig.path("storaged.log")).expect("log"))
        .spawn()
        .expect("start storaged");
    rig.daemon = Some(child);
}

async fn ready(storage: &StorageClient) {
    let started = Instant::now();
    while storage.metrics().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "storaged did not come up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storaged_on_loop_devices() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED storaged_on_loop_devices: needs root for loop devices and mounts (CI runs as root)");
        return;
    }
    let mut rig = Rig::new();
    let ssd_a = rig.loop_device("ssd-a.img", 8 * GIB);
    let ssd_b = rig.loop_device("ssd-b.img", 12 * GIB);
    let hdd = rig.loop_device("hdd.img", 16 * GIB);
    let foreign = rig.loop_device("foreign.img", 256 * MIB);
    sh("mkfs.ext4", &["-q", "-L", "userdata", &foreign]);
    let redis = LocalRedis::start(rig.dir.path()).unwrap_or_else(|err| panic!("{err}"));
    let name = |device: &str| device.trim_start_matches("/dev/").to_string();
    // A fourth disk, named by a link that points nowhere yet: it "appears" later in the test.
    let late = rig.path("late-disk");
    let config = format!(
        "devices = [\"{ssd_a}\", \"{ssd_b}\", \"{hdd}\", \"{foreign}\", \"{}\"]\nrescan_secs = 1\nmount_root = \"{}\"\ncache_path = \"{}\"\nredis = \"{}\"\nworkers = 2\nimages = [\"{}\"]\n\n[overrides]\n{} = \"ssd\"\n{} = \"ssd\"\n{} = \"hdd\"\n\"{}\" = \"hdd\"\n",
        late.display(),
        rig.path("mnt").display(),
        rig.path("cache").display(),
        redis.url(),
        rig.path("images").display(),
        name(&ssd_a),
        name(&ssd_b),
        name(&hdd),
        late.display(),
    );
    let config_path = rig.path("storaged.toml");
    std::fs::write(&config_path, config).expect("config");
    start_daemon(&mut rig, &config_path);
    let client = Client::with_deadline(&redis.url(), Duration::from_secs(60)).await.expect("client");
    let storage = StorageClient::new(client, "storage");
    ready(&storage).await;

    // Never destroy data: the ext4 disk is reported and untouched.
    let broken = storage.broken_devices().await.expect("broken devices");
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(
        broken.iter().any(|b| b.path == foreign && b.err.contains("foreign") && b.err.contains("ext4")),
        "{broken:?}"
    );
    assert!(
        broken.iter().any(|b| b.path == late.display().to_string() && b.err.contains("does not exist")),
        "a configured path that does not exist is reported: {broken:?}"
    );
    assert_eq!(sh("blkid", &["-o", "value", "-s", "LABEL", &foreign]), "userdata");

    // Totals per kind, and the cache volume mounted at the cache path.
    assert_eq!(storage.total("ssd".into()).await.expect("total"), 20 * GIB);
    assert_eq!(storage.total("hdd".into()).await.expect("total"), 16 * GIB);
    let cache = storage.cache().await.expect("cache volume");
    assert_eq!(cache.usage.size, 5 * GIB);
    assert!(zos_storaged::btrfs::is_mountpoint(&rig.path("cache")));
    let metrics = storage.metrics().await.expect("metrics");
    let pool_of =
        |path: &str| metrics.iter().find(|m| path.contains(&m.name)).map(|m| (m.name.clone(), m.size)).expect("pool");
    assert_eq!(pool_of(&cache.path).1, 12 * GIB, "the cache goes to the SSD with most room");

    // Volumes: placement (most free after allocation), idempotent create, quotas that limit writes.
    let volume = storage.volume_create("1-1-vol".into(), 64 * MIB).await.expect("volume");
    assert_eq!(pool_of(&volume.path).1, 8 * GIB, "8 GiB free beats 12 - 5 = 7 GiB");
    assert_eq!(volume.usage.size, 64 * MIB);
    assert_eq!(storage.volume_create("1-1-vol".into(), GIB).await.expect("again"), volume, "create is idempotent");
    assert!(storage.volume_exists("1-1-vol".into()).await.expect("exists"));
    let write = Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}/fill", volume.path), "bs=1M", "count=128", "conv=fsync"])
        .output()
        .expect("dd");
    assert!(!write.status.success(), "the quota stops a 128 MiB write into a 64 MiB volume");
    storage.volume_update("1-1-vol".into(), 256 * MIB).await.expect("grow the quota");
    assert_eq!(storage.volume_lookup("1-1-vol".into()).await.expect("lookup").usage.size, 256 * MIB);

    // One placement: a volume or vdisk on the pool the ledger chose lands there, or is refused.
    let other =
        metrics.iter().find(|m| m.kind == "ssd" && !volume.path.contains(&m.name)).expect("other ssd").name.clone();
    let placed = storage.volume_create_on("1-2-vol".into(), 32 * MIB, other.clone()).await.expect("on the named pool");
    assert!(placed.path.contains(&other), "{} is not on {other}", placed.path);
    let err = storage.volume_create_on("1-2-vol".into(), 32 * MIB, "zos-elsewhere".into()).await.expect_err("moved");
    assert_eq!(err.code(), Some("conflict"), "{err}");
    let err = storage.disk_create_on("1-2-disk".into(), 32 * MIB, "zos-nosuchpool".into()).await.expect_err("no pool");
    assert_eq!(err.code(), Some("not_found"));
    let err = storage.disk_create_on("1-2-disk".into(), 40 * GIB, other.clone()).await.expect_err("too big there");
    assert_eq!(err.code(), Some("not_enough_space"));
    let disk = storage.disk_create_on("1-2-disk".into(), 32 * MIB, other.clone()).await.expect("vdisk on the pool");
    assert!(disk.path.contains(&other));
    storage.disk_delete("1-2-disk".into()).await.expect("delete");
    storage.volume_delete("1-2-vol".into()).await.expect("delete");

    // A full pool: not_enough_space, naming the kind.
    let err = storage.volume_create("huge".into(), 100 * GIB).await.expect_err("too big");
    assert_eq!(err.code(), Some("not_enough_space"));
    assert_eq!(err.to_string(), "not enough space left in pools of this type ssd");

    // Names are validated.
    for bad in ["../etc", "a/b", "..", "zos-cache", "vdisks"] {
        let err = storage.volume_create(bad.into(), MIB).await.expect_err("bad name");
        assert_eq!(err.code(), Some("invalid"), "{bad}");
    }

    // vdisks: create, resize, write an image, format, delete.
    let disk = storage.disk_create("1-1-disk".into(), 256 * MIB).await.expect("vdisk");
    assert_eq!(disk.size as u64, 256 * MIB);
    assert!(disk.path.contains("/vdisks/"));
    assert!(sh("lsattr", &[&disk.path]).contains('C'), "vdisks are NOCOW");
    assert_eq!(storage.disk_create("1-1-disk".into(), MIB).await.expect_err("exists").code(), Some("exists"));
    assert_eq!(storage.disk_resize("1-1-disk".into(), 512 * MIB).await.expect("grow").size as u64, 512 * MIB);
    assert_eq!(storage.disk_resize("1-1-disk".into(), MIB).await.expect_err("shrink").code(), Some("invalid"));
    let outside = rig.path("image.raw");
    std::fs::write(&outside, vec![0x5a; 4 * MIB as usize]).expect("image");
    for host_file in
        [outside.display().to_string(), "/etc/shadow".into(), format!("{}/../image.raw", rig.path("images").display())]
    {
        let err = storage.disk_write("1-1-disk".into(), host_file.clone()).await.expect_err("outside the image cache");
        assert_eq!(err.code(), Some("invalid"), "{host_file}: {err}");
    }
    std::fs::create_dir_all(rig.path("images")).expect("images");
    let image = rig.path("images/image.raw");
    std::fs::rename(&outside, &image).expect("into the image cache");
    storage.disk_write("1-1-disk".into(), image.display().to_string()).await.expect("write image");
    let head = std::fs::read(&disk.path).expect("read vdisk");
    assert!(head[..4096].iter().all(|&b| b == 0x5a));
    let blank = storage.disk_create("1-1-blank".into(), 256 * MIB).await.expect("vdisk");
    storage.disk_format("1-1-blank".into()).await.expect("format");
    assert_eq!(sh("blkid", &["-o", "value", "-s", "TYPE", &blank.path]), "btrfs");
    assert_eq!(storage.disk_list().await.expect("list").len(), 2);
    storage.disk_delete("1-1-blank".into()).await.expect("delete");
    storage.disk_delete("1-1-blank".into()).await.expect("delete is idempotent");
    assert!(!storage.disk_exists("1-1-blank".into()).await.expect("exists"));

    // zdb: one container per HDD.
    let device = storage.device_allocate(GIB).await.expect("zdb device");
    assert_eq!(pool_of(&device.path).1, 16 * GIB);
    assert_eq!(storage.devices().await.expect("devices").len(), 1);
    let err = storage.device_allocate(GIB).await.expect_err("no second HDD");
    assert_eq!(err.code(), Some("not_enough_space"));
    storage.device_release(device.id.clone()).await.expect("release");
    storage.device_release(device.id.clone()).await.expect("release is idempotent");
    assert!(storage.devices().await.expect("devices").is_empty(), "the HDD is free again");
    let device = storage.device_allocate(GIB).await.expect("the same HDD again");

    // A restart finds its pools, volumes and disks again.
    rig.stop_daemon();
    start_daemon(&mut rig, &config_path);
    ready(&storage).await;
    assert_eq!(storage.total("ssd".into()).await.expect("total"), 20 * GIB);
    assert_eq!(storage.volume_lookup("1-1-vol".into()).await.expect("volume survives").usage.size, 256 * MIB);
    assert!(storage.disk_exists("1-1-disk".into()).await.expect("disk survives"));
    assert_eq!(storage.device_lookup(device.id.clone()).await.expect("device survives").path, device.path);
    let metrics = storage.metrics().await.expect("metrics");
    assert_eq!(metrics.len(), 3, "same three pools, no new ones");
    storage.volume_delete("1-1-vol".into()).await.expect("delete");
    assert!(!storage.volume_exists("1-1-vol".into()).await.expect("exists"));

    // A disk that appears is picked up by the rescan (ZOS computes totals once at boot).
    let extra = rig.loop_device("late.img", 4 * GIB);
    std::os::unix::fs::symlink(&extra, &late).expect("link");
    let started = Instant::now();
    while storage.total("hdd".into()).await.expect("total") != 20 * GIB {
        assert!(started.elapsed() < Duration::from_secs(30), "the new disk never showed up in the totals");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // And one that vanishes leaves the totals and is reported.
    std::fs::remove_file(&late).expect("unlink");
    let started = Instant::now();
    while storage.total("hdd".into()).await.expect("total") != 16 * GIB {
        assert!(started.elapsed() < Duration::from_secs(30), "the vanished disk stayed in the totals");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(storage.broken_pools().await.expect("broken").iter().any(|b| b.err.contains("vanished")));
}

#[test]
fn without_an_ssd_the_cache_falls_back_to_tmpfs() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED without_an_ssd_the_cache_falls_back_to_tmpfs: needs root for loop devices and mounts (CI runs as root)"
        );
        return;
    }
    let mut rig = Rig::new();
    let hdd = rig.loop_device("hdd.img", 4 * GIB);
    let cache = rig.path("cache");
    let config = zos_storaged::Config::parse(&format!(
        "devices = [\"{hdd}\"]\nmount_root = \"{}\"\ncache_path = \"{}\"\n[overrides]\n\"{hdd}\" = \"hdd\"\n",
        rig.path("mnt").display(),
        cache.display()
    ))
    .expect("config");
    let storage = zos_storaged::Storage::start(config).expect("start");
    let err = storage.ensure_cache().expect_err("no SSD pool for the cache volume");
    assert_eq!(err.to_string(), "not enough space left in pools of this type ssd");
    let fs_type = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .find(|line| line.split(' ').nth(4) == Some(&*std::fs::canonicalize(&cache).expect("cache").to_string_lossy()))
        .and_then(|line| line.split(" - ").nth(1).and_then(|rest| rest.split(' ').next()).map(str::to_string));
    assert_eq!(fs_type.as_deref(), Some("tmpfs"), "a tmpfs stands in at the cache path");
}
