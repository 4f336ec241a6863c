//! Block stores: where an flist's blocks live, by the routes its metadata names.
//!
//! `dir://PATH` is read here (rfs's layout: `PATH/<hex id>`, and the sharded `PATH/<hex[0:2]>/<hex id>`
//! too). A `dir://` route of an flist that comes from outside may read the node's own files, so the
//! daemon accepts only those under its allow-list ([`DirPolicy`]); the operator's own commands accept
//! any. `zdb://`, `s3://` and `http(s)://` stores are not implemented yet and are refused by name.

use crate::FlistError;
use crate::block::Block;
use crate::meta::Route;
use std::path::{Path, PathBuf};

/// Where blocks are kept.
pub trait Store {
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
        Some((scheme @ ("zdb" | "s3" | "s3s" | "http" | "https"), _)) => {
            Err(refuse(&format!("{scheme} stores are not supported yet")))
        }
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
        let routes = routes
            .into_iter()
            .map(|route| open(&route.url, policy).map(|store| (route, store)))
            .collect::<Result<_, _>>()?;
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
