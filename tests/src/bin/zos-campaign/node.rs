//! The whole node under load: a private Redis, storaged on loop devices, networkd with namespaces,
//! flistd with a hub on 127.0.0.1, vmd (QEMU under TCG) and provisiond as real processes, started as
//! the end-to-end tests start them ([`zos_tests::node`]). A few clients deploy and delete networks,
//! vdisks, volumes, zdbs, public addresses and zmachines over zbus while provisiond, storaged,
//! networkd, flistd, vmd and redis-server are SIGKILLed in turn at random points and restarted with the
//! same config, as a supervisor would. After each restart the load stops, the jobs settle, and the node
//! is checked: no accepted deployment lost, nothing unknown appeared, the counters equal what the live
//! workloads hold byte for byte, the reconciler reports no drift, and the host's namespaces, taps, QEMU
//! processes and flist mounts are exactly the live workloads'. Then the faults that need the node:
//! Redis restarts, a pool disk that disappears and comes back, a hub down or slow.

use crate::fault::Fault;
use crate::tenant;
use anyhow::{Context, bail};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, RwLock};
use zos_interfaces::flist::{FlistClient, MountOptions};
use zos_interfaces::network::NetworkClient;
use zos_interfaces::provision::{ProvisionClient, StatisticsClient};
use zos_interfaces::storage::StorageClient;
use zos_interfaces::vm::VMClient;
use zos_tests::node::{GIB, Node, quiet, sh, spawn};
use zos_types::{Capacity, Deployment, ResultState, WorkloadData, WorkloadId};
use zos_zbus::Client;
use zos_zbus::local_redis::LocalRedis;

/// The daemons killed, in turn.
pub const DAEMONS: [&str; 6] = ["provisiond", "storaged", "networkd", "flistd", "vmd", "redis-server"];

/// The twins that deploy (one client each).
const CLIENTS: u32 = 3;

/// How long a restarted daemon and the jobs after it may take: more than provisiond's bus deadline (30 s),
/// which a call lost with a killed daemon waits out.
const SETTLE: Duration = Duration::from_secs(75);

/// What the node run did.
#[derive(Default)]
pub struct NodeRun {
    /// Why the node was not started, when it was not.
    pub skipped: Option<String>,
    /// SIGKILLs per daemon.
    pub kills: BTreeMap<&'static str, u64>,
    /// Requests by operation and outcome (`create accepted`, `delete error`, ...).
    pub outcomes: BTreeMap<String, u64>,
    /// Deployments the clients were told were accepted.
    pub accepted: u64,
    /// zmachines seen running in the checks.
    pub zmachines: usize,
    /// Checks made after restarts and faults.
    pub checks: u64,
    /// The longest a restart took to settle.
    pub slowest_settle: Duration,
    /// Broken invariants, with when.
    pub violations: Vec<String>,
    /// The faults injected on the node.
    pub faults: Vec<Fault>,
    /// How long the run took.
    pub elapsed: Duration,
}

/// What the clients know, per twin.
#[derive(Default)]
struct Known {
    /// Accepted, not asked to delete.
    accepted: BTreeSet<u64>,
    /// Asked to delete, and told the request was taken.
    deleting: BTreeSet<u64>,
    /// Creates whose answer was lost (a daemon or Redis died), kept to be sent again: either outcome is
    /// right, and a request still queued in Redis may yet be taken.
    unanswered_creates: BTreeMap<u64, Deployment>,
    /// Deletes whose answer was lost, to be asked again.
    unanswered_deletes: BTreeSet<u64>,
}

/// The bus clients of the node.
#[derive(Clone)]
struct Bus {
    provision: ProvisionClient,
    statistics: StatisticsClient,
    storage: StorageClient,
    network: NetworkClient,
    flist: FlistClient,
    vm: VMClient,
}

impl Bus {
    async fn connect(url: &str, deadline: Duration) -> anyhow::Result<Bus> {
        let client = Client::with_deadline(url, deadline).await.context("connecting to the node's Redis")?;
        Ok(Bus {
            provision: ProvisionClient::new(client.clone(), "provision"),
            statistics: StatisticsClient::new(client.clone(), "provision"),
            storage: StorageClient::new(client.clone(), "storage"),
            network: NetworkClient::new(client.clone(), "network"),
            flist: FlistClient::new(client.clone(), "flist"),
            vm: VMClient::new(client, zos_interfaces::vm::MODULE),
        })
    }

    /// Whether `daemon` answers.
    async fn answers(&self, daemon: &str) -> bool {
        match daemon {
            "provisiond" => self.statistics.get_counters().await.is_ok(),
            "storaged" => self.storage.volume_list().await.is_ok(),
            "networkd" => self.network.networks().await.is_ok(),
            "flistd" => self.flist.exists("probe".into()).await.is_ok(),
            "vmd" => self.vm.list().await.is_ok(),
            _ => self.storage.volume_list().await.is_ok() && self.statistics.get_counters().await.is_ok(),
        }
    }

    /// Waits until `daemon` answers, up to [`SETTLE`].
    async fn wait_for(&self, daemon: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        while !self.answers(daemon).await {
            if started.elapsed() > SETTLE {
                bail!("{daemon} did not answer {} s after its start", SETTLE.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

/// The running node: its processes, Redis last (dropped after the daemons), and the hub that serves
/// the zmachines' flist at `image` while the node runs.
struct Running {
    node: Node,
    redis: LocalRedis,
    _hub: crate::hub::Hub,
    image: String,
}

impl Running {
    fn start() -> anyhow::Result<Running> {
        let tag = format!("zc{}", std::process::id() % 100_000);
        let mut node = Node::new(Vec::new(), Vec::new())?;
        let redis = LocalRedis::start(node.dir.path()).context("the node's Redis")?;
        node.storaged_config(&redis.url())?;
        node.networkd_config(&redis.url(), &tag)?;
        let twins: Vec<(u32, [u8; 32])> =
            (1..=CLIENTS).map(|twin| (twin, tenant::key(twin).verifying_key().to_bytes())).collect();
        node.provisiond_config(&redis.url(), &twins)?;
        Self::flistd_config(&node, &redis.url())?;
        // The zmachines: the vmd tests' busybox guest on the cloud kernel, their root an flist from the hub.
        let (kernel, initrd) = crate::guest::build_guest(node.dir.path());
        node.zmachine_boot(&kernel, &initrd)?;
        node.vmd_config(&redis.url())?;
        let hub = crate::hub::Hub::start(&node.path("hub"));
        let tree = node.path("root-tree");
        std::fs::create_dir_all(tree.join("etc")).context("the flist's tree")?;
        std::fs::write(tree.join("etc/zos-root"), b"campaign\n").context("the flist's tree")?;
        zos_flistd::pack::pack(&tree, &hub.store(), &node.path("root.fl")).context("packing the flist")?;
        hub.put("/user/root.fl", &std::fs::read(node.path("root.fl")).context("the flist")?);
        let image = format!("{}/user/root.fl", hub.url());
        let mut running = Running { node, redis, _hub: hub, image };
        for daemon in ["storaged", "networkd", "flistd", "vmd"] {
            let child = running.spawn(daemon)?;
            running.node.daemons.push(child);
        }
        running.node.provisiond = Some(running.spawn("provisiond")?);
        Ok(running)
    }

    /// flistd with short hub timeouts and one retry, so that a hub down or slow answers in seconds.
    fn flistd_config(node: &Node, redis: &str) -> anyhow::Result<()> {
        std::fs::write(
            node.path("flistd.toml"),
            format!(
                "redis = {redis:?}\nroot = {:?}\n[download]\nretries = 1\nbackoff_ms = 10\nconnect_timeout_secs = 1\nread_timeout_secs = 1\n",
                node.path("flistd").display().to_string()
            ),
        )
        .context("flistd's config")
    }

    fn spawn(&self, daemon: &str) -> anyhow::Result<Child> {
        spawn(self.node.dir.path(), daemon)
    }

    /// The process of `daemon` (not Redis).
    fn child(&mut self, daemon: &str) -> Option<&mut Child> {
        match daemon {
            "provisiond" => self.node.provisiond.as_mut(),
            "storaged" => self.node.daemons.get_mut(0),
            "networkd" => self.node.daemons.get_mut(1),
            "flistd" => self.node.daemons.get_mut(2),
            "vmd" => self.node.daemons.get_mut(3),
            _ => None,
        }
    }

    /// SIGKILLs `daemon` and waits for it.
    fn kill(&mut self, daemon: &str) -> anyhow::Result<()> {
        if daemon == "redis-server" {
            self.redis.kill();
            return Ok(());
        }
        let child = self.child(daemon).with_context(|| format!("no {daemon} process"))?;
        child.kill().with_context(|| format!("SIGKILL {daemon}"))?;
        child.wait().with_context(|| format!("reaping {daemon}"))?;
        Ok(())
    }

    /// Starts `daemon` again with the same config, as a supervisor would.
    fn restart(&mut self, daemon: &str) -> anyhow::Result<()> {
        if daemon == "redis-server" {
            return self.redis.restart().context("restarting Redis on the same socket");
        }
        let fresh = self.spawn(daemon)?;
        let slot = self.child(daemon).with_context(|| format!("no {daemon} slot"))?;
        *slot = fresh;
        Ok(())
    }

    fn log(&self, daemon: &str) -> String {
        let text = std::fs::read_to_string(self.node.path(&format!("{daemon}.log"))).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

/// A deployment the node can run: a vdisk, and at random a network, a volume, a zdb and a public
/// address; one of twin 1's in three is a zmachine on its network with the vdisk mounted, booting the
/// flist at `image`.
fn deployment(twin: u32, contract: u64, image: &str, rng: &mut fastrand::Rng) -> anyhow::Result<Deployment> {
    let mut workloads = vec![json!({"name": "disk", "type": "zmount", "data": {"size": rng.u64(1..=2) * GIB}})];
    let zmachine = twin == 1 && rng.u8(0..3) == 0;
    if zmachine || rng.bool() {
        let (net, network) = (contract % 200 + 20, format!("net{contract}"));
        workloads.push(json!({"name": network, "type": "network", "data": {
            "ip_range": format!("10.{net}.0.0/16"), "subnet": format!("10.{net}.1.0/24"),
            "wireguard_private_key": "key", "wireguard_listen_port": 20_000 + contract % 40_000}}));
        if zmachine {
            workloads.push(json!({"name": "vm", "type": "zmachine", "data": {"flist": image,
                "network": {"interfaces": [{"network": network, "ip": format!("10.{net}.1.5")}], "public_ip": ""},
                "compute_capacity": {"cpu": 1, "memory": 256 << 20},
                "mounts": [{"name": "disk", "mountpoint": "/data"}]}}));
        }
    }
    if rng.bool() {
        workloads.push(json!({"name": "vol", "type": "volume", "data": {"size": GIB / 8}}));
    }
    if rng.u8(0..4) == 0 {
        workloads.push(json!({"name": "db", "type": "zdb", "data": {"size": GIB, "mode": "seq"}}));
    }
    if rng.u8(0..6) == 0 {
        workloads.push(json!({"name": "pub", "type": "ip", "data": {"v4": true}}));
    }
    let mut dl: Deployment = serde_json::from_value(json!({"twin_id": twin, "contract_id": contract,
        "signature_requirement": {"requests": [{"twin_id": twin, "required": true, "weight": 1}], "weight_required": 1},
        "workloads": workloads}))
    .context("a node deployment")?;
    dl.sign(twin, &tenant::key(twin));
    Ok(dl)
}

/// One client's step: a create while it holds fewer than three, else a delete one time in two.
async fn step(
    bus: &Bus,
    image: &str,
    twin: u32,
    known: &Mutex<BTreeMap<u32, Known>>,
    next: &AtomicU64,
    rng: &mut fastrand::Rng,
) -> anyhow::Result<String> {
    let mine: Vec<u64> =
        known.lock().await.get(&twin).map(|k| k.accepted.iter().copied().collect()).unwrap_or_default();
    if mine.len() < 3 || rng.bool() {
        let contract = next.fetch_add(1, Ordering::Relaxed);
        let dl = deployment(twin, contract, image, rng)?;
        let answer = bus.provision.create_or_update(twin, dl.clone(), false).await;
        let mut known = known.lock().await;
        let mine = known.entry(twin).or_default();
        Ok(match answer {
            Ok(admission) if admission.accepted => {
                mine.accepted.insert(contract);
                "create accepted".into()
            }
            Ok(admission) => {
                // By what bound it, so that a report full of refusals says why.
                let short: BTreeSet<String> = admission
                    .workloads
                    .iter()
                    .flat_map(|w| w.shortfalls.iter().map(|s| s.resource.to_string()))
                    .collect();
                format!("create refused ({})", short.into_iter().collect::<Vec<_>>().join(", "))
            }
            Err(err) => {
                mine.unanswered_creates.insert(contract, dl);
                format!("create {}", err.code().unwrap_or("lost"))
            }
        })
    } else {
        let contract = mine[rng.usize(..mine.len())];
        let answer = bus.provision.deprovision(twin, contract, "campaign".into()).await;
        let mut known = known.lock().await;
        let mine = known.entry(twin).or_default();
        mine.accepted.remove(&contract);
        Ok(match answer {
            Ok(_) => {
                mine.deleting.insert(contract);
                "delete accepted".into()
            }
            Err(err) => {
                mine.unanswered_deletes.insert(contract);
                format!("delete {}", err.code().unwrap_or("lost"))
            }
        })
    }
}

/// What every resource name the node ever made means: network namespaces and taps; and where it makes
/// VMs (vmd's machine directories), flist roots (flistd's mountpoints) and their FUSE mounts (flistd's
/// lower directories, each served by a mount process).
struct Made {
    namespaces: BTreeSet<String>,
    taps: BTreeSet<String>,
    vms: BTreeSet<String>,
    machines: std::path::PathBuf,
    mountpoints: std::path::PathBuf,
    lowers: std::path::PathBuf,
}

/// Sends again, until answered, each request whose answer was lost, as a client that must know
/// would: a create (`exists`: the first one was taken) and a delete (`not_found`: it is done). Until
/// then a deployment's fate is open either way: a create may still wait in Redis's queue, and a delete
/// that was taken but whose module call failed (Redis was down) leaves the deployment listed, in
/// `error`, until a retry removes it. What is still unanswered after [`SETTLE`] is a violation.
async fn ask_again(bus: &Bus, known: &mut BTreeMap<u32, Known>, at: &str) -> Vec<String> {
    let started = Instant::now();
    loop {
        let mut open = Vec::new();
        for (&twin, mine) in known.iter_mut() {
            for (contract, dl) in std::mem::take(&mut mine.unanswered_creates) {
                match bus.provision.create_or_update(twin, dl.clone(), false).await {
                    Ok(admission) if !admission.accepted => {}
                    Ok(_) => {
                        mine.accepted.insert(contract);
                    }
                    Err(err) if err.code() == Some("exists") => {
                        mine.accepted.insert(contract);
                    }
                    Err(err) => {
                        open.push(format!("{twin}-{contract}'s create: {err}"));
                        mine.unanswered_creates.insert(contract, dl);
                    }
                }
            }
            for contract in std::mem::take(&mut mine.unanswered_deletes) {
                match bus.provision.deprovision(twin, contract, "campaign".into()).await {
                    Ok(_) => {
                        mine.deleting.insert(contract);
                    }
                    Err(err) if err.code() == Some("not_found") => {}
                    Err(err) => {
                        open.push(format!("{twin}-{contract}'s delete: {err}"));
                        mine.unanswered_deletes.insert(contract);
                    }
                }
            }
        }
        if open.is_empty() {
            return Vec::new();
        }
        if started.elapsed() > SETTLE {
            return open.into_iter().map(|it| format!("{at}: no answer in {} s to {it}", SETTLE.as_secs())).collect();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Asks again what was left unanswered, waits for every job to settle (no workload in `init`, every
/// delete done), then checks the node.
async fn check(
    bus: &Bus,
    known: &mut BTreeMap<u32, Known>,
    made: &mut Made,
    at: &str,
    slowest: &mut Duration,
) -> Vec<String> {
    let mut found = ask_again(bus, known, at).await;
    let started = Instant::now();
    let live = loop {
        let mut all = Vec::new();
        let mut unsettled = None;
        for twin in 1..=CLIENTS {
            match bus.provision.list(twin).await {
                Ok(list) => {
                    let deleting = known.get(&twin).map(|k| &k.deleting);
                    for dl in &list {
                        let (twin, contract) = (dl.twin_id, dl.contract_id);
                        if let Some(wl) = dl.workloads.iter().find(|wl| wl.result.state == ResultState::Init) {
                            unsettled = Some(format!("{twin}-{contract}-{} is still in init", wl.name));
                        } else if deleting.is_some_and(|d| d.contains(&contract)) {
                            let states: Vec<String> =
                                dl.workloads.iter().map(|wl| format!("{} {}", wl.name, wl.result.state)).collect();
                            unsettled = Some(format!("{twin}-{contract}, deleted, is still there: {states:?}"));
                        }
                    }
                    all.extend(list);
                }
                Err(err) => unsettled = Some(format!("provisiond does not list: {err}")),
            }
        }
        let Some(why) = unsettled else { break all };
        if started.elapsed() > SETTLE {
            found.push(format!("{at}: the jobs did not settle in {} s: {why}", SETTLE.as_secs()));
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    *slowest = (*slowest).max(started.elapsed());
    // Deployments: every accepted one is there, nothing unknown is, every delete is done.
    let present: BTreeSet<(u32, u64)> = live.iter().map(|dl| (dl.twin_id, dl.contract_id)).collect();
    for twin in 1..=CLIENTS {
        let mine = known.entry(twin).or_default();
        for contract in &mine.accepted {
            if !present.contains(&(twin, *contract)) {
                found.push(format!("{at}: accepted deployment {twin}-{contract} is lost"));
            }
        }
        for contract in &mine.deleting {
            if present.contains(&(twin, *contract)) {
                found.push(format!("{at}: deleted deployment {twin}-{contract} is still there"));
            }
        }
        mine.deleting.clear();
        for &(owner, contract) in &present {
            let unanswered =
                mine.unanswered_creates.contains_key(&contract) || mine.unanswered_deletes.contains(&contract);
            if owner == twin && !mine.accepted.contains(&contract) && !unanswered {
                found.push(format!("{at}: deployment {twin}-{contract} is there but no client was told so"));
            }
        }
    }
    // What a module failed to remove is retried with a back-off: the node converges, so its state is
    // checked again until it holds or the settle time is over.
    let converged = started + SETTLE;
    loop {
        let state = node_state(bus, &live, made, at).await;
        if state.is_empty() || Instant::now() > converged {
            found.extend(state);
            return found;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The counters against what the live workloads hold, the reconciler's drift, and the host's
/// namespaces and taps against the live networks and addresses: what is wrong, in words.
async fn node_state(bus: &Bus, live: &[Deployment], made: &mut Made, at: &str) -> Vec<String> {
    let mut found = Vec::new();
    // The counters: what the live workloads hold, plus what the system keeps, byte for byte.
    let mut held = Capacity::default();
    let mut workloads = 0u64;
    let mut namespaces = BTreeSet::new();
    let mut taps = BTreeSet::new();
    let mut vms = BTreeSet::new();
    for dl in live {
        for wl in dl.workloads.iter().filter(|wl| wl.result.state.is_okay()) {
            held = held.saturating_add(&wl.capacity());
            workloads += 1;
            match &wl.data {
                WorkloadData::Network(_) => {
                    namespaces.insert(format!("n-{}", zos_types::network_id(dl.twin_id, &wl.name)));
                }
                WorkloadData::Ip(ip) if ip.v4 => {
                    let id = WorkloadId::new(dl.twin_id, dl.contract_id, &wl.name);
                    taps.insert(format!("p-{}", id.unique("pub")));
                }
                WorkloadData::ZMachine(machine) => {
                    let id = WorkloadId::new(dl.twin_id, dl.contract_id, &wl.name);
                    taps.extend(machine.network.interfaces.iter().map(|i| format!("t-{}", id.unique(&i.network))));
                    vms.insert(id.to_string());
                }
                _ => {}
            }
        }
    }
    made.namespaces.extend(namespaces.iter().cloned());
    made.taps.extend(taps.iter().cloned());
    made.vms.extend(vms.iter().cloned());
    match (bus.statistics.get_counters().await, bus.storage.metrics().await) {
        (Ok(counters), Ok(metrics)) => {
            let system = |kind: &str| metrics.iter().filter(|m| m.kind == kind).map(|m| m.system).sum::<u64>();
            let pairs = [
                ("CPU", counters.used.cru, held.cru),
                ("memory", counters.used.mru.bytes(), held.mru.bytes() + counters.system.mru.bytes()),
                ("SSD", counters.used.sru.bytes(), held.sru.bytes() + system("ssd")),
                ("HDD", counters.used.hru.bytes(), held.hru.bytes() + system("hdd")),
                ("public addresses", counters.used.ipv4u, held.ipv4u),
                ("workloads", counters.users.workloads, workloads),
            ];
            for (what, counted, live) in pairs {
                if counted != live {
                    found.push(format!("{at}: {what} counted {counted}, the live workloads hold {live}"));
                }
            }
        }
        (counters, metrics) => found.push(format!(
            "{at}: the counters cannot be read: {:?} {:?}",
            counters.err().map(|e| e.to_string()),
            metrics.err().map(|e| e.to_string())
        )),
    }
    // The reconciler: volumes, vdisks, zdb devices, networks and taps are exactly the live workloads'.
    match bus.provision.reconcile().await {
        Ok(drift) => found.extend(
            drift
                .iter()
                .map(|d| format!("{at}: drift: {} {} {} ({} {})", d.kind, d.module, d.resource, d.workload, d.state)),
        ),
        Err(err) => found.push(format!("{at}: the reconciler failed: {err}")),
    }
    // The host: a QEMU (and its virtiofsd), an flist root and its mount process for each live zmachine,
    // none for the others.
    for (dir, what) in [(&made.machines, "VM"), (&made.lowers, "flist mount")] {
        let dir = dir.to_string_lossy().into_owned();
        for pid in zos_vmd::process::find(&dir) {
            let cmdline = zos_vmd::process::cmdline(pid).unwrap_or_default();
            let vm = cmdline.split(&format!("{dir}/")).nth(1).and_then(|rest| rest.split(['/', ' ']).next());
            if let Some(vm) = vm.filter(|vm| !vms.contains(*vm)) {
                found.push(format!("{at}: process {pid} of {what} {vm} is an orphan"));
            }
        }
    }
    let roots = mounts_under(&made.mountpoints);
    for orphan in roots.difference(&vms) {
        found.push(format!("{at}: flist root {orphan} is an orphan mount"));
    }
    for missing in vms.difference(&roots) {
        found.push(format!("{at}: the flist root of VM {missing} is not mounted"));
    }
    // The host: a namespace and a tap for each live network, address and zmachine, none for the others.
    let host_namespaces: BTreeSet<String> = sh("ip", &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    for ns in &made.namespaces {
        match (namespaces.contains(ns), host_namespaces.contains(ns)) {
            (true, false) => found.push(format!("{at}: namespace {ns} of a live network is missing")),
            (false, true) => found.push(format!("{at}: namespace {ns} is an orphan")),
            _ => {}
        }
    }
    for tap in &made.taps {
        match (taps.contains(tap), quiet("ip", &["link", "show", "dev", tap])) {
            (true, false) => found.push(format!("{at}: tap {tap} of a live address is missing")),
            (false, true) => found.push(format!("{at}: tap {tap} is an orphan")),
            _ => {}
        }
    }
    found
}

/// Runs the node: `kills` SIGKILLs in turn across [`DAEMONS`], then the node's faults (`faults` of each).
pub fn run(kills: u64, faults: u64, seed: u64) -> anyhow::Result<NodeRun> {
    if let Some(why) = zos_tests::node::unavailable().or_else(crate::guest::missing) {
        return Ok(NodeRun { skipped: Some(why), ..NodeRun::default() });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    Ok(runtime.block_on(attack(kills, faults, seed)).unwrap_or_else(|err| NodeRun {
        violations: vec![format!("the node run stopped: {err:#}")],
        ..NodeRun::default()
    }))
}

async fn attack(kills: u64, faults: u64, seed: u64) -> anyhow::Result<NodeRun> {
    let started = Instant::now();
    let mut running = Running::start()?;
    let bus = Bus::connect(&running.redis.url(), Duration::from_secs(5)).await?;
    for daemon in DAEMONS {
        bus.wait_for(daemon).await.with_context(|| running.log(daemon))?;
    }
    let mut run = NodeRun::default();
    let known: Arc<Mutex<BTreeMap<u32, Known>>> = Arc::default();
    let outcomes: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let gate = Arc::new(RwLock::new(()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(1));
    let mut clients = Vec::new();
    for twin in 1..=CLIENTS {
        let (bus, known, outcomes, gate, stop, next, image) = (
            bus.clone(),
            known.clone(),
            outcomes.clone(),
            gate.clone(),
            stop.clone(),
            next.clone(),
            running.image.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(u64::from(twin)));
            while !stop.load(Ordering::Relaxed) {
                let outcome = {
                    let _turn = gate.read().await;
                    step(&bus, &image, twin, &known, &next, &mut rng).await
                };
                let outcome = outcome.unwrap_or_else(|err| format!("client error {err}"));
                *outcomes.lock().await.entry(outcome).or_insert(0) += 1;
                tokio::time::sleep(Duration::from_millis(rng.u64(10..=60))).await;
            }
        }));
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut made = Made {
        namespaces: BTreeSet::new(),
        taps: BTreeSet::new(),
        vms: BTreeSet::new(),
        machines: running.node.path("vmd-run").join("machines"),
        mountpoints: running.node.path("flistd").join("mountpoint"),
        lowers: running.node.path("flistd").join("ro"),
    };
    for kill in 0..kills {
        let daemon = DAEMONS[usize::try_from(kill).unwrap_or(0) % DAEMONS.len()];
        tokio::time::sleep(Duration::from_millis(rng.u64(100..=700))).await;
        running.kill(daemon)?;
        *run.kills.entry(daemon).or_insert(0) += 1;
        running.restart(daemon)?;
        let at = format!("after kill {} ({daemon})", kill + 1);
        if let Err(err) = bus.wait_for(daemon).await {
            run.violations.push(format!("{at}: {err:#}: {}", running.log(daemon)));
            continue;
        }
        let _world = gate.write().await;
        let mut known = known.lock().await;
        run.checks += 1;
        let found = check(&bus, &mut known, &mut made, &at, &mut run.slowest_settle).await;
        eprintln!("node: {at}: {} violations", found.len());
        run.violations.extend(found);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.await;
    }
    run.outcomes = std::mem::take(&mut *outcomes.lock().await);
    let mut known = std::mem::take(&mut *known.lock().await);
    run.accepted = run.outcomes.get("create accepted").copied().unwrap_or(0);
    eprintln!("node: Redis restarts");
    run.faults.push(redis_restarts(&mut running, &bus, faults).await);
    eprintln!("node: a pool disk disappears");
    run.faults.push(pool_disk(&mut running, &bus, &mut known, &mut made, &mut run.slowest_settle).await);
    eprintln!("node: the hub down or slow");
    run.faults.push(hub(&bus, &running, faults).await);
    run.checks += 1;
    let found = check(&bus, &mut known, &mut made, "at the end", &mut run.slowest_settle).await;
    run.violations.extend(found);
    running.node.namespaces.extend(made.namespaces.iter().cloned());
    running.node.links.extend(made.namespaces.iter().map(|ns| ns.replacen("n-", "b-", 1)));
    running.node.links.extend(made.taps.iter().cloned());
    run.zmachines = made.vms.len();
    run.elapsed = started.elapsed();
    Ok(run)
}

/// Redis SIGKILLed and started again on the same socket, `times` times; the first call after each must
/// be answered.
async fn redis_restarts(running: &mut Running, bus: &Bus, times: u64) -> Fault {
    let mut fault = Fault::new("Redis restarts (SIGKILL, same socket), first call after");
    let mut slowest = Duration::ZERO;
    for n in 0..times {
        running.redis.kill();
        fault.injected += 1;
        if let Err(err) = running.redis.restart() {
            fault.violations.push(format!("restart {}: {err}", n + 1));
            continue;
        }
        let asked = Instant::now();
        match bus.statistics.get_counters().await {
            Ok(_) => slowest = slowest.max(asked.elapsed()),
            Err(err) => fault.violations.push(format!("restart {}: the first call after failed: {err}", n + 1)),
        }
    }
    fault.outcome = format!("every first call answered; the slowest in {:.0} ms", slowest.as_secs_f64() * 1e3);
    fault
}

/// The HDD pool's disk disappears (storaged stopped, the pool unmounted, its loop device detached,
/// storaged started): storaged reports it broken and keeps the SSD's volumes and vdisks; the disk comes
/// back on the same loop device, storaged restarts, and the node converges.
async fn pool_disk(
    running: &mut Running,
    bus: &Bus,
    known: &mut BTreeMap<u32, Known>,
    made: &mut Made,
    slowest: &mut Duration,
) -> Fault {
    let mut fault = Fault::new("a pool disk disappears (loop device detached) and comes back");
    fault.injected = 1;
    // The jobs settle first: a vdisk a job creates while the disk is away is not one storaged lost.
    fault.violations.extend(check(bus, known, made, "before the pool disk disappears", slowest).await);
    match detach_and_return(running, bus, &mut fault.violations).await {
        Ok(outcome) => fault.outcome = outcome,
        Err(err) => fault.violations.push(format!("{err:#}")),
    }
    fault.violations.extend(check(bus, known, made, "after the pool disk came back", slowest).await);
    fault
}

/// Takes the HDD away and brings it back; what storaged gets wrong while it is away goes to `violations`,
/// and the disk comes back whatever it got wrong, so that the checks after it see the whole node.
async fn detach_and_return(running: &mut Running, bus: &Bus, violations: &mut Vec<String>) -> anyhow::Result<String> {
    let hdd = running.node.loops.get(1).cloned().context("the HDD's loop device")?;
    let image = running.node.path("hdd.img");
    let before_volumes = bus.storage.volume_list().await.context("volumes before")?.len();
    let before_disks = bus.storage.disk_list().await.context("vdisks before")?.len();
    running.kill("storaged")?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("mountinfo")?;
    let mut mounts: Vec<String> = info
        .lines()
        .filter(|l| l.split(" - ").nth(1).and_then(|rest| rest.split(' ').nth(1)) == Some(hdd.as_str()))
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in &mounts {
        sh("umount", &["-l", mount])?;
    }
    sh("losetup", &["-d", &hdd])?;
    let gone = Instant::now();
    while std::path::Path::new(&hdd).exists() && sh("losetup", &[&hdd]).is_ok() && gone.elapsed() < SETTLE {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.restart("storaged")?;
    bus.wait_for("storaged").await?;
    let broken = bus.storage.broken_devices().await.context("broken devices")?;
    if !broken.iter().any(|b| b.path.contains(&hdd)) {
        violations.push(format!("storaged does not report {hdd} broken: {broken:?}"));
    }
    let volumes = bus.storage.volume_list().await.context("volumes while the disk is gone")?.len();
    let disks = bus.storage.disk_list().await.context("vdisks while the disk is gone")?.len();
    if (volumes, disks) != (before_volumes, before_disks) {
        violations.push(format!(
            "with the HDD gone storaged lists {volumes} volumes and {disks} vdisks, not {before_volumes} and {before_disks}"
        ));
    }
    let reason = broken.iter().find(|b| b.path.contains(&hdd)).map(|b| b.err.clone()).unwrap_or_default();
    // The disk comes back on the same device; storaged restarts and finds its pool.
    running.kill("storaged")?;
    sh("losetup", &[&hdd, &image.to_string_lossy()])?;
    running.restart("storaged")?;
    bus.wait_for("storaged").await?;
    let broken = bus.storage.broken_devices().await.context("broken devices")?;
    if !broken.is_empty() {
        bail!("after the disk came back storaged still reports {broken:?}");
    }
    Ok(format!(
        "storaged reported {hdd} broken (\"{reason}\"), the SSD's {volumes} volumes and {disks} vdisks untouched; converged after it returned"
    ))
}

/// A Mount against a hub that is down (its port closed) and one that is slow (accepts, never answers):
/// a clear error, and nothing left (no mount, no volume).
async fn hub(bus: &Bus, running: &Running, times: u64) -> Fault {
    let mut fault = Fault::new("the hub is down or slow (flistd Mount)");
    let slow = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(listener) => listener,
        Err(err) => {
            fault.violations.push(format!("a slow hub: {err}"));
            return fault;
        }
    };
    let slow_port = slow.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in slow.incoming().flatten() {
            held.push(stream);
        }
    });
    let down_port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(1);
    let mut errors = BTreeSet::new();
    // The live zmachines' roots stay mounted: only what the failed Mounts leave counts.
    let before = mounts_under(&running.node.path("flistd"));
    for n in 0..times {
        for (what, port) in [("down", down_port), ("slow", slow_port)] {
            fault.injected += 1;
            let name = format!("hub-{what}-{n}");
            let url = format!("http://127.0.0.1:{port}/user/image.fl");
            let opt = MountOptions { read_only: false, limit: 64 << 20, ..MountOptions::default() };
            match bus.flist.mount(name.clone(), url, opt).await {
                Ok(path) => fault.violations.push(format!("a Mount against a hub {what} succeeded: {path}")),
                Err(err) => {
                    errors.insert(format!("{what}: {}", err.to_string().chars().take(100).collect::<String>()));
                }
            }
            if bus.flist.exists(name.clone()).await.unwrap_or(true) {
                fault.violations.push(format!("{name}: a failed Mount left a mount"));
            }
            if bus.storage.volume_exists(name.clone()).await.unwrap_or(true) {
                fault.violations.push(format!("{name}: a failed Mount left a volume"));
            }
        }
    }
    let left: Vec<String> = mounts_under(&running.node.path("flistd")).difference(&before).cloned().collect();
    if !left.is_empty() {
        fault.violations.push(format!("a failed Mount left mounts under flistd's root: {left:?}"));
    }
    fault.outcome = format!("refused with: {}", errors.into_iter().take(2).collect::<Vec<_>>().join("; "));
    fault
}

/// The mount targets under `dir`, relative to it.
fn mounts_under(dir: &std::path::Path) -> BTreeSet<String> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    zos_flistd::mountinfo::mount_points()
        .unwrap_or_default()
        .iter()
        .filter_map(|target| target.strip_prefix(&dir).ok())
        .filter_map(|name| name.to_str().map(str::to_string))
        .collect()
}
