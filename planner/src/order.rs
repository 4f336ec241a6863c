//! The order in which ZOS walks a deployment's workloads, and which workloads need which (reference
//! section 2.4).

use std::collections::BTreeSet;
use zos_types::{Deployment, Unit, Workload, WorkloadData, WorkloadType};

/// ZOS's startup order: zmount, volume, qsfs, network, ipv4, ip, zmachine, zlogs, then the types ZOS
/// leaves in Go map (random) order, which we fix as zdb, gateway-name-proxy, gateway-fqdn-proxy.
pub const TYPE_ORDER: [WorkloadType; 11] = [
    WorkloadType::ZMount,
    WorkloadType::Volume,
    WorkloadType::Qsfs,
    WorkloadType::Network,
    WorkloadType::Ipv4,
    WorkloadType::Ip,
    WorkloadType::ZMachine,
    WorkloadType::ZLogs,
    WorkloadType::Zdb,
    WorkloadType::GatewayNameProxy,
    WorkloadType::GatewayFqdnProxy,
];

/// Position of a type in [`TYPE_ORDER`].
pub fn type_rank(kind: WorkloadType) -> usize {
    TYPE_ORDER.iter().position(|it| *it == kind).unwrap_or(TYPE_ORDER.len())
}

fn mount_size(data: &WorkloadData) -> Unit {
    match data {
        WorkloadData::ZMount(disk) => disk.size,
        WorkloadData::Volume(volume) => volume.size,
        _ => Unit::ZERO,
    }
}

/// Indices of the deployment's workloads in install order: by type, and zmounts and volumes
/// largest first; other workloads keep their deployment order.
pub fn install_order(deployment: &Deployment) -> Vec<usize> {
    let mut order: Vec<usize> = (0..deployment.workloads.len()).collect();
    order.sort_by_key(|&idx| {
        let workload = &deployment.workloads[idx];
        (type_rank(workload.kind()), std::cmp::Reverse(mount_size(&workload.data)))
    });
    order
}

/// Indices in uninstall (and pause) order: types in reverse order, deployment order within a type.
pub fn uninstall_order(deployment: &Deployment) -> Vec<usize> {
    let mut order: Vec<usize> = (0..deployment.workloads.len()).collect();
    order.sort_by_key(|&idx| std::cmp::Reverse(type_rank(deployment.workloads[idx].kind())));
    order
}

/// The names `workload` refers to: a zmachine its mounts, its public IP, the networks of its private
/// interfaces and of its mycelium address; a zlogs its zmachine; a gateway the network of its backends.
fn referenced_names(workload: &Workload) -> Vec<&str> {
    match &workload.data {
        WorkloadData::ZMachine(machine) => {
            let mounts = machine.mounts.iter().map(|mount| mount.name.as_str());
            let interfaces = machine.network.interfaces.iter().map(|iface| iface.network.as_str());
            let mycelium = machine.network.mycelium.iter().map(|mycelium| mycelium.network.as_str());
            mounts
                .chain(std::iter::once(machine.network.public_ip.as_str()))
                .chain(interfaces)
                .chain(mycelium)
                .collect()
        }
        WorkloadData::ZLogs(logs) => vec![logs.zmachine.as_str()],
        WorkloadData::GatewayNameProxy(proxy) => proxy.network.iter().map(String::as_str).collect(),
        WorkloadData::GatewayFqdnProxy(proxy) => proxy.network.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The workloads of `deployment` that `workload` needs to be `ok` before it can run, in deployment
/// order, each once. ZOS resolves no dependencies, but fails a workload whose dependency is not `ok` when
/// it gets to it (a zmachine: `invalid disk '<name>' state`, `public ip workload is not okay`; reference
/// section 2.4):
///
/// - a `zmachine` needs the workloads its `mounts[].name` name (zmount, volume or qsfs), the one its
///   `network.public_ip` names (ip or ipv4), and the networks of `network.interfaces[].network` and
///   `network.mycelium.network`;
/// - a `zlogs` needs its `zmachine`;
/// - a gateway (name or fqdn proxy) needs the `network` it reaches its backends through, when it names one.
///
/// Only names that a workload of the same deployment carries count (not the workload's own name); other
/// types need nothing. Every dependency is of a type that ZOS installs earlier ([`TYPE_ORDER`]).
pub fn dependencies<'a>(deployment: &'a Deployment, workload: &Workload) -> Vec<&'a Workload> {
    let names = referenced_names(workload);
    deployment
        .workloads
        .iter()
        .filter(|other| other.name != workload.name && names.contains(&other.name.as_str()))
        .collect()
}

/// The dependencies of `workload` (see [`dependencies`]) that `failed` says failed, in deployment order.
/// This is the one rule for "this workload fails because another one did": admission uses it while it
/// walks a deployment, and provisiond's job loop can ask it before it installs each workload.
pub fn failed_dependencies<'a>(
    deployment: &'a Deployment,
    workload: &Workload,
    failed: impl Fn(&str) -> bool,
) -> Vec<&'a Workload> {
    dependencies(deployment, workload).into_iter().filter(|dependency| failed(&dependency.name)).collect()
}

/// A workload that must fail because a workload it depends on failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependentFailure {
    /// The workload that must fail.
    pub name: String,
    /// Its type.
    pub kind: WorkloadType,
    /// The failed workload it depends on (the first in deployment order when several failed).
    pub dependency: String,
    /// The dependency's type.
    pub dependency_kind: WorkloadType,
}

/// Given the names of the workloads of `deployment` that failed (refused, or in state `error`), every
/// other workload that must fail with them because it depends on one of them (see [`dependencies`]),
/// directly or through another dependent (a zlogs of a zmachine whose disk failed), in install order.
/// The workloads named in `failed` themselves are not listed.
///
/// provisiond's job loop can apply it after a workload fails, with the deployment's failed names, and
/// mark each listed workload `error` (message: [`DependentFailure::message`]) instead of installing it.
pub fn dependents_of_failed<S: AsRef<str>>(
    deployment: &Deployment,
    failed: impl IntoIterator<Item = S>,
) -> Vec<DependentFailure> {
    let mut down: BTreeSet<String> = failed.into_iter().map(|name| name.as_ref().to_string()).collect();
    let mut found: Vec<(usize, DependentFailure)> = Vec::new();
    // Dependencies come first in install order, but a fixpoint does not rely on it.
    loop {
        let mut changed = false;
        for (idx, workload) in deployment.workloads.iter().enumerate() {
            if down.contains(&workload.name) {
                continue;
            }
            if let Some(dependency) =
                failed_dependencies(deployment, workload, |name| down.contains(name)).into_iter().next()
            {
                found.push((
                    idx,
                    DependentFailure {
                        name: workload.name.clone(),
                        kind: workload.kind(),
                        dependency: dependency.name.clone(),
                        dependency_kind: dependency.kind(),
                    },
                ));
                down.insert(workload.name.clone());
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let order = install_order(deployment);
    found.sort_by_key(|(idx, _)| order.iter().position(|it| it == idx));
    found.into_iter().map(|(_, failure)| failure).collect()
}

impl DependentFailure {
    /// The failure in words: `depends on <type> '<name>', which failed`.
    pub fn message(&self) -> String {
        format!("depends on {} '{}', which failed", self.dependency_kind, self.dependency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(deployment: &Deployment, order: &[usize]) -> Vec<String> {
        order.iter().map(|&idx| deployment.workloads[idx].name.clone()).collect()
    }

    // Derived ordering case of reference section 7.8.
    #[test]
    fn install_and_uninstall_order() {
        let dl: Deployment = serde_json::from_value(json!({"workloads": [
            {"name": "vm", "type": "zmachine", "data": {}},
            {"name": "d1", "type": "zmount", "data": {"size": 10}},
            {"name": "net", "type": "network", "data": {}},
            {"name": "d2", "type": "zmount", "data": {"size": 30}},
            {"name": "ip", "type": "ip", "data": {"v4": true}},
        ]}))
        .expect("deployment");
        assert_eq!(names(&dl, &install_order(&dl)), ["d2", "d1", "net", "ip", "vm"]);
        assert_eq!(names(&dl, &uninstall_order(&dl)), ["vm", "ip", "net", "d1", "d2"]);
    }

    fn wide_deployment() -> Deployment {
        serde_json::from_value(json!({"workloads": [
            {"name": "logs", "type": "zlogs", "data": {"zmachine": "vm", "output": "redis://10.0.0.1"}},
            {"name": "vm", "type": "zmachine", "data": {
                "network": {"public_ip": "pub", "interfaces": [{"network": "net", "ip": "10.1.1.2"}],
                            "mycelium": {"network": "net", "hex_seed": "00aabbccddee"}},
                "mounts": [{"name": "disk", "mountpoint": "/a"}, {"name": "fs", "mountpoint": "/b"},
                           {"name": "elsewhere", "mountpoint": "/c"}]}},
            {"name": "other", "type": "zmachine", "data": {"network": {"interfaces": [{"network": "net2", "ip": "10.2.1.2"}]}}},
            {"name": "disk", "type": "zmount", "data": {"size": 10}},
            {"name": "fs", "type": "qsfs", "data": {}},
            {"name": "net", "type": "network", "data": {}},
            {"name": "net2", "type": "network", "data": {}},
            {"name": "pub", "type": "ip", "data": {"v4": true}},
            {"name": "gw", "type": "gateway-name-proxy", "data": {"name": "a", "backends": [], "network": "net2"}},
            {"name": "db", "type": "zdb", "data": {"size": 10, "mode": "user"}},
        ]}))
        .expect("deployment")
    }

    #[test]
    fn what_each_workload_needs() {
        let dl = wide_deployment();
        let needs = |name: &str| -> Vec<String> {
            let workload = dl.workloads.iter().find(|wl| wl.name == name).expect("workload");
            dependencies(&dl, workload).into_iter().map(|wl| wl.name.clone()).collect()
        };
        assert_eq!(needs("vm"), ["disk", "fs", "net", "pub"], "mounts, public ip, network; unknown names left out");
        assert_eq!(needs("logs"), ["vm"]);
        assert_eq!(needs("gw"), ["net2"]);
        assert!(needs("db").is_empty() && needs("disk").is_empty() && needs("net").is_empty());
    }

    #[test]
    fn dependents_fail_transitively_in_install_order() {
        let dl = wide_deployment();
        let names = |failures: Vec<DependentFailure>| -> Vec<(String, String)> {
            failures.into_iter().map(|f| (f.name, f.dependency)).collect()
        };
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(names(dependents_of_failed(&dl, ["disk"])), [pair("vm", "disk"), pair("logs", "vm")]);
        assert_eq!(names(dependents_of_failed(&dl, ["net2"])), [pair("other", "net2"), pair("gw", "net2")]);
        assert_eq!(names(dependents_of_failed(&dl, ["vm"])), [pair("logs", "vm")]);
        assert!(dependents_of_failed(&dl, ["db", "logs", "nothing"]).is_empty());
        let failure = &dependents_of_failed(&dl, ["pub"])[0];
        assert_eq!(failure.message(), "depends on ip 'pub', which failed");
    }

    // Upstream `TestSortMountWorkloads` (provision/engine_test.go).
    #[test]
    fn mounts_sort_by_size_descending() {
        for kind in ["zmount", "volume"] {
            let dl: Deployment = serde_json::from_value(json!({"workloads": [
                {"name": "a", "type": kind, "data": {"size": 10}},
                {"name": "b", "type": kind, "data": {"size": 30}},
                {"name": "c", "type": kind, "data": {"size": 20}},
            ]}))
            .expect("deployment");
            assert_eq!(names(&dl, &install_order(&dl)), ["b", "c", "a"]);
        }
    }
}
