//! Property tests of the ledger's invariants, and "any bytes as a scenario never panics".

use proptest::prelude::*;
use serde_json::{Value, json};
use zos_planner::Ledger;
use zos_types::scenario::{NodeSpec, Policy, Scenario};
use zos_types::{Workload, WorkloadId};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn node_strategy() -> impl Strategy<Value = NodeSpec> {
    let pool = (any::<bool>(), 0..2000u64, 0..100u64, any::<bool>()).prop_map(|(ssd, size_gib, used_pct, mounted)| {
        json!({"name": "p", "kind": if ssd { "ssd" } else { "hdd" }, "size": size_gib * GIB,
                   "used": size_gib * GIB * used_pct / 100, "mounted": mounted})
    });
    (1..64u64, 0..128u64, 0..100u64, prop::collection::vec(pool, 0..4), 0..4usize, 0..3usize).prop_map(
        |(cru, mru_gib, os_pct, pools, n_ips, n_gpus)| {
            let pools: Vec<Value> = pools
                .into_iter()
                .enumerate()
                .map(|(i, mut pool)| {
                    pool["name"] = json!(format!("pool{i}"));
                    pool
                })
                .collect();
            let ips: Vec<String> = (0..n_ips).map(|i| format!("203.0.113.{}/24", 10 + i)).collect();
            let gpus: Vec<Value> = (0..n_gpus)
                .map(|i| json!({"id": format!("0000:00:0{i}.0"), "vendor": "10de", "device": "2330"}))
                .collect();
            serde_json::from_value(
                json!({"cru": cru, "mru": mru_gib * GIB, "os_used_mru": mru_gib * GIB * os_pct / 100,
                "pools": pools, "public_ips": ips, "gpus": gpus}),
            )
            .expect("node")
        },
    )
}

fn workload_strategy() -> impl Strategy<Value = Workload> {
    prop_oneof![
        (1..17u64, 250..16384u64, prop::option::of(0..3usize)).prop_map(|(cpu, mem_mib, gpu)| {
            let mut data = json!({"network": {"interfaces": [{"network": "n", "ip": "10.1.1.2"}]},
                "compute_capacity": {"cpu": cpu, "memory": mem_mib * MIB}});
            if let Some(gpu) = gpu {
                data["gpu"] = json!([format!("0000:00:0{gpu}.0/10de/2330")]);
            }
            json!({"name": "w", "type": "zmachine", "data": data})
        }),
        (1..500u64).prop_map(|gib| json!({"name": "w", "type": "zmount", "data": {"size": gib * GIB}})),
        (1..500u64).prop_map(|gib| json!({"name": "w", "type": "volume", "data": {"size": gib * GIB}})),
        (1..800u64).prop_map(|gib| json!({"name": "w", "type": "zdb", "data": {"size": gib * GIB, "mode": "seq"}})),
        Just(json!({"name": "w", "type": "ip", "data": {"v4": true}})),
        (1..50u64).prop_map(|gib| json!({"name": "w", "type": "qsfs", "data": {"cache": gib * GIB}})),
    ]
    .prop_map(|value| serde_json::from_value(value).expect("workload"))
}

#[derive(Debug, Clone)]
enum Op {
    Admit(u8, Box<Workload>),
    Release(u8),
}

fn ops_strategy() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => (0..12u8, workload_strategy()).prop_map(|(id, wl)| Op::Admit(id, Box::new(wl))),
        1 => (0..12u8).prop_map(Op::Release),
    ];
    prop::collection::vec(op, 1..60)
}

/// Workloads spread over a few deployments, so that deployments hold several workloads.
fn id(n: u8) -> WorkloadId {
    WorkloadId::new(1, u64::from(n % 4), &format!("w{n}"))
}

fn check_invariants(ledger: &Ledger, node: &NodeSpec, policy: &Policy) -> Result<(), TestCaseError> {
    let usage = ledger.usage();
    let deployments: std::collections::BTreeSet<(u32, u64)> =
        ledger.reservations().filter_map(|(id, _)| id.parts().map(|(t, c, _)| (t, c))).collect();
    prop_assert_eq!(ledger.deployments(), deployments.len(), "the O(1) deployment count is the real one");
    let cpu_limit = ((node.cru as f64) * policy.cpu_overcommit).floor() as u64;
    prop_assert!(usage.used.cru <= cpu_limit, "cpu {} over limit {}", usage.used.cru, cpu_limit);
    prop_assert!(
        usage.used.mru.bytes() == 0 || usage.used.mru.bytes() + usage.reserved.mru.bytes() <= node.mru.bytes(),
        "memory used {} + reserved {} over total {}",
        usage.used.mru.bytes(),
        usage.reserved.mru.bytes(),
        node.mru.bytes()
    );
    for pool in ledger.pools().iter() {
        prop_assert!(pool.used <= pool.size, "pool {} used {} over size {}", pool.name, pool.used, pool.size);
    }
    prop_assert!(usage.used.ipv4u <= node.public_ips.len() as u64);
    let held: Vec<_> = ledger.gpu_holders().filter_map(|(_, holder)| holder).collect();
    let reservations_with_gpu: usize = ledger.reservations().map(|(_, r)| r.gpus.len()).sum();
    prop_assert_eq!(held.len(), reservations_with_gpu, "every held GPU has exactly one holder");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn strict_never_overcommits_release_is_idempotent_and_rebuild_matches(
        node in node_strategy(), overcommit in prop_oneof![Just(0.5), Just(1.0), Just(2.0)], ops in ops_strategy()
    ) {
        let policy = Policy { cpu_overcommit: overcommit, ..Policy::default() };
        let mut ledger = Ledger::new(&node, policy);
        for op in ops {
            match op {
                Op::Admit(n, workload) => {
                    let before = ledger.clone();
                    if !ledger.admit(&id(n), &workload).is_admit() {
                        prop_assert_eq!(&ledger, &before, "a rejection changes nothing");
                    }
                }
                Op::Release(n) => {
                    ledger.release(&id(n));
                    let once = ledger.clone();
                    ledger.release(&id(n));
                    prop_assert_eq!(&ledger, &once, "release is idempotent");
                }
            }
            check_invariants(&ledger, &node, &policy)?;
        }
        let mut rebuilt = Ledger::new(&node, policy);
        for (id, reservation) in ledger.reservations() {
            rebuilt.restore(id, reservation.clone());
        }
        prop_assert_eq!(&rebuilt, &ledger, "a ledger rebuilt from its reservations equals the incremental one");
        let mut from_records = Ledger::new(&node, policy);
        for (id, reservation) in ledger.reservations() {
            from_records.restore_record(id, &ledger.record(reservation)).expect("known names");
        }
        prop_assert_eq!(&from_records, &ledger, "a ledger rebuilt from stored records equals the incremental one");
    }

    /// The door's admission in place: a deployment refused whole changes nothing, and one admitted
    /// whole is taken back exactly by its undo (a failed commit), whatever the ledger held before.
    #[test]
    fn admit_whole_refuses_without_trace_and_undoes_exactly(
        node in node_strategy(), before_ops in ops_strategy(),
        workloads in prop::collection::vec(workload_strategy(), 1..6)
    ) {
        let policy = Policy::default();
        let mut ledger = Ledger::new(&node, policy);
        for op in before_ops {
            match op {
                Op::Admit(n, workload) => { ledger.admit(&id(n), &workload); }
                Op::Release(n) => { ledger.release(&id(n)); }
            }
        }
        let mut workloads = workloads;
        for (i, workload) in workloads.iter_mut().enumerate() {
            workload.name = format!("d{i}");
        }
        let deployment = zos_types::Deployment { twin_id: 9, contract_id: 9, workloads, ..Default::default() };
        let before = ledger.clone();
        let (verdict, undo) = ledger.admit_whole(&deployment);
        let admitted = matches!(&verdict, zos_planner::DeploymentVerdict::Judged(v) if v.iter().all(|it| it.verdict.is_admit()));
        if admitted {
            ledger.undo(undo);
        }
        prop_assert_eq!(&ledger, &before, "refused: nothing taken; admitted then undone: exactly as before");
    }

    #[test]
    fn any_bytes_as_scenario_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(scenario) = zos_planner::document::parse::<Scenario>(&text) {
            zos_planner::check::check(&scenario);
        }
    }

    #[test]
    fn mutated_example_scenarios_never_panic(
        example in prop::sample::select(vec!["h100-node.json", "memory-16g-zos.json", "fragmented-disks-atomic.json"]),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let path = format!("{}/../examples/{example}", env!("CARGO_MANIFEST_DIR"));
        let mut bytes = std::fs::read(path).expect("example");
        for (at, byte) in edits {
            let idx = at.index(bytes.len());
            bytes[idx] = byte;
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(scenario) = zos_planner::document::parse::<Scenario>(&text) {
            zos_planner::check::check(&scenario);
        }
    }
}

#[test]
fn extreme_numbers_never_panic() {
    let scenario: Scenario = serde_json::from_value(json!({
        "node": {"cru": u64::MAX, "mru": u64::MAX, "os_used_mru": u64::MAX,
                 "pools": [{"name": "p", "kind": "ssd", "size": u64::MAX, "used": u64::MAX}]},
        "policy": {"preset": "strict", "cpu_overcommit": 1e300, "reserved_mru": u64::MAX},
        "deployments": [{"twin_id": 1, "contract_id": 1, "workloads": [
            {"name": "a", "type": "zmachine", "result": {"created": 1, "state": "ok"},
             "data": {"compute_capacity": {"cpu": 255, "memory": u64::MAX}, "size": u64::MAX}}]}],
        "requests": [{"twin_id": 2, "contract_id": 2, "workloads": [
            {"name": "b", "type": "zmachine", "data": {"network": {"interfaces": [{"network": "n", "ip": "10.0.0.2"}]},
             "compute_capacity": {"cpu": 255, "memory": u64::MAX}, "size": u64::MAX}},
            {"name": "c", "type": "zmount", "data": {"size": u64::MAX}}]}]
    }))
    .expect("scenario");
    let report = zos_planner::check::check(&scenario);
    assert_eq!(report.requests[0].verdict, "reject");
}
