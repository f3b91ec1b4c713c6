//! `spdk-io tgt`'s tests, one module per former test binary: the daemon
//! on a private socket, its JSON-RPC methods and config, bad input, NVMe
//! over TCP, and SPDK's own `spdk-rpc` against it (`tgt_spdk_rpc`, host
//! only: the guest has no Python).

#[path = "../tgt_support/mod.rs"]
mod tgt_support;

mod tgt_bad_input;
mod tgt_bad_input_io;
mod tgt_config;
mod tgt_nvme;
mod tgt_rpc;
mod tgt_spdk_rpc;
