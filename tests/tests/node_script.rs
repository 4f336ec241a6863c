//! `scripts/node` as an operator runs it, as root: `start` makes a node whose secrets are private,
//! whose store sits on the cache volume storaged mounted and whose boot marker sits on a tmpfs; the
//! test then gives it a network, a private tap and a public tap with its nftables filter through
//! networkd, and a read-only and a read-write flist mount through flistd (an image on flistd's test
//! hub); `stop` must leave no process (flistd's mount processes included), link, namespace, nftables
//! table, mount or loop device of the node behind, and no boot marker, so that the next `start` is a
//! reboot.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::hub::Hub;
use zos_interfaces::flist::{FlistClient, MountOptions};
use zos_interfaces::network::{NetworkClient, NetworkSpec};
use zos_tests::binary;

fn out(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// What of the node exists on the host now: processes, links, namespaces, nftables tables, mounts and
/// loop devices that belong to the node in `state` (by its names and its directory).
fn leftovers(state: &Path, netid: &str) -> Vec<String> {
    let state_text = state.display().to_string();
    let ours = |name: &str| {
        name == "zos-pub"
            || name == "zos-ndmz"
            || name.contains(netid)
            || name.starts_with("p-zs")
            || name.starts_with("t-zs")
    };
    let mut found = Vec::new();
    for line in out("ip", &["-o", "link", "show"]).lines() {
        if let Some(name) = line.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n))
            && ours(name)
        {
            found.push(format!("link {name}"));
        }
    }
    for ns in out("ip", &["netns", "list"]).lines().filter_map(|l| l.split_whitespace().next()) {
        if ours(ns) {
            found.push(format!("namespace {ns}"));
        }
    }
    for table in out("nft", &["list", "tables"]).lines() {
        if table.split_whitespace().last().is_some_and(ours) {
            found.push(format!("nft {table}"));
        }
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for target in mountinfo.lines().filter_map(|l| l.split(' ').nth(4)) {
        if target.starts_with(&state_text) {
            found.push(format!("mount {target}"));
        }
    }
    for line in out("losetup", &["-a"]).lines() {
        if line.contains(&state_text) {
            found.push(format!("loop {line}"));
        }
    }
    for line in out("pgrep", &["-af", &state_text]).lines() {
        found.push(format!("process {line}"));
    }
    found
}

fn script(command: &str, state: &Path, bin: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("root");
    let run = Command::new(root.join("scripts/node"))
        .args([command, state.to_str().expect("path")])
        .env("ZOS_BIN", bin)
        .env("ZOS_PUBLIC_IPS", "\"203.0.113.40/24\"")
        .output()
        .expect("scripts/node");
    assert!(
        run.status.success(),
        "scripts/node {command}: {}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn node_script_stop_leaves_nothing_behind() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED node_script_stop_leaves_nothing_behind: needs root (loop devices, mounts, namespaces; CI runs as root)"
        );
        return;
    }
    for daemon in ["storaged", "networkd", "flistd", "vmd", "provisiond", "zosctl"] {
        binary(daemon).expect("daemon");
    }
    let bin = binary("storaged").expect("storaged").parent().expect("target dir").to_path_buf();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("node");
    let hub = Hub::start(&dir.path().join("hub"));
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).expect("src");
    std::fs::write(src.join("hello"), b"from the hub\n").expect("file");
    zos_flistd::pack::pack(&src, &hub.store(), &dir.path().join("image.fl")).expect("pack");
    hub.put("/user/image.fl", &std::fs::read(dir.path().join("image.fl")).expect("image"));
    let netid = zos_types::network_id(1, "scriptnet");
    assert_eq!(leftovers(&state, &netid), Vec::<String>::new(), "a clean host to begin with");

    script("start", &state, &bin);
    let mode = |path: &Path| std::fs::metadata(path).map(|m| m.mode() & 0o777).unwrap_or(0);
    assert_eq!(mode(&state.join("twin.key")), 0o600, "the twin's signing key is private");
    assert_eq!(mode(&state), 0o700);
    let cache = state.join("cache");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        mounts.lines().any(|l| l.split(' ').nth(4) == Some(&*cache.to_string_lossy())),
        "the cache volume is mounted"
    );
    assert!(cache.join("modules/provisiond/store").is_dir(), "provisiond's store is on the cache volume");
    assert!(state.join("run/provisiond").exists(), "the boot marker is set, on the tmpfs");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let url = format!("unix://{}/redis.sock", state.display());
        let client = zos_zbus::Client::with_deadline(&url, Duration::from_secs(30)).await.expect("client");
        let network = NetworkClient::new(client.clone(), "network");
        let spec = NetworkSpec {
            ip_range: "10.97.0.0/16".into(),
            subnet: "10.97.1.0/24".into(),
            wireguard_private_key: String::new(),
            wireguard_listen_port: 31097,
        };
        network.create_nr(1, "scriptnet".into(), spec).await.expect("network");
        network.setup_priv_tap(netid.clone(), "zs1vm".into(), "10.97.1.5".into()).await.expect("private tap");
        network.setup_pub_tap("zs1".into(), "203.0.113.40/24".into()).await.expect("public tap");
        let flist = FlistClient::new(client, "flist");
        let url = format!("{}/user/image.fl", hub.url());
        let ro = flist.mount("ro".into(), url.clone(), MountOptions::read_only()).await.expect("read-only mount");
        assert_eq!(std::fs::read(Path::new(&ro).join("hello")).expect("read"), b"from the hub\n");
        let rw = MountOptions { read_only: false, limit: 64 << 20, ..MountOptions::default() };
        let rw = flist.mount("rw".into(), url, rw).await.expect("read-write mount");
        std::fs::write(Path::new(&rw).join("written"), b"x").expect("write");
    });
    let running = leftovers(&state, &netid);
    for expected in ["link p-zs1", "link t-zs1vm", "namespace zos-ndmz", "link zos-pub"] {
        assert!(running.iter().any(|l| l == expected), "{expected} missing from {running:#?}");
    }
    for name in ["ro", "rw"] {
        let expected = format!("mount {}/cache/modules/flistd/mountpoint/{name}", state.display());
        assert!(running.contains(&expected), "{expected} missing from {running:#?}");
    }
    assert!(running.iter().any(|l| l.starts_with("process") && l.contains("flistd mount")), "{running:#?}");

    script("stop", &state, &bin);
    assert_eq!(leftovers(&state, &netid), Vec::<String>::new(), "stop removes everything the node created");
    assert!(!state.join("run/provisiond").exists(), "no boot marker survives a stop: the next start is a reboot");

    // A second start finds its pools again and makes the same things; a second stop cleans up again.
    script("start", &state, &bin);
    assert!(cache.join("modules/provisiond/store").is_dir(), "the store survived on the cache volume");
    script("stop", &state, &bin);
    assert_eq!(leftovers(&state, &netid), Vec::<String>::new());
}
