//! The machine a hypervisor runs (ZOS `pkg/vm/machine.go`'s `Machine`): boot source, disks in the
//! guest's order, shared directories, interfaces, vCPUs and memory, PCI devices, and whether the
//! monitor keeps it alive. Saved as JSON in the machine's run directory; and ZOS's validation of a
//! requested VM ([`validate_vm`]).

use crate::error::{Result, VmError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use zos_interfaces::vm::VM;

/// One MiB.
pub const MIB: u64 = 1 << 20;
/// ZOS's smallest VM: 250 MiB.
pub const MIN_MEMORY: u64 = 250 * MIB;

/// The boot source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boot {
    /// Kernel (or firmware).
    pub kernel: PathBuf,
    /// Initrd, if any.
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    #[serde(default)]
    pub args: String,
}

/// A virtio-blk disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// The raw file.
    pub path: PathBuf,
    /// Attached read-only.
    #[serde(default)]
    pub readonly: bool,
}

/// A host directory shared over virtiofs (one virtiofsd each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFs {
    /// The virtiofs tag the guest mounts.
    pub tag: String,
    /// The host directory.
    pub path: PathBuf,
}

/// A virtio-net interface on a host tap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// The tap device.
    pub tap: String,
    /// The guest's MAC address.
    pub mac: String,
    /// A public interface (its counters are the VM's public traffic).
    #[serde(default)]
    pub public: bool,
}

/// vCPUs and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// vCPUs.
    pub vcpu: u8,
    /// Memory in MiB (ZOS truncates sub-MiB sizes too).
    pub memory_mib: u64,
}

/// Where the serial console is served over TCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Console {
    /// The network namespace to listen in; `None`: the daemon's own.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `ADDRESS:PORT`.
    pub address: String,
}

/// A machine, as the backend runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// Its id (the workload id).
    pub id: String,
    /// The boot source.
    pub boot: Boot,
    /// Disks in the guest's order: boot disk, zmounts, the cloud-init seed (read-only).
    #[serde(default)]
    pub disks: Vec<Disk>,
    /// Shared directories, the virtiofs root first in container mode.
    #[serde(default)]
    pub fs: Vec<SharedFs>,
    /// Interfaces in the guest's order.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// vCPUs and memory.
    pub config: Config,
    /// PCI devices passed through (vfio).
    #[serde(default)]
    pub devices: Vec<String>,
    /// When set, the monitor leaves the machine alone when it stops.
    #[serde(default)]
    pub no_keep_alive: bool,
    /// Where the console is served, if anywhere.
    #[serde(default)]
    pub console: Option<Console>,
}

impl Machine {
    /// Checks what a hypervisor needs: a kernel, 1 to `host_threads` vCPUs, at least 250 MiB.
    pub fn validate(&self, host_threads: usize) -> Result<()> {
        if self.id.is_empty() || self.id.contains('/') || self.id.starts_with('.') {
            return Err(VmError::Invalid(format!("invalid machine id '{}'", self.id)));
        }
        if self.boot.kernel.as_os_str().is_empty() {
            return Err(VmError::Invalid("kernel-image is required".into()));
        }
        check_cpu_memory(self.config.vcpu, self.config.memory_mib * MIB, host_threads)
    }

    /// Reads a machine saved with [`Machine::save`].
    pub fn load(path: &Path) -> Result<Machine> {
        let text = std::fs::read(path).map_err(VmError::io(format!("read {}", path.display())))?;
        serde_json::from_slice(&text).map_err(|err| VmError::Invalid(format!("{}: {err}", path.display())))
    }

    /// Saves the machine as JSON (0600, durably).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(|err| VmError::Invalid(err.to_string()))?;
        zos_interfaces::daemon::write_private(path, &text).map_err(VmError::io(format!("write {}", path.display())))
    }
}

fn check_cpu_memory(cpu: u8, memory: u64, host_threads: usize) -> Result<()> {
    if memory < MIN_MEMORY {
        return Err(VmError::Invalid("invalid memory must not be less than 250M".into()));
    }
    if cpu == 0 || usize::from(cpu) > host_threads {
        return Err(VmError::Invalid(format!("invalid cpu must be between 1 and {host_threads}")));
    }
    Ok(())
}

/// Whether `target` is the root directory once cleaned (`/`, `//`, `/./`, `/a/..`).
fn is_root(target: &str) -> bool {
    if target.is_empty() {
        return false;
    }
    let mut depth: i32 = 0;
    let mut absolute = false;
    for (i, part) in target.split('/').enumerate() {
        match part {
            "" if i == 0 => absolute = true,
            "" | "." => {}
            ".." => depth = (depth - 1).max(0),
            _ => depth += 1,
        }
    }
    absolute && depth == 0
}

/// ZOS's validation of a VM (`pkg/vm.go` `Validate`): name and kernel required, memory of at least
/// 250 MiB, 1 to `host_threads` vCPUs, no disk or shared directory mounted on `/`.
pub fn validate_vm(vm: &VM, host_threads: usize) -> Result<()> {
    if vm.name.is_empty() {
        return Err(VmError::Invalid("name is required".into()));
    }
    if vm.name.contains('/') || vm.name.starts_with('.') {
        return Err(VmError::Invalid(format!("invalid name '{}'", vm.name)));
    }
    if vm.kernel_image.is_empty() {
        return Err(VmError::Invalid("kernel-image is required".into()));
    }
    check_cpu_memory(vm.cpu, vm.memory, host_threads)?;
    for shared in &vm.shared {
        if is_root(&shared.target) {
            return Err(VmError::Invalid(format!("validating virtiofs {}: mount target can't be /", shared.target)));
        }
    }
    for disk in &vm.disks {
        if is_root(&disk.target) {
            return Err(VmError::Invalid(format!("validating disk {}: mount target can't be /", disk.target)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zos_interfaces::vm::{SharedDir, VMDisk};

    fn vm() -> VM {
        VM { name: "1-2-vm".into(), cpu: 1, memory: 256 * MIB, kernel_image: "/boot/k".into(), ..VM::default() }
    }

    #[test]
    fn zos_validation_rules() {
        assert!(validate_vm(&vm(), 2).is_ok());
        let cases: Vec<(VM, &str)> = vec![
            (VM { name: String::new(), ..vm() }, "name is required"),
            (VM { kernel_image: String::new(), ..vm() }, "kernel-image is required"),
            (VM { memory: 249 * MIB, ..vm() }, "invalid memory must not be less than 250M"),
            (VM { cpu: 0, ..vm() }, "invalid cpu must be between 1 and 2"),
            (VM { cpu: 3, ..vm() }, "invalid cpu must be between 1 and 2"),
            (
                VM { disks: vec![VMDisk { path: "/d".into(), target: "/a/..".into() }], ..vm() },
                "validating disk /a/..: mount target can't be /",
            ),
            (
                VM { shared: vec![SharedDir { id: "q".into(), path: "/p".into(), target: "//".into() }], ..vm() },
                "validating virtiofs //: mount target can't be /",
            ),
        ];
        for (bad, message) in cases {
            let err = validate_vm(&bad, 2).expect_err(message);
            assert_eq!(err.to_string(), message);
            assert_eq!(err.code(), "invalid");
        }
        assert!(validate_vm(&VM { memory: 250 * MIB, cpu: 2, ..vm() }, 2).is_ok());
        let ok = VM { disks: vec![VMDisk { path: "/d".into(), target: "/data".into() }], ..vm() };
        assert!(validate_vm(&ok, 2).is_ok());
    }

    #[test]
    fn root_targets() {
        for root in ["/", "//", "/./", "/a/..", "/a/../"] {
            assert!(is_root(root), "{root}");
        }
        for other in ["", "/a", "a", "/a/b/..", "."] {
            assert!(!is_root(other), "{other}");
        }
    }

    #[test]
    fn machine_round_trips_as_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let machine = Machine {
            id: "1-2-vm".into(),
            boot: Boot { kernel: "/k".into(), initrd: Some("/i".into()), args: "console=ttyS0".into() },
            disks: vec![Disk { path: "/d".into(), readonly: true }],
            fs: vec![SharedFs { tag: "vroot".into(), path: "/r".into() }],
            interfaces: vec![Interface { tap: "t-1".into(), mac: "52:54:00:00:00:01".into(), public: false }],
            config: Config { vcpu: 1, memory_mib: 256 },
            devices: vec![],
            no_keep_alive: false,
            console: None,
        };
        let path = dir.path().join("config.json");
        machine.save(&path).expect("save");
        assert_eq!(Machine::load(&path).expect("load"), machine);
        assert!(machine.validate(1).is_ok());
        let small = Machine { config: Config { vcpu: 1, memory_mib: 200 }, ..machine };
        assert!(small.validate(1).is_err());
    }
}
