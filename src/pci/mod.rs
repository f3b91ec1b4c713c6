//! The `pci` layer: finding PCI functions, binding them to user-space drivers
//! (vfio-pci, uio_pci_generic), and the [`PciDevice`] trait a driver programs.

mod address;
mod device;
mod error;

pub use address::PciAddress;
pub use device::{Bar, PciDevice};
pub use error::PciError;
