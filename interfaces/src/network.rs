//! `network@0.0.1`: networkd's module interface (ZOS `pkg/network.go`).

use serde::{Deserialize, Serialize};
use zos_hardware::nic::Network;

/// What a `network` workload asks of this node (its ZOS data, the parts networkd acts on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// The whole network's range, e.g. `10.20.0.0/16`.
    #[serde(rename = "IPRange")]
    pub ip_range: String,
    /// This node's subnet, e.g. `10.20.2.0/24`.
    #[serde(rename = "Subnet")]
    pub subnet: String,
    /// WireGuard private key.
    #[serde(rename = "WGPrivateKey")]
    pub wireguard_private_key: String,
    /// WireGuard listen port.
    #[serde(rename = "WGListenPort")]
    pub wireguard_listen_port: u16,
}

/// What a network resource got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkResource {
    /// Network id.
    #[serde(rename = "NetID")]
    pub netid: String,
    /// Namespace.
    #[serde(rename = "Namespace")]
    pub namespace: String,
    /// Bridge VMs attach to.
    #[serde(rename = "Bridge")]
    pub bridge: String,
    /// Gateway address of the subnet.
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// Address on the NAT side.
    #[serde(rename = "NatAddress")]
    pub nat_address: String,
    /// `configured`, or why WireGuard is not available on this node.
    #[serde(rename = "WireGuard")]
    pub wireguard: String,
    /// The reserved listen port.
    #[serde(rename = "Port")]
    pub port: u16,
}

/// A public tap and its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicTap {
    /// The tap (`p-<name>`).
    #[serde(rename = "Tap")]
    pub tap: String,
    /// The address with prefix.
    #[serde(rename = "IP")]
    pub ip: String,
    /// The gateway.
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// The MAC the guest must use.
    #[serde(rename = "MAC")]
    pub mac: String,
}

/// One address of the public pool and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicIpStatus {
    /// The address with prefix.
    #[serde(rename = "IP")]
    pub ip: String,
    /// The tap holding it, empty when free.
    #[serde(rename = "Tap")]
    pub tap: String,
}

zos_zbus::interface! {
    /// networkd's module interface.
    pub trait NetworkModule, client NetworkClient, server NetworkServer, object("network", "0.0.1") {
        /// The node's interfaces, default gateway and management interface.
        "Interfaces" => fn interfaces() -> Network;
        /// Creates (or re-applies, idempotently) the network resource of twin's network `name`.
        "CreateNR" => fn create_nr(twin: u32, name: String, network: NetworkSpec) -> NetworkResource;
        /// Deletes a network resource and everything it created (idempotent).
        "DeleteNR" => fn delete_nr(twin: u32, name: String) -> ();
        /// A VM's private tap `t-<name>` on the network's bridge, for address `ip`.
        "SetupPrivTap" => fn setup_priv_tap(netid: String, name: String, ip: String) -> String;
        /// Removes a private tap (idempotent).
        "RemoveTap" => fn remove_tap(name: String) -> ();
        /// A public tap `p-<name>` holding `ip` from the node's pool.
        "SetupPubTap" => fn setup_pub_tap(name: String, ip: String) -> PublicTap;
        /// Removes a public tap and frees its address (idempotent).
        "RemovePubTap" => fn remove_pub_tap(name: String) -> ();
        /// The public pool and who holds what.
        "PublicIPs" => fn public_ips() -> Vec<PublicIpStatus>;
        /// The IPv6 address of a private IPv4 address, as ZOS computes it.
        "GetIPv6From4" => fn ipv6_from_4(netid: String, ip: String) -> String;
        /// WireGuard ports in use.
        "WireguardPorts" => fn wireguard_ports() -> Vec<u16>;
        /// The network resources that exist, by network id.
        "Networks" => fn networks() -> Vec<String>;
    }
}
