//! Network interfaces from `sys/class/net` under a root, their addresses and the default route
//! (`ip -j` on the live machine, the captured `cmd/ip-*.json` of a snapshot), and from that the
//! management interface. The shapes carry Go field names: networkd serves them on zbus as they are.

use crate::sysfs;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    /// Name.
    #[serde(rename = "Name")]
    pub name: String,
    /// MAC address.
    #[serde(rename = "MAC")]
    pub mac: String,
    /// Operational state (`up`, `down`, ...).
    #[serde(rename = "State")]
    pub state: String,
    /// Speed in Mb/s, when the driver says.
    #[serde(rename = "Speed")]
    pub speed: Option<u32>,
    /// Backed by a device (not a virtual interface).
    #[serde(rename = "Physical")]
    pub physical: bool,
    /// Addresses with prefix.
    #[serde(rename = "Addresses")]
    pub addresses: Vec<String>,
}

/// The node's network as discovered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Every interface.
    #[serde(rename = "Interfaces")]
    pub interfaces: Vec<Nic>,
    /// The default gateway, if any.
    #[serde(rename = "Gateway")]
    pub gateway: Option<String>,
    /// The interface that carries the default route: the management interface.
    #[serde(rename = "Management")]
    pub management: Option<String>,
}

#[derive(Deserialize)]
struct IpAddr {
    ifname: String,
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Deserialize)]
struct AddrInfo {
    local: String,
    prefixlen: u8,
}

#[derive(Deserialize)]
struct IpRoute {
    dst: String,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    dev: Option<String>,
}

/// `ip -j <what>` on the live machine, or the snapshot's `cmd/ip-<what>.json`.
fn ip_json(root: &Path, what: &str) -> String {
    if root == Path::new("/") {
        std::process::Command::new("ip")
            .args(["-j", what, "show"])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default()
    } else {
        sysfs::value(&root.join(format!("cmd/ip-{what}.json"))).unwrap_or_default()
    }
}

/// Discovers the interfaces under `root`.
pub fn discover(root: &Path) -> Network {
    let addresses: Vec<IpAddr> = serde_json::from_str(&ip_json(root, "addr")).unwrap_or_default();
    let routes: Vec<IpRoute> = serde_json::from_str(&ip_json(root, "route")).unwrap_or_default();
    let interfaces = sysfs::entries(&root.join("sys/class/net"))
        .into_iter()
        .map(|(name, sys)| Nic {
            mac: sysfs::value(&sys.join("address")).unwrap_or_default(),
            state: sysfs::value(&sys.join("operstate")).unwrap_or_default(),
            speed: sysfs::value(&sys.join("speed"))
                .and_then(|s| s.parse::<i64>().ok())
                .and_then(|s| u32::try_from(s).ok()),
            physical: sys.join("device").exists(),
            addresses: addresses
                .iter()
                .filter(|a| a.ifname == name)
                .flat_map(|a| a.addr_info.iter().map(|i| format!("{}/{}", i.local, i.prefixlen)))
                .collect(),
            name,
        })
        .collect();
    let default = routes.iter().find(|route| route.dst == "default");
    Network {
        interfaces,
        gateway: default.and_then(|route| route.gateway.clone()),
        management: default.and_then(|route| route.dev.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn dev_vm_snapshot() {
        let found = discover(&fixture("dev-vm"));
        let names: Vec<&str> = found.interfaces.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["eth0", "ifb0", "ifb1", "lo"]);
        let eth0 = &found.interfaces[0];
        assert_eq!(eth0.addresses.first().map(String::as_str), Some("192.0.2.2/24"));
        assert_eq!(found.gateway.as_deref(), Some("192.0.2.1"));
        assert_eq!(found.management.as_deref(), Some("eth0"));
    }

    #[test]
    fn h100_snapshot() {
        let found = discover(&fixture("h100-node"));
        assert!(found.interfaces.iter().any(|n| n.name == "eth0" && n.mac == "02:fc:00:00:00:01"));
    }

    #[test]
    fn live_machine() {
        let found = discover(Path::new("/"));
        assert!(found.interfaces.iter().any(|n| n.name == "lo" && n.addresses.iter().any(|a| a == "127.0.0.1/8")));
    }
}
