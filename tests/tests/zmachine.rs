//! A zmachine end to end, with real processes: a private Redis, storaged on loop devices, networkd
//! with its namespaces, flistd with a hub on 127.0.0.1 serving an flist the test packed, vmd (QEMU
//! under TCG) and provisiond, which boots zmachines in container mode on a configured kernel and initrd
//! (the vmd tests' busybox guest) with their flist as the root over virtiofs. A deployment with a
//! network, a zmount and a zmachine is admitted and provisioned: the guest boots with its hostname,
//! its private address on a networkd tap and the zmount as its first disk; the console answers on
//! the network's gateway inside its namespace, and its public address is on the tap of the
//! deployment's ip workload; a delete removes the VM and its taps. Then a VM that
//! keeps dying is restarted by vmd's monitor three times and on the fourth death decommissioned
//! through provisiond, which releases its capacity. Needs root and what the vmd tests need.

#[path = "support/mod.rs"]
mod node_support;
#[path = "../../vmd/tests/support/mod.rs"]
mod support;

use serde_json::json;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use zos_interfaces::provision::{ProvisionClient, StatisticsClient};
use zos_interfaces::vm::VMClient;
use zos_tests::node::{Node, spawn};
use zos_types::{Deployment, ResultState, SigningKey};
use zos_zbus::Client;
use zos_zbus::local_redis::LocalRedis;

const GIB: u64 = 1 << 30;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[12; 32])
}

fn deployment(twin: u32, contract: u64, workloads: serde_json::Value) -> Deployment {
    zos_tests::node::signed_deployment(twin, contract, workloads, &key()).expect("deployment")
}

async fn settled(provision: &ProvisionClient, twin: u32, contract: u64) -> Deployment {
    zos_tests::node::settled(provision, twin, contract, Duration::from_secs(120)).await.expect("settled")
}

fn wait_log(log: &Path, text: &str, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        let seen = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
        if seen.contains(text) {
            return seen;
        }
        assert!(started.elapsed() < limit, "{text:?} not in {} within {limit:?}:\n{seen}", log.display());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends `command` to the console at `address` from inside namespace `ns` until `expect` comes back.
fn console(ns: &str, address: &str, command: &str, expect: &str) -> String {
    let (ns, address, command, expect) = (ns.to_string(), address.to_string(), command.to_string(), expect.to_string());
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut stream = std::net::TcpStream::connect(&address).expect("the console answers");
        stream.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let (started, mut seen, mut buf) = (Instant::now(), String::new(), [0u8; 4096]);
        while started.elapsed() < Duration::from_secs(30) && !seen.contains(&expect) {
            stream.write_all(command.as_bytes()).expect("write");
            if let Ok(n) = stream.read(&mut buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        seen
    })
    .join()
    .expect("console thread")
}

fn tail(log: &Path) -> String {
    let text = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_zmachine_end_to_end() {
    if let Some(why) = support::missing() {
        eprintln!("SKIPPED a_zmachine_end_to_end: {why}");
        return;
    }
    let pid = std::process::id() % 100_000;
    let tag = format!("zm{pid}");
    let mut node = Node::new(Vec::new(), Vec::new()).expect("node");
    let (kernel, initrd) = support::build_guest(node.dir.path());
    let redis = LocalRedis::start(node.dir.path()).unwrap_or_else(|err| panic!("{err}"));
    let url = redis.url();
    node.storaged_config(&url).expect("storaged config");
    node.networkd_config(&url, &tag).expect("networkd config");
    node.vmd_config(&url).expect("vmd config");
    // The zmachine's flist, packed by the test and served by a hub on 127.0.0.1 (its .fl and blocks).
    let hub = node_support::hub::Hub::start(&node.path("hub"));
    let tree = node.path("root-tree");
    std::fs::create_dir_all(tree.join("etc")).expect("tree");
    std::fs::write(tree.join("etc/zos-root"), b"flist-root-from-the-hub\n").expect("marker");
    let image = node.path("root.fl");
    zos_flistd::pack::pack(&tree, &hub.store(), &image).expect("pack");
    hub.put("/user/root.fl", &std::fs::read(&image).expect("image"));
    let flist_url = format!("{}/user/root.fl", hub.url());
    std::fs::write(
        node.path("flistd.toml"),
        format!("redis = \"{url}\"\nroot = \"{}\"\n", node.path("flistd").display()),
    )
    .expect("flistd config");
    node.provisiond_config(&url, &[(78, key().verifying_key().to_bytes())]).expect("provisiond config");
    node.zmachine_boot(&kernel, &initrd).expect("zmachine section");
    for daemon in ["storaged", "networkd", "flistd", "vmd", "provisiond"] {
        let child = spawn(node.dir.path(), daemon).expect("daemon");
        node.daemons.push(child);
    }
    let path = |name: &str| node.path(name);
    let client = Client::with_deadline(&url, Duration::from_secs(90)).await.expect("client");
    let provision = ProvisionClient::new(client.clone(), "provision");
    let statistics = StatisticsClient::new(client.clone(), "provision");
    let vmd = VMClient::new(client.clone(), zos_interfaces::vm::MODULE);
    let started = Instant::now();
    while statistics.get_counters().await.is_err() || vmd.list().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "provisiond or vmd did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let machines = path("vmd-run").join("machines");

    // A network, a zmount and a zmachine on them.
    let workloads = |net: &str, subnet: u8, port: u16, public: bool| {
        let mut list = vec![
            json!({"name": net, "type": "network", "data": {"ip_range": format!("10.{subnet}.0.0/16"), "subnet": format!("10.{subnet}.1.0/24"), "wireguard_private_key": "key", "wireguard_listen_port": port}}),
            json!({"name": "disk", "type": "zmount", "data": {"size": GIB}}),
            json!({"name": "vm", "type": "zmachine", "data": {
                "flist": flist_url,
                "network": {"interfaces": [{"network": net, "ip": format!("10.{subnet}.1.5")}], "public_ip": if public { "pub" } else { "" }},
                "compute_capacity": {"cpu": 1, "memory": 256 << 20},
                "mounts": [{"name": "disk", "mountpoint": "/data"}],
                "env": {"SSH_KEY": "ssh-ed25519 AAAA test@zos"}}}),
        ];
        if public {
            list.insert(1, json!({"name": "pub", "type": "ip", "data": {"v4": true}}));
        }
        serde_json::Value::Array(list)
    };
    assert!(
        provision
            .create_or_update(78, deployment(78, 1, workloads("net", 96, 32101, true)), false)
            .await
            .expect("create")
            .accepted
    );
    let dl = settled(&provision, 78, 1).await;
    for wl in &dl.workloads {
        assert_eq!(wl.result.state, ResultState::Ok, "{}: {}", wl.name, wl.result.error);
    }
    let vm = dl.workloads.iter().find(|w| w.name == "vm").expect("vm");
    assert_eq!(vm.result.data["ip"], "10.96.1.5");
    assert_eq!(vm.result.data["console_url"], "10.96.1.1:20005");
    assert_eq!(vmd.list().await.expect("list"), ["78-1-vm"]);
    let log = machines.join("78-1-vm/machine.log");
    let seen = wait_log(&log, support::READY, support::BOOT_LIMIT);
    assert!(seen.contains("GUEST-HOSTNAME=vm"), "{seen}");
    assert!(seen.contains("GUEST-VROOT=flist-root-from-the-hub"), "the flist is the root, over virtiofs: {seen}");
    let flist = zos_interfaces::flist::FlistClient::new(client.clone(), "flist");
    assert!(flist.exists("78-1-vm".into()).await.expect("exists"), "flistd mounts the root");
    assert!(seen.contains("GUEST-SEED=/dev/vdb"), "the zmount is the first disk, the seed the last: {seen}");
    assert!(
        seen.lines().any(|l| l.contains("GUEST-ADDR") && l.contains("eth0") && l.contains("10.96.1.5/24")),
        "{seen}"
    );
    assert!(
        seen.lines().any(|l| l.contains("GUEST-ADDR") && l.contains("eth1") && l.contains("203.0.113.20/24")),
        "the public address on the ip workload's tap: {seen}"
    );
    let netns = format!("n-{}", zos_types::network_id(78, "net"));
    let said = tokio::task::block_in_place(|| console(&netns, "10.96.1.1:20005", "echo E2E-$((6*7))\n", "E2E-42"));
    assert!(said.contains("E2E-42"), "console: {said}");
    let before = statistics.get_counters().await.expect("counters").users.workloads;
    assert_eq!(before, 4);
    assert_eq!(
        provision.reconcile().await.expect("reconcile"),
        Vec::new(),
        "the reconciler finds the VM and its root's volume, and nothing else"
    );
    let first_pid = vmd.inspect("78-1-vm".into()).await.expect("inspect").pid;
    assert_ne!(first_pid, 0);

    // Delete: the VM and its tap go.
    provision.deprovision(78, 1, "test".into()).await.expect("delete");
    let started = Instant::now();
    while provision.get(78, 1).await.is_ok() {
        assert!(started.elapsed() < Duration::from_secs(60), "not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(vmd.list().await.expect("list").is_empty());
    assert!(!zos_vmd::process::alive(first_pid, "qemu"));
    assert!(!machines.join("78-1-vm").exists());
    assert!(!flist.exists("78-1-vm".into()).await.expect("exists"), "the root is unmounted");
    let storage = zos_interfaces::storage::StorageClient::new(client.clone(), "storage");
    assert!(!storage.volume_exists("78-1-vm".into()).await.expect("volume"), "the root's volume is deleted");
    assert_eq!(statistics.get_counters().await.expect("counters").users.workloads, 0);

    // A VM that keeps dying: restarted three times, decommissioned on the fourth death.
    assert!(
        provision
            .create_or_update(78, deployment(78, 2, workloads("net2", 97, 32102, false)), false)
            .await
            .expect("create")
            .accepted
    );
    let dl = settled(&provision, 78, 2).await;
    assert!(dl.workloads.iter().all(|w| w.result.state == ResultState::Ok), "{dl:?}");
    assert_eq!(statistics.get_counters().await.expect("counters").users.workloads, 3);
    let mut last = 0;
    for death in 1..=4 {
        // Killed once vmd has it running again (a kill during QEMU's start-up is a failed restart,
        // which decommissions at once, as in ZOS).
        let started = Instant::now();
        let pid = loop {
            if let Ok(info) = vmd.inspect("78-2-vm".into()).await
                && info.pid != 0
                && info.pid != last
                && info.state == "running"
            {
                break info.pid;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not restarted before death {death}; vmd says:\n{}",
                tail(&path("vmd.log"))
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        zos_vmd::process::signal(pid, nix::sys::signal::Signal::SIGKILL);
        last = pid;
    }
    let started = Instant::now();
    while provision.get(78, 2).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not decommissioned; vmd says:\n{}",
            tail(&path("vmd.log"))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(vmd.list().await.expect("list").is_empty());
    assert_eq!(statistics.get_counters().await.expect("counters").users.workloads, 0, "its capacity is released");
}
