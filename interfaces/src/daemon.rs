//! The process contract of a daemon: its TOML configuration, its logs on stderr through `tracing`,
//! the shutdown signal, and the exit codes its supervisor reads.

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
