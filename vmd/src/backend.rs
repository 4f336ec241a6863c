//! The hypervisor backend, shaped like ZOS's `Machine` (`pkg/vm/ch.go`): start a machine from its
//! description, ask its run state, pause and resume it, ask the guest to power off. QEMU implements
//! it now ([`crate::qemu::Qemu`]); a cloud-hypervisor backend can be added behind the same trait.
//! Processes are found again from the files of the machine's directory ([`MachinePaths`]), so a
//! restarted vmd keeps its VMs.

use crate::accel::Accel;
use crate::error::Result;
use crate::machine::Machine;
use std::path::{Path, PathBuf};

/// The files of one machine, under its own directory of the run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachinePaths {
    /// The machine's directory.
    pub dir: PathBuf,
}

impl MachinePaths {
    /// The files of machine `id` under `machines`.
    pub fn new(machines: &Path, id: &str) -> MachinePaths {
        MachinePaths { dir: machines.join(id) }
    }

    /// The saved machine (`config.json`).
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The control socket.
    pub fn qmp(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }

    /// The serial console's socket.
    pub fn console(&self) -> PathBuf {
        self.dir.join("console.sock")
    }

    /// The log: the hypervisor's own output and the serial console.
    pub fn log(&self) -> PathBuf {
        self.dir.join("machine.log")
    }

    /// The cloud-init seed.
    pub fn seed(&self) -> PathBuf {
        self.dir.join("cidata.img")
    }

    /// The hypervisor's pid file.
    pub fn pid(&self) -> PathBuf {
        self.dir.join("hypervisor.pid")
    }

    /// The vhost-user socket of shared directory `index`.
    pub fn fs_socket(&self, index: usize) -> PathBuf {
        self.dir.join(format!("fs{index}.sock"))
    }

    /// What a process of this machine has on its command line.
    pub fn needle(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }
}

/// A hypervisor.
pub trait Hypervisor: Send + Sync + 'static {
    /// Its name (`qemu`).
    fn name(&self) -> &'static str;

    /// Starts `machine` on `accel` with its files under `paths` (the directory exists, the seed is
    /// written); returns the hypervisor's pid once the machine runs. What it started is stopped
    /// again when it fails.
    fn start(&self, machine: &Machine, paths: &MachinePaths, accel: Accel) -> Result<u32>;

    /// The run state (`running`, `paused`, `shutdown`, ...).
    fn state(&self, paths: &MachinePaths) -> Result<String>;

    /// Pauses the guest.
    fn pause(&self, paths: &MachinePaths) -> Result<()>;

    /// Resumes the guest.
    fn resume(&self, paths: &MachinePaths) -> Result<()>;

    /// Asks the guest to power off.
    fn shutdown(&self, paths: &MachinePaths) -> Result<()>;

    /// Stops the helper processes of a machine whose hypervisor is gone (virtiofsd).
    fn stop_helpers(&self, _paths: &MachinePaths) {}
}
