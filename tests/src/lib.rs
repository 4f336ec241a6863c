//! Workspace-wide tests of zos-rs. The tests live in `tests/`: `tidy.rs` checks the house rules that
//! ARCHITECTURE.md states, `node.rs` runs a whole node of real processes, `node_script.rs` checks that
//! `scripts/node` leaves nothing behind. This library holds what they share. Never a dependency of a
//! production crate.

use std::process::Command;

/// A daemon binary of the workspace (`storaged`, `networkd`, `provisiond`, `vmd`, `zosctl`) in the target
/// directory of the running test, built on demand when the test runs alone.
pub fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target directory");
    let path = dir.join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "zos-storaged",
                "-p",
                "zos-networkd",
                "-p",
                "zos-provisiond",
                "-p",
                "zos-vmd",
                "--bins",
            ])
            .status()
            .expect("cargo build");
        assert!(built.success(), "building the daemons failed");
    }
    path
}
