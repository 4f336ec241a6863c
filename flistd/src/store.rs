//! Block stores: where an flist's blocks live, by the routes its metadata names.
//!
//! `dir://PATH` (rfs's layout: `PATH/<hex id>`, and the sharded `PATH/<hex[0:2]>/<hex id>` too) and
//! `zdb://HOST[:PORT][/NAMESPACE]` (a 0-db namespace over the Redis protocol: `GET` of the raw id) are
//! read here. A `dir://` route of an flist that comes from outside may read the node's own files, so the
//! daemon accepts only those under its allow-list ([`DirPolicy`]); the operator's own commands accept
//! any. `http://` and `https://` stores (rfs master's `HTTPStore`) serve a block at
//! `<url>/<hex[0:2]>/<hex id>` (and `<url>/<hex id>` as rfs falls back to): a 404 is a missing block, a
//! connection that fails is the hub being down. `s3://` stores are not implemented yet and are refused
//! by name. A [`CachedStore`] keeps fetched blocks on the cache disk, with one download in flight per
//! block.

use crate::FlistError;
use crate::block::Block;
use crate::meta::Route;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Where blocks are kept.
pub trait Store: Send + Sync {
    /// The ciphertext of a block, `None` when the store does not have it.
    fn get(&self, id: &[u8; 32]) -> Result<Option<Vec<u8>>, FlistError>;
    /// Keeps a block's ciphertext.
    fn set(&self, id: &[u8; 32], sealed: &[u8]) -> Result<(), FlistError>;
    /// The URL a route records for this store.
    fn url(&self) -> String;
}

/// Blocks as files of a directory, named by their id in hex.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// A store in `root` (created when packing).
    pub fn new(root: impl Into<PathBuf>) -> DirStore {
        DirStore { root: root.into() }
    }
}

impl Store for DirStore {
    fn get(&self, id: &[u8; 32]) -> Result<Option<Vec<u8>>, FlistError> {
        let name = hex::encode(id);
        for path in [self.root.join(&name), self.root.join(&name[..2]).join(&name)] {
            match std::fs::read(&path) {
                Ok(bytes) => return Ok(Some(bytes)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(None)
    }

    fn set(&self, id: &[u8; 32], sealed: &[u8]) -> Result<(), FlistError> {
        std::fs::create_dir_all(&self.root)?;
        let name = hex::encode(id);
        let path = self.root.join(&name);
        if path.exists() {
            return Ok(());
        }
        // A unique temporary name, then a rename: a reader never sees a partial block.
        let tmp = self.root.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, sealed)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    fn url(&self) -> String {
        format!("dir://{}", self.root.display())
    }
}

/// A 0-db namespace spoken over the Redis protocol (a redis-server stands in for it in tests).
pub struct ZdbStore {
    url: String,
    client: redis::Client,
    namespace: Option<String>,
    conn: Mutex<Option<redis::Connection>>,
}

/// How long a zdb store may take to connect or answer.
const ZDB_TIMEOUT: Duration = Duration::from_secs(10);

impl ZdbStore {
    /// A store for `zdb://HOST[:PORT][/NAMESPACE]` (port 9900 by default); it connects on first use.
    pub fn new(url: &str) -> Result<ZdbStore, FlistError> {
        let refuse = |why: String| FlistError::Store { url: url.to_string(), why };
        let rest = url.strip_prefix("zdb://").ok_or_else(|| refuse("not a zdb:// URL".into()))?;
        let (address, namespace) = match rest.split_once('/') {
            Some((address, namespace)) if !namespace.is_empty() => (address, Some(namespace.to_string())),
            Some((address, _)) => (address, None),
            None => (rest, None),
        };
        let address = if address.contains(':') { address.to_string() } else { format!("{address}:9900") };
        let client = redis::Client::open(format!("redis://{address}")).map_err(|err| refuse(err.to_string()))?;
        Ok(ZdbStore { url: url.to_string(), client, namespace, conn: Mutex::new(None) })
    }

    /// Runs `command` on the connection, connecting (and selecting the namespace) first when needed, and
    /// once more on a fresh connection when the old one failed.
    fn run<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, FlistError> {
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = None;
        for _ in 0..2 {
            if slot.is_none() {
                let connected = self.client.get_connection_with_timeout(ZDB_TIMEOUT).and_then(|mut conn| {
                    conn.set_read_timeout(Some(ZDB_TIMEOUT))?;
                    conn.set_write_timeout(Some(ZDB_TIMEOUT))?;
                    if let Some(namespace) = &self.namespace {
                        redis::cmd("SELECT").arg(namespace).query::<()>(&mut conn)?;
                    }
                    Ok(conn)
                });
                match connected {
                    Ok(conn) => *slot = Some(conn),
                    Err(err) => {
                        last = Some(err);
                        continue;
                    }
                }
            }
            if let Some(conn) = slot.as_mut() {
                match command.query(conn) {
                    Ok(value) => return Ok(value),
                    Err(err) => {
                        *slot = None;
                        last = Some(err);
                    }
                }
            }
        }
        Err(FlistError::Store {
            url: self.url.clone(),
            why: last.map_or_else(|| "unreachable".to_string(), |err| err.to_string()),
        })
    }
}

impl Store for ZdbStore {
    fn get(&self, id: &[u8; 32]) -> Result<Option<Vec<u8>>, FlistError> {
        self.run(redis::cmd("GET").arg(&id[..]))
    }

    fn set(&self, id: &[u8; 32], sealed: &[u8]) -> Result<(), FlistError> {
        self.run(redis::cmd("SET").arg(&id[..]).arg(sealed))
    }

    fn url(&self) -> String {
        self.url.clone()
    }
}

/// Blocks served over HTTP(S), read-only.
pub struct HttpStore {
    url: String,
    agent: ureq::Agent,
}

/// How long an HTTP store may take to connect, and to answer each read.
const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// The largest sealed block accepted from a store (a block holds at most 512 KiB of plaintext,
/// compressed, plus the tag).
const MAX_SEALED: u64 = 4 << 20;

impl HttpStore {
    /// A store for `http(s)://HOST[:PORT][/PATH]`.
    pub fn new(url: &str) -> Result<HttpStore, FlistError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FlistError::Store { url: url.to_string(), why: "not an http(s):// URL".into() });
        }
        Ok(HttpStore { url: url.to_string(), agent: crate::hub::agent(HTTP_CONNECT_TIMEOUT, HTTP_READ_TIMEOUT) })
    }
}

impl Store for HttpStore {
    fn get(&self, id: &[u8; 32]) -> Result<Option<Vec<u8>>, FlistError> {
        let name = hex::encode(id);
        let base = self.url.trim_end_matches('/');
        for url in [format!("{base}/{}/{name}", &name[..2]), format!("{base}/{name}")] {
            // One more try on a fresh connection when the first one failed (a connection the hub closed).
            let mut response = match self.agent.get(&url).call() {
                Ok(response) => response,
                Err(_) => self.agent.get(&url).call().map_err(|err| crate::hub::transport(&self.url, err))?,
            };
            match response.status().as_u16() {
                200 => {}
                404 => continue,
                status => return Err(FlistError::Http { url, status }),
            }
            let mut sealed = Vec::new();
            response
                .body_mut()
                .as_reader()
                .take(MAX_SEALED.saturating_add(1))
                .read_to_end(&mut sealed)
                .map_err(|err| FlistError::HubDown { url: url.clone(), why: err.to_string() })?;
            if u64::try_from(sealed.len()).unwrap_or(u64::MAX) > MAX_SEALED {
                return Err(FlistError::Block { id: name, why: format!("larger than {MAX_SEALED} bytes") });
            }
            return Ok(Some(sealed));
        }
        Ok(None)
    }

    fn set(&self, _id: &[u8; 32], _sealed: &[u8]) -> Result<(), FlistError> {
        Err(FlistError::Store { url: self.url.clone(), why: "http stores are read-only".into() })
    }

    fn url(&self) -> String {
        self.url.clone()
    }
}

/// One download in flight: done once the leader finished (whether it succeeded or not).
type Flight = (Mutex<bool>, Condvar);

/// A store with a block cache in front (on the cache volume), keyed by block id. One download is in
/// flight per block: concurrent readers of a block that is not cached yet wait for the first one's
/// download. A fetched block enters the cache only when its ciphertext hashes to its id, under a
/// unique temporary name renamed into place, so a reader never sees a partial or corrupted one; what it
/// holds is verified again when the block is opened.
pub struct CachedStore {
    inner: Box<dyn Store>,
    dir: PathBuf,
    inflight: Mutex<HashMap<[u8; 32], Arc<Flight>>>,
    fetches: AtomicU64,
}

impl CachedStore {
    /// `inner` behind a cache in `dir`.
    pub fn new(inner: Box<dyn Store>, dir: impl Into<PathBuf>) -> CachedStore {
        CachedStore { inner, dir: dir.into(), inflight: Mutex::new(HashMap::new()), fetches: AtomicU64::new(0) }
    }

    /// How many blocks were fetched from the inner store.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    fn cached(&self, id: &[u8; 32]) -> Result<Option<Vec<u8>>, FlistError> {
        let path = self.dir.join(hex::encode(id));
        match std::fs::read(&path) {
            Ok(bytes) => {
                // The modification time says when a block was last used: eviction goes by it.
                if let Ok(file) = std::fs::File::options().write(true).open(&path) {
                    let _ = file.set_modified(std::time::SystemTime::now());
                }
                Ok(Some(bytes))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    fn fetch(&self, id: &[u8; 32]) -> Result<Option<Vec<u8>>, FlistError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let Some(sealed) = self.inner.get(id)? else { return Ok(None) };
        let name = hex::encode(id);
        // A block that is not what its id names (corrupted on the way) never enters the cache: the next
        // read fetches it again.
        if !crate::block::matches_id(id, &sealed) {
            return Err(FlistError::Block { id: name, why: "content does not match its id".into() });
        }
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(".{name}.{}.{:?}.tmp", std::process::id(), std::thread::current().id()));
        std::fs::write(&tmp, &sealed)?;
        std::fs::rename(&tmp, self.dir.join(name))?;
        Ok(Some(sealed))
    }
}

impl Store for CachedStore {
    fn get(&self, id: &[u8; 32]) -> Result<Option<Vec<u8>>, FlistError> {
        if let Some(bytes) = self.cached(id)? {
            return Ok(Some(bytes));
        }
        let (flight, leader) = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match inflight.get(id) {
                Some(flight) => (flight.clone(), false),
                None => {
                    let flight = Arc::new((Mutex::new(false), Condvar::new()));
                    inflight.insert(*id, flight.clone());
                    (flight, true)
                }
            }
        };
        if leader {
            let fetched = self.fetch(id);
            self.inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            *flight.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
            flight.1.notify_all();
            return fetched;
        }
        let mut done = flight.0.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            done = flight.1.wait(done).unwrap_or_else(|p| p.into_inner());
        }
        drop(done);
        // The leader's download is in the cache now, unless it failed: then try on our own.
        match self.cached(id)? {
            Some(bytes) => Ok(Some(bytes)),
            None => self.fetch(id),
        }
    }

    fn set(&self, id: &[u8; 32], sealed: &[u8]) -> Result<(), FlistError> {
        self.inner.set(id, sealed)
    }

    fn url(&self) -> String {
        self.inner.url()
    }
}

/// Which `dir://` routes may be followed.
#[derive(Debug, Clone)]
pub enum DirPolicy {
    /// Any directory: the operator's own commands, on the operator's own images.
    Any,
    /// Only directories under one of these (the daemon, on images that come from outside).
    Under(Vec<PathBuf>),
}

impl DirPolicy {
    fn allows(&self, path: &Path) -> bool {
        match self {
            DirPolicy::Any => true,
            DirPolicy::Under(roots) => {
                let Ok(path) = std::fs::canonicalize(path) else { return false };
                roots.iter().filter_map(|root| std::fs::canonicalize(root).ok()).any(|root| path.starts_with(root))
            }
        }
    }
}

/// Opens the store a route names.
pub fn open(url: &str, policy: &DirPolicy) -> Result<Box<dyn Store>, FlistError> {
    let refuse = |why: &str| FlistError::Store { url: url.to_string(), why: why.into() };
    match url.split_once("://") {
        Some(("dir", path)) => {
            let path = Path::new(path);
            if !policy.allows(path) {
                return Err(refuse("a dir:// route outside the allowed directories"));
            }
            Ok(Box::new(DirStore::new(path)))
        }
        Some(("zdb", _)) => Ok(Box::new(ZdbStore::new(url)?)),
        Some(("http" | "https", _)) => Ok(Box::new(HttpStore::new(url)?)),
        Some((scheme @ ("s3" | "s3s"), _)) => Err(refuse(&format!("{scheme} stores are not supported yet"))),
        _ => Err(refuse("unknown store scheme")),
    }
}

/// The stores of an flist, by its routes: a block is looked for in every store whose range holds the
/// first byte of its id.
pub struct Router {
    routes: Vec<(Route, Box<dyn Store>)>,
}

impl Router {
    /// Opens every route's store under `policy`.
    pub fn new(routes: Vec<Route>, policy: &DirPolicy) -> Result<Router, FlistError> {
        Router::build(routes, policy, None)
    }

    /// The same, every store behind a block cache in `cache`.
    pub fn cached(routes: Vec<Route>, policy: &DirPolicy, cache: &Path) -> Result<Router, FlistError> {
        Router::build(routes, policy, Some(cache))
    }

    fn build(routes: Vec<Route>, policy: &DirPolicy, cache: Option<&Path>) -> Result<Router, FlistError> {
        let routes = routes
            .into_iter()
            .map(|route| {
                let store = open(&route.url, policy)?;
                let store: Box<dyn Store> = match cache {
                    Some(dir) => Box::new(CachedStore::new(store, dir)),
                    None => store,
                };
                Ok((route, store))
            })
            .collect::<Result<_, FlistError>>()?;
        Ok(Router { routes })
    }

    /// A block's plaintext, fetched and verified.
    pub fn read(&self, block: &Block) -> Result<Vec<u8>, FlistError> {
        for (route, store) in &self.routes {
            if (route.start..=route.end).contains(&block.id[0])
                && let Some(sealed) = store.get(&block.id)?
            {
                return crate::block::open(block, &sealed);
            }
        }
        Err(FlistError::BlockNotFound(block.hex_id()))
    }
}

/// What an eviction removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Blocks removed.
    pub blocks: u64,
    /// Bytes they took.
    pub bytes: u64,
}

/// How many bytes the blocks of a block cache take (0 when it does not exist yet).
pub fn cached_bytes(dir: &Path) -> Result<u64, FlistError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err.into()),
    };
    let mut total = 0u64;
    for entry in entries {
        let entry = entry?;
        if block_id(&entry.file_name().to_string_lossy()).is_some() {
            total = total.saturating_add(entry.metadata()?.len());
        }
    }
    Ok(total)
}

/// The id a cache file's name gives (64 hex digits), `None` for anything else.
fn block_id(name: &str) -> Option<[u8; 32]> {
    hex::decode(name).ok().and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
}

/// Evicts blocks from a block cache: every block unused since `older_than` (ZOS keeps 90 days), then,
/// when the cache still takes more than `max_bytes`, the least recently used ones until it fits. A block
/// named in `keep` (the blocks of the images mounted now) is never evicted.
pub fn evict(
    dir: &Path,
    older_than: std::time::SystemTime,
    max_bytes: Option<u64>,
    keep: &std::collections::HashSet<[u8; 32]>,
) -> Result<Evicted, FlistError> {
    let mut blocks = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(id) = block_id(&entry.file_name().to_string_lossy()) else { continue };
        let meta = entry.metadata()?;
        blocks.push((meta.modified()?, meta.len(), id, entry.path()));
    }
    blocks.sort();
    let mut total: u64 = blocks.iter().map(|(_, len, _, _)| *len).sum();
    let mut evicted = Evicted::default();
    for (used, len, id, path) in blocks {
        let too_old = used < older_than;
        let too_big = max_bytes.is_some_and(|max| total > max);
        if keep.contains(&id) || !(too_old || too_big) {
            continue;
        }
        std::fs::remove_file(&path)?;
        total = total.saturating_sub(len);
        evicted.blocks = evicted.blocks.saturating_add(1);
        evicted.bytes = evicted.bytes.saturating_add(len);
    }
    Ok(evicted)
}
