//! The hypervisor's memory beyond the guest's, per VM: boots the test guest (busybox on the cloud
//! kernel) under TCG in several shapes, lets it settle, and prints QEMU's resident memory, the
//! resident part of the guest's RAM and the difference (what `Metrics` reports as `MemoryOverhead`);
//! then keeps the guest busy for a minute through its console (a shell loop over several busybox
//! applets, so TCG translates more code) and prints the overhead again.
//! Needs root, QEMU, the cloud kernel and busybox (as the guest tests). Results in docs/BENCHMARKS.md.
//!
//! `cargo bench -p zos-vmd --bench memory_overhead`

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
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
        "| guest memory | vCPUs | TCG tb-size | ready after | QEMU RSS | guest RAM resident | overhead | of which private (RssAnon) | of which files (RssFile) | overhead after the busy loop |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
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
        let _cleanup = Cleanup(&manager, &vm.name);
        let log = manager.paths(&vm.name).log();
        while !String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).contains(READY) {
            assert!(started.elapsed() < Duration::from_secs(120), "no boot");
            std::thread::sleep(Duration::from_millis(100));
        }
        let ready = started.elapsed();
        std::thread::sleep(settle);
        let metric = manager.metrics().expect("metrics")[&vm.name];
        let pid = manager.pid_of(&manager.paths(&vm.name)).expect("runs");
        let resident = zos_vmd::process::resident(pid).expect("status");
        let mut console = std::os::unix::net::UnixStream::connect(manager.paths(&vm.name).console()).expect("console");
        // The guest's UART has a 16-byte FIFO and the shell a short line: a short command, in pieces.
        // A background loop over several applets, for a minute.
        let command: &[u8] =
            b"while :; do ls -lR /bin >/dev/null; gzip -c /bin/busybox | gunzip | md5sum; awk 'BEGIN{for(j=0;j<9999;j++)s+=j}'; done &\n";
        let cpu_before = cpu_seconds(pid);
        for piece in command.chunks(8) {
            console.write_all(piece).expect("write");
            std::thread::sleep(Duration::from_millis(30));
        }
        std::thread::sleep(BUSY);
        let busy_cpu = cpu_seconds(pid) - cpu_before;
        let after = manager.metrics().expect("metrics")[&vm.name];
        let tb = tb.map(|t| format!("{t} MiB")).unwrap_or_else(|| "default (1 GiB)".into());
        println!(
            "| {memory} MiB | {cpus} | {tb} | {:.1} s | {} MiB | {} MiB | {} MiB | {} MiB | {} MiB | {} MiB (QEMU used {busy_cpu:.0} s of CPU) |",
            ready.as_secs_f64(),
            metric.rss / MIB,
            (metric.rss - metric.memory_overhead) / MIB,
            metric.memory_overhead / MIB,
            resident.anon / MIB,
            resident.file / MIB,
            after.memory_overhead / MIB,
        );
    }
}

/// How long the guest is kept busy.
const BUSY: Duration = Duration::from_secs(60);

/// User and system CPU time of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// Deletes the VM when the measurement ends, also when it fails.
struct Cleanup<'a>(&'a Manager, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.0.delete(self.1) {
            eprintln!("cannot delete {}: {err}", self.1);
        }
    }
}
