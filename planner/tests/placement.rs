//! Farm placement: the heuristic against the exact answer on small instances, against the lower
//! bound on larger ones, and every node's own ledger on every result.

use zos_planner::Ledger;
use zos_planner::admission::DeploymentVerdict;
use zos_planner::placement::{Objective, PlaceReport, PlacementOptions, place};
use zos_planner::synthetic;
use zos_types::Deployment;
use zos_types::scenario::Farm;

fn admits_whole(ledger: &mut Ledger, deployment: &Deployment) -> bool {
    matches!(ledger.admit_deployment(deployment), DeploymentVerdict::Judged(v) if v.iter().all(|it| it.verdict.is_admit()))
}

fn atomic_ledgers(farm: &Farm) -> Vec<Ledger> {
    farm.nodes
        .iter()
        .map(|node| {
            let mut policy = node.policy;
            policy.atomic = true;
            Ledger::new(&node.node, policy)
        })
        .collect()
}

/// Every node's ledger admits, in request order, exactly the deployments placed on it.
fn assert_ledgers_agree(farm: &Farm, requests: &[Deployment], report: &PlaceReport) {
    let mut ledgers = atomic_ledgers(farm);
    for (request, assignment) in requests.iter().zip(&report.assignments) {
        if let Some(node) = &assignment.node {
            let idx = farm.nodes.iter().position(|n| &n.name == node).expect("known node");
            assert!(admits_whole(&mut ledgers[idx], request), "node {node} refuses contract {}", request.contract_id);
        }
    }
}

/// The exact optimum (fewest unplaced, then fewest nodes) by enumerating every assignment.
fn exact_min_nodes(farm: &Farm, requests: &[Deployment]) -> (usize, usize) {
    let n = farm.nodes.len();
    let mut best = (usize::MAX, usize::MAX);
    let total = (n + 1).pow(requests.len() as u32);
    for code in 0..total {
        let mut choice = Vec::with_capacity(requests.len());
        let mut rest = code;
        for _ in requests {
            choice.push(rest % (n + 1));
            rest /= n + 1;
        }
        let mut ledgers = atomic_ledgers(farm);
        let feasible = requests.iter().zip(&choice).all(|(dl, &c)| c == n || admits_whole(&mut ledgers[c], dl));
        if feasible {
            let unplaced = choice.iter().filter(|&&c| c == n).count();
            let used = choice.iter().filter(|&&c| c < n).collect::<std::collections::BTreeSet<_>>().len();
            best = best.min((unplaced, used));
        }
    }
    best
}

#[test]
fn heuristic_and_milp_against_exact_on_small_instances() {
    let mut gaps = Vec::new();
    for seed in 1..=6 {
        let farm = synthetic::farm(3);
        let requests = synthetic::deployments(6, seed);
        let exact = exact_min_nodes(&farm, &requests);
        let heuristic =
            place(&farm, &requests, &PlacementOptions { time_limit_secs: 0.0, ..PlacementOptions::default() });
        let improved = place(&farm, &requests, &PlacementOptions::default());
        for report in [&heuristic, &improved] {
            assert_ledgers_agree(&farm, &requests, report);
            assert!(
                report.lower_bound <= exact.1 as f64 + 1e-9,
                "the lower bound {} beats the optimum {}",
                report.lower_bound,
                exact.1
            );
        }
        let unplaced = |r: &PlaceReport| r.assignments.iter().filter(|a| a.node.is_none()).count();
        assert!(
            unplaced(&improved) == exact.0,
            "seed {seed}: the MILP leaves {} unplaced, the optimum {}",
            unplaced(&improved),
            exact.0
        );
        assert_eq!(improved.nodes_used, exact.1, "seed {seed}: MILP answer vs exact");
        assert!(improved.optimal, "seed {seed}: small instances are proven optimal");
        gaps.push((seed, heuristic.nodes_used, exact.1));
    }
    eprintln!("(seed, heuristic nodes, optimal nodes): {gaps:?}");
}

#[test]
fn heuristic_against_lower_bound_on_a_larger_instance() {
    let farm = synthetic::farm(120);
    let requests = synthetic::deployments(600, 42);
    let report = place(&farm, &requests, &PlacementOptions { time_limit_secs: 0.0, ..PlacementOptions::default() });
    assert_ledgers_agree(&farm, &requests, &report);
    assert!(report.assignments.iter().all(|a| a.node.is_some()), "600 deployments fit 120 nodes");
    assert!(report.lower_bound >= 1.0);
    let ratio = report.nodes_used as f64 / report.lower_bound;
    eprintln!("600 x 120: heuristic {} nodes, lower bound {}, ratio {ratio:.3}", report.nodes_used, report.lower_bound);
    assert!(ratio <= 1.25, "best fit decreasing stays within 25% of the bound here (got {ratio:.3})");
}

#[test]
fn every_objective_keeps_every_ledger_happy() {
    let farm = synthetic::farm(8);
    let requests = synthetic::deployments(90, 3);
    for objective in [Objective::MinNodes, Objective::Balance, Objective::MaxPlaced] {
        let report = place(
            &farm,
            &requests,
            &PlacementOptions { objective, time_limit_secs: 2.0, ..PlacementOptions::default() },
        );
        assert_ledgers_agree(&farm, &requests, &report);
        assert!(report.objective_value + 1e-9 >= report.lower_bound, "{objective}: value below its own bound");
        assert_eq!(report.assignments.len(), requests.len());
        let placed = report.assignments.iter().filter(|a| a.node.is_some()).count();
        assert_eq!(report.unplaced.len(), requests.len() - placed);
        for unplaced in &report.unplaced {
            assert!(!unplaced.refusals.is_empty(), "an unplaced deployment says why");
        }
    }
}

#[test]
fn balance_spreads_and_min_nodes_packs() {
    let farm = synthetic::farm(6);
    let requests = synthetic::deployments(12, 9);
    let packed =
        place(&farm, &requests, &PlacementOptions { objective: Objective::MinNodes, ..PlacementOptions::default() });
    let spread =
        place(&farm, &requests, &PlacementOptions { objective: Objective::Balance, ..PlacementOptions::default() });
    assert!(spread.nodes_used >= packed.nodes_used);
    let peak = |r: &PlaceReport| r.nodes.iter().map(|n| n.utilization.mru).fold(0.0, f64::max);
    assert!(peak(&spread) <= peak(&packed) + 1e-9);
}

/// Issue 15 item 2: minimising nodes must never place fewer deployments than the heuristic can. One
/// 10-vCPU node, one 10-vCPU deployment and five of 2 vCPU: largest first places 1, smallest first 5.
#[test]
fn min_nodes_places_as_many_as_possible_first() {
    use serde_json::json;
    let farm: Farm = serde_json::from_value(json!({"nodes": [{"name": "n1", "policy": "strict",
        "node": {"cru": 10, "mru": 1u64 << 40, "pools": [{"name": "ssd", "kind": "ssd", "size": 1u64 << 40}]}}]}))
    .expect("farm");
    let vm = |contract: u64, cpu: u64| -> Deployment {
        serde_json::from_value(
            json!({"twin_id": 1, "contract_id": contract, "workloads": [{"name": "vm", "type": "zmachine",
            "data": {"network": {"interfaces": [{"network": "n", "ip": "10.1.1.2"}]},
                     "compute_capacity": {"cpu": cpu, "memory": 1u64 << 30}}}]}),
        )
        .expect("deployment")
    };
    let requests: Vec<Deployment> = std::iter::once(vm(1, 10)).chain((2..=6).map(|c| vm(c, 2))).collect();
    for objective in [Objective::MinNodes, Objective::Balance, Objective::MaxPlaced] {
        let options = PlacementOptions { objective, time_limit_secs: 0.0, ..PlacementOptions::default() };
        let report = place(&farm, &requests, &options);
        let placed = report.assignments.iter().filter(|a| a.node.is_some()).count();
        assert_eq!(placed, 5, "{objective:?} places the five small ones");
        assert_ledgers_agree(&farm, &requests, &report);
    }
}
