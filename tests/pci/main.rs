//! PCI addresses, transport IDs and sysfs (on fake sysfs trees), one
//! module per former test binary.

#[path = "../env_support/mod.rs"]
mod env_support;

mod pci_address;
mod pci_sysfs;
