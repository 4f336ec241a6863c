//! A whole node of real processes, as the end-to-end tests and the campaign start it: commands run as
//! root, the node's directory and what it made on the host (removed on drop), the loop-device disks and
//! storaged's configuration for them, networkd's and provisiond's configurations, and the daemons
//! started from their `--config` (a restart is the same command again, as a supervisor would do).

use anyhow::{Context, bail};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A gibibyte.
pub const GIB: u64 = 1 << 30;

/// Runs a command that must succeed; its trimmed stdout.
pub fn sh(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs a command quietly; whether it succeeded.
pub fn quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Why a whole node cannot be started here (not root, a tool missing), or `None` when it can.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root for loop devices, mounts and namespaces (CI runs as root)".into());
    }
    for tool in ["losetup", "mkfs.btrfs", "btrfs", "ip", "redis-server"] {
        if !quiet("sh", &["-c", &format!("command -v {tool}")]) {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

/// Everything a node makes, removed on drop.
pub struct Node {
    /// The node's directory: configurations, logs, state, the disk images.
    pub dir: tempfile::TempDir,
    /// The loop devices of the disks.
    pub loops: Vec<String>,
    /// Network namespaces to remove.
    pub namespaces: Vec<String>,
    /// Links to remove.
    pub links: Vec<String>,
    /// provisiond, stopped first.
    pub provisiond: Option<Child>,
    /// The other daemons.
    pub daemons: Vec<Child>,
}

impl Node {
    /// A node in a new temporary directory; `namespaces` and `links` are removed on drop.
    pub fn new(namespaces: Vec<String>, links: Vec<String>) -> anyhow::Result<Node> {
        Ok(Node {
            dir: tempfile::tempdir().context("the node's directory")?,
            loops: Vec::new(),
            namespaces,
            links,
            provisiond: None,
            daemons: Vec::new(),
        })
    }

    /// A file of the node's directory.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Two sparse 32 GiB disks on loop devices, an SSD and an HDD, and `storaged.toml` for them: pools
    /// under `mnt/`, the cache volume at `cache/`.
    pub fn storaged_config(&mut self, redis: &str) -> anyhow::Result<()> {
        for name in ["ssd.img", "hdd.img"] {
            let file = self.path(name);
            std::fs::File::create(&file).and_then(|f| f.set_len(32 * GIB)).context("a disk image")?;
            let device = sh("losetup", &["-f", "--show", &file.to_string_lossy()])?;
            self.loops.push(device);
        }
        std::fs::write(
            self.path("storaged.toml"),
            format!(
                "devices = [\"{ssd}\", \"{hdd}\"]\nmount_root = \"{}\"\ncache_path = \"{}\"\nredis = \"{redis}\"\n[overrides]\n\"{ssd}\" = \"ssd\"\n\"{hdd}\" = \"hdd\"\n",
                self.path("mnt").display(),
                self.path("cache").display(),
                ssd = self.loops[0],
                hdd = self.loops[1],
            ),
        )
        .context("storaged's config")
    }

    /// `networkd.toml`: its state under `networkd/`, the NDMZ namespace `<tag>ndmz` and the public
    /// bridge `<tag>pb` (both removed on drop), one public address.
    pub fn networkd_config(&mut self, redis: &str, tag: &str) -> anyhow::Result<()> {
        std::fs::write(
            self.path("networkd.toml"),
            format!(
                "state_dir = \"{}\"\nredis = \"{redis}\"\nndmz_namespace = \"{tag}ndmz\"\npublic_bridge = \"{tag}pb\"\npublic_ips = [\"203.0.113.20/24\"]\npublic_gateway = \"203.0.113.1\"\n",
                self.path("networkd").display(),
            ),
        )
        .context("networkd's config")?;
        self.namespaces.push(format!("{tag}ndmz"));
        self.links.push(format!("{tag}pb"));
        Ok(())
    }

    /// `vmd.toml`: its machines under `vmd-run/` (killed on drop: vmd leaves its VMs running when it
    /// stops, as a node does across a vmd restart), its state under `vmd-state/`, QEMU under TCG, and
    /// the monitor every second.
    pub fn vmd_config(&self, redis: &str) -> anyhow::Result<()> {
        std::fs::write(
            self.path("vmd.toml"),
            format!(
                "redis = \"{redis}\"\nrun_dir = \"{}\"\nstate_dir = \"{}\"\naccel = \"tcg\"\nmonitor_secs = 1\n",
                self.path("vmd-run").display(),
                self.path("vmd-state").display()
            ),
        )
        .context("vmd's config")
    }

    /// Adds to `provisiond.toml` the kernel and initrd that zmachines boot in container mode.
    pub fn zmachine_boot(&self, kernel: &Path, initrd: &Path) -> anyhow::Result<()> {
        let section = format!("[zmachine]\nkernel = \"{}\"\ninitrd = \"{}\"\n", kernel.display(), initrd.display());
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("provisiond.toml"))
            .and_then(|mut config| std::io::Write::write_all(&mut config, section.as_bytes()))
            .context("provisiond's zmachine section")
    }

    /// `provisiond.toml` and the twins' keys (`twins/<twin>`, hex): state under `provisiond/`, the boot
    /// marker at `run/provisiond`; without a node file provisiond reads /proc and asks the modules.
    pub fn provisiond_config(&self, redis: &str, twins: &[(u32, [u8; 32])]) -> anyhow::Result<()> {
        let dir = self.path("twins");
        std::fs::create_dir_all(&dir).context("the twins' directory")?;
        for (twin, key) in twins {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(dir.join(twin.to_string()), hex).context("a twin's key")?;
        }
        std::fs::write(
            self.path("provisiond.toml"),
            format!(
                "redis = \"{redis}\"\nstate_dir = \"{}\"\ntwins = \"{}\"\nboot_marker = \"{}\"\n",
                self.path("provisiond").display(),
                dir.display(),
                self.path("run/provisiond").display()
            ),
        )
        .context("provisiond's config")
    }
}

/// SIGTERMs `child`, waits up to 5 s, then SIGKILLs it.
pub fn stop(mut child: Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) && child.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Node {
    fn drop(&mut self) {
        for child in self.provisiond.take().into_iter().chain(self.daemons.drain(..)) {
            stop(child);
        }
        // The VMs (QEMU and its virtiofsd) vmd left running, before the mounts and disks they use.
        for pid in zos_vmd::process::find(&self.path("vmd-run").to_string_lossy()) {
            zos_vmd::process::signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let root = std::fs::canonicalize(self.dir.path()).unwrap_or_default();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> =
            info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|t| Path::new(t).starts_with(&root)).collect();
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
pub fn spawn(dir: &Path, daemon: &str) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{daemon}.log")))
        .with_context(|| format!("{daemon}'s log"))?;
    Command::new(crate::binary(daemon)?)
        .arg("--config")
        .arg(dir.join(format!("{daemon}.toml")))
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {daemon}"))
}

/// A deployment of `twin` with `workloads` (ZOS's JSON shape), signed with `key`.
pub fn signed_deployment(
    twin: u32,
    contract: u64,
    workloads: serde_json::Value,
    key: &zos_types::SigningKey,
) -> anyhow::Result<zos_types::Deployment> {
    let mut dl: zos_types::Deployment = serde_json::from_value(serde_json::json!({"twin_id": twin,
        "contract_id": contract,
        "signature_requirement": {"requests": [{"twin_id": twin, "required": true, "weight": 1}], "weight_required": 1},
        "workloads": workloads}))
    .context("a deployment")?;
    dl.sign(twin, key);
    Ok(dl)
}

/// The deployment once its job ran (no workload left in `init`), waiting up to `limit`.
pub async fn settled(
    provision: &zos_interfaces::provision::ProvisionClient,
    twin: u32,
    contract: u64,
    limit: Duration,
) -> anyhow::Result<zos_types::Deployment> {
    let started = Instant::now();
    loop {
        let dl = provision.get(twin, contract).await.context("get")?;
        if dl.workloads.iter().all(|wl| wl.result.state != zos_types::ResultState::Init) {
            return Ok(dl);
        }
        anyhow::ensure!(started.elapsed() < limit, "the job of {twin}-{contract} never ran: {dl:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
