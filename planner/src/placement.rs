//! Farm placement: assign each deployment, whole, to one node so that every node's own ledger admits
//! its set. A fast heuristic first (best fit, decreasing by dominant share), then a MILP (good_lp) with a
//! time limit, warm-started from the heuristic, to improve it and prove optimality where it can; the
//! answer is always re-checked by each node's ledger.
//!
//! The MILP models CPU, memory, public addresses and the sum of free disk per kind; pool-level packing
//! is left to the ledger's verdict, so a MILP assignment that no pool can hold is refused there.
//! The solver's time limit is the one place this library lets a clock in.

// The MILP is built with good_lp's f64 expression algebra (operators on `Expression`), which is not
// capacity accounting; capacity math in this module saturates like everywhere else.
#![allow(clippy::arithmetic_side_effects)]

use crate::admission::DeploymentVerdict;
use crate::check::WorkloadReport;
use crate::ledger::Ledger;
use crate::verdict::Verdict;
use good_lp::{
    Expression, ProblemVariables, Solution, SolutionStatus, SolverModel, Variable, WithInitialSolution, WithTimeLimit,
    constraint, variable,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use zos_types::scenario::{Farm, Preset};
use zos_types::{Capacity, Deployment};

/// What the placement optimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Place everything that can be placed on as few nodes as possible.
    MinNodes,
    /// Place everything that can be placed, keeping the most loaded node as low as possible.
    Balance,
    /// Place as many deployments as possible.
    MaxPlaced,
}

impl Objective {
    /// Parses `min-nodes`, `balance` or `max-placed`.
    pub fn parse(text: &str) -> Result<Objective, String> {
        match text {
            "min-nodes" => Ok(Objective::MinNodes),
            "balance" => Ok(Objective::Balance),
            "max-placed" => Ok(Objective::MaxPlaced),
            other => Err(format!("unknown objective '{other}' (expected min-nodes, balance or max-placed)")),
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Objective::MinNodes => "min-nodes",
            Objective::Balance => "balance",
            Objective::MaxPlaced => "max-placed",
        })
    }
}

/// Knobs of the placement.
#[derive(Debug, Clone, Copy)]
pub struct PlacementOptions {
    /// The objective.
    pub objective: Objective,
    /// Time limit of the MILP, in seconds; 0 skips it.
    pub time_limit_secs: f64,
    /// Largest MILP (number of deployment-node pairs) worth handing to the solver.
    pub max_milp_pairs: usize,
}

impl Default for PlacementOptions {
    fn default() -> Self {
        PlacementOptions { objective: Objective::MinNodes, time_limit_secs: 10.0, max_milp_pairs: 2_000 }
    }
}

/// One deployment's node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assignment {
    /// Owner twin.
    pub twin_id: u32,
    /// Contract.
    pub contract_id: u64,
    /// The node's name, or `null` when it could not be placed.
    pub node: Option<String>,
    /// The pool each of its disks went to (workload name to pool name), as that node's ledger chose.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<String, String>,
}

/// Why a deployment could not be placed, summarised over the nodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unplaced {
    /// Owner twin.
    pub twin_id: u32,
    /// Contract.
    pub contract_id: u64,
    /// How many nodes refused it for each resource (`cru`, `mru`, `sru`, `hru`, `ipv4u`, `gpu`), or
    /// `invalid` with the validation message.
    pub refusals: BTreeMap<String, usize>,
    /// Validation message of an invalid deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The node that came closest to taking it, as the farm ends: the fewest refused resources, then
    /// the smallest shortfall relative to the demand. `null` for an invalid deployment or an empty farm.
    pub best_node: Option<String>,
    /// Its refused workloads on that node, each with every shortfall and its numbers (as `check`
    /// reports them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<WorkloadReport>,
}

/// A node after placement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeReport {
    /// The node's name.
    pub name: String,
    /// Deployments placed on it by this run.
    pub placed: usize,
    /// Utilization per resource (0 to 1): CPU, memory (including the reserved part), SSD, HDD.
    pub utilization: Utilization,
    /// Fragmentation of its free disk: 1 - (largest free pool / total free), 0 when nothing is free.
    pub fragmentation: f64,
}

/// Utilization per resource.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Utilization {
    /// CPU threads (after overcommit).
    pub cru: f64,
    /// Memory, reserved part included.
    pub mru: f64,
    /// The part of `mru` reserved for the system (what an empty node shows).
    pub mru_reserved: f64,
    /// SSD pools.
    pub sru: f64,
    /// HDD pools.
    pub hru: f64,
}

impl Utilization {
    fn max(&self) -> f64 {
        self.cru.max(self.mru).max(self.sru).max(self.hru)
    }
}

/// The answer of `zos-plan place`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlaceReport {
    /// One entry per request, in request order.
    pub assignments: Vec<Assignment>,
    /// Nodes that received at least one deployment.
    pub nodes_used: usize,
    /// The objective.
    pub objective: Objective,
    /// Its value, minimised: nodes used (`min-nodes`), the highest utilization of any node and resource
    /// (`balance`), or the number of deployments left unplaced (`max-placed`).
    pub objective_value: f64,
    /// A lower bound of that value: no placement can do better.
    pub lower_bound: f64,
    /// `objective_value - lower_bound`.
    pub gap: f64,
    /// True when the value is proven optimal (by the solver, or by meeting the lower bound).
    pub optimal: bool,
    /// Which answer was kept: `heuristic` or `milp`.
    pub solver: &'static str,
    /// What the MILP did: not run or skipped (and why), or ran (proved optimal, or stopped at its time
    /// limit without a proof).
    pub milp: String,
    /// The heuristic's value, for comparison.
    pub heuristic_value: f64,
    /// Deployments that could not be placed, and why.
    pub unplaced: Vec<Unplaced>,
    /// Every node.
    pub nodes: Vec<NodeReport>,
}

/// How many open nodes that surely fit by their totals best fit tries, smallest room first.
const BEST_FIT_WINDOW: usize = 512;

/// How many open nodes that may (but need not) fit best fit tries before it opens a fresh one.
const MAYBE_FIT_WINDOW: usize = 512;

struct Instance<'a> {
    farm: &'a Farm,
    requests: &'a [Deployment],
    base: Vec<Ledger>,
    /// Sum of every node's totals.
    farm_total: Capacity,
    demands: Vec<Option<Capacity>>,
    invalid: Vec<Option<String>>,
}

fn deployment_capacity(deployment: &Deployment) -> Capacity {
    deployment.workloads.iter().fold(Capacity::default(), |sum, wl| sum.saturating_add(&wl.capacity()))
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

fn utilization(ledger: &Ledger) -> Utilization {
    let usage = ledger.usage();
    let cpu_total = usage.free.cru.saturating_add(usage.used.cru);
    Utilization {
        cru: ratio(usage.used.cru, cpu_total),
        mru: ratio(usage.used.mru.bytes().saturating_add(usage.reserved.mru.bytes()), usage.total.mru.bytes()),
        mru_reserved: ratio(usage.reserved.mru.bytes(), usage.total.mru.bytes()),
        sru: ratio(usage.used.sru.bytes(), usage.total.sru.bytes()),
        hru: ratio(usage.used.hru.bytes(), usage.total.hru.bytes()),
    }
}

fn fragmentation(ledger: &Ledger) -> f64 {
    let (total, largest) = ledger.pools().iter().fold((0u64, 0u64), |(total, largest), pool| {
        (total.saturating_add(pool.free().bytes()), largest.max(pool.free().bytes()))
    });
    if total == 0 { 0.0 } else { 1.0 - largest as f64 / total as f64 }
}

/// Admits a whole deployment (the farm ledgers are atomic); true when every workload was admitted.
fn admit_whole(ledger: &mut Ledger, deployment: &Deployment) -> Result<(), Vec<String>> {
    match ledger.admit_deployment_unvalidated(deployment) {
        DeploymentVerdict::Judged(verdicts) if verdicts.iter().all(|it| it.verdict.is_admit()) => Ok(()),
        DeploymentVerdict::Judged(verdicts) => Err(verdicts
            .iter()
            .filter_map(|it| match &it.verdict {
                Verdict::Reject(shortfalls) => Some(shortfalls.iter().map(|s| s.resource.as_str().to_string())),
                Verdict::Admit(_) => None,
            })
            .flatten()
            .collect()),
        DeploymentVerdict::Invalid { message, .. } => Err(vec![format!("invalid: {message}")]),
    }
}

/// `part / whole` per resource (resources the farm does not have are left out).
fn shares(part: &Capacity, whole: &Capacity) -> impl Iterator<Item = f64> {
    [
        (part.cru, whole.cru),
        (part.mru.bytes(), whole.mru.bytes()),
        (part.sru.bytes(), whole.sru.bytes()),
        (part.hru.bytes(), whole.hru.bytes()),
    ]
    .into_iter()
    .filter(|&(_, whole)| whole > 0)
    .map(|(part, whole)| part as f64 / whole as f64)
}

/// How far a node's free capacity is from a demand: the sum, over the resources the demand exceeds, of
/// the missing part relative to the demand.
fn deficit(free: &Capacity, demand: &Capacity) -> f64 {
    [
        (demand.cru, free.cru),
        (demand.mru.bytes(), free.mru.bytes()),
        (demand.sru.bytes(), free.sru.bytes()),
        (demand.hru.bytes(), free.hru.bytes()),
        (demand.ipv4u, free.ipv4u),
    ]
    .into_iter()
    .filter(|&(want, have)| want > have)
    .map(|(want, have)| (want - have) as f64 / want as f64)
    .sum()
}

fn min_share(free: &Capacity, average: &Capacity) -> f64 {
    shares(free, average).fold(f64::INFINITY, f64::min)
}

fn max_share(demand: &Capacity, average: &Capacity) -> f64 {
    shares(demand, average).fold(0.0, f64::max)
}

/// A share as an index key (saturating `as`).
fn scale(share: f64) -> u64 {
    (share * 1e9) as u64
}

/// Would the ledger admit the deployment whole? Admits it, then releases it again: exact, and without
/// copying the ledger.
fn probe_whole(ledger: &mut Ledger, deployment: &Deployment) -> Result<(), Vec<String>> {
    admit_whole(ledger, deployment)?;
    for workload in &deployment.workloads {
        ledger.release(&deployment.workload_id(&workload.name));
    }
    Ok(())
}

/// The resources a ledger's totals already rule out, without admitting anything.
fn totals_refusal(ledger: &Ledger, demand: &Capacity) -> Vec<String> {
    let free = ledger.usage().free;
    let strict = ledger.policy().preset == Preset::Strict;
    let mut refused = Vec::new();
    if strict && demand.cru > free.cru {
        refused.push("cru".to_string());
    }
    if demand.mru > free.mru {
        refused.push("mru".to_string());
    }
    if demand.sru > free.sru {
        refused.push("sru".to_string());
    }
    if demand.hru > free.hru {
        refused.push("hru".to_string());
    }
    if strict && demand.ipv4u > free.ipv4u {
        refused.push("ipv4u".to_string());
    }
    refused
}

impl<'a> Instance<'a> {
    fn new(farm: &'a Farm, requests: &'a [Deployment]) -> Instance<'a> {
        let base: Vec<Ledger> = farm
            .nodes
            .iter()
            .map(|node| {
                let mut policy = node.policy;
                policy.atomic = true;
                let mut ledger = Ledger::new(&node.node, policy);
                for deployment in &node.deployments {
                    ledger.hold_deployment(deployment);
                }
                ledger
            })
            .collect();
        let invalid: Vec<Option<String>> = requests.iter().map(|dl| dl.validate().err()).collect();
        let demands = requests
            .iter()
            .zip(&invalid)
            .map(|(dl, invalid)| invalid.is_none().then(|| deployment_capacity(dl)))
            .collect();
        let farm_total = base
            .iter()
            .fold(Capacity::default(), |sum: Capacity, ledger: &Ledger| sum.saturating_add(&ledger.usage().total));
        Instance { farm, requests, base, farm_total, demands, invalid }
    }

    /// Share of the farm's average node that a deployment takes on its most demanding resource.
    fn dominant_share(&self, demand: &Capacity) -> f64 {
        let n = self.base.len().max(1) as f64;
        let total = self.farm_total;
        let share = |part: u64, whole: u64| if whole == 0 { 0.0 } else { part as f64 * n / whole as f64 };
        share(demand.cru, total.cru)
            .max(share(demand.mru.bytes(), total.mru.bytes()))
            .max(share(demand.sru.bytes(), total.sru.bytes()))
            .max(share(demand.hru.bytes(), total.hru.bytes()))
    }

    /// The farm's average node (totals, CPU after overcommit).
    fn average_node(&self) -> Capacity {
        let n = self.base.len().max(1) as u64;
        let total = self.farm_total;
        Capacity {
            cru: total.cru / n,
            mru: zos_types::Unit(total.mru.bytes() / n),
            sru: zos_types::Unit(total.sru.bytes() / n),
            hru: zos_types::Unit(total.hru.bytes() / n),
            ipv4u: total.ipv4u / n,
        }
    }

    /// Best fit decreasing (min-nodes, max-placed takes the smallest first), or least loaded first (balance).
    fn heuristic(&self, objective: Objective) -> (Vec<Option<usize>>, Vec<Ledger>) {
        let mut ledgers = self.base.clone();
        let mut order: Vec<usize> = (0..self.requests.len()).filter(|&idx| self.demands[idx].is_some()).collect();
        let shares: Vec<f64> =
            self.demands.iter().map(|d| d.as_ref().map_or(0.0, |d| self.dominant_share(d))).collect();
        order.sort_by(|&a, &b| shares[b].total_cmp(&shares[a]).then(a.cmp(&b)));
        if objective == Objective::MaxPlaced {
            order.reverse();
        }
        let mut assignment = vec![None; self.requests.len()];
        // Open nodes are indexed by their room: min over resources of free / the farm's average node, so
        // that a node short of any one resource sorts low. A node whose room is at least a deployment's
        // size (max over resources of demand / average) surely fits it by the totals: best fit is the
        // smallest such room. Unopened nodes come largest first.
        let average = self.average_node();
        let room = |ledger: &Ledger| scale(min_share(&ledger.usage().free, &average));
        let mut open: BTreeSet<(u64, usize)> = BTreeSet::new();
        let mut open_key: Vec<Option<u64>> = vec![None; ledgers.len()];
        let mut unopened: Vec<usize> = (0..ledgers.len()).collect();
        unopened.sort_by_key(|&idx| std::cmp::Reverse(ledgers[idx].usage().total.mru));
        let util_key = |ledger: &Ledger| (utilization(ledger).max() * 1e9) as u64;
        let mut load_key: Vec<u64> = ledgers.iter().map(util_key).collect();
        let mut by_load: BTreeSet<(u64, usize)> = load_key.iter().enumerate().map(|(idx, &key)| (key, idx)).collect();
        for idx in order {
            let Some(demand) = self.demands[idx] else { continue };
            let deployment = &self.requests[idx];
            let try_node = |ledgers: &mut Vec<Ledger>, node: usize| {
                ledgers[node].may_fit(&demand) && admit_whole(&mut ledgers[node], deployment).is_ok()
            };
            let chosen = match objective {
                Objective::Balance => {
                    let found = by_load.iter().map(|&(_, node)| node).find(|&node| try_node(&mut ledgers, node));
                    if let Some(node) = found {
                        by_load.remove(&(load_key[node], node));
                        load_key[node] = util_key(&ledgers[node]);
                        by_load.insert((load_key[node], node));
                    }
                    found
                }
                Objective::MinNodes | Objective::MaxPlaced => {
                    // The smallest room that surely fits; then, largest first, the open nodes that may fit;
                    // then a fresh node; then, only when no fresh node is left, every other open node.
                    let size = scale(max_share(&demand, &average));
                    let found = open
                        .range((size, 0)..)
                        .take(BEST_FIT_WINDOW)
                        .map(|&(_, node)| node)
                        .find(|&node| try_node(&mut ledgers, node))
                        .or_else(|| {
                            open.range(..(size, 0))
                                .rev()
                                .take(MAYBE_FIT_WINDOW)
                                .map(|&(_, node)| node)
                                .find(|&node| try_node(&mut ledgers, node))
                        })
                        .or_else(|| {
                            let pos = unopened.iter().position(|&node| try_node(&mut ledgers, node))?;
                            Some(unopened.remove(pos))
                        })
                        .or_else(|| open.iter().map(|&(_, node)| node).find(|&node| try_node(&mut ledgers, node)));
                    if let Some(node) = found {
                        if let Some(key) = open_key[node] {
                            open.remove(&(key, node));
                        }
                        let key = room(&ledgers[node]);
                        open_key[node] = Some(key);
                        open.insert((key, node));
                    }
                    found
                }
            };
            assignment[idx] = chosen;
        }
        (assignment, ledgers)
    }

    /// Applies an assignment to fresh node ledgers in request order; what a ledger refuses is dropped.
    fn verify(&self, assignment: &[Option<usize>]) -> (Vec<Option<usize>>, Vec<Ledger>) {
        let mut ledgers = self.base.clone();
        let verified = assignment
            .iter()
            .enumerate()
            .map(|(idx, node)| node.filter(|&node| admit_whole(&mut ledgers[node], &self.requests[idx]).is_ok()))
            .collect();
        (verified, ledgers)
    }

    fn value(&self, objective: Objective, assignment: &[Option<usize>], ledgers: &[Ledger]) -> f64 {
        match objective {
            Objective::MinNodes => assignment.iter().flatten().collect::<BTreeSet<_>>().len() as f64,
            Objective::MaxPlaced => assignment.iter().filter(|node| node.is_none()).count() as f64,
            Objective::Balance => ledgers.iter().map(|ledger| utilization(ledger).max()).fold(0.0, f64::max),
        }
    }

    /// Lexicographic comparison key: more placed first, then the objective value.
    fn score(&self, objective: Objective, assignment: &[Option<usize>], ledgers: &[Ledger]) -> (usize, f64) {
        let unplaced = assignment.iter().filter(|node| node.is_none()).count();
        (unplaced, self.value(objective, assignment, ledgers))
    }

    fn lower_bound(&self, objective: Objective, assignment: &[Option<usize>]) -> f64 {
        match objective {
            Objective::MaxPlaced => {
                // Deployments that fit no node even alone can never be placed.
                (0..self.requests.len())
                    .filter(|&idx| {
                        self.demands[idx].is_none()
                            || !self
                                .base
                                .iter()
                                .any(|ledger| admit_whole(&mut ledger.clone(), &self.requests[idx]).is_ok())
                    })
                    .count() as f64
            }
            Objective::MinNodes => {
                // For each resource, the fewest nodes whose free capacity can hold the placed demand.
                let placed: Vec<Capacity> = assignment
                    .iter()
                    .zip(&self.demands)
                    .filter(|(node, _)| node.is_some())
                    .filter_map(|(_, d)| *d)
                    .collect();
                if placed.is_empty() {
                    return 0.0;
                }
                let total = placed.iter().fold(Capacity::default(), |sum, d| sum.saturating_add(d));
                let frees: Vec<Capacity> = self.base.iter().map(|ledger| ledger.usage().free).collect();
                let nodes_needed = |need: u64, field: fn(&Capacity) -> u64| {
                    let mut caps: Vec<u64> = frees.iter().map(field).collect();
                    caps.sort_unstable_by(|a, b| b.cmp(a));
                    let mut sum = 0u64;
                    caps.iter()
                        .take_while(|&&cap| {
                            let short = sum < need;
                            sum = sum.saturating_add(cap);
                            short
                        })
                        .count()
                };
                let bounds = [
                    nodes_needed(total.mru.bytes(), |c| c.mru.bytes()),
                    nodes_needed(total.sru.bytes(), |c| c.sru.bytes()),
                    nodes_needed(total.hru.bytes(), |c| c.hru.bytes()),
                    if self.farm.nodes.iter().all(|node| node.policy.preset == Preset::Strict) {
                        nodes_needed(total.cru, |c| c.cru)
                    } else {
                        0
                    },
                ];
                bounds.into_iter().max().unwrap_or(0).max(1) as f64
            }
            Objective::Balance => {
                // Perfect spreading of the placed demand over the whole farm, resource by resource.
                let placed = assignment
                    .iter()
                    .zip(&self.demands)
                    .filter(|(node, _)| node.is_some())
                    .filter_map(|(_, d)| *d)
                    .fold(Capacity::default(), |sum, d| sum.saturating_add(&d));
                let sum = |f: fn(&crate::ledger::Usage) -> u64| {
                    self.base.iter().map(|l| f(&l.usage())).fold(0u64, u64::saturating_add)
                };
                let mem = ratio(
                    sum(|u| u.used.mru.bytes().saturating_add(u.reserved.mru.bytes()))
                        .saturating_add(placed.mru.bytes()),
                    sum(|u| u.total.mru.bytes()),
                );
                let ssd =
                    ratio(sum(|u| u.used.sru.bytes()).saturating_add(placed.sru.bytes()), sum(|u| u.total.sru.bytes()));
                let hdd =
                    ratio(sum(|u| u.used.hru.bytes()).saturating_add(placed.hru.bytes()), sum(|u| u.total.hru.bytes()));
                let cpu = ratio(
                    sum(|u| u.used.cru).saturating_add(placed.cru),
                    sum(|u| u.free.cru.saturating_add(u.used.cru)),
                );
                mem.max(ssd).max(hdd).max(cpu)
            }
        }
    }

    /// The MILP: x[d][n] places deployment d on node n, y[n] marks a used node. Warm-started from `start`.
    /// `Err` says why it was not run (the heuristic answer stands).
    fn milp(&self, options: &PlacementOptions, start: &[Option<usize>]) -> Result<(Vec<Option<usize>>, bool), String> {
        let objective = options.objective;
        if options.time_limit_secs <= 0.0 {
            return Err("not run: the time limit is 0".into());
        }
        // Too large for the solver: decide before looking at any pair (the heuristic answer stands).
        let candidates = self.requests.len().saturating_mul(self.base.len());
        let too_many = |pairs: usize| {
            format!(
                "skipped: {pairs} deployment-node pairs, above the limit of {} for the solver",
                options.max_milp_pairs
            )
        };
        if candidates > options.max_milp_pairs.saturating_mul(8) {
            return Err(too_many(candidates));
        }
        let cheap: Vec<(usize, usize)> = (0..self.requests.len())
            .filter_map(|d| self.demands[d].map(|demand| (d, demand)))
            .flat_map(|(d, demand)| {
                (0..self.base.len()).filter(move |&n| self.base[n].may_fit(&demand)).map(move |n| (d, n))
            })
            .collect();
        if cheap.is_empty() {
            return Err("not run: no deployment fits any node by its totals".into());
        }
        if cheap.len() > options.max_milp_pairs {
            return Err(too_many(cheap.len()));
        }
        // Keep the pairs where the deployment fits the node alone, by the node's own ledger (GPUs, pools, addresses).
        let pairs: Vec<(usize, usize)> = cheap
            .into_iter()
            .filter(|&(d, n)| admit_whole(&mut self.base[n].clone(), &self.requests[d]).is_ok())
            .collect();
        if pairs.is_empty() {
            return Err("not run: no deployment fits any node alone".into());
        }
        let n_nodes = self.base.len();
        let mut vars = ProblemVariables::new();
        let x: Vec<Variable> = pairs.iter().map(|_| vars.add(variable().binary())).collect();
        let y: Vec<Variable> = (0..n_nodes).map(|_| vars.add(variable().binary())).collect();
        let peak = vars.add(variable().min(0.0).max(1.0));
        let placed: Expression = x.iter().sum();
        let nodes: Expression = y.iter().sum();
        let weight = (n_nodes as f64) + 1.0;
        let goal = match objective {
            Objective::MinNodes => nodes - weight * placed,
            Objective::MaxPlaced => nodes / weight - placed,
            Objective::Balance => Expression::from(peak) - 2.0 * placed,
        };
        let mut model = vars.minimise(goal).using(solver());
        for d in 0..self.requests.len() {
            let row: Expression = pairs.iter().zip(&x).filter(|((pd, _), _)| *pd == d).map(|(_, &var)| var).sum();
            model.add_constraint(constraint!(row <= 1.0));
        }
        for (n, ledger) in self.base.iter().enumerate() {
            let usage = ledger.usage();
            let strict = ledger.policy().preset == Preset::Strict;
            let on_node: Vec<(&Capacity, Variable)> = pairs
                .iter()
                .zip(&x)
                .filter(|((_, pn), _)| *pn == n)
                .filter_map(|((d, _), &var)| self.demands[*d].as_ref().map(|demand| (demand, var)))
                .collect();
            for &(_, var) in &on_node {
                model.add_constraint(constraint!(var <= y[n]));
            }
            // A GPU goes to one deployment at most.
            let mut by_gpu: BTreeMap<&str, Vec<Variable>> = BTreeMap::new();
            for ((d, _), &var) in pairs.iter().zip(&x).filter(|((_, pn), _)| *pn == n) {
                for gpu in
                    self.requests[*d].workloads.iter().filter_map(|wl| wl.data.as_zmachine()).flat_map(|vm| &vm.gpu)
                {
                    by_gpu.entry(gpu.as_str()).or_default().push(var);
                }
            }
            for vars in by_gpu.into_values().filter(|vars| vars.len() > 1) {
                let users: Expression = vars.into_iter().sum();
                model.add_constraint(constraint!(users <= 1.0));
            }
            type Field = fn(&Capacity) -> f64;
            let mut limits: Vec<(Field, f64, f64)> = vec![
                (|c| c.mru.bytes() as f64, usage.free.mru.bytes() as f64, usage.total.mru.bytes() as f64),
                (|c| c.sru.bytes() as f64, usage.free.sru.bytes() as f64, usage.total.sru.bytes() as f64),
                (|c| c.hru.bytes() as f64, usage.free.hru.bytes() as f64, usage.total.hru.bytes() as f64),
            ];
            if strict {
                limits.push((
                    |c| c.cru as f64,
                    usage.free.cru as f64,
                    usage.free.cru.saturating_add(usage.used.cru) as f64,
                ));
                limits.push((|c| c.ipv4u as f64, usage.free.ipv4u as f64, 0.0));
            }
            for (field, free, total) in limits {
                let load: Expression = on_node.iter().map(|&(demand, var)| field(demand) * var).sum();
                model.add_constraint(constraint!(load.clone() <= free));
                if objective == Objective::Balance && total > 0.0 {
                    let used_already = total - free;
                    model.add_constraint(constraint!((load + used_already) / total <= peak));
                }
            }
        }
        let mut initial: Vec<(Variable, f64)> =
            pairs.iter().zip(&x).map(|(&(d, n), &var)| (var, if start[d] == Some(n) { 1.0 } else { 0.0 })).collect();
        initial.extend(y.iter().enumerate().map(|(n, &var)| (var, if start.contains(&Some(n)) { 1.0 } else { 0.0 })));
        initial.push((peak, 1.0));
        let solution = model
            .with_initial_solution(initial)
            .with_time_limit(options.time_limit_secs)
            .solve()
            .map_err(|err| format!("failed: {err}"))?;
        let mut assignment = vec![None; self.requests.len()];
        for (&(d, n), &var) in pairs.iter().zip(&x) {
            if solution.value(var) > 0.5 {
                assignment[d] = Some(n);
            }
        }
        Ok((assignment, matches!(solution.status(), SolutionStatus::Optimal)))
    }

    /// Why a deployment is not placed: what each node, in its final state, refuses it for, and the
    /// verdict of the node that came closest.
    fn unplaced(&self, idx: usize, ledgers: &mut [Ledger]) -> Unplaced {
        let deployment = &self.requests[idx];
        let mut refusals = BTreeMap::new();
        let message = self.invalid[idx].clone();
        let mut best_node = None;
        let mut workloads = Vec::new();
        if message.is_some() {
            refusals.insert("invalid".to_string(), self.base.len());
        } else {
            let demand = self.demands[idx].unwrap_or_default();
            let mut best: Option<((usize, u64), usize)> = None;
            for (node, ledger) in ledgers.iter_mut().enumerate() {
                let refused = totals_refusal(ledger, &demand);
                let outcome = if refused.is_empty() { probe_whole(ledger, deployment) } else { Err(refused) };
                let resources: BTreeSet<String> = outcome.err().unwrap_or_default().into_iter().collect();
                let rank = (resources.len(), scale(deficit(&ledger.usage().free, &demand)));
                if best.is_none_or(|(closest, _)| rank < closest) {
                    best = Some((rank, node));
                }
                for resource in resources {
                    *refusals.entry(resource).or_insert(0) += 1;
                }
            }
            if let Some((_, node)) = best {
                let ledger = &mut ledgers[node];
                let (verdict, undo) = ledger.admit_whole(deployment);
                ledger.undo(undo);
                if let DeploymentVerdict::Judged(verdicts) = verdict {
                    workloads =
                        verdicts.into_iter().filter(|it| !it.verdict.is_admit()).map(WorkloadReport::judged).collect();
                }
                best_node = Some(self.farm.nodes[node].name.clone());
            }
        }
        Unplaced {
            twin_id: deployment.twin_id,
            contract_id: deployment.contract_id,
            refusals,
            message,
            best_node,
            workloads,
        }
    }
}

#[cfg(feature = "highs")]
fn solver() -> impl good_lp::Solver<Model = good_lp::solvers::highs::HighsProblem> {
    good_lp::highs
}

#[cfg(not(feature = "highs"))]
fn solver() -> impl good_lp::Solver<Model = good_lp::solvers::microlp::MicroLpProblem> {
    good_lp::microlp
}

/// The pool of each disk of a deployment that a ledger holds.
fn pools(ledger: &Ledger, deployment: &Deployment) -> BTreeMap<String, String> {
    deployment
        .workloads
        .iter()
        .filter_map(|wl| {
            let reservation = ledger.reservation(&deployment.workload_id(&wl.name))?;
            Some((wl.name.clone(), ledger.assignment(reservation).pool?))
        })
        .collect()
}

/// Places `requests` on the nodes of `farm`.
pub fn place(farm: &Farm, requests: &[Deployment], options: &PlacementOptions) -> PlaceReport {
    let instance = Instance::new(farm, requests);
    let objective = options.objective;
    // Placing as many as possible comes first under every objective: the objective's own heuristic
    // (largest first for min-nodes) can strand small deployments that the smallest-first one places,
    // so both run and the better by (placed, objective) is kept.
    let (mut heuristic, mut heuristic_ledgers) = instance.heuristic(objective);
    let mut heuristic_score = instance.score(objective, &heuristic, &heuristic_ledgers);
    if objective != Objective::MaxPlaced {
        let (most, most_ledgers) = instance.heuristic(Objective::MaxPlaced);
        let most_score = instance.score(objective, &most, &most_ledgers);
        if most_score.0 < heuristic_score.0 || (most_score.0 == heuristic_score.0 && most_score.1 < heuristic_score.1) {
            (heuristic, heuristic_ledgers, heuristic_score) = (most, most_ledgers, most_score);
        }
    }
    let (mut assignment, mut ledgers, mut solver_name) = (heuristic, heuristic_ledgers, "heuristic");
    // A proven-optimal MILP answer that every ledger accepts is a bound for the real problem too: the
    // MILP only relaxes disk packing, so the real optimum cannot beat it.
    let mut proven_score = None;
    let milp = match instance.milp(options, &assignment) {
        Err(why) => why,
        Ok((candidate, optimal)) => {
            let (verified, verified_ledgers) = instance.verify(&candidate);
            let score = instance.score(objective, &verified, &verified_ledgers);
            if optimal && verified == candidate {
                proven_score = Some(score);
            }
            let better =
                score.0 < heuristic_score.0 || (score.0 == heuristic_score.0 && score.1 < heuristic_score.1 - 1e-9);
            if better {
                (assignment, ledgers, solver_name) = (verified, verified_ledgers, "milp");
            }
            let proof = if optimal { "proved optimal" } else { "stopped at the time limit without a proof" };
            let kept = if better { "its answer is kept" } else { "it found nothing better than the heuristic" };
            format!("ran: {proof}; {kept}")
        }
    };
    let kept_score = instance.score(objective, &assignment, &ledgers);
    let objective_value = instance.value(objective, &assignment, &ledgers);
    let mut lower_bound = instance.lower_bound(objective, &assignment);
    if let Some(proven) = proven_score
        && proven.0 == kept_score.0
    {
        lower_bound = lower_bound.max(proven.1);
    }
    let optimal = objective_value - lower_bound < 1e-9;
    let assignments = requests
        .iter()
        .zip(&assignment)
        .map(|(dl, node)| Assignment {
            twin_id: dl.twin_id,
            contract_id: dl.contract_id,
            node: node.map(|n| farm.nodes[n].name.clone()),
            pools: node.map(|n| pools(&ledgers[n], dl)).unwrap_or_default(),
        })
        .collect();
    let unplaced = (0..requests.len())
        .filter(|&idx| assignment[idx].is_none())
        .map(|idx| instance.unplaced(idx, &mut ledgers))
        .collect();
    let nodes = ledgers
        .iter()
        .enumerate()
        .map(|(n, ledger)| NodeReport {
            name: farm.nodes[n].name.clone(),
            placed: assignment.iter().filter(|&&node| node == Some(n)).count(),
            utilization: utilization(ledger),
            fragmentation: fragmentation(ledger),
        })
        .collect();
    PlaceReport {
        assignments,
        nodes_used: assignment.iter().flatten().collect::<BTreeSet<_>>().len(),
        objective,
        objective_value,
        lower_bound,
        gap: (objective_value - lower_bound).max(0.0),
        optimal,
        solver: solver_name,
        milp,
        heuristic_value: heuristic_score.1,
        unplaced,
        nodes,
    }
}
