//! vmd's errors, each with the stable code it carries over the bus.

use zos_zbus::code;

/// Why a VM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The VM's configuration is invalid (ZOS's messages where ZOS has one).
    #[error("{0}")]
    Invalid(String),
    /// No such VM.
    #[error("vm '{0}' not found")]
    NotFound(String),
    /// Something else holds what the VM asks for (a GPU, the name).
    #[error("{0}")]
    Conflict(String),
    /// The node cannot do this (no hypervisor binary, no IOMMU, no virtiofsd).
    #[error("{0}")]
    Unavailable(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The hypervisor's control socket failed or refused a command.
    #[error("qmp: {0}")]
    Qmp(String),
    /// The hypervisor did not start or the guest did not boot.
    #[error("{0}")]
    Start(String),
}

impl VmError {
    /// The bus error code.
    pub fn code(&self) -> &'static str {
        match self {
            VmError::Invalid(_) => code::INVALID,
            VmError::NotFound(_) => code::NOT_FOUND,
            VmError::Conflict(_) => code::CONFLICT,
            VmError::Unavailable(_) => code::UNAVAILABLE,
            VmError::Io { .. } | VmError::Qmp(_) | VmError::Start(_) => code::INTERNAL,
        }
    }

    /// An [`VmError::Io`] maker for `map_err`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VmError {
        let what = what.into();
        move |source| VmError::Io { what, source }
    }
}

impl From<VmError> for zos_zbus::RemoteError {
    fn from(err: VmError) -> zos_zbus::RemoteError {
        zos_zbus::RemoteError::new(err.code(), err.to_string())
    }
}

/// vmd's result type.
pub type Result<T> = std::result::Result<T, VmError>;
