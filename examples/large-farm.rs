//! Writes a large farm and its requests for `zos-plan place`: `NODES` nodes of three sizes (32, 64 and
//! 128 threads with 128, 256 and 512 GiB, SSD and HDD in proportion) and `DEPLOYMENTS` deployments of the
//! benchmark's model (a network, a VM of 1-8 vCPUs and 2-32 GiB with a 50-500 GiB disk, and one time in
//! two a zdb of up to 2 TiB), all from a fixed seed.
//!
//! ```sh
//! cargo run --release -p zos-plan --example large-farm -- 5000 50000 /tmp/large
//! cargo run --release --bin zos-plan -- place --farm /tmp/large/farm.json \
//!     --requests /tmp/large/requests.json --plot examples/large-farm.png
//! ```

use anyhow::Context;
use std::path::PathBuf;
use zos_planner::synthetic;
use zos_types::scenario::{Farm, Requests};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: large-farm NODES DEPLOYMENTS OUT_DIR";
    let nodes: usize = args.next().context(usage)?.parse().context("NODES must be a count")?;
    let deployments: usize = args.next().context(usage)?.parse().context("DEPLOYMENTS must be a count")?;
    let out = PathBuf::from(args.next().context(usage)?);
    let mut farm = Farm { nodes: Vec::with_capacity(nodes) };
    for i in 0..nodes {
        let scale = 1u64 << (i % 3);
        let mut node = synthetic::farm_of(1, scale).nodes.remove(0);
        node.name = format!("node-{i:05}");
        farm.nodes.push(node);
    }
    let requests = Requests { requests: synthetic::deployments(deployments, 42) };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, json) in [("farm.json", serde_json::to_vec(&farm)?), ("requests.json", serde_json::to_vec(&requests)?)] {
        let path = out.join(name);
        std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("{nodes} nodes and {deployments} deployments written to {}", out.display());
    Ok(())
}
