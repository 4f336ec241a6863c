//! A node as its operator has it: the capacity counters a running ZOS node reports (`statistics`) or
//! `zosctl counters --json` prints, `{"total": {cru, sru, hru, mru, ipv4u}, "used": {...}, "system":
//! {...}, ...}`, given as a scenario's `"node": {"counters": {...}}`.
//!
//! The node: `total.cru` threads, `total.mru` memory, one SSD pool `ssd` of `total.sru` with
//! `used.sru` used, one HDD pool `hdd` likewise, `total.ipv4u` public addresses (stand-ins from
//! 198.18.0.0/15). What the users' workloads hold (`used` less `system`; the policy reserves the
//! system's memory as ZOS does) becomes an existing deployment of twin 4294967295, contract
//! 18446744073709551615: zmachines holding the CPU and memory, and `ip` workloads holding `used.ipv4u`.

use anyhow::{Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Capacity {
    cru: u64,
    sru: u64,
    hru: u64,
    mru: u64,
    ipv4u: u64,
}

#[derive(Debug, Deserialize)]
struct Counters {
    total: Capacity,
    #[serde(default)]
    used: Capacity,
    #[serde(default)]
    system: Capacity,
}

/// Whether a scenario document gives its node as counters.
pub fn present(root: &Value) -> bool {
    root.get("node").and_then(|node| node.get("counters")).is_some()
}

/// Rewrites `"node": {"counters": ...}` into a node and a deployment holding what is used.
pub fn expand(root: &mut Value) -> Result<()> {
    let Some(raw) = root.get("node").and_then(|node| node.get("counters")).cloned() else {
        return Ok(());
    };
    if root.get("node").and_then(Value::as_object).is_some_and(|node| node.len() > 1) {
        bail!("at node: a node given as counters has no other field");
    }
    let counters: Counters = serde_path_to_error::deserialize(raw)
        .map_err(|err| anyhow::anyhow!("at node.counters.{}: {}", err.path(), err.inner()))?;
    let (total, used, system) = (&counters.total, &counters.used, &counters.system);
    for (name, used, total) in [
        ("cru", used.cru, total.cru),
        ("mru", used.mru, total.mru),
        ("sru", used.sru, total.sru),
        ("hru", used.hru, total.hru),
        ("ipv4u", used.ipv4u, total.ipv4u),
    ] {
        if used > total {
            bail!("at node.counters.used.{name}: {used} is greater than total ({total})");
        }
    }
    if total.ipv4u > 1 << 17 {
        bail!("at node.counters.total.ipv4u: {} public addresses is more than this planner models", total.ipv4u);
    }
    let mut pools = Vec::new();
    if total.sru > 0 {
        pools.push(json!({"name": "ssd", "kind": "ssd", "size": total.sru, "used": used.sru}));
    }
    if total.hru > 0 {
        pools.push(json!({"name": "hdd", "kind": "hdd", "size": total.hru, "used": used.hru}));
    }
    let ips: Vec<String> =
        (0..total.ipv4u).map(|i| format!("198.{}.{}.{}/32", 18 + (i >> 16), (i >> 8) & 255, i & 255)).collect();
    let node = json!({"cru": total.cru, "mru": total.mru, "pools": pools, "public_ips": ips});

    let (mut cpu, mut memory) = (used.cru.saturating_sub(system.cru), used.mru.saturating_sub(system.mru));
    let mut workloads = Vec::new();
    let network = json!({"interfaces": [{"network": "n", "ip": "10.1.1.2"}]});
    while cpu > 0 || memory > 0 {
        let take_cpu = cpu.min(255);
        let take_memory = if cpu <= 255 { memory } else { 0 };
        workloads.push(json!({"name": format!("used-{}", workloads.len()), "type": "zmachine",
            "data": {"compute_capacity": {"cpu": take_cpu, "memory": take_memory}, "network": network},
            "result": {"state": "ok"}}));
        cpu -= take_cpu;
        memory -= take_memory;
    }
    for i in 0..used.ipv4u {
        workloads.push(json!({"name": format!("used-ip-{i}"), "type": "ip", "data": {"v4": true},
            "result": {"state": "ok"}}));
    }
    if let Some(object) = root.as_object_mut() {
        object.insert("node".into(), node);
        if !workloads.is_empty() {
            let holder = json!({"twin_id": u32::MAX, "contract_id": u64::MAX, "workloads": workloads});
            match object.get_mut("deployments").and_then(Value::as_array_mut) {
                Some(list) => list.push(holder),
                None => {
                    object.insert("deployments".into(), Value::Array(vec![holder]));
                }
            }
        }
    }
    Ok(())
}
