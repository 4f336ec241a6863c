//! What a call can end in.

use crate::wire::RemoteError;

/// Stable error codes carried across the bus in `RemoteError::code`.
pub mod code {
    /// The thing asked for does not exist.
    pub const NOT_FOUND: &str = "not_found";
    /// It exists already.
    pub const EXISTS: &str = "exists";
    /// No pool or device has room.
    pub const NOT_ENOUGH_SPACE: &str = "not_enough_space";
    /// The input is invalid.
    pub const INVALID: &str = "invalid";
    /// It conflicts with something else.
    pub const CONFLICT: &str = "conflict";
    /// The caller may not do this.
    pub const FORBIDDEN: &str = "forbidden";
    /// The module cannot serve this now.
    pub const UNAVAILABLE: &str = "unavailable";
    /// A request or reply is larger than the bus allows.
    pub const TOO_LARGE: &str = "too_large";
    /// Anything else.
    pub const INTERNAL: &str = "internal";
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ZbusError {
    /// The method ran and returned an error; its code survives the trip.
    #[error("{0}")]
    Remote(#[from] RemoteError),
    /// The server could not run the call: unknown object or method, bad arguments, a panic.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No reply before the deadline.
    #[error("no reply from {target} within {timeout:?}")]
    Deadline {
        /// `module.object@version.Method`.
        target: String,
        /// The deadline.
        timeout: std::time::Duration,
    },
    /// Redis is unreachable or failed.
    #[error("redis: {0}")]
    Transport(#[from] redis::RedisError),
    /// A value could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(String),
    /// A request or reply larger than the limit.
    #[error("{what} of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// `request` or `reply`.
        what: &'static str,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

impl ZbusError {
    /// The remote error code, when the method itself failed.
    pub fn code(&self) -> Option<&str> {
        match self {
            ZbusError::Remote(err) => Some(err.code.as_str()),
            ZbusError::TooLarge { .. } => Some(code::TOO_LARGE),
            _ => None,
        }
    }
}

/// How a dispatched call failed, on the server side.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The method returned an error: it goes back in `Output.Error`.
    #[error("{0}")]
    Remote(RemoteError),
    /// The call could not be made: it goes back in the response's `Error`.
    #[error("{0}")]
    Protocol(String),
}
