//! A test rig for storaged on real devices: sparse files on loop devices under one temporary
//! directory, and the daemon process; every loop device and mount is released on drop, even when the
//! test fails.

// Each test binary uses part of the rig.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub const GIB: u64 = 1 << 30;
pub const MIB: u64 = 1 << 20;

/// Runs a command that must succeed; its trimmed stdout.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|err| panic!("{program}: {err}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Loop devices and mounts under one directory, all released on drop.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub loops: Vec<String>,
    pub daemon: Option<Child>,
}

impl Rig {
    pub fn new() -> Rig {
        Rig { dir: tempfile::tempdir().expect("tempdir"), loops: Vec::new(), daemon: None }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn loop_device(&mut self, name: &str, size: u64) -> String {
        let file = self.path(name);
        std::fs::File::create(&file).expect("image").set_len(size).expect("sparse size");
        let device = sh("losetup", &["-f", "--show", file.to_str().expect("path")]);
        self.loops.push(device.clone());
        device
    }

    pub fn mounts_under(&self) -> Vec<String> {
        let root = std::fs::canonicalize(self.dir.path()).expect("dir");
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<String> = info
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .filter(|target| Path::new(target).starts_with(&root))
            .map(str::to_string)
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        mounts
    }

    pub fn stop_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop_daemon();
        for mount in self.mounts_under() {
            let _ = Command::new("umount").args(["-l", &mount]).status();
        }
        for device in &self.loops {
            let _ = Command::new("losetup").args(["-d", device]).status();
        }
    }
}
