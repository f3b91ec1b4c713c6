//! Errors of the pci layer.

/// What went wrong finding, binding or accessing a PCI function.
#[derive(Debug, thiserror::Error)]
pub enum PciError {
    /// A PCI address or transport ID that does not parse.
    #[error("invalid PCI address {0}")]
    InvalidAddress(String),
    /// A region or BAR the device does not have.
    #[error("{device}: BAR {index} is not a memory BAR or is absent")]
    NoSuchBar {
        /// The device.
        device: String,
        /// The BAR index.
        index: u8,
    },
    /// An I/O error on a named sysfs or device file.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
