//! Logical volumes (SPDK's `lib/lvol` and `module/bdev/lvol`): an lvstore
//! is a blobstore of type `LVOLSTORE` on any bdev; each lvol is a blob of
//! it, thick or thin, with snapshots and clones, shown as a bdev named by
//! its UUID with the alias `lvstore/lvol`.
//!
//! The on-disk conventions are SPDK's, so a store made by SPDK loads here
//! and one made here loads in SPDK.
//!
//! | item | job |
//! |---|---|
//! | [`LvolError`] (`error`) | what failed, with SPDK's errno |
//! | `xattrs` | the on-disk conventions: bstype, the `name`/`uuid` xattrs |
//! | [`LvolStore`], [`LvsOpts`] (`store`) | create, load, rename, grow, unload, destroy |
//! | `volume` | lvol create / snapshot / clone / resize / rename / inflate / decouple / read-only / delete |
//! | `md_ops` | the metadata-thread half of each operation |
//! | [`vbdev`] | the lvol bdev module: lvols as bdevs, examine |
//! | [`rpc`] | the `bdev_lvol_*` JSON-RPC methods |

#![deny(unsafe_code)]

pub mod error;
mod md_ops;
pub mod rpc;
pub mod store;
pub mod vbdev;
mod volume;
pub mod xattrs;

pub use error::{LvolError, Result};
pub use md_ops::Lvol;
pub use store::{LvolStore, LvsOpts, LvsSpace, DEFAULT_CLUSTER_SZ};
