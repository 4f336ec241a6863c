//! Faults injected under light load, each followed by the invariants: the cache disk fills up (a child
//! process, the `filler`, creates over a small tmpfs until the store refuses; a poisoned sled cannot be
//! closed cleanly, so the child exits without closing it, as the daemon would), a module call that hangs
//! past its deadline, and the clock jumping back and forward by days. The faults that need the whole
//! node (Redis restarts, a pool disk, the hub) are in [`crate::node`].

use crate::invariant::violations;
use crate::tenant::{self, Flaky};
use anyhow::Context;
use serde_json::json;
use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};
use zos_provisiond::{Managers, Outcome};
use zos_types::{Deployment, ReservationRecord, ResultState, Timestamp, Workload, WorkloadId};

/// One kind of fault: how often it was injected, what happened, what broke.
pub struct Fault {
    /// The fault, in words.
    pub name: String,
    /// Times injected.
    pub injected: u64,
    /// What the node did, in words.
    pub outcome: String,
    /// Broken invariants and unclear errors.
    pub violations: Vec<String>,
}

impl Fault {
    /// A fault not injected yet.
    pub fn new(name: &str) -> Fault {
        Fault { name: name.into(), injected: 0, outcome: String::new(), violations: Vec::new() }
    }
}

/// The in-process faults, `times` of each.
pub fn run(dir: &std::path::Path, times: u64, seed: u64) -> anyhow::Result<Vec<Fault>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut faults = vec![disk_full(&dir.join("full"), times.min(3))?];
    faults.push(runtime.block_on(deadline(&dir.join("deadline"), times, seed))?);
    faults.push(runtime.block_on(clock(&dir.join("clock"), times, seed))?);
    Ok(faults)
}

/// A deployment of `twin` with a 1 MiB volume and 8 KB of metadata and description (each under the 4 KiB
/// limit): small on the node, big on disk.
fn bulky(twin: u32, contract: u64) -> anyhow::Result<Deployment> {
    let mut dl: Deployment = serde_json::from_value(json!({"twin_id": twin, "contract_id": contract,
        "metadata": "m".repeat(4000), "description": "d".repeat(4000),
        "signature_requirement": {"requests": [{"twin_id": twin, "required": true, "weight": 1}], "weight_required": 1},
        "workloads": [{"name": "v", "type": "volume", "data": {"size": 1u64 << 20}}]}))
    .context("a bulky deployment")?;
    dl.sign(twin, &tenant::key(twin));
    Ok(dl)
}

/// The filler: creates and runs jobs over `store` until five creates in a row fail; prints `accepted
/// TWIN CONTRACT` once a create is durable and `failed CODE MESSAGE` for each failure, then exits
/// without closing the store.
pub fn filler(store: &std::path::Path) -> anyhow::Result<()> {
    let engine = tenant::engine(store)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let managers = Flaky::new(0);
    let mut out = std::io::stdout().lock();
    let mut failures = 0;
    for contract in 1..=100_000u64 {
        let twin = u32::try_from(contract % u64::from(tenant::TWINS)).unwrap_or(0) + 1;
        match engine.create(twin, bulky(twin, contract)?, Timestamp(1_700_000_000)) {
            Ok(Outcome::Accepted(_)) => {
                failures = 0;
                writeln!(out, "accepted {twin} {contract}")?;
            }
            Ok(_) => writeln!(out, "refused {twin} {contract}")?,
            Err(err) => {
                failures += 1;
                writeln!(out, "failed {} {err}", err.code())?;
                if failures >= 5 {
                    break;
                }
            }
        }
        if let Err(err) = runtime.block_on(engine.run_one(&managers, Timestamp(1_700_000_001))) {
            writeln!(out, "failed {} {err}", err.code())?;
        }
        out.flush()?;
    }
    out.flush()?;
    drop(out);
    std::process::exit(0);
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &std::path::Path, size: &str, remount: bool) -> anyhow::Result<()> {
        use nix::mount::{MsFlags, mount};
        let flags = if remount { MsFlags::MS_REMOUNT } else { MsFlags::empty() };
        mount(Some("tmpfs"), path, Some("tmpfs"), flags, Some(format!("size={size}").as_str()))
            .with_context(|| format!("mounting a {size} tmpfs on {}", path.display()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The cache disk fills up, `times` times: creates get a clear error (never a panic), and after the
/// tmpfs grows a reopen holds every acknowledged create with the invariants intact.
fn disk_full(dir: &std::path::Path, times: u64) -> anyhow::Result<Fault> {
    let mut fault = Fault::new("the cache disk fills up (engine over a 6 MiB tmpfs)");
    if !nix::unistd::geteuid().is_root() {
        fault.outcome = "skipped: needs root to mount a small tmpfs (CI runs as root)".into();
        return Ok(fault);
    }
    let exe = std::env::current_exe().context("the campaign's own binary")?;
    let mut codes = BTreeSet::new();
    let mut acknowledged = 0;
    for n in 0..times {
        let mount = dir.join(format!("tmpfs-{n}"));
        std::fs::create_dir_all(&mount).context("the tmpfs mount point")?;
        Tmpfs::mount(&mount, "6m", false)?;
        let _tmpfs = Tmpfs(mount.clone());
        let store = mount.join("state");
        let out = std::process::Command::new(&exe)
            .args(["filler", "--store"])
            .arg(&store)
            .stderr(std::process::Stdio::piped())
            .output()
            .context("running the filler")?;
        fault.injected += 1;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            fault.violations.push(format!("fill {}: the filler died ({}): {}", n + 1, out.status, stderr.trim()));
        }
        let mut accepted = Vec::new();
        let mut failed = 0;
        for line in stdout.lines() {
            let words: Vec<&str> = line.splitn(3, ' ').collect();
            match words.as_slice() {
                ["accepted", twin, contract] => {
                    if let (Ok(twin), Ok(contract)) = (twin.parse::<u32>(), contract.parse::<u64>()) {
                        accepted.push((twin, contract));
                    }
                }
                ["failed", code, message] => {
                    // A refusal of the deployment itself is not the disk's.
                    failed += u64::from(*code != "invalid");
                    codes.insert(format!("`{code}`: {}", message.chars().take(80).collect::<String>()));
                }
                _ => {}
            }
        }
        if failed == 0 {
            fault.violations.push(format!("fill {}: the store never refused on a full disk", n + 1));
        }
        Tmpfs::mount(&mount, "64m", true)?;
        let engine =
            tenant::engine(&store).with_context(|| format!("fill {}: reopening after space was freed", n + 1))?;
        fault.violations.extend(violations(&engine).into_iter().map(|v| format!("fill {}: {v}", n + 1)));
        for (twin, contract) in &accepted {
            if engine.store().get(*twin, *contract).is_err() {
                fault.violations.push(format!("fill {}: acknowledged {twin}-{contract} is lost", n + 1));
            }
        }
        acknowledged += accepted.len();
    }
    fault.outcome = format!(
        "{acknowledged} creates acknowledged before the disk was full, all there after a reopen; the errors: {}",
        codes.into_iter().take(2).collect::<Vec<_>>().join("; ")
    );
    Ok(fault)
}

/// A module whose provision call sleeps `hang` behind a `deadline`, as a bus call past the client's
/// deadline does; the delete answers at once.
struct Hanging {
    hang: Duration,
    deadline: Duration,
}

impl Managers for Hanging {
    async fn provision(
        &self,
        _: &WorkloadId,
        _: &Workload,
        _: Option<&ReservationRecord>,
    ) -> Result<serde_json::Value, String> {
        match tokio::time::timeout(self.deadline, tokio::time::sleep(self.hang)).await {
            Ok(()) => Ok(serde_json::Value::Null),
            Err(_) => Err(format!("deadline of {} ms exceeded", self.deadline.as_millis())),
        }
    }

    async fn deprovision(&self, _: &WorkloadId, _: &Workload) -> Result<(), String> {
        Ok(())
    }
}

/// A module call hangs past its deadline, `times` times: while it is in flight nothing is released and
/// the invariants hold; after it the workload is in `error` naming the deadline and its capacity is back.
async fn deadline(dir: &std::path::Path, times: u64, seed: u64) -> anyhow::Result<Fault> {
    let mut fault = Fault::new("a module call hangs past its deadline");
    let engine = tenant::engine(dir)?;
    let managers = Hanging { hang: Duration::from_secs(3600), deadline: Duration::from_millis(200) };
    let mut rng = fastrand::Rng::with_seed(seed);
    let baseline = engine.counters();
    let mut message = String::new();
    for n in 0..times {
        let (twin, contract) = (1 + u32::try_from(n % u64::from(tenant::TWINS)).unwrap_or(0), n + 1);
        let at = format!("hang {}", n + 1);
        if !matches!(
            engine.create(twin, tenant::deployment(twin, contract, &mut rng), Timestamp(1_700_000_000)),
            Ok(Outcome::Accepted(_))
        ) {
            fault.violations.push(format!("{at}: the deployment was not accepted"));
            continue;
        }
        let held = engine.counters();
        fault.injected += 1;
        let job = engine.run_one(&managers, Timestamp(1_700_000_001));
        tokio::pin!(job);
        // Halfway through the deadline the call is in flight: what the deployment holds is still held.
        let during = tokio::select! {
            ran = &mut job => Some(ran),
            () = tokio::time::sleep(Duration::from_millis(100)) => None,
        };
        if during.is_some() {
            fault.violations.push(format!("{at}: the job ended before its deadline"));
        } else {
            if engine.counters().used != held.used {
                fault.violations.push(format!("{at}: capacity released while the call was in flight"));
            }
            fault.violations.extend(violations(&engine).into_iter().map(|v| format!("{at}, in flight: {v}")));
            let started = Instant::now();
            if let Err(err) = job.await {
                fault.violations.push(format!("{at}: the job failed: {err}"));
            }
            if started.elapsed() > Duration::from_secs(5) {
                fault.violations.push(format!("{at}: the job outlived its deadline by seconds"));
            }
        }
        let dl = engine.store().get(twin, contract).context("the hung deployment")?;
        for wl in dl.workloads.iter().filter(|wl| wl.result.state != ResultState::Error) {
            fault.violations.push(format!("{at}: {} is {}, not in error", wl.name, wl.result.state));
        }
        match dl.workloads.iter().find(|wl| wl.result.error.contains("deadline")) {
            Some(wl) => message = wl.result.error.clone(),
            None => fault.violations.push(format!("{at}: no workload's error names the deadline")),
        }
        fault.violations.extend(violations(&engine).into_iter().map(|v| format!("{at}, after: {v}")));
        if engine.counters().used != baseline.used {
            fault.violations.push(format!("{at}: the failed deployment still holds capacity"));
        }
    }
    fault.outcome = format!("the workload failed with \"{message}\", its capacity released only after the call ended");
    Ok(fault)
}

/// The clock jumps back and forward by days between requests and jobs, `times` jumps: every request is
/// answered as without the jump, every job runs, the invariants hold.
async fn clock(dir: &std::path::Path, times: u64, seed: u64) -> anyhow::Result<Fault> {
    let mut fault = Fault::new("the clock jumps back and forward by days");
    let engine = tenant::engine(dir)?;
    let managers = Flaky::new(0);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut live = Vec::new();
    let (mut jobs, mut accepted) = (0u64, 0u64);
    const DAY: i64 = 86_400;
    for n in 0..times.saturating_mul(4) {
        let jump = if n % 2 == 0 { -1 } else { 1 } * rng.i64(1..=30) * DAY;
        let now = Timestamp(1_700_000_000 + jump);
        fault.injected += 1;
        let contract = n + 1;
        let twin = 1 + u32::try_from(n % u64::from(tenant::TWINS)).unwrap_or(0);
        if let Ok(Outcome::Accepted(_)) = engine.create(twin, tenant::deployment(twin, contract, &mut rng), now) {
            accepted += 1;
            live.push((twin, contract));
        }
        if n % 3 == 2 && !live.is_empty() {
            let (twin, contract) = live.swap_remove(rng.usize(..live.len()));
            engine.deprovision(twin, contract, "campaign").context("a delete across a jump")?;
        }
        let later = Timestamp(1_700_000_000 - jump);
        while engine.run_one(&managers, later).await.context("a job across a jump")? {
            jobs += 1;
        }
        fault.violations.extend(violations(&engine).into_iter().map(|v| format!("jump {}: {v}", n + 1)));
    }
    for (twin, contract) in &live {
        let dl = engine.store().get(*twin, *contract).context("a deployment across jumps")?;
        if dl.workloads.iter().any(|wl| wl.result.state == ResultState::Init) {
            fault.violations.push(format!("{twin}-{contract}: a job never ran across the jumps"));
        }
    }
    drop(engine);
    let reopened = tenant::engine(dir)?;
    fault.violations.extend(violations(&reopened).into_iter().map(|v| format!("after a reopen: {v}")));
    fault.outcome =
        format!("{accepted} deployments accepted, {jobs} jobs run across jumps of up to 30 days; none stuck");
    Ok(fault)
}
