//! The bdev layer's tests, one module per area (each was a test binary of
//! its own): I/O, resets, range locks, split I/O, the module seam, the nvme
//! module over the software controller and over NVMe/TCP, the bdev RPCs.
//! Tests that change process-wide bdev options (`bdev_set_options`, auto
//! examine), count allocations or need the guest's device are binaries of
//! their own beside this one.

mod common;
#[path = "../nvmf_common/mod.rs"]
mod nvmf_common;
#[path = "../thread_support/mod.rs"]
mod thread_support;

mod bdev_async;
mod bdev_compare_and_write;
mod bdev_completion_order;
mod bdev_core;
mod bdev_file;
mod bdev_lock_async;
mod bdev_module_poll;
mod bdev_nvme;
mod bdev_nvme_tcp;
mod bdev_opts;
mod bdev_range_lock;
mod bdev_reset;
mod bdev_rpc;
mod bdev_rpc_io;
mod bdev_split_io;
mod bdev_split_reset;
mod bdev_submit_from;
mod bdev_unpolled;
mod bdev_vbdev;
mod bdev_verify;
