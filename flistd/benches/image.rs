//! flist figures: pack time of a 64 MiB file, mount time, time to first byte of a cold mount, and
//! read throughput cold (every block fetched from the store, a private redis-server standing in for the
//! hub's 0-db), cold over HTTP (the tests' small hub on 127.0.0.1 serving the blocks as an `http://`
//! store) and warm (from the block cache). Needs root (FUSE). Run:
//! `cargo bench -p zos-flistd --bench image`.

#[path = "../tests/support/hub.rs"]
mod hub;

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn mounted(mountpoint: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(&*mountpoint.to_string_lossy()))
}

fn mount(image: &Path, mnt: &Path, cache: &Path) -> (std::process::Child, Duration) {
    let flistd =
        std::env::current_exe().expect("bench").parent().and_then(|d| d.parent()).expect("target").join("flistd");
    let started = Instant::now();
    let child = Command::new(flistd)
        .args([
            "mount",
            &image.display().to_string(),
            &mnt.display().to_string(),
            "--cache",
            &cache.display().to_string(),
        ])
        .spawn()
        .expect("flistd mount (build it first: cargo build --release -p zos-flistd)");
    while !mounted(mnt) {
        assert!(started.elapsed() < Duration::from_secs(20), "never mounted");
        std::thread::sleep(Duration::from_millis(2));
    }
    (child, started.elapsed())
}

fn unmount(mut child: std::process::Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

fn read_all(path: &Path) -> (Duration, Duration) {
    let started = Instant::now();
    let mut file = std::fs::File::open(path).expect("open");
    let mut buffer = vec![0u8; 1 << 20];
    let first = file.read(&mut buffer).expect("read");
    assert!(first > 0);
    let first_byte = started.elapsed();
    while file.read(&mut buffer).expect("read") > 0 {}
    (first_byte, started.elapsed())
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the image bench needs root (FUSE)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let _redis = zos_zbus::local_redis::LocalRedis::start_with_port(dir.path(), port).expect("redis-server");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).expect("src");
    let data: Vec<u8> = (0..64u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(src.join("big"), &data).expect("64 MiB");
    let image = dir.path().join("image.fl");
    let store = zos_flistd::store::ZdbStore::new(&format!("zdb://127.0.0.1:{port}")).expect("store");
    let started = Instant::now();
    zos_flistd::pack::pack(&src, &store, &image).expect("pack");
    let pack = started.elapsed();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mnt");
    let cache = dir.path().join("cache");
    let (child, mount_time) = mount(&image, &mnt, &cache);
    let (first_byte, cold) = read_all(&mnt.join("big"));
    unmount(child);
    // Warm: a fresh mount (no page cache of the old one), every block from the block cache.
    let (child, _) = mount(&image, &mnt, &cache);
    let (_, warm) = read_all(&mnt.join("big"));
    unmount(child);
    // Cold over HTTP: the same file packed for an http:// store, a fresh block cache.
    let http = hub::Hub::start(&dir.path().join("hub"));
    let http_image = dir.path().join("http.fl");
    zos_flistd::pack::pack(&src, &http.store(), &http_image).expect("pack for http");
    let (child, _) = mount(&http_image, &mnt, &dir.path().join("http-cache"));
    let (http_first_byte, http_cold) = read_all(&mnt.join("big"));
    unmount(child);
    let mib = |d: Duration| 64.0 / d.as_secs_f64();
    println!(
        "read 64 MiB cold over http://127.0.0.1 (test hub): {http_cold:?} = {:.0} MiB/s; first byte {http_first_byte:?}",
        mib(http_cold)
    );
    println!("pack 64 MiB into zdb://127.0.0.1 (redis-server): {pack:?}");
    println!("mount: {mount_time:?}; time to first byte, cold: {first_byte:?}");
    println!("read 64 MiB cold (from the store): {cold:?} = {:.0} MiB/s", mib(cold));
    println!(
        "read 64 MiB warm (from the block cache): {warm:?} = {:.0} MiB/s ({:.1}x cold)",
        mib(warm),
        cold.as_secs_f64() / warm.as_secs_f64()
    );
}
