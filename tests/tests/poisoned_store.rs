//! A poisoned store stops provisiond with its exit code (3), so that its supervisor restarts it, instead
//! of re-running the same module calls every second forever. The store sits on a small tmpfs that is
//! then filled, so the next durable commit fails for real. Needs root (to mount the tmpfs).

use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};
use zos_interfaces::provision::ProvisionClient;
use zos_tests::binary;
use zos_types::{Deployment, SigningKey};
use zos_zbus::Client;
use zos_zbus::local_redis::LocalRedis;

struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-l", self.0.to_str().unwrap_or_default()]).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisiond_exits_when_its_store_is_poisoned() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED provisiond_exits_when_its_store_is_poisoned: needs root to mount a tmpfs (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name);
    let redis = LocalRedis::start(dir.path()).unwrap_or_else(|err| panic!("{err}"));
    std::fs::create_dir_all(path("state")).expect("state");
    let status =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs"]).arg(path("state")).status();
    assert!(status.is_ok_and(|s| s.success()), "mount a tmpfs");
    let _tmpfs = Tmpfs(path("state"));
    let key = SigningKey::from_bytes(&[5; 32]);
    std::fs::create_dir_all(path("twins")).expect("twins");
    std::fs::write(path("twins").join("3"), hex::encode(key.verifying_key().to_bytes())).expect("twin");
    std::fs::write(path("node.json"), json!({"cru": 4, "mru": 8u64 << 30, "pools": []}).to_string()).expect("node");
    std::fs::write(
        path("provisiond.toml"),
        format!(
            "redis = \"{}\"\nstate_dir = \"{}\"\ntwins = \"{}\"\nnode = \"{}\"\nboot_marker = \"{}\"\n",
            redis.url(),
            path("state").display(),
            path("twins").display(),
            path("node.json").display(),
            path("marker").display()
        ),
    )
    .expect("config");
    let mut provisiond = Command::new(binary("provisiond").expect("provisiond"))
        .arg("--config")
        .arg(path("provisiond.toml"))
        .stderr(std::fs::File::create(path("provisiond.log")).expect("log"))
        .spawn()
        .expect("provisiond");
    let client = Client::with_deadline(&redis.url(), Duration::from_secs(10)).await.expect("client");
    let provision = ProvisionClient::new(client, "provision");
    let deployment = |contract: u64| {
        let mut dl: Deployment = serde_json::from_value(json!({"twin_id": 3, "contract_id": contract,
            "signature_requirement": {"requests": [{"twin_id": 3, "required": true, "weight": 1}], "weight_required": 1},
            "workloads": [{"name": "gw", "type": "gateway-name-proxy", "data": {"name": "example", "backends": ["http://10.0.0.1:80"]}}]}))
        .expect("deployment");
        dl.sign(3, &key);
        dl
    };
    let started = Instant::now();
    while provision.list(3).await.is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = provisiond.kill();
            panic!(
                "provisiond did not come up:\n{}",
                std::fs::read_to_string(path("provisiond.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Fill the store's disk, then ask for more until a commit fails.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", path("state/filler").display()))
        .stderr(std::process::Stdio::null())
        .status();
    for contract in 1..200 {
        if provision.create_or_update(3, deployment(contract), false).await.is_err() {
            break;
        }
    }
    let started = Instant::now();
    let code = loop {
        if let Some(status) = provisiond.try_wait().expect("wait") {
            break status.code();
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = provisiond.kill();
            let log = std::fs::read_to_string(path("provisiond.log")).unwrap_or_default();
            panic!("provisiond kept running on a poisoned store:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code, Some(3), "exit 3: the resources cannot be used");
}
