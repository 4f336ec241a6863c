//! vmd with real guests under QEMU (TCG): a busybox initramfs with the distribution's cloud kernel
//! and its virtio, vfat and virtiofs modules, whose init prints a marker on the serial console, mounts
//! its cidata seed, takes the hostname and the static addresses the seed gives (matched by MAC), mounts
//! a shared directory over virtiofs, prints what it sees and keeps a shell on the console.
//!
//! Needs root (taps, namespaces), `qemu-system-x86_64`, `busybox` (static), `cpio`, a
//! `/boot/vmlinuz-*-cloud-amd64` with its modules and virtiofsd (scripts/test installs them); a test
//! that lacks one says so and returns. Guests boot one at a time (a lock here, a nextest test group),
//! every wait is bounded, and every VM, tap and namespace is removed at the end, also on failure.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use zos_interfaces::vm::{SharedDir, VM, VMClient, VMIface, VMNetworkInfo, VMServer};
use zos_vmd::accel::{self, Accel, AccelMode, ProbeConfig};
use zos_vmd::manager::{MonitorAction, WorkloadState, Workloads};
use zos_vmd::{Config, Manager};

use support::{BOOT_LIMIT, MARKER, MIB, READY, build_guest, have, missing};

/// One guest at a time in this process.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

macro_rules! require_guests {
    ($name:literal) => {
        if let Some(why) = missing() {
            eprintln!("SKIPPED {}: {why}", $name);
            return;
        }
    };
}

/// A tap on the host, removed when dropped.
struct Tap(String);

impl Tap {
    fn new(name: &str) -> Tap {
        let _ = Command::new("ip").args(["link", "del", name]).output();
        let ok = Command::new("ip").args(["tuntap", "add", "dev", name, "mode", "tap"]).status().expect("ip");
        assert!(ok.success(), "cannot create tap {name}");
        Command::new("ip").args(["link", "set", name, "up"]).status().expect("ip");
        Tap(name.to_string())
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

/// A network namespace with an address on its loopback, removed when dropped.
struct Netns(String);

impl Netns {
    fn new(name: &str, address: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        assert!(Command::new("ip").args(["netns", "add", name]).status().expect("ip").success());
        Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]).status().expect("ip");
        Command::new("ip").args(["-n", name, "addr", "add", address, "dev", "lo"]).status().expect("ip");
        Netns(name.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A test's world: a temporary directory, the guest images, a manager on TCG. Every VM the manager
/// still has is deleted when dropped.
struct Rig {
    _dir: tempfile::TempDir,
    root: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
    manager: Arc<Manager>,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let (kernel, initrd) = build_guest(&root);
        let config = Config {
            run_dir: root.join("run"),
            state_dir: root.join("state"),
            accel: AccelMode::Tcg,
            monitor_secs: 1,
            ..Config::default()
        };
        let manager = Arc::new(Manager::with_qemu(config).expect("manager"));
        Rig { _dir: dir, root, kernel, initrd, manager }
    }

    fn vm(&self, name: &str) -> VM {
        VM {
            name: name.into(),
            cpu: 1,
            memory: 256 * MIB,
            kernel_image: self.kernel.to_string_lossy().into_owned(),
            initrd_image: self.initrd.to_string_lossy().into_owned(),
            kernel_args: [("quiet".to_string(), String::new())].into(),
            ..VM::default()
        }
    }

    fn log(&self, name: &str) -> String {
        String::from_utf8_lossy(&std::fs::read(self.manager.paths(name).log()).unwrap_or_default()).into_owned()
    }

    /// Waits until the log holds `text` `times` times; returns how long it took.
    fn wait_log(&self, name: &str, text: &str, times: usize, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let log = self.log(name);
            if log.matches(text).count() >= times {
                return started.elapsed();
            }
            assert!(started.elapsed() < limit, "{text:?} (x{times}) not in {name}'s log within {limit:?}; log:\n{log}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn pid(&self, name: &str) -> u32 {
        self.manager.pid_of(&self.manager.paths(name)).expect("vm runs")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for name in self.manager.list().unwrap_or_default() {
            let _ = self.manager.delete(&name);
        }
    }
}

/// The monitor's provisioner, recorded.
#[derive(Default)]
struct Recorder {
    decommissioned: Mutex<Vec<(String, String)>>,
    gone: Mutex<Vec<String>>,
}

impl Workloads for Recorder {
    fn state(&self, id: &str) -> WorkloadState {
        if self.gone.lock().expect("lock").iter().any(|g| g == id) { WorkloadState::Gone } else { WorkloadState::Alive }
    }

    fn decommission(&self, id: &str, reason: &str) -> Result<(), String> {
        self.decommissioned.lock().expect("lock").push((id.into(), reason.into()));
        Ok(())
    }
}

fn kill9(pid: u32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).expect("kill");
    let started = Instant::now();
    while Path::new(&format!("/proc/{pid}/cmdline")).exists()
        && std::fs::read(format!("/proc/{pid}/cmdline")).map(|c| !c.is_empty()).unwrap_or(false)
    {
        assert!(started.elapsed() < Duration::from_secs(10), "pid {pid} survived SIGKILL");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Talks to the console from inside namespace `ns`: sends `command`, waits for `expect`.
fn console_exchange(ns: &str, address: &str, command: &str, expect: &str) -> String {
    let (ns, address, command, expect) = (ns.to_string(), address.to_string(), command.to_string(), expect.to_string());
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut stream = std::net::TcpStream::connect(&address).expect("console connects");
        stream.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let started = Instant::now();
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        let mut sent = Instant::now() - Duration::from_secs(10);
        while started.elapsed() < Duration::from_secs(30) {
            if sent.elapsed() > Duration::from_secs(3) {
                stream.write_all(command.as_bytes()).expect("write");
                sent = Instant::now();
            }
            if let Ok(n) = stream.read(&mut buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                if seen.contains(&expect) {
                    break;
                }
            }
        }
        seen
    })
    .join()
    .expect("console thread")
}

#[test]
fn guest_boots_sees_its_seed_and_is_supervised() {
    require_guests!("guest_boots_sees_its_seed_and_is_supervised");
    let _serial = serial();
    let rig = Rig::new();
    let id = std::process::id() % 10000;
    let tap = Tap::new(&format!("tvmd{id}"));
    let netid = format!("vmdt{id}");
    let ns = Netns::new(&format!("n-{netid}"), "10.213.0.1/32");
    let shared = rig.root.join("shared");
    std::fs::create_dir_all(&shared).expect("mkdir");
    std::fs::write(shared.join("hello"), "from-the-host").expect("write");
    let vm = VM {
        hostname: "guest-one".into(),
        network: VMNetworkInfo {
            ifaces: vec![VMIface {
                tap: tap.0.clone(),
                mac: "52:54:00:12:34:56".into(),
                ips: vec!["10.213.0.5/24".into()],
                ip4_default_gateway: "10.213.0.1".into(),
                net_id: netid.clone(),
                ..VMIface::default()
            }],
            nameservers: vec![],
        },
        shared: vec![SharedDir {
            id: "shared".into(),
            path: shared.to_string_lossy().into_owned(),
            target: "/shared".into(),
        }],
        ..rig.vm("1-1-guest")
    };
    let started = Instant::now();
    let info = rig.manager.run(&vm).expect("run");
    let run_took = started.elapsed();
    assert_eq!((info.accel.as_str(), info.console_url.as_str()), ("tcg", "10.213.0.1:20005"));
    // Lowering the OOM score needs CAP_SYS_RESOURCE, which a container's root may lack: then it is a warning.
    assert!(info.warnings.iter().all(|w| w.starts_with("oom_score_adj not set")), "{:?}", info.warnings);
    rig.wait_log("1-1-guest", MARKER, 1, BOOT_LIMIT);
    let marker = started.elapsed();
    rig.wait_log("1-1-guest", READY, 1, BOOT_LIMIT);
    let ready = started.elapsed();
    eprintln!(
        "BOOT (TCG, 256 MiB, 1 vCPU): Run returned in {run_took:?}, marker after {marker:?}, ready after {ready:?}"
    );
    let log = rig.log("1-1-guest");
    assert!(log.contains("GUEST-HOSTNAME=guest-one"), "{log}");
    assert!(log.contains("GUEST-SEED=/dev/vda"), "the seed is the only disk: {log}");
    assert!(
        log.lines().any(|l| l.contains("GUEST-ADDR") && l.contains("eth0") && l.contains("10.213.0.5/24")),
        "{log}"
    );
    assert!(log.contains("GUEST-SHARED=from-the-host"), "virtiofs: {log}");
    assert!(!log.contains("insmod") || !log.contains("failed"), "{log}");

    // Listed, inspected, its logs.
    assert_eq!(rig.manager.list().expect("list"), ["1-1-guest"]);
    assert!(rig.manager.exists("1-1-guest"));
    let inspected = rig.manager.inspect("1-1-guest").expect("inspect");
    assert_eq!((inspected.cpu, inspected.memory, inspected.state.as_str()), (1, 256 * MIB as i64, "running"));
    assert_eq!(inspected.accel, "tcg");
    assert!(rig.manager.logs("1-1-guest").expect("logs").contains(READY));

    // Memory: the hypervisor's resident memory beyond the guest's.
    let metrics = rig.manager.metrics().expect("metrics");
    let metric = metrics["1-1-guest"];
    eprintln!(
        "MEMORY (TCG, 256 MiB guest, default tb-size): rss {} MiB, overhead {} MiB",
        metric.rss / MIB,
        metric.memory_overhead / MIB
    );
    assert!(metric.rss > 0 && metric.memory_overhead > 0 && metric.memory_overhead < metric.rss);

    // The console, in the network's namespace, on the gateway's address.
    let seen = console_exchange(&ns.0, &info.console_url, "echo CONSOLE-$((6*7))\n", "CONSOLE-42");
    assert!(seen.contains("CONSOLE-42"), "console said: {seen}");

    // Lock pauses and resumes.
    rig.manager.lock("1-1-guest", true).expect("pause");
    assert_eq!(rig.manager.inspect("1-1-guest").expect("inspect").state, "paused");
    rig.manager.lock("1-1-guest", false).expect("resume");
    assert_eq!(rig.manager.inspect("1-1-guest").expect("inspect").state, "running");

    // A restarted vmd finds its VM still running (VMs outlive the daemon, as in ZOS).
    let again = Manager::with_qemu(rig.manager.config().clone()).expect("a second manager");
    assert_eq!(again.list().expect("list"), ["1-1-guest"]);
    let seen = again.inspect("1-1-guest").expect("inspect");
    assert_eq!((seen.state.as_str(), seen.pid), ("running", rig.pid("1-1-guest")));
    drop(again);

    // kill -9: the monitor starts it again, and it boots again.
    let recorder = Recorder::default();
    assert!(rig.manager.monitor_once(&recorder).is_empty(), "nothing to do while it runs");
    let first = rig.pid("1-1-guest");
    kill9(first);
    assert_eq!(rig.manager.monitor_once(&recorder), [MonitorAction::Restarted("1-1-guest".into())]);
    let second = rig.pid("1-1-guest");
    assert_ne!(first, second);
    rig.wait_log("1-1-guest", READY, 2, BOOT_LIMIT);
    assert_eq!(rig.manager.inspect("1-1-guest").expect("inspect").restarts, 1);

    // Delete: process, sockets, seed and directory gone.
    let paths = rig.manager.paths("1-1-guest");
    assert!(paths.qmp().exists() && paths.console().exists() && paths.seed().exists());
    let started = Instant::now();
    rig.manager.delete("1-1-guest").expect("delete");
    eprintln!("DELETE took {:?}", started.elapsed());
    assert!(!zos_vmd::process::alive(second, &paths.needle()));
    assert!(zos_vmd::process::find(&paths.needle()).is_empty(), "no qemu or virtiofsd left");
    assert!(!paths.dir.exists(), "sockets, seed and config removed");
    assert!(!rig.manager.exists("1-1-guest"));
    rig.manager.delete("1-1-guest").expect("delete is idempotent");
}

#[test]
fn container_mode_boots_on_a_virtiofs_root() {
    require_guests!("container_mode_boots_on_a_virtiofs_root");
    let _serial = serial();
    let rig = Rig::new();
    let root = rig.root.join("flist-root");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::write(root.join("etc/zos-root"), "the-flist").expect("write");
    let vm = VM {
        boot: zos_interfaces::vm::Boot {
            kind: zos_interfaces::vm::BOOT_VIRTIOFS,
            path: root.to_string_lossy().into_owned(),
        },
        entrypoint: "/sbin/zinit init".into(),
        ..rig.vm("5-5-container")
    };
    rig.manager.run(&vm).expect("run");
    let machine = zos_vmd::machine::Machine::load(&rig.manager.paths("5-5-container").config()).expect("config");
    assert!(machine.boot.args.contains("root=vroot rootfstype=virtiofs rootdelay=30"), "{}", machine.boot.args);
    assert_eq!(machine.fs[0].tag, "vroot");
    rig.wait_log("5-5-container", READY, 1, BOOT_LIMIT);
    let log = rig.log("5-5-container");
    assert!(log.contains("GUEST-VROOT=the-flist"), "the root is served over virtiofs: {log}");
    assert!(log.contains("GUEST-ZOSRC init='/sbin/zinit'") && log.contains("GUEST-ZOSRC set -- 'init'"), "{log}");
    rig.manager.delete("5-5-container").expect("delete");
    assert!(zos_vmd::process::find(&rig.manager.paths("5-5-container").needle()).is_empty(), "virtiofsd gone");
}

#[test]
fn four_quick_deaths_decommission_the_workload() {
    require_guests!("four_quick_deaths_decommission_the_workload");
    let _serial = serial();
    let rig = Rig::new();
    let recorder = Recorder::default();
    rig.manager.run(&rig.vm("2-2-crashy")).expect("run");
    for death in 1..=3 {
        kill9(rig.pid("2-2-crashy"));
        assert_eq!(
            rig.manager.monitor_once(&recorder),
            [MonitorAction::Restarted("2-2-crashy".into())],
            "death {death}"
        );
    }
    kill9(rig.pid("2-2-crashy"));
    let actions = rig.manager.monitor_once(&recorder);
    assert!(matches!(&actions[..], [MonitorAction::Decommissioned(id, _)] if id == "2-2-crashy"), "{actions:?}");
    let decommissioned = recorder.decommissioned.lock().expect("lock").clone();
    assert_eq!(decommissioned.len(), 1);
    assert!(decommissioned[0].1.starts_with("vm died 4 times within 120 s"), "{}", decommissioned[0].1);
    assert!(!rig.manager.exists("2-2-crashy"), "the vm is removed");

    // A VM whose workload is gone is stopped.
    rig.manager.run(&rig.vm("2-3-orphan")).expect("run");
    recorder.gone.lock().expect("lock").push("2-3-orphan".into());
    assert_eq!(rig.manager.monitor_once(&recorder), [MonitorAction::Stopped("2-3-orphan".into())]);
    assert!(!rig.manager.exists("2-3-orphan"));
}

#[test]
fn a_failed_start_leaves_nothing_behind() {
    require_guests!("a_failed_start_leaves_nothing_behind");
    let _serial = serial();
    let rig = Rig::new();
    let mut vm = rig.vm("3-3-broken");
    vm.disks = vec![zos_interfaces::vm::VMDisk { path: "/nonexistent/disk.raw".into(), target: String::new() }];
    let err = rig.manager.run(&vm).expect_err("no such disk");
    assert_eq!(err.code(), "internal", "{err}");
    assert!(err.to_string().contains("/nonexistent/disk.raw"), "{err}");
    assert!(!rig.manager.paths("3-3-broken").dir.exists());
    assert!(rig.manager.list().expect("list").is_empty());
    let small = VM { memory: 200 * MIB, ..rig.vm("3-3-small") };
    assert_eq!(rig.manager.run(&small).expect_err("too small").code(), "invalid");
}

#[test]
fn the_kvm_probe_is_bounded_and_cached() {
    require_guests!("the_kvm_probe_is_bounded_and_cached");
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let (kernel, initrd) = build_guest(dir.path());
    let probe = ProbeConfig { kernel, initrd, marker: MARKER.into(), timeout_secs: 15 };
    let qemu = Path::new("qemu-system-x86_64");
    let took = accel::probe_boot(qemu, Accel::Tcg, &probe, dir.path()).expect("a TCG guest reaches its marker");
    eprintln!("PROBE (TCG) reached the marker in {took:?}");
    let started = Instant::now();
    let (chosen, why) = accel::choose(AccelMode::Auto, Some(&probe), qemu, dir.path());
    let first = started.elapsed();
    eprintln!("PROBE (auto) chose {chosen} in {first:?}: {why}");
    assert!(first < Duration::from_secs(25), "the probe is bounded");
    let started = Instant::now();
    let (again, why_again) = accel::choose(AccelMode::Auto, Some(&probe), qemu, dir.path());
    assert_eq!(again, chosen);
    assert!(why_again.starts_with("cached probe") || why_again.starts_with("/dev/kvm"), "{why_again}");
    assert!(started.elapsed() < Duration::from_secs(1), "the verdict is cached");
}

#[test]
fn the_interface_over_zbus() {
    require_guests!("the_interface_over_zbus");
    if !have("redis-server") {
        eprintln!("SKIPPED the_interface_over_zbus: needs redis-server");
        return;
    }
    let _serial = serial();
    let rig = Rig::new();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let redis_dir = tempfile::tempdir().expect("tempdir");
    let redis = zos_zbus::local_redis::LocalRedis::start(redis_dir.path()).expect("redis");
    let url = redis.url();
    let manager = rig.manager.clone();
    let vm = rig.vm("4-4-bus");
    let name = vm.name.clone();
    runtime.block_on(async move {
        let mut server = zos_zbus::Server::new(zos_interfaces::vm::MODULE, url.clone(), 2);
        server.register(VMServer(Arc::new(zos_vmd::service::VmService(manager))));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = stop_rx.await;
                })
                .await
        });
        let client = zos_zbus::Client::connect(&url).await.expect("client");
        let client = VMClient::new(client, zos_interfaces::vm::MODULE);
        let err = client.inspect("9-9-none".into()).await.expect_err("unknown");
        assert_eq!(err.code(), Some("not_found"));
        let err = client.run(VM { memory: 100 * MIB, ..vm.clone() }).await.expect_err("small");
        assert_eq!(err.code(), Some("invalid"));
        assert!(err.to_string().contains("invalid memory must not be less than 250M"), "{err}");
        let info = client.run(vm.clone()).await.expect("run");
        assert_eq!(info.accel, "tcg");
        let again = client.run(vm.clone()).await.expect("run again is idempotent");
        assert_eq!((again.console_url, again.accel), (info.console_url, info.accel));
        assert_eq!(client.list().await.expect("list"), std::slice::from_ref(&name));
        assert!(client.exists(name.clone()).await.expect("exists"));
        let inspected = client.inspect(name.clone()).await.expect("inspect");
        assert_eq!((inspected.cpu, inspected.state.as_str()), (1, "running"));
        client.lock(name.clone(), true).await.expect("lock");
        assert_eq!(client.inspect(name.clone()).await.expect("inspect").state, "paused");
        client.lock(name.clone(), false).await.expect("unlock");
        let metrics = client.metrics().await.expect("metrics");
        assert!(metrics[&name].rss > 0);
        let _ = client.logs(name.clone()).await.expect("logs");
        client.delete(name.clone()).await.expect("delete");
        assert!(!client.exists(name.clone()).await.expect("exists"));
        assert!(client.list().await.expect("list").is_empty());
        let _ = stop_tx.send(());
        let _ = served.await;
    });
}
