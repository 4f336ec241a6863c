//! `storaged --config FILE`: prepares the pools, mounts the cache volume, serves `storage@0.0.1` on
//! zbus, publishes the pools' numbers on the `Monitor` stream every 5 s, rescans the disks and resizes
//! the cache volume periodically.
//!
//! Exit codes: 0 stopped by SIGTERM or SIGINT; 2 the configuration could not be read or parsed;
//! 3 the storage could not be prepared; 4 the bus failed.

use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use zos_interfaces::daemon::{self, Exit};
use zos_interfaces::storage::StorageServer;
use zos_storaged::{Config, Storage};
use zos_zbus::Server;

#[derive(Parser)]
#[command(name = "storaged", version, about = "ZOS storage daemon: pools, volumes, vdisks, zdb devices")]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, default_value = "/etc/zos/storaged.toml")]
    config: PathBuf,
}

/// Runs the blocking `job` every `secs` seconds (at least one) until the task is aborted.
fn every(storage: Arc<Storage>, secs: u64, job: fn(&Storage)) -> tokio::task::JoinHandle<()> {
    let period = Duration::from_secs(secs.max(1));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            tokio::task::block_in_place(|| job(&storage));
        }
    })
}

#[tokio::main]
async fn main() -> Exit {
    daemon::init_logs();
    let args = Args::parse();
    let config: Config = match daemon::load_config(&args.config) {
        Ok(config) => config,
        Err(err) => return Exit::BadConfiguration.because(err),
    };
    let storage = match tokio::task::block_in_place(|| Storage::start(config)) {
        Ok(storage) => Arc::new(storage),
        Err(err) => return Exit::Resources.because(format!("cannot prepare the storage: {err}")),
    };
    for broken in storage.broken_devices() {
        tracing::warn!(device = broken.path, "device not used: {}", broken.err);
    }
    match tokio::task::block_in_place(|| storage.ensure_cache()) {
        Ok(volume) => {
            tracing::info!(path = volume.path, "cache volume mounted at {}", storage.config().cache_path.display())
        }
        Err(err) => tracing::error!(
            "CACHE VOLUME UNAVAILABLE: {err}; a {} tmpfs stands in at {}: node state will not survive a reboot",
            zos_storaged::storage::TMPFS_CACHE,
            storage.config().cache_path.display()
        ),
    }
    let resizer = every(storage.clone(), storage.config().cache_check_secs, |storage| match storage.resize_cache() {
        Ok(Some(size)) => tracing::info!(size, "cache volume resized"),
        Ok(None) => {}
        Err(err) => tracing::warn!("cache volume resize failed: {err}"),
    });
    let rescanner = every(storage.clone(), storage.config().rescan_secs, |storage| {
        if let Err(err) = storage.rescan() {
            tracing::warn!("rescan failed: {err}");
        }
    });
    // The Monitor stream: every pool's numbers every 5 seconds (ZOS `Monitor`), never blocking on subscribers.
    let monitor = match zos_zbus::Client::connect(&storage.config().redis).await {
        Ok(client) => {
            let storage = storage.clone();
            let publisher = zos_zbus::Publisher::new(
                client,
                "storage",
                &zos_interfaces::storage::StorageClient::object(),
                "Monitor",
            );
            Some(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    match tokio::task::block_in_place(|| storage.metrics()) {
                        Ok(metrics) => {
                            if let Err(err) = publisher.publish(&metrics).await {
                                tracing::debug!("monitor publish failed: {err}");
                            }
                        }
                        Err(err) => tracing::warn!("pool metrics failed: {err}"),
                    }
                }
            }))
        }
        Err(err) => {
            tracing::warn!("no Monitor stream yet (redis: {err}); the server will keep retrying");
            None
        }
    };
    let mut server = Server::new("storage", storage.config().redis.clone(), storage.config().workers);
    server.register(StorageServer(storage.clone()));
    let served = server.run(daemon::shutdown_signal()).await;
    resizer.abort();
    rescanner.abort();
    if let Some(monitor) = monitor {
        monitor.abort();
    }
    Exit::served(served, "stopped")
}
