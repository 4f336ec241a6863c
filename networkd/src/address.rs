//! Deterministic names and addresses (reference sections 2.9 and 4): interface names from the network
//! id, the gateway of a subnet, ZOS's IPv4-to-IPv6 conversion, MACs derived from names.

use md5::{Digest, Md5};
use std::net::Ipv4Addr;

/// Longest Linux interface name.
pub const IFNAME_MAX: usize = 15;

/// Names of a network resource's parts, from its network id (13 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NrNames {
    /// The namespace: `n-<netid>`.
    pub namespace: String,
    /// The bridge VMs attach to: `b-<netid>`.
    pub bridge: String,
    /// The WireGuard interface: `w-<netid>`.
    pub wireguard: String,
    /// Host end of the link from the bridge into the namespace: `v-<netid>`.
    pub bridge_link: String,
    /// Host end of the link into the NAT side: `i-<netid>`.
    pub nat_link: String,
}

impl NrNames {
    /// The names for network id `netid`.
    pub fn new(netid: &str) -> NrNames {
        NrNames {
            namespace: format!("n-{netid}"),
            bridge: format!("b-{netid}"),
            wireguard: format!("w-{netid}"),
            bridge_link: format!("v-{netid}"),
            nat_link: format!("i-{netid}"),
        }
    }
}

/// A tap name with a 2-byte prefix (`t-`, `p-`), refusing what Linux would refuse.
pub fn tap_name(prefix: &str, name: &str) -> Result<String, String> {
    let full = format!("{prefix}{name}");
    if name.is_empty()
        || full.len() > IFNAME_MAX
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "invalid interface name '{full}': 1 to {IFNAME_MAX} characters of letters, digits, '_' and '-'"
        ));
    }
    Ok(full)
}

/// The gateway of a subnet: its `.1`.
pub fn gateway(subnet: &ipnet::Ipv4Net) -> Ipv4Addr {
    let octets = subnet.network().octets();
    Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3].saturating_add(1))
}

/// Checks a VM's private address: inside the subnet, not the network, the broadcast or the gateway.
pub fn validate_private_ip(subnet: &ipnet::Ipv4Net, ip: Ipv4Addr) -> Result<(), String> {
    if !subnet.contains(&ip) || ip == subnet.network() || ip == subnet.broadcast() {
        return Err(format!("ip {ip} is not a host address of subnet {subnet}"));
    }
    if ip == gateway(subnet) {
        return Err(format!("ip {ip} is reserved"));
    }
    Ok(())
}

/// ZOS's `Convert4to6`: `fd` + 5 bytes + the last two bytes of the IPv4 address. ZOS means the five
/// bytes to come from md5(netid), but calls `h.Sum(netid)`, which *appends* the digest of nothing to
/// the netid: the bytes are the first five characters of the network id. Reproduced as is.
pub fn ipv6_from_4(netid: &str, ip: Ipv4Addr) -> String {
    let mut prefix: Vec<u8> = netid.as_bytes().to_vec();
    prefix.extend_from_slice(&Md5::digest(b""));
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let octets = ip.octets();
    format!("fd{}:{}:{}:{:x}::{:x}", hex(&prefix[..1]), hex(&prefix[1..3]), hex(&prefix[3..5]), octets[2], octets[3])
}

/// The WireGuard address of a network resource: `100.64.<subnet byte 2>.<subnet byte 3>/16`.
pub fn wireguard_ip(subnet: &ipnet::Ipv4Net) -> String {
    let octets = subnet.network().octets();
    format!("100.64.{}.{}/16", octets[1], octets[2])
}

/// A stable, locally administered unicast MAC derived from a name.
pub fn mac_from(name: &str) -> String {
    let digest = Md5::digest(name.as_bytes());
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&digest[..6]);
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_linux() {
        let netid = zos_types::network_id(1, "net");
        let names = NrNames::new(&netid);
        for name in [&names.namespace, &names.bridge, &names.wireguard, &names.bridge_link, &names.nat_link] {
            assert_eq!(name.len(), IFNAME_MAX, "{name}");
        }
        assert!(tap_name("p-", "abcdefghijklm").is_ok());
        assert!(tap_name("p-", "abcdefghijklmn").is_err());
        assert!(tap_name("t-", "a/b").is_err());
    }

    #[test]
    fn gateway_is_reserved() {
        let subnet: ipnet::Ipv4Net = "10.20.2.0/24".parse().expect("subnet");
        assert_eq!(gateway(&subnet), Ipv4Addr::new(10, 20, 2, 1));
        assert_eq!(
            validate_private_ip(&subnet, Ipv4Addr::new(10, 20, 2, 1)),
            Err("ip 10.20.2.1 is reserved".to_string())
        );
        assert!(validate_private_ip(&subnet, Ipv4Addr::new(10, 20, 2, 2)).is_ok());
        assert!(validate_private_ip(&subnet, Ipv4Addr::new(10, 20, 3, 2)).is_err());
        assert!(validate_private_ip(&subnet, Ipv4Addr::new(10, 20, 2, 255)).is_err());
    }

    #[test]
    fn ipv6_conversion_uses_the_netid_bytes() {
        // netid "ABCDEFGHIJKLM": bytes 'A'=41, 'B'=42 'C'=43, 'D'=44 'E'=45; ip 10.20.2.5 -> 2, 5.
        assert_eq!(ipv6_from_4("ABCDEFGHIJKLM", Ipv4Addr::new(10, 20, 2, 5)), "fd41:4243:4445:2::5");
        assert_eq!(ipv6_from_4("ABCDEFGHIJKLM", Ipv4Addr::new(10, 20, 255, 16)), "fd41:4243:4445:ff::10");
    }

    #[test]
    fn wireguard_and_mac() {
        let subnet: ipnet::Ipv4Net = "10.20.2.0/24".parse().expect("subnet");
        assert_eq!(wireguard_ip(&subnet), "100.64.20.2/16");
        let mac = mac_from("p-tap");
        assert_eq!(mac, mac_from("p-tap"));
        assert_eq!(mac.len(), 17);
        assert_eq!(u8::from_str_radix(&mac[..2], 16).expect("hex") & 0x03, 0x02, "locally administered unicast");
    }
}
