//! `zos-campaign`: the reliability campaign against the node's engine, bounded in time: concurrency
//! with a stop-the-world invariant checker, SIGKILLs at random points with a check after every restart,
//! forged, replayed and cross-twin requests, a mutation fuzz of every input read from outside, a whole
//! node of real daemons under load with SIGKILLs of each daemon and of Redis, and injected faults (Redis
//! restarts, a pool disk gone, a hub down or slow, a full cache disk, a call past its deadline, clock
//! jumps). It writes docs/RELIABILITY.md (`--out`) and exits 1 when any invariant was broken or any input
//! made a panic or a hang.
//!
//! `zos-campaign --quick` is what CI runs (about three minutes); the full run (no `--quick`, about 40
//! minutes on 2 cores) writes docs/RELIABILITY.md. `worker` is
//! the process the crash run kills, `filler` the one that fills the cache disk.

mod crash;
mod fault;
mod fuzz;
/// The guest the vmd tests boot (a busybox initramfs on the cloud kernel): the node's zmachines.
#[path = "../../../../vmd/tests/support/mod.rs"]
mod guest;
/// flistd's test hub: it serves the zmachines' flist.
#[path = "../../../../flistd/tests/support/hub.rs"]
mod hub;
mod identity;
mod invariant;
mod load;
mod node;
mod report;
mod tenant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "zos-campaign", version, about = "Reliability campaign: nothing lost, double-booked or let in")]
struct Cli {
    /// The short run CI makes.
    #[arg(long)]
    quick: bool,
    /// Write the report (Markdown) here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The fuzz corpus.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))]
    corpus: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The process the crash run kills (not for people).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        first: u64,
        #[arg(long)]
        seed: u64,
    },
    /// The process the disk-full fault runs over a small tmpfs (not for people).
    #[command(hide = true)]
    Filler {
        #[arg(long)]
        store: PathBuf,
    },
}

fn campaign(cli: &Cli) -> anyhow::Result<report::Run> {
    let scratch = tempfile::tempdir_in(std::env::temp_dir()).context("a scratch directory")?;
    let (seconds, kills, inputs) = if cli.quick { (2, 25, 2_000) } else { (20, 200, 50_000) };
    let mut levels = Vec::new();
    for clients in [1usize, 8, 64] {
        eprintln!("concurrency: {clients} clients for {seconds} s");
        let dir = scratch.path().join(format!("load-{clients}"));
        levels.push(load::run(&dir, clients, Duration::from_secs(seconds), cli.seed)?);
    }
    eprintln!("crashes: {kills} SIGKILLs");
    let crashes = crash::run(&scratch.path().join("crash"), kills, cli.seed)?;
    eprintln!("identity: forged, replayed and cross-twin requests");
    let identity = identity::run(&scratch.path().join("identity"), if cli.quick { 40 } else { 400 }, cli.seed)?;
    eprintln!("bad input: {inputs} inputs per target");
    let targets = fuzz::all(&cli.corpus, inputs, cli.seed)?;
    let (node_kills, times) = if cli.quick { (10, 2) } else { (200, 10) };
    eprintln!("node: {node_kills} SIGKILLs of the node's daemons under load, then its faults");
    let mut node = node::run(node_kills, times, cli.seed)?;
    if let Some(why) = &node.skipped {
        eprintln!("node: skipped: {why}");
    }
    eprintln!("faults: a full cache disk, a module call past its deadline, clock jumps");
    let mut faults = fault::run(&scratch.path().join("faults"), times, cli.seed)?;
    faults.splice(0..0, std::mem::take(&mut node.faults));
    Ok(report::Run {
        mode: if cli.quick { "quick" } else { "full" },
        seed: cli.seed,
        levels,
        crashes,
        identity,
        targets,
        node,
        faults,
    })
}

fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map_or_else(|| "today".into(), |date| date.trim().to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Filler { store }) = &cli.command {
        return match fault::filler(store) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("filler: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Worker { store, first, seed }) = &cli.command {
        return match crash::worker(store, *first, *seed) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("worker: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let run = match campaign(&cli) {
        Ok(run) => run,
        Err(err) => {
            eprintln!("zos-campaign: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let text = report::markdown(&run, &today());
    let written = match &cli.out {
        Some(path) => std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    };
    if let Err(err) = written {
        eprintln!("zos-campaign: {err:#}");
        return ExitCode::from(2);
    }
    let failures = run.failures();
    for failure in &failures {
        eprintln!("VIOLATION: {failure}");
    }
    if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
