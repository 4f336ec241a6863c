//! `gateway-name-proxy` and `gateway-fqdn-proxy`: reverse proxies with zero capacity.

use crate::{Capacity, Challenge};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// A proxy backend: `http://ip[:port]`, or `ip:port` with TLS passthrough.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Backend(pub String);

impl Backend {
    /// ZOS's `Backend.Valid`: with passthrough an `ip:port`; without, an `http://` URL;
    /// in both cases a literal, non-loopback IP.
    pub fn validate(&self, tls_passthrough: bool) -> Result<(), String> {
        let host = if tls_passthrough {
            let (host, port) = split_host_port(&self.0)
                .ok_or_else(|| format!("failed to parse backend {} with error: missing port in address", self.0))?;
            if port.parse::<u16>().is_err() {
                return Err(format!("invalid port in backend: {port}"));
            }
            host
        } else {
            let rest = self.0.strip_prefix("http://").ok_or("scheme expected to be http")?;
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            match split_host_port(authority) {
                Some((host, _)) => host,
                None => authority.trim_start_matches('[').trim_end_matches(']'),
            }
        };
        match host.parse::<IpAddr>() {
            Ok(ip) if !ip.is_loopback() => Ok(()),
            _ => Err(format!("invalid ip address in backend: {host}")),
        }
    }

    /// ZOS's `Backend.AsAddress`: the `ip:port` to connect to; an `http://` URL without a port gives port 80.
    pub fn as_address(&self) -> Result<String, String> {
        let address = match self.0.strip_prefix("http://") {
            Some(rest) => {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
                if split_host_port(authority).is_some() {
                    authority.to_string()
                } else if authority.contains(':') {
                    format!("[{}]:80", authority.trim_start_matches('[').trim_end_matches(']'))
                } else {
                    format!("{authority}:80")
                }
            }
            None => self.0.clone(),
        };
        address
            .parse::<SocketAddr>()
            .map(|addr| addr.to_string())
            .map_err(|err| format!("invalid backend address '{}': {err}", self.0))
    }
}

/// Splits `host:port` or `[v6]:port`; `None` when there is no port.
fn split_host_port(text: &str) -> Option<(&str, &str)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = text.rsplit_once(':')?;
    if host.contains(':') {
        return None; // a bare IPv6 address has no port
    }
    Some((host, port))
}

fn validate_backends(backends: &[Backend], tls_passthrough: bool) -> Result<(), String> {
    if backends.is_empty() {
        return Err("backends list can not be empty".into());
    }
    for backend in backends {
        backend
            .validate(tls_passthrough)
            .map_err(|err| format!("failed to validate backend '{}': {err}", backend.0))?;
    }
    Ok(())
}

/// Data of a `gateway-name-proxy` workload: proxies `<name>.<gateway domain>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayNameProxy {
    /// The prefix name.
    pub name: String,
    /// Pass TLS through to the backends.
    pub tls_passthrough: bool,
    /// Backends.
    pub backends: Vec<Backend>,
    /// Optional private network to reach the backends through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// Data of a `gateway-fqdn-proxy` workload: proxies a full domain name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayFqdnProxy {
    /// The domain.
    pub fqdn: String,
    /// Pass TLS through to the backends.
    pub tls_passthrough: bool,
    /// Backends.
    pub backends: Vec<Backend>,
    /// Optional private network to reach the backends through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

fn put_proxy(c: &mut Challenge, host: &str, tls_passthrough: bool, backends: &[Backend], network: &Option<String>) {
    c.put(host);
    c.put(tls_passthrough);
    for backend in backends {
        c.put(&backend.0);
    }
    if let Some(network) = network {
        c.put(network);
    }
}

impl GatewayNameProxy {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || !self.name.chars().all(|ch| ch.is_alphanumeric() || ch == '_') {
            return Err("invalid name".into());
        }
        validate_backends(&self.backends, self.tls_passthrough)
    }
    pub(crate) fn capacity(&self) -> Capacity {
        Capacity::default()
    }
    pub(crate) fn challenge(&self, c: &mut Challenge) {
        put_proxy(c, &self.name, self.tls_passthrough, &self.backends, &self.network);
    }
}

impl GatewayFqdnProxy {
    pub(crate) fn validate(&self) -> Result<(), String> {
        let fqdn = self.fqdn.strip_suffix('.').unwrap_or(&self.fqdn);
        let labels: Vec<&str> = fqdn.split('.').collect();
        let label_ok = |label: &&str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err("invalid fqdn".into());
        }
        validate_backends(&self.backends, self.tls_passthrough)
    }
    pub(crate) fn capacity(&self) -> Capacity {
        Capacity::default()
    }
    pub(crate) fn challenge(&self, c: &mut Challenge) {
        put_proxy(c, &self.fqdn, self.tls_passthrough, &self.backends, &self.network);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(text: &str) -> Backend {
        Backend(text.into())
    }

    // Upstream `TestValidBackend` and `TestValidBackendIP6` (gridtypes/zos/gw_test.go).
    #[test]
    fn backend_validation_follows_passthrough() {
        assert!(backend("1.1.1.1:10").validate(true).is_ok());
        assert!(backend("1.1.1.1").validate(true).is_err());
        assert!(backend("1.1.1.1:66000").validate(true).is_err());
        assert!(backend("http://1.1.1.1:10").validate(true).is_err());
        assert!(backend("http://1.1.1.1:10").validate(false).is_ok());
        assert!(backend("http://1.1.1.1").validate(false).is_ok());
        assert!(backend("1.1.1.1:10").validate(false).is_err());
        assert!(backend("http://127.0.0.1").validate(false).is_err());
        assert!(backend("http://example.com").validate(false).is_err());
        assert!(backend("[2a02:1802:5e::223]:10").validate(true).is_ok());
        assert!(backend("http://[2a02:1802:5e::223]:10").validate(false).is_ok());
        assert!(backend("http://[::1]:10").validate(false).is_err());
    }

    // Upstream `TestAsAddress`.
    #[test]
    fn backend_as_address() {
        assert_eq!(backend("http://10.20.30.40").as_address(), Ok("10.20.30.40:80".to_string()));
        assert_eq!(backend("http://10.20.30.40:500").as_address(), Ok("10.20.30.40:500".to_string()));
        assert_eq!(backend("10.20.30.40:500").as_address(), Ok("10.20.30.40:500".to_string()));
        assert_eq!(backend("[2a02:1802:5e::223]:200").as_address(), Ok("[2a02:1802:5e::223]:200".to_string()));
        assert!(backend("2a02:1802:5e::223:200").as_address().is_err());
    }
}
