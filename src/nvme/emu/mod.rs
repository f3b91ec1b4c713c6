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
//!   (namespace attribute changed, SMART warnings; the controller raises
//!   Invalid Doorbell Write Value itself), namespace contents, detaching and
//!   re-attaching namespaces (for rescan and hot-remove tests).
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
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use spdk_io::env::{self, EnvOpts};
//! use spdk_io::nvme::emu::{nvm_opc, CommandMatch, EmuController, Status};
//! use spdk_io::pci::PciDevice;
//!
//! env::init_once(EnvOpts::no_huge()).unwrap(); // IOVA = VA, no root needed
//! let emu = Arc::new(
//!     EmuController::builder()
//!         .serial("EMU-DOC-1")
//!         .mdts(5)                // 128 KiB per command
//!         .max_io_queue_pairs(2)
//!         .namespace(512, 8192)   // nsid 1: 4 MiB of 512 B blocks
//!         .namespace(4096, 1024)  // nsid 2: 4 MiB of 4 KiB blocks
//!         .shadow_doorbells(true)
//!         .build()
//!         .unwrap(),
//! );
//! // Hand `emu.clone()` to a driver as an `Arc<dyn PciDevice>`; keep a
//! // handle to disturb and observe it.
//! let handle = emu.handle();
//! handle.faults().fail_next(
//!     CommandMatch::io(nvm_opc::READ).lba_range(0..8),
//!     Status::UNRECOVERED_READ_ERROR,
//!     1,
//! );
//! handle.faults().delay_next(CommandMatch::any_io(), Duration::from_millis(5), 3);
//! assert_eq!(emu.map_bar(0).unwrap().read32(0x08), 0x0001_0400); // VS 1.4
//! assert_eq!(handle.stats().io(nvm_opc::READ), 0);
//! ```
//!
//! # Behaviour worth knowing
//!
//! - Doorbells are write-only: the worker swaps each back to all-ones after
//!   reading (and counting) it, so that every write is noticed (two writes
//!   between polls count once, as posted MMIO writes may).
//! - The worker spins briefly after work, then yields, then parks for 50 µs,
//!   after about 0.1 s idle for 500 µs, after about a second for 2 ms: an
//!   idle controller costs well under 1% of a core, and the first command
//!   after a long idle time waits up to 2 ms.
//! - Shadow doorbells apply to I/O queues (as SPDK and Linux use them); the
//!   admin queue always uses its MMIO doorbells. They are read as QEMU's
//!   NVMe controller reads them, so a driver that gets EventIdx wrong hangs
//!   here as it would there: an SQ's shadow tail is read only once an MMIO
//!   tail doorbell write has started processing of that queue; after each
//!   command fetched, the controller stores the tail it has seen as EventIdx
//!   and reads the shadow tail again, going on while new entries appear.
//!   When the queue runs dry it stops, and a shadow tail moved after that is
//!   not fetched until the next MMIO write. A CQ's shadow head is read (after
//!   storing the known head as its EventIdx) only when completions are
//!   posted; a full CQ takes more only after an MMIO head doorbell write or
//!   a new completion. Create I/O SQ/CQ leaves the shadow and EventIdx
//!   slots as they are (a deleted queue's values stay); Doorbell Buffer
//!   Config seeds the shadow slots of queues that already exist.
//! - CSTS.RDY = 0 after CC.EN 1→0 means the controller has forgotten every
//!   queue: from then on it touches no host memory. Dropping the
//!   [`EmuController`] joins the worker.
//! - Not emulated: interrupts (INTMS/INTMC are ignored; MSI-X is absent),
//!   CMB/PMR, NVM subsystem reset, metadata and protection information,
//!   fused operations, namespace management and attachment, reservations,
//!   firmware download/commit, sanitize, self-test, Verify, Write
//!   Uncorrectable, other command sets.
//!
//! # Layout
//!
//! `controller` (the device and its handle), `config`, `regs` (BAR 0),
//! `pci_config`, `worker` (CC state machine, polling loop, backoff),
//! `queues` (SQ/CQ state, MMIO doorbells, CQE posting), `shadow` (shadow
//! doorbells and EventIdx),
//! `execute` (faults, held commands, completions), `admin`, `identify`,
//! `features`, `logpage`, `io` (NVM commands), `data`, `prp`, `sgl` and
//! `dma` (host memory through the env), `namespace`, `faults`, `events`,
//! `stats`, `sqe` and `status` (the spec's entries and status codes).
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
mod execute;
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
mod shadow;
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
