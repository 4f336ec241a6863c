//! End to end on a real node, with real processes: a private Redis, the storaged binary on loop devices,
//! the networkd binary with namespaces of its own, and the provisiond binary (which discovers the node
//! from /proc and the modules). A deployment with network, zmount, volume, zdb and ip is admitted, provisioned and checked
//! against the modules; a zmachine fails with "module unavailable" and gives its capacity back; a
//! deployment that does not fit is refused at the door with nothing stored; identity is enforced; a
//! delete removes what the modules made. Needs root (loop devices, mounts, namespaces); CI is root.

use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zos_interfaces::network::NetworkClient;
use zos_interfaces::provision::{ProvisionClient, StatisticsClient};
use zos_interfaces::storage::StorageClient;
use zos_tests::binary;
use zos_tests::node::{GIB, Node, quiet};
use zos_types::{Deployment, ResultState, SigningKey};
use zos_zbus::Client;
use zos_zbus::local_redis::LocalRedis;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

fn deployment(twin: u32, contract: u64, workloads: serde_json::Value) -> Deployment {
    zos_tests::node::signed_deployment(twin, contract, workloads, &key()).expect("deployment")
}

fn spawn(dir: &std::path::Path, daemon: &str) -> Child {
    zos_tests::node::spawn(dir, daemon).unwrap_or_else(|err| panic!("{err:#}"))
}

fn spawn_provisiond(dir: &std::path::Path) -> Child {
    spawn(dir, "provisiond")
}

async fn settled(provision: &ProvisionClient, twin: u32, contract: u64) -> Deployment {
    zos_tests::node::settled(provision, twin, contract, Duration::from_secs(60)).await.expect("settled")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_end_to_end() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED a_node_end_to_end: needs root for loop devices, mounts and namespaces (CI runs as root)");
        return;
    }
    let pid = std::process::id() % 100_000;
    let tag = format!("ze{pid}");
    let mut node = Node::new(Vec::new(), Vec::new()).expect("node");
    let redis = LocalRedis::start(node.dir.path()).unwrap_or_else(|err| panic!("{err}"));

    // storaged and networkd: the daemon binaries, on the bus.
    node.storaged_config(&redis.url()).expect("storaged config");
    node.networkd_config(&redis.url(), &tag).expect("networkd config");
    let path = |name: &str| node.dir.path().join(name);
    let storaged = spawn(node.dir.path(), "storaged");
    let networkd = spawn(node.dir.path(), "networkd");
    node.daemons.extend([storaged, networkd]);

    // provisiond, the binary; without a node file it reads /proc and asks storaged and networkd.
    node.provisiond_config(&redis.url(), &[(77, key().verifying_key().to_bytes())]).expect("config");
    node.provisiond = Some(spawn_provisiond(node.dir.path()));
    let client = Client::with_deadline(&redis.url(), Duration::from_secs(60)).await.expect("client");
    let provision = ProvisionClient::new(client.clone(), "provision");
    let statistics = StatisticsClient::new(client.clone(), "provision");
    let started = Instant::now();
    while statistics.get_counters().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "provisiond did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A deployment with network, zmount, volume, zdb and ip: admitted, provisioned, real.
    let dl = deployment(
        77,
        1,
        json!([
            {"name": "net", "type": "network", "data": {"ip_range": "10.95.0.0/16", "subnet": "10.95.1.0/24", "wireguard_private_key": "key", "wireguard_listen_port": 32001}},
            {"name": "disk", "type": "zmount", "data": {"size": GIB}},
            {"name": "vol", "type": "volume", "data": {"size": GIB / 2}},
            {"name": "db", "type": "zdb", "data": {"size": GIB, "mode": "seq"}},
            {"name": "pub", "type": "ip", "data": {"v4": true}},
        ]),
    );
    let admission = provision.create_or_update(77, dl, false).await.expect("create");
    assert!(admission.accepted, "{admission:?}");
    let done = settled(&provision, 77, 1).await;
    for wl in &done.workloads {
        assert_eq!(wl.result.state, ResultState::Ok, "{} failed: {}", wl.name, wl.result.error);
    }
    let storage_client = StorageClient::new(client.clone(), "storage");
    assert!(storage_client.disk_exists("77-1-disk".into()).await.expect("disk"));
    assert_eq!(storage_client.volume_lookup("77-1-vol".into()).await.expect("volume").usage.size, GIB / 2);
    assert_eq!(storage_client.devices().await.expect("devices").len(), 1, "the zdb took the HDD");
    let netid = zos_types::network_id(77, "net");
    assert!(zos_networkd::network::namespace_exists(&format!("n-{netid}")));
    node.namespaces.push(format!("n-{netid}"));
    node.links.push(format!("b-{netid}"));
    let tap = format!("p-{}", zos_types::WorkloadId::new(77, 1, "pub").unique("pub"));
    node.links.push(tap.clone());
    assert!(quiet("ip", &["link", "show", "dev", &tap]), "the public tap exists");
    assert_eq!(provision.list_public_ips().await.expect("ips"), ["203.0.113.20/24"]);
    assert_eq!(provision.reconcile().await.expect("reconcile"), Vec::new(), "the modules match the ledger");
    storage_client.volume_create("77-9-stray".into(), GIB / 4).await.expect("a stray volume");
    storage_client.disk_delete("77-1-disk".into()).await.expect("lose a disk");
    let drift = provision.reconcile().await.expect("reconcile");
    let seen: Vec<(String, String)> = drift.iter().map(|d| (d.kind.clone(), d.resource.clone())).collect();
    assert_eq!(
        seen,
        [("missing".to_string(), "77-1-disk".to_string()), ("orphan".to_string(), "77-9-stray".to_string())]
    );
    let missing = &drift[0];
    assert_eq!((missing.workload.as_str(), missing.state.as_str()), ("77-1-disk", "ok"), "drift names the workload");
    storage_client.volume_delete("77-9-stray".into()).await.expect("clean");
    storage_client.disk_create("77-1-disk".into(), GIB).await.expect("restore");

    // The reconciler compares only what is settled: while a job is making a deployment's volumes,
    // they are neither orphans nor missing.
    let volumes: Vec<serde_json::Value> =
        (0..12).map(|i| json!({"name": format!("v{i}"), "type": "volume", "data": {"size": GIB / 64}})).collect();
    assert!(provision.create_or_update(77, deployment(77, 6, json!(volumes)), false).await.expect("create").accepted);
    loop {
        let drift = provision.reconcile().await.expect("reconcile");
        assert!(
            drift.iter().all(|d| !d.resource.starts_with("77-6-")),
            "a running job's workloads reported: {drift:?}"
        );
        let dl = provision.get(77, 6).await.expect("get");
        if dl.workloads.iter().all(|wl| wl.result.state != ResultState::Init) {
            break;
        }
    }
    assert_eq!(provision.reconcile().await.expect("reconcile"), Vec::new(), "settled, and matching");
    provision.deprovision(77, 6, "test".into()).await.expect("delete");
    while provision.get(77, 6).await.is_ok() {
        let drift = provision.reconcile().await.expect("reconcile");
        assert!(
            drift.iter().all(|d| !d.resource.starts_with("77-6-")),
            "a deleting job's workloads reported: {drift:?}"
        );
    }

    // Operators follow state changes with `zosctl watch`.
    let watcher = Command::new(binary("zosctl").expect("zosctl"))
        .args(["--redis", &redis.url(), "--twin", "77", "--json", "watch", "--count", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("zosctl watch");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A zmachine: with no container kernel configured ([zmachine]) it fails clearly and gives its
    // capacity back (tests/zmachine.rs runs one with flistd and vmd).
    let vm = deployment(
        77,
        2,
        json!([{"name": "vm", "type": "zmachine", "data": {
        "network": {"interfaces": [{"network": "net", "ip": "10.95.1.5"}]}, "compute_capacity": {"cpu": 2, "memory": 4 * GIB}}}]),
    );
    assert!(provision.create_or_update(77, vm, false).await.expect("create vm").accepted);
    let vm = settled(&provision, 77, 2).await;
    assert_eq!(vm.workloads[0].result.state, ResultState::Error);
    assert!(vm.workloads[0].result.error.contains("module unavailable"));
    assert!(vm.workloads[0].result.error.contains("no container kernel"), "{}", vm.workloads[0].result.error);
    assert_eq!(statistics.get_counters().await.expect("counters").users.workloads, 5, "the failed VM holds nothing");
    let watched = tokio::task::block_in_place(|| watcher.wait_with_output()).expect("watch output");
    let change: serde_json::Value = serde_json::from_slice(&watched.stdout).expect("a JSON state change");
    assert_eq!((change["id"].as_str(), change["state"].as_str()), (Some("77-2-vm"), Some("error")));
    // zosctl reads deployments too, with --json.
    let key_file = path("twin77.key");
    std::fs::write(&key_file, hex::encode(key().to_bytes())).expect("key file");
    let zosctl_get = |key: &std::path::Path| {
        Command::new(binary("zosctl").expect("zosctl"))
            .args(["--redis", &redis.url(), "--twin", "77", "--key", key.to_str().expect("path"), "--json", "get", "2"])
            .output()
            .expect("zosctl get")
    };
    let got = zosctl_get(&key_file);
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    let got: Deployment = serde_json::from_slice(&got.stdout).expect("deployment");
    assert_eq!(got.contract_id, 2);
    // Twin operations are signed: another key, a replay and a stale request are refused with a code.
    let forged_key = path("forged.key");
    std::fs::write(&forged_key, hex::encode([12u8; 32])).expect("forged key file");
    let forged = zosctl_get(&forged_key);
    assert!(!forged.status.success(), "a request signed with another key is refused");
    assert!(
        String::from_utf8_lossy(&forged.stderr).contains("does not verify"),
        "{}",
        String::from_utf8_lossy(&forged.stderr)
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let request = zos_types::TwinRequest::sign("Get", 77, 2, (now, 1), &key());
    assert_eq!(provision.signed_get(request.clone()).await.expect("signed get").contract_id, 2);
    assert_eq!(provision.signed_get(request).await.expect_err("replayed").code(), Some("forbidden"));
    let stale = zos_types::TwinRequest::sign("Get", 77, 2, (now - 3_600, 2), &key());
    assert_eq!(provision.signed_get(stale).await.expect_err("stale").code(), Some("forbidden"));
    let for_delete = zos_types::TwinRequest::sign("Get", 77, 2, (now, 3), &key());
    assert_eq!(
        provision.signed_deprovision(for_delete, "x".into()).await.expect_err("a Get signature used to delete").code(),
        Some("forbidden")
    );

    // Too big: refused at the door with the numbers, nothing stored.
    let big = deployment(77, 3, json!([{"name": "big", "type": "zmount", "data": {"size": 100 * GIB}}]));
    let admission = provision.create_or_update(77, big, false).await.expect("answer");
    assert!(!admission.accepted);
    assert_eq!(admission.workloads[0].shortfalls[0].requested, 100 * GIB);
    assert_eq!(provision.get(77, 3).await.expect_err("nothing stored").code(), Some("not_found"));

    // Identity: another twin, a forged signature.
    let theirs = deployment(77, 4, json!([{"name": "d", "type": "zmount", "data": {"size": GIB}}]));
    assert_eq!(
        provision.create_or_update(78, theirs.clone(), false).await.expect_err("twin").code(),
        Some("forbidden")
    );
    let mut forged = theirs;
    forged.metadata = "tampered".into();
    assert_eq!(provision.create_or_update(77, forged, false).await.expect_err("forged").code(), Some("forbidden"));
    assert_eq!(
        provision.get(78, 1).await.expect_err("not theirs").code(),
        Some("not_found"),
        "a twin sees only its own"
    );

    // Update: growing the disk within capacity is accepted and applied; past it, refused.
    let mut grown = provision.get(77, 1).await.expect("get");
    grown.version = 1;
    let disk = grown.workloads.iter_mut().find(|wl| wl.name == "disk").expect("disk");
    disk.version = 1;
    disk.data = zos_types::WorkloadData::ZMount(zos_types::workload::ZMount { size: zos_types::Unit::gib(2) });
    grown.signature_requirement.signatures.clear();
    grown.sign(77, &key());
    let mut overflow = grown.clone();
    assert!(provision.create_or_update(77, grown, true).await.expect("update").accepted);
    let updated = settled(&provision, 77, 1).await;
    assert_eq!(updated.version, 1);
    assert_eq!(
        storage_client.disk_lookup("77-1-disk".into()).await.expect("disk").size as u64,
        2 * GIB,
        "the vdisk grew"
    );
    overflow.version = 2;
    let disk = overflow.workloads.iter_mut().find(|wl| wl.name == "disk").expect("disk");
    disk.version = 2;
    disk.data = zos_types::WorkloadData::ZMount(zos_types::workload::ZMount { size: zos_types::Unit::gib(500) });
    overflow.signature_requirement.signatures.clear();
    overflow.sign(77, &key());
    assert!(!provision.create_or_update(77, overflow, true).await.expect("answer").accepted, "refused at the door");
    assert_eq!(provision.get(77, 1).await.expect("get").version, 1, "nothing changed");

    // SIGKILL provisiond right after accepting a deployment; after a restart it converges, without
    // double booking.
    let before = statistics.get_counters().await.expect("counters");
    let late = deployment(77, 5, json!([{"name": "late", "type": "volume", "data": {"size": GIB}}]));
    assert!(provision.create_or_update(77, late, false).await.expect("create").accepted);
    if let Some(mut child) = node.provisiond.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
    node.provisiond = Some(spawn_provisiond(node.dir.path()));
    let done = settled(&provision, 77, 5).await;
    assert_eq!(done.workloads[0].result.state, ResultState::Ok);
    let after = statistics.get_counters().await.expect("counters");
    assert_eq!(after.users.workloads, before.users.workloads + 1, "counted once");
    // Disks counted twice after every restart: the pools' use comes from what storaged reports as no
    // workload's, the workloads' from their reservations; a restart must not add them again.
    assert_eq!(after.used.sru.bytes(), before.used.sru.bytes() + GIB, "SSD use after a restart, byte for byte");
    assert_eq!(after.used.hru, before.used.hru, "HDD use after a restart, byte for byte");
    assert!(storage_client.volume_exists("77-5-late".into()).await.expect("volume"));

    // A simulated reboot: the tmpfs marker is gone; everything alive is provisioned again, counted once.
    if let Some(mut child) = node.provisiond.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
    std::fs::remove_file(path("run/provisiond")).expect("marker");
    storage_client
        .volume_delete("77-5-late".into())
        .await
        .expect("lose a volume, as a reboot of a tmpfs-backed module could");
    node.provisiond = Some(spawn_provisiond(node.dir.path()));
    let started = Instant::now();
    while !storage_client.volume_exists("77-5-late".into()).await.expect("volume") {
        assert!(started.elapsed() < Duration::from_secs(60), "the reboot did not re-provision");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(path("run/provisiond").exists(), "the marker is back");
    assert_eq!(
        statistics.get_counters().await.expect("counters").users.workloads,
        after.users.workloads,
        "nothing counted twice"
    );

    // Restart storaged and provisiond both: the counters equal, byte for byte, what the live workloads
    // hold plus what the system keeps (reserved memory, the pools' use by no workload: the cache volume).
    let storaged = node.daemons.remove(0);
    for mut child in [Some(storaged), node.provisiond.take()].into_iter().flatten() {
        let _ = child.kill();
        let _ = child.wait();
    }
    node.daemons.insert(0, spawn(node.dir.path(), "storaged"));
    let started = Instant::now();
    while storage_client.metrics().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "storaged did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.provisiond = Some(spawn_provisiond(node.dir.path()));
    let started = Instant::now();
    while statistics.get_counters().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "provisiond did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counters = statistics.get_counters().await.expect("counters");
    let mut live = zos_types::Capacity::default();
    for deployment in provision.list(77).await.expect("list") {
        for workload in deployment.workloads.iter().filter(|wl| wl.result.state.is_okay()) {
            live = live.saturating_add(&workload.capacity());
        }
    }
    let metrics = storage_client.metrics().await.expect("metrics");
    let system = |kind: &str| metrics.iter().filter(|m| m.kind == kind).map(|m| m.system).sum::<u64>();
    assert_eq!(counters.used.cru, live.cru, "CPU after restarting storaged and provisiond");
    assert_eq!(counters.used.mru.bytes(), live.mru.bytes() + counters.system.mru.bytes(), "memory, byte for byte");
    assert_eq!(counters.used.sru.bytes(), live.sru.bytes() + system("ssd"), "SSD, byte for byte");
    assert_eq!(counters.used.hru.bytes(), live.hru.bytes() + system("hdd"), "HDD, byte for byte");

    // Delete: the modules' resources go.
    provision.deprovision(77, 1, "test".into()).await.expect("delete");
    let started = Instant::now();
    while provision.get(77, 1).await.is_ok() {
        assert!(started.elapsed() < Duration::from_secs(60), "the deletion never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!storage_client.disk_exists("77-1-disk".into()).await.expect("disk"));
    assert!(!storage_client.volume_exists("77-1-vol".into()).await.expect("volume"));
    assert!(storage_client.devices().await.expect("devices").is_empty(), "deleting the zdb released its device");
    assert_eq!(
        statistics.get_counters().await.expect("counters").used.hru.bytes(),
        0,
        "and the ledger holds no HDD for it"
    );
    assert!(provision.reconcile().await.expect("reconcile").is_empty(), "no orphan left");
    assert!(!zos_networkd::network::namespace_exists(&format!("n-{netid}")));
    assert!(!quiet("ip", &["link", "show", "dev", &tap]));
    assert!(
        NetworkClient::new(client, "network").networks().await.expect("networks").is_empty(),
        "nothing left on networkd"
    );
}
