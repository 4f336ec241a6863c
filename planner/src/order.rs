//! The order in which ZOS walks a deployment's workloads (reference section 2.4).

use zos_types::{Deployment, Unit, WorkloadData, WorkloadType};

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
