//! What can go wrong with an flist.

/// An flist that cannot be read, packed or extracted.
#[derive(Debug, thiserror::Error)]
pub enum FlistError {
    /// The SQLite metadata could not be read or written.
    #[error("flist metadata: {0}")]
    Meta(#[from] rusqlite::Error),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A block failed verification or decoding: it is never returned as data.
    #[error("block {id}: {why}")]
    Block {
        /// The block id, in hex.
        id: String,
        /// What is wrong with it.
        why: String,
    },
    /// No store has the block.
    #[error("block {0} not found in any store")]
    BlockNotFound(String),
    /// The flist is not safe to use (a name with `/` or `..`, a loop, an absurd size, a device node).
    #[error("unsafe flist: {0}")]
    Unsafe(String),
    /// A store URL this reader does not support, or may not use.
    #[error("store {url}: {why}")]
    Store {
        /// The URL.
        url: String,
        /// Why it cannot be used.
        why: String,
    },
}
