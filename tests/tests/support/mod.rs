//! What the end-to-end tests of a node share: commands run as root, the node's directory and what it
//! made on the host (removed on drop), the loop-device disks and storaged's configuration for them, the
//! daemons started from their `--config`, and (for flistd) the small HTTP hub of flistd's own tests.

#![allow(dead_code)]

#[path = "../../../flistd/tests/support/hub.rs"]
pub mod hub;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zos_tests::binary;

/// A gibibyte.
pub const GIB: u64 = 1 << 30;

/// Runs a command that must succeed; its trimmed stdout.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|err| panic!("{program}: {err}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a command quietly; whether it succeeded.
pub fn quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Everything the test makes, removed on drop.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub loops: Vec<String>,
    pub namespaces: Vec<String>,
    pub links: Vec<String>,
    pub provisiond: Option<Child>,
    pub daemons: Vec<Child>,
}

impl Node {
    /// A node in a new temporary directory; `namespaces` and `links` are removed on drop.
    pub fn new(namespaces: Vec<String>, links: Vec<String>) -> Node {
        Node {
            dir: tempfile::tempdir().expect("tempdir"),
            loops: Vec::new(),
            namespaces,
            links,
            provisiond: None,
            daemons: Vec::new(),
        }
    }

    /// Two sparse 32 GiB disks on loop devices, an SSD and an HDD, and `storaged.toml` for them: pools
    /// under `mnt/`, the cache volume at `cache/`.
    pub fn storaged_config(&mut self, redis: &str) {
        for name in ["ssd.img", "hdd.img"] {
            let file = self.dir.path().join(name);
            std::fs::File::create(&file).expect("image").set_len(32 * GIB).expect("size");
            let device = sh("losetup", &["-f", "--show", file.to_str().expect("path")]);
            self.loops.push(device);
        }
        std::fs::write(
            self.dir.path().join("storaged.toml"),
            format!(
                "devices = [\"{ssd}\", \"{hdd}\"]\nmount_root = \"{}\"\ncache_path = \"{}\"\nredis = \"{redis}\"\n[overrides]\n\"{ssd}\" = \"ssd\"\n\"{hdd}\" = \"hdd\"\n",
                self.dir.path().join("mnt").display(),
                self.dir.path().join("cache").display(),
                ssd = self.loops[0],
                hdd = self.loops[1],
            ),
        )
        .expect("storaged config");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for mut child in self.provisiond.take().into_iter().chain(self.daemons.drain(..)) {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(5) && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let root = std::fs::canonicalize(self.dir.path()).unwrap_or_default();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|t| std::path::Path::new(t).starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            let _ = quiet("umount", &["-l", mount]);
        }
        for device in &self.loops {
            let _ = quiet("losetup", &["-d", device]);
        }
        for ns in &self.namespaces {
            let _ = quiet("ip", &["netns", "del", ns]);
        }
        for link in &self.links {
            let _ = quiet("ip", &["link", "del", link]);
        }
    }
}

/// Starts the daemon binary `daemon` with `DIR/<daemon>.toml`, its log appended to `DIR/<daemon>.log`.
pub fn spawn(dir: &std::path::Path, daemon: &str) -> Child {
    Command::new(binary(daemon))
        .args(["--config", dir.join(format!("{daemon}.toml")).to_str().expect("path")])
        .stderr(
            std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{daemon}.log"))).expect("log"),
        )
        .spawn()
        .unwrap_or_else(|err| panic!("{daemon}: {err}"))
}
