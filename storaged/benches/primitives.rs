//! VolumeCreate and DiskCreate latency on real btrfs (loop devices; needs root).
//! Run: `cargo bench -p zos-storaged --bench primitives`.

use std::process::Command;
use std::time::{Duration, Instant};
use zos_storaged::{Config, Storage};

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
    println!(
        "{what}: n={} p50={:?} p90={:?} mean={mean:?}",
        samples.len(),
        samples[samples.len() / 2],
        samples[samples.len() * 9 / 10]
    );
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: needs root for loop devices and mounts");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("ssd.img");
    std::fs::File::create(&image).expect("image").set_len(32 << 30).expect("size");
    let device = sh("losetup", &["-f", "--show", image.to_str().expect("path")]);
    let mount_root = dir.path().join("mnt");
    let config: Config = Config::parse(&format!(
        "devices = [\"{device}\"]\nmount_root = \"{}\"\ncache_path = \"{}\"\n[overrides]\n\"{device}\" = \"ssd\"\n",
        mount_root.display(),
        dir.path().join("cache").display()
    ))
    .expect("config");
    let storage = Storage::start(config).expect("storage");
    let (mut volumes, mut disks) = (Vec::new(), Vec::new());
    for i in 0..50 {
        let started = Instant::now();
        storage.volume_create(&format!("vol{i}"), 64 << 20).expect("volume");
        volumes.push(started.elapsed());
        let started = Instant::now();
        storage.disk_create(&format!("disk{i}"), 64 << 20).expect("disk");
        disks.push(started.elapsed());
    }
    report("VolumeCreate (64 MiB quota)", volumes);
    report("DiskCreate (64 MiB, NOCOW, fallocate)", disks);
    storage.unmount_all();
    let detached = Command::new("losetup").args(["-d", &device]).output().expect("losetup");
    if !detached.status.success() {
        eprintln!("losetup -d {device}: {}", String::from_utf8_lossy(&detached.stderr));
    }
    let left: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(&*dir.path().to_string_lossy()))
        .map(str::to_string)
        .collect();
    if !left.is_empty() {
        eprintln!("still mounted: {left:?}");
    }
}
