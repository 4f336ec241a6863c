//! The node's networks: network resources in namespaces, VM taps, the public pool and its taps.
//! What networkd creates is recorded in its state directory, so a restart finds and keeps it.

use crate::address::{self, NrNames};
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use zos_interfaces::network::{NetworkResource, NetworkSpec, PublicIpStatus, PublicTap};
use zos_zbus::{RemoteError, code};

/// Ports that are never handed to a network (yggdrasil, mycelium, iperf, http(s), the zos api).
pub const RESERVED_PORTS: [u16; 8] = [9943, 9944, 9945, 9651, 300, 80, 443, 8082];
/// The NAT side's bridge, inside the NAT namespace.
pub const NAT_BRIDGE: &str = "br-ndmz";
/// The NAT side's gateway address.
pub const NAT_GATEWAY: Ipv4Addr = Ipv4Addr::new(100, 127, 0, 1);

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// Taken by someone else.
    #[error("{0}")]
    Conflict(String),
    /// Unknown network or tap.
    #[error("{0} not found")]
    NotFound(String),
    /// A command failed.
    #[error("{command} failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr.
        message: String,
    },
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The state directory cannot be trusted or prepared.
    #[error("{0}")]
    StateDir(#[from] zos_interfaces::daemon::StateDirError),
}

impl From<NetError> for RemoteError {
    fn from(err: NetError) -> Self {
        let code = match &err {
            NetError::Invalid(_) => code::INVALID,
            NetError::Conflict(_) => code::CONFLICT,
            NetError::NotFound(_) => code::NOT_FOUND,
            NetError::Command { .. } | NetError::Io(_) | NetError::StateDir(_) => code::INTERNAL,
        };
        RemoteError::new(code, err.to_string())
    }
}

/// Runs `ip ARGS`.
pub fn ip(args: &[&str]) -> Result<String, NetError> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|err| NetError::Command { command: "ip".into(), message: err.to_string() })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(NetError::Command {
            command: format!("ip {}", args.join(" ")),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// True when link `name` exists in namespace `ns` (`None`: the host).
pub fn link_exists(ns: Option<&str>, name: &str) -> bool {
    let mut args = Vec::new();
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["link", "show", "dev", name]);
    Command::new("ip").args(&args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// True when the named network namespace exists.
pub fn namespace_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NrRecord {
    twin: u32,
    name: String,
    subnet: ipnet::Ipv4Net,
    ip_range: ipnet::Ipv4Net,
    port: u16,
    lease: u32,
    wireguard: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PubRecord {
    ip: ipnet::Ipv4Net,
    mac: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    networks: BTreeMap<String, NrRecord>,
    public: BTreeMap<String, PubRecord>,
}

/// networkd's state and operations; calls are serialized by one lock.
#[derive(Debug)]
pub struct Networker {
    config: Config,
    state: Mutex<State>,
}

fn lease_address(lease: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 127, 0, 2)).saturating_add(lease))
}

impl Networker {
    /// Loads what an earlier run created, and makes sure the NAT namespace and the public bridge exist.
    pub fn start(config: Config) -> Result<Networker, NetError> {
        zos_interfaces::daemon::private_dir(&config.state_dir)?;
        let state: State = match std::fs::read(config.state_dir.join("state.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|err| NetError::Invalid(format!("corrupt networkd state: {err}")))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(err) => return Err(err.into()),
        };
        let networker = Networker { config, state: Mutex::new(state) };
        networker.ensure_nat_side()?;
        networker.ensure_public_bridge()?;
        for (netid, record) in &networker.lock().networks {
            if namespace_exists(&NrNames::new(netid).namespace) {
                tracing::info!(netid, twin = record.twin, name = record.name, "network resource found");
            } else {
                tracing::warn!(netid, "network resource recorded but missing; it is re-created at its next CreateNR");
            }
        }
        Ok(networker)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn save(&self, state: &State) -> Result<(), NetError> {
        let path = self.config.state_dir.join("state.json");
        let bytes = serde_json::to_vec_pretty(state).map_err(|err| NetError::Invalid(err.to_string()))?;
        zos_interfaces::daemon::write_private(&path, &bytes)?;
        Ok(())
    }

    fn ensure_nat_side(&self) -> Result<(), NetError> {
        let ns = &self.config.ndmz_namespace;
        if !namespace_exists(ns) {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        if !link_exists(Some(ns), NAT_BRIDGE) {
            ip(&["-n", ns, "link", "add", "name", NAT_BRIDGE, "type", "bridge"])?;
            ip(&["-n", ns, "addr", "add", &format!("{NAT_GATEWAY}/16"), "dev", NAT_BRIDGE])?;
        }
        ip(&["-n", ns, "link", "set", NAT_BRIDGE, "up"]).map(drop)
    }

    fn ensure_public_bridge(&self) -> Result<(), NetError> {
        let bridge = &self.config.public_bridge;
        if !link_exists(None, bridge) {
            ip(&["link", "add", "name", bridge, "type", "bridge"])?;
        }
        ip(&["link", "set", bridge, "up"]).map(drop)
    }

    /// ZOS's `CreateNR`, idempotent: namespace `n-<netid>`, bridge `b-<netid>` with the subnet's `.1`
    /// as gateway in the namespace, a link into the NAT namespace with a lease from 100.127/16, and a
    /// WireGuard interface where the kernel has WireGuard (when not, the result says so).
    pub fn create_nr(&self, twin: u32, name: &str, spec: &NetworkSpec) -> Result<NetworkResource, NetError> {
        zos_types::validate_name(name).map_err(NetError::Invalid)?;
        let subnet: ipnet::Ipv4Net =
            spec.subnet.parse().map_err(|_| NetError::Invalid(format!("invalid subnet '{}'", spec.subnet)))?;
        let ip_range: ipnet::Ipv4Net =
            spec.ip_range.parse().map_err(|_| NetError::Invalid(format!("invalid ip range '{}'", spec.ip_range)))?;
        if !ip_range.contains(&subnet) {
            return Err(NetError::Invalid(format!("subnet {subnet} is not inside the network range {ip_range}")));
        }
        let port = spec.wireguard_listen_port;
        let netid = zos_types::network_id(twin, name);
        let mut state = self.lock();
        let taken = RESERVED_PORTS.contains(&port)
            || state.networks.iter().any(|(other, record)| other != &netid && record.port == port);
        if port == 0 || taken {
            return Err(NetError::Conflict("wireguard listen port already in use, pick another one".into()));
        }
        let lease = match state.networks.get(&netid) {
            Some(record) => record.lease,
            None => (0..65_532u32)
                .find(|n| !state.networks.values().any(|r| r.lease == *n))
                .ok_or_else(|| NetError::Conflict("no NAT lease left".into()))?,
        };
        let names = NrNames::new(&netid);
        let ns = names.namespace.as_str();
        if !namespace_exists(ns) {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let _ = Command::new("ip").args(["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]).status();
        if !link_exists(None, &names.bridge) {
            ip(&["link", "add", "name", &names.bridge, "type", "bridge"])?;
        }
        ip(&["link", "set", &names.bridge, "up"])?;
        let gateway = address::gateway(&subnet);
        if !link_exists(None, &names.bridge_link) {
            let peer = format!("x-{netid}");
            ip(&["link", "add", &names.bridge_link, "type", "veth", "peer", "name", &peer])?;
            ip(&["link", "set", &peer, "netns", ns])?;
            ip(&["-n", ns, "link", "set", &peer, "name", "nr0"])?;
        }
        ip(&["-n", ns, "addr", "flush", "dev", "nr0"])?;
        ip(&["-n", ns, "addr", "add", &format!("{gateway}/{}", subnet.prefix_len()), "dev", "nr0"])?;
        ip(&["-n", ns, "link", "set", "nr0", "up"])?;
        ip(&["link", "set", &names.bridge_link, "master", &names.bridge, "up"])?;
        let ndmz = self.config.ndmz_namespace.as_str();
        let nat_address = lease_address(lease);
        if !link_exists(Some(ndmz), &names.nat_link) {
            let peer = format!("y-{netid}");
            ip(&["link", "add", &names.nat_link, "type", "veth", "peer", "name", &peer])?;
            ip(&["link", "set", &names.nat_link, "netns", ndmz])?;
            ip(&["link", "set", &peer, "netns", ns])?;
            ip(&["-n", ns, "link", "set", &peer, "name", "public"])?;
        }
        ip(&["-n", ndmz, "link", "set", &names.nat_link, "master", NAT_BRIDGE, "up"])?;
        ip(&["-n", ns, "addr", "replace", &format!("{nat_address}/16"), "dev", "public"])?;
        ip(&["-n", ns, "link", "set", "public", "up"])?;
        ip(&["-n", ns, "route", "replace", "default", "via", &NAT_GATEWAY.to_string()])?;
        let wireguard = if link_exists(Some(ns), &names.wireguard) {
            self.configure_wireguard(ns, &names.wireguard, port, &spec.wireguard_private_key)
        } else {
            match ip(&["-n", ns, "link", "add", &names.wireguard, "type", "wireguard"]) {
                Ok(_) => {
                    ip(&["-n", ns, "addr", "add", &address::wireguard_ip(&subnet), "dev", &names.wireguard])?;
                    ip(&["-n", ns, "link", "set", &names.wireguard, "up"])?;
                    self.configure_wireguard(ns, &names.wireguard, port, &spec.wireguard_private_key)
                }
                Err(err) => {
                    tracing::warn!(netid, "no WireGuard for this network: {err}");
                    format!("unsupported: this kernel cannot create WireGuard interfaces ({err})")
                }
            }
        };
        state.networks.insert(
            netid.clone(),
            NrRecord { twin, name: name.to_string(), subnet, ip_range, port, lease, wireguard: wireguard.clone() },
        );
        self.save(&state)?;
        Ok(NetworkResource {
            netid,
            namespace: names.namespace.clone(),
            bridge: names.bridge.clone(),
            gateway: gateway.to_string(),
            nat_address: format!("{nat_address}/16"),
            wireguard,
            port,
        })
    }

    /// The file `wg set` reads a network's private key from, while it runs.
    fn key_file(&self, iface: &str) -> std::path::PathBuf {
        self.config.state_dir.join(format!("{iface}.key"))
    }

    /// Sets the listen port and private key with `wg` (wireguard-tools), when it is installed. The key
    /// is handed over in a 0600 file that is removed as soon as `wg` has read it.
    fn configure_wireguard(&self, ns: &str, iface: &str, port: u16, private_key: &str) -> String {
        let key_file = self.key_file(iface);
        if zos_interfaces::daemon::write_private(&key_file, private_key.as_bytes()).is_err() {
            return "configured without keys: cannot write the key file".into();
        }
        let port = port.to_string();
        let key = key_file.to_string_lossy().into_owned();
        let set = Command::new("ip")
            .args(["netns", "exec", ns, "wg", "set", iface, "listen-port", &port, "private-key", &key])
            .output();
        let _ = std::fs::remove_file(&key_file);
        match set {
            Ok(out) if out.status.success() => "configured".into(),
            Ok(out) => {
                format!("configured without keys: wg set failed: {}", String::from_utf8_lossy(&out.stderr).trim())
            }
            Err(err) => format!("configured without keys: wireguard-tools missing ({err})"),
        }
    }

    /// Deletes what `create_nr` created for twin's network `name`, and nothing else. Idempotent.
    pub fn delete_nr(&self, twin: u32, name: &str) -> Result<(), NetError> {
        let netid = zos_types::network_id(twin, name);
        let names = NrNames::new(&netid);
        let mut state = self.lock();
        if namespace_exists(&names.namespace) {
            ip(&["netns", "del", &names.namespace])?;
        }
        if link_exists(None, &names.bridge) {
            ip(&["link", "del", &names.bridge])?;
        }
        if link_exists(None, &names.bridge_link) {
            ip(&["link", "del", &names.bridge_link])?;
        }
        if link_exists(Some(&self.config.ndmz_namespace), &names.nat_link) {
            ip(&["-n", &self.config.ndmz_namespace, "link", "del", &names.nat_link])?;
        }
        match std::fs::remove_file(self.key_file(&names.wireguard)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
            _ => {}
        }
        state.networks.remove(&netid);
        self.save(&state)
    }

    /// A VM's private tap on the network's bridge; the address must be a host of the subnet, not `.1`.
    pub fn setup_priv_tap(&self, netid: &str, name: &str, ip_text: &str) -> Result<String, NetError> {
        let tap = address::tap_name("t-", name).map_err(NetError::Invalid)?;
        let state = self.lock();
        let record = state.networks.get(netid).ok_or_else(|| NetError::NotFound(format!("network '{netid}'")))?;
        let addr: Ipv4Addr = ip_text.parse().map_err(|_| NetError::Invalid(format!("invalid ip '{ip_text}'")))?;
        address::validate_private_ip(&record.subnet, addr).map_err(NetError::Invalid)?;
        if !link_exists(None, &tap) {
            ip(&["tuntap", "add", "dev", &tap, "mode", "tap"])?;
        }
        ip(&["link", "set", &tap, "master", &NrNames::new(netid).bridge, "up"])?;
        Ok(tap)
    }

    /// Removes a private tap. Idempotent.
    pub fn remove_tap(&self, name: &str) -> Result<(), NetError> {
        let tap = address::tap_name("t-", name).map_err(NetError::Invalid)?;
        let _state = self.lock();
        if link_exists(None, &tap) {
            ip(&["link", "del", &tap])?;
        }
        Ok(())
    }

    /// A public tap `p-<name>` holding `ip` from the node's pool, with its MAC, and an anti-spoof
    /// filter (nftables) where `nft` is installed.
    pub fn setup_pub_tap(&self, name: &str, ip_text: &str) -> Result<PublicTap, NetError> {
        let tap = address::tap_name("p-", name).map_err(NetError::Invalid)?;
        let requested: ipnet::Ipv4Net =
            ip_text.parse().map_err(|_| NetError::Invalid(format!("invalid ip '{ip_text}'")))?;
        if !self.config.public_ips.contains(&requested) {
            return Err(NetError::Invalid(format!("ip {requested} is not in this node's public pool")));
        }
        let mut state = self.lock();
        if let Some((holder, _)) =
            state.public.iter().find(|(holder, record)| record.ip == requested && **holder != tap)
        {
            return Err(NetError::Conflict(format!("public ip {requested} is used by {holder}")));
        }
        if let Some(record) = state.public.get(&tap)
            && record.ip != requested
        {
            return Err(NetError::Conflict(format!("{tap} already holds {}", record.ip)));
        }
        if !link_exists(None, &tap) {
            ip(&["tuntap", "add", "dev", &tap, "mode", "tap"])?;
        }
        ip(&["link", "set", &tap, "master", &self.config.public_bridge, "up"])?;
        let mac = address::mac_from(&tap);
        apply_filter(&tap, &mac, requested.addr());
        state.public.insert(tap.clone(), PubRecord { ip: requested, mac: mac.clone() });
        self.save(&state)?;
        Ok(PublicTap {
            tap,
            ip: requested.to_string(),
            gateway: self.config.public_gateway.map(|g| g.to_string()).unwrap_or_default(),
            mac,
        })
    }

    /// Removes a public tap, its filter, and frees its address. Idempotent.
    pub fn remove_pub_tap(&self, name: &str) -> Result<(), NetError> {
        let tap = address::tap_name("p-", name).map_err(NetError::Invalid)?;
        let mut state = self.lock();
        if link_exists(None, &tap) {
            ip(&["link", "del", &tap])?;
        }
        remove_filter(&tap);
        state.public.remove(&tap);
        self.save(&state)
    }

    /// Removes everything networkd created on this host, as its state records it: every public tap with
    /// its filter, every private tap on a network's bridge, every network resource, the NAT namespace
    /// and the public bridge. What the state does not name is left alone. For the node's operator
    /// (`networkd teardown`), with the daemon stopped.
    pub fn teardown(config: Config) -> Result<(), NetError> {
        let state: State = match std::fs::read(config.state_dir.join("state.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|err| NetError::Invalid(format!("corrupt networkd state: {err}")))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(err) => return Err(err.into()),
        };
        let networks: Vec<(u32, String, String)> =
            state.networks.iter().map(|(netid, record)| (record.twin, record.name.clone(), netid.clone())).collect();
        let taps: Vec<String> = state.public.keys().cloned().collect();
        let networker = Networker { config, state: Mutex::new(state) };
        for tap in taps {
            if link_exists(None, &tap) {
                ip(&["link", "del", &tap])?;
            }
            remove_filter(&tap);
        }
        for (twin, name, netid) in networks {
            let bridge = NrNames::new(&netid).bridge;
            if link_exists(None, &bridge) {
                let slaves = ip(&["-o", "link", "show", "master", &bridge])?;
                for tap in slaves.lines().filter_map(|line| line.split(": ").nth(1)) {
                    let tap = tap.split('@').next().unwrap_or(tap);
                    if tap.starts_with("t-") {
                        ip(&["link", "del", tap])?;
                    }
                }
            }
            networker.delete_nr(twin, &name)?;
        }
        let config = &networker.config;
        if namespace_exists(&config.ndmz_namespace) {
            ip(&["netns", "del", &config.ndmz_namespace])?;
        }
        if link_exists(None, &config.public_bridge) {
            ip(&["link", "del", &config.public_bridge])?;
        }
        networker.lock().public.clear();
        let state = networker.lock();
        networker.save(&state)
    }

    /// The public pool (the node's `ipv4u` total) and who holds what.
    pub fn public_ips(&self) -> Vec<PublicIpStatus> {
        let state = self.lock();
        self.config
            .public_ips
            .iter()
            .map(|ip| PublicIpStatus {
                ip: ip.to_string(),
                tap: state
                    .public
                    .iter()
                    .find(|(_, record)| record.ip == *ip)
                    .map(|(tap, _)| tap.clone())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The network resources that exist (recorded and with their namespace), by network id.
    pub fn networks(&self) -> Vec<String> {
        self.lock().networks.keys().filter(|netid| namespace_exists(&NrNames::new(netid).namespace)).cloned().collect()
    }

    /// WireGuard ports in use by network resources.
    pub fn wireguard_ports(&self) -> Vec<u16> {
        self.lock().networks.values().map(|record| record.port).collect()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

fn nft_available() -> bool {
    Command::new("nft").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// One nftables table per public tap: traffic from the tap must carry its MAC and address.
fn apply_filter(tap: &str, mac: &str, addr: Ipv4Addr) {
    if !nft_available() {
        tracing::warn!(tap, "nft is not installed: no anti-spoof filter on the public tap");
        return;
    }
    remove_filter(tap);
    let rules = format!(
        "table bridge {tap} {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n    iifname \"{tap}\" ether saddr != {mac} drop\n    iifname \"{tap}\" ether type ip ip saddr != {addr} drop\n  }}\n}}\n"
    );
    let applied = Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().and_then(
        |mut child| {
            use std::io::Write;
            if let Some(stdin) = child.stdin.as_mut() {
                stdin.write_all(rules.as_bytes())?;
            }
            child.wait_with_output()
        },
    );
    match applied {
        Ok(out) if out.status.success() => {}
        Ok(out) => tracing::warn!(tap, "anti-spoof filter not applied: {}", String::from_utf8_lossy(&out.stderr)),
        Err(err) => tracing::warn!(tap, "anti-spoof filter not applied: {err}"),
    }
}

fn remove_filter(tap: &str) {
    if nft_available() {
        let _ = Command::new("nft").args(["delete", "table", "bridge", tap]).stderr(Stdio::null()).status();
    }
}
