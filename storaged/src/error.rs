//! storaged errors, each with the stable code it carries across zbus.

use zos_zbus::{RemoteError, code};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No such volume, disk or device.
    #[error("{0} not found")]
    NotFound(String),
    /// It exists already.
    #[error("{0} exists")]
    Exists(String),
    /// No pool of that kind has room.
    #[error("not enough space left in pools of this type {0}")]
    NotEnoughSpace(&'static str),
    /// It exists, but not as asked (on another pool than the one named).
    #[error("{0}")]
    Conflict(String),
    /// Bad input (a name with `/` or `..`, a size of 0, a shrink).
    #[error("invalid: {0}")]
    Invalid(String),
    /// A tool failed.
    #[error("{command} failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr.
        message: String,
    },
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl StorageError {
    /// The error as it travels over zbus.
    pub fn remote(&self) -> RemoteError {
        let code = match self {
            StorageError::NotFound(_) => code::NOT_FOUND,
            StorageError::Exists(_) => code::EXISTS,
            StorageError::NotEnoughSpace(_) => code::NOT_ENOUGH_SPACE,
            StorageError::Invalid(_) => code::INVALID,
            StorageError::Conflict(_) => code::CONFLICT,
            StorageError::Command { .. } | StorageError::Io(_) => code::INTERNAL,
        };
        RemoteError::new(code, self.to_string())
    }
}

impl From<StorageError> for RemoteError {
    fn from(err: StorageError) -> Self {
        err.remote()
    }
}

/// Checks a volume, disk or device name: 1 to 128 characters of `[A-Za-z0-9_:.-]`, not starting with a
/// dot, so never `..` nor a path.
pub fn validate_name(name: &str) -> Result<(), StorageError> {
    if name.is_empty() || name.len() > 128 {
        return Err(StorageError::Invalid(format!("name '{name}' must have 1 to 128 characters")));
    }
    if name.starts_with('.') || name.contains("..") {
        return Err(StorageError::Invalid(format!("name '{name}' must not start with '.' or contain '..'")));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.')) {
        return Err(StorageError::Invalid(format!(
            "name '{name}' may only use letters, digits, '_', '-', ':' and '.'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("1-10-vm").is_ok());
        assert!(validate_name("rootfs:1-10-vm").is_ok());
        for bad in ["", "..", "../etc", "a/b", ".hidden", "a..b", &"x".repeat(129), "a b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    // Upstream `TestCreateSubvolNoSpaceLeft`: the exact text.
    #[test]
    fn not_enough_space_text() {
        assert_eq!(StorageError::NotEnoughSpace("ssd").to_string(), "not enough space left in pools of this type ssd");
        assert_eq!(StorageError::NotEnoughSpace("ssd").remote().code, "not_enough_space");
    }
}
