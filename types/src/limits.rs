//! Bounds on what one deployment may carry, so that no caller can make the node hold or store
//! arbitrary amounts of text. ZOS sets none; a real deployment is a few KiB (its metadata is a small
//! JSON object written by the grid's tools), so these defaults never refuse one.

/// The limits a deployment is validated against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest `metadata` or `description`, of the deployment or of one workload, in bytes.
    pub text: usize,
    /// Most workloads in one deployment.
    pub workloads: usize,
    /// Largest deployment, as its JSON encoding, in bytes.
    pub deployment: usize,
}

impl Limits {
    /// The defaults: 4 KiB of text per field, 1 024 workloads, 1 MiB per deployment.
    pub const DEFAULT: Limits = Limits { text: 4 << 10, workloads: 1024, deployment: 1 << 20 };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// Counts what a serializer writes, without keeping it.
#[derive(Default)]
pub(crate) struct Counter(pub(crate) usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
