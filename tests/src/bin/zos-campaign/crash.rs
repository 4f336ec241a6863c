//! Crashes: a worker process (this binary, `worker`) deploys, deletes and runs jobs against a store on
//! disk and says on stdout what was accepted once it is durable; it is SIGKILLed at a random point, and
//! the store is reopened and checked: no accepted deployment lost, the invariants hold (no workload
//! counted twice, no reservation leaked). Then the next worker goes on from there.

use crate::invariant::violations;
use crate::tenant::{self, Flaky};
use anyhow::Context;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zos_provisiond::Outcome;
use zos_types::Timestamp;

/// What the crash run did.
pub struct Crashes {
    /// SIGKILLs delivered.
    pub kills: u64,
    /// Deployments the workers said were accepted.
    pub accepted: u64,
    /// Deletes the workers asked for.
    pub deleted: u64,
    /// Broken invariants and lost deployments seen after the restarts.
    pub violations: Vec<String>,
    /// How long the run took.
    pub elapsed: Duration,
}

/// The worker: creates deployments from contract `first` on, deletes one in four, runs a job after each
/// step; prints `accepted TWIN CONTRACT` once a create is durable, and `deleting TWIN CONTRACT` before it
/// asks for a delete. Runs until killed.
pub fn worker(store: &std::path::Path, first: u64, seed: u64) -> anyhow::Result<()> {
    let engine = tenant::engine(store)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let managers = Flaky::new(5);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = std::io::stdout().lock();
    let mut live = Vec::new();
    for contract in first.. {
        let twin = u32::try_from(contract % u64::from(tenant::TWINS)).unwrap_or(0) + 1;
        if let Ok(Outcome::Accepted(_)) =
            engine.create(twin, tenant::deployment(twin, contract, &mut rng), Timestamp(1_700_000_000))
        {
            writeln!(out, "accepted {twin} {contract}")?;
            out.flush()?;
            live.push((twin, contract));
        }
        if contract % 4 == 0 && !live.is_empty() {
            let (twin, contract) = live.swap_remove(rng.usize(..live.len()));
            // Said before it is asked: a kill between the delete and the line must not read as a loss.
            writeln!(out, "deleting {twin} {contract}")?;
            out.flush()?;
            engine.deprovision(twin, contract, "campaign")?;
        }
        runtime.block_on(engine.run_one(&managers, Timestamp(1_700_000_001)))?;
    }
    Ok(())
}

/// Kills `kills` workers, each after a random 5 to 80 ms of work past its start, checking after each.
pub fn run(dir: &std::path::Path, kills: u64, seed: u64) -> anyhow::Result<Crashes> {
    let exe = std::env::current_exe().context("the campaign's own binary")?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut accepted: BTreeSet<(u32, u64)> = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    let mut found = Vec::new();
    let mut next = 1u64;
    let started = Instant::now();
    for kill in 0..kills {
        let mut child = Command::new(&exe)
            .args(["worker", "--store"])
            .arg(dir)
            .args(["--first", &next.to_string(), "--seed", &seed.wrapping_add(kill).to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting a worker")?;
        let stdout = child.stdout.take().context("the worker's stdout")?;
        let reader =
            std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<_>>());
        // Let it open the store and get going, then kill it wherever it is.
        std::thread::sleep(Duration::from_millis(rng.u64(5..=80)).saturating_add(Duration::from_millis(30)));
        child.kill().context("SIGKILL")?;
        child.wait().context("reaping the worker")?;
        let lines = reader.join().map_err(|_| anyhow::anyhow!("the reader panicked"))?;
        for line in lines {
            let mut words = line.split(' ');
            let (what, twin, contract) = (words.next(), words.next(), words.next());
            let (Some(twin), Some(contract)) =
                (twin.and_then(|t| t.parse().ok()), contract.and_then(|c| c.parse().ok()))
            else {
                continue;
            };
            let set = if what == Some("deleting") { &mut deleted } else { &mut accepted };
            set.insert((twin, contract));
            next = next.max(contract.saturating_add(1));
        }
        next = next.saturating_add(1);
        let engine = tenant::engine(dir)?;
        found.extend(violations(&engine).into_iter().map(|it| format!("after kill {}: {it}", kill + 1)));
        for &(twin, contract) in accepted.difference(&deleted) {
            if engine.store().get(twin, contract).is_err() {
                found.push(format!("after kill {}: accepted deployment {twin}-{contract} is lost", kill + 1));
            }
        }
    }
    Ok(Crashes {
        kills,
        accepted: accepted.len() as u64,
        deleted: deleted.len() as u64,
        violations: found,
        elapsed: started.elapsed(),
    })
}
