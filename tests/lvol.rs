//! Logical volumes, in one test binary:
//! - `compat`: lvstores made by SPDK v25.09 load with exactly what their
//!   manifests say; the dirty one recovers to SPDK's recovered bytes;
//! - `ops`: lvstore and lvol operations with data checked at every step,
//!   a restart, SPDK's errors for bad input;
//! - `powercut`: a power cut at every write of a run of lvol operations;
//! - `bdev`: the lvol bdev module on malloc and file bdevs, I/O through
//!   the bdev layer, examine bringing every lvol back;
//! - `first_write`: a thin lvol's first writes at depth 128, allocated in
//!   batches (counted), and beyond the free space;
//! - `io_path`: lvol I/O passed through to the base bdev: counted on both,
//!   NOMEM retried, resets of the base and of the lvol, the base removed;
//! - `open`: rename and resize of an lvol whose bdev is open;
//! - `parent`: `bdev_lvol_set_parent`;
//! - `copy`: shallow copy of a read-only lvol to another bdev.

#[path = "lvol/bdev.rs"]
mod bdev;
#[path = "lvol/compat.rs"]
mod compat;
#[path = "lvol/copy.rs"]
mod copy;
#[path = "lvol/first_write.rs"]
mod first_write;
#[path = "lvol/io_path.rs"]
mod io_path;
#[path = "lvol/common.rs"]
mod lvol_common;
#[path = "lvol/open.rs"]
mod open;
#[path = "lvol/ops.rs"]
mod ops;
#[path = "lvol/parent.rs"]
mod parent;
#[path = "lvol/powercut.rs"]
mod powercut;
