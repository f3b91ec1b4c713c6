//! # spdk-io
//!
//! The Storage Performance Development Kit rebuilt as one pure-Rust crate:
//! no C SPDK and no DPDK underneath.
//!
//! The crate is layered; each module depends only on the ones listed above it:
//!
//! | layer | what it is |
//! |---|---|
//! | [`env`](mod@env) | hugepages, DMA memory ([`env::DmaBuf`], pools), vaddr -> IOVA translation |
//! | [`pci`] | sysfs enumeration, driver binding, VFIO and uio device access, the device trait |
//! | [`sock`] | non-blocking TCP sockets polled by their owner: batched sends, partial-send resume |
//! | [`nvme`] | the user-space, polled, lock-free NVMe driver (PCIe and NVMe/TCP) |
//! | [`thread`] | lightweight threads, messages, pollers, io_device/io_channel, reactors, async |
//! | [`bdev`] | block devices: the module trait, descriptors, channels, pooled I/O, modules |
//! | [`blob`] | the blobstore, on-disk compatible with SPDK's |
//! | [`event`] | the application framework: reactors, subsystems, JSON config, the JSON-RPC server (`spdk-io tgt`) |
//!
//! [`rpc`] is a leaf beside them: the vocabulary of the method table
//! (SPDK's `lib/rpc`) through which every configurable layer offers its
//! operations to the application framework's JSON-RPC server and `--json`
//! config loader.
//!
//! [`util`] is another leaf: small utilities of SPDK's `lib/util` that any
//! layer or tool may use (the latency histogram in SPDK's buckets).
//!
//! `unsafe` code lives in `env` (and its inline closure buffer,
//! [`env::InlineFn`], which the thread layer's messages and the NVMe
//! driver's completion callbacks share), `pci` and `nvme` (its queues and
//! shadow doorbells, requests and the completion of their callbacks, the
//! tagged DMA submission, spec structures read as bytes, the NVMe/TCP
//! queue's direct receive, and the software controller): it is needed to
//! map device registers and hugepages and to hand memory to a device that
//! writes into it by DMA. `thread`, `sock`, `bdev`, `blob`, `lvol`,
//! `nvmf`, `rpc` and `event` deny it by lint; their few exceptions are
//! allowed by name where they live, each with its `// SAFETY:` line: the
//! thread layer's moving of a thread between reactors
//! (`ReactorSet::move_thread`), and the bdev modules' two
//! hand-offs of a buffer to a device (the io_uring push of the file bdev,
//! the DMA-by-address submission of the nvme bdev).
//!
//! # Use as a library
//! [`event::start`] runs a future inside the application framework on the
//! calling OS thread and tears everything down after (the README's
//! quick-start; `examples/` has more):
//! ```
//! use spdk_io::bdev::{self, malloc::{self, MallocOpts}, IoBuf};
//! use spdk_io::event::{self, AppOpts};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let opts = AppOpts { name: "demo".into(), no_huge: true, rpc_socket: None, ..AppOpts::default() };
//!     event::start(opts, || async {
//!         malloc::create(MallocOpts::new("Malloc0", 2048, 512))?;
//!         let desc = bdev::open("Malloc0", true)?;
//!         let ch = desc.get_io_channel()?;
//!         desc.write_async(&ch, IoBuf::from_vec(vec![7; 4096]), 0).await?;
//!         let buf = desc.read_async(&ch, IoBuf::new(4096), 0).await?;
//!         assert_eq!(buf.to_vec(), vec![7; 4096]);
//!         Ok(())
//!     })?
//! }
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod bdev;
pub mod blob;
pub mod env;
pub mod event;
pub mod lvol;
pub mod nvme;
pub mod nvmf;
pub mod pci;
pub mod rpc;
pub mod sock;
pub mod thread;
pub mod util;
