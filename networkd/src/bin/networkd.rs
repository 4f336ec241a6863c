//! `networkd --config FILE`: discovers the node's network, prepares the NAT namespace and the public
//! bridge, and serves `network@0.0.1` on zbus.
//!
//! Exit codes: 0 stopped by SIGTERM or SIGINT; 2 the configuration could not be read or parsed;
//! 3 the network could not be prepared; 4 the bus failed.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use zos_networkd::interface::NetworkServer;
use zos_networkd::{Config, Networker, nic};
use zos_zbus::Server;

#[derive(Parser)]
#[command(name = "networkd", version, about = "ZOS network daemon: NICs, public IPv4, private networks")]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, default_value = "/etc/zos/networkd.toml")]
    config: PathBuf,
}

fn load(path: &PathBuf) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Config::parse(&text).with_context(|| format!("{}: invalid configuration", path.display()))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let args = Args::parse();
    let config = match load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("{err:#}");
            return ExitCode::from(2);
        }
    };
    let found = nic::discover(&config.root);
    tracing::info!(
        interfaces = found.interfaces.len(),
        management = found.management.as_deref().unwrap_or("none"),
        gateway = found.gateway.as_deref().unwrap_or("none"),
        "network discovered"
    );
    let networker = match tokio::task::block_in_place(|| Networker::start(config)) {
        Ok(networker) => Arc::new(networker),
        Err(err) => {
            tracing::error!("cannot prepare the network: {err}");
            return ExitCode::from(3);
        }
    };
    let mut server = Server::new("network", networker.config().redis.clone(), 1);
    server.register(NetworkServer(networker.clone()));
    match server.run(zos_zbus::until_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!("bus failure: {err}");
            ExitCode::from(4)
        }
    }
}
