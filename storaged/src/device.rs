//! What a block device already carries: its filesystem signature and partition table (`blkid -p`).
//! Discovery of the devices themselves is `zos_hardware::block`.

use crate::command::run;
use std::path::Path;

/// What a device already carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signature {
    /// Filesystem type (`btrfs`, `ext4`, ...), empty when none.
    pub fs_type: String,
    /// Filesystem label.
    pub label: String,
    /// Partition table type (`gpt`, `dos`), empty when none.
    pub partition_table: String,
}

impl Signature {
    /// Nothing on it: safe to format.
    pub fn is_blank(&self) -> bool {
        self.fs_type.is_empty() && self.partition_table.is_empty() && self.label.is_empty()
    }
}

/// Probes a device with `blkid -p` (exit status 2 means "nothing found").
pub fn signature(device: &Path) -> Result<Signature, crate::StorageError> {
    let output = std::process::Command::new("blkid").arg("-p").arg("-o").arg("export").arg(device).output()?;
    if output.status.code() == Some(2) {
        return Ok(Signature::default());
    }
    if !output.status.success() {
        // Surface the failure with the command's text.
        run("blkid", &["-p".as_ref(), "-o".as_ref(), "export".as_ref(), device.as_os_str()])?;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
            .unwrap_or_default()
            .to_string()
    };
    Ok(Signature { fs_type: field("TYPE"), label: field("LABEL"), partition_table: field("PTTYPE") })
}
