//! The `pci` layer: finding PCI functions, binding them to user-space drivers
//! (vfio-pci, uio_pci_generic), and the [`PciDevice`] trait a driver programs.
//!
//! - [`PciAddress`] and [`TransportId`]: `0000:00:04.0`, `trtype:PCIe traddr:0000:00:04.0`.
//! - [`Sysfs`]: enumeration ([`PciFunction`]: vendor, device, class, driver,
//!   NUMA node, IOMMU group), binding and unbinding, in-use checks; its root is
//!   configurable so tests run against fixture trees.
//! - [`open`]: a [`PciDevice`] through VFIO ([`VfioDevice`], with the process's
//!   one container mapping all env memory) or through uio ([`UioDevice`], PA mode).
//!   It first [`claim`]s the function, as SPDK does: one process per device.
//! - [`Bar`]: a mapped BAR; [`RegisterBlock`]: a typed `#[repr(C)]` register
//!   map inside one (of [`Plain`] fields), reached through `volatile`'s pointers.
//!
//! `unsafe` is needed here for VFIO ioctls and to map device registers.

mod address;
mod bars;
mod bind;
mod block;
pub mod claim;
mod device;
mod error;
mod mmio;
mod open;
mod sysfs;
mod trid;
mod uio;
mod vfio;

pub use address::PciAddress;
pub use bind::{is_userspace_driver, mounted_in, system_mounts, USERSPACE_DRIVERS};
pub(crate) use block::register_map;
pub use block::{Plain, RegisterBlock};
pub use device::{Bar, PciDevice};
pub use error::PciError;
pub use open::open;
pub use sysfs::{PciFunction, Sysfs, NVME_CLASS};
pub use trid::{TransportId, TransportType};
pub use uio::UioDevice;
pub use vfio::VfioDevice;
