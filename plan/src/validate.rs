//! Checks on inputs that decode but cannot describe a real node: they are bad input (exit 2), not
//! something to plan on.

use anyhow::{Result, anyhow, bail};
use std::net::{IpAddr, Ipv4Addr};
use zos_planner::Demand;
use zos_planner::headroom::Shape;
use zos_types::scenario::{NodeSpec, Policy};
use zos_types::workload::MachineInterface;
use zos_types::{Deployment, WorkloadData};

/// The largest `cpu_overcommit` accepted: beyond it the free-CPU figure means nothing.
pub const MAX_CPU_OVERCOMMIT: f64 = 1024.0;

/// A node (`at` names it in messages, e.g. `node` or `nodes[2].node`).
pub fn node(node: &NodeSpec, at: &str) -> Result<()> {
    for (i, pool) in node.pools.iter().enumerate() {
        if pool.used.0 > pool.size.0 {
            bail!(
                "at {at}.pools[{i}] ('{}'): used ({} bytes) is greater than size ({} bytes)",
                pool.name,
                pool.used.0,
                pool.size.0
            );
        }
    }
    if node.os_used_mru.0 > node.mru.0 {
        bail!("at {at}.os_used_mru: {} bytes is greater than mru ({} bytes)", node.os_used_mru.0, node.mru.0);
    }
    Ok(())
}

/// A policy.
pub fn policy(policy: &Policy, at: &str) -> Result<()> {
    let overcommit = policy.cpu_overcommit;
    if !overcommit.is_finite() || overcommit <= 0.0 || overcommit > MAX_CPU_OVERCOMMIT {
        bail!("at {at}.cpu_overcommit: must be a number above 0 and at most {MAX_CPU_OVERCOMMIT}, got {overcommit}");
    }
    Ok(())
}

/// Deployments already on a node: each GPU they name must be one of the node's.
pub fn stored(deployments: &[Deployment], node: &NodeSpec, at: &str) -> Result<()> {
    let same_hex = |a: &str, b: &str| {
        let strip = |s: &str| s.trim_start_matches("0x").to_ascii_lowercase();
        strip(a) == strip(b)
    };
    for (d, deployment) in deployments.iter().enumerate() {
        for (w, workload) in deployment.workloads.iter().enumerate() {
            for gpu in Demand::of(workload).gpus.iter().flatten() {
                let known = node.gpus.iter().any(|spec| {
                    spec.id == gpu.slot && same_hex(&spec.vendor, &gpu.vendor) && same_hex(&spec.device, &gpu.device)
                });
                if !known {
                    bail!(
                        "at {at}[{d}].workloads[{w}] ('{}'): uses GPU {}/{}/{}, which the node does not have",
                        workload.name,
                        gpu.slot,
                        gpu.vendor,
                        gpu.device
                    );
                }
            }
        }
    }
    Ok(())
}

/// A `headroom` shape, validated as `check` validates a request: the probe workload inside a
/// deployment (a zmachine given the one private interface ZOS requires, which takes no capacity).
pub fn shape(shape: &Shape) -> Result<()> {
    let mut workload = shape.workload();
    if let WorkloadData::ZMachine(vm) = &mut workload.data {
        vm.network.interfaces =
            vec![MachineInterface { network: "net".into(), ip: Some(IpAddr::V4(Ipv4Addr::new(10, 1, 1, 2))) }];
    }
    let deployment = Deployment { twin_id: 1, contract_id: 1, workloads: vec![workload], ..Deployment::default() };
    deployment.validate().map_err(|err| anyhow!("invalid shape {shape}: {err}"))
}

/// A whole scenario.
pub fn scenario(scenario: &zos_types::scenario::Scenario) -> Result<()> {
    node(&scenario.node, "node")?;
    policy(&scenario.policy, "policy")?;
    stored(&scenario.deployments, &scenario.node, "deployments")
}

/// A farm: at least one node, each valid.
pub fn farm(farm: &zos_types::scenario::Farm) -> Result<()> {
    if farm.nodes.is_empty() {
        bail!("the farm has no nodes: nothing can be placed");
    }
    for (i, entry) in farm.nodes.iter().enumerate() {
        node(&entry.node, &format!("nodes[{i}].node"))?;
        policy(&entry.policy, &format!("nodes[{i}].policy"))?;
        stored(&entry.deployments, &entry.node, &format!("nodes[{i}].deployments"))?;
    }
    Ok(())
}
