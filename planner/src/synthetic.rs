//! Synthetic farms and deployments for benchmarks and placement tests: deterministic, seeded.
//! Nodes have 32 threads, 128 GiB, a 2 TiB SSD and an 8 TiB HDD (times a scale); a deployment is a network, a VM of
//! 1-8 vCPUs and 2-32 GiB, a 50-500 GiB disk and, one time in two, a zdb of up to 2 TiB
//! (the model of reference/crates.md section 1.2).

use serde_json::json;
use zos_types::scenario::{Farm, FarmNode, NodeSpec, Policy, PoolKind, PoolSpec};
use zos_types::{Deployment, Unit};

const GIB: u64 = 1 << 30;

/// `lo + n` GiB, saturating.
fn gib(lo: u64, n: u64) -> u64 {
    lo.saturating_add(n).saturating_mul(GIB)
}

/// A linear congruential generator: repeatable across machines.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33).checked_rem(below).unwrap_or(0)
    }
}

/// `n` identical nodes named `n0`, `n1`, ...
pub fn farm(n: usize) -> Farm {
    farm_of(n, 1)
}

/// `n` identical nodes, each `scale` times the base node.
pub fn farm_of(n: usize, scale: u64) -> Farm {
    let pool = |name: &str, kind, size_gib: u64| PoolSpec {
        name: name.into(),
        kind,
        size: Unit::gib(size_gib),
        used: Unit::ZERO,
        mounted: true,
        vdisks: false,
        zdb: false,
    };
    let node = NodeSpec {
        cru: scale.saturating_mul(32),
        mru: Unit::gib(scale.saturating_mul(128)),
        os_used_mru: Unit::ZERO,
        pools: vec![
            pool("ssd0", PoolKind::Ssd, scale.saturating_mul(2048)),
            pool("hdd0", PoolKind::Hdd, scale.saturating_mul(8192)),
        ],
        public_ips: Vec::new(),
        gpus: Vec::new(),
    };
    Farm {
        nodes: (0..n)
            .map(|i| FarmNode {
                name: format!("n{i}"),
                node: node.clone(),
                policy: Policy::default(),
                deployments: Vec::new(),
            })
            .collect(),
    }
}

/// `n` deployments from `seed`.
pub fn deployments(n: usize, seed: u64) -> Vec<Deployment> {
    let mut rng = Lcg(seed);
    (0..n)
        .filter_map(|i| {
            let cpu = rng.next(8).saturating_add(1);
            let memory = gib(2, rng.next(31));
            let disk = gib(50, rng.next(451));
            let zdb = rng.next(2) == 0;
            let zdb_size = gib(1, rng.next(2048));
            let mut workloads = vec![
                json!({"name": "net", "type": "network", "data": {"ip_range": "10.1.0.0/16", "subnet": "10.1.1.0/24", "wireguard_private_key": "key"}}),
                json!({"name": "disk", "type": "zmount", "data": {"size": disk}}),
                json!({"name": "vm", "type": "zmachine", "data": {"network": {"interfaces": [{"network": "net", "ip": "10.1.1.2"}]},
                    "compute_capacity": {"cpu": cpu, "memory": memory}, "mounts": [{"name": "disk", "mountpoint": "/data"}]}}),
            ];
            if zdb {
                workloads.push(json!({"name": "db", "type": "zdb", "data": {"size": zdb_size, "mode": "seq"}}));
            }
            serde_json::from_value(json!({"twin_id": (i % 1000).saturating_add(1), "contract_id": i.saturating_add(1), "workloads": workloads})).ok()
        })
        .collect()
}
