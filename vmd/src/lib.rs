//! vmd: ZOS's virtual machine module. A [`machine::Machine`] (ZOS `pkg/vm/machine.go`) runs on a
//! [`backend::Hypervisor`]: [`qemu::Qemu`] now, on KVM when a probe boot proved it and TCG otherwise
//! ([`accel`]); [`qmp`] controls it, [`seed`] writes its cloud-init disk, [`console`] serves its
//! serial console, [`gpu`] passes GPUs through. [`manager::Manager`] is ZOS's `VMModule` with the
//! monitor; [`service`] serves it as `manager@0.0.1` on zbus.

#![warn(missing_docs)]

pub mod accel;
pub mod backend;
pub mod config;
pub mod console;
pub mod error;
pub mod gpu;
pub mod machine;
pub mod manager;
pub mod process;
pub mod qemu;
pub mod qmp;
pub mod seed;
pub mod service;

pub use config::Config;
pub use error::VmError;
pub use manager::Manager;
