//! The `.fl` metadata: an SQLite database in rfs's exact schema (`schema/schema.sql` of rfs v2.0.6).
//! Read-only for images that come from outside; the writer makes new ones for `flistd pack`.

use crate::FlistError;
use crate::block::Block;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use std::path::Path;

/// rfs's schema, verbatim in its meaning: the tree, symlink targets, blocks in order, tags, routes.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inode (
    ino INTEGER PRIMARY KEY AUTOINCREMENT,
    parent INTEGER,
    name VARCHAR(255),
    size INTEGER,
    uid INTEGER,
    gid INTEGER,
    mode INTEGER,
    rdev INTEGER,
    ctime INTEGER,
    mtime INTEGER
);
CREATE INDEX IF NOT EXISTS parents ON inode (parent);
CREATE TABLE IF NOT EXISTS extra (
    ino INTEGER PRIMARY KEY,
    data VARCHAR(4096)
);
CREATE TABLE IF NOT EXISTS block (
    ino INTEGER,
    id VARCHAR(32),
    key VARCHAR(32)
);
CREATE INDEX IF NOT EXISTS block_ino ON block (ino);
CREATE TABLE IF NOT EXISTS tag (
    key VARCHAR(10) PRIMARY KEY,
    value VARCHAR(255)
);
CREATE TABLE IF NOT EXISTS route (
    start integer,
    end integer,
    url VARCHAR(2048)
);
";

/// The inode number of the root directory.
pub const ROOT: u64 = 1;

/// One entry of the tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inode {
    /// Its number (the root is 1).
    pub ino: u64,
    /// Its directory's number (0 for the root).
    pub parent: u64,
    /// Its name in the directory (`/` for the root).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Owner.
    pub uid: u32,
    /// Group (rfs reads it from the `uid` column by mistake; here it is the `gid` column).
    pub gid: u32,
    /// Type and permission bits, as `st_mode`.
    pub mode: u32,
    /// Device number of a device node.
    pub rdev: u64,
    /// Change time, seconds.
    pub ctime: i64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// A symlink's target.
    pub data: Option<Vec<u8>>,
}

/// A range of block-id first bytes and the store that holds those blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// First byte of the range.
    pub start: u8,
    /// Last byte of the range (inclusive).
    pub end: u8,
    /// The store (`dir://`, `zdb://`, `http(s)://`, ...).
    pub url: String,
}

fn bytes(value: ValueRef<'_>) -> Option<Vec<u8>> {
    match value {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Some(bytes.to_vec()),
        _ => None,
    }
}

fn u64_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn inode_of(row: &Row<'_>) -> rusqlite::Result<Inode> {
    Ok(Inode {
        ino: u64_of(row.get(0)?),
        parent: u64_of(row.get::<_, Option<i64>>(1)?.unwrap_or(0)),
        name: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
        size: u64_of(row.get::<_, Option<i64>>(3)?.unwrap_or(0)),
        uid: u32::try_from(row.get::<_, Option<i64>>(4)?.unwrap_or(0)).unwrap_or(0),
        gid: u32::try_from(row.get::<_, Option<i64>>(5)?.unwrap_or(0)).unwrap_or(0),
        mode: u32::try_from(row.get::<_, Option<i64>>(6)?.unwrap_or(0)).unwrap_or(0),
        rdev: u64_of(row.get::<_, Option<i64>>(7)?.unwrap_or(0)),
        ctime: row.get::<_, Option<i64>>(8)?.unwrap_or(0),
        mtime: row.get::<_, Option<i64>>(9)?.unwrap_or(0),
        data: bytes(row.get_ref(10)?),
    })
}

const INODE_COLUMNS: &str = "inode.ino, inode.parent, inode.name, inode.size, inode.uid, inode.gid, inode.mode, \
     inode.rdev, inode.ctime, inode.mtime, extra.data FROM inode LEFT JOIN extra ON inode.ino = extra.ino";

/// Reads an `.fl`, opened read-only.
pub struct Reader {
    db: Connection,
}

impl Reader {
    /// Opens an `.fl` read-only (it is never modified, whoever made it).
    pub fn open(path: &Path) -> Result<Reader, FlistError> {
        let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        Ok(Reader { db })
    }

    /// An inode by number.
    pub fn inode(&self, ino: u64) -> Result<Option<Inode>, FlistError> {
        let sql = format!("SELECT {INODE_COLUMNS} WHERE inode.ino = ?1");
        Ok(self.db.query_row(&sql, params![i64::try_from(ino).unwrap_or(i64::MAX)], inode_of).optional()?)
    }

    /// A directory's entries, in insertion order.
    pub fn children(&self, parent: u64) -> Result<Vec<Inode>, FlistError> {
        let sql = format!("SELECT {INODE_COLUMNS} WHERE inode.parent = ?1 ORDER BY inode.ino");
        let mut statement = self.db.prepare(&sql)?;
        let rows = statement.query_map(params![i64::try_from(parent).unwrap_or(i64::MAX)], inode_of)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The entry `name` of directory `parent`.
    pub fn lookup(&self, parent: u64, name: &str) -> Result<Option<Inode>, FlistError> {
        let sql = format!("SELECT {INODE_COLUMNS} WHERE inode.parent = ?1 AND inode.name = ?2");
        let parent = i64::try_from(parent).unwrap_or(i64::MAX);
        Ok(self.db.query_row(&sql, params![parent, name], inode_of).optional()?)
    }

    /// A file's blocks, in order (rowid order: a file's content is its blocks in that order).
    pub fn blocks(&self, ino: u64) -> Result<Vec<Block>, FlistError> {
        let mut statement = self.db.prepare("SELECT id, key FROM block WHERE ino = ?1 ORDER BY rowid")?;
        let mut rows = statement.query(params![i64::try_from(ino).unwrap_or(i64::MAX)])?;
        let mut blocks = Vec::new();
        while let Some(row) = rows.next()? {
            let field = |idx: usize| -> Result<[u8; 32], FlistError> {
                bytes(row.get_ref(idx)?).and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| FlistError::Block {
                    id: String::new(),
                    why: format!("a block of inode {ino} has an id or key that is not 32 bytes"),
                })
            };
            blocks.push(Block { id: field(0)?, key: field(1)? });
        }
        Ok(blocks)
    }

    /// The ids of every block the flist names (each once): what the block cache keeps while it is mounted.
    pub fn block_ids(&self) -> Result<std::collections::HashSet<[u8; 32]>, FlistError> {
        let mut statement = self.db.prepare("SELECT DISTINCT id FROM block")?;
        let mut rows = statement.query([])?;
        let mut ids = std::collections::HashSet::new();
        while let Some(row) = rows.next()? {
            if let Some(id) = bytes(row.get_ref(0)?).and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                ids.insert(id);
            }
        }
        Ok(ids)
    }

    /// A tag's value (`version`, `description`, `author`, or any other).
    pub fn tag(&self, key: &str) -> Result<Option<String>, FlistError> {
        Ok(self.db.query_row("SELECT value FROM tag WHERE key = ?1", params![key], |row| row.get(0)).optional()?)
    }

    /// The routes to the block stores.
    pub fn routes(&self) -> Result<Vec<Route>, FlistError> {
        let mut statement = self.db.prepare("SELECT start, end, url FROM route ORDER BY rowid")?;
        let rows = statement.query_map([], |row| {
            Ok(Route {
                start: u8::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                end: u8::try_from(row.get::<_, i64>(1)?).unwrap_or(u8::MAX),
                url: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Writes a new `.fl` (any file already at the path is replaced). Everything goes into one SQLite
/// transaction, committed by [`Writer::finish`].
pub struct Writer {
    db: Connection,
}

impl Writer {
    /// Creates an empty `.fl` with rfs's schema.
    pub fn create(path: &Path) -> Result<Writer, FlistError> {
        match std::fs::remove_file(path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
            _ => {}
        }
        let db = Connection::open(path)?;
        db.execute_batch(SCHEMA)?;
        db.execute_batch("BEGIN")?;
        Ok(Writer { db })
    }

    /// Adds an inode (its `ino` is ignored: the database numbers it) and returns its number.
    pub fn inode(&self, inode: &Inode) -> Result<u64, FlistError> {
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.db.execute(
            "INSERT INTO inode (parent, name, size, uid, gid, mode, rdev, ctime, mtime) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                int(inode.parent),
                inode.name,
                int(inode.size),
                inode.uid,
                inode.gid,
                inode.mode,
                int(inode.rdev),
                inode.ctime,
                inode.mtime
            ],
        )?;
        let ino = u64_of(self.db.last_insert_rowid());
        if let Some(data) = &inode.data {
            self.db.execute("INSERT INTO extra (ino, data) VALUES (?1, ?2)", params![int(ino), data])?;
        }
        Ok(ino)
    }

    /// Appends a block to a file.
    pub fn block(&self, ino: u64, block: &Block) -> Result<(), FlistError> {
        self.db.execute(
            "INSERT INTO block (ino, id, key) VALUES (?1, ?2, ?3)",
            params![i64::try_from(ino).unwrap_or(i64::MAX), &block.id[..], &block.key[..]],
        )?;
        Ok(())
    }

    /// Adds a route.
    pub fn route(&self, route: &Route) -> Result<(), FlistError> {
        self.db.execute(
            "INSERT INTO route (start, end, url) VALUES (?1, ?2, ?3)",
            params![route.start, route.end, route.url],
        )?;
        Ok(())
    }

    /// Sets a tag.
    pub fn tag(&self, key: &str, value: &str) -> Result<(), FlistError> {
        self.db.execute("INSERT OR REPLACE INTO tag (key, value) VALUES (?1, ?2)", params![key, value])?;
        Ok(())
    }

    /// Commits everything.
    pub fn finish(self) -> Result<(), FlistError> {
        self.db.execute_batch("COMMIT")?;
        Ok(())
    }
}
