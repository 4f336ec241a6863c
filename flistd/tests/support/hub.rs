//! A small HTTP/1.1 hub on 127.0.0.1 for the tests and the bench: it serves the files of a directory
//! (`GET /PATH` is `ROOT/PATH`), answers `Range: bytes=N-` with a 206 (unless told to ignore it), and can
//! be told to cut the next transfer of a file after N bytes, to flip one byte of a file as it serves it,
//! to answer slowly, or to go down (its port then refuses connections). It records every request it answers.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A block store that writes blocks where the hub serves them (`blocks/<hex[0:2]>/<hex>`, rfs's
/// layout) and records the hub's `http://.../blocks` as the route: what packing for this hub uses.
pub struct HubStore {
    dir: PathBuf,
    url: String,
}

impl zos_flistd::store::Store for HubStore {
    fn get(&self, id: &[u8; 32]) -> Result<Option<Vec<u8>>, zos_flistd::FlistError> {
        let name = hex::encode(id);
        Ok(std::fs::read(self.dir.join(&name[..2]).join(&name)).ok())
    }
    fn set(&self, id: &[u8; 32], sealed: &[u8]) -> Result<(), zos_flistd::FlistError> {
        let name = hex::encode(id);
        std::fs::create_dir_all(self.dir.join(&name[..2]))?;
        Ok(std::fs::write(self.dir.join(&name[..2]).join(&name), sealed)?)
    }
    fn url(&self) -> String {
        self.url.clone()
    }
}

/// What the hub was asked: the path and the `Range` header, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub path: String,
    pub range: Option<String>,
}

#[derive(Default)]
struct Faults {
    /// The next full transfer of this path is cut after this many bytes of its body.
    cut: Option<(String, usize)>,
    /// This path is served with the byte at this offset flipped.
    corrupt: Option<(String, usize)>,
    /// `Range` headers are ignored (a 200 with the whole file).
    ignore_range: bool,
    /// Every answer waits this long first (a slow hub, so that concurrent requests overlap).
    delay: Duration,
}

pub struct Hub {
    pub root: PathBuf,
    port: u16,
    faults: Arc<Mutex<Faults>>,
    asked: Arc<Mutex<Vec<Asked>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hub {
    /// A hub serving `root` on a free port.
    pub fn start(root: &Path) -> Hub {
        std::fs::create_dir_all(root).expect("hub root");
        let mut hub = Hub {
            root: root.to_path_buf(),
            port: 0,
            faults: Arc::default(),
            asked: Arc::default(),
            stop: Arc::default(),
            thread: None,
        };
        hub.listen();
        hub
    }

    fn listen(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind the hub");
        self.port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        self.stop.store(false, Ordering::SeqCst);
        let (root, faults, asked, stop) =
            (self.root.clone(), self.faults.clone(), self.asked.clone(), self.stop.clone());
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (root, faults, asked) = (root.clone(), faults.clone(), asked.clone());
                        std::thread::spawn(move || serve(stream, &root, &faults, &asked));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops listening: the port refuses connections.
    pub fn down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Listens again on the same port.
    pub fn up(&mut self) {
        self.down();
        self.listen();
    }

    pub fn cut_next(&self, path: &str, after: usize) {
        self.faults.lock().expect("faults").cut = Some((path.to_string(), after));
    }

    pub fn corrupt(&self, path: &str, offset: usize) {
        self.faults.lock().expect("faults").corrupt = Some((path.to_string(), offset));
    }

    /// Serves every file as it is again.
    pub fn heal(&self) {
        self.faults.lock().expect("faults").corrupt = None;
    }

    pub fn slow(&self, delay: Duration) {
        self.faults.lock().expect("faults").delay = delay;
    }

    pub fn ignore_range(&self, ignore: bool) {
        self.faults.lock().expect("faults").ignore_range = ignore;
    }

    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().expect("asked").clone()
    }

    pub fn forget(&self) {
        self.asked.lock().expect("asked").clear();
    }

    /// The store of this hub's blocks.
    pub fn store(&self) -> HubStore {
        HubStore { dir: self.root.join("blocks"), url: format!("{}/blocks", self.url()) }
    }

    /// Where block `id` is served from.
    pub fn block_path(&self, hex_id: &str) -> PathBuf {
        self.root.join("blocks").join(&hex_id[..2]).join(hex_id)
    }

    /// Writes a file the hub serves at `/path`.
    pub fn put(&self, path: &str, bytes: &[u8]) {
        let file = self.root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().expect("parent")).expect("dir");
        std::fs::write(file, bytes).expect("put");
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.down();
    }
}

fn serve(mut stream: TcpStream, root: &Path, faults: &Mutex<Faults>, asked: &Mutex<Vec<Asked>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_string());
        }
    }
    asked.lock().expect("asked").push(Asked { path: path.clone(), range: range.clone() });
    let delay = faults.lock().expect("faults").delay;
    std::thread::sleep(delay);
    let file = root.join(path.trim_start_matches('/'));
    let Ok(mut body) = std::fs::read(&file) else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let (cut, ignore_range) = {
        let mut faults = faults.lock().expect("faults");
        if let Some((corrupt, offset)) = &faults.corrupt
            && *corrupt == path
            && let Some(byte) = body.get_mut(*offset)
        {
            *byte ^= 0xff;
        }
        let cut = match &faults.cut {
            Some((cut, after)) if *cut == path => Some(*after),
            _ => None,
        };
        if cut.is_some() {
            faults.cut = None;
        }
        (cut, faults.ignore_range)
    };
    let total = body.len();
    let start = range
        .as_deref()
        .filter(|_| !ignore_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok());
    let head = match start {
        Some(start) if start >= total => {
            let _ = stream.write_all(
                format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            return;
        }
        Some(start) => {
            body.drain(..start);
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{total}\r\nContent-Length: {}\r\n",
                total - 1,
                body.len()
            )
        }
        None => format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n"),
    };
    let _ = stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
    match cut {
        Some(after) => {
            let _ = stream.write_all(&body[..after.min(body.len())]);
            let _ = stream.flush();
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        None => {
            let _ = stream.write_all(&body);
        }
    }
}
