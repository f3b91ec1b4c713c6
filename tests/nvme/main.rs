//! The NVMe driver's tests that need no device, one module per former test
//! binary: the driver against the software controller (faults, shadow
//! doorbells, tagged commands), NVMe/TCP PDUs, queues and controllers
//! against this crate's target and hostile peers, and the sockets the TCP
//! transport runs on. The zero-allocation tests (the `alloc` binary, with
//! its counting allocator) and the guest's device tests are binaries of
//! their own.

#[path = "../nvme_common/mod.rs"]
mod nvme_common;
mod nvme_emu_common;
#[path = "../nvme_tcp_common/mod.rs"]
mod nvme_tcp_common;
#[path = "../nvmf_common/mod.rs"]
mod nvmf_common;
use nvmf_common::pdu_fuzz;

mod nvme_emu;
mod nvme_emu_faults;
mod nvme_emu_shadow;
mod nvme_emu_tagged;
mod nvme_tcp_ctrlr;
mod nvme_tcp_hostile;
mod nvme_tcp_pdu;
mod nvme_tcp_queue;
mod sock_tcp;
