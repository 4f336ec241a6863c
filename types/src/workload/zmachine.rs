//! `zmachine`: a virtual machine or a container run as a micro-VM.

use crate::text::{HexBytes, empty_as_none};
use crate::workload::WorkloadType;
use crate::{Capacity, Challenge, Deployment, Unit};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Length of a mycelium IP seed.
pub const MYCELIUM_SEED_LEN: usize = 6;

/// Smallest memory a zmachine may have.
pub const MIN_MEMORY: Unit = Unit::mib(250);

/// One private network interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineInterface {
    /// Name of the `network` workload to join.
    pub network: String,
    /// The zmachine's address in that network.
    #[serde(with = "empty_as_none")]
    pub ip: Option<IpAddr>,
}

/// Mycelium address request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MyceliumIp {
    /// Name of the `network` workload that carries mycelium.
    pub network: String,
    /// 6-byte seed of the address, in hex.
    pub hex_seed: HexBytes,
}

/// The zmachine's networks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineNetwork {
    /// Name of an `ip`/`ipv4` workload of the same deployment, or empty.
    pub public_ip: String,
    /// Join the planetary (yggdrasil) network.
    pub planetary: bool,
    /// Private interfaces (exactly one).
    pub interfaces: Vec<MachineInterface>,
    /// Mycelium address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mycelium: Option<MyceliumIp>,
}

/// CPU and memory of a zmachine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineCapacity {
    /// Virtual CPUs (1..=255).
    pub cpu: u8,
    /// Memory.
    pub memory: Unit,
}

/// A disk or volume mounted into the zmachine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineMount {
    /// Name of a `zmount` or `volume` workload of the same deployment.
    pub name: String,
    /// Where it is mounted (container mode).
    pub mountpoint: String,
}

/// A GPU as a zmachine names it: `<slot>/<vendor>/<device>`, e.g. `0000:00:06.0/10de/2330`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GpuRef {
    /// PCI slot.
    pub slot: String,
    /// PCI vendor id (hex).
    pub vendor: String,
    /// PCI device id (hex).
    pub device: String,
}

impl GpuRef {
    /// Parses `<slot>/<vendor>/<device>`.
    pub fn parse(text: &str) -> Result<GpuRef, String> {
        let mut parts = text.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(slot), Some(vendor), Some(device), None)
                if !slot.is_empty() && !vendor.is_empty() && !device.is_empty() =>
            {
                Ok(GpuRef { slot: slot.into(), vendor: vendor.into(), device: device.into() })
            }
            _ => Err(format!("invalid GPU id format '{text}'")),
        }
    }
}

/// Data of a `zmachine` workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZMachine {
    /// URL of the flist to boot.
    pub flist: String,
    /// Networks.
    pub network: MachineNetwork,
    /// Root disk size; 0 means the minimum.
    pub size: Unit,
    /// CPU and memory.
    pub compute_capacity: MachineCapacity,
    /// Mounted disks and volumes.
    pub mounts: Vec<MachineMount>,
    /// Container entrypoint.
    pub entrypoint: String,
    /// Container environment.
    pub env: BTreeMap<String, String>,
    /// Run corex in the container.
    pub corex: bool,
    /// GPUs passed through, as `<slot>/<vendor>/<device>`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpu: Vec<String>,
}

impl ZMachine {
    /// ZOS's `MinRootSize`: 500 MiB when `cpu * memory / 8 GiB` is 0 in integer math, else 2 GiB.
    pub fn min_root_size(&self) -> Unit {
        let cu = u64::from(self.compute_capacity.cpu)
            .saturating_mul(self.compute_capacity.memory.0)
            .checked_div(Unit::gib(8).0)
            .unwrap_or(0);
        if cu == 0 { Unit::mib(500) } else { Unit::gib(2) }
    }

    /// ZOS's `RootSize`: `max(size, min_root_size)`; size 0 means the minimum.
    pub fn root_size(&self) -> Unit {
        self.size.max(self.min_root_size())
    }

    /// The GPUs, parsed.
    pub fn gpus(&self) -> Result<Vec<GpuRef>, String> {
        self.gpu.iter().map(|gpu| GpuRef::parse(gpu)).collect()
    }

    pub(crate) fn validate(&self, deployment: &Deployment) -> Result<(), String> {
        if self.network.interfaces.len() != 1 {
            return Err("only one network private network is supported at the moment".into());
        }
        if self.network.interfaces.iter().any(|iface| iface.ip.is_none()) {
            return Err("invalid IP".into());
        }
        if self.compute_capacity.cpu == 0 {
            return Err("cpu capacity can't be 0".into());
        }
        if self.compute_capacity.memory < MIN_MEMORY {
            return Err("mem capacity can't be less that 250M".into());
        }
        let min_root = self.min_root_size();
        if self.size != Unit::ZERO && self.size < min_root {
            return Err(format!("disk size can't be less that {}. Set to 0 for minimum", min_root.0));
        }
        if !self.network.public_ip.is_empty() {
            self.validate_public_ip(deployment)?;
        }
        for iface in &self.network.interfaces {
            if matches!(iface.network.as_str(), "ygg" | "pub" | "mycelium") {
                return Err(format!("'{}' is reserved network name", iface.network));
            }
        }
        if let Some(mycelium) = &self.network.mycelium
            && mycelium.hex_seed.0.len() != MYCELIUM_SEED_LEN
        {
            return Err("invalid mycelium seed length expected 6 bytes".into());
        }
        let gpus = self.gpus()?;
        // ZOS is silent here (vmd would try to pass the same PCI device through twice); we refuse it.
        for (idx, gpu) in gpus.iter().enumerate() {
            if gpus.iter().take(idx).any(|other| other.slot.eq_ignore_ascii_case(&gpu.slot)) {
                return Err(format!("gpu '{}' is listed more than once", gpu.slot));
            }
        }
        Ok(())
    }

    /// The public IP must name an `ip`/`ipv4` workload of the deployment used by no other zmachine.
    /// (ZOS lets a non-IP workload through here by wrapping a nil error; we refuse it.)
    fn validate_public_ip(&self, deployment: &Deployment) -> Result<(), String> {
        let name = &self.network.public_ip;
        let Some(target) = deployment.workloads.iter().find(|wl| &wl.name == name) else {
            return Err("public ip is not found".into());
        };
        if !matches!(target.kind(), WorkloadType::Ip | WorkloadType::Ipv4) {
            return Err(format!("workload of name '{name}' is not a public ip"));
        }
        let users = deployment
            .workloads
            .iter()
            .filter_map(|wl| wl.data.as_zmachine())
            .filter(|vm| &vm.network.public_ip == name)
            .count();
        if users > 1 {
            return Err("public ip is assigned to multiple vms".into());
        }
        Ok(())
    }

    pub(crate) fn capacity(&self) -> Capacity {
        Capacity {
            cru: u64::from(self.compute_capacity.cpu),
            mru: self.compute_capacity.memory,
            sru: self.root_size(),
            ..Capacity::default()
        }
    }

    pub(crate) fn challenge(&self, c: &mut Challenge) {
        c.put(&self.flist);
        c.put(&self.network.public_ip);
        c.put(self.network.planetary);
        for iface in &self.network.interfaces {
            c.put(&iface.network);
            match &iface.ip {
                Some(ip) => c.put(ip),
                None => c.put("<nil>"),
            }
        }
        if let Some(mycelium) = &self.network.mycelium {
            c.put(&mycelium.network);
            c.put(&mycelium.hex_seed);
        }
        c.put(self.size.0);
        c.put(self.compute_capacity.cpu);
        c.put(self.compute_capacity.memory.0);
        for mount in &self.mounts {
            c.put(&mount.name);
            c.put(&mount.mountpoint);
        }
        c.put(&self.entrypoint);
        // BTreeMap iterates in sorted key order, as ZOS sorts the keys.
        for (key, value) in &self.env {
            c.put(key);
            c.put('=');
            c.put(value);
        }
        for gpu in &self.gpu {
            c.put(gpu);
        }
    }
}

/// Result data of a zmachine. The legacy key `ygg_ip` reads as `planetary_ip`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZMachineResult {
    /// Machine id.
    pub id: String,
    /// Private IP.
    pub ip: String,
    /// Planetary (yggdrasil) IP.
    #[serde(alias = "ygg_ip")]
    pub planetary_ip: String,
    /// Mycelium IP.
    pub mycelium_ip: String,
    /// Console URL.
    pub console_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(cpu: u8, memory: Unit) -> ZMachine {
        ZMachine { compute_capacity: MachineCapacity { cpu, memory }, ..ZMachine::default() }
    }

    // Upstream `TestZMachineSRU` (gridtypes/zos/zmachine_test.go).
    #[test]
    fn root_size_minimum_follows_cpu_times_memory() {
        let cases = [
            (1, Unit::gib(8), Unit::gib(2)),
            (1, Unit::gib(4), Unit::mib(500)),
            (2, Unit::gib(4), Unit::gib(2)),
            (3, Unit::gib(4), Unit::gib(2)),
            (4, Unit::gib(5), Unit::gib(2)),
            (1, Unit::gib(1), Unit::mib(500)),
            (1, Unit::mib(250), Unit::mib(500)),
        ];
        for (cpu, memory, expected) in cases {
            assert_eq!(vm(cpu, memory).root_size(), expected, "cpu {cpu} memory {memory}");
        }
    }

    #[test]
    fn explicit_size_above_minimum_wins() {
        let mut machine = vm(1, Unit::gib(8));
        machine.size = Unit::gib(10);
        assert_eq!(machine.root_size(), Unit::gib(10));
        assert_eq!(machine.capacity().sru, Unit::gib(10));
    }

    // Upstream `TestResultDeprecated`.
    #[test]
    fn legacy_ygg_ip_reads_as_planetary_ip() {
        let result: ZMachineResult = serde_json::from_str(r#"{"id": "a", "ygg_ip": "300::1"}"#).expect("result");
        assert_eq!(result.planetary_ip, "300::1");
    }

    #[test]
    fn the_same_gpu_twice_is_refused() {
        let mut machine = vm(1, Unit::gib(1));
        machine.network.interfaces = vec![MachineInterface { network: "n".into(), ip: "10.1.1.2".parse().ok() }];
        machine.gpu = vec!["0000:00:06.0/10de/2330".into(), "0000:00:07.0/10de/2330".into()];
        assert_eq!(machine.validate(&Deployment::default()), Ok(()));
        machine.gpu.push("0000:00:06.0/10DE/2330".into());
        assert_eq!(
            machine.validate(&Deployment::default()),
            Err("gpu '0000:00:06.0' is listed more than once".to_string())
        );
    }

    #[test]
    fn gpu_ids_need_three_parts() {
        assert_eq!(
            GpuRef::parse("0000:00:06.0/10de/2330"),
            Ok(GpuRef { slot: "0000:00:06.0".into(), vendor: "10de".into(), device: "2330".into() })
        );
        assert!(GpuRef::parse("0000:00:06.0/10de").is_err());
        assert!(GpuRef::parse("a/b/c/d").is_err());
        assert!(GpuRef::parse("//").is_err());
    }
}
