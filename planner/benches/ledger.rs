//! Cost of one admission decision against the number of existing reservations.
//! The goal is a flat curve: the ledger keeps counters and never rescans.
//!
//! Run: `cargo bench -p zos-planner --bench ledger`.

use divan::{Bencher, black_box};
use serde_json::json;
use zos_planner::Ledger;
use zos_types::scenario::{NodeSpec, Policy};
use zos_types::{Deployment, Workload, WorkloadId};

const GIB: u64 = 1 << 30;
const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];

fn main() {
    divan::main();
}

fn node() -> NodeSpec {
    serde_json::from_value(json!({
        "cru": 1u64 << 40, "mru": 1u64 << 62,
        "pools": (0..8).map(|i| json!({"name": format!("ssd{i}"), "kind": "ssd", "size": 1u64 << 60})).collect::<Vec<_>>(),
        "public_ips": (0..64).map(|i| format!("203.0.113.{i}/24")).collect::<Vec<_>>()
    }))
    .expect("node")
}

fn vm(memory: u64) -> Workload {
    serde_json::from_value(json!({"name": "vm", "type": "zmachine", "data": {
        "network": {"interfaces": [{"network": "n", "ip": "10.1.1.2"}]},
        "compute_capacity": {"cpu": 2, "memory": memory}}}))
    .expect("workload")
}

/// A ledger holding `n` running VMs.
fn ledger_with(n: usize) -> Ledger {
    let mut ledger = Ledger::new(&node(), Policy::default());
    let workload = vm(GIB);
    for i in 0..n {
        ledger.hold(&WorkloadId::new(1, i as u64, "vm"), &workload);
    }
    ledger
}

/// Admit a VM (memory, CPU and root-disk placement checked), then release it.
#[divan::bench(args = SIZES, sample_count = 200)]
fn admit_then_release(bencher: Bencher, n: usize) {
    let mut ledger = ledger_with(n);
    let workload = vm(2 * GIB);
    let id = WorkloadId::new(2, 1, "vm");
    bencher.bench_local(|| {
        black_box(ledger.admit(&id, &workload));
        black_box(ledger.release(&id));
    });
}

/// Judge a VM that does not fit: every shortfall is computed, nothing changes.
#[divan::bench(args = SIZES, sample_count = 200)]
fn reject(bencher: Bencher, n: usize) {
    let mut ledger = ledger_with(n);
    let workload = vm(1u64 << 63);
    let id = WorkloadId::new(2, 1, "vm");
    bencher.bench_local(|| black_box(ledger.admit(&id, &workload)));
}

/// Re-admit a VM that already holds capacity (self-exclusion, as after a reboot).
#[divan::bench(args = SIZES, sample_count = 200)]
fn readmit_existing(bencher: Bencher, n: usize) {
    let mut ledger = ledger_with(n);
    let workload = vm(GIB);
    let id = WorkloadId::new(1, 0, "vm");
    bencher.bench_local(|| black_box(ledger.admit(&id, &workload)));
}

/// A five-workload deployment (network, two disks, an IP, a VM) admitted in ZOS order, then released.
#[divan::bench(args = SIZES, sample_count = 100)]
fn admit_deployment_of_5(bencher: Bencher, n: usize) {
    let mut ledger = ledger_with(n);
    let deployment: Deployment = serde_json::from_value(json!({"twin_id": 3, "contract_id": 1, "workloads": [
        {"name": "net", "type": "network", "data": {"ip_range": "10.1.0.0/16", "subnet": "10.1.1.0/24", "wireguard_private_key": "k"}},
        {"name": "d1", "type": "zmount", "data": {"size": 10 * GIB}},
        {"name": "d2", "type": "zmount", "data": {"size": 20 * GIB}},
        {"name": "ip", "type": "ip", "data": {"v4": true}},
        {"name": "vm", "type": "zmachine", "data": {"network": {"public_ip": "ip", "interfaces": [{"network": "net", "ip": "10.1.1.2"}]},
            "compute_capacity": {"cpu": 2, "memory": 2 * GIB}}}
    ]}))
    .expect("deployment");
    let ids: Vec<WorkloadId> = deployment.workloads.iter().map(|wl| deployment.workload_id(&wl.name)).collect();
    bencher.bench_local(|| {
        black_box(ledger.admit_deployment(&deployment));
        for id in &ids {
            ledger.release(id);
        }
    });
}

/// storaged's placement decision (the planner's `Pools::place`) with 1, 8 and 64 pools.
#[divan::bench(args = [1, 8, 64], sample_count = 200)]
fn pool_placement(bencher: Bencher, pools: usize) {
    use zos_planner::{DiskDemand, DiskRole, Pools};
    use zos_types::Unit;
    use zos_types::scenario::{PoolKind, PoolSpec};
    let specs: Vec<PoolSpec> = (0..pools)
        .map(|i| PoolSpec {
            name: format!("p{i}"),
            kind: PoolKind::Ssd,
            size: Unit::gib(2048),
            used: Unit::gib((i as u64 * 37) % 2000),
            mounted: i % 3 != 0,
            vdisks: i % 2 == 0,
            zdb: false,
        })
        .collect();
    let pools = Pools::new(&specs);
    let disk = DiskDemand { role: DiskRole::Vdisk, size: Unit::gib(40) };
    bencher.bench_local(|| black_box(pools.place(black_box(disk), None)));
}
