//! The blobstore: SPDK's power-fail-safe blob allocator, on-disk compatible
//! with SPDK's blobstore format version 3.
//!
//! A blobstore divides a device into clusters (1 MiB by default) and hands
//! them out to blobs: numbered, resizable, thin-provisionable byte ranges
//! with extended attributes, snapshots and clones. Metadata lives in 4 KiB
//! pages at the front of the device; every metadata change is committed by
//! one in-place write of the blob's root page, so a power cut leaves each
//! blob in its old or its new state. A store made by SPDK opens here and one
//! made here opens in SPDK.
//!
//! - [`dev`]: the device seam ([`BsDev`], SPDK's `spdk_bs_dev`): every
//!   operation synchronous or asynchronous (an owned [`crate::bdev::IoBuf`]
//!   in, a future out); [`RamDev`] and [`FileDev`] complete inline;
//!   [`BdevBsDev`]: any bdev of the `bdev` layer, asynchronous only;
//!   [`cut_dev`]: a device that loses power.
//! - [`format`](mod@format): the on-disk structures, encode and decode.
//! - [`Blobstore`]: every operation that touches the device is an `async
//!   fn` (`init_async`, `load_async`, `create_blob_async`, ...) that never
//!   blocks its thread; `facade` gives each a synchronous form for devices
//!   that complete inline (refused with [`BlobError::NotInline`] on a bdev).
//!   init / load (with dirty recovery; the super block's layout checked
//!   region by region; [`LoadOpts::read_only`] never writes) / unload (a
//!   no-op for an unchanged clean store), super blob, grow, free clusters
//!   ([`store`], [`load`]). [`FileDev`] and the file bdev lock their file:
//!   one process per store.
//! - Blob operations ([`ops`]): create, open/close, delete, resize, sync,
//!   xattrs, read-only, iteration; I/O in io units ([`io`] synchronous,
//!   `io_async` with owned buffers); snapshots, clones, inflate, decouple
//!   ([`snapshot`]); the commit protocol ([`persist`]).
//! - [`BlobstoreHandle`] ([`service`], the operations by name in
//!   [`handle_ops`]): the store owned by a task on its metadata thread
//!   (`fifo`: one operation at a time, in order, awaiting the device),
//!   reached by callback or `async` from any thread.
//! - [`BlobIoChannel`] ([`channel`]): blob I/O on a thread's own device
//!   handle (its bdev channel), offsets translated on that thread through
//!   cluster maps shared lock-free with the metadata thread (`io_map`, with
//!   SPDK's blob freeze); only allocating writes go to the metadata thread.
//!   Async, or by callback ([`channel_cb`]). Writes to clusters a blob does
//!   not own yet wait in their channel for an allocation batch
//!   (`alloc_queue`), which the metadata thread serves with one metadata
//!   sync (`alloc_batch`); [`stats`] counts both sides.

#![deny(unsafe_code)]

//! ```
//! use spdk_io::blob::{BlobOpts, Blobstore, BsOpts, LoadOpts, RamDev};
//!
//! // A 16 MiB RAM device with 4 KiB blocks; SPDK's default options.
//! let mut bs = Blobstore::init(RamDev::new(4096, 4096), &BsOpts::default())?;
//! let id = bs.create_blob(&BlobOpts { num_clusters: 2, thin_provision: true, ..Default::default() })?;
//! assert_eq!(id, 0x1_0000_0000); // (1 << 32) | root md page 0
//! let blob = bs.open_blob(id)?;
//! bs.write(&blob, 0, &[0xab; 4096])?; // offsets and lengths in io units (here 4 KiB)
//! bs.set_xattr(&blob, "name", b"demo\0")?;
//! bs.close_blob(blob)?; // persists the dirty metadata
//! let snap = bs.create_snapshot(id, &[])?;
//! let dev = bs.unload()?;
//!
//! let mut bs = Blobstore::load(dev, &LoadOpts::default())?;
//! assert_eq!(bs.blob_info(id)?.parent, Some(snap));
//! let blob = bs.open_blob(id)?;
//! let mut buf = [0u8; 4096];
//! bs.read(&blob, 0, &mut buf)?; // read through to the snapshot
//! assert_eq!(buf, [0xab; 4096]);
//! bs.close_blob(blob)?;
//! # Ok::<(), spdk_io::blob::BlobError>(())
//! ```

mod alloc_batch;
mod alloc_queue;
pub mod bdev_dev;
pub mod bitmap;
pub mod channel;
pub mod channel_cb;
mod channel_geom;
pub mod cut_dev;
pub mod dev;
pub mod error;
mod facade;
mod fifo;
pub mod format;
pub mod handle_ops;
mod inline;
pub mod io;
mod io_async;
mod io_map;
pub mod load;
pub mod maps;
pub mod md;
pub mod md_pages;
pub mod ops;
pub mod persist;
pub mod service;
pub mod snapshot;
pub mod space;
pub mod stats;
pub mod store;

/// Writes one allocation batch of a channel takes at most: a batch's
/// writes all wait for its last cluster to be zeroed and committed, so a
/// deep queue of first writes is served in a few commits, the first of
/// them early.
pub const ALLOC_BATCH_MAX: usize = 32;

/// A blob id: `(1 << 32) | root md page index` (spdk_blob_id).
pub type BlobId = u64;

pub use bdev_dev::BdevBsDev;
pub use channel::BlobIoChannel;
pub use channel_cb::{BlobIoCb, BlobIoDone};
pub use cut_dev::PowerCutDev;
pub use dev::{BsDev, DevIo, FileDev, RamDev};
pub use error::BlobError;
pub use load::{LoadKind, LoadOpts};
pub use ops::{Blob, BlobClearMethod, BlobInfo, BlobOpts};
pub use service::BlobstoreHandle;
pub use stats::BlobStats;
pub use store::{Blobstore, BsOpts, ClearMethod};
