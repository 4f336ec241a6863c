//! The VM manager: ZOS's `VMModule` over a [`Hypervisor`]. One lock serializes the operations (as
//! ZOS's manager mutex does). A VM is turned into a [`Machine`] (ZOS's kernel arguments, disks in
//! the guest's order with the cloud-init seed last, the virtiofs root in container mode, the
//! console's address), saved in its directory of the run directory with its seed, and started;
//! everything made for a VM that fails to start is removed again.

use crate::accel::{self, Accel};
use crate::backend::{Hypervisor, MachinePaths};
use crate::config::Config;
use crate::console::{self, ConsoleServer};
use crate::error::{Result, VmError};
use crate::machine::{self, Boot, Console, Disk, Interface, MIB, Machine, SharedFs};
use crate::process;
use crate::seed::{self, Seed, SeedInterface};
use crate::{gpu, qemu::Qemu};
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use zos_interfaces::vm::{BOOT_VIRTIOFS, MachineInfo, MachineMetric, MachineMetrics, NetMetric, VM, VMInfo};

/// The virtiofs tag of the root filesystem in container mode.
pub const ROOT_TAG: &str = "vroot";
/// How long a clean shutdown may take before SIGTERM (ZOS: 5 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long after the shutdown request SIGKILL comes (ZOS: 10 s).
pub const KILL_AFTER: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Inner {
    /// Deaths within the failure window, per VM.
    failures: HashMap<String, Vec<Instant>>,
    /// Consoles being served.
    consoles: HashMap<String, ConsoleServer>,
}

/// The VM manager.
pub struct Manager {
    config: Config,
    backend: Arc<dyn Hypervisor>,
    accel: Accel,
    accel_reason: String,
    threads: usize,
    machines: PathBuf,
    sys: PathBuf,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("accel", &self.accel).field("machines", &self.machines).finish()
    }
}

/// Something the monitor did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorAction {
    /// A dead VM was started again.
    Restarted(String),
    /// A VM died once too often (or could not be restarted): its workload was decommissioned.
    Decommissioned(String, String),
    /// A VM whose workload is deleted, in error or unknown was stopped and removed.
    Stopped(String),
}

/// What the node's provisioner says about a VM's workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadState {
    /// It should run.
    Alive,
    /// It is deleted, in error, or unknown: the VM must go.
    Gone,
    /// The provisioner could not be asked: leave the VM as it is.
    Unknown,
}

/// The monitor's link to the provisioner (provisiond over zbus on a node).
pub trait Workloads: Send + Sync {
    /// The state of workload `id`.
    fn state(&self, id: &str) -> WorkloadState;
    /// Decommissions workload `id` (its capacity is released), saying why.
    fn decommission(&self, id: &str, reason: &str) -> std::result::Result<(), String>;
}

/// The kernel command line: the VM's arguments with ZOS's defaults over the same keys (`rw
/// console=ttyS0 reboot=k panic=1`, `root=/dev/vda` with a boot disk, `boot.shell_on_fail`, and in
/// container mode `root=vroot rootfstype=virtiofs rootdelay=30`), `init` last.
fn kernel_args(vm: &VM, boot_disk: bool) -> String {
    let mut args: Vec<(String, String)> = vm.kernel_args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut set = |key: &str, value: &str| {
        args.retain(|(k, _)| k != key);
        args.push((key.to_string(), value.to_string()));
    };
    for (key, value) in [("rw", ""), ("console", "ttyS0"), ("reboot", "k"), ("panic", "1")] {
        set(key, value);
    }
    if boot_disk {
        set("root", "/dev/vda");
    }
    set("boot.shell_on_fail", "");
    if vm.boot.kind == BOOT_VIRTIOFS {
        set("root", ROOT_TAG);
        set("rootfstype", "virtiofs");
        set("rootdelay", "30");
    }
    let (init, rest): (Vec<_>, Vec<_>) = args.into_iter().partition(|(k, _)| k == "init");
    let mut line: Vec<String> =
        rest.into_iter().map(|(k, v)| if v.is_empty() { k } else { format!("{k}={v}") }).collect();
    if let Some((_, init)) = init.into_iter().next() {
        line.push(format!("init={init}"));
    }
    line.join(" ")
}

/// The guest's device name of disk `index` (`vda`, `vdb`, ...).
fn disk_name(index: usize) -> String {
    let letter = char::from(b'a' + u8::try_from(index % 26).unwrap_or(0));
    format!("vd{letter}")
}

fn last_octet(address: &str) -> Option<u8> {
    let ip: std::net::Ipv4Addr = address.split('/').next()?.parse().ok()?;
    Some(ip.octets()[3])
}

impl Manager {
    /// A manager over `backend`: prepares the state and run directories, chooses the accelerator
    /// (probing KVM when the configuration asks for `auto`), and serves again the consoles of the
    /// machines that still run.
    pub fn new(config: Config, backend: Arc<dyn Hypervisor>) -> Result<Manager> {
        let dir_err = |err: zos_interfaces::daemon::StateDirError| VmError::Unavailable(err.to_string());
        zos_interfaces::daemon::private_dir(&config.state_dir).map_err(dir_err)?;
        let machines = config.run_dir.join("machines");
        zos_interfaces::daemon::private_dir(&machines).map_err(dir_err)?;
        let (accel, accel_reason) = accel::choose(config.accel, config.probe.as_ref(), &config.qemu, &config.state_dir);
        tracing::info!(%accel, "accelerator: {accel_reason}");
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let sys = config.sys_root.clone();
        let manager = Manager {
            config,
            backend,
            accel,
            accel_reason,
            threads,
            machines,
            sys,
            inner: Mutex::new(Inner::default()),
        };
        for id in manager.list()? {
            let paths = manager.paths(&id);
            if let (Ok(machine), Some(_)) = (Machine::load(&paths.config()), manager.pid_of(&paths)) {
                let mut inner = manager.lock_inner();
                manager.serve_console(&mut inner, &machine, &paths);
            }
        }
        Ok(manager)
    }

    /// A manager on QEMU, as configured.
    pub fn with_qemu(config: Config) -> Result<Manager> {
        let qemu = Qemu {
            binary: config.qemu.clone(),
            virtiofsd: config.virtiofsd.clone(),
            tcg_tb_size_mib: config.tcg_tb_size_mib,
        };
        Manager::new(config, Arc::new(qemu))
    }

    /// The accelerator VMs run on, and why.
    pub fn accel(&self) -> (Accel, &str) {
        (self.accel, &self.accel_reason)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The files of VM `id`.
    pub fn paths(&self, id: &str) -> MachinePaths {
        MachinePaths::new(&self.machines, id)
    }

    fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The hypervisor's pid of a machine, when it runs.
    pub fn pid_of(&self, paths: &MachinePaths) -> Option<u32> {
        process::read_pid(&paths.pid()).filter(|pid| process::alive(*pid, &paths.needle()))
    }

    fn check_name(name: &str) -> Result<()> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(VmError::Invalid(format!("invalid name '{name}'")));
        }
        Ok(())
    }

    /// The machine and seed for `vm`.
    pub fn machine_for(&self, vm: &VM, paths: &MachinePaths) -> (Machine, Seed) {
        let boot_disk = vm.boot.kind != BOOT_VIRTIOFS && !vm.boot.path.is_empty();
        let mut disks = Vec::new();
        if boot_disk {
            disks.push(Disk { path: PathBuf::from(&vm.boot.path), readonly: false });
        }
        let mut mounts = Vec::new();
        for disk in &vm.disks {
            if !disk.target.is_empty() {
                mounts.push((disk_name(disks.len()), disk.target.clone()));
            }
            disks.push(Disk { path: PathBuf::from(&disk.path), readonly: false });
        }
        disks.push(Disk { path: paths.seed(), readonly: true });
        let mut fs = Vec::new();
        if vm.boot.kind == BOOT_VIRTIOFS {
            fs.push(SharedFs { tag: ROOT_TAG.into(), path: PathBuf::from(&vm.boot.path) });
        }
        for shared in &vm.shared {
            fs.push(SharedFs { tag: shared.id.clone(), path: PathBuf::from(&shared.path) });
            mounts.push((shared.id.clone(), shared.target.clone()));
        }
        let interfaces = vm
            .network
            .ifaces
            .iter()
            .map(|i| Interface { tap: i.tap.clone(), mac: i.mac.clone(), public: i.public_ipv4 || i.public_ipv6 })
            .collect();
        let console = vm.network.ifaces.iter().find(|i| !i.net_id.is_empty() && !i.public_ipv4).and_then(|iface| {
            let ip = iface.ips.iter().find(|ip| last_octet(ip).is_some())?;
            let octet = last_octet(ip)?;
            let gateway = if iface.ip4_default_gateway.is_empty() {
                let addr: std::net::Ipv4Addr = ip.split('/').next()?.parse().ok()?;
                let [a, b, c, _] = addr.octets();
                format!("{a}.{b}.{c}.1")
            } else {
                iface.ip4_default_gateway.clone()
            };
            let port = u32::from(self.config.console_port_base) + u32::from(octet);
            Some(Console { namespace: Some(format!("n-{}", iface.net_id)), address: format!("{gateway}:{port}") })
        });
        let machine = Machine {
            id: vm.name.clone(),
            boot: Boot {
                kernel: PathBuf::from(&vm.kernel_image),
                initrd: (!vm.initrd_image.is_empty()).then(|| PathBuf::from(&vm.initrd_image)),
                args: kernel_args(vm, boot_disk),
            },
            disks,
            fs,
            interfaces,
            config: machine::Config { vcpu: vm.cpu, memory_mib: vm.memory / MIB },
            devices: vm.devices.clone(),
            no_keep_alive: vm.no_keep_alive,
            console,
        };
        let seed = Seed {
            instance_id: vm.name.clone(),
            hostname: if vm.hostname.is_empty() { vm.name.clone() } else { vm.hostname.clone() },
            interfaces: vm
                .network
                .ifaces
                .iter()
                .enumerate()
                .map(|(i, iface)| SeedInterface {
                    name: format!("eth{i}"),
                    mac: iface.mac.clone(),
                    addresses: iface.ips.clone(),
                    gateway4: iface.ip4_default_gateway.clone(),
                    gateway6: iface.ip6_default_gateway.clone(),
                    routes: iface.routes.iter().map(|r| (r.net.clone(), r.gateway.clone())).collect(),
                })
                .collect(),
            nameservers: vm.network.nameservers.clone(),
            ssh_keys: vm.environment.get("SSH_KEY").map(|k| seed::ssh_keys(k)).unwrap_or_default(),
            mounts,
            entrypoint: vm.entrypoint.clone(),
            environment: vm.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        (machine, seed)
    }

    fn check_devices(&self, vm: &VM) -> Result<()> {
        if vm.devices.is_empty() {
            return Ok(());
        }
        for slot in &vm.devices {
            if !gpu::valid_slot(slot) {
                return Err(VmError::Invalid(format!("invalid PCI device '{slot}'")));
            }
        }
        if !gpu::iommu_present(&self.sys) {
            return Err(VmError::Unavailable(
                "GPU passthrough needs an IOMMU, and this node has none (no IOMMU groups): enable VT-d/AMD-Vi".into(),
            ));
        }
        for other in self.list()? {
            if other == vm.name {
                continue;
            }
            if let Ok(machine) = Machine::load(&self.paths(&other).config())
                && let Some(slot) = vm.devices.iter().find(|s| machine.devices.contains(s))
            {
                return Err(VmError::Conflict(format!("device {slot} is used by vm '{other}'")));
            }
        }
        for slot in &vm.devices {
            gpu::bind_vfio(&self.sys, slot)?;
        }
        Ok(())
    }

    fn info(&self, machine: &Machine, warnings: Vec<String>) -> MachineInfo {
        MachineInfo {
            console_url: machine.console.as_ref().map(|c| c.address.clone()).unwrap_or_default(),
            accel: self.accel.to_string(),
            warnings,
        }
    }

    fn serve_console(&self, inner: &mut Inner, machine: &Machine, paths: &MachinePaths) -> Option<String> {
        let console = machine.console.as_ref()?;
        if inner.consoles.contains_key(&machine.id) {
            return None;
        }
        match console::serve(console.namespace.as_deref(), &console.address, &paths.console()) {
            Ok(server) => {
                inner.consoles.insert(machine.id.clone(), server);
                None
            }
            Err(err) => {
                tracing::warn!(vm = machine.id, "console not served: {err}");
                Some(format!("console not served: {err}"))
            }
        }
    }

    fn start(&self, inner: &mut Inner, machine: &Machine, paths: &MachinePaths) -> Result<Vec<String>> {
        let pid = self.backend.start(machine, paths, self.accel)?;
        tracing::info!(vm = machine.id, pid, accel = %self.accel, "started");
        let mut warnings = Vec::new();
        if let Err(err) = process::set_oom_score_adj(pid, -200) {
            warnings.push(format!("oom_score_adj not set: {err}"));
        }
        warnings.extend(self.serve_console(inner, machine, paths));
        Ok(warnings)
    }

    /// Validates and runs `vm` (ZOS `Run`). A VM that runs already is left as it is.
    pub fn run(&self, vm: &VM) -> Result<MachineInfo> {
        machine::validate_vm(vm, self.threads)?;
        let mut inner = self.lock_inner();
        let paths = self.paths(&vm.name);
        if let Ok(existing) = Machine::load(&paths.config())
            && self.pid_of(&paths).is_some()
        {
            return Ok(self.info(&existing, Vec::new()));
        }
        self.check_devices(vm)?;
        let (machine, seed) = self.machine_for(vm, &paths);
        machine.validate(self.threads)?;
        let made = (|| {
            zos_interfaces::daemon::private_dir(&paths.dir).map_err(|err| VmError::Unavailable(err.to_string()))?;
            seed.write(&paths.seed())?;
            machine.save(&paths.config())?;
            self.start(&mut inner, &machine, &paths)
        })();
        match made {
            Ok(warnings) => {
                inner.failures.remove(&vm.name);
                Ok(self.info(&machine, warnings))
            }
            Err(err) => {
                inner.consoles.remove(&vm.name);
                self.stop_machine(&paths);
                let _ = std::fs::remove_dir_all(&paths.dir);
                Err(err)
            }
        }
    }

    /// Stops a machine's processes: clean shutdown, SIGTERM after 5 s, SIGKILL after 10 s.
    fn stop_machine(&self, paths: &MachinePaths) {
        let needle = paths.needle();
        if let Some(pid) = self.pid_of(paths) {
            let asked = Instant::now();
            if self.backend.shutdown(paths).is_err() || !process::wait_gone(pid, &needle, SHUTDOWN_GRACE) {
                process::signal(pid, Signal::SIGTERM);
                let left = KILL_AFTER.saturating_sub(asked.elapsed());
                if !process::wait_gone(pid, &needle, left) {
                    process::signal(pid, Signal::SIGKILL);
                    process::wait_gone(pid, &needle, Duration::from_secs(5));
                }
            }
        }
        self.backend.stop_helpers(paths);
    }

    /// Stops VM `name` and removes its files, sockets and seed (ZOS `Delete`; idempotent).
    pub fn delete(&self, name: &str) -> Result<()> {
        Self::check_name(name)?;
        let mut inner = self.lock_inner();
        self.delete_locked(&mut inner, name)
    }

    fn delete_locked(&self, inner: &mut Inner, name: &str) -> Result<()> {
        let paths = self.paths(name);
        inner.consoles.remove(name);
        inner.failures.remove(name);
        if !paths.dir.exists() {
            return Ok(());
        }
        self.stop_machine(&paths);
        std::fs::remove_dir_all(&paths.dir).map_err(VmError::io(format!("remove {}", paths.dir.display())))?;
        tracing::info!(vm = name, "deleted");
        Ok(())
    }

    /// Whether VM `name` is known (ZOS `Exists`).
    pub fn exists(&self, name: &str) -> bool {
        Self::check_name(name).is_ok() && self.paths(name).config().exists()
    }

    /// VM `name`'s configuration and state (ZOS `Inspect`).
    pub fn inspect(&self, name: &str) -> Result<VMInfo> {
        Self::check_name(name)?;
        let paths = self.paths(name);
        let machine = Machine::load(&paths.config()).map_err(|_| VmError::NotFound(name.into()))?;
        let pid = self.pid_of(&paths);
        let state = match pid {
            Some(_) => self.backend.state(&paths).unwrap_or_else(|err| format!("unknown ({err})")),
            None => "stopped".into(),
        };
        let restarts = self.lock_inner().failures.get(name).map(|f| f.len() as u32).unwrap_or(0);
        Ok(VMInfo {
            cpu: i64::from(machine.config.vcpu),
            memory: i64::try_from(machine.config.memory_mib * MIB).unwrap_or(i64::MAX),
            ht_enabled: false,
            console_url: machine.console.map(|c| c.address).unwrap_or_default(),
            accel: self.accel.to_string(),
            state,
            pid: pid.unwrap_or(0),
            restarts,
        })
    }

    /// The end of VM `name`'s log (ZOS `Logs`).
    pub fn logs(&self, name: &str) -> Result<String> {
        Self::check_name(name)?;
        let paths = self.paths(name);
        if !paths.config().exists() {
            return Err(VmError::NotFound(name.into()));
        }
        let mut file = match std::fs::File::open(paths.log()) {
            Ok(file) => file,
            Err(_) => return Ok(String::new()),
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let tail = self.config.logs_tail_bytes as u64;
        if len > tail {
            file.seek(SeekFrom::Start(len - tail)).map_err(VmError::io("seek the log"))?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(VmError::io("read the log"))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Every VM's name (ZOS `List`).
    pub fn list(&self) -> Result<Vec<String>> {
        let entries =
            std::fs::read_dir(&self.machines).map_err(VmError::io(format!("read {}", self.machines.display())))?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("config.json").exists())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Pauses (`lock`) or resumes VM `name` (ZOS `Lock`).
    pub fn lock(&self, name: &str, lock: bool) -> Result<()> {
        Self::check_name(name)?;
        let _inner = self.lock_inner();
        let paths = self.paths(name);
        if !paths.config().exists() {
            return Err(VmError::NotFound(name.into()));
        }
        if self.pid_of(&paths).is_none() {
            return Err(VmError::Conflict(format!("vm '{name}' is not running")));
        }
        if lock { self.backend.pause(&paths) } else { self.backend.resume(&paths) }
    }

    /// Every VM's network counters and memory (ZOS `Metrics`, with the hypervisor's overhead).
    pub fn metrics(&self) -> Result<MachineMetrics> {
        let mut metrics = BTreeMap::new();
        for name in self.list()? {
            let paths = self.paths(&name);
            let Ok(machine) = Machine::load(&paths.config()) else { continue };
            let mut metric =
                MachineMetric { guest_memory: machine.config.memory_mib * MIB, ..MachineMetric::default() };
            if let Some(resident) = self.pid_of(&paths).and_then(process::resident) {
                metric.rss = resident.rss;
                metric.memory_overhead = resident.rss.saturating_sub(resident.shmem.min(metric.guest_memory));
            }
            for iface in &machine.interfaces {
                let counters = tap_counters(&self.sys, &iface.tap);
                let group = if iface.public { &mut metric.public } else { &mut metric.private };
                group.net_rx_bytes += counters.net_rx_bytes;
                group.net_rx_packets += counters.net_rx_packets;
                group.net_tx_bytes += counters.net_tx_bytes;
                group.net_tx_packets += counters.net_tx_packets;
            }
            metrics.insert(name, metric);
        }
        Ok(metrics)
    }

    /// Rotates logs past the limit: the log is copied to `machine.log.1` and truncated (the
    /// hypervisor appends, so it goes on writing at the new end).
    pub fn rotate_logs(&self) {
        let Ok(names) = self.list() else { return };
        for name in names {
            let log = self.paths(&name).log();
            if std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) > self.config.log_max_bytes {
                let rotated = log.with_extension("log.1");
                let done = std::fs::copy(&log, &rotated)
                    .and_then(|_| std::fs::OpenOptions::new().write(true).open(&log))
                    .and_then(|file| file.set_len(0));
                if let Err(err) = done {
                    tracing::warn!(vm = name, "log rotation failed: {err}");
                }
            }
        }
    }

    /// One round of the monitor (ZOS `pkg/vm/monitor.go`): a VM whose workload is gone is stopped
    /// and removed; a dead VM is started again unless it died the configured number of times
    /// (4) within the failure window (2 minutes) or cannot be started, in which case its workload is
    /// decommissioned, so its capacity is released, and the VM removed. VMs with `NoKeepAlive` are
    /// left alone.
    pub fn monitor_once(&self, workloads: &dyn Workloads) -> Vec<MonitorAction> {
        self.rotate_logs();
        let mut actions = Vec::new();
        let Ok(names) = self.list() else { return actions };
        let window = Duration::from_secs(self.config.restart_window_secs);
        for name in names {
            let state = workloads.state(&name);
            let mut inner = self.lock_inner();
            let paths = self.paths(&name);
            let Ok(machine) = Machine::load(&paths.config()) else { continue };
            if state == WorkloadState::Gone {
                if let Err(err) = self.delete_locked(&mut inner, &name) {
                    tracing::warn!(vm = name, "cannot remove the vm of a gone workload: {err}");
                }
                tracing::info!(vm = name, "stopped: its workload is deleted, in error or unknown");
                actions.push(MonitorAction::Stopped(name));
                continue;
            }
            if machine.no_keep_alive || self.pid_of(&paths).is_some() {
                continue;
            }
            let now = Instant::now();
            let deaths = inner.failures.entry(name.clone()).or_default();
            deaths.retain(|t| now.duration_since(*t) < window);
            deaths.push(now);
            let count = deaths.len();
            let reason = if count >= self.config.failures_before_decommission as usize {
                Some(format!(
                    "vm died {count} times within {} s; last log: {}",
                    window.as_secs(),
                    last_lines(&paths.log())
                ))
            } else {
                match self.start(&mut inner, &machine, &paths) {
                    Ok(_) => {
                        tracing::warn!(vm = name, deaths = count, "vm died: restarted");
                        actions.push(MonitorAction::Restarted(name.clone()));
                        None
                    }
                    Err(err) => Some(format!("vm died and could not be restarted: {err}")),
                }
            };
            if let Some(reason) = reason {
                tracing::error!(vm = name, "{reason}: decommissioning");
                if let Err(err) = workloads.decommission(&name, &reason) {
                    tracing::error!(vm = name, "decommission failed: {err}");
                }
                if let Err(err) = self.delete_locked(&mut inner, &name) {
                    tracing::warn!(vm = name, "cannot remove the decommissioned vm: {err}");
                }
                actions.push(MonitorAction::Decommissioned(name, reason));
            }
        }
        actions
    }
}

fn last_lines(log: &Path) -> String {
    let text = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(2)..].join(" | ")
}

fn tap_counters(sys: &Path, tap: &str) -> NetMetric {
    let read = |name: &str| -> u64 {
        std::fs::read_to_string(sys.join("class/net").join(tap).join("statistics").join(name))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    // The tap's receive is the guest's transmit.
    NetMetric {
        net_rx_bytes: read("tx_bytes"),
        net_rx_packets: read("tx_packets"),
        net_tx_bytes: read("rx_bytes"),
        net_tx_packets: read("rx_packets"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zos_interfaces::vm::{Boot as VmBoot, SharedDir, VMDisk, VMIface, VMNetworkInfo};

    #[test]
    fn kernel_arguments_are_zos_defaults_over_the_users() {
        let mut vm = VM::default();
        vm.kernel_args.insert("console".into(), "tty0".into());
        vm.kernel_args.insert("quiet".into(), String::new());
        vm.kernel_args.insert("init".into(), "/sbin/zinit".into());
        assert_eq!(
            kernel_args(&vm, true),
            "quiet rw console=ttyS0 reboot=k panic=1 root=/dev/vda boot.shell_on_fail init=/sbin/zinit"
        );
        vm.boot.kind = BOOT_VIRTIOFS;
        let line = kernel_args(&vm, false);
        assert!(line.contains("root=vroot rootfstype=virtiofs rootdelay=30"), "{line}");
    }

    #[test]
    fn machine_order_seed_and_console() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config =
            Config { run_dir: dir.path().join("run"), state_dir: dir.path().join("state"), ..Config::default() };
        let manager = Manager::new(
            Config { accel: crate::accel::AccelMode::Tcg, ..config },
            Arc::new(Qemu { binary: "qemu".into(), virtiofsd: "v".into(), tcg_tb_size_mib: None }),
        )
        .expect("manager");
        let vm = VM {
            name: "7-9-web".into(),
            hostname: "web".into(),
            cpu: 1,
            memory: 512 * MIB + 1,
            kernel_image: "/k".into(),
            boot: VmBoot { kind: BOOT_VIRTIOFS, path: "/flist/root".into() },
            disks: vec![VMDisk { path: "/vd/data".into(), target: "/data".into() }],
            shared: vec![SharedDir { id: "qsfs1".into(), path: "/q".into(), target: "/q".into() }],
            network: VMNetworkInfo {
                ifaces: vec![VMIface {
                    tap: "t-abc".into(),
                    mac: "52:54:00:01:02:03".into(),
                    ips: vec!["10.20.2.5/24".into()],
                    ip4_default_gateway: "10.20.2.1".into(),
                    net_id: "NETID".into(),
                    ..VMIface::default()
                }],
                nameservers: vec![],
            },
            environment: [("SSH_KEY".to_string(), "ssh-ed25519 K".to_string())].into(),
            ..VM::default()
        };
        let paths = manager.paths(&vm.name);
        let (machine, seed) = manager.machine_for(&vm, &paths);
        assert_eq!(machine.config.memory_mib, 512, "sub-MiB sizes are truncated");
        assert_eq!(
            machine.disks,
            vec![Disk { path: "/vd/data".into(), readonly: false }, Disk { path: paths.seed(), readonly: true }]
        );
        assert_eq!(machine.fs.iter().map(|f| f.tag.as_str()).collect::<Vec<_>>(), ["vroot", "qsfs1"]);
        let console = machine.console.expect("console");
        assert_eq!((console.namespace.as_deref(), console.address.as_str()), (Some("n-NETID"), "10.20.2.1:20005"));
        assert_eq!(seed.mounts, vec![("vda".to_string(), "/data".to_string()), ("qsfs1".into(), "/q".into())]);
        assert_eq!(seed.ssh_keys, ["ssh-ed25519 K"]);
        assert_eq!(seed.hostname, "web");
        assert!(manager.list().expect("list").is_empty());
        assert!(!manager.exists("7-9-web"));
        assert!(matches!(manager.inspect("7-9-web"), Err(VmError::NotFound(_))));
        assert!(manager.delete("7-9-web").is_ok(), "delete is idempotent");
        assert!(matches!(manager.delete("../x"), Err(VmError::Invalid(_))));
    }

    fn manager_on(dir: &Path) -> Manager {
        let config = Config {
            run_dir: dir.join("run"),
            state_dir: dir.join("state"),
            sys_root: dir.join("sys"),
            accel: crate::accel::AccelMode::Tcg,
            log_max_bytes: 1000,
            ..Config::default()
        };
        let qemu = Qemu { binary: "/nonexistent/qemu".into(), virtiofsd: "v".into(), tcg_tb_size_mib: None };
        Manager::new(config, Arc::new(qemu)).expect("manager")
    }

    /// A machine the manager knows, as if it ran: its directory and config.
    fn known(manager: &Manager, id: &str, devices: &[&str]) {
        let paths = manager.paths(id);
        std::fs::create_dir_all(&paths.dir).expect("dir");
        let machine = Machine {
            id: id.into(),
            boot: Boot { kernel: "/k".into(), initrd: None, args: String::new() },
            disks: vec![],
            fs: vec![],
            interfaces: vec![],
            config: machine::Config { vcpu: 1, memory_mib: 256 },
            devices: devices.iter().map(|d| d.to_string()).collect(),
            no_keep_alive: false,
            console: None,
        };
        machine.save(&paths.config()).expect("save");
    }

    #[test]
    fn logs_rotate_past_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manager = manager_on(dir.path());
        known(&manager, "1-1-a", &[]);
        let log = manager.paths("1-1-a").log();
        std::fs::write(&log, "x".repeat(999)).expect("write");
        manager.rotate_logs();
        assert_eq!(std::fs::metadata(&log).expect("log").len(), 999, "under the limit: kept");
        std::fs::write(&log, "y".repeat(1001)).expect("write");
        manager.rotate_logs();
        assert_eq!(std::fs::metadata(&log).expect("log").len(), 0, "truncated");
        assert_eq!(std::fs::read_to_string(log.with_extension("log.1")).expect("rotated"), "y".repeat(1001));
        assert_eq!(manager.logs("1-1-a").expect("logs"), "");
        assert!(matches!(manager.logs("1-1-b"), Err(VmError::NotFound(_))));
    }

    #[test]
    fn gpus_need_an_iommu_and_go_to_one_vm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manager = manager_on(dir.path());
        let gpu = "0000:41:00.0";
        let vm = VM {
            name: "1-2-gpu".into(),
            cpu: 1,
            memory: 256 * MIB,
            kernel_image: "/k".into(),
            devices: vec![gpu.into()],
            ..VM::default()
        };
        let err = manager.run(&vm).expect_err("no IOMMU");
        assert_eq!(err.code(), "unavailable");
        assert!(err.to_string().contains("needs an IOMMU"), "{err}");
        let bad = VM { devices: vec!["../../x".into()], ..vm.clone() };
        assert_eq!(manager.run(&bad).expect_err("bad slot").code(), "invalid");
        std::fs::create_dir_all(dir.path().join("sys/kernel/iommu_groups/7")).expect("iommu");
        known(&manager, "1-1-holder", &[gpu]);
        let err = manager.run(&vm).expect_err("held");
        assert_eq!(err.code(), "conflict");
        assert_eq!(err.to_string(), "device 0000:41:00.0 is used by vm '1-1-holder'");
        // Free again: it is bound to vfio-pci, and the start fails for want of QEMU, leaving nothing.
        manager.delete("1-1-holder").expect("delete");
        std::fs::create_dir_all(dir.path().join("sys/bus/pci/devices").join(gpu)).expect("device");
        let err = manager.run(&vm).expect_err("no qemu");
        assert_eq!(err.code(), "unavailable", "{err}");
        let override_ = dir.path().join("sys/bus/pci/devices").join(gpu).join("driver_override");
        assert_eq!(std::fs::read_to_string(override_).expect("override"), "vfio-pci");
        assert_eq!(std::fs::read_to_string(dir.path().join("sys/bus/pci/drivers_probe")).expect("probe"), gpu);
        assert!(!manager.paths("1-2-gpu").dir.exists());
    }
}
