//! Errors of the software NVMe controller.

/// What went wrong building or inspecting an emulated controller.
#[derive(Debug, thiserror::Error)]
pub enum EmuError {
    /// A configuration value out of range.
    #[error("invalid software NVMe controller configuration: {0}")]
    InvalidConfig(String),
    /// Not enough memory for a RAM namespace.
    #[error("cannot allocate {bytes} bytes for namespace {nsid}: use fewer or smaller namespaces")]
    OutOfMemory {
        /// The namespace.
        nsid: u32,
        /// Bytes requested.
        bytes: u64,
    },
    /// The worker thread could not be started.
    #[error("cannot start the controller's worker thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// A namespace ID the controller does not have.
    #[error("namespace {0} does not exist on this controller")]
    NoSuchNamespace(u32),
    /// A block range beyond the end of a namespace, or not a whole number of blocks.
    #[error("namespace {nsid}: {len} bytes at LBA {lba} do not fit the namespace in whole blocks")]
    OutOfRange {
        /// The namespace.
        nsid: u32,
        /// The first block.
        lba: u64,
        /// Length in bytes.
        len: usize,
    },
}
