//! Workspace-wide tests of zos-rs. The tests live in `tests/`: `tidy.rs` checks the house rules that
//! ARCHITECTURE.md states, `node.rs` runs a whole node of real processes, `flist_node.rs` mounts an
//! flist read-write on a real storaged volume, `node_script.rs` checks that `scripts/node` leaves
//! nothing behind; `tests/support/` adds flistd's test hub. This library holds what every test and the
//! `zos-campaign` binary may use: the daemon binaries and a whole node ([`node`]). Never a dependency of a
//! production crate.

pub mod node;

use anyhow::Context;
use std::process::Command;

/// A daemon binary of the workspace (`storaged`, `networkd`, `provisiond`, `flistd`, `vmd`, `zosctl`) in the
/// target directory of the running test or binary, built on demand when it is missing.
pub fn binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("the running binary")?;
    // A test runs from `target/<profile>/deps/`, a binary of the package from `target/<profile>/`.
    let mut dir = exe.parent().context("the binary's directory")?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().context("the target directory")?;
    }
    let path = dir.join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-q"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        for package in ["zos-storaged", "zos-networkd", "zos-provisiond", "zos-flistd", "zos-vmd"] {
            build.args(["-p", package]);
        }
        let built = build.arg("--bins").status().context("running cargo build")?;
        anyhow::ensure!(built.success(), "building the daemons failed");
    }
    Ok(path)
}
