//! What can go wrong with an flist.

/// An flist that cannot be read, packed, fetched, extracted or mounted.
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
    /// The hub (or an HTTP block store) could not be reached, after every retry: a connection refused or
    /// reset, a name that does not resolve, a timeout.
    #[error("{url}: hub unreachable: {why}")]
    HubDown {
        /// What was asked for.
        url: String,
        /// The last failure.
        why: String,
    },
    /// The hub answered with an HTTP error (404: it has no such file).
    #[error("{url}: the hub answered HTTP {status}")]
    Http {
        /// What was asked for.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A download does not hash to the md5 the hub published for it: it is not kept.
    #[error("{url}: md5 mismatch: the hub says {expected}, the download hashes to {actual}")]
    Md5Mismatch {
        /// What was downloaded.
        url: String,
        /// The hub's `<url>.md5`.
        expected: String,
        /// The md5 of what arrived.
        actual: String,
    },
    /// The hub does not publish an md5 for this flist (ZOS's `ErrHashNotSupported`).
    #[error("hash not supported by flist host")]
    HashNotSupported,
    /// The hub's `<url>.md5` is not 32 hex digits (ZOS's `ErrHashInvalidLen`).
    #[error("invalid hash length")]
    HashInvalidLen,
    /// A download that is not an rfs `.fl` (not SQLite, or without the tables and root of one).
    #[error("{url}: not an rfs flist: {why}")]
    NotAnFlist {
        /// What was downloaded.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A download larger than the configured limit.
    #[error("{url}: larger than the {limit}-byte limit")]
    TooLarge {
        /// What was downloaded.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A mount name that is not one path component (ZOS: "invalid mount name").
    #[error("invalid mount name '{0}'")]
    InvalidName(String),
    /// A read-write mount without a size for its new volume (ZOS's message).
    #[error("invalid mount option, missing disk type")]
    MissingDiskType,
    /// An image this daemon does not mount (ZOS: "unknown extension"); g8ufs `.flist` images are not
    /// supported, only rfs `.fl`.
    #[error("unknown extension: '{0}' (only rfs .fl images are mounted)")]
    Extension(String),
    /// No live mount of that name.
    #[error("{0}: flist not mounted")]
    NotMounted(String),
    /// A mount that could not be made.
    #[error("mount {name}: {why}")]
    Mount {
        /// The mount's name.
        name: String,
        /// What failed.
        why: String,
    },
    /// storaged refused or failed a volume operation.
    #[error("volume {name}: {source}")]
    Volume {
        /// The volume.
        name: String,
        /// storaged's answer.
        source: zos_zbus::ZbusError,
    },
    /// The daemon's state directory cannot be trusted or prepared.
    #[error(transparent)]
    StateDir(#[from] zos_interfaces::daemon::StateDirError),
}
