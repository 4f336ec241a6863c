//! The door as the node fills: `Engine::create` latency (p50, p99) of a 3-workload deployment with
//! 1 000, 10 000 and 100 000 deployments already stored, the store on /dev/shm when it exists (the
//! engine's CPU cost rather than the disk's fsync); then durable admissions per second in-process with
//! 1, 8 and 64 concurrent clients, the store on the temporary directory's disk (group commit: the
//! decisions made while an fsync runs share the next one), 12 800 creates split between the clients,
//! enough for the store's journal to be checkpointed once. Run:
//! `cargo bench -p zos-provisiond --bench door` (about a minute; `ZOS_BENCH_MAX=10000` stops earlier,
//! `ZOS_BENCH_MAX=0` measures only the throughput, `ZOS_BENCH_CREATES=3200` makes it shorter,
//! `ZOS_BENCH_CLIENTS=64` measures only that client count). Each throughput line also gives the CPU
//! time the process spent per create (every thread, sled's included) and how many cores were busy, and
//! the last line what validation and the signature check alone cost: the floor of a create's CPU.

mod fixture;

use fixture::{deployment, open_engine as open};
use std::time::{Duration, Instant};
use zos_provisiond::Outcome;
use zos_types::{Deployment, Timestamp};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Durable admissions per second with `clients` threads creating `total` deployments between them.
fn throughput(clients: u64, total: u64) -> fixture::Throughput {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path());
    let per_client = total / clients;
    let batches: Vec<Vec<Deployment>> =
        (0..clients).map(|client| (0..per_client).map(|i| deployment(1 + client * per_client + i)).collect()).collect();
    let timing = fixture::Timing::start();
    std::thread::scope(|scope| {
        for batch in batches {
            let engine = &engine;
            scope.spawn(move || {
                for dl in batch {
                    let Ok(Outcome::Accepted(_)) = engine.create(1, dl, Timestamp(1)) else { panic!("refused") };
                }
            });
        }
    });
    timing.finish(per_client * clients)
}

/// What a create costs before the door, on one thread: validation and the signature check, which
/// every create needs whatever the store.
fn check_cost() -> Duration {
    let twins = fixture::twins();
    let deployments: Vec<Deployment> = (1..=2_000).map(deployment).collect();
    let started = Instant::now();
    for dl in &deployments {
        dl.validate().expect("valid");
        dl.verify(&twins).expect("signed");
    }
    started.elapsed() / deployments.len() as u32
}

fn main() {
    let base = if std::path::Path::new("/dev/shm").is_dir() { Some("/dev/shm") } else { None };
    let dir = match base {
        Some(base) => tempfile::tempdir_in(base),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    let engine = open(dir.path());
    let max: u64 = std::env::var("ZOS_BENCH_MAX").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let deployments: Vec<Deployment> = (1..=max + 1_000).map(deployment).collect();
    let mut next = deployments.into_iter();
    let mut stored = 0u64;
    println!("store on {}", base.unwrap_or("the temporary directory"));
    println!("{:>10}  {:>10}  {:>10}", "stored", "p50", "p99");
    let mut first_p50 = None;
    for level in [1_000u64, 10_000, 100_000].into_iter().filter(|level| *level <= max) {
        while stored < level {
            let dl = next.next().expect("deployment");
            let Ok(Outcome::Accepted(_)) = engine.create(1, dl, Timestamp(1)) else { panic!("refused") };
            stored += 1;
        }
        let mut times = Vec::with_capacity(500);
        for _ in 0..500 {
            let dl = next.next().expect("deployment");
            let started = Instant::now();
            let Ok(Outcome::Accepted(_)) = engine.create(1, dl, Timestamp(1)) else { panic!("refused") };
            times.push(started.elapsed());
            stored += 1;
        }
        times.sort();
        let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
        let ratio = first_p50.map_or(String::new(), |first: Duration| {
            format!("  ({:.2}x the 1 000 figure)", p50.as_secs_f64() / first.as_secs_f64())
        });
        first_p50.get_or_insert(p50);
        println!("{level:>10}  {:>10.3?}  {:>10.3?}{ratio}", p50, p99);
    }
    let creates = fixture::setting("ZOS_BENCH_CREATES", 12_800) as u64;
    println!(
        "\ndurable admissions per second, in-process, store on {}, {creates} creates",
        std::env::temp_dir().display()
    );
    for clients in fixture::client_counts(&[1, 8, 64]).into_iter().map(|count| count as u64) {
        let run = throughput(clients, creates);
        println!(
            "{clients:>4} clients: {:>8.0} per second, {:>6.1?} of CPU per create, {:.2} cores busy",
            run.per_second, run.cpu_per_create, run.cores
        );
    }
    let (check, cores) = (check_cost(), std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!(
        "validation and signature check alone: {check:.1?} per create on one thread; {cores} cores doing \
         nothing else could check {:.0} per second",
        cores as f64 / check.as_secs_f64()
    );
}
