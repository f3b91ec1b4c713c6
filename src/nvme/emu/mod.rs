//! A software NVMe controller: a test tool that lets the whole NVMe driver
//! run in plain `cargo test`, without root, hugepages, VFIO or QEMU.
//!
//! [`EmuController`] implements [`crate::pci::PciDevice`]: BAR 0 is memory the
//! controller owns (registers, then doorbells at 0x1000 with stride 0),
//! configuration space describes an NVMe controller (class 010802h), and a
//! worker thread watches CC and the doorbells, executing admin and NVM
//! commands against RAM namespaces. Host memory is reached only through
//! [`crate::env::iova_to_vaddr`]: an IOVA outside registered DMA memory is a
//! DMA fault (Data Transfer Error, or Controller Fatal Status for queue
//! memory), never a wild access. Nothing is fetched while the COMMAND
//! register's Bus Master Enable bit is clear.
//!
//! - [`EmuBuilder`] / [`EmuConfig`]: serial, model, firmware, CAP.MQES, MDTS,
//!   I/O queue pairs, CAP.TO, ready delay, namespaces (512 B or 4 KiB
//!   blocks), shadow doorbells (Doorbell Buffer Config with EventIdx),
//!   volatile write cache, SGLs.
//! - [`EmuHandle`]: statistics ([`EmuStats`]), asynchronous events
//!   (namespace attribute changed, SMART warnings), namespace contents.
//! - [`Faults`]: error status, dropped completions, delays or controller
//!   fatal status for the next commands matching a [`CommandMatch`]; never-ready.
//! - [`Sqe`], [`Cqe`], [`Status`]: the controller's own reading of the
//!   NVMe Base specification's queue entries, usable by hand-written hosts.
//!
//! Admin commands: Identify (CNS 0, 1, 2, 3), Get/Set Features, Create/Delete
//! I/O SQ/CQ, Get Log Page (01h, 02h, 03h, 04h), Abort, Asynchronous Event
//! Request, Doorbell Buffer Config, Format NVM, Keep Alive. NVM commands:
//! Read, Write, Flush, Write Zeroes, Dataset Management (deallocate reads
//! back zeroes), Compare. Data pointers: PRP1/PRP2/PRP lists, and SGL data
//! block / segment / last segment descriptors when enabled.
//!
//! `unsafe` is needed to own the BAR memory and to copy to and from host
//! DMA memory, as a device does.

mod admin;
mod config;
mod controller;
mod data;
mod dma;
mod error;
mod events;
mod faults;
mod features;
mod identify;
mod io;
mod logpage;
mod namespace;
mod pci_config;
mod prp;
mod queues;
mod regs;
mod sgl;
mod sqe;
mod stats;
mod status;
mod worker;

#[cfg(test)]
mod tests;

pub use admin::opc as admin_opc;
pub use config::{EmuBuilder, EmuConfig, NamespaceConfig, MAX_IO_QUEUE_PAIRS, MAX_NSID};
pub use controller::{EmuController, EmuHandle};
pub use error::EmuError;
pub use faults::{CommandMatch, FaultAction, Faults};
pub use features::fid as feature_id;
pub use io::opc as nvm_opc;
pub use sqe::{Cqe, Sqe, CQE_SIZE, SQE_SIZE};
pub use stats::EmuStats;
pub use status::Status;
