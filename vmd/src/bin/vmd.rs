//! `vmd --config FILE`: chooses the accelerator (KVM only when a probe boot proves it), serves
//! `manager@0.0.1` on zbus as module `vmd`, and runs the monitor (restarts dead VMs, at most 3 times
//! in 2 minutes, then has provisiond decommission the workload; stops VMs whose workload is gone).
//!
//! Exit codes: 0 stopped by SIGTERM or SIGINT; 2 the configuration could not be read or parsed;
//! 3 the state directories could not be prepared; 4 the bus failed.

use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use zos_interfaces::daemon::{self, Exit};
use zos_interfaces::vm::VMServer;
use zos_vmd::service::{ProvisionWorkloads, VmService};
use zos_vmd::{Config, Manager};
use zos_zbus::Server;

#[derive(Parser)]
#[command(name = "vmd", version, about = "ZOS virtual machine daemon: QEMU VMs, supervised")]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, default_value = "/etc/zos/vmd.toml")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> Exit {
    daemon::init_logs();
    let args = Args::parse();
    let config: Config = match daemon::load_config(&args.config) {
        Ok(config) => config,
        Err(err) => return Exit::BadConfiguration.because(err),
    };
    let manager = match tokio::task::spawn_blocking(move || Manager::with_qemu(config)).await {
        Ok(Ok(manager)) => Arc::new(manager),
        Ok(Err(err)) => return Exit::Resources.because(format!("cannot prepare vmd: {err}")),
        Err(err) => return Exit::Resources.because(format!("cannot prepare vmd: the preparation panicked: {err}")),
    };
    let monitor = match zos_zbus::Client::connect(&manager.config().redis).await {
        Ok(client) => {
            let workloads = ProvisionWorkloads::new(client, tokio::runtime::Handle::current());
            let manager = manager.clone();
            let period = Duration::from_secs(manager.config().monitor_secs.max(1));
            Some(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(period).await;
                    let (manager, workloads) = (manager.clone(), workloads.clone());
                    let _ = tokio::task::spawn_blocking(move || manager.monitor_once(&workloads)).await;
                }
            }))
        }
        Err(err) => {
            tracing::warn!("no monitor (redis: {err}); VMs are not supervised");
            None
        }
    };
    let mut server = Server::new(zos_interfaces::vm::MODULE, manager.config().redis.clone(), manager.config().workers);
    server.register(VMServer(Arc::new(VmService(manager.clone()))));
    let served = server.run(daemon::shutdown_signal()).await;
    if let Some(monitor) = monitor {
        monitor.abort();
    }
    Exit::served(served, "stopped; the VMs go on running")
}
