//! The QEMU backend: `qemu-system-x86_64` from the distribution, daemonized (it returns once the
//! machine is set up, or fails with its reason), controlled over QMP. The command line is built from
//! the [`Machine`]: direct kernel boot, the serial console on a unix socket whose output is also
//! appended to the machine's log, virtio-blk disks in order, tap netdevs with the guest's MAC,
//! shared directories over `vhost-user-fs-pci` with one virtiofsd each (guest RAM is then a shared
//! memfd, as vhost-user needs; it always is, as ZOS runs `shared=on`), and vfio for PCI devices.

use crate::accel::Accel;
use crate::backend::{Hypervisor, MachinePaths};
use crate::error::{Result, VmError};
use crate::machine::Machine;
use crate::process;
use crate::qmp::Qmp;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a QMP command may take.
const QMP_TIMEOUT: Duration = Duration::from_secs(5);

/// The QEMU backend.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// `qemu-system-x86_64`.
    pub binary: PathBuf,
    /// virtiofsd.
    pub virtiofsd: PathBuf,
    /// TCG's translation buffer in MiB (QEMU's default when `None`: 1 GiB, mapped lazily).
    pub tcg_tb_size_mib: Option<u32>,
}

impl Qemu {
    /// QEMU's arguments for `machine` (without the binary).
    pub fn args(&self, machine: &Machine, paths: &MachinePaths, accel: Accel) -> Vec<String> {
        let mem = machine.config.memory_mib;
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut args: Vec<String> = vec!["-name".into(), machine.id.clone()];
        for fixed in ["-nodefaults", "-no-user-config", "-display", "none", "-vga", "none", "-no-reboot"] {
            args.push(fixed.into());
        }
        let (accel_arg, cpu) = match (accel, self.tcg_tb_size_mib) {
            (Accel::Kvm, _) => ("kvm".to_string(), "host"),
            (Accel::Tcg, Some(tb)) => (format!("tcg,tb-size={tb}"), "max"),
            (Accel::Tcg, None) => ("tcg".to_string(), "max"),
        };
        args.extend(["-accel".into(), accel_arg, "-cpu".into(), cpu.into()]);
        args.extend(["-smp".into(), machine.config.vcpu.to_string(), "-m".into(), format!("{mem}M")]);
        args.extend([
            "-object".into(),
            format!("memory-backend-memfd,id=mem,size={mem}M,share=on"),
            "-machine".into(),
            "pc,memory-backend=mem".into(),
        ]);
        args.extend(["-kernel".into(), path(&machine.boot.kernel)]);
        if let Some(initrd) = &machine.boot.initrd {
            args.extend(["-initrd".into(), path(initrd)]);
        }
        args.extend(["-append".into(), machine.boot.args.clone()]);
        args.extend([
            "-chardev".into(),
            format!(
                "socket,id=console,path={},server=on,wait=off,logfile={},logappend=on",
                path(&paths.console()),
                path(&paths.log())
            ),
            "-serial".into(),
            "chardev:console".into(),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", path(&paths.qmp())),
            "-pidfile".into(),
            path(&paths.pid()),
            "-daemonize".into(),
        ]);
        for (i, disk) in machine.disks.iter().enumerate() {
            let ro = if disk.readonly { "on" } else { "off" };
            args.extend([
                "-drive".into(),
                format!("file={},if=none,id=disk{i},format=raw,readonly={ro}", path(&disk.path)),
                "-device".into(),
                format!("virtio-blk-pci,drive=disk{i}"),
            ]);
        }
        for (i, iface) in machine.interfaces.iter().enumerate() {
            args.extend([
                "-netdev".into(),
                format!("tap,id=net{i},ifname={},script=no,downscript=no", iface.tap),
                "-device".into(),
                format!("virtio-net-pci,netdev=net{i},mac={}", iface.mac),
            ]);
        }
        for (i, fs) in machine.fs.iter().enumerate() {
            args.extend([
                "-chardev".into(),
                format!("socket,id=fs{i},path={}", path(&paths.fs_socket(i))),
                "-device".into(),
                format!("vhost-user-fs-pci,chardev=fs{i},tag={}", fs.tag),
            ]);
        }
        for device in &machine.devices {
            args.extend(["-device".into(), format!("vfio-pci,host={device}")]);
        }
        args
    }

    /// Starts one virtiofsd per shared directory; each serves one boot (it ends when QEMU
    /// disconnects).
    fn start_virtiofsd(&self, machine: &Machine, paths: &MachinePaths) -> Result<()> {
        for (i, fs) in machine.fs.iter().enumerate() {
            let socket = paths.fs_socket(i);
            let _ = std::fs::remove_file(&socket);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(paths.log())
                .map_err(VmError::io("open the machine log"))?;
            // virtiofsd waits for QEMU before it would daemonize: it is started in the background of
            // a shell that exits at once, so it is nobody's child here (as ZOS starts its processes).
            let status = Command::new("sh")
                .args(["-c", "\"$@\" &", "sh"])
                .arg(&self.virtiofsd)
                .arg(format!("--socket-path={}", socket.display()))
                .arg("-o")
                .arg(format!("source={}", fs.path.display()))
                .args(["-o", "cache=auto", "-o", "sandbox=chroot"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(VmError::io("machine log"))?)
                .stderr(log)
                .status()
                .map_err(|err| VmError::Unavailable(format!("cannot run {}: {err}", self.virtiofsd.display())))?;
            if !status.success() {
                return Err(VmError::Start(format!("virtiofsd for '{}' failed ({status})", fs.tag)));
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while !socket.exists() {
                if Instant::now() >= deadline {
                    return Err(VmError::Start(format!(
                        "virtiofsd for '{}' made no socket: {}",
                        fs.tag,
                        log_tail(&paths.log())
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Stops what is left of the machine's virtiofsd processes (SIGTERM, SIGKILL after 3 s) and
    /// waits until they are gone: a new one for the same socket cannot start before.
    pub fn stop_virtiofsd(paths: &MachinePaths) {
        let needle = format!("--socket-path={}/fs", paths.dir.display());
        for pid in process::find(&needle) {
            process::signal(pid, nix::sys::signal::Signal::SIGTERM);
            if !process::wait_gone(pid, &needle, Duration::from_secs(3)) {
                process::signal(pid, nix::sys::signal::Signal::SIGKILL);
                process::wait_gone(pid, &needle, Duration::from_secs(2));
            }
        }
    }

    fn qmp(paths: &MachinePaths) -> Result<Qmp> {
        Qmp::connect(&paths.qmp(), QMP_TIMEOUT)
    }
}

fn log_tail(path: &Path) -> String {
    let text = String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

impl Hypervisor for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn start(&self, machine: &Machine, paths: &MachinePaths, accel: Accel) -> Result<u32> {
        for stale in [paths.qmp(), paths.console(), paths.pid()] {
            let _ = std::fs::remove_file(stale);
        }
        Self::stop_virtiofsd(paths);
        let started = self.start_virtiofsd(machine, paths).and_then(|()| {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(paths.log())
                .map_err(VmError::io("open the machine log"))?;
            let status = Command::new(&self.binary)
                .args(self.args(machine, paths, accel))
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(VmError::io("machine log"))?)
                .stderr(log)
                .status()
                .map_err(|err| VmError::Unavailable(format!("cannot run {}: {err}", self.binary.display())))?;
            if !status.success() {
                return Err(VmError::Start(format!(
                    "{} failed ({status}): {}",
                    self.binary.display(),
                    log_tail(&paths.log())
                )));
            }
            process::read_pid(&paths.pid())
                .ok_or_else(|| VmError::Start(format!("{} wrote no pid file", self.binary.display())))
        });
        if started.is_err() {
            Self::stop_virtiofsd(paths);
        }
        started
    }

    fn state(&self, paths: &MachinePaths) -> Result<String> {
        Self::qmp(paths)?.status()
    }

    fn pause(&self, paths: &MachinePaths) -> Result<()> {
        Self::qmp(paths)?.stop()
    }

    fn resume(&self, paths: &MachinePaths) -> Result<()> {
        Self::qmp(paths)?.cont()
    }

    fn shutdown(&self, paths: &MachinePaths) -> Result<()> {
        Self::qmp(paths)?.powerdown()
    }

    fn stop_helpers(&self, paths: &MachinePaths) {
        Self::stop_virtiofsd(paths);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Boot, Config, Disk, Interface, SharedFs};

    #[test]
    fn command_line_follows_the_machine() {
        let qemu = Qemu { binary: "qemu".into(), virtiofsd: "virtiofsd".into(), tcg_tb_size_mib: Some(64) };
        let machine = Machine {
            id: "1-2-vm".into(),
            boot: Boot { kernel: "/k".into(), initrd: Some("/i".into()), args: "console=ttyS0".into() },
            disks: vec![
                Disk { path: "/boot.raw".into(), readonly: false },
                Disk { path: "/seed.img".into(), readonly: true },
            ],
            fs: vec![SharedFs { tag: "vroot".into(), path: "/root".into() }],
            interfaces: vec![Interface { tap: "t-x".into(), mac: "52:54:00:00:00:01".into(), public: false }],
            config: Config { vcpu: 2, memory_mib: 256 },
            devices: vec!["0000:41:00.0".into()],
            no_keep_alive: false,
            console: None,
        };
        let paths = MachinePaths::new(Path::new("/run/vmd/machines"), "1-2-vm");
        let line = qemu.args(&machine, &paths, Accel::Tcg).join(" ");
        for part in [
            "-accel tcg,tb-size=64 -cpu max -smp 2 -m 256M",
            "-object memory-backend-memfd,id=mem,size=256M,share=on -machine pc,memory-backend=mem",
            "-kernel /k -initrd /i -append console=ttyS0",
            "-chardev socket,id=console,path=/run/vmd/machines/1-2-vm/console.sock,server=on,wait=off,\
             logfile=/run/vmd/machines/1-2-vm/machine.log,logappend=on -serial chardev:console",
            "-qmp unix:/run/vmd/machines/1-2-vm/qmp.sock,server=on,wait=off",
            "-drive file=/boot.raw,if=none,id=disk0,format=raw,readonly=off -device virtio-blk-pci,drive=disk0 \
             -drive file=/seed.img,if=none,id=disk1,format=raw,readonly=on -device virtio-blk-pci,drive=disk1",
            "-netdev tap,id=net0,ifname=t-x,script=no,downscript=no -device virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01",
            "-chardev socket,id=fs0,path=/run/vmd/machines/1-2-vm/fs0.sock -device vhost-user-fs-pci,chardev=fs0,tag=vroot",
            "-device vfio-pci,host=0000:41:00.0",
        ] {
            assert!(line.contains(part), "missing {part:?} in {line}");
        }
        let kvm = qemu.args(&machine, &paths, Accel::Kvm).join(" ");
        assert!(kvm.contains("-accel kvm -cpu host"), "{kvm}");
    }
}
