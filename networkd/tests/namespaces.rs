//! networkd in real network namespaces, over a real Redis: two private networks, "VMs" (veth ends in
//! namespaces of their own) that reach each other and not the other network, public taps on a test
//! bridge, idempotent create and delete, and a restart that keeps what exists.
//! Never touches the host's own interfaces; everything is named after this test and removed on drop.
//! Needs root; CI runs as root, elsewhere the test says why it is skipped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zos_interfaces::network::{NetworkClient, NetworkSpec};
use zos_networkd::address::NrNames;
use zos_zbus::Client;
use zos_zbus::local_redis::LocalRedis;

fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|err| panic!("{program}: {err}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn ping(from_ns: &str, to: &str) -> bool {
    quiet("ip", &["netns", "exec", from_ns, "ping", "-c", "1", "-W", "1", to])
}

/// Everything the test creates, removed on drop even when the test fails.
struct Rig {
    tag: String,
    netids: Vec<String>,
    namespaces: Vec<String>,
    links: Vec<String>,
    daemon: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn stop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop();
        for netid in &self.netids {
            let names = NrNames::new(netid);
            let _ = quiet("ip", &["netns", "del", &names.namespace]);
            let _ = quiet("ip", &["link", "del", &names.bridge]);
            let _ = quiet("ip", &["link", "del", &names.bridge_link]);
        }
        for ns in &self.namespaces {
            let _ = quiet("ip", &["netns", "del", ns]);
        }
        for link in &self.links {
            let _ = quiet("ip", &["link", "del", link]);
        }
        for table in ["p-zt1", "p-zt2"] {
            let _ = quiet("nft", &["delete", "table", "bridge", table]);
        }
        eprintln!("cleaned up after {}", self.tag);
    }
}

fn spawn(config: &std::path::Path, log: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_networkd"))
        .args(["--config", config.to_str().expect("path")])
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("start networkd")
}

async fn ready(network: &NetworkClient) {
    let started = Instant::now();
    while network.public_ips().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "networkd did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spec(range: &str, subnet: &str, port: u16) -> NetworkSpec {
    NetworkSpec {
        ip_range: range.into(),
        subnet: subnet.into(),
        wireguard_private_key: "key".into(),
        wireguard_listen_port: port,
    }
}

/// A stand-in guest: a namespace with one end of a veth pair, the other end on the network's bridge.
fn vm(rig: &mut Rig, name: &str, bridge: &str, ip: &str, gateway: &str) {
    let ns = format!("{}{name}", rig.tag);
    let host = format!("{}{name}h", rig.tag);
    let guest = format!("{}{name}g", rig.tag);
    sh("ip", &["netns", "add", &ns]);
    rig.namespaces.push(ns.clone());
    sh("ip", &["link", "add", &host, "type", "veth", "peer", "name", &guest]);
    rig.links.push(host.clone());
    sh("ip", &["link", "set", &guest, "netns", &ns]);
    sh("ip", &["-n", &ns, "link", "set", "lo", "up"]);
    sh("ip", &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", &guest]);
    sh("ip", &["-n", &ns, "link", "set", &guest, "up"]);
    sh("ip", &["-n", &ns, "route", "add", "default", "via", gateway]);
    sh("ip", &["link", "set", &host, "master", bridge, "up"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_networks_taps_and_restart_in_real_namespaces() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED private_networks_taps_and_restart_in_real_namespaces: needs root for network namespaces (CI runs as root)"
        );
        return;
    }
    let pid = std::process::id() % 100_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let tag = format!("zt{pid}");
    let twin = 900_000 + pid;
    let mut rig = Rig {
        tag: tag.clone(),
        netids: ["neta", "netb", "netc"].iter().map(|n| zos_types::network_id(twin, n)).collect(),
        namespaces: vec![format!("{tag}ndmz")],
        links: vec![format!("{tag}pb"), "p-zt1".into(), "p-zt2".into(), "t-zt1vm".into()],
        daemon: None,
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    let redis = LocalRedis::start(dir.path()).unwrap_or_else(|err| panic!("{err}"));
    let config = dir.path().join("networkd.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\nredis = \"{}\"\nndmz_namespace = \"{tag}ndmz\"\npublic_bridge = \"{tag}pb\"\npublic_ips = [\"203.0.113.10/24\", \"203.0.113.11/24\"]\npublic_gateway = \"203.0.113.1\"\n",
            dir.path().join("state").display(),
            redis.url()
        ),
    )
    .expect("config");
    let log = dir.path().join("networkd.log");
    rig.daemon = Some(spawn(&config, &log));
    let network = NetworkClient::new(
        Client::with_deadline(&redis.url(), Duration::from_secs(30)).await.expect("client"),
        "network",
    );
    ready(&network).await;

    // Two networks; create is idempotent.
    let a = network.create_nr(twin, "neta".into(), spec("10.91.0.0/16", "10.91.1.0/24", 31001)).await.expect("net a");
    let b = network.create_nr(twin, "netb".into(), spec("10.92.0.0/16", "10.92.1.0/24", 31002)).await.expect("net b");
    assert_eq!(
        network.create_nr(twin, "neta".into(), spec("10.91.0.0/16", "10.91.1.0/24", 31001)).await.expect("again"),
        a
    );
    // networkd's files hold tenants' keys: a 0700 directory, a 0600 state file, no key file left over.
    {
        use std::os::unix::fs::MetadataExt;
        let state = dir.path().join("state");
        assert_eq!(std::fs::metadata(&state).expect("state dir").mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(state.join("state.json")).expect("state file").mode() & 0o777, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(&state)
            .expect("state dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".key") || name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    assert_eq!(a.namespace, format!("n-{}", a.netid));
    assert_eq!(a.bridge, format!("b-{}", a.netid));
    assert_eq!(a.gateway, "10.91.1.1");
    assert!(a.wireguard.starts_with("configured") || a.wireguard.starts_with("unsupported"), "{}", a.wireguard);
    assert_ne!(a.nat_address, b.nat_address, "each network gets its own NAT lease");

    // Listen ports: taken ones and reserved ones are refused with ZOS's message.
    for port in [31001, 9943] {
        let err =
            network.create_nr(twin, "netc".into(), spec("10.93.0.0/16", "10.93.1.0/24", port)).await.expect_err("port");
        assert_eq!(err.code(), Some("conflict"));
        assert_eq!(err.to_string(), "wireguard listen port already in use, pick another one");
    }

    // Two VMs on network A reach each other and their gateway, and not the VM on network B.
    vm(&mut rig, "v1", &a.bridge, "10.91.1.2", "10.91.1.1");
    vm(&mut rig, "v2", &a.bridge, "10.91.1.3", "10.91.1.1");
    vm(&mut rig, "v3", &b.bridge, "10.92.1.2", "10.92.1.1");
    let v1 = format!("{tag}v1");
    assert!(ping(&v1, "10.91.1.3"), "VMs of one network reach each other");
    assert!(ping(&v1, "10.91.1.1"), "a VM reaches its gateway");
    assert!(ping(&format!("{tag}v3"), "10.92.1.1"));
    assert!(!ping(&v1, "10.92.1.2"), "a VM does not reach another network");

    // Private taps: the address must be a host of the subnet and not the gateway.
    let err = network.setup_priv_tap(a.netid.clone(), "zt1vm".into(), "10.91.1.1".into()).await.expect_err("gateway");
    assert_eq!(err.to_string(), "ip 10.91.1.1 is reserved");
    let tap = network.setup_priv_tap(a.netid.clone(), "zt1vm".into(), "10.91.1.9".into()).await.expect("tap");
    assert_eq!(tap, "t-zt1vm");
    assert!(quiet("ip", &["link", "show", "dev", "t-zt1vm", "master", &a.bridge]));
    network.remove_tap("zt1vm".into()).await.expect("remove");
    network.remove_tap("zt1vm".into()).await.expect("remove is idempotent");
    assert!(!quiet("ip", &["link", "show", "dev", "t-zt1vm"]));

    // Public taps on the test bridge; addresses are exclusive and from the pool only.
    let public = network.setup_pub_tap("zt1".into(), "203.0.113.10/24".into()).await.expect("public tap");
    assert_eq!((public.tap.as_str(), public.gateway.as_str()), ("p-zt1", "203.0.113.1"));
    assert!(quiet("ip", &["link", "show", "dev", "p-zt1", "master", &format!("{tag}pb")]));
    if quiet("nft", &["--version"]) {
        assert!(quiet("nft", &["list", "table", "bridge", "p-zt1"]), "the anti-spoof filter is in place");
    }
    let err = network.setup_pub_tap("zt2".into(), "203.0.113.10/24".into()).await.expect_err("taken");
    assert_eq!(err.code(), Some("conflict"));
    let err = network.setup_pub_tap("zt2".into(), "198.51.100.7/24".into()).await.expect_err("not ours");
    assert_eq!(err.code(), Some("invalid"));
    let pool = network.public_ips().await.expect("pool");
    assert_eq!(pool.len(), 2, "the pool is the node's ipv4u total");
    assert!(pool.iter().any(|p| p.ip == "203.0.113.10/24" && p.tap == "p-zt1"));

    // A restart finds and keeps what exists.
    rig.stop();
    rig.daemon = Some(spawn(&config, &log));
    ready(&network).await;
    assert!(zos_networkd::network::namespace_exists(&a.namespace), "the network survived the restart");
    assert!(ping(&v1, "10.91.1.3"), "and still works");
    let err =
        network.create_nr(twin, "netc".into(), spec("10.93.0.0/16", "10.93.1.0/24", 31001)).await.expect_err("port");
    assert_eq!(err.code(), Some("conflict"), "port reservations were kept");
    assert!(network.public_ips().await.expect("pool").iter().any(|p| p.tap == "p-zt1"), "public bookkeeping was kept");

    // Delete removes what it created and nothing else; twice is fine.
    network.remove_pub_tap("zt1".into()).await.expect("remove");
    network.remove_pub_tap("zt1".into()).await.expect("remove is idempotent");
    assert!(!quiet("nft", &["list", "table", "bridge", "p-zt1"]), "the filter went with the tap");
    network.delete_nr(twin, "neta".into()).await.expect("delete");
    network.delete_nr(twin, "neta".into()).await.expect("delete is idempotent");
    assert!(!zos_networkd::network::namespace_exists(&a.namespace));
    assert!(!quiet("ip", &["link", "show", "dev", &a.bridge]));
    assert!(zos_networkd::network::namespace_exists(&b.namespace), "the other network is untouched");
    assert!(ping(&format!("{tag}v3"), "10.92.1.1"));
    network.delete_nr(twin, "netb".into()).await.expect("delete b");
}
