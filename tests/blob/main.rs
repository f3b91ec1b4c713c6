//! The blobstore's tests, one module per area (each was a test binary of
//! its own): operations, channels, threads, blobstores on bdevs, images made
//! by SPDK, hostile and corrupted metadata, power cuts. `blob_corrupt` and
//! `blob_powercut` run on the host only (qemu/lib/tests.sh skips them in
//! the guest).

mod blob_common;

mod blob_bdev;
mod blob_channel;
mod blob_compat;
mod blob_corrupt;
mod blob_fuzz;
mod blob_hostile;
mod blob_ops;
mod blob_powercut;
mod blob_thread;
