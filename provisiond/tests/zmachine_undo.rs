//! The zmachine manager against fake modules on a private Redis: a VM that vmd refuses leaves no tap,
//! no flist mount and no root volume behind (everything made is undone, newest first), and a VM that vmd already has is answered without making
//! anything again (idempotent). The real path, with every daemon, is `tests/tests/zmachine.rs`.

use serde_json::json;
use std::sync::{Arc, Mutex};
use zos_interfaces::flist::{FlistModule, FlistServer, MountOptions};
use zos_interfaces::network::{NetworkModule, NetworkResource, NetworkServer, NetworkSpec, PublicIpStatus, PublicTap};
use zos_interfaces::storage::{
    BrokenDevice, BrokenPool, Device, PoolMetrics, StorageModule, StorageServer, Usage, VDisk, Volume,
};
use zos_interfaces::vm::{MachineInfo, MachineMetrics, VM, VMInfo, VMModule, VMServer};
use zos_provisiond::Managers;
use zos_provisiond::modules::ModuleManagers;
use zos_provisiond::zmachine::ZMachineBoot;
use zos_types::{Workload, WorkloadId};
use zos_zbus::RemoteError;

fn nope<T>() -> Result<T, RemoteError> {
    Err(RemoteError::new("unavailable", "not in this fake"))
}

#[derive(Default)]
struct Calls(Mutex<Vec<String>>);

impl Calls {
    fn push(&self, call: String) {
        self.0.lock().expect("lock").push(call);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

struct FakeNetwork(Arc<Calls>);

impl NetworkModule for FakeNetwork {
    async fn interfaces(&self) -> Result<zos_hardware::nic::Network, RemoteError> {
        nope()
    }
    async fn create_nr(
        &self,
        _twin: u32,
        _name: String,
        _network: NetworkSpec,
    ) -> Result<NetworkResource, RemoteError> {
        nope()
    }
    async fn delete_nr(&self, _twin: u32, _name: String) -> Result<(), RemoteError> {
        nope()
    }
    async fn setup_priv_tap(&self, netid: String, name: String, ip: String) -> Result<String, RemoteError> {
        self.0.push(format!("setup_priv_tap {netid} {name} {ip}"));
        Ok(format!("t-{name}"))
    }
    async fn remove_tap(&self, name: String) -> Result<(), RemoteError> {
        self.0.push(format!("remove_tap {name}"));
        Ok(())
    }
    async fn setup_pub_tap(&self, _name: String, _ip: String) -> Result<PublicTap, RemoteError> {
        nope()
    }
    async fn remove_pub_tap(&self, _name: String) -> Result<(), RemoteError> {
        nope()
    }
    async fn public_ips(&self) -> Result<Vec<PublicIpStatus>, RemoteError> {
        nope()
    }
    async fn ipv6_from_4(&self, _netid: String, _ip: String) -> Result<String, RemoteError> {
        nope()
    }
    async fn wireguard_ports(&self) -> Result<Vec<u16>, RemoteError> {
        nope()
    }
    async fn networks(&self) -> Result<Vec<String>, RemoteError> {
        nope()
    }
}

struct FakeVmd {
    calls: Arc<Calls>,
    has: bool,
}

impl VMModule for FakeVmd {
    async fn run(&self, vm: VM) -> Result<MachineInfo, RemoteError> {
        let iface = &vm.network.ifaces[0];
        self.calls.push(format!(
            "run {} {} {} {} root {}",
            vm.name, iface.tap, iface.ips[0], iface.ip4_default_gateway, vm.boot.path
        ));
        Err(RemoteError::new("internal", "qemu-system-x86_64 failed (exit status: 1)"))
    }
    async fn inspect(&self, name: String) -> Result<VMInfo, RemoteError> {
        self.calls.push(format!("inspect {name}"));
        Ok(VMInfo { console_url: "10.1.1.1:20005".into(), ..VMInfo::default() })
    }
    async fn delete(&self, name: String) -> Result<(), RemoteError> {
        self.calls.push(format!("delete {name}"));
        Ok(())
    }
    async fn exists(&self, _name: String) -> Result<bool, RemoteError> {
        Ok(self.has)
    }
    async fn logs(&self, _name: String) -> Result<String, RemoteError> {
        nope()
    }
    async fn list(&self) -> Result<Vec<String>, RemoteError> {
        nope()
    }
    async fn metrics(&self) -> Result<MachineMetrics, RemoteError> {
        nope()
    }
    async fn lock(&self, _name: String, _lock: bool) -> Result<(), RemoteError> {
        nope()
    }
}

struct FakeStorage(Arc<Calls>);

impl StorageModule for FakeStorage {
    async fn cache(&self) -> Result<Volume, RemoteError> {
        nope()
    }
    async fn total(&self, _kind: String) -> Result<u64, RemoteError> {
        nope()
    }
    async fn broken_pools(&self) -> Result<Vec<BrokenPool>, RemoteError> {
        nope()
    }
    async fn broken_devices(&self) -> Result<Vec<BrokenDevice>, RemoteError> {
        nope()
    }
    async fn volume_create(&self, name: String, size: u64) -> Result<Volume, RemoteError> {
        self.0.push(format!("volume_create {name} {size}"));
        Ok(Volume { name: name.clone(), path: format!("/mnt/ssd0/{name}"), usage: Usage { size, used: 0 } })
    }
    async fn volume_create_on(&self, name: String, size: u64, pool: String) -> Result<Volume, RemoteError> {
        self.0.push(format!("volume_create_on {name} {size} {pool}"));
        Ok(Volume { name: name.clone(), path: format!("/mnt/{pool}/{name}"), usage: Usage { size, used: 0 } })
    }
    async fn volume_update(&self, _name: String, _size: u64) -> Result<(), RemoteError> {
        nope()
    }
    async fn volume_lookup(&self, _name: String) -> Result<Volume, RemoteError> {
        nope()
    }
    async fn volume_exists(&self, _name: String) -> Result<bool, RemoteError> {
        nope()
    }
    async fn volume_delete(&self, name: String) -> Result<(), RemoteError> {
        self.0.push(format!("volume_delete {name}"));
        Ok(())
    }
    async fn volume_list(&self) -> Result<Vec<Volume>, RemoteError> {
        nope()
    }
    async fn disk_create(&self, _name: String, _size: u64) -> Result<VDisk, RemoteError> {
        nope()
    }
    async fn disk_create_on(&self, _name: String, _size: u64, _pool: String) -> Result<VDisk, RemoteError> {
        nope()
    }
    async fn disk_resize(&self, _name: String, _size: u64) -> Result<VDisk, RemoteError> {
        nope()
    }
    async fn disk_write(&self, _name: String, _image: String) -> Result<(), RemoteError> {
        nope()
    }
    async fn disk_format(&self, _name: String) -> Result<(), RemoteError> {
        nope()
    }
    async fn disk_lookup(&self, _name: String) -> Result<VDisk, RemoteError> {
        nope()
    }
    async fn disk_exists(&self, _name: String) -> Result<bool, RemoteError> {
        nope()
    }
    async fn disk_delete(&self, _name: String) -> Result<(), RemoteError> {
        nope()
    }
    async fn disk_list(&self) -> Result<Vec<VDisk>, RemoteError> {
        nope()
    }
    async fn devices(&self) -> Result<Vec<Device>, RemoteError> {
        nope()
    }
    async fn device_allocate(&self, _min: u64) -> Result<Device, RemoteError> {
        nope()
    }
    async fn device_allocate_on(&self, _pool: String, _min: u64) -> Result<Device, RemoteError> {
        nope()
    }
    async fn device_lookup(&self, _name: String) -> Result<Device, RemoteError> {
        nope()
    }
    async fn device_release(&self, _name: String) -> Result<(), RemoteError> {
        nope()
    }
    async fn metrics(&self) -> Result<Vec<PoolMetrics>, RemoteError> {
        nope()
    }
}

struct FakeFlistd(Arc<Calls>);

impl FlistModule for FakeFlistd {
    async fn mount(&self, name: String, url: String, opt: MountOptions) -> Result<String, RemoteError> {
        self.0.push(format!("mount {name} {url} {} {}", opt.limit, opt.persisted_volume));
        Ok(format!("/flistd/mountpoint/{name}"))
    }
    async fn update_mount_size(&self, _name: String, _limit: u64) -> Result<String, RemoteError> {
        nope()
    }
    async fn unmount(&self, name: String) -> Result<(), RemoteError> {
        self.0.push(format!("unmount {name}"));
        Ok(())
    }
    async fn hash_from_root_path(&self, _name: String) -> Result<String, RemoteError> {
        nope()
    }
    async fn flist_hash(&self, _url: String) -> Result<String, RemoteError> {
        nope()
    }
    async fn exists(&self, _name: String) -> Result<bool, RemoteError> {
        nope()
    }
}

fn workload() -> Workload {
    serde_json::from_value(json!({"version": 0, "name": "vm", "type": "zmachine", "data": {
        "flist": "https://hub.grid.tf/x.flist",
        "network": {"interfaces": [{"network": "net", "ip": "10.1.1.5"}]},
        "compute_capacity": {"cpu": 1, "memory": 512u64 << 20}}}))
    .expect("workload")
}

/// The managers over fake networkd and vmd servers (which run until the test's runtime ends).
async fn managers_with(has: bool, url: &str) -> (ModuleManagers, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let mut network = zos_zbus::Server::new("network", url.to_string(), 1);
    network.register(NetworkServer(Arc::new(FakeNetwork(calls.clone()))));
    let mut vmd = zos_zbus::Server::new(zos_interfaces::vm::MODULE, url.to_string(), 1);
    vmd.register(VMServer(Arc::new(FakeVmd { calls: calls.clone(), has })));
    let mut storage = zos_zbus::Server::new("storage", url.to_string(), 1);
    storage.register(StorageServer(Arc::new(FakeStorage(calls.clone()))));
    let mut flistd = zos_zbus::Server::new("flist", url.to_string(), 1);
    flistd.register(FlistServer(Arc::new(FakeFlistd(calls.clone()))));
    for server in [network, vmd, storage, flistd] {
        tokio::spawn(async move { server.run(std::future::pending::<()>()).await });
    }
    let client = zos_zbus::Client::connect(url).await.expect("client");
    let boot = ZMachineBoot { kernel: "/boot/k".into(), initrd: "/boot/i".into() };
    (ModuleManagers::new(client).with_zmachine_boot(Some(boot)), calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_vm_leaves_no_tap_and_a_known_one_is_left_as_it_is() {
    if std::process::Command::new("redis-server").arg("--version").output().is_err() {
        eprintln!("SKIPPED a_refused_vm_leaves_no_tap_and_a_known_one_is_left_as_it_is: needs redis-server");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = zos_zbus::local_redis::LocalRedis::start(dir.path()).expect("redis");
    let id = WorkloadId::new(7, 9, "vm");
    let tap = id.unique("net");
    let netid = zos_types::network_id(7, "net");

    let (managers, calls) = managers_with(false, &redis.url()).await;
    let err = managers.provision(&id, &workload(), None).await.expect_err("vmd refuses");
    assert!(err.contains("qemu-system-x86_64 failed"), "{err}");
    assert_eq!(
        calls.all(),
        [
            "volume_create 7-9-vm 524288000".to_string(),
            "mount 7-9-vm https://hub.grid.tf/x.flist 524288000 /mnt/ssd0/7-9-vm".to_string(),
            format!("setup_priv_tap {netid} {tap} 10.1.1.5"),
            format!("run 7-9-vm t-{tap} 10.1.1.5/24 10.1.1.1 root /flistd/mountpoint/7-9-vm"),
            "delete 7-9-vm".to_string(),
            format!("remove_tap {tap}"),
            "unmount 7-9-vm".to_string(),
            "volume_delete 7-9-vm".to_string(),
        ],
        "made, refused, undone in reverse"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let redis = zos_zbus::local_redis::LocalRedis::start(dir.path()).expect("redis");
    let (managers, calls) = managers_with(true, &redis.url()).await;
    let result = managers.provision(&id, &workload(), None).await.expect("known vm");
    assert_eq!(result["console_url"], "10.1.1.1:20005");
    assert_eq!(result["ip"], "10.1.1.5");
    assert_eq!(calls.all(), ["inspect 7-9-vm"], "nothing made again");
}
