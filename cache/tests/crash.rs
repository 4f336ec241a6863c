//! Crash test: a child process runs a long random sequence of user actions against the store, each one
//! a durable commit; the parent kills it with SIGKILL at random moments, reopens the store and checks
//! every invariant. Runs in the normal suite, in bounded time (about 250 kills).

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zos_cache::{Job, JobOp, Store, holds_capacity};
use zos_planner::Ledger;
use zos_types::scenario::{NodeSpec, Policy};
use zos_types::{Deployment, ResultState, Timestamp, Workload, WorkloadId, WorkloadResult};

const CHILD_ENV: &str = "ZOS_CACHE_CRASH_CHILD_DIR";
const KILLS: usize = 250;
const GIB: u64 = 1 << 30;

fn node() -> NodeSpec {
    serde_json::from_value(json!({"cru": 64, "mru": 256 * GIB,
        "pools": [{"name": "ssd0", "kind": "ssd", "size": 2048 * GIB}, {"name": "ssd1", "kind": "ssd", "size": 1024 * GIB},
                  {"name": "hdd0", "kind": "hdd", "size": 4096 * GIB}],
        "public_ips": ["203.0.113.10/24", "203.0.113.11/24", "203.0.113.12/24", "203.0.113.13/24"]}))
    .expect("node")
}

/// A small xorshift generator: the test needs variety, not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn now() -> Timestamp {
    Timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs() as i64))
}

fn workload(name: &str, value: serde_json::Value, version: u32) -> Workload {
    let mut wl: Workload = serde_json::from_value(value).expect("workload");
    wl.name = name.into();
    wl.version = version;
    wl.result = WorkloadResult { created: now(), state: ResultState::Init, ..WorkloadResult::default() };
    wl
}

fn random_workload(rng: &mut Rng, name: &str, version: u32) -> Workload {
    let value = match rng.below(4) {
        0 => json!({"type": "zmount", "data": {"size": (1 + rng.below(200)) * GIB}}),
        1 => json!({"type": "zdb", "data": {"size": (1 + rng.below(900)) * GIB, "mode": "seq"}}),
        2 => json!({"type": "ip", "data": {"v4": true}}),
        _ => json!({"type": "zmachine", "data": {"network": {"interfaces": [{"network": "net", "ip": "10.1.1.2"}]},
                "compute_capacity": {"cpu": 1 + rng.below(8), "memory": (1 + rng.below(16)) * GIB}}}),
    };
    workload(name, value, version)
}

fn rebuild_ledger(store: &Store) -> Ledger {
    let mut ledger = Ledger::new(&node(), Policy::default());
    for (id, record) in store.reservations().expect("reservations") {
        ledger.restore_record(&id, &record).expect("a stored reservation names this node's resources");
    }
    ledger
}

/// One random user action, committed durably. Returns false when there was nothing to do.
fn act(store: &Store, ledger: &mut Ledger, rng: &mut Rng) -> bool {
    match rng.below(10) {
        // Create a deployment: admission, then deployment + workloads + reservations + job in one commit.
        0..=3 => {
            let twin = 1 + rng.below(4) as u32;
            let contract = store.generation().expect("generation") + 1;
            let mut dl = Deployment { twin_id: twin, contract_id: contract, ..Deployment::default() };
            dl.workloads.push(workload("net", json!({"type": "network", "data": {}}), 0));
            for i in 0..1 + rng.below(3) {
                dl.workloads.push(random_workload(rng, &format!("w{i}"), 0));
            }
            let mut txn = store.begin();
            let mut admitted = Vec::new();
            for wl in &dl.workloads {
                let id = dl.workload_id(&wl.name);
                if ledger.admit(&id, wl).is_admit() {
                    let record = ledger.record(ledger.reservation(&id).expect("admitted"));
                    txn.reserve(twin, contract, &wl.name, &record).expect("reserve");
                    admitted.push(id);
                } else {
                    return false; // not an atomic-policy test: skip deployments that do not fit whole
                }
            }
            let created = txn.create(&dl).and_then(|()| {
                txn.enqueue(&Job { op: JobOp::Provision, twin, contract, reason: String::new(), remove: Vec::new() })
            });
            if created.is_err() || txn.commit().is_err() {
                for id in admitted {
                    ledger.release(&id);
                }
                return false;
            }
            true
        }
        // Ask for a deletion.
        4 => {
            let Some((twin, contract)) = pick_deployment(store, rng) else { return false };
            let mut txn = store.begin();
            txn.enqueue(&Job { op: JobOp::Deprovision, twin, contract, reason: "test".into(), remove: Vec::new() })
                .expect("enqueue");
            txn.commit().is_ok()
        }
        // Update: add a workload, bump the version, queue the job.
        5 => {
            let Some((twin, contract)) = pick_deployment(store, rng) else { return false };
            let mut dl = store.get(twin, contract).expect("get");
            dl.version += 1;
            let wl = random_workload(rng, &format!("u{}", dl.version), dl.version);
            let id = dl.workload_id(&wl.name);
            if !ledger.admit(&id, &wl).is_admit() {
                return false;
            }
            let record = ledger.record(ledger.reservation(&id).expect("admitted"));
            let mut txn = store.begin();
            txn.update_header(&dl).expect("header");
            txn.add_workload(twin, contract, &wl).expect("add");
            txn.reserve(twin, contract, &wl.name, &record).expect("reserve");
            txn.enqueue(&Job { op: JobOp::Update, twin, contract, reason: String::new(), remove: Vec::new() })
                .expect("enqueue");
            if txn.commit().is_err() {
                ledger.release(&id);
                return false;
            }
            true
        }
        // Run the oldest job; its results and its acknowledgement commit together.
        _ => {
            let Some((job_id, job)) = store.peek_job().expect("peek") else { return false };
            let mut txn = store.begin();
            txn.ack(job_id).expect("ack");
            let mut released = Vec::new();
            match job.op {
                JobOp::Deprovision => {
                    if let Ok(dl) = store.get(job.twin, job.contract) {
                        txn.delete(job.twin, job.contract).expect("delete");
                        released.extend(dl.workloads.iter().map(|wl| dl.workload_id(&wl.name)));
                    }
                }
                _ => {
                    if let Ok(dl) = store.get(job.twin, job.contract) {
                        for mut wl in dl.workloads.clone() {
                            if wl.result.state != ResultState::Init {
                                continue;
                            }
                            // One workload in eight fails, and a failed workload releases its reservation.
                            let failed = rng.below(8) == 0;
                            wl.result = WorkloadResult {
                                created: now(),
                                state: if failed { ResultState::Error } else { ResultState::Ok },
                                error: if failed { "simulated failure".into() } else { String::new() },
                                data: serde_json::Value::Null,
                            };
                            txn.record(job.twin, job.contract, &wl).expect("record");
                            if failed {
                                txn.release(job.twin, job.contract, &wl.name).expect("release");
                                released.push(dl.workload_id(&wl.name));
                            }
                        }
                    }
                }
            }
            if txn.commit().is_err() {
                return false;
            }
            for id in released {
                ledger.release(&id);
            }
            true
        }
    }
}

fn pick_deployment(store: &Store, rng: &mut Rng) -> Option<(u32, u64)> {
    let twin = 1 + rng.below(4) as u32;
    let contracts = store.by_twin(twin).expect("by twin");
    let contract = *contracts.get(rng.below(contracts.len() as u64) as usize)?;
    Some((twin, contract))
}

/// The child: acts until killed, printing `ack <generation>` after each durable commit.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let seed: u64 = std::env::var("ZOS_CACHE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let store = Store::open(&dir).expect("open");
    let mut ledger = rebuild_ledger(&store);
    let mut rng = Rng(seed | 1);
    let mut stdout = std::io::stdout();
    for _ in 0..100_000 {
        if act(&store, &mut ledger, &mut rng) {
            let _ = writeln!(stdout, "ack {}", store.generation().expect("generation"));
            let _ = stdout.flush();
        }
    }
}

fn check_invariants(dir: &std::path::Path, last_ack: Option<u64>) -> u64 {
    let store = Store::open(dir).expect("reopen after SIGKILL");
    let generation = store.generation().expect("generation");
    if let Some(acked) = last_ack {
        assert!(generation >= acked, "acknowledged commit {acked} lost (store at {generation})");
        assert!(generation <= acked + 1, "store at {generation}, beyond the one commit in flight after {acked}");
    }
    let drifts = store.check_consistency().expect("check");
    assert!(drifts.is_empty(), "invariants broken after a kill: {drifts:#?}");
    // The ledger rebuilt from the reservations equals the one the workload states imply.
    let rebuilt = rebuild_ledger(&store);
    let mut implied = Ledger::new(&node(), Policy::default());
    for twin in store.twins().expect("twins") {
        for contract in store.by_twin(twin).expect("by twin") {
            for wl in store.get(twin, contract).expect("get").workloads {
                if holds_capacity(wl.result.state) {
                    implied.hold(&WorkloadId::new(twin, contract, &wl.name), &wl);
                }
            }
        }
    }
    let (a, b) = (rebuilt.usage(), implied.usage());
    assert_eq!((a.used.cru, a.used.mru, a.used.ipv4u), (b.used.cru, b.used.mru, b.used.ipv4u), "ledger drift");
    assert_eq!(rebuilt.len(), implied.len(), "reservation count drift");
    generation
}

#[test]
fn sigkill_at_random_moments_never_breaks_an_invariant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state");
    drop(Store::open(&path).expect("create"));
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let (mut total_acks, mut generation) = (0usize, 0u64);
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, &path)
            .env("ZOS_CACHE_CRASH_SEED", (rng.next() ^ round as u64).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        // Some kills land during start-up and recovery, most during the work.
        let delay = if round % 5 == 0 { rng.below(20) } else { 30 + rng.below(120) };
        std::thread::sleep(Duration::from_millis(delay));
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("SIGKILL");
        let mut output = String::new();
        child.stdout.take().expect("stdout").read_to_string(&mut output).expect("read child output");
        child.wait().expect("reap");
        let acks: Vec<u64> = BufReader::new(output.as_bytes())
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| line.strip_prefix("ack ").and_then(|n| n.parse().ok()))
            .collect();
        total_acks += acks.len();
        generation = check_invariants(&path, acks.last().copied()).max(generation);
    }
    assert!(total_acks > KILLS, "the children made too little progress to test anything ({total_acks} commits)");
    eprintln!(
        "{KILLS} kills, {total_acks} acknowledged commits, final generation {generation}, {:?}",
        started.elapsed()
    );
}
