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
//! - [`dev`]: the device seam ([`BsDev`], SPDK's `spdk_bs_dev`) with
//!   [`RamDev`] and [`FileDev`]; [`cut_dev`]: a device that loses power.
//! - [`format`]: the on-disk structures, encode and decode.
//! - [`Blobstore`]: init / load (with dirty recovery) / unload, super blob,
//!   grow, free clusters ([`store`], [`load`]).
//! - Blob operations ([`ops`]): create, open/close, delete, resize, sync,
//!   xattrs, read-only, iteration; I/O in io units ([`io`]); snapshots,
//!   clones, inflate, decouple ([`snapshot`]); the commit protocol ([`persist`]).
//! - [`BlobstoreHandle`] ([`service`]): the store owned by its metadata
//!   thread (the `thread` layer), reached by callback or `async` from any thread.

pub mod bitmap;
pub mod cut_dev;
pub mod dev;
pub mod error;
pub mod format;
pub mod io;
pub mod load;
pub mod maps;
pub mod md;
pub mod md_pages;
pub mod ops;
pub mod persist;
pub mod service;
pub mod snapshot;
pub mod space;
pub mod store;

/// A blob id: `(1 << 32) | root md page index` (spdk_blob_id).
pub type BlobId = u64;

pub use cut_dev::PowerCutDev;
pub use dev::{BsDev, FileDev, RamDev};
pub use error::BlobError;
pub use load::{LoadKind, LoadOpts};
pub use ops::{Blob, BlobClearMethod, BlobInfo, BlobOpts};
pub use service::BlobstoreHandle;
pub use store::{Blobstore, BsOpts, ClearMethod};
