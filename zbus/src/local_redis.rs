//! A private `redis-server` on a unix socket in a directory of its own, without persistence: for the
//! tests of every module and for the local node runtime.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, stopped when dropped.
#[derive(Debug)]
pub struct LocalRedis {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalRedisError {
    /// The binary is missing.
    #[error("redis-server is not installed: install it with `apt-get install redis-server` (scripts/test does this)")]
    Missing,
    /// It did not come up.
    #[error("redis-server did not start: {0}")]
    Start(String),
}

impl LocalRedis {
    /// Starts a server whose socket is `<dir>/redis.sock`.
    pub fn start(dir: impl AsRef<Path>) -> Result<LocalRedis, LocalRedisError> {
        LocalRedis::start_with_port(dir, 0)
    }

    /// Starts a server that also listens on TCP `127.0.0.1:<port>` (0: no TCP).
    pub fn start_with_port(dir: impl AsRef<Path>, port: u16) -> Result<LocalRedis, LocalRedisError> {
        let mut redis = LocalRedis { dir: dir.as_ref().to_path_buf(), port, child: None };
        redis.spawn()?;
        Ok(redis)
    }

    /// The socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// The URL clients and servers connect to: `unix:///.../redis.sock`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn spawn(&mut self) -> Result<(), LocalRedisError> {
        let socket = self.socket();
        let _ = std::fs::remove_file(&socket);
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| {
                if err.kind() == std::io::ErrorKind::NotFound {
                    LocalRedisError::Missing
                } else {
                    LocalRedisError::Start(err.to_string())
                }
            })?;
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(LocalRedisError::Start(format!("no socket at {} after 10 s", socket.display())))
    }

    /// Kills the server at once (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same socket (after `kill`).
    pub fn restart(&mut self) -> Result<(), LocalRedisError> {
        self.kill();
        self.spawn()
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
