//! The planner's input format: a node, an admission policy, existing deployments and requests.
//!
//! This is our own format (not ZOS's), so unknown fields are refused: a typo in a node
//! description must not silently become a zero.

use crate::{Deployment, Unit};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Kind of disk behind a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    /// Solid state: serves `sru`.
    Ssd,
    /// Spinning disk: serves `hru`.
    Hdd,
}

impl PoolKind {
    /// `ssd` or `hdd`.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Ssd => "ssd",
            PoolKind::Hdd => "hdd",
        }
    }
}

fn yes() -> bool {
    true
}

/// A storage pool: one whole disk, as storaged makes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Pool name (the btrfs label).
    pub name: String,
    /// SSD or HDD.
    pub kind: PoolKind,
    /// Device size.
    pub size: Unit,
    /// Reserved by volumes, vdisks and zdb namespaces already on it.
    #[serde(default)]
    pub used: Unit,
    /// Whether the pool is mounted (mounted pools are tried first).
    #[serde(default = "yes")]
    pub mounted: bool,
    /// Whether it already holds a `vdisks` subvolume (vdisks prefer such pools).
    #[serde(default)]
    pub vdisks: bool,
    /// Whether it already holds a `zdb` subvolume (HDD only: one zdb container per disk).
    #[serde(default)]
    pub zdb: bool,
}

/// A GPU of the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// PCI slot, e.g. `0000:00:06.0`.
    pub id: String,
    /// PCI vendor id, hex without `0x`, e.g. `10de`.
    pub vendor: String,
    /// PCI device id, hex without `0x`, e.g. `2330`.
    pub device: String,
}

/// A node as the planner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Logical CPU threads.
    pub cru: u64,
    /// Total memory.
    pub mru: Unit,
    /// Memory the OS reports as used now (`MemTotal - MemAvailable`).
    #[serde(default)]
    pub os_used_mru: Unit,
    /// Storage pools.
    #[serde(default)]
    pub pools: Vec<PoolSpec>,
    /// Public IPv4 addresses with their prefix, as the farm hands them out.
    #[serde(default)]
    pub public_ips: Vec<Ipv4Net>,
    /// GPUs.
    #[serde(default)]
    pub gpus: Vec<GpuSpec>,
}

/// Admission presets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Exactly ZOS: memory is the only planner check; disks by storaged placement; no CPU or GPU check.
    Zos,
    /// Also CPU (threads x overcommit), GPUs, and public IPv4 against the node's list.
    #[default]
    Strict,
}

/// An admission policy. Reads `"zos"`, `"strict"`, or
/// `{"preset": "strict", "cpu_overcommit": 2.0, "atomic": true, "reserved_mru": <bytes>}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPolicy")]
pub struct Policy {
    /// The preset.
    pub preset: Preset,
    /// CPU threads may be promised this many times over (strict only). Finite and positive.
    pub cpu_overcommit: f64,
    /// Admit a deployment whole or not at all (default: per workload, as ZOS).
    pub atomic: bool,
    /// Memory kept for the system; `None` means ZOS's `max(total * 10 / 100, 2 GiB)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_mru: Option<Unit>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::preset(Preset::Strict)
    }
}

impl Policy {
    /// A preset with its defaults.
    pub fn preset(preset: Preset) -> Policy {
        Policy { preset, cpu_overcommit: 1.0, atomic: false, reserved_mru: None }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPolicy {
    Preset(Preset),
    Object(PolicyObject),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyObject {
    #[serde(default)]
    preset: Preset,
    cpu_overcommit: Option<f64>,
    #[serde(default)]
    atomic: bool,
    reserved_mru: Option<Unit>,
}

impl TryFrom<RawPolicy> for Policy {
    type Error = String;

    fn try_from(raw: RawPolicy) -> Result<Self, Self::Error> {
        match raw {
            RawPolicy::Preset(preset) => Ok(Policy::preset(preset)),
            RawPolicy::Object(object) => {
                let cpu_overcommit = object.cpu_overcommit.unwrap_or(1.0);
                if !cpu_overcommit.is_finite() || cpu_overcommit <= 0.0 {
                    return Err(format!("cpu_overcommit must be a positive number, got {cpu_overcommit}"));
                }
                Ok(Policy {
                    preset: object.preset,
                    cpu_overcommit,
                    atomic: object.atomic,
                    reserved_mru: object.reserved_mru,
                })
            }
        }
    }
}

/// A what-if scenario for `zos-plan check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The node.
    pub node: NodeSpec,
    /// The policy (default `strict`).
    #[serde(default)]
    pub policy: Policy,
    /// Deployments already on the node; each workload's `result.state` says whether it holds capacity.
    #[serde(default)]
    pub deployments: Vec<Deployment>,
    /// Deployments to admit, in order.
    #[serde(default)]
    pub requests: Vec<Deployment>,
}

/// One node of a farm for `zos-plan place`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FarmNode {
    /// The node's name.
    pub name: String,
    /// The node, as in a scenario.
    pub node: NodeSpec,
    /// Its policy (default `strict`).
    #[serde(default)]
    pub policy: Policy,
    /// Deployments already on it.
    #[serde(default)]
    pub deployments: Vec<Deployment>,
}

/// A farm: `{"nodes": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Farm {
    /// The nodes.
    pub nodes: Vec<FarmNode>,
}

/// Deployments to place: `{"requests": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requests {
    /// The deployments, each placed whole on one node.
    pub requests: Vec<Deployment>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policy_reads_string_or_object() {
        let policy: Policy = serde_json::from_value(json!("zos")).expect("zos");
        assert_eq!(policy, Policy::preset(Preset::Zos));
        let policy: Policy =
            serde_json::from_value(json!({"preset": "strict", "cpu_overcommit": 2.0, "atomic": true})).expect("object");
        assert_eq!(policy.cpu_overcommit, 2.0);
        assert!(policy.atomic);
        assert!(serde_json::from_value::<Policy>(json!("lenient")).is_err());
        assert!(serde_json::from_value::<Policy>(json!({"cpu_overcommit": -1.0})).is_err());
        assert!(serde_json::from_value::<Policy>(json!({"cpu_overcomit": 2.0})).is_err());
    }

    #[test]
    fn pool_defaults() {
        let pool: PoolSpec = serde_json::from_value(json!({"name": "p", "kind": "ssd", "size": 10})).expect("pool");
        assert!(pool.mounted && !pool.vdisks && !pool.zdb);
        assert_eq!(pool.used, Unit::ZERO);
    }
}
