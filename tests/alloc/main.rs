//! The zero-allocation tests, one module per former test binary: the env's
//! pools and address translation, the thread layer's hot paths, queue
//! pairs over PCIe (the software controller) and TCP, bdev I/O through
//! every module on the I/O path, blob and lvol I/O, and the NVMe-oF
//! target's data path. One global allocator ([`counting`]) counts per OS
//! thread, so the tests run in parallel like any others: each counts on the
//! thread that runs the path it proves.

mod counting;
#[path = "../nvme_tcp_common/mod.rs"]
mod nvme_tcp_common;
#[path = "../nvmf_common/mod.rs"]
mod nvmf_common;
mod qpair_loop;

mod bdev_alloc;
mod blob_alloc;
mod env_io_path;
mod nvme_tcp_zero_alloc;
mod nvme_zero_alloc;
mod nvmf_alloc;
mod thread_alloc;
