//! The `nvme` layer: SPDK's user-space, polled NVMe driver (`<spdk/nvme.h>`).
//!
//! - [`spec`]: NVMe specification types (registers, SQE/CQE, status names,
//!   identify, log pages, features) with compile-time layout checks.
//! - [`Controller`]: attach by PCI device or transport ID ([`TransportId`],
//!   [`probe`], [`connect`]: `trtype:PCIe`, or `trtype:TCP` over NVMe/TCP,
//!   see [`tcp`]), bring-up, Identify, namespaces, admin commands (features,
//!   log pages, abort, format, passthrough), asynchronous events, reset,
//!   shutdown on drop. `Send + Sync`; the admin queue is polled with
//!   [`Controller::process_admin_completions`].
//! - [`QPair`]: an I/O queue pair owned by one thread (`!Send`): read, write,
//!   compare, readv/writev, flush, write zeroes, deallocate; PRP lists from
//!   the env's IOVA; transparent splitting above MDTS; batched and shadow
//!   doorbells; timeouts with abort; polled with [`QPair::process_completions`];
//!   transport counters ([`PcieStat`]: polls, MMIO vs shadow doorbell writes).
//! - [`AsyncQPair`]: the queue pair's I/O as futures ([`NvmeIo`]) that
//!   take the buffer and hand it back with the status; polled by the task
//!   that awaits, no allocation per I/O.
//! - [`Namespace`]: size and block size of an active namespace.
//! - Buffers ([`DmaSlice`], [`IoBuf`]): an I/O owns its DMA buffer until its
//!   completion ([`IoCompletion`]) hands it back.
//! - [`NvmeError`]: every failure, NVMe statuses decoded by name.
//! - `emu` (cargo feature `emu`): the software controller, a test tool
//!   implementing the PCI device seam in memory; the crate's own tests,
//!   benches and examples enable it, library users need not compile it.
//!
//! ```no_run
//! use spdk_io::env::{self, DmaBuf, EnvOpts};
//! use spdk_io::nvme::{self, ControllerOpts, QPairOpts};
//!
//! env::init(EnvOpts::default())?;
//! for trid in nvme::probe()? {
//!     let ctrlr = nvme::connect(&trid, &ControllerOpts::default())?;
//!     let ns = ctrlr.namespace(1)?;
//!     let mut qp = ctrlr.alloc_io_qpair(QPairOpts::default())?;
//!     let buf = DmaBuf::alloc(4096, 4096)?;
//!     let blocks = 4096 / ns.block_size();
//!     qp.read(&ns, buf, 0, blocks, |_qp, done| {
//!         let buf = done.buf.into_dma_buf(); // the buffer comes back here
//!         println!("read: {:?}, {} bytes", done.result, buf.map_or(0, |b| b.len()));
//!     })
//!     .map_err(|e| e.error)?;
//!     while qp.outstanding() > 0 {
//!         qp.process_completions(0)?;
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Internals: `regs` (BAR0 registers and state transitions), `queue` (rings
//! and doorbells), `prp` (PRP lists), `request` (the
//! request pool, sole owner of a request's lifecycle; command IDs carry a
//! generation, so a stale completion is refused), `callback` (completion
//! callbacks stored inline, in the environment's `InlineFn`), `shadow_policy` (whether a controller's shadow
//! doorbells pay off), `admin` (admin queue,
//! over PCIe or TCP), `transport` (what a controller is reached over),
//! `qpair_tcp` (an I/O queue pair's NVMe/TCP poll), `qpair_tcp_reconnect`
//! (its connection lost, and made again after a reset).
//!
//! `unsafe` here, each block with its `// SAFETY:` line: `queue` and
//! `controller`/`transport` (volatile rings, doorbells and the shadow
//! doorbell buffer), `request` and `callback` (a callback taken out of its
//! request and run once with the completion passed by address, buffers
//! lent by address until their completion), `io`
//! (`QPair::rw_tagged`, an `unsafe fn` whose caller keeps the buffer),
//! `qpair_tcp` (receiving straight into a lent buffer), `spec` (the `Pod`
//! byte views of `#[repr(C)]` structures), and `emu`.

mod admin;
mod admin_cmds;
mod buffer;
mod callback;
mod controller;
#[cfg(feature = "emu")]
pub mod emu;
mod error;
mod io;
mod namespace;
mod probe;
mod prp;
mod qpair;
mod qpair_async;
mod qpair_recovery;
mod qpair_stall;
mod qpair_tcp;
mod qpair_tcp_reconnect;
mod queue;
mod regs;
mod request;
mod reset;
mod shadow_policy;
pub mod spec;
mod stat;
mod submit;
pub mod tcp;
mod transport;

pub use crate::pci::{TransportId, TransportType};
pub use admin_cmds::FormatOpts;
pub use buffer::{DmaSlice, IoBuf, IoCompletion, SubmitError};
pub use callback::CALLBACK_INLINE_BYTES;
pub use controller::{AerCallback, Controller, ControllerOpts};
pub use error::{NvmeError, Result};
pub use io::{RwOp, MAX_DSM_RANGES};
pub use namespace::Namespace;
pub use probe::{connect, connect_all, probe};
pub use prp::PAGE_SIZE;
pub use qpair::{
    QPair, QPairOpts, TimedOutCommand, TimeoutAction, TimeoutCallback, STALL_KICK_POLLS,
    STALL_KICK_TIME,
};
pub use qpair_async::{AsyncIoFailed, AsyncIoResult, AsyncQPair, NvmeIo};
pub use stat::PcieStat;
