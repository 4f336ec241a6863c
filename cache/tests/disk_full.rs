//! Disk full: on a small tmpfs, write until the disk is full; every failing call must return an error
//! (never panic), and after space is freed the store opens and holds everything acknowledged before.
//! Needs root (to mount the tmpfs); CI runs as root, elsewhere the test says why it is skipped.

mod common;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::path::{Path, PathBuf};
use zos_cache::{Store, StoreError};
use zos_types::Deployment;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> nix::Result<Tmpfs> {
        mount(Some("tmpfs"), path, Some("tmpfs"), MsFlags::empty(), Some(format!("size={size}").as_str()))?;
        Ok(Tmpfs(path.to_path_buf()))
    }

    fn resize(&self, size: &str) -> nix::Result<()> {
        mount(Some("tmpfs"), &self.0, Some("tmpfs"), MsFlags::MS_REMOUNT, Some(format!("size={size}").as_str()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

/// A deployment with 32 KiB of description.
fn deployment(contract: u64) -> Deployment {
    common::deployment(contract, 32 * 1024)
}

fn create(store: &Store, contract: u64) -> Result<(), StoreError> {
    let mut txn = store.begin();
    txn.create(&deployment(contract))?;
    txn.commit()
}

const CHILD_ENV: &str = "ZOS_CACHE_DISK_FULL_DIR";

/// The writer: fills the disk, printing `ack <contract>` for each acknowledged create, then exits
/// without closing the store (a poisoned sled cannot be closed cleanly; the daemon would exit too).
#[test]
fn disk_full_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let store = Store::open(&dir).expect("open on an empty tmpfs");
    let mut failures = 0;
    for contract in 1..=5000u64 {
        match create(&store, contract) {
            Ok(()) => println!("ack {contract}"),
            Err(err) => {
                failures += 1;
                println!("fail {contract} {err}");
                if failures >= 5 {
                    break;
                }
            }
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}

#[test]
fn disk_full_returns_errors_and_loses_nothing_acknowledged() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED disk_full: needs root to mount a small tmpfs (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tmpfs = Tmpfs::mount(dir.path(), "6m").expect("mount a tmpfs (root, but mount failed)");
    let path = dir.path().join("state");
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["disk_full_child", "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, &path)
        .output()
        .expect("run the writer");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the writer must not crash on a full disk: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let acknowledged: Vec<u64> =
        stdout.lines().filter_map(|line| line.strip_prefix("ack ").and_then(|n| n.parse().ok())).collect();
    let failures: Vec<&str> = stdout.lines().filter(|line| line.starts_with("fail ")).collect();
    assert!(!failures.is_empty(), "the disk never filled up");
    assert!(!acknowledged.is_empty(), "nothing fit at all");
    eprintln!("first failure: {}", failures[0]);

    tmpfs.resize("256m").expect("grow the tmpfs");
    let store = Store::open(&path).expect("reopen after freeing space");
    for &contract in &acknowledged {
        let got = store.get(1, contract).unwrap_or_else(|err| panic!("acknowledged deployment {contract} lost: {err}"));
        assert_eq!(got.workloads.len(), 1);
    }
    // The commits that failed left nothing: the store is what the last successful commit left.
    for failed in failures.iter().filter_map(|line| line.split(' ').nth(1)?.parse::<u64>().ok()) {
        assert!(store.get(1, failed).is_err(), "deployment {failed}, whose create failed, is in the store");
    }
    let structural: Vec<_> =
        store.check_consistency().expect("check").into_iter().filter(zos_cache::Drift::is_structural).collect();
    assert!(structural.is_empty(), "{structural:?}");
    create(&store, 100_000).expect("writes work again");
    drop(store);
    eprintln!("{} acknowledged before the disk filled, all present after reopening", acknowledged.len());
}
