//! `network`: this node's part of a user's private network (sharable per twin).

use crate::text::{HexBytes, empty_as_none};
use crate::{Capacity, Challenge};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Length of a mycelium key.
pub const MYCELIUM_KEY_LEN: usize = 32;

/// A WireGuard peer of the network resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Peer {
    /// The peer's subnet.
    #[serde(with = "empty_as_none")]
    pub subnet: Option<IpNet>,
    /// The peer's WireGuard public key.
    pub wireguard_public_key: String,
    /// Routed ranges.
    pub allowed_ips: Vec<IpNet>,
    /// `host:port` of the peer, may be empty.
    pub endpoint: String,
}

/// Mycelium configuration of the network resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mycelium {
    /// 32-byte key, in hex.
    pub hex_key: HexBytes,
    /// Must be empty: user-defined peers are not allowed.
    pub peers: Vec<String>,
}

/// Data of a `network` workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Network {
    /// The whole network's range (an IPv4 /16).
    #[serde(with = "empty_as_none")]
    pub ip_range: Option<IpNet>,
    /// This node's part (an IPv4 /24).
    #[serde(with = "empty_as_none")]
    pub subnet: Option<IpNet>,
    /// WireGuard private key (encrypted for the node).
    pub wireguard_private_key: String,
    /// WireGuard listen port.
    pub wireguard_listen_port: u16,
    /// WireGuard peers.
    pub peers: Vec<Peer>,
    /// Mycelium configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mycelium: Option<Mycelium>,
}

fn put_net(c: &mut Challenge, net: &Option<IpNet>) {
    match net {
        Some(net) => c.put(net),
        None => c.put("<nil>"),
    }
}

impl Network {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.ip_range.is_none() {
            return Err("network IP range cannot be empty".into());
        }
        if self.subnet.is_none() {
            return Err("network resource subnet cannot empty".into());
        }
        if self.wireguard_private_key.is_empty() {
            return Err("network resource wireguard private key cannot empty".into());
        }
        for peer in &self.peers {
            if peer.subnet.is_none() {
                return Err("peer wireguard subnet cannot empty".into());
            }
            if peer.allowed_ips.is_empty() {
                return Err("peer wireguard allowedIPs cannot empty".into());
            }
            if peer.wireguard_public_key.is_empty() {
                return Err("peer wireguard public key cannot empty".into());
            }
        }
        if let Some(mycelium) = &self.mycelium {
            if mycelium.hex_key.0.len() != MYCELIUM_KEY_LEN {
                return Err("invalid mycelium key length, expected 32".into());
            }
            if !mycelium.peers.is_empty() {
                return Err("user defined mycelium peers are not allowed".into());
            }
        }
        Ok(())
    }

    pub(crate) fn capacity(&self) -> Capacity {
        Capacity::default()
    }

    pub(crate) fn challenge(&self, c: &mut Challenge) {
        put_net(c, &self.ip_range);
        put_net(c, &self.subnet);
        c.put(&self.wireguard_private_key);
        c.put(self.wireguard_listen_port);
        for peer in &self.peers {
            c.put(&peer.wireguard_public_key);
            c.put(&peer.endpoint);
            put_net(c, &peer.subnet);
            for ip in &peer.allowed_ips {
                c.put(ip);
            }
        }
        if let Some(mycelium) = &self.mycelium {
            c.put(&mycelium.hex_key);
            for peer in &mycelium.peers {
                c.put(peer);
            }
        }
    }
}
