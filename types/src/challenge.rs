//! The text a deployment's signature covers (ZOS `Challenge(io.Writer)`): values written
//! one after the other, numbers in decimal, strings raw, booleans as `true`/`false`, no separators.

use std::fmt::{Display, Write};

/// Accumulates challenge text.
#[derive(Debug, Default)]
pub struct Challenge(String);

impl Challenge {
    /// Appends a value's `Display` text.
    pub fn put(&mut self, value: impl Display) {
        // Writing into a String cannot fail.
        let _ = write!(self.0, "{value}");
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The MD5 digest of the text: ZOS's deployment hash.
    pub fn md5(&self) -> [u8; 16] {
        use md5::{Digest, Md5};
        Md5::digest(self.0.as_bytes()).into()
    }
}
