//! `networkd --config FILE`: discovers the node's network, prepares the NAT namespace and the public
//! bridge, and serves `network@0.0.1` on zbus. `networkd --config FILE teardown` (daemon stopped)
//! removes everything networkd created, as its state records it, and exits.
//!
//! Exit codes: 0 stopped by SIGTERM or SIGINT; 2 the configuration could not be read or parsed;
//! 3 the network could not be prepared; 4 the bus failed.

use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use zos_hardware::nic;
use zos_interfaces::daemon::{self, Exit};
use zos_interfaces::network::NetworkServer;
use zos_networkd::{Config, Networker};
use zos_zbus::Server;

#[derive(Parser)]
#[command(name = "networkd", version, about = "ZOS network daemon: NICs, public IPv4, private networks")]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, default_value = "/etc/zos/networkd.toml")]
    config: PathBuf,
    /// What to do instead of serving.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Remove every namespace, bridge, tap and filter networkd created (run with the daemon stopped).
    Teardown,
}

#[tokio::main]
async fn main() -> Exit {
    daemon::init_logs();
    let args = Args::parse();
    let config: Config = match daemon::load_config(&args.config) {
        Ok(config) => config,
        Err(err) => return Exit::BadConfiguration.because(err),
    };
    if let Some(Command::Teardown) = args.command {
        return match tokio::task::block_in_place(|| Networker::teardown(config)) {
            Ok(()) => Exit::Stopped,
            Err(err) => Exit::Resources.because(format!("teardown failed: {err}")),
        };
    }
    let found = nic::discover(&config.root);
    tracing::info!(
        interfaces = found.interfaces.len(),
        management = found.management.as_deref().unwrap_or("none"),
        gateway = found.gateway.as_deref().unwrap_or("none"),
        "network discovered"
    );
    let networker = match tokio::task::block_in_place(|| Networker::start(config)) {
        Ok(networker) => Arc::new(networker),
        Err(err) => return Exit::Resources.because(format!("cannot prepare the network: {err}")),
    };
    let mut server = Server::new("network", networker.config().redis.clone(), 1);
    server.register(NetworkServer(networker.clone()));
    Exit::served(server.run(daemon::shutdown_signal()).await, "stopped")
}
