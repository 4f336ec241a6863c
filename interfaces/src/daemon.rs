//! The process contract of a daemon: its TOML configuration, its logs on stderr through `tracing`,
//! the shutdown signal, the exit codes its supervisor reads, and how it keeps its own files: state
//! directories 0700 that it refuses to use when another user owns them or others may write them, and
//! private files 0600, written durably (fsync of the file, rename, fsync of the directory). The modes
//! are set by this code, never left to the umask of whoever starts the daemon.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Why a daemon ended, as its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: stopped by SIGTERM or SIGINT.
    Stopped,
    /// 2: the configuration (or a file it names) could not be read or is invalid.
    BadConfiguration,
    /// 3: the resources the daemon owns could not be prepared (pools, namespaces, the store).
    Resources,
    /// 4: the bus failed.
    Bus,
}

impl Exit {
    /// The process exit status.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Stopped => 0,
            Exit::BadConfiguration => 2,
            Exit::Resources => 3,
            Exit::Bus => 4,
        }
    }

    /// Logs `err` as the reason and returns `self`, for `return Exit::Bus.because(err)`.
    pub fn because(self, err: impl std::fmt::Display) -> Exit {
        tracing::error!(exit = self.code(), "{err}");
        self
    }

    /// How a daemon ends once its bus server returns: stopped by a signal (logging `stopped`), or the
    /// bus failed.
    pub fn served<E: std::fmt::Display>(served: Result<(), E>, stopped: &str) -> Exit {
        match served {
            Ok(()) => {
                tracing::info!("{stopped}");
                Exit::Stopped
            }
            Err(err) => Exit::Bus.because(format!("bus failure: {err}")),
        }
    }
}

impl std::process::Termination for Exit {
    fn report(self) -> std::process::ExitCode {
        std::process::ExitCode::from(self.code())
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("{}: invalid configuration: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its line and column.
        source: toml::de::Error,
    },
}

/// Reads a TOML configuration file.
pub fn load_config<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    toml::from_str(&text).map_err(|source| ConfigError::Invalid { path: path.to_path_buf(), source })
}

/// A state directory that cannot be trusted or prepared.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// It could not be created, read or restricted.
    #[error("state directory {}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another user owns it: what is inside may have been planted.
    #[error("state directory {} is owned by uid {owner}, not by this daemon (uid {us})", path.display())]
    Owner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        us: u32,
    },
    /// Group or others may write in it.
    #[error("state directory {} is writable by group or others (mode {mode:o})", path.display())]
    Writable {
        /// The directory.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
}

/// Creates `path` (and its parents) as a directory of mode 0700, or checks an existing one: it must
/// be owned by this process's user and not be writable by group or others; it is then restricted to
/// 0700.
pub fn private_dir(path: &Path) -> Result<(), StateDirError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let io = |source| StateDirError::Io { path: path.to_path_buf(), source };
    if !path.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io)?;
    }
    let meta = std::fs::metadata(path).map_err(io)?;
    let us = nix::unistd::geteuid().as_raw();
    if meta.uid() != us {
        return Err(StateDirError::Owner { path: path.to_path_buf(), owner: meta.uid(), us });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(StateDirError::Writable { path: path.to_path_buf(), mode });
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

/// Writes `bytes` to `path` as a private file (0600) durably: a unique temporary file beside it,
/// fsync, rename over `path`, fsync of the directory. After a crash `path` holds the old bytes or the
/// new ones, never an empty or partial file.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Sends the daemon's logs to stderr (where zinit collects them).
pub fn init_logs() {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
}

/// Resolves on SIGTERM or SIGINT: what a daemon's server runs until.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[allow(dead_code)]
        redis: String,
    }

    #[test]
    fn private_files_and_dirs_have_their_modes_whatever_the_umask() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("a/state");
        private_dir(&state).expect("created");
        assert_eq!(std::fs::metadata(&state).expect("meta").mode() & 0o777, 0o700);
        let key = state.join("twin.key");
        write_private(&key, b"secret").expect("written");
        assert_eq!(std::fs::metadata(&key).expect("meta").mode() & 0o777, 0o600);
        write_private(&key, b"newer").expect("replaced");
        assert_eq!(std::fs::read(&key).expect("read"), b"newer");
        assert_eq!(std::fs::read_dir(&state).expect("dir").count(), 1, "no temporary file left behind");
        nix::sys::stat::umask(old);
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = private_dir(&state).expect_err("writable by others");
        assert!(matches!(err, StateDirError::Writable { mode: 0o777, .. }), "{err}");
    }

    #[test]
    fn state_dir_of_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED state_dir_of_another_user_is_refused: needs root to chown (CI runs as root)");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("dir");
        nix::unistd::chown(&state, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
        let err = private_dir(&state).expect_err("owned by nobody");
        assert!(matches!(err, StateDirError::Owner { owner: 65534, us: 0, .. }), "{err}");
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let codes: Vec<u8> =
            [Exit::Stopped, Exit::BadConfiguration, Exit::Resources, Exit::Bus].iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 2, 3, 4]);
    }

    #[test]
    fn config_errors_name_the_file_and_the_fault() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.toml");
        let err = load_config::<Sample>(&missing).expect_err("missing");
        assert!(err.to_string().starts_with(&format!("cannot read {}", missing.display())), "{err}");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "redis = \"x\"\nworkerz = 3\n").expect("write");
        let err = load_config::<Sample>(&bad).expect_err("unknown field");
        let text = err.to_string();
        assert!(text.contains("bad.toml: invalid configuration") && text.contains("workerz"), "{text}");
        std::fs::write(&bad, "redis = \"unix:///r.sock\"\n").expect("write");
        assert!(load_config::<Sample>(&bad).is_ok());
    }
}
