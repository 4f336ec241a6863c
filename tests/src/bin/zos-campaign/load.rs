//! Concurrency: clients deploying, updating, pausing, resuming and deleting against one engine over a
//! real store on disk for a bounded time, with the job loop running through modules that fail now and
//! then. A checker stops the world (no request in flight) every few milliseconds and checks the
//! invariants; so does the end of the run.

use crate::invariant::violations;
use crate::tenant::{self, Flaky, TWINS};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};
use zos_provisiond::{Engine, Outcome, TwinRegistry};
use zos_types::Timestamp;

/// What one level of concurrency did.
pub struct Level {
    /// Concurrent clients.
    pub clients: usize,
    /// Requests answered, by operation and outcome (`create accepted`, `update exists`, ...).
    pub outcomes: BTreeMap<String, u64>,
    /// Latency of every request, sorted.
    pub latencies: Vec<Duration>,
    /// How long the clients ran.
    pub elapsed: Duration,
    /// World-stopping checks made.
    pub checks: u64,
    /// Broken invariants seen, with when.
    pub violations: Vec<String>,
    /// Jobs the job loop ran.
    pub jobs: u64,
}

fn operation(
    engine: &Engine<TwinRegistry>,
    twin: u32,
    rng: &mut fastrand::Rng,
    next_contract: &AtomicU64,
    mine: &mut Vec<u64>,
) -> String {
    let now = Timestamp(1_700_000_000);
    let pick = |rng: &mut fastrand::Rng, mine: &Vec<u64>| (!mine.is_empty()).then(|| mine[rng.usize(..mine.len())]);
    let roll = rng.u8(0..100);
    let (name, outcome) = match (roll, pick(rng, mine)) {
        (0..40, _) | (_, None) => {
            let contract = next_contract.fetch_add(1, Ordering::Relaxed);
            let outcome = engine.create(twin, tenant::deployment(twin, contract, rng), now);
            if matches!(outcome, Ok(Outcome::Accepted(_))) {
                mine.push(contract);
            }
            ("create", outcome.map(|it| matches!(it, Outcome::Accepted(_))))
        }
        (40..60, Some(contract)) => {
            let outcome = match engine.store().get(twin, contract) {
                Ok(stored) => engine.update(twin, tenant::resized(stored, rng.u64(1..=60)), now),
                Err(err) => Err(err.into()),
            };
            ("update", outcome.map(|it| matches!(it, Outcome::Accepted(_))))
        }
        (60..70, Some(contract)) => ("pause", engine.pause(twin, contract).map(|_| true)),
        (70..75, Some(contract)) => ("resume", engine.resume(twin, contract).map(|_| true)),
        (_, Some(contract)) => {
            mine.retain(|it| *it != contract);
            ("delete", engine.deprovision(twin, contract, "campaign").map(|_| true))
        }
    };
    let outcome = match outcome {
        Ok(true) => "accepted".to_string(),
        Ok(false) => "refused".to_string(),
        Err(err) => err.code().to_string(),
    };
    format!("{name} {outcome}")
}

/// Runs `clients` clients for `duration` against a fresh engine in `dir`.
pub fn run(dir: &std::path::Path, clients: usize, duration: Duration, seed: u64) -> anyhow::Result<Level> {
    let engine = tenant::engine(dir)?;
    let gate = RwLock::new(());
    let stop = AtomicBool::new(false);
    let next_contract = AtomicU64::new(1);
    let results: Mutex<(BTreeMap<String, u64>, Vec<Duration>)> = Mutex::default();
    let found: Mutex<Vec<String>> = Mutex::default();
    let (checks, jobs) = (AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for client in 0..clients {
            let (engine, gate, stop, next_contract, results) = (&engine, &gate, &stop, &next_contract, &results);
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(client as u64));
                let twin = u32::try_from(client).unwrap_or(0) % TWINS + 1;
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let _turn = gate.read().unwrap_or_else(|p| p.into_inner());
                    let asked = Instant::now();
                    let outcome = operation(engine, twin, &mut rng, next_contract, &mut mine);
                    let took = asked.elapsed();
                    let mut results = results.lock().unwrap_or_else(|p| p.into_inner());
                    *results.0.entry(outcome).or_insert(0) += 1;
                    results.1.push(took);
                }
            });
        }
        let (engine, gate, stop, jobs) = (&engine, &gate, &stop, &jobs);
        scope.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let Ok(runtime) = runtime else { return };
            let managers = Flaky::new(7);
            while !stop.load(Ordering::Relaxed) {
                let ran = {
                    let _turn = gate.read().unwrap_or_else(|p| p.into_inner());
                    runtime.block_on(engine.run_one(&managers, Timestamp(1_700_000_001)))
                };
                match ran {
                    Ok(true) => {
                        jobs.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        let (found, checks) = (&found, &checks);
        scope.spawn(move || {
            while started.elapsed() < duration {
                std::thread::sleep(Duration::from_millis(25));
                let _world = gate.write().unwrap_or_else(|p| p.into_inner());
                checks.fetch_add(1, Ordering::Relaxed);
                let at = started.elapsed();
                found.lock().unwrap_or_else(|p| p.into_inner()).extend(
                    violations(engine)
                        .into_iter()
                        .map(|it| format!("{clients} clients, {:.2} s: {it}", at.as_secs_f64())),
                );
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
    let elapsed = started.elapsed();
    let mut found = found.into_inner().unwrap_or_else(|p| p.into_inner());
    found.extend(violations(&engine).into_iter().map(|it| format!("{clients} clients, at the end: {it}")));
    drop(engine);
    // A reopen rebuilds the same ledger from the store.
    let reopened = tenant::engine(dir)?;
    found.extend(violations(&reopened).into_iter().map(|it| format!("{clients} clients, after a reopen: {it}")));
    let (outcomes, mut latencies) = results.into_inner().unwrap_or_else(|p| p.into_inner());
    latencies.sort();
    Ok(Level {
        clients,
        outcomes,
        latencies,
        elapsed,
        checks: checks.into_inner().saturating_add(2),
        violations: found,
        jobs: jobs.into_inner(),
    })
}
