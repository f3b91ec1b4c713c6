//! The NVMe-oF target's tests, one module per former test binary: the TCP
//! transport against this crate's initiator and raw hosts, failures, hostile
//! peers, the nvmf RPCs. `nvmf_alloc` (a module of the `alloc` binary,
//! with its counting allocator) and the guest's kernel-initiator test are
//! binaries of their own.

#[path = "../nvmf_common/mod.rs"]
mod nvmf_common;

mod nvmf_rpc;
mod nvmf_tcp;
mod nvmf_tcp_commands;
mod nvmf_tcp_failures;
mod nvmf_tcp_hostile;
mod nvmf_tcp_idle;
