//! `networkd.toml`.

use serde::Deserialize;
use std::path::PathBuf;

fn slash() -> PathBuf {
    PathBuf::from("/")
}
fn state() -> PathBuf {
    PathBuf::from("/var/cache/modules/networkd")
}
fn redis() -> String {
    "unix:///var/run/redis.sock".into()
}
fn ndmz() -> String {
    "ndmz".into()
}
fn public_bridge() -> String {
    "br-pub".into()
}

/// The daemon's configuration. Unknown keys are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Root of `/sys` for NIC discovery.
    #[serde(default = "slash")]
    pub root: PathBuf,
    /// Where networkd keeps what it created (networks, ports, leases, public taps).
    #[serde(default = "state")]
    pub state_dir: PathBuf,
    /// The zbus Redis.
    #[serde(default = "redis")]
    pub redis: String,
    /// The namespace of the node's NAT side, which every network resource links into.
    #[serde(default = "ndmz")]
    pub ndmz_namespace: String,
    /// The bridge public taps attach to.
    #[serde(default = "public_bridge")]
    pub public_bridge: String,
    /// The node's public IPv4 addresses with prefix, as the farm hands them out.
    #[serde(default)]
    pub public_ips: Vec<ipnet::Ipv4Net>,
    /// Their gateway.
    #[serde(default)]
    pub public_gateway: Option<std::net::Ipv4Addr>,
}

impl Config {
    /// Parses the TOML text.
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_parses_with_the_defaults() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../etc/zos/networkd.toml")).expect("example");
        let config = Config::parse(&text).expect("parses");
        assert_eq!(config.ndmz_namespace, "ndmz");
        assert!(config.public_ips.is_empty());
        assert!(Config::parse("public_ips = [\"not an ip\"]").is_err());
        assert!(Config::parse("publc_ips = []").is_err(), "unknown keys are refused");
    }
}
