//! The serial console over TCP, as ZOS serves it: a listener on the private network's gateway
//! address (port 20000 plus the VM's last octet) inside the network's namespace, each connection
//! joined to the console's unix socket.

use crate::error::{Result, VmError};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A console being served; dropping it stops the listener.
#[derive(Debug)]
pub struct ConsoleServer {
    stop: Arc<AtomicBool>,
    address: String,
    listener: Option<std::thread::JoinHandle<()>>,
}

impl ConsoleServer {
    /// Where it listens.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for ConsoleServer {
    /// Stops the listener and waits (at most its 200 ms poll) until the port is free again.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }
}

/// Binds `address` (in network namespace `namespace`, when given, found under `/var/run/netns`) in a
/// thread of its own, which then joins each connection to the unix socket `console`.
pub fn serve(namespace: Option<&str>, address: &str, console: &Path) -> Result<ConsoleServer> {
    let (tx, rx) = std::sync::mpsc::channel();
    let ns = namespace.map(|n| PathBuf::from("/var/run/netns").join(n));
    let addr = address.to_string();
    // The listener is bound from a thread that entered the namespace; the socket stays in it.
    std::thread::spawn(move || {
        let bound = (|| -> std::io::Result<TcpListener> {
            if let Some(ns) = &ns {
                let file = std::fs::File::open(ns)?;
                nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            }
            let listener = TcpListener::bind(&addr)?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })();
        let _ = tx.send(bound);
    });
    let listener = rx
        .recv()
        .map_err(|_| VmError::Start("console thread ended".into()))?
        .map_err(VmError::io(format!("listen on {address} for the console")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let console = console.to_path_buf();
    let accepting = std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((tcp, _)) => {
                    let console = console.clone();
                    std::thread::spawn(move || join(tcp, &console));
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(err) => {
                    tracing::warn!("console accept failed: {err}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    });
    Ok(ConsoleServer { stop, address: address.to_string(), listener: Some(accepting) })
}

fn copy(mut from: impl Read, mut to: impl Write) {
    let mut buf = [0u8; 4096];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
}

fn join(tcp: TcpStream, console: &Path) {
    let _ = tcp.set_nonblocking(false);
    let Ok(unix) = UnixStream::connect(console) else { return };
    let (Ok(tcp_in), Ok(unix_in)) = (tcp.try_clone(), unix.try_clone()) else { return };
    let up = std::thread::spawn(move || {
        copy(tcp_in, unix_in);
    });
    copy(unix, &tcp);
    let _ = tcp.shutdown(std::net::Shutdown::Both);
    let _ = up.join();
}
