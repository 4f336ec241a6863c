//! KVM or software emulation. `/dev/kvm` opening is not proof that KVM guests run (on some nested
//! machines a KVM guest hangs), so in `auto` mode KVM is used only when a probe boot on KVM reached
//! the probe guest's marker within its time limit; the verdict is cached in the state directory
//! (for the same probe guest), and TCG is used otherwise. The configuration can force either.

use crate::error::{Result, VmError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The accelerator a VM runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// Software emulation.
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// The configured choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelMode {
    /// KVM when the probe boot proves it, TCG otherwise.
    #[default]
    Auto,
    /// KVM, whatever the probe says.
    Kvm,
    /// TCG, whatever the hardware.
    Tcg,
}

/// The probe guest: a kernel and initrd that print `marker` on the serial console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Kernel.
    pub kernel: PathBuf,
    /// Initrd.
    pub initrd: PathBuf,
    /// What the guest prints once it runs.
    pub marker: String,
    /// The probe's time limit in seconds (15 by default).
    #[serde(default = "default_probe_secs")]
    pub timeout_secs: u64,
}

fn default_probe_secs() -> u64 {
    15
}

/// The cached verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Verdict {
    probe: ProbeConfig,
    kvm: bool,
    detail: String,
}

/// The file the verdict is cached in.
pub const CACHE_FILE: &str = "kvm-probe.json";

/// Boots the probe guest on `accel` and waits for its marker on the serial console, at most
/// `probe.timeout_secs`; the hypervisor is killed either way. Returns how long the marker took.
pub fn probe_boot(qemu: &Path, accel: Accel, probe: &ProbeConfig, workdir: &Path) -> Result<Duration> {
    let log = workdir.join(format!("probe-{accel}.log"));
    let _ = std::fs::remove_file(&log);
    let file = std::fs::File::create(&log).map_err(VmError::io(format!("create {}", log.display())))?;
    let err = file.try_clone().map_err(VmError::io("probe log"))?;
    let (accel_arg, cpu) = match accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg => ("tcg", "max"),
    };
    let started = Instant::now();
    let mut child = Command::new(qemu)
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-m", "256M", "-smp", "1"])
        .args(["-accel", accel_arg, "-cpu", cpu])
        .arg("-kernel")
        .arg(&probe.kernel)
        .arg("-initrd")
        .arg(&probe.initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet", "-serial", "stdio"])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|err| VmError::Unavailable(format!("cannot run {}: {err}", qemu.display())))?;
    let deadline = started + Duration::from_secs(probe.timeout_secs.max(1));
    let outcome = loop {
        let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
        if text.contains(&probe.marker) {
            break Ok(started.elapsed());
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(VmError::Start(format!(
                "probe on {accel} exited ({status}) before its marker: {}",
                tail(&text)
            )));
        }
        if Instant::now() >= deadline {
            break Err(VmError::Start(format!(
                "probe on {accel} did not reach its marker within {} s",
                probe.timeout_secs
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// Chooses the accelerator: forced by `mode`, or in `auto` mode KVM only when `/dev/kvm` opens and
/// the probe boot on KVM (cached in `state_dir`) reached its marker. Returns the choice and why.
pub fn choose(mode: AccelMode, probe: Option<&ProbeConfig>, qemu: &Path, state_dir: &Path) -> (Accel, String) {
    match mode {
        AccelMode::Kvm => return (Accel::Kvm, "forced by the configuration".into()),
        AccelMode::Tcg => return (Accel::Tcg, "forced by the configuration".into()),
        AccelMode::Auto => {}
    }
    if let Err(err) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return (Accel::Tcg, format!("/dev/kvm cannot be opened: {err}"));
    }
    let Some(probe) = probe else {
        return (Accel::Tcg, "no probe guest configured, KVM is not proven".into());
    };
    let cache = state_dir.join(CACHE_FILE);
    if let Some(verdict) = std::fs::read(&cache).ok().and_then(|b| serde_json::from_slice::<Verdict>(&b).ok())
        && verdict.probe == *probe
    {
        let accel = if verdict.kvm { Accel::Kvm } else { Accel::Tcg };
        return (accel, format!("cached probe: {}", verdict.detail));
    }
    let (kvm, detail) = match probe_boot(qemu, Accel::Kvm, probe, state_dir) {
        Ok(took) => (true, format!("a KVM guest reached its marker in {} ms", took.as_millis())),
        Err(err) => (false, err.to_string()),
    };
    let verdict = Verdict { probe: probe.clone(), kvm, detail: detail.clone() };
    if let Ok(bytes) = serde_json::to_vec_pretty(&verdict)
        && let Err(err) = zos_interfaces::daemon::write_private(&cache, &bytes)
    {
        tracing::warn!("cannot cache the KVM probe in {}: {err}", cache.display());
    }
    (if kvm { Accel::Kvm } else { Accel::Tcg }, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_modes_and_the_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let qemu = Path::new("/nonexistent/qemu");
        assert_eq!(choose(AccelMode::Tcg, None, qemu, dir.path()).0, Accel::Tcg);
        assert_eq!(choose(AccelMode::Kvm, None, qemu, dir.path()).0, Accel::Kvm);
        if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
            assert_eq!(choose(AccelMode::Auto, None, qemu, dir.path()).0, Accel::Tcg);
            return;
        }
        assert_eq!(choose(AccelMode::Auto, None, qemu, dir.path()).0, Accel::Tcg, "nothing proves KVM");
        let probe = ProbeConfig { kernel: "/k".into(), initrd: "/i".into(), marker: "M".into(), timeout_secs: 1 };
        // No qemu: the probe fails, TCG, and the verdict is cached.
        let (accel, why) = choose(AccelMode::Auto, Some(&probe), qemu, dir.path());
        assert_eq!(accel, Accel::Tcg, "{why}");
        let verdict = Verdict { probe: probe.clone(), kvm: true, detail: "seen".into() };
        std::fs::write(dir.path().join(CACHE_FILE), serde_json::to_vec(&verdict).expect("json")).expect("write");
        let (accel, why) = choose(AccelMode::Auto, Some(&probe), qemu, dir.path());
        assert_eq!((accel, why.as_str()), (Accel::Kvm, "cached probe: seen"));
        let other = ProbeConfig { marker: "other".into(), ..probe };
        assert_eq!(choose(AccelMode::Auto, Some(&other), qemu, dir.path()).0, Accel::Tcg, "cache is per probe");
    }
}
