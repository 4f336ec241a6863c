//! `zos-plan bench`: the benchmark suite on the machine it runs on, as a table and as JSON with the
//! machine description, so that results from reference hardware can be compared.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::time::{Duration, Instant};
use zos_cache::{Job, JobOp, Store};
use zos_planner::Ledger;
use zos_planner::headroom::Shape;
use zos_planner::placement::{Objective, PlacementOptions, place};
use zos_planner::synthetic;
use zos_types::scenario::{NodeSpec, Policy};
use zos_types::{ReservationRecord, ResultState, Timestamp, Unit, Workload, WorkloadId, WorkloadResult};

/// The machine the suite ran on.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub threads: usize,
    pub memory_bytes: u64,
    pub kernel: String,
}

/// One measured figure.
#[derive(Debug, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub note: String,
}

/// The suite's report.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub machine: Machine,
    pub figures: Vec<Figure>,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        cpu_model: cpuinfo
            .lines()
            .find_map(|line| {
                line.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default(),
        threads: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        memory_bytes: meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            .saturating_mul(1024),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
    }
}

fn vm(memory_gib: u64) -> Workload {
    Shape::Zmachine { cpu: 2, memory: Unit::gib(memory_gib), disk: Unit::ZERO }.workload()
}

fn big_node() -> NodeSpec {
    let mut node = synthetic::farm(1).nodes.remove(0).node;
    node.cru = 1 << 40;
    node.mru = Unit(1 << 62);
    for pool in &mut node.pools {
        pool.size = Unit(1 << 60);
    }
    node
}

/// Median of `rounds` timings of `f`, each over `iterations` calls; per call.
fn per_call(rounds: usize, iterations: u32, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                f();
            }
            started.elapsed() / iterations
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn store_deployment(contract: u64) -> zos_types::Deployment {
    let mut dl = synthetic::deployments(1, contract).remove(0);
    dl.twin_id = contract as u32;
    dl.contract_id = contract;
    for wl in &mut dl.workloads {
        wl.result = WorkloadResult { created: Timestamp(1), state: ResultState::Init, ..WorkloadResult::default() };
    }
    dl
}

fn commit_deployment(txn: &mut zos_cache::Txn<'_>, contract: u64, with_job: bool) -> anyhow::Result<()> {
    let dl = store_deployment(contract);
    let records = dl
        .workloads
        .iter()
        .map(|wl| (wl.name.clone(), ReservationRecord { capacity: wl.capacity(), ..Default::default() }));
    txn.create_prepared(zos_cache::Prepared::new(&dl)?, records)?;
    if with_job {
        txn.enqueue(&Job {
            op: JobOp::Provision,
            twin: dl.twin_id,
            contract,
            reason: String::new(),
            remove: Vec::new(),
        })?;
    }
    Ok(())
}

/// Runs the suite. `quick` uses smaller sizes (for tests and a first look).
pub fn run(quick: bool) -> anyhow::Result<BenchReport> {
    let sizes: &[usize] = if quick { &[1_000, 10_000] } else { &[1_000, 100_000, 1_000_000] };
    let placements: &[(usize, usize)] = if quick { &[(50, 500)] } else { &[(500, 5_000), (5_000, 50_000)] };
    let steps = sizes.len() + placements.len() + 3;
    let progress = ProgressBar::new(steps as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut figures = Vec::new();

    for &n in sizes {
        progress.set_message(format!("admission with {n} reservations"));
        let mut ledger = Ledger::new(&big_node(), Policy::default());
        let held = vm(1);
        for i in 0..n {
            ledger.hold(&WorkloadId::new(1, i as u64, "vm"), &held);
        }
        let workload = vm(2);
        let id = WorkloadId::new(2, 1, "vm");
        let took = per_call(9, 20_000, || {
            std::hint::black_box(ledger.admit(&id, &workload));
            ledger.release(&id);
        });
        figures.push(Figure {
            name: format!("admit+release, {n} reservations"),
            value: took.as_nanos() as f64,
            unit: "ns",
            note: "one VM: memory, CPU, root-disk placement; median of 9 rounds".into(),
        });
        progress.inc(1);
    }

    progress.set_message("durable commits");
    let dir = tempfile::tempdir().context("temporary directory")?;
    let store = Store::open(dir.path().join("commits")).context("opening the store")?;
    let commits = if quick { 100 } else { 1_000 };
    let started = Instant::now();
    for contract in 1..=commits {
        let mut txn = store.begin();
        commit_deployment(&mut txn, contract, true)?;
        txn.commit()?;
    }
    figures.push(Figure {
        name: "durable commits".into(),
        value: commits as f64 / started.elapsed().as_secs_f64(),
        unit: "commits/s",
        note: format!(
            "create deployment (3-4 workloads) + reservations + job, one journal write + fdatasync each, in {}",
            dir.path().display()
        ),
    });
    drop(store);
    progress.inc(1);

    progress.set_message("ledger rebuild");
    let deployments = if quick { 1_000 } else { 10_000 };
    let path = dir.path().join("rebuild");
    {
        let store = Store::open(&path)?;
        for chunk in (1..=deployments as u64).collect::<Vec<_>>().chunks(1_000) {
            let mut txn = store.begin();
            for &contract in chunk {
                commit_deployment(&mut txn, contract, false)?;
            }
            txn.commit()?;
        }
    }
    let started = Instant::now();
    let store = Store::open(&path)?;
    let mut ledger = Ledger::new(&big_node(), Policy::default());
    for (id, record) in store.reservations()? {
        ledger.restore_record(&id, &record)?;
    }
    figures.push(Figure {
        name: format!("open + ledger rebuild, {deployments} deployments"),
        value: started.elapsed().as_secs_f64() * 1e3,
        unit: "ms",
        note: format!("{} reservations", ledger.len()),
    });
    progress.inc(1);

    for &(nodes, requests) in placements {
        progress.set_message(format!("placement heuristic {nodes} nodes x {requests} deployments"));
        // Nodes twice the base size, so that every deployment has a place (about 13 per node).
        let farm = synthetic::farm_of(nodes, 2);
        let deployments = synthetic::deployments(requests, 42);
        let options =
            PlacementOptions { objective: Objective::MinNodes, time_limit_secs: 0.0, ..PlacementOptions::default() };
        let started = Instant::now();
        let report = place(&farm, &deployments, &options);
        let took = started.elapsed().as_secs_f64();
        figures.push(Figure {
            name: format!("place heuristic, {nodes} nodes x {requests} deployments"),
            value: took,
            unit: "s",
            note: format!(
                "{} nodes used, lower bound {}, {:.0} deployments/s",
                report.nodes_used,
                report.lower_bound,
                requests as f64 / took
            ),
        });
        progress.inc(1);
    }

    progress.set_message("placement MILP 10 nodes x 30 deployments");
    let farm = synthetic::farm(10);
    let deployments = synthetic::deployments(30, 7);
    let started = Instant::now();
    let report = place(&farm, &deployments, &PlacementOptions { time_limit_secs: 10.0, ..PlacementOptions::default() });
    figures.push(Figure {
        name: "place heuristic + MILP, 10 nodes x 30 deployments".into(),
        value: started.elapsed().as_secs_f64(),
        unit: "s",
        note: format!(
            "{} nodes (heuristic {}), lower bound {}, {}, kept {}; MILP {}",
            report.nodes_used,
            report.heuristic_value,
            report.lower_bound,
            if report.optimal { "optimal (value meets the lower bound)" } else { "not proven optimal" },
            report.solver,
            report.milp
        ),
    });
    progress.inc(1);
    progress.finish_and_clear();
    Ok(BenchReport { machine: machine(), figures })
}
