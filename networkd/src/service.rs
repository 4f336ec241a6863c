//! `network@0.0.1` served by [`Networker`].

use crate::network::{NetError, Networker};
use zos_hardware::nic::{self, Network};
use zos_interfaces::network::{NetworkModule, NetworkResource, NetworkSpec, PublicIpStatus, PublicTap};
use zos_zbus::RemoteError;

fn blocking<T>(f: impl FnOnce() -> Result<T, NetError>) -> Result<T, RemoteError> {
    tokio::task::block_in_place(f).map_err(RemoteError::from)
}

impl NetworkModule for Networker {
    async fn interfaces(&self) -> Result<Network, RemoteError> {
        Ok(tokio::task::block_in_place(|| nic::discover(&self.config().root)))
    }
    async fn create_nr(&self, twin: u32, name: String, network: NetworkSpec) -> Result<NetworkResource, RemoteError> {
        blocking(|| Networker::create_nr(self, twin, &name, &network))
    }
    async fn delete_nr(&self, twin: u32, name: String) -> Result<(), RemoteError> {
        blocking(|| Networker::delete_nr(self, twin, &name))
    }
    async fn setup_priv_tap(&self, netid: String, name: String, ip: String) -> Result<String, RemoteError> {
        blocking(|| Networker::setup_priv_tap(self, &netid, &name, &ip))
    }
    async fn remove_tap(&self, name: String) -> Result<(), RemoteError> {
        blocking(|| Networker::remove_tap(self, &name))
    }
    async fn setup_pub_tap(&self, name: String, ip: String) -> Result<PublicTap, RemoteError> {
        blocking(|| Networker::setup_pub_tap(self, &name, &ip))
    }
    async fn remove_pub_tap(&self, name: String) -> Result<(), RemoteError> {
        blocking(|| Networker::remove_pub_tap(self, &name))
    }
    async fn public_ips(&self) -> Result<Vec<PublicIpStatus>, RemoteError> {
        Ok(Networker::public_ips(self))
    }
    async fn ipv6_from_4(&self, netid: String, ip: String) -> Result<String, RemoteError> {
        let addr = ip.parse().map_err(|_| RemoteError::new(zos_zbus::code::INVALID, format!("invalid ip '{ip}'")))?;
        Ok(crate::address::ipv6_from_4(&netid, addr))
    }
    async fn wireguard_ports(&self) -> Result<Vec<u16>, RemoteError> {
        Ok(Networker::wireguard_ports(self))
    }
    async fn networks(&self) -> Result<Vec<String>, RemoteError> {
        Ok(Networker::networks(self))
    }
}
