//! The environment's tests that share one no-hugepage env per process
//! (each module was a test binary of its own). Tests that start the env
//! with other options, or init and fini it, are binaries of their own.

#[path = "../env_support/mod.rs"]
mod env_support;

mod env_clock;
mod env_no_huge;
mod env_shared_dma;
mod errors_send_sync;
