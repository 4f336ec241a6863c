//! `manager@0.0.1` of module `vmd`: the virtual machine module's interface (ZOS `pkg/vm.go`,
//! `VMModule`), with ZOS's shapes: Go field names on the wire, as Go's msgpack writes them.
//!
//! Addresses are carried as text (`10.20.2.5/24`, `10.20.2.1`) where ZOS has `net.IPNet` and `net.IP`.
//! Fields ZOS does not have are marked so; they default when a Go peer leaves them out.
//!
//! Error codes: `invalid` (a VM that fails validation), `not_found` (no such VM), `conflict` (a GPU
//! held by another VM, a name in use with another configuration), `unavailable` (no hypervisor, no
//! IOMMU for a GPU), `internal` (anything else).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A route of an interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Route {
    /// The destination network (`10.20.0.0/16`).
    #[serde(rename = "Net")]
    pub net: String,
    /// The gateway; empty: the route is on the device.
    #[serde(rename = "Gateway")]
    pub gateway: String,
}

/// One network interface of a VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VMIface {
    /// The tap device on the host (made by networkd).
    #[serde(rename = "Tap")]
    pub tap: String,
    /// The guest's MAC address.
    #[serde(rename = "MAC")]
    pub mac: String,
    /// Addresses with their prefix (`10.20.2.5/24`).
    #[serde(rename = "IPs")]
    pub ips: Vec<String>,
    /// Extra routes.
    #[serde(rename = "Routes")]
    pub routes: Vec<Route>,
    /// IPv4 default gateway, empty when none.
    #[serde(rename = "IP4DefaultGateway")]
    pub ip4_default_gateway: String,
    /// IPv6 default gateway, empty when none.
    #[serde(rename = "IP6DefaultGateway")]
    pub ip6_default_gateway: String,
    /// Whether the interface carries a public IPv4 address.
    #[serde(rename = "PublicIPv4")]
    pub public_ipv4: bool,
    /// Whether the interface carries a public IPv6 address.
    #[serde(rename = "PublicIPv6")]
    pub public_ipv6: bool,
    /// The private network it belongs to (empty for public interfaces).
    #[serde(rename = "NetID")]
    pub net_id: String,
}

/// The network of a VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VMNetworkInfo {
    /// Interfaces, in the guest's order.
    #[serde(rename = "Ifaces")]
    pub ifaces: Vec<VMIface>,
    /// DNS servers (ZOS's defaults when empty).
    #[serde(rename = "Nameservers")]
    pub nameservers: Vec<String>,
}

/// A raw disk attached to the VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VMDisk {
    /// The disk file (a storaged vdisk).
    #[serde(rename = "Path")]
    pub path: String,
    /// Where the guest mounts it (container mode); empty: not mounted.
    #[serde(rename = "Target")]
    pub target: String,
}

/// A host directory shared with the guest over virtiofs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SharedDir {
    /// Its id, the virtiofs tag.
    #[serde(rename = "ID")]
    pub id: String,
    /// The host directory.
    #[serde(rename = "Path")]
    pub path: String,
    /// Where the guest mounts it.
    #[serde(rename = "Target")]
    pub target: String,
}

/// Boot from a disk (full VM): ZOS `BootDisk`.
pub const BOOT_DISK: u8 = 0;
/// Boot from a virtiofs root (container mode): ZOS `BootVirtioFS`.
pub const BOOT_VIRTIOFS: u8 = 1;

/// How the VM boots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Boot {
    /// [`BOOT_DISK`] or [`BOOT_VIRTIOFS`].
    #[serde(rename = "Type")]
    pub kind: u8,
    /// The boot disk, or the directory shared as the root filesystem; empty: the initrd is the root.
    #[serde(rename = "Path")]
    pub path: String,
}

/// A virtual machine to run (ZOS `pkg.VM`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VM {
    /// Its name: the workload id (`twin-contract-name`).
    #[serde(rename = "Name")]
    pub name: String,
    /// Hostname the guest gets from its seed (the name when empty).
    #[serde(rename = "Hostname")]
    pub hostname: String,
    /// vCPUs.
    #[serde(rename = "CPU")]
    pub cpu: u8,
    /// Memory in bytes.
    #[serde(rename = "Memory")]
    pub memory: u64,
    /// The network.
    #[serde(rename = "Network")]
    pub network: VMNetworkInfo,
    /// The kernel (or firmware) to boot.
    #[serde(rename = "KernelImage")]
    pub kernel_image: String,
    /// The initrd, empty when none.
    #[serde(rename = "InitrdImage")]
    pub initrd_image: String,
    /// Kernel arguments; ZOS's defaults override the same keys.
    #[serde(rename = "KernelArgs")]
    pub kernel_args: BTreeMap<String, String>,
    /// The entrypoint (container mode), written to the seed.
    #[serde(rename = "Entrypoint")]
    pub entrypoint: String,
    /// Disks after the boot disk, in order (zmounts).
    #[serde(rename = "Disks")]
    pub disks: Vec<VMDisk>,
    /// Shared directories (qsfs, volumes).
    #[serde(rename = "Shared")]
    pub shared: Vec<SharedDir>,
    /// Boot options.
    #[serde(rename = "Boot")]
    pub boot: Boot,
    /// Environment: `SSH_KEY` (root's authorized keys, split on newlines and commas) and the
    /// entrypoint's environment.
    #[serde(rename = "Environment")]
    pub environment: BTreeMap<String, String>,
    /// When set, the VM is not restarted when it stops.
    #[serde(rename = "NoKeepAlive")]
    pub no_keep_alive: bool,
    /// PCI devices (GPUs) passed through, as `0000:41:00.0`.
    #[serde(rename = "Devices")]
    pub devices: Vec<String>,
}

/// What `Run` answers (ZOS `MachineInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineInfo {
    /// Where the console is served (`10.20.2.1:20005`), empty when it is not served.
    #[serde(rename = "ConsoleURL")]
    pub console_url: String,
    /// The accelerator the VM runs on (`kvm` or `tcg`). Not in ZOS's shape.
    #[serde(rename = "Accel")]
    pub accel: String,
    /// Things the caller should know (no IOMMU for a GPU, ...). Not in ZOS's shape.
    #[serde(rename = "Warnings")]
    pub warnings: Vec<String>,
}

/// What `Inspect` answers (ZOS `VMInfo`, with our additions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VMInfo {
    /// vCPUs.
    #[serde(rename = "CPU")]
    pub cpu: i64,
    /// Memory in bytes.
    #[serde(rename = "Memory")]
    pub memory: i64,
    /// Hyperthreading (always false, as in ZOS).
    #[serde(rename = "HtEnabled")]
    pub ht_enabled: bool,
    /// Where the console is served. Not in ZOS's shape (as for the rest below).
    #[serde(rename = "ConsoleURL")]
    pub console_url: String,
    /// `kvm` or `tcg`.
    #[serde(rename = "Accel")]
    pub accel: String,
    /// The hypervisor's run state (`running`, `paused`, ... from QMP), `stopped` when no process.
    #[serde(rename = "State")]
    pub state: String,
    /// The hypervisor's process id, 0 when none.
    #[serde(rename = "Pid")]
    pub pid: u32,
    /// Restarts by the monitor in the current failure window.
    #[serde(rename = "Restarts")]
    pub restarts: u32,
}

/// Network counters of one group of interfaces (ZOS `NetMetric`, JSON names as in ZOS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetMetric {
    /// Packets received.
    pub net_rx_packets: u64,
    /// Bytes received.
    pub net_rx_bytes: u64,
    /// Packets sent.
    pub net_tx_packets: u64,
    /// Bytes sent.
    pub net_tx_bytes: u64,
}

/// One VM's metrics (ZOS `MachineMetric`, with the memory figures added).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineMetric {
    /// Private interfaces' counters.
    #[serde(rename = "Private")]
    pub private: NetMetric,
    /// Public interfaces' counters.
    #[serde(rename = "Public")]
    pub public: NetMetric,
    /// The guest's memory, in bytes. Not in ZOS's shape.
    #[serde(rename = "GuestMemory")]
    pub guest_memory: u64,
    /// The hypervisor's resident memory, in bytes. Not in ZOS's shape.
    #[serde(rename = "Rss")]
    pub rss: u64,
    /// The hypervisor's own resident memory beyond the guest's RAM (its resident memory less the
    /// resident part of the guest's shared memory), in bytes: what the VM costs the node beyond what
    /// its workload reserved. Not in ZOS's shape.
    #[serde(rename = "MemoryOverhead")]
    pub memory_overhead: u64,
}

/// Metrics of every VM, by name.
pub type MachineMetrics = BTreeMap<String, MachineMetric>;

zos_zbus::interface! {
    /// vmd's module interface (ZOS `pkg/vm.go` `VMModule`), served as `manager@0.0.1` by module `vmd`.
    pub trait VMModule, client VMClient, server VMServer, object("manager", "0.0.1") {
        /// Validates and starts a VM (idempotent: a running VM of the same configuration is left as is).
        "Run" => fn run(vm: VM) -> MachineInfo;
        /// A VM's configuration and state.
        "Inspect" => fn inspect(name: String) -> VMInfo;
        /// Stops a VM (clean shutdown, SIGTERM after 5 s, SIGKILL after 10 s) and removes what it had
        /// (idempotent).
        "Delete" => fn delete(name: String) -> ();
        /// Whether a VM is known.
        "Exists" => fn exists(name: String) -> bool;
        /// The tail of a VM's log.
        "Logs" => fn logs(name: String) -> String;
        /// Every VM's name.
        "List" => fn list() -> Vec<String>;
        /// Every VM's metrics.
        "Metrics" => fn metrics() -> MachineMetrics;
        /// Pauses (`lock = true`) or resumes a VM.
        "Lock" => fn lock(name: String, lock: bool) -> ();
    }
}

/// The module name vmd serves on.
pub const MODULE: &str = "vmd";
