//! Running the tools storaged drives (btrfs-progs, mount, blkid), with their stderr in the error.

use crate::StorageError;
use std::ffi::OsStr;
use std::process::Command;

/// Runs `program args...`; its stdout on success, its stderr in the error.
pub fn run(program: &str, args: &[&OsStr]) -> Result<String, StorageError> {
    let output = Command::new(program).args(args).output().map_err(|err| StorageError::Command {
        command: program.to_string(),
        message: if err.kind() == std::io::ErrorKind::NotFound {
            format!("{program} is not installed")
        } else {
            err.to_string()
        },
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let line: Vec<String> =
            std::iter::once(program.to_string()).chain(args.iter().map(|a| a.to_string_lossy().into_owned())).collect();
        Err(StorageError::Command {
            command: line.join(" "),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}
