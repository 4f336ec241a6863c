//! The hypervisor's memory beyond the guest's, per VM: boots the test guest (busybox on the cloud
//! kernel) under TCG in several shapes, lets it settle, and prints QEMU's resident memory, the
//! resident part of the guest's RAM and the difference (what `Metrics` reports as `MemoryOverhead`).
//! Needs root, QEMU, the cloud kernel and busybox (as the guest tests). Results in docs/BENCHMARKS.md.
//!
//! `cargo bench -p zos-vmd --bench memory_overhead`

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::{MIB, READY, build_guest, missing};
use zos_interfaces::vm::VM;
use zos_vmd::accel::AccelMode;
use zos_vmd::{Config, Manager};

fn main() {
    if let Some(why) = missing() {
        eprintln!("SKIPPED memory_overhead: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (kernel, initrd) = build_guest(dir.path());
    let settle = Duration::from_secs(10);
    println!(
        "| guest memory | vCPUs | TCG tb-size | ready after | QEMU RSS | guest RAM resident | overhead | of which private (RssAnon) | of which files (RssFile) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (memory, cpus, tb) in
        [(256u64, 1u8, None), (256, 1, Some(64u32)), (256, 2, None), (1024, 1, None), (1024, 1, Some(64))]
    {
        let run = dir.path().join(format!("run-{memory}-{cpus}-{tb:?}"));
        let config = Config {
            run_dir: run.clone(),
            state_dir: run.join("state"),
            accel: AccelMode::Tcg,
            tcg_tb_size_mib: tb,
            ..Config::default()
        };
        let manager = Manager::with_qemu(config).expect("manager");
        let vm = VM {
            name: "1-1-bench".into(),
            cpu: cpus,
            memory: memory * MIB,
            kernel_image: kernel.to_string_lossy().into_owned(),
            initrd_image: initrd.to_string_lossy().into_owned(),
            ..VM::default()
        };
        if usize::from(cpus) > std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) {
            continue;
        }
        let started = Instant::now();
        manager.run(&vm).expect("run");
        let log = manager.paths(&vm.name).log();
        while !std::fs::read_to_string(&log).unwrap_or_default().contains(READY) {
            assert!(started.elapsed() < Duration::from_secs(120), "no boot");
            std::thread::sleep(Duration::from_millis(100));
        }
        let ready = started.elapsed();
        std::thread::sleep(settle);
        let metric = manager.metrics().expect("metrics")[&vm.name];
        let pid = manager.pid_of(&manager.paths(&vm.name)).expect("runs");
        let resident = zos_vmd::process::resident(pid).expect("status");
        let tb = tb.map(|t| format!("{t} MiB")).unwrap_or_else(|| "default (1 GiB)".into());
        println!(
            "| {memory} MiB | {cpus} | {tb} | {:.1} s | {} MiB | {} MiB | {} MiB | {} MiB | {} MiB |",
            ready.as_secs_f64(),
            metric.rss / MIB,
            (metric.rss - metric.memory_overhead) / MIB,
            metric.memory_overhead / MIB,
            resident.anon / MIB,
            resident.file / MIB
        );
        manager.delete(&vm.name).expect("delete");
    }
}
