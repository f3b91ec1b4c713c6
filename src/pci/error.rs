//! Errors of the pci layer.

/// What went wrong finding, binding or accessing a PCI function.
#[derive(Debug, thiserror::Error)]
pub enum PciError {
    /// A PCI address or transport ID that does not parse.
    #[error("invalid PCI address {0}")]
    InvalidAddress(String),
    /// A transport ID that does not parse.
    #[error("invalid transport ID {0}")]
    InvalidTransportId(String),
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
    /// No function at that address.
    #[error(
        "no PCI function at {address}: check the address with `spdk-io setup status` or lspci"
    )]
    NotFound {
        /// The address asked for.
        address: String,
    },
    /// Another process holds the device's lock (spdk_pci_device_claim).
    #[error("{address} is claimed by {holder} (lock file {lock_file}): one process at a time may drive a device; stop the other one")]
    Claimed {
        /// The device.
        address: String,
        /// The lock file.
        lock_file: String,
        /// The holding process, as far as the lock file tells.
        holder: String,
    },
    /// The env's `pci_allowed` list does not name the function.
    #[error("{address} is not in the env's pci_allowed list: add it to EnvOpts::pci_allowed")]
    NotAllowed {
        /// The address asked for.
        address: String,
    },
    /// The function is not bound to vfio-pci or uio_pci_generic.
    #[error("{address} is bound to {driver}, not to a user-space driver (vfio-pci or uio_pci_generic): run `spdk-io setup`")]
    NoUserspaceDriver {
        /// The address.
        address: String,
        /// The driver it is bound to, or "no driver".
        driver: String,
    },
    /// The device's access path and the env's IOVA mode do not fit together.
    #[error("{address}: {reason}")]
    IovaMode {
        /// The address.
        address: String,
        /// Why, and what to do.
        reason: String,
    },
    /// The env layer refused (not initialized, mapping failed).
    #[error(transparent)]
    Env(#[from] crate::env::EnvError),
    /// A VFIO ioctl failed.
    #[error("VFIO {op} for {device} failed: {source}")]
    Vfio {
        /// The ioctl or step.
        op: &'static str,
        /// Device, group or container.
        device: String,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// Some device of the IOMMU group is bound to a kernel driver.
    #[error("VFIO group {group} is not viable: bind every function of IOMMU group {group} to vfio-pci (`spdk-io setup`) or unbind them")]
    GroupNotViable {
        /// The IOMMU group number.
        group: u32,
    },
    /// The device is in use by the kernel: mounted, or held by another block device.
    #[error("{address} is in use ({reason}): unmount it / stop its users first, or leave it out with PCI_BLOCKED")]
    InUse {
        /// The address.
        address: String,
        /// What uses it.
        reason: String,
    },
    /// Binding to a driver did not take.
    #[error("binding {address} to {driver} failed: {reason}")]
    Bind {
        /// The address.
        address: String,
        /// The driver asked for.
        driver: String,
        /// What happened, and what to check.
        reason: String,
    },
    /// A config space access outside the 4 KiB configuration space.
    #[error("{address}: config space access of {len} bytes at {offset:#x} is out of range")]
    ConfigRange {
        /// The address.
        address: String,
        /// Offset asked for.
        offset: u16,
        /// Length asked for.
        len: usize,
    },
}

impl PciError {
    /// An I/O error on `path`, doing `what`.
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        PciError::Io {
            what: what.into(),
            source,
        }
    }
}
