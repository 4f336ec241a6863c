//! `provisiond --config FILE`: the deployment engine. Serves `provision@0.0.1` and
//! `statistics@0.0.1` on zbus and runs the job loop through the modules.
//!
//! Exit codes: 0 stopped by SIGTERM or SIGINT; 2 the configuration (or the node or twin registry it
//! names) could not be read; 3 the store could not be opened; 4 the bus failed.

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use zos_interfaces::daemon::{self, Exit};
use zos_interfaces::provision::{ProvisionServer, StatisticsServer};
use zos_provisiond::modules::ModuleManagers;
use zos_provisiond::{Engine, Service, TwinRegistry};
use zos_types::scenario::{NodeSpec, Policy};
use zos_zbus::{Client, Server};

#[derive(Parser)]
#[command(name = "provisiond", version, about = "ZOS deployment engine: admission at the door, durable jobs")]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, default_value = "/etc/zos/provisiond.toml")]
    config: PathBuf,
}

fn default_redis() -> String {
    "unix:///var/run/redis.sock".into()
}
fn default_state() -> PathBuf {
    PathBuf::from("/var/cache/modules/provisiond")
}
fn default_marker() -> PathBuf {
    PathBuf::from("/var/run/modules/provisiond")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_redis")]
    redis: String,
    /// Where the durable store lives (on the cache volume).
    #[serde(default = "default_state")]
    state_dir: PathBuf,
    /// A directory of `<twin id>` files holding ed25519 public keys in hex.
    twins: PathBuf,
    /// The node, as `zos-plan discover --json` prints it; without it, the node is read from `/proc` and
    /// from what storaged (pools) and networkd (public addresses) report.
    #[serde(default)]
    node: Option<PathBuf>,
    /// `zos` or `strict`.
    #[serde(default)]
    policy: Option<String>,
    /// The first-boot marker, on a tmpfs.
    #[serde(default = "default_marker")]
    boot_marker: PathBuf,
    /// The container kernel and initrd zmachines boot (ZOS's cloud-container), their flist the root;
    /// without it a zmachine fails with "module unavailable".
    #[serde(default)]
    zmachine: Option<zos_provisiond::zmachine::ZMachineBoot>,
}

fn load(path: &std::path::Path) -> anyhow::Result<(Config, Option<NodeSpec>, Policy, TwinRegistry)> {
    let config: Config = daemon::load_config(path)?;
    let node = match &config.node {
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            Some(serde_json::from_str(&text).with_context(|| format!("{}: invalid node", file.display()))?)
        }
        None => None,
    };
    let policy_text = format!("\"{}\"", config.policy.as_deref().unwrap_or("strict"));
    let policy: Policy = serde_json::from_str(&policy_text).context("policy must be \"zos\" or \"strict\"")?;
    let twins = TwinRegistry::load(&config.twins).map_err(anyhow::Error::msg)?;
    Ok((config, node, policy, twins))
}

/// The node from `/proc` and the modules: CPU threads and memory here, pools from storaged, public
/// addresses from networkd (waiting up to a minute for them to answer).
async fn discover_node(client: &Client) -> anyhow::Result<NodeSpec> {
    use zos_interfaces::network::NetworkClient;
    use zos_interfaces::storage::StorageClient;
    let root = std::path::Path::new("/");
    let threads = zos_hardware::cpu::threads(root)?;
    let memory = zos_hardware::memory::Memory::read(root)?;
    let storage = StorageClient::new(client.clone(), "storage");
    let network = NetworkClient::new(client.clone(), "network");
    let started = std::time::Instant::now();
    let (pools, ips) = loop {
        match (storage.metrics().await, network.public_ips().await) {
            (Ok(pools), Ok(ips)) => break (pools, ips),
            (pools, ips) if started.elapsed() > Duration::from_secs(60) => {
                return Err(anyhow::anyhow!("storaged or networkd did not answer: {:?} {:?}", pools.err(), ips.err()));
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    let gpus: Vec<serde_json::Value> = zos_hardware::gpu::discover(root)
        .into_iter()
        .map(|gpu| serde_json::json!({"id": gpu.slot, "vendor": gpu.vendor, "device": gpu.device}))
        .collect();
    let node = serde_json::json!({
        "gpus": gpus,
        "cru": threads,
        "mru": memory.total,
        "os_used_mru": memory.os_used,
        "pools": pools.iter().map(|p| serde_json::json!({"name": p.name, "kind": p.kind, "size": p.size, "used": p.system})).collect::<Vec<_>>(),
        "public_ips": ips.iter().map(|p| p.ip.clone()).collect::<Vec<_>>(),
    });
    Ok(serde_json::from_value(node)?)
}

#[tokio::main]
async fn main() -> Exit {
    daemon::init_logs();
    let args = Args::parse();
    let (config, node, policy, twins) = match load(&args.config) {
        Ok(loaded) => loaded,
        Err(err) => return Exit::BadConfiguration.because(format!("{err:#}")),
    };
    let client = match Client::connect(&config.redis).await {
        Ok(client) => client,
        Err(err) => return Exit::Bus.because(format!("cannot reach the bus: {err}")),
    };
    let node = match node {
        Some(node) => node,
        None => match discover_node(&client).await {
            Ok(node) => node,
            Err(err) => return Exit::BadConfiguration.because(format!("cannot discover the node: {err:#}")),
        },
    };
    tracing::info!(
        cru = node.cru,
        mru = node.mru.bytes(),
        pools = node.pools.len(),
        ips = node.public_ips.len(),
        "node"
    );
    if let Err(err) = daemon::private_dir(&config.state_dir) {
        return Exit::Resources.because(err);
    }
    let engine = match zos_cache::Store::open(config.state_dir.join("store"))
        .map_err(anyhow::Error::from)
        .and_then(|store| Engine::open(store, &node, policy, twins).map_err(anyhow::Error::from))
        .map(|engine| {
            // Without a node file, this is the node itself: the OS's memory use is read for every decision.
            if config.node.is_some() {
                engine
            } else {
                engine.with_os_memory(Box::new(|| {
                    zos_hardware::memory::Memory::read(std::path::Path::new("/")).ok().map(|m| m.os_used)
                }))
            }
        }) {
        Ok(engine) => Arc::new(engine),
        Err(err) => return Exit::Resources.because(format!("cannot open the store: {err:#}")),
    };
    match engine.boot(&config.boot_marker) {
        Ok(0) => {}
        Ok(n) => tracing::info!(deployments = n, "first start after a boot: re-provisioning"),
        Err(err) => tracing::warn!("boot handling failed: {err}"),
    }
    let bus = client.clone();
    let managers = ModuleManagers::new(client.clone()).with_zmachine_boot(config.zmachine.clone());
    let service = Arc::new(Service { engine: engine.clone(), modules: managers.clone() });
    // The reconciler runs every minute and publishes what it finds on the `Drift` stream.
    let reconciler = {
        let service = service.clone();
        let publisher: zos_zbus::Publisher<Vec<zos_interfaces::provision::DriftReport>> = zos_zbus::Publisher::new(
            client,
            "provision",
            &zos_interfaces::provision::ProvisionClient::object(),
            "Drift",
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                match service.drift().await {
                    Ok(drift) if drift.is_empty() => {}
                    Ok(drift) => {
                        tracing::warn!(count = drift.len(), "drift between the ledger and the modules: {drift:?}");
                        let _ = publisher.publish(&drift).await;
                    }
                    Err(err) => tracing::warn!("reconciler: {err}"),
                }
            }
        })
    };
    let changes: zos_zbus::Publisher<zos_provisiond::StateChange> = zos_zbus::Publisher::new(
        bus.clone(),
        "provision",
        &zos_interfaces::provision::ProvisionClient::object(),
        "WorkloadChanges",
    );
    // A poisoned store (a commit failed: disk full, I/O error) cannot be used again until it is reopened:
    // the daemon exits with 3 and its supervisor restarts it, instead of re-running the same module calls.
    let (poisoned_tx, poisoned_rx) = tokio::sync::oneshot::channel::<()>();
    let jobs = {
        let engine = engine.clone();
        tokio::spawn(async move {
            loop {
                if engine.store().is_poisoned() {
                    let _ = poisoned_tx.send(());
                    return;
                }
                let now = zos_types::Timestamp(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(1, |d| d.as_secs() as i64),
                );
                match engine.run_one(&managers, now).await {
                    Ok(true) => {
                        for change in engine.take_changes() {
                            tracing::info!(id = change.id, state = change.state, "{}", change.message);
                            let _ = changes.publish(&change).await;
                        }
                    }
                    Ok(false) => {
                        // Idle: what a module failed to remove is queued again once their back-off passed.
                        if let Err(err) = engine.retry_failed(now) {
                            tracing::warn!("retrying what a module failed to remove: {err}");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(err) => {
                        tracing::error!("job failed: {err}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    };
    // ZOS's ReservedStream: what is used (the system's part included), every 2 minutes.
    let reserved = {
        let engine = engine.clone();
        let publisher: zos_zbus::Publisher<zos_types::Capacity> = zos_zbus::Publisher::new(
            bus.clone(),
            "provision",
            &zos_interfaces::provision::StatisticsClient::object(),
            "ReservedStream",
        );
        tokio::spawn(async move {
            loop {
                let _ = publisher.publish(&engine.counters().used).await;
                tokio::time::sleep(Duration::from_secs(120)).await;
            }
        })
    };
    // 16 workers: admissions made while an fsync runs share the next one (group commit).
    let mut server = Server::new("provision", config.redis.clone(), 16);
    server.register(ProvisionServer(service.clone()));
    server.register(StatisticsServer(service));
    let mut poisoned = false;
    let stop = async {
        tokio::select! {
            _ = daemon::shutdown_signal() => {},
            Ok(()) = poisoned_rx => poisoned = true,
        }
    };
    let served = server.run(stop).await;
    jobs.abort();
    reconciler.abort();
    reserved.abort();
    match served {
        Ok(()) if poisoned => Exit::Resources.because("the store failed a commit and cannot be used until reopened"),
        served => Exit::served(served, "stopped"),
    }
}
