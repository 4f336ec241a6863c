//! Store benchmarks: durable commits per second, and open + ledger rebuild time.
//!
//! Run: `cargo bench -p zos-cache --bench store`. Files go to the system temp directory.

use divan::{Bencher, black_box};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use zos_cache::{Job, JobOp, Prepared, Store};
use zos_planner::Ledger;
use zos_types::scenario::{NodeSpec, Policy};
use zos_types::{Deployment, ReservationRecord, ResultState, Timestamp, Workload, WorkloadResult};

fn main() {
    divan::main();
}

const GIB: u64 = 1 << 30;

fn deployment(contract: u64) -> Deployment {
    let workloads = [
        json!({"name": "net", "type": "network", "data": {"ip_range": "10.1.0.0/16", "subnet": "10.1.1.0/24", "wireguard_private_key": "k"}}),
        json!({"name": "disk", "type": "zmount", "data": {"size": 10 * GIB}}),
        json!({"name": "vm", "type": "zmachine", "data": {"network": {"interfaces": [{"network": "net", "ip": "10.1.1.2"}]},
            "compute_capacity": {"cpu": 2, "memory": 2 * GIB}}}),
    ]
    .into_iter()
    .map(|value| {
        let mut wl: Workload = serde_json::from_value(value).expect("workload");
        wl.result = WorkloadResult { created: Timestamp(1), state: ResultState::Init, ..WorkloadResult::default() };
        wl
    })
    .collect();
    Deployment { twin_id: contract as u32, contract_id: contract, workloads, ..Deployment::default() }
}

/// What the ledger would grant each workload of `dl`, by name.
fn reservations(dl: &Deployment) -> impl Iterator<Item = (String, ReservationRecord)> + '_ {
    dl.workloads
        .iter()
        .map(|wl| (wl.name.clone(), ReservationRecord { capacity: wl.capacity(), ..ReservationRecord::default() }))
}

/// One user action: deployment + 3 workloads + 3 reservations + a job, one durable commit.
fn create(store: &Store, contract: u64) {
    let dl = deployment(contract);
    let mut txn = store.begin();
    txn.create_prepared(Prepared::new(&dl).expect("valid"), reservations(&dl)).expect("create");
    txn.enqueue(&Job { op: JobOp::Provision, twin: dl.twin_id, contract, reason: String::new(), remove: Vec::new() })
        .expect("enqueue");
    txn.commit().expect("commit");
}

#[divan::bench(sample_count = 50, sample_size = 20)]
fn durable_create_of_3_workloads(bencher: Bencher) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("state")).expect("open");
    let next = AtomicU64::new(1);
    bencher.bench_local(|| create(&store, next.fetch_add(1, Ordering::Relaxed)));
}

/// The same bytes written to raw sled with `insert` + `flush` (sync_file_range only, no fdatasync).
#[divan::bench(sample_count = 50, sample_size = 20)]
fn raw_sled_insert_and_flush(bencher: Bencher) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sled::open(dir.path().join("raw")).expect("sled");
    let tree = db.open_tree("t").expect("tree");
    let value = serde_json::to_vec(&deployment(1)).expect("encode");
    let next = AtomicU64::new(1);
    bencher.bench_local(|| {
        let key = next.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        tree.insert(key, value.as_slice()).expect("insert");
        db.flush().expect("flush");
    });
}

fn node() -> NodeSpec {
    serde_json::from_value(json!({"cru": 1u64 << 40, "mru": 1u64 << 62,
        "pools": [{"name": "ssd0", "kind": "ssd", "size": 1u64 << 60}]}))
    .expect("node")
}

#[divan::bench(args = [10_000, 100_000], sample_count = 3, sample_size = 1)]
fn open_and_rebuild_ledger(bencher: Bencher, deployments: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state");
    {
        let store = Store::open(&path).expect("open");
        for chunk in (1..=deployments).collect::<Vec<_>>().chunks(1000) {
            let mut txn = store.begin();
            for &contract in chunk {
                let dl = deployment(contract);
                txn.create_prepared(Prepared::new(&dl).expect("valid"), reservations(&dl)).expect("create");
            }
            txn.commit().expect("commit");
        }
    }
    bencher.bench_local(|| {
        let store = Store::open(&path).expect("open");
        let mut ledger = Ledger::new(&node(), Policy::default());
        for (id, record) in store.reservations().expect("reservations") {
            ledger.restore_record(&id, &record).expect("restore");
        }
        black_box(ledger.len())
    });
}
