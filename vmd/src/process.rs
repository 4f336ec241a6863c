//! The hypervisor's processes as the kernel shows them: pid files, liveness (a pid counts only while
//! its command line still names the machine, so a reused pid is never taken for the VM), signals,
//! the OOM score, and resident memory from `/proc/<pid>/status`.

use std::path::Path;
use std::time::{Duration, Instant};

/// The pid written in `path`, if any.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Process `pid`'s command line, its arguments joined by spaces.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(raw.split(|b| *b == 0).map(|part| String::from_utf8_lossy(part).into_owned()).collect::<Vec<_>>().join(" "))
}

fn zombie(pid: u32) -> bool {
    // The state follows the parenthesised command name, which may itself hold spaces or parentheses.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])))
        .unwrap_or(true)
}

/// Whether `pid` runs and its command line contains `needle`.
pub fn alive(pid: u32, needle: &str) -> bool {
    match cmdline(pid) {
        Some(line) => line.contains(needle) && !zombie(pid),
        None => false,
    }
}

/// Every live process whose command line contains `needle`.
pub fn find(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id() && alive(*pid, needle))
        .collect()
}

/// Sends `signal` to `pid` (errors ignored: the process may be gone).
pub fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// Waits up to `timeout` for `pid` to stop being the process named by `needle`.
pub fn wait_gone(pid: u32, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid, needle) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Sets the OOM score adjustment of `pid` (ZOS gives VMs -200).
pub fn set_oom_score_adj(pid: u32, value: i32) -> std::io::Result<()> {
    std::fs::write(format!("/proc/{pid}/oom_score_adj"), value.to_string())
}

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resident {
    /// `VmRSS`: everything resident.
    pub rss: u64,
    /// `RssShmem`: resident shared memory (the guest's RAM, which is a shared memfd).
    pub shmem: u64,
    /// `RssAnon`: the process's private memory (heap, TCG's translation cache, device state).
    pub anon: u64,
    /// `RssFile`: resident file pages (the binary and its libraries, shared with other VMs).
    pub file: u64,
}

/// Reads `VmRSS` and `RssShmem` of `pid`.
pub fn resident(pid: u32) -> Option<Resident> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    };
    Some(Resident {
        rss: field("VmRSS:")?,
        shmem: field("RssShmem:").unwrap_or(0),
        anon: field("RssAnon:").unwrap_or(0),
        file: field("RssFile:").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_itself_and_not_the_dead() {
        let me = std::process::id();
        let line = cmdline(me).expect("own cmdline");
        let first = line.split(' ').next().expect("argv0").to_string();
        assert!(alive(me, &first));
        assert!(!alive(me, "no-such-needle-anywhere"));
        assert!(!alive(u32::MAX - 1, ""));
        let memory = resident(me).expect("status");
        assert!(memory.rss > 0);
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        std::fs::write(&pidfile, "1234\n").expect("write");
        assert_eq!(read_pid(&pidfile), Some(1234));
        assert_eq!(read_pid(&dir.path().join("missing")), None);
    }
}
